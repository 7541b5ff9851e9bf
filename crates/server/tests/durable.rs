//! The durable sink (`skylark_wal::durable`) over the server's real pipeline: what is logged is
//! applied once, replay after a crash stores only what storage lacks, and entries written by
//! earlier versions (bincode, see [`legacy`]) still replay.

use skylark_core::{
    IngestError, IngestSink, LogBody, LogData, MeterEntity, MetricBatch, MetricValue, RumBatch,
    RumEvent, ServiceId, Step, TimeBucket,
};
use skylark_server::pipeline::{Clock, Effects, Pipeline};
use skylark_storage::{LogQuery, MemStorage, Storage};
use skylark_wal::durable::{Durability, DurabilitySettings, DurableSink, ENTRY_FORMAT_POSTCARD};
use skylark_wal::wal::Payload;
use skylark_wal::Wal;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

const SERVICE: &str = "durable-test";

/// The write-ahead log as versions before postcard wrote it, frozen here so replay tests build
/// old folders byte for byte: records `len(4, LE) | crc32(4, LE) | seq(8, LE) | payload`, `len`
/// and the CRC covering seq and payload, the payload the bincode (1.x, default options) of
/// [`EntryRef`].
mod legacy {
    use serde::Serialize;
    use skylark_core::{LogData, MetricBatch, RumEvent, Segment};
    use std::path::Path;

    /// One request as the log kept it.
    #[derive(Serialize)]
    pub struct EntryRef<'a> {
        pub now_ms: i64,
        pub request: RequestRef<'a>,
    }

    /// The request kinds, in their variant order.
    #[allow(dead_code)]
    #[derive(Serialize)]
    pub enum RequestRef<'a> {
        Metrics(&'a MetricBatch),
        Logs(&'a [LogData]),
        Segments(&'a [Segment]),
        CompactMetrics(Bytes<'a>),
        EncodedMetrics {
            content_type: &'a str,
            body: Bytes<'a>,
        },
        Rum(&'a [RumEvent]),
    }

    /// Bytes as one length-prefixed copy.
    pub struct Bytes<'a>(pub &'a [u8]);

    impl Serialize for Bytes<'_> {
        fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            serializer.serialize_bytes(self.0)
        }
    }

    /// The bincode of one entry.
    pub fn entry(now_ms: i64, request: RequestRef<'_>) -> Vec<u8> {
        bincode::serialize(&EntryRef { now_ms, request }).unwrap()
    }

    /// Writes `entries` as one closed segment named after the first, as an earlier version left
    /// it on a clean shutdown.
    pub fn write_segment(dir: &Path, entries: &[(u64, Vec<u8>)]) {
        let mut data = Vec::new();
        for (seq, payload) in entries {
            let mut body = seq.to_le_bytes().to_vec();
            body.extend_from_slice(payload);
            data.extend_from_slice(&(body.len() as u32).to_le_bytes());
            data.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
            data.extend_from_slice(&body);
        }
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join(format!("{:020}.wal", entries[0].0)), data).unwrap();
    }
}

/// Writes every effect of entry `seq` with its marks, as the sink does for a group of one.
fn apply_all(storage: &dyn Storage, seq: u64, effects: Effects) {
    if !effects.issues.is_empty() {
        storage
            .record_issue_occurrences(
                Some(seq),
                effects.issues,
                &skylark_issues::record_occurrence,
            )
            .unwrap();
    }
    if !effects.logs.is_empty() {
        storage.write_logs_through(seq, effects.logs).unwrap();
    }
    if !effects.segments.is_empty() {
        storage
            .write_segments_through(seq, effects.segments)
            .unwrap();
    }
    if !effects.rum.is_empty() {
        storage.write_rum_events_through(seq, effects.rum).unwrap();
    }
    if !effects.traffic.is_empty() {
        storage
            .write_traffic(effects.traffic, effects.now_ms)
            .unwrap();
    }
    storage
        .write_metrics_through(seq, effects.emissions)
        .unwrap();
}

fn pipeline(storage: Arc<dyn Storage>, now_ms: i64) -> Arc<Pipeline> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut config = skylark_server::config::Config::load(None).unwrap();
    config.receiver_otel.rules_path = root.join("otel-rules");
    config.log_analyzer.lal_path = root.join("config/lal");
    config.log_analyzer.mal_path = root.join("config/log-mal-rules");
    let clock: Clock = Arc::new(move || now_ms);
    let grouping = Arc::new(skylark_server::issues::IssueGrouping::new(
        skylark_issues::GrouperSettings::default(),
        storage.clone(),
    ));
    Arc::new(
        Pipeline::new(
            skylark_server::load_rules(&config).unwrap(),
            storage,
            7,
            3,
            clock,
        )
        .with_issues(grouping),
    )
}

