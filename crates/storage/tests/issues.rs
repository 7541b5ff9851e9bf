//! Issues and source maps in both backends: folded with the caller's rule, marked for replay,
//! kept across reopening.
use skylark_core::{Issue, IssueOccurrence, IssueStatus, IssueVersion, Layer};
use skylark_storage::{
    IssueOrder, IssueQuery, MemStorage, SledConfig, SledStorage, SourceMapRecord, Storage,
    ISSUE_EVENTS_KEPT,
};
use std::path::Path;

fn open(dir: &Path) -> SledStorage {
    let mut config = SledConfig::new(dir.join("db"));
    config.flush_every_ms = None;
    SledStorage::open(config).unwrap()
}

fn occurrence(fingerprint: &str, time_ms: i64) -> IssueOccurrence {
    IssueOccurrence {
        fingerprint: fingerprint.into(),
        service: "shop".into(),
        layer: Layer::WECHAT_MINI_PROGRAM,
        kind: "js".into(),
        error_type: "TypeError".into(),
        title: format!("TypeError: {fingerprint}"),
        culprit: "onLoad (pages/a.js)".into(),
        time_ms,
        version: "1.0.0".into(),
        page: "pages/a".into(),
        message: "boom".into(),
        stack: String::new(),
        session_id: None,
        user_id: None,
        trace_id: None,
    }
}

/// A minimal fold (the real one lives in skylark-issues): counts and last-seen.
fn fold(issue: Option<Issue>, o: &IssueOccurrence) -> Issue {
    let mut issue = issue.unwrap_or_else(|| Issue {
        versions: vec![IssueVersion {
            version: o.version.clone(),
            first_seen_ms: o.time_ms,
            last_seen_ms: o.time_ms,
            count: 0,
        }],
        ..Issue::new(o)
    });
    issue.count += 1;
    issue.last_seen_ms = issue.last_seen_ms.max(o.time_ms);
    issue
}

const T0: i64 = 1_700_000_000_000 - 1_700_000_000_000 % 60_000;

fn exercise(store: &dyn Storage) {
    let mut batch: Vec<IssueOccurrence> = (0..150)
        .map(|i| occurrence("aaaa", T0 + i * 1000))
        .collect();
    batch.push(occurrence("bbbb", T0 + 500));
    store
        .record_issue_occurrences(Some(7), batch, &fold)
        .unwrap();
    // The mark says what is stored for good: after the next flush at the latest.
    store.flush().unwrap();
    assert_eq!(store.applied_seqs().unwrap().issues, 7);

    let issue = store.get_issue("aaaa").unwrap().unwrap();
    assert_eq!((issue.count, issue.last_seen_ms), (150, T0 + 149_000));
    // Only the latest occurrences are kept, newest first.
    let events = store.issue_events("aaaa", 0, 1000).unwrap();
    assert_eq!(events.len() as u64, ISSUE_EVENTS_KEPT);
    assert_eq!(events[0].time_ms, T0 + 149_000);
    assert_eq!(events.last().unwrap().time_ms, T0 + 50_000);
    // 60 + 60 + 30 occurrences over three minutes.
    let minutes = store.issue_minutes("aaaa", T0, T0 + 600_000).unwrap();
    assert_eq!(
        minutes,
        vec![(T0, 60), (T0 + 60_000, 60), (T0 + 120_000, 30)]
    );

    let query = IssueQuery {
        service: Some("shop".into()),
        status: None,
        version: Some("1.0.0".into()),
        keyword: None,
        start_ms: T0,
        end_ms: T0 + 600_000,
        order: IssueOrder::Count,
        offset: 0,
        limit: 10,
    };
    let (issues, total) = store.query_issues(&query).unwrap();
    assert_eq!(total, 2);
    assert_eq!(issues[0].id, "aaaa");
    let (issues, total) = store
        .query_issues(&IssueQuery {
            keyword: Some("BBBB".into()),
            ..query.clone()
        })
        .unwrap();
    assert_eq!((issues.len(), total), (1, 1));

    let updated = store
        .update_issue("bbbb", &mut |mut i| {
            i.status = IssueStatus::Ignored;
            i
        })
        .unwrap()
        .unwrap();
    assert_eq!(updated.status, IssueStatus::Ignored);
    assert!(store.update_issue("nope", &mut |i| i).unwrap().is_none());

    for (version, uploaded_ms) in [("1.0.0", 10), ("1.1.0", 20)] {
        let record = SourceMapRecord {
            service: "shop".into(),
            version: version.into(),
            file: "app-service.js".into(),
            bytes: 3,
            uploaded_ms,
        };
        store.put_source_map(&record, b"map").unwrap();
    }
    let listed = store.list_source_maps(Some("shop")).unwrap();
    assert_eq!(
        listed
            .iter()
            .map(|m| m.version.as_str())
            .collect::<Vec<_>>(),
        ["1.1.0", "1.0.0"]
    );
    assert_eq!(
        store
            .source_map("shop", "1.0.0", "app-service.js")
            .unwrap()
            .as_deref(),
        Some(&b"map"[..])
    );
    assert!(store.list_source_maps(Some("sho")).unwrap().is_empty());
    assert!(store
        .delete_source_map("shop", "1.0.0", "app-service.js")
        .unwrap());
    assert!(!store
        .delete_source_map("shop", "1.0.0", "app-service.js")
        .unwrap());
    assert!(store
        .source_map("shop", "1.0.0", "app-service.js")
        .unwrap()
        .is_none());
}

#[test]
fn memory_backend_keeps_issues_and_maps() {
    exercise(&MemStorage::new());
}

#[test]
fn sled_backend_keeps_issues_and_maps_across_reopening() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(dir.path());
        exercise(&store);
    }
    let store = open(dir.path());
    assert_eq!(store.get_issue("aaaa").unwrap().unwrap().count, 150);
    assert_eq!(
        store.get_issue("bbbb").unwrap().unwrap().status,
        IssueStatus::Ignored
    );
    assert_eq!(store.applied_seqs().unwrap().issues, 7);
    assert_eq!(store.list_source_maps(None).unwrap().len(), 1);
}
