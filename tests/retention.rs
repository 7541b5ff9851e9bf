//! Retention with an injectable clock: the server's sweeper, over real sled storage, while the
//! clock moves a day at a time and each day brings new segments and metric rows. Data older than
//! the TTL disappears and the storage folder stops growing.
use serde_json::json;
use skylark_core::rum::RumUser;
use skylark_core::telemetry::{Telemetry, STORAGE_RETENTION_SWEEP_DURATION_SECONDS};
use skylark_core::{
    Layer, MeterEntity, MeterValue, MetricDefinition, MetricEmission, MetricFunction, Scope,
    SegmentRecord, Step, TimeBucket,
};
use skylark_core::{RumEvent, RumEventType};
use skylark_server::admin::disk_usage;
use skylark_server::pipeline::Clock;
use skylark_server::retention::spawn_sweeper;
use skylark_storage::{
    AlarmQuery, AlarmRecord, RetentionPolicy, RumQuery, SledConfig, SledStorage, Storage,
};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const DAY_MS: i64 = 86_400_000;
/// 2024-01-01T12:00:00Z.
const START_MS: i64 = 1_704_110_400_000;
const TTL_DAYS: u32 = 2;
const DAYS: i64 = 16;
const SEGMENTS_PER_DAY: usize = 300;
const ENTITIES_PER_DAY: usize = 200;

fn metric() -> MetricDefinition {
    MetricDefinition {
        name: "meter_retention_test".into(),
        scope: Scope::ServiceInstance,
        function: MetricFunction::Avg,
        percentile_ranks: Vec::new(),
    }
}

fn segments_of_day(day: i64, at_ms: i64) -> Vec<SegmentRecord> {
    let padding = "x".repeat(600);
    let body: Vec<serde_json::Value> = (0..SEGMENTS_PER_DAY)
        .map(|i| {
            json!({
                "traceId": format!("trace-{day}-{i}"),
                "traceSegmentId": format!("seg-{day}-{i}"),
                "service": "retention-svc",
                "serviceInstance": "retention-instance",
                "spans": [{
                    "operationName": "pages/index/index",
                    "startTime": at_ms - 50,
                    "endTime": at_ms,
                    "spanId": 0,
                    "parentSpanId": -1,
                    "spanLayer": "Http",
                    "spanType": "Exit",
                    "componentId": 10002,
                    "peer": "api.example.com",
                    "tags": [{"key": "padding", "value": padding}]
                }]
            })
        })
        .collect();
    let batch =
        skylark_receiver::decode_segments_json(&serde_json::to_vec(&body).unwrap(), 10).unwrap();
    batch
        .segments
        .iter()
        .map(|s| SegmentRecord::from_segment(s).unwrap())
        .collect()
}

/// One instance per (day, i), so every day creates new rows and new entities.
fn emissions_of_day(day: i64, at_ms: i64) -> Vec<MetricEmission> {
    let minute = TimeBucket::from_epoch_ms(at_ms, Step::Minute).unwrap();
    (0..ENTITIES_PER_DAY)
        .map(|i| MetricEmission {
            metric: metric().into(),
            entity: MeterEntity::instance("retention-svc", format!("i-{day}-{i}"), Layer::GENERAL),
            minute,
            value: MeterValue::Single(42),
        })
        .collect()
}

/// Waits until two sweeps completed after the call, so one ran wholly at the current clock.
/// One RUM error event per (day, i), in session `s-{day}`.
fn rum_events_of_day(day: i64, at_ms: i64) -> Vec<RumEvent> {
    (0..3)
        .map(|i| RumEvent {
            event_type: Some(RumEventType::Error),
            id: format!("rum-{day}-{i}"),
            time_ms: at_ms + i,
            service: "retention-svc".into(),
            session_id: format!("s-{day}"),
            user: RumUser {
                id: "u-1".into(),
                ..RumUser::default()
            },
            ..RumEvent::default()
        })
        .collect()
}

fn alarm_of_day(day: i64, at_ms: i64) -> AlarmRecord {
    AlarmRecord {
        uuid: format!("alarm-{day}"),
        scope: skylark_core::Scope::Service,
        name: "retention-svc".into(),
        id0: "cmV0ZW50aW9uLXN2Yw==.1".into(),
        id1: String::new(),
        rule_name: "retention_rule".into(),
        message: format!("alarm of day {day}"),
        tags: vec![("level".into(), "WARNING".into())],
        layers: vec!["GENERAL".into()],
        start_time_ms: at_ms,
        recovery_time_ms: None,
        expression: "sum(x) > 1".into(),
        snapshot: Vec::new(),
    }
}

