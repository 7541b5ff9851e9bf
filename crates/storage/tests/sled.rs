//! Behaviour only a persistent backend has: data survives reopening, drop flushes, and traffic
//! rows are rewritten at most once a minute.
use skylark_core::traffic::{InstanceTraffic, ServiceTraffic, Traffic};
use skylark_core::{
    ContentType, InstanceId, Layer, LogRecord, MeterEntity, MeterValue, MetricDefinition,
    MetricEmission, MetricFunction, MetricValue, Scope, Segment, SegmentRecord, ServiceId, Span,
    Step, TimeBucket,
};
use skylark_storage::{LogQuery, SledConfig, SledStorage, Storage, TraceQuery};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

const SERVICE: &str = "mini-program-sim-wechat";
const MINUTE: TimeBucket = TimeBucket {
    step: Step::Minute,
    value: 202611291205,
};

fn open(dir: &Path) -> SledStorage {
    SledStorage::open(SledConfig::new(dir.join("db"))).unwrap()
}

fn metric(function: MetricFunction) -> MetricDefinition {
    MetricDefinition {
        name: "meter_wechat_mp_app_launch_duration".into(),
        scope: Scope::Service,
        function,
        percentile_ranks: vec![],
    }
}

fn emission(m: &MetricDefinition, value: i64) -> MetricEmission {
    MetricEmission {
        metric: m.clone().into(),
        entity: MeterEntity::service(SERVICE, Layer::WECHAT_MINI_PROGRAM),
        minute: MINUTE,
        value: MeterValue::Single(value),
    }
}

fn read(store: &dyn Storage, m: &MetricDefinition, bucket: TimeBucket) -> Option<MetricValue> {
    let id = ServiceId::new(SERVICE, true);
    store
        .read_metric(m, id.as_str(), &[bucket])
        .unwrap()
        .pop()
        .flatten()
}

fn instance(name: &str) -> Traffic {
    Traffic::Instance(InstanceTraffic {
        service_name: SERVICE.into(),
        name: name.into(),
        layer: Layer::WECHAT_MINI_PROGRAM,
    })
}

#[test]
fn reopening_keeps_rows_and_entities_and_keeps_merging() {
    let dir = tempfile::tempdir().unwrap();
    let m = metric(MetricFunction::Avg);
    {
        let store = open(dir.path());
        store.write_metrics(vec![emission(&m, 3)]).unwrap();
        store
            .write_traffic(
                vec![
                    Traffic::Service(ServiceTraffic {
                        name: SERVICE.into(),
                        layer: Layer::WECHAT_MINI_PROGRAM,
                    }),
                    instance("sim"),
                ],
                1_000,
            )
            .unwrap();
        store.flush().unwrap();
    }
    let store = open(dir.path());
    assert_eq!(read(&store, &m, MINUTE), Some(MetricValue::Single(3)));
    let services = store
        .list_services(Some(Layer::WECHAT_MINI_PROGRAM))
        .unwrap();
    assert_eq!(services.len(), 1);
    assert_eq!(services[0].name, SERVICE);
    assert_eq!(services[0].layers, vec![Layer::WECHAT_MINI_PROGRAM]);
    let svc = ServiceId::new(SERVICE, true);
    let inst = store
        .get_instance(&InstanceId::new(&svc, "sim"))
        .unwrap()
        .unwrap();
    assert_eq!((inst.name.as_str(), inst.last_ping_ms), ("sim", 1_000));

    // Rows written after reopening merge with the stored ones: (3 + 4) / 2 = 3.
    store.write_metrics(vec![emission(&m, 4)]).unwrap();
    store.flush().unwrap();
    assert_eq!(read(&store, &m, MINUTE), Some(MetricValue::Single(3)));
    assert_eq!(
        read(&store, &m, MINUTE.to_step(Step::Day)),
        Some(MetricValue::Single(3))
    );
}

