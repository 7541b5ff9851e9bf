//! Write-ahead-log marks: stored atomically with the data they cover, so a replay after a crash
//! knows exactly which entries' effects are already persisted.
use skylark_core::{
    ContentType, Layer, LogRecord, MeterEntity, MeterValue, MetricDefinition, MetricEmission,
    MetricFunction, MetricValue, Scope, Segment, SegmentRecord, Span, Step, TimeBucket,
};
use skylark_storage::{
    AppliedSeqs, LogQuery, MemStorage, SledConfig, SledStorage, Storage, TraceQuery,
};
use std::path::Path;

const SERVICE: &str = "mini-program-sim-wechat";
const MINUTE: TimeBucket = TimeBucket {
    step: Step::Minute,
    value: 202611291205,
};
/// 2026-11-29 12:05 UTC in epoch ms, the minute above.
const AT_MS: i64 = 1_796_040_300_000;

fn open(dir: &Path) -> SledStorage {
    SledStorage::open(SledConfig::new(dir.join("db"))).unwrap()
}

fn sum_metric() -> MetricDefinition {
    MetricDefinition {
        name: "meter_wechat_mp_error_count".into(),
        scope: Scope::Service,
        function: MetricFunction::Sum,
        percentile_ranks: vec![],
    }
}

fn one(m: &MetricDefinition) -> MetricEmission {
    MetricEmission {
        metric: m.clone().into(),
        entity: MeterEntity::service(SERVICE, Layer::WECHAT_MINI_PROGRAM),
        minute: MINUTE,
        value: MeterValue::Single(1),
    }
}

fn read(store: &dyn Storage, m: &MetricDefinition) -> Option<MetricValue> {
    let id = MeterEntity::service(SERVICE, Layer::WECHAT_MINI_PROGRAM).id();
    store
        .read_metric(m, &id, &[MINUTE])
        .unwrap()
        .pop()
        .flatten()
}

fn log(content: &str) -> LogRecord {
    LogRecord {
        service: SERVICE.into(),
        service_instance: String::new(),
        endpoint: String::new(),
        layer: Layer::WECHAT_MINI_PROGRAM,
        timestamp_ms: AT_MS,
        trace_id: None,
        segment_id: None,
        span_id: None,
        content_type: ContentType::Text,
        content: content.into(),
        tags: vec![],
    }
}

fn segment(id: &str) -> SegmentRecord {
    let segment = Segment {
        trace_id: "t1".into(),
        segment_id: id.into(),
        service: SERVICE.into(),
        service_instance: "i1".into(),
        spans: vec![Span {
            span_id: 0,
            parent_span_id: -1,
            start_time_ms: AT_MS,
            end_time_ms: AT_MS + 5,
            operation_name: "/index".into(),
            ..Default::default()
        }],
        ..Default::default()
    };
    SegmentRecord::from_segment(&segment).unwrap()
}

#[test]
fn a_new_store_has_applied_nothing() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(
        open(dir.path()).applied_seqs().unwrap(),
        AppliedSeqs::default()
    );
    assert_eq!(
        MemStorage::new().applied_seqs().unwrap(),
        AppliedSeqs::default()
    );
}

#[test]
fn metrics_mark_is_stored_with_the_flush_that_holds_the_rows() {
    let dir = tempfile::tempdir().unwrap();
    let m = sum_metric();
    {
        let store = open(dir.path());
        store.write_metrics_through(1, vec![one(&m)]).unwrap();
        store
            .write_metrics_through(2, vec![one(&m), one(&m)])
            .unwrap();
        // Aggregated but not stored: the mark must not claim it yet.
        assert_eq!(store.applied_seqs().unwrap().metrics, 0);
        store.flush().unwrap();
        assert_eq!(store.applied_seqs().unwrap().metrics, 2);
        // An entry with no emissions still moves the mark.
        store.write_metrics_through(3, vec![]).unwrap();
        store.flush().unwrap();
        assert_eq!(store.applied_seqs().unwrap().metrics, 3);
    }
    let store = open(dir.path());
    assert_eq!(store.applied_seqs().unwrap().metrics, 3);
    assert_eq!(read(&store, &m), Some(MetricValue::Single(3)));
}

#[test]
fn dropping_the_store_stores_the_mark_with_the_last_rows() {
    let dir = tempfile::tempdir().unwrap();
    let m = sum_metric();
    {
        let store = open(dir.path());
        store.write_metrics_through(9, vec![one(&m)]).unwrap();
    }
    let store = open(dir.path());
    assert_eq!(store.applied_seqs().unwrap().metrics, 9);
    assert_eq!(read(&store, &m), Some(MetricValue::Single(1)));
}

#[test]
fn record_marks_are_stored_with_the_records() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(dir.path());
        store
            .write_logs_through(4, vec![log("a"), log("b")])
            .unwrap();
        store
            .write_segments_through(5, vec![segment("s1")])
            .unwrap();
        // Readable at once, but in the open run: the marks wait for it to be sealed.
        assert_eq!(store.get_trace("t1").unwrap().len(), 1);
        let marks = store.applied_seqs().unwrap();
        assert_eq!((marks.logs, marks.segments, marks.metrics), (0, 0, 0));
        store.flush().unwrap();
        let marks = store.applied_seqs().unwrap();
        assert_eq!((marks.logs, marks.segments), (4, 5));
    }
    let store = open(dir.path());
    let marks = store.applied_seqs().unwrap();
    assert_eq!((marks.logs, marks.segments), (4, 5));
    let logs = store
        .query_logs(&LogQuery {
            start_ms: Some(AT_MS - 1),
            end_ms: Some(AT_MS + 1),
            limit: 10,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(logs.len(), 2);
    let segments = store
        .query_segments(&TraceQuery {
            start_ms: Some(AT_MS - 1),
            end_ms: Some(AT_MS + 10),
            limit: 10,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(segments.len(), 1);
}

#[test]
fn memory_storage_keeps_marks_too() {
    let store = MemStorage::new();
    let m = sum_metric();
    store.write_metrics_through(7, vec![one(&m)]).unwrap();
    store.write_logs_through(8, vec![log("x")]).unwrap();
    store.flush().unwrap();
    let marks = store.applied_seqs().unwrap();
    assert_eq!((marks.metrics, marks.logs, marks.segments), (7, 8, 0));
}
