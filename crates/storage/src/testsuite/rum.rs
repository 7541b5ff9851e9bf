//! Conformance checks for RUM event records.
use crate::{RetentionPolicy, RumQuery, SessionQuery, Storage};
use skylark_core::rum::{RumDetail, RumUser, RumViewRef, RumViewTimings};
use skylark_core::{RumEvent, RumEventType};

/// 2026-11-29 12:05 UTC.
const T0: i64 = 1_796_040_300_000;
const DAY: i64 = 86_400_000;

fn event(kind: RumEventType, id: &str, time_ms: i64, session: &str) -> RumEvent {
    RumEvent {
        event_type: Some(kind),
        id: id.to_owned(),
        time_ms,
        service: "shop".into(),
        session_id: session.into(),
        view: RumViewRef {
            id: format!("view-of-{session}"),
            name: "pages/index/index".into(),
            ..RumViewRef::default()
        },
        user: RumUser {
            id: "u-1".into(),
            anonymous_id: format!("anon-{session}"),
            ..RumUser::default()
        },
        ..RumEvent::default()
    }
}

fn view(version: i64, time_spent_ms: f64) -> RumEvent {
    RumEvent {
        document_version: Some(version),
        detail: RumDetail::View(RumViewTimings {
            time_spent_ms: Some(time_spent_ms),
            ..RumViewTimings::default()
        }),
        ..event(RumEventType::View, "view-of-s1", T0, "s1")
    }
}

fn ids(store: &dyn Storage, f: &dyn Fn(&mut RumQuery)) -> (Vec<String>, u64) {
    let mut q = RumQuery {
        limit: 10,
        order_desc: true,
        ..RumQuery::default()
    };
    f(&mut q);
    let page = store.query_rum_events(&q).unwrap();
    (page.events.into_iter().map(|e| e.id).collect(), page.total)
}

pub(super) fn rum_events_by_index_and_view_upserts(store: &dyn Storage) {
    let mut resource = event(RumEventType::Resource, "r1", T0 + 1_000, "s1");
    resource.trace_id = "000000000000000055c9855e8e08a249".into();
    store
        .write_rum_events(vec![
            view(3, 3000.0),
            resource,
            event(RumEventType::Error, "e1", T0 + 2_000, "s1"),
            event(RumEventType::Action, "a2", T0 + 3_000, "s2"),
        ])
        .unwrap();
    // A lower version never replaces a higher one; a higher one replaces it in place.
    store.write_rum_events(vec![view(2, 2000.0)]).unwrap();
    let stored = store.stored_rum_view(&view(0, 0.0)).unwrap().unwrap();
    assert_eq!(stored.document_version, Some(3));
    store.write_rum_events(vec![view(5, 5000.0)]).unwrap();
    let (all, total) = ids(store, &|_| {});
    assert_eq!(
        all,
        ["a2", "e1", "r1", "view-of-s1"],
        "newest first, one row per view"
    );
    assert_eq!(total, 4);
    let latest = store.stored_rum_view(&view(0, 0.0)).unwrap().unwrap();
    assert_eq!(latest, view(5, 5000.0));

    assert_eq!(
        ids(store, &|q| q.session_id = Some("s1".into())).0,
        ["e1", "r1", "view-of-s1"]
    );
    assert_eq!(
        ids(store, &|q| q.view_id = Some("view-of-s2".into())).0,
        ["a2"]
    );
    // The trace in Datadog's decimal form, its low 16 hex digits, or 32 hex digits.
    for trace in [
        "6181618604699066953",
        "55c9855e8e08a249",
        "000000000000000055C9855E8E08A249",
    ] {
        assert_eq!(
            ids(store, &|q| q.trace_id = Some(trace.into())).0,
            ["r1"],
            "{trace}"
        );
    }
    assert!(ids(store, &|q| q.trace_id = Some("zzz".into()))
        .0
        .is_empty());
    assert_eq!(
        ids(store, &|q| q.user_id = Some("anon-s2".into())).0,
        ["a2"]
    );
    assert_eq!(ids(store, &|q| q.user_id = Some("u-1".into())).1, 4);
    assert_eq!(
        ids(store, &|q| q.types =
            vec![RumEventType::Error, RumEventType::View])
        .0,
        ["e1", "view-of-s1"]
    );
    assert_eq!(
        ids(store, &|q| {
            q.service = Some("shop".into());
            q.start_ms = Some(T0 + 1_000);
            q.end_ms = Some(T0 + 2_000);
        })
        .0,
        ["e1", "r1"]
    );
    let (page, total) = ids(store, &|q| {
        q.offset = 1;
        q.limit = 2;
    });
    assert_eq!((page, total), (vec!["e1".to_owned(), "r1".to_owned()], 4));
    assert!(store.rum_session_seen("s2").unwrap());
    assert!(!store.rum_session_seen("s9").unwrap());

    store
        .write_rum_events_through(7, vec![event(RumEventType::Custom, "c1", T0, "s3")])
        .unwrap();
    // The mark is stored by the next flush at the latest.
    store.flush().unwrap();
    assert_eq!(store.applied_seqs().unwrap().rum, 7);

    // Retention takes the events and their index rows.
    let policy = RetentionPolicy {
        metrics_days: 7,
        records_days: 1,
    };
    store.remove_expired(&policy, T0 + 2 * DAY).unwrap();
    assert_eq!(ids(store, &|_| {}).1, 0);
    assert!(ids(store, &|q| q.session_id = Some("s1".into()))
        .0
        .is_empty());
    assert!(!store.rum_session_seen("s1").unwrap());
}

