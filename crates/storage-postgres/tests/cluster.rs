//! What only a shared database has to show: several nodes writing one store merge exactly as one
//! node would (metrics, issue counters, RUM session summaries), each node keeps its own
//! write-ahead-log marks, retention drops day partitions, and calls from inside an async runtime
//! do not panic.
use skylark_core::{
    ContentType, HistogramGroup, IssueOccurrence, Labels, Layer, LogRecord, MeterEntity,
    MeterValue, MetricDefinition, MetricEmission, MetricFunction, RumEvent, RumEventType, Scope,
    Step, TimeBucket,
};
use skylark_storage::{LogQuery, MemStorage, RetentionPolicy, RumQuery, Storage};
use skylark_storage_postgres::{PostgresStorage, TestDatabase};
use std::sync::Arc;

const SERVICE: &str = "mini-program-sim-wechat";
const DAY_MS: i64 = 86_400_000;
/// 2026-11-29 12:05 UTC.
const AT_MS: i64 = 1_796_040_300_000;

fn def(name: &str, function: MetricFunction, ranks: &[u32]) -> Arc<MetricDefinition> {
    Arc::new(MetricDefinition {
        name: name.into(),
        scope: Scope::Service,
        function,
        percentile_ranks: ranks.to_vec(),
    })
}

fn defs() -> Vec<Arc<MetricDefinition>> {
    vec![
        def("m_avg", MetricFunction::Avg, &[]),
        def("m_sum_per_min", MetricFunction::SumPerMin, &[]),
        def("m_max", MetricFunction::Max, &[]),
        def("m_min", MetricFunction::Min, &[]),
        def(
            "m_pct",
            MetricFunction::SumHistogramPercentile,
            &[50, 90, 99],
        ),
        def("m_labeled", MetricFunction::SumLabeled, &[]),
    ]
}

/// Emissions `i` of a deterministic stream, over three minutes and two services.
fn emission(i: i64) -> Vec<MetricEmission> {
    let minute = TimeBucket::from_epoch_ms(AT_MS + (i % 3) * 60_000, Step::Minute).unwrap();
    let entity = MeterEntity::service(
        if i % 2 == 0 { SERVICE } else { "other" },
        Layer::WECHAT_MINI_PROGRAM,
    );
    let mut labels = Labels::new();
    labels.insert("code", (i % 4).to_string());
    defs()
        .into_iter()
        .map(|d| {
            let value = match d.function {
                MetricFunction::SumHistogramPercentile => {
                    MeterValue::Histogram(vec![HistogramGroup {
                        labels: Labels::new(),
                        buckets: vec![(100, i % 5), (1000, i % 7), (i64::MAX, 1)],
                    }])
                }
                MetricFunction::SumLabeled => MeterValue::Labeled(vec![(labels.clone(), i)]),
                _ => MeterValue::Single(i * 37 % 1000),
            };
            MetricEmission {
                metric: d,
                entity: entity.clone(),
                minute,
                value,
            }
        })
        .collect()
}

fn answers(store: &dyn Storage) -> Vec<String> {
    let mut out = Vec::new();
    for d in defs() {
        for service in [SERVICE, "other"] {
            let id = MeterEntity::service(service, Layer::WECHAT_MINI_PROGRAM).id();
            for step in [Step::Minute, Step::Hour, Step::Day] {
                let buckets: Vec<TimeBucket> = (0..3)
                    .map(|m| {
                        TimeBucket::from_epoch_ms(AT_MS + m * 60_000, Step::Minute)
                            .unwrap()
                            .to_step(step)
                    })
                    .collect();
                let values = store.read_metric(&d, &id, &buckets).unwrap();
                out.push(format!("{} {service} {step:?} {values:?}", d.name));
            }
        }
    }
    out
}

#[test]
fn two_nodes_writing_the_same_minutes_store_what_one_node_would() {
    let Some(db) = TestDatabase::create() else {
        return;
    };
    let a = PostgresStorage::connect(&db.config("node-a")).unwrap();
    let b = PostgresStorage::connect(&db.config("node-b")).unwrap();
    let one = MemStorage::new();
    for i in 0..200 {
        one.write_metrics(emission(i)).unwrap();
        // Alternating nodes, each flushing at its own pace, both writing every minute.
        let node = if i % 2 == 0 { &a } else { &b };
        node.write_metrics(emission(i)).unwrap();
        if i % 17 == 0 {
            node.flush().unwrap();
        }
    }
    one.flush().unwrap();
    let expected = answers(&one);
    // Before the last flushes each node sees only its own unflushed part; after, both see all.
    a.flush().unwrap();
    b.flush().unwrap();
    assert_eq!(answers(&a), expected);
    assert_eq!(answers(&b), expected);
    // A third node that never wrote answers the same.
    let c = PostgresStorage::connect(&db.config("node-c")).unwrap();
    assert_eq!(answers(&c), expected);
}

