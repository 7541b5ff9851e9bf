//! Conformance checks for alarm records and alarm evaluator state.
use crate::{AlarmEntityFilter, AlarmQuery, AlarmRecord, RetentionPolicy, Storage};
use skylark_core::Scope;

/// 2026-11-29 12:05 UTC.
const T0: i64 = 1_796_040_300_000;
const DAY: i64 = 86_400_000;

fn alarm(uuid: &str, rule: &str, name: &str, start: i64, level: &str) -> AlarmRecord {
    AlarmRecord {
        uuid: uuid.to_string(),
        scope: Scope::Service,
        name: name.to_string(),
        id0: format!("{name}.1"),
        id1: String::new(),
        rule_name: rule.to_string(),
        message: format!("{rule} fired on {name}"),
        tags: vec![("level".into(), level.into()), ("team".into(), "mp".into())],
        layers: vec!["WECHAT_MINI_PROGRAM".into()],
        start_time_ms: start,
        recovery_time_ms: None,
        expression: "sum(x > 1) >= 1".into(),
        snapshot: vec![("x".into(), "[]".into())],
    }
}

fn uuids(records: &[AlarmRecord]) -> Vec<&str> {
    records.iter().map(|r| r.uuid.as_str()).collect()
}

pub(super) fn alarms_filter_order_and_recover(store: &dyn Storage) {
    store
        .write_alarm_records(vec![
            alarm("u1", "a_rule", "svc-a", T0, "WARNING"),
            alarm("u2", "b_rule", "svc-b", T0 + 60_000, "CRITICAL"),
            alarm("u3", "a_rule", "svc-b", T0 + 120_000, "WARNING"),
        ])
        .unwrap();
    let all = store.query_alarms(&AlarmQuery::default()).unwrap();
    assert_eq!(uuids(&all), ["u3", "u2", "u1"], "latest start first");

    let q = |f: &dyn Fn(&mut AlarmQuery)| {
        let mut q = AlarmQuery::default();
        f(&mut q);
        uuids(&store.query_alarms(&q).unwrap())
            .into_iter()
            .map(String::from)
            .collect::<Vec<_>>()
    };
    assert_eq!(q(&|q| q.rule_names = vec!["a_rule".into()]), ["u3", "u1"]);
    assert_eq!(
        q(&|q| q.tags = vec![("level".into(), Some("CRITICAL".into()))]),
        ["u2"]
    );
    assert_eq!(q(&|q| q.tags = vec![("team".into(), None)]).len(), 3);
    assert_eq!(
        q(&|q| q.entities = vec![AlarmEntityFilter {
            id0: "svc-b.1".into(),
            id1: None
        }]),
        ["u3", "u2"]
    );
    assert_eq!(q(&|q| q.keyword = Some("on svc-a".into())), ["u1"]);
    assert_eq!(q(&|q| q.scope = Some(Scope::Endpoint)).len(), 0);
    assert_eq!(
        q(&|q| q.layer = Some("ALIPAY_MINI_PROGRAM".into())).len(),
        0
    );
    assert_eq!(
        q(&|q| q.layer = Some("WECHAT_MINI_PROGRAM".into())).len(),
        3
    );
    assert_eq!(
        q(&|q| {
            q.start_ms = Some(T0 + 60_000);
            q.end_ms = Some(T0 + 60_000);
        }),
        ["u2"]
    );
    assert_eq!(
        q(&|q| {
            q.offset = 1;
            q.limit = 1;
        }),
        ["u2"]
    );

    // The recovery replaces the firing record.
    let mut recovered = alarm("u1", "a_rule", "svc-a", T0, "WARNING");
    recovered.recovery_time_ms = Some(T0 + 300_000);
    store.write_alarm_records(vec![recovered.clone()]).unwrap();
    let all = store.query_alarms(&AlarmQuery::default()).unwrap();
    assert_eq!(all.len(), 3);
    assert_eq!(all[2], recovered);

    assert_eq!(
        store.alarm_tag_keys(T0, T0).unwrap(),
        ["level".to_string(), "team".to_string()]
    );
    assert_eq!(
        store.alarm_tag_values("level", T0, T0).unwrap(),
        ["CRITICAL".to_string(), "WARNING".to_string()]
    );
    assert!(store
        .alarm_tag_keys(T0 + 2 * DAY, T0 + 3 * DAY)
        .unwrap()
        .is_empty());
}

pub(super) fn alarm_states_replace_and_remove(store: &dyn Storage) {
    assert!(store.alarm_states().unwrap().is_empty());
    store
        .put_alarm_states(vec![
            ("a_rule".into(), "svc-a.1".into(), Some("{\"s\":1}".into())),
            ("a_rule".into(), "svc-b.1".into(), Some("{\"s\":2}".into())),
            ("b_rule".into(), "svc-a.1".into(), Some("{\"s\":3}".into())),
        ])
        .unwrap();
    store
        .put_alarm_states(vec![
            ("a_rule".into(), "svc-a.1".into(), Some("{\"s\":4}".into())),
            ("a_rule".into(), "svc-b.1".into(), None),
        ])
        .unwrap();
    let mut states = store.alarm_states().unwrap();
    states.sort();
    assert_eq!(
        states,
        [
            (
                "a_rule".to_string(),
                "svc-a.1".to_string(),
                "{\"s\":4}".to_string()
            ),
            (
                "b_rule".to_string(),
                "svc-a.1".to_string(),
                "{\"s\":3}".to_string()
            ),
        ]
    );
}

pub(super) fn retention_removes_old_alarms(store: &dyn Storage) {
    store
        .write_alarm_records(vec![
            alarm("old", "a_rule", "svc-a", T0, "WARNING"),
            alarm("new", "a_rule", "svc-a", T0 + 5 * DAY, "CRITICAL"),
        ])
        .unwrap();
    let policy = RetentionPolicy {
        metrics_days: 7,
        records_days: 3,
    };
    store.remove_expired(&policy, T0 + 5 * DAY).unwrap();
    let left = store.query_alarms(&AlarmQuery::default()).unwrap();
    assert_eq!(uuids(&left), ["new"]);
    assert_eq!(
        store.alarm_tag_values("level", T0, T0 + 6 * DAY).unwrap(),
        ["CRITICAL".to_string()]
    );
}