#[test]
fn dropping_the_store_flushes_pending_rows() {
    let dir = tempfile::tempdir().unwrap();
    let m = metric(MetricFunction::Sum);
    {
        let store = open(dir.path());
        store
            .write_metrics(vec![emission(&m, 7), emission(&m, 5)])
            .unwrap();
        store.write_traffic(vec![instance("sim")], 1_000).unwrap();
    }
    let store = open(dir.path());
    assert_eq!(read(&store, &m, MINUTE), Some(MetricValue::Single(12)));
    assert_eq!(
        store
            .list_instances(&ServiceId::new(SERVICE, true), 0)
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn pings_are_persisted_at_most_once_a_minute() {
    let dir = tempfile::tempdir().unwrap();
    let svc = ServiceId::new(SERVICE, true);
    let id = InstanceId::new(&svc, "sim");
    {
        let store = open(dir.path());
        store.write_traffic(vec![instance("sim")], 1_000).unwrap();
        store.flush().unwrap();
        store.write_traffic(vec![instance("sim")], 31_000).unwrap();
        // Served from memory even though the row is not rewritten.
        assert_eq!(
            store.get_instance(&id).unwrap().unwrap().last_ping_ms,
            31_000
        );
    }
    {
        let store = open(dir.path());
        assert_eq!(
            store.get_instance(&id).unwrap().unwrap().last_ping_ms,
            1_000,
            "a ping 30 s after the stored one is not written"
        );
        store.write_traffic(vec![instance("sim")], 61_000).unwrap();
    }
    let store = open(dir.path());
    assert_eq!(
        store.get_instance(&id).unwrap().unwrap().last_ping_ms,
        61_000
    );
}

#[test]
fn reads_during_flushes_never_miss_or_double_count() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(open(dir.path()));
    let m = metric(MetricFunction::Sum);
    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let (store, m, done) = (store.clone(), m.clone(), done.clone());
        std::thread::spawn(move || {
            let mut last = 0;
            while !done.load(Ordering::Acquire) {
                let now = match read(store.as_ref(), &m, MINUTE) {
                    Some(MetricValue::Single(v)) => v,
                    None => 0,
                    other => panic!("unexpected value {other:?}"),
                };
                assert!(now >= last, "value went back from {last} to {now}");
                assert!(now <= 200, "value {now} counts rows twice");
                last = now;
            }
        })
    };
    for _ in 0..200 {
        store.write_metrics(vec![emission(&m, 1)]).unwrap();
        store.flush().unwrap();
    }
    done.store(true, Ordering::Release);
    reader.join().unwrap();
    assert_eq!(
        read(store.as_ref(), &m, MINUTE),
        Some(MetricValue::Single(200))
    );
}

fn log(at: i64, content: &str) -> LogRecord {
    LogRecord {
        service: SERVICE.into(),
        service_instance: "sim".into(),
        endpoint: "pages/index/index".into(),
        layer: Layer::WECHAT_MINI_PROGRAM,
        timestamp_ms: at,
        trace_id: Some("t1".into()),
        segment_id: None,
        span_id: None,
        content_type: ContentType::Text,
        content: content.into(),
        tags: vec![("platform".into(), "wechat".into())],
    }
}

fn segment(id: &str, start: i64) -> SegmentRecord {
    SegmentRecord::from_segment(&Segment {
        trace_id: "t1".into(),
        segment_id: id.into(),
        service: SERVICE.into(),
        service_instance: "-".into(),
        spans: vec![Span {
            start_time_ms: start,
            end_time_ms: start + 40,
            operation_name: "pages/index/index".into(),
            component_id: 10002,
            tags: vec![("http.method".into(), "GET".into())],
            ..Span::default()
        }],
        is_size_limited: false,
    })
    .unwrap()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[test]
fn records_survive_a_crash_right_after_writing() {
    let dir = tempfile::tempdir().unwrap();
    let at = 1_795_500_000_000;
    let written_ids: Vec<String>;
    {
        // No background sync: whatever is on disk got there through the record writes.
        let config = SledConfig {
            flush_every_ms: None,
            ..SledConfig::new(dir.path().join("live"))
        };
        let store = SledStorage::open(config).unwrap();
        store
            .write_logs(vec![log(at, "first"), log(at + 1, "second")])
            .unwrap();
        store
            .write_segments(vec![segment("s1", at), segment("s2", at + 5)])
            .unwrap();
        written_ids = store
            .query_logs(&LogQuery::default())
            .unwrap()
            .into_iter()
            .map(|l| l.id)
            .collect();
        // A copy taken while the store is still open is what a crash would leave behind.
        copy_dir(&dir.path().join("live"), &dir.path().join("db"));
    }
    let store = open(dir.path());
    let logs = store.query_logs(&LogQuery::default()).unwrap();
    assert_eq!(
        logs.iter()
            .map(|l| l.record.content.as_str())
            .collect::<Vec<_>>(),
        vec!["second", "first"]
    );
    assert_eq!(
        logs.iter().map(|l| l.id.clone()).collect::<Vec<_>>(),
        written_ids
    );
    let svc = ServiceId::new(SERVICE, true);
    assert_eq!(logs[0].instance_id, Some(InstanceId::new(&svc, "sim")));
    let by_trace = LogQuery {
        trace_id: Some("t1".into()),
        ..LogQuery::default()
    };
    assert_eq!(store.query_logs(&by_trace).unwrap().len(), 2);

    let trace = store.get_trace("t1").unwrap();
    assert_eq!(trace.len(), 2);
    assert_eq!(trace[0], segment("s1", at));
    assert_eq!(
        store.query_segments(&TraceQuery::default()).unwrap()[0].segment_id,
        "s2"
    );
    assert_eq!(
        store.trace_tag_keys(at, at).unwrap(),
        vec!["http.method".to_string()]
    );
    assert_eq!(
        store.log_tag_values("platform", at, at).unwrap(),
        vec!["wechat"]
    );

    // New logs after reopening get ids that differ from the stored ones.
    store.write_logs(vec![log(at, "third")]).unwrap();
    let mut ids: Vec<String> = store
        .query_logs(&LogQuery::default())
        .unwrap()
        .into_iter()
        .map(|l| l.id)
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 3);
}