fn log(at_ms: i64, content: &str) -> LogRecord {
    LogRecord {
        service: SERVICE.into(),
        service_instance: String::new(),
        endpoint: String::new(),
        layer: Layer::WECHAT_MINI_PROGRAM,
        timestamp_ms: at_ms,
        trace_id: None,
        segment_id: None,
        span_id: None,
        content_type: ContentType::Text,
        content: content.into(),
        tags: vec![("level".into(), "ERROR".into())],
    }
}

#[test]
fn each_node_keeps_its_own_marks_across_restarts() {
    let Some(db) = TestDatabase::create() else {
        return;
    };
    let a = PostgresStorage::connect(&db.config("node-a")).unwrap();
    let b = PostgresStorage::connect(&db.config("node-b")).unwrap();
    a.write_logs_through(7, vec![log(AT_MS, "a")]).unwrap();
    b.write_logs_through(3, vec![log(AT_MS, "b")]).unwrap();
    a.write_metrics_through(9, emission(1)).unwrap();
    assert_eq!(
        a.applied_seqs().unwrap().metrics,
        0,
        "not stored before a flush"
    );
    a.flush().unwrap();
    assert_eq!(a.applied_seqs().unwrap().logs, 7);
    assert_eq!(a.applied_seqs().unwrap().metrics, 9);
    assert_eq!(b.applied_seqs().unwrap().logs, 3);
    assert_eq!(b.applied_seqs().unwrap().metrics, 0);
    drop(a);
    let a = PostgresStorage::connect(&db.config("node-a")).unwrap();
    let marks = a.applied_seqs().unwrap();
    assert_eq!((marks.logs, marks.metrics), (7, 9));
    // Both nodes' logs are visible from either.
    assert_eq!(b.query_logs(&LogQuery::default()).unwrap().len(), 2);
}

#[test]
fn retention_drops_whole_day_partitions_and_touches_nothing_younger() {
    let Some(db) = TestDatabase::create() else {
        return;
    };
    let store = PostgresStorage::connect(&db.config("node-a")).unwrap();
    // The injected clock: a fixed "now" in the middle of a day.
    let now = (AT_MS / DAY_MS) * DAY_MS + DAY_MS / 2;
    let today = (now / DAY_MS) as i32;
    store
        .write_logs(vec![
            log(now - 5 * DAY_MS, "five days old"),
            log(now - 4 * DAY_MS, "four days old"),
            log(now - 3 * DAY_MS - 60_000, "just past the ttl"),
            log(now - 3 * DAY_MS + 60_000, "just inside the ttl"),
            log(now - DAY_MS, "yesterday"),
            log(now, "now"),
        ])
        .unwrap();
    assert_eq!(
        store.day_partitions("logs").unwrap(),
        vec![today - 5, today - 4, today - 3, today - 1, today]
    );
    let removed = store
        .remove_expired(
            &RetentionPolicy {
                metrics_days: 7,
                records_days: 3,
            },
            now,
        )
        .unwrap();
    assert_eq!(removed, 3);
    // Days wholly past the TTL are gone as partitions; the cutoff's own day stays.
    assert_eq!(
        store.day_partitions("logs").unwrap(),
        vec![today - 3, today - 1, today]
    );
    let mut kept: Vec<String> = store
        .query_logs(&LogQuery::default())
        .unwrap()
        .into_iter()
        .map(|l| l.record.content)
        .collect();
    kept.sort();
    assert_eq!(kept, vec!["just inside the ttl", "now", "yesterday"]);
    // A late write into a dropped day makes its partition again rather than failing.
    store
        .write_logs(vec![log(now - 5 * DAY_MS, "late")])
        .unwrap();
    assert!(store.day_partitions("logs").unwrap().contains(&(today - 5)));
}

fn occurrence(i: i64) -> IssueOccurrence {
    IssueOccurrence {
        fingerprint: "0123456789abcdef0123456789abcdef".into(),
        service: SERVICE.into(),
        layer: Layer::WECHAT_MINI_PROGRAM,
        kind: "js".into(),
        error_type: "TypeError".into(),
        title: "TypeError: boom".into(),
        culprit: "onLoad (pages/a.js)".into(),
        time_ms: AT_MS + (i % 3) * 60_000,
        version: "1.0.0".into(),
        page: "pages/a".into(),
        message: "boom".into(),
        stack: "    at Object.onLoad (pages/a.js:12:5)".into(),
        session_id: None,
        user_id: None,
        trace_id: None,
    }
}