/// The one issue the test errors make, and its occurrence count.
fn issue_count(storage: &dyn Storage) -> u64 {
    let query = skylark_storage::IssueQuery {
        service: Some(SERVICE.into()),
        status: None,
        version: None,
        keyword: None,
        start_ms: 0,
        end_ms: i64::MAX,
        order: skylark_storage::IssueOrder::Count,
        offset: 0,
        limit: 10,
    };
    let (issues, total) = storage.query_issues(&query).unwrap();
    assert!(total <= 1, "one error, one issue: {issues:?}");
    issues.first().map(|i| i.count).unwrap_or(0)
}

/// One wechat error log, which LAL stores and counts in `meter_wechat_mp_error_count`.
fn request(i: u64, timestamp_ms: i64) -> Vec<LogData> {
    vec![LogData {
        service: SERVICE.into(),
        timestamp_ms,
        body: LogBody::Text(format!("error {i}")),
        tags: vec![("exception.type".into(), "TypeError".into())],
        source_attributes: vec![("miniprogram.platform".into(), "wechat".into())],
        ..LogData::default()
    }]
}

fn settings(dir: &Path, mode: Durability) -> DurabilitySettings {
    DurabilitySettings {
        mode,
        wal_flush: Duration::from_millis(20),
        wal_dir: dir.to_path_buf(),
    }
}

fn stored_logs(storage: &dyn Storage) -> Vec<String> {
    let query = LogQuery {
        service_id: Some(ServiceId::new(SERVICE, true)),
        ..LogQuery::default()
    };
    let mut contents: Vec<String> = storage
        .query_logs(&query)
        .unwrap()
        .into_iter()
        .map(|l| l.record.content)
        .collect();
    contents.sort();
    contents
}

/// The stored minute value of `metric` for the test service at `now_ms`.
fn service_minute(pipeline: &Pipeline, metric: &str, now_ms: i64) -> Vec<Option<MetricValue>> {
    let def = pipeline
        .definitions()
        .into_iter()
        .find(|d| d.name == metric)
        .unwrap();
    let entity = MeterEntity::service(SERVICE, skylark_core::Layer::WECHAT_MINI_PROGRAM).id();
    let minute = TimeBucket::from_epoch_ms(now_ms, Step::Minute).unwrap();
    pipeline
        .storage()
        .read_metric(&def, &entity, &[minute])
        .unwrap()
}

fn error_count(pipeline: &Pipeline, now_ms: i64) -> i64 {
    match service_minute(pipeline, "meter_wechat_mp_error_count", now_ms).pop() {
        Some(Some(MetricValue::Labeled(values))) => values.iter().map(|(_, v)| v).sum(),
        Some(Some(MetricValue::Single(v))) => v,
        _ => 0,
    }
}

fn segment_files(dir: &Path) -> usize {
    std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
}

#[test]
fn replay_applies_only_what_storage_lacks() {
    let now = chrono::Utc::now().timestamp_millis();
    let dir = tempfile::tempdir().unwrap();
    let storage: Arc<dyn Storage> = Arc::new(MemStorage::new());
    let pipeline = pipeline(storage.clone(), now);
    // Written by an earlier version: bincode entries.
    let entries: Vec<(u64, Vec<u8>)> = (1..=10)
        .map(|seq| {
            let logs = request(seq, 0);
            (seq, legacy::entry(now, legacy::RequestRef::Logs(&logs)))
        })
        .collect();
    legacy::write_segment(dir.path(), &entries);
    // The process before the crash: entries 1-6 fully applied and flushed, entries 7-8 had
    // their log records stored but their metrics were still in memory when it died.
    for seq in 1..=6 {
        let (_, effects) = pipeline.prepare_logs(request(seq, 0), now);
        apply_all(storage.as_ref(), seq, effects);
    }
    storage.flush().unwrap();
    for seq in 7..=8 {
        let (_, effects) = pipeline.prepare_logs(request(seq, 0), now);
        storage.write_logs_through(seq, effects.logs).unwrap();
    }
    let marks = storage.applied_seqs().unwrap();
    assert_eq!((marks.metrics, marks.logs), (6, 8));

    let (sink, report) =
        DurableSink::start(pipeline.clone(), &settings(dir.path(), Durability::Sync)).unwrap();
    assert_eq!(report.entries, 10);
    assert_eq!(report.applied, 4, "{report:?}");
    let logs = stored_logs(storage.as_ref());
    assert_eq!(logs.len(), 10, "{logs:?}");
    let mut distinct = logs.clone();
    distinct.dedup();
    assert_eq!(distinct.len(), 10, "a log was stored twice: {logs:?}");
    assert_eq!(error_count(&pipeline, now), 10);
    // Everything replayed is persisted, so the log is emptied.
    assert_eq!(segment_files(dir.path()), 0);
    assert_eq!(storage.applied_seqs().unwrap().metrics, 10);
    sink.shutdown().unwrap();
}