/// Ids of the RUM events of session `s-{day}`, and of the alarms of that day.
fn records_of_day(storage: &dyn Storage, day: i64) -> (Vec<String>, Vec<String>) {
    let rum = storage
        .query_rum_events(&RumQuery {
            session_id: Some(format!("s-{day}")),
            limit: 10,
            ..RumQuery::default()
        })
        .unwrap();
    let at_ms = START_MS + day * DAY_MS;
    let alarms = storage
        .query_alarms(&AlarmQuery {
            start_ms: Some(at_ms - DAY_MS / 2),
            end_ms: Some(at_ms + DAY_MS / 2),
            scope: None,
            keyword: None,
            tags: Vec::new(),
            entities: Vec::new(),
            rule_names: Vec::new(),
            layer: None,
            offset: 0,
            limit: 10,
        })
        .unwrap();
    (
        rum.events.into_iter().map(|e| e.id).collect(),
        alarms.into_iter().map(|a| a.uuid).collect(),
    )
}

/// The server's retention sweeper over `storage`, every 20 ms, with a TTL of `TTL_DAYS` and an
/// injected clock starting at `START_MS`.
struct Sweeper {
    now: Arc<AtomicI64>,
    telemetry: Arc<Telemetry>,
    stop_tx: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Sweeper {
    fn start(storage: Arc<dyn Storage>) -> Sweeper {
        let now = Arc::new(AtomicI64::new(START_MS));
        let clock: Clock = {
            let now = now.clone();
            Arc::new(move || now.load(Ordering::SeqCst))
        };
        let telemetry = Arc::new(Telemetry::new());
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let policy = RetentionPolicy {
            metrics_days: TTL_DAYS,
            records_days: TTL_DAYS,
        };
        let task = spawn_sweeper(
            storage,
            policy,
            clock,
            Duration::from_millis(20),
            telemetry.clone(),
            stop_rx,
        );
        Sweeper {
            now,
            telemetry,
            stop_tx,
            task,
        }
    }
}

async fn await_sweep(telemetry: &Telemetry) {
    let sweeps = telemetry.histogram(STORAGE_RETENTION_SWEEP_DURATION_SECONDS, &[]);
    let before = sweeps.count();
    let deadline = Instant::now() + Duration::from_secs(20);
    while sweeps.count() < before + 2 {
        assert!(Instant::now() < deadline, "no retention sweep ran");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_data_disappears_and_disk_use_stops_growing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let storage: Arc<dyn Storage> = Arc::new(
        SledStorage::open(SledConfig {
            cache_capacity_bytes: 4 * 1024 * 1024,
            ..SledConfig::new(&path)
        })
        .unwrap(),
    );
    let Sweeper {
        now,
        telemetry,
        stop_tx,
        task: sweeper,
    } = Sweeper::start(storage.clone());

    let mut sizes = Vec::new();
    for day in 0..DAYS {
        let at_ms = START_MS + day * DAY_MS;
        now.store(at_ms, Ordering::SeqCst);
        let s = storage.clone();
        tokio::task::spawn_blocking(move || {
            s.write_segments(segments_of_day(day, at_ms)).unwrap();
            s.write_metrics(emissions_of_day(day, at_ms)).unwrap();
            s.flush().unwrap();
        })
        .await
        .unwrap();
        await_sweep(&telemetry).await;
        sizes.push(disk_usage(&path));

        // Today's data is there; data past the TTL is gone.
        assert_eq!(
            storage.get_trace(&format!("trace-{day}-0")).unwrap().len(),
            1
        );
        let expired = day - i64::from(TTL_DAYS) - 1;
        if expired >= 0 {
            assert!(
                storage
                    .get_trace(&format!("trace-{expired}-0"))
                    .unwrap()
                    .is_empty(),
                "day {expired}'s trace outlived the TTL on day {day}"
            );
            let old_entity =
                MeterEntity::instance("retention-svc", format!("i-{expired}-0"), Layer::GENERAL);
            let old_minute =
                TimeBucket::from_epoch_ms(START_MS + expired * DAY_MS, Step::Minute).unwrap();
            let old = storage
                .read_metric(&metric(), &old_entity.id(), &[old_minute])
                .unwrap();
            assert_eq!(
                old,
                vec![None],
                "day {expired}'s metric row outlived the TTL"
            );
        }
    }
    let _ = stop_tx.send(true);
    sweeper.await.unwrap();

    let steady = &sizes[(TTL_DAYS as usize + 2)..];
    let first_steady = steady[0];
    let last = *sizes.last().unwrap();
    let peak = *steady.iter().max().unwrap();
    eprintln!(
        "retention figures: TTL {TTL_DAYS} days, {DAYS} days of {SEGMENTS_PER_DAY} segments + \
         {ENTITIES_PER_DAY} instances a day; disk bytes per day: {sizes:?}; steady-state peak \
         {peak}, last {last}"
    );
    // Without retention the folder would hold DAYS days of data; with it, at most the TTL's
    // worth plus what sled has not reclaimed yet.
    assert!(
        peak < first_steady * 2,
        "disk use kept growing after the TTL was reached: {sizes:?}"
    );
}

/// The same sweeper and injected clock over PostgreSQL: each day past the TTL leaves as a
/// dropped day partition (segments, RUM events and alarm records, with their metric rows);
/// younger days stay whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_day_partitions_past_the_ttl_are_dropped() {
    let Some(db) = skylark_storage_postgres::TestDatabase::create() else {
        return;
    };
    let pg =
        Arc::new(skylark_storage_postgres::PostgresStorage::connect(&db.config("node-a")).unwrap());
    let storage: Arc<dyn Storage> = pg.clone();
    let Sweeper {
        now,
        telemetry,
        stop_tx,
        task: sweeper,
    } = Sweeper::start(storage.clone());
    let first_day = (START_MS / DAY_MS) as i32;
    for day in 0..6i64 {
        let at_ms = START_MS + day * DAY_MS;
        now.store(at_ms, Ordering::SeqCst);
        let s = storage.clone();
        tokio::task::spawn_blocking(move || {
            s.write_segments(segments_of_day(day, at_ms)).unwrap();
            s.write_metrics(emissions_of_day(day, at_ms)).unwrap();
            s.write_rum_events(rum_events_of_day(day, at_ms)).unwrap();
            s.write_alarm_records(vec![alarm_of_day(day, at_ms)])
                .unwrap();
            s.flush().unwrap();
        })
        .await
        .unwrap();
        await_sweep(&telemetry).await;
        // Days wholly before the cutoff (now - TTL) are gone; the cutoff's own day and younger stay.
        let today = first_day + day as i32;
        let oldest_kept = (today - TTL_DAYS as i32).max(first_day);
        for table in ["segments", "kv_by_day"] {
            let p = pg.clone();
            let partitions = tokio::task::spawn_blocking(move || p.day_partitions(table).unwrap())
                .await
                .unwrap();
            assert_eq!(
                partitions,
                (oldest_kept..=today).collect::<Vec<_>>(),
                "{table} partitions on day {day}"
            );
        }
        // The cutoff's own day keeps only what is younger than the cutoff (its segment, 50 ms
        // before noon, is not); every later day is whole.
        for kept in (day - i64::from(TTL_DAYS) + 1).max(0)..=day {
            assert_eq!(
                storage.get_trace(&format!("trace-{kept}-0")).unwrap().len(),
                1,
                "day {kept} touched on day {day}"
            );
            let (rum, alarms) = records_of_day(&*storage, kept);
            assert_eq!(rum.len(), 3, "RUM events of day {kept} on day {day}");
            assert_eq!(
                alarms,
                vec![format!("alarm-{kept}")],
                "day {kept} on day {day}"
            );
        }
        let expired = day - i64::from(TTL_DAYS) - 1;
        if expired >= 0 {
            assert!(storage
                .get_trace(&format!("trace-{expired}-0"))
                .unwrap()
                .is_empty());
            assert_eq!(
                records_of_day(&*storage, expired),
                (Vec::new(), Vec::new()),
                "RUM events and alarms of day {expired} on day {day}"
            );
            let old_entity =
                MeterEntity::instance("retention-svc", format!("i-{expired}-0"), Layer::GENERAL);
            let old_minute =
                TimeBucket::from_epoch_ms(START_MS + expired * DAY_MS, Step::Minute).unwrap();
            assert_eq!(
                storage
                    .read_metric(&metric(), &old_entity.id(), &[old_minute])
                    .unwrap(),
                vec![None]
            );
        }
    }
    let _ = stop_tx.send(true);
    sweeper.await.unwrap();
}