fn session_ids(store: &dyn Storage, f: &dyn Fn(&mut SessionQuery)) -> (Vec<String>, u64) {
    let mut q = SessionQuery {
        start_ms: T0 - DAY,
        end_ms: T0 + DAY,
        limit: 10,
        ..SessionQuery::default()
    };
    f(&mut q);
    let page = store.query_rum_sessions(&q).unwrap();
    (
        page.sessions.into_iter().map(|s| s.id).collect(),
        page.total,
    )
}

pub(super) fn rum_sessions_count_each_event_once(store: &dyn Storage) {
    let mut failed = event(RumEventType::Resource, "r1", T0 + 1_000, "s1");
    failed.status = Some(502);
    let batch = vec![
        view(1, 1000.0),
        failed,
        event(RumEventType::Error, "e1", T0 + 2_000, "s1"),
        event(RumEventType::Action, "a2", T0 + 60_000, "s2"),
    ];
    store.write_rum_events(batch.clone()).unwrap();
    // A replayed batch, a re-sent view and an event arriving late and out of order.
    store.write_rum_events(batch).unwrap();
    store.write_rum_events(vec![view(4, 9000.0)]).unwrap();
    store
        .write_rum_events(vec![event(RumEventType::Action, "a0", T0 - 500, "s1")])
        .unwrap();
    let s1 = store.rum_session("s1").unwrap().unwrap();
    assert_eq!(
        (
            s1.view_count,
            s1.action_count,
            s1.resource_count,
            s1.error_count
        ),
        (1, 1, 1, 1)
    );
    assert!(s1.failed_request);
    assert_eq!((s1.start_ms, s1.end_ms), (T0 - 500, T0 + 9_000));
    assert_eq!(s1.pages.len(), 1);
    assert_eq!(s1.pages[0].name, "pages/index/index");

    // Newest start first; the index follows a session's start when it moves earlier.
    assert_eq!(
        session_ids(store, &|_| {}),
        (vec!["s2".into(), "s1".into()], 2)
    );
    assert_eq!(session_ids(store, &|q| q.has_error = Some(true)).0, ["s1"]);
    assert_eq!(session_ids(store, &|q| q.has_error = Some(false)).0, ["s2"]);
    assert_eq!(
        session_ids(store, &|q| q.min_duration_ms = Some(5_000)).0,
        ["s1"]
    );
    assert_eq!(
        session_ids(store, &|q| q.user_id = Some("anon-s2".into())).0,
        ["s2"]
    );
    assert_eq!(
        session_ids(store, &|q| {
            q.start_ms = T0 - 1_000;
            q.end_ms = T0;
        })
        .0,
        ["s1"]
    );
    assert_eq!(
        session_ids(store, &|q| {
            q.offset = 1;
            q.limit = 1;
        }),
        (vec!["s1".into()], 2)
    );

    let policy = RetentionPolicy {
        metrics_days: 7,
        records_days: 1,
    };
    store.remove_expired(&policy, T0 + 2 * DAY).unwrap();
    assert!(store.rum_session("s1").unwrap().is_none());
    assert_eq!(session_ids(store, &|_| {}).1, 0);
}