fn launch_batch(now_ms: i64, value: f64) -> MetricBatch {
    let labels: skylark_core::Labels = [
        ("service_name", SERVICE),
        ("miniprogram_platform", "wechat"),
        ("service_instance_id", "i-1"),
    ]
    .into();
    let mut families = skylark_core::SampleFamilies::default();
    families.insert(
        "miniprogram_app_launch_duration".into(),
        skylark_core::SampleFamily::new(vec![skylark_core::Sample {
            name: "miniprogram_app_launch_duration".into(),
            labels,
            value,
            timestamp_ms: now_ms,
        }]),
    );
    MetricBatch {
        resources: vec![families],
        skipped_points: 0,
        skip_reasons: Default::default(),
        source: None,
    }
}

/// The OTLP/protobuf body of one wechat launch gauge point of `value`.
fn launch_body(now_ms: i64, value: f64) -> Vec<u8> {
    use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
    use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
    use opentelemetry_proto::tonic::metrics::v1::{
        metric, number_data_point, Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics,
    };
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use prost::Message;
    let attribute = |k: &str, v: &str| KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(v.into())),
        }),
        ..Default::default()
    };
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: vec![
                    attribute("service.name", SERVICE),
                    attribute("miniprogram.platform", "wechat"),
                    attribute("service.instance.id", "i-1"),
                ],
                ..Default::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                metrics: vec![Metric {
                    name: "miniprogram.app_launch.duration".into(),
                    data: Some(metric::Data::Gauge(Gauge {
                        data_points: vec![NumberDataPoint {
                            time_unix_nano: now_ms as u64 * 1_000_000,
                            value: Some(number_data_point::Value::AsDouble(value)),
                            ..Default::default()
                        }],
                    })),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
    .encode_to_vec()
}

#[test]
fn replay_counts_each_error_once_in_its_issue() {
    let now = chrono::Utc::now().timestamp_millis();
    let dir = tempfile::tempdir().unwrap();
    let storage: Arc<dyn Storage> = Arc::new(MemStorage::new());
    let pipeline = pipeline(storage.clone(), now);
    // Written by an earlier version: bincode entries.
    let entries: Vec<(u64, Vec<u8>)> = (1..=10)
        .map(|seq| {
            let logs = request(seq, 0);
            (seq, legacy::entry(now, legacy::RequestRef::Logs(&logs)))
        })
        .collect();
    legacy::write_segment(dir.path(), &entries);
    // Before the crash: entries 1-6 fully applied; 7-8 had their issue updates stored but
    // not their logs; 9-10 nothing.
    for seq in 1..=6 {
        let (_, effects) = pipeline.prepare_logs(request(seq, 0), now);
        apply_all(storage.as_ref(), seq, effects);
    }
    storage.flush().unwrap();
    for seq in 7..=8 {
        let (_, effects) = pipeline.prepare_logs(request(seq, 0), now);
        assert_eq!(effects.issues.len(), 1);
        storage
            .record_issue_occurrences(
                Some(seq),
                effects.issues,
                &skylark_issues::record_occurrence,
            )
            .unwrap();
    }
    assert_eq!(issue_count(storage.as_ref()), 8);
    let marks = storage.applied_seqs().unwrap();
    assert_eq!((marks.logs, marks.issues), (6, 8));

    let (sink, report) =
        DurableSink::start(pipeline.clone(), &settings(dir.path(), Durability::Sync)).unwrap();
    assert_eq!(report.applied, 4, "{report:?}");
    assert_eq!(stored_logs(storage.as_ref()).len(), 10);
    assert_eq!(
        issue_count(storage.as_ref()),
        10,
        "an occurrence was counted twice or lost"
    );
    assert_eq!(storage.applied_seqs().unwrap().issues, 10);
    // A second start replays nothing more.
    sink.shutdown().unwrap();
    let (sink, _) = DurableSink::start(pipeline, &settings(dir.path(), Durability::Sync)).unwrap();
    assert_eq!(issue_count(storage.as_ref()), 10);
    sink.shutdown().unwrap();
}

#[test]
fn metrics_entries_replay_in_each_encoding() {
    let now = chrono::Utc::now().timestamp_millis();
    let dir = tempfile::tempdir().unwrap();
    let old = launch_batch(now, 1000.0);
    let compact = skylark_wal::batch_codec::encode(&launch_batch(now, 2000.0));
    let body = launch_body(now, 3000.0);
    let requests = [
        legacy::RequestRef::Metrics(&old),
        legacy::RequestRef::CompactMetrics(legacy::Bytes(&compact)),
        legacy::RequestRef::EncodedMetrics {
            content_type: "application/x-protobuf",
            body: legacy::Bytes(&body),
        },
    ];
    let entries: Vec<(u64, Vec<u8>)> = (1..)
        .zip(requests)
        .map(|(seq, request)| (seq, legacy::entry(now, request)))
        .collect();
    legacy::write_segment(dir.path(), &entries);

    let storage: Arc<dyn Storage> = Arc::new(MemStorage::new());
    let pipeline = pipeline(storage.clone(), now);
    let (sink, report) =
        DurableSink::start(pipeline.clone(), &settings(dir.path(), Durability::Sync)).unwrap();
    assert_eq!((report.applied, report.undecodable), (3, 0), "{report:?}");
    let value = service_minute(&pipeline, "meter_wechat_mp_app_launch_duration", now);
    // avg of the three launches: every entry was decoded and applied.
    assert_eq!(value, vec![Some(MetricValue::Single(2000))]);
    sink.shutdown().unwrap();
}

#[tokio::test]
async fn acknowledged_requests_are_logged_applied_and_numbered_after_the_replayed_ones() {
    let now = chrono::Utc::now().timestamp_millis();
    let dir = tempfile::tempdir().unwrap();
    let storage: Arc<dyn Storage> = Arc::new(MemStorage::new());
    let pipeline = pipeline(storage.clone(), now);
    let (sink, _) =
        DurableSink::start(pipeline.clone(), &settings(dir.path(), Durability::Sync)).unwrap();
    let sink = Arc::new(sink);
    let mut tasks = Vec::new();
    for i in 0..20 {
        let sink = sink.clone();
        tasks.push(tokio::spawn(async move {
            sink.ingest_logs(request(i, 0)).await
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap().unwrap().accepted, 1);
    }
    // Answered means: in the log on disk, and visible to queries.
    let wal = Wal::open(dir.path()).unwrap();
    let mut seqs = Vec::new();
    wal.replay(&mut |seq, payload| {
        // Every new entry is postcard behind its tag, never the old untagged bincode.
        assert!(
            matches!(
                payload,
                Payload::Tagged {
                    format: ENTRY_FORMAT_POSTCARD,
                    ..
                }
            ),
            "{payload:?}"
        );
        seqs.push(seq);
    })
    .unwrap();
    assert_eq!(seqs, (1..=20).collect::<Vec<u64>>());
    assert_eq!(stored_logs(storage.as_ref()).len(), 20);
    assert_eq!(error_count(&pipeline, now), 20);
    assert_eq!(issue_count(storage.as_ref()), 20);

    tokio::task::spawn_blocking(move || sink.shutdown())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(segment_files(dir.path()), 0);
    let marks = storage.applied_seqs().unwrap();
    assert_eq!((marks.metrics, marks.logs), (20, 20));

    // A restart numbers new entries after everything already applied.
    let (sink, report) =
        DurableSink::start(pipeline.clone(), &settings(dir.path(), Durability::Sync)).unwrap();
    assert_eq!(report.entries, 0);
    sink.ingest_logs(request(99, 0)).await.unwrap();
    let wal = Wal::open(dir.path()).unwrap();
    assert_eq!(wal.last_seq(), Some(21));
    assert_eq!(error_count(&pipeline, now), 21);
    tokio::task::spawn_blocking(move || sink.shutdown())
        .await
        .unwrap()
        .unwrap();
}

fn rum_error(id: &str, now_ms: i64) -> RumEvent {
    RumEvent {
        event_type: Some(skylark_core::RumEventType::Error),
        id: id.into(),
        time_ms: now_ms,
        service: SERVICE.into(),
        source: "miniprogram".into(),
        session_id: "s1".into(),
        message: format!("error {id}"),
        detail: skylark_core::rum::RumDetail::Error(skylark_core::rum::RumErrorDetail {
            source: "app".into(),
            ..Default::default()
        }),
        ..RumEvent::default()
    }
}

#[tokio::test]
async fn rum_batches_are_logged_and_replayed_into_a_store_that_lost_them() {
    let now = chrono::Utc::now().timestamp_millis();
    let dir = tempfile::tempdir().unwrap();
    let storage: Arc<dyn Storage> = Arc::new(MemStorage::new());
    let (sink, _) = DurableSink::start(
        pipeline(storage.clone(), now),
        &settings(dir.path(), Durability::Sync),
    )
    .unwrap();
    let batch = RumBatch {
        events: vec![rum_error("e1", now), rum_error("e2", now)],
    };
    assert_eq!(sink.ingest_rum(batch).await.unwrap().accepted, 2);
    let page = |storage: &dyn Storage| {
        storage
            .query_rum_events(&skylark_storage::RumQuery {
                limit: 10,
                ..Default::default()
            })
            .unwrap()
            .total
    };
    assert_eq!(page(storage.as_ref()), 2, "answered means stored");
    assert_eq!(storage.applied_seqs().unwrap().rum, 1);
    // The process dies before any flush: a fresh store gets everything back from the log.
    drop(sink);
    let fresh: Arc<dyn Storage> = Arc::new(MemStorage::new());
    let pipeline = pipeline(fresh.clone(), now);
    let (sink, report) =
        DurableSink::start(pipeline.clone(), &settings(dir.path(), Durability::Sync)).unwrap();
    assert_eq!((report.entries, report.applied), (1, 1), "{report:?}");
    assert_eq!(page(fresh.as_ref()), 2);
    let session = fresh
        .rum_session("s1")
        .unwrap()
        .expect("the session is rebuilt");
    assert_eq!(session.error_count, 2);
    assert_eq!(stored_logs(fresh.as_ref()), ["error e1", "error e2"]);
    assert_eq!(error_count(&pipeline, now), 2);
    tokio::task::spawn_blocking(move || sink.shutdown())
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn relaxed_mode_answers_and_persists_on_shutdown() {
    let now = chrono::Utc::now().timestamp_millis();
    let dir = tempfile::tempdir().unwrap();
    let storage: Arc<dyn Storage> = Arc::new(MemStorage::new());
    let pipeline = pipeline(storage.clone(), now);
    let (sink, _) =
        DurableSink::start(pipeline.clone(), &settings(dir.path(), Durability::Relaxed)).unwrap();
    assert_eq!(sink.mode(), Durability::Relaxed);
    for i in 0..5 {
        sink.ingest_logs(request(i, 0)).await.unwrap();
    }
    assert_eq!(stored_logs(storage.as_ref()).len(), 5);
    sink.persist().unwrap();
    tokio::task::spawn_blocking(move || sink.shutdown())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(storage.applied_seqs().unwrap().metrics, 5);
    assert_eq!(error_count(&pipeline, now), 5);
}

#[tokio::test]
async fn requests_that_change_nothing_skip_the_log() {
    let now = chrono::Utc::now().timestamp_millis();
    let dir = tempfile::tempdir().unwrap();
    let storage: Arc<dyn Storage> = Arc::new(MemStorage::new());
    let pipeline = pipeline(storage.clone(), now);
    let (sink, _) = DurableSink::start(pipeline, &settings(dir.path(), Durability::Sync)).unwrap();
    // Older than the 3-day record TTL: rejected, nothing to make durable.
    let report = sink
        .ingest_logs(request(1, now - 10 * 86_400_000))
        .await
        .unwrap();
    assert_eq!((report.accepted, report.rejected), (0, 1));
    assert_eq!(Wal::open(dir.path()).unwrap().last_seq(), None);
    tokio::task::spawn_blocking(move || sink.shutdown())
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn requests_after_shutdown_are_refused_as_busy() {
    let now = chrono::Utc::now().timestamp_millis();
    let dir = tempfile::tempdir().unwrap();
    let storage: Arc<dyn Storage> = Arc::new(MemStorage::new());
    let (sink, _) = DurableSink::start(
        pipeline(storage, now),
        &settings(dir.path(), Durability::Sync),
    )
    .unwrap();
    let sink = Arc::new(sink);
    let s = sink.clone();
    tokio::task::spawn_blocking(move || s.shutdown())
        .await
        .unwrap()
        .unwrap();
    let err = sink.ingest_logs(request(1, 0)).await.unwrap_err();
    assert!(matches!(err, IngestError::Busy(_)), "{err}");
}