fn rum_error(node: &str, i: i64) -> RumEvent {
    RumEvent {
        event_type: Some(RumEventType::Error),
        id: format!("{node}-{i}"),
        time_ms: AT_MS + i,
        service: SERVICE.into(),
        session_id: "shared-session".into(),
        ..RumEvent::default()
    }
}

/// Issue counters and session summaries are read, folded and rewritten: two nodes doing that to
/// the same rows at once must not lose each other's updates.
#[test]
fn two_nodes_updating_one_issue_and_one_session_lose_nothing() {
    let Some(db) = TestDatabase::create() else {
        return;
    };
    const EACH: i64 = 60;
    let nodes = ["node-a", "node-b"].map(|name| {
        (
            name,
            Arc::new(PostgresStorage::connect(&db.config(name)).unwrap()),
        )
    });
    let workers: Vec<_> = nodes
        .iter()
        .map(|(name, store)| {
            let (name, store) = (*name, store.clone());
            std::thread::spawn(move || {
                for i in 0..EACH {
                    store
                        .record_issue_occurrences(
                            Some(i as u64 + 1),
                            vec![occurrence(i)],
                            &skylark_issues::record_occurrence,
                        )
                        .unwrap();
                    store.write_rum_events(vec![rum_error(name, i)]).unwrap();
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().unwrap();
    }
    let store = &nodes[0].1;
    let issue = store
        .get_issue("0123456789abcdef0123456789abcdef")
        .unwrap()
        .unwrap();
    assert_eq!(issue.count, 2 * EACH as u64);
    let per_minute: u64 = store
        .issue_minutes(&issue.id, AT_MS - 60_000, AT_MS + 10 * 60_000)
        .unwrap()
        .into_iter()
        .map(|(_, n)| n)
        .sum();
    assert_eq!(per_minute, 2 * EACH as u64);
    let session = store.rum_session("shared-session").unwrap().unwrap();
    assert_eq!(session.error_count, 2 * EACH as u64);
}

/// Schema version 1 kept RUM events and alarm records in `kv`; version 2 keeps them in
/// day partitions. A database left by version 1 has its rows moved at start-up, and they read
/// back as before.
#[test]
fn rows_an_earlier_schema_kept_in_kv_move_into_day_partitions() {
    let Some(db) = TestDatabase::create() else {
        return;
    };
    {
        let store = PostgresStorage::connect(&db.config("node-a")).unwrap();
        store
            .write_rum_events((0..3).map(|i| rum_error("node-a", i)).collect())
            .unwrap();
    }
    // What version 1 left: the same rows in `kv`, no day partitions.
    db.execute(
        "INSERT INTO kv SELECT k, v FROM kv_by_day; DELETE FROM kv_by_day;
         DELETE FROM skylark_schema_version WHERE version = 2; DROP TABLE kv_by_day;",
    )
    .unwrap();
    let timed_in_kv = "SELECT count(*) FROM kv WHERE k >= 'R'::bytea AND k < 'S'::bytea
                          OR k >= 'r'::bytea AND k < 's'::bytea";
    assert!(db.count(timed_in_kv).unwrap() > 0);
    let store = PostgresStorage::connect(&db.config("node-a")).unwrap();
    assert_eq!(db.count(timed_in_kv).unwrap(), 0);
    assert_eq!(
        store.day_partitions("kv_by_day").unwrap(),
        vec![(AT_MS / DAY_MS) as i32]
    );
    let page = store
        .query_rum_events(&RumQuery {
            session_id: Some("shared-session".into()),
            limit: 10,
            ..RumQuery::default()
        })
        .unwrap();
    assert_eq!(page.events.len(), 3);
    assert_eq!(
        store
            .rum_session("shared-session")
            .unwrap()
            .unwrap()
            .error_count,
        3
    );
}

#[test]
fn calls_from_inside_async_runtimes_do_not_panic() {
    let Some(db) = TestDatabase::create() else {
        return;
    };
    let store = Arc::new(PostgresStorage::connect(&db.config("node-a")).unwrap());
    store.write_logs(vec![log(AT_MS, "x")]).unwrap();
    // A current-thread runtime (as in #[tokio::test]) and a worker of a multi-thread one.
    let current = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let s = store.clone();
    let n = current.block_on(async move { s.query_logs(&LogQuery::default()).unwrap().len() });
    assert_eq!(n, 1);
    let multi = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let s = store.clone();
    let task = multi.spawn(async move {
        s.flush().unwrap();
        s.query_logs(&LogQuery::default()).unwrap().len()
    });
    let n = multi.block_on(task).unwrap();
    assert_eq!(n, 1);
    // Dropping the last handle inside a runtime must not panic either.
    multi.block_on(async move { drop(store) });
}