#[test]
fn config_defaults_keep_the_cache_small() {
    let config: SledConfig = serde_json::from_str(r#"{"path": "/tmp/x"}"#).unwrap();
    assert_eq!(config.cache_capacity_bytes, 16 * 1024 * 1024);
    assert_eq!(config, SledConfig::new("/tmp/x"));
    assert!(serde_json::from_str::<SledConfig>(r#"{"path": "/x", "cache": 1}"#).is_err());
}

#[test]
fn opening_a_path_that_is_a_file_fails() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("db");
    std::fs::write(&file, b"not a database").unwrap();
    assert!(SledStorage::open(SledConfig::new(&file)).is_err());
}

/// The write-ahead log's record batches are not synced one by one: a crash may lose the latest
/// ones, but never a batch while keeping its mark (the log replays what the marks do not
/// cover), and the flush that moves the metrics mark, which lets the log be cut, makes every
/// batch before it durable.
#[test]
fn marked_record_batches_are_durable_with_the_next_flush_and_never_lose_their_mark() {
    let dir = tempfile::tempdir().unwrap();
    let at = 1_795_500_000_000;
    {
        // No background sync: only the store's own syncs put anything on disk.
        let config = SledConfig {
            flush_every_ms: None,
            ..SledConfig::new(dir.path().join("live"))
        };
        let store = SledStorage::open(config).unwrap();
        store.write_logs_through(1, vec![log(at, "one")]).unwrap();
        store
            .write_segments_through(2, vec![segment("s1", at)])
            .unwrap();
        copy_dir(&dir.path().join("live"), &dir.path().join("before-flush"));
        store.write_metrics_through(2, Vec::new()).unwrap();
        store.flush().unwrap();
        store
            .write_logs_through(3, vec![log(at + 1, "three")])
            .unwrap();
        copy_dir(&dir.path().join("live"), &dir.path().join("after-flush"));
    }
    let contents = |store: &SledStorage| {
        let mut logs: Vec<String> = store
            .query_logs(&LogQuery::default())
            .unwrap()
            .into_iter()
            .map(|l| l.record.content)
            .collect();
        logs.sort();
        (logs, store.get_trace("t1").unwrap().len())
    };
    let before = SledStorage::open(SledConfig::new(dir.path().join("before-flush"))).unwrap();
    let marks = before.applied_seqs().unwrap();
    let (logs, segments) = contents(&before);
    assert_eq!(logs.len(), usize::from(marks.logs >= 1));
    assert_eq!(segments, usize::from(marks.segments >= 2));
    assert_eq!(marks.metrics, 0);

    let after = SledStorage::open(SledConfig::new(dir.path().join("after-flush"))).unwrap();
    let marks = after.applied_seqs().unwrap();
    assert_eq!(marks.metrics, 2);
    let (logs, segments) = contents(&after);
    assert_eq!(segments, 1);
    let expected: Vec<&str> = if marks.logs == 3 {
        vec!["one", "three"]
    } else {
        assert_eq!(marks.logs, 1);
        vec!["one"]
    };
    assert_eq!(logs, expected);
}
