//! The minute check end to end with an injectable clock: metrics in storage → a rule fires →
//! a webhook receiver on loopback gets OAP's body → silence → a restart keeps the silence →
//! recovery after the observation period; and hooks that fail or hang are retried and counted
//! without delaying others.
use axum::extract::{Path as UrlPath, State};
use axum::routing::post;
use skylark_alarm::{parse, AlarmEngine, Clock, DeliveryConfig, Dispatcher};
use skylark_core::telemetry::Telemetry;
use skylark_core::traffic::{ServiceTraffic, Traffic};
use skylark_core::{
    Layer, MeterEntity, MeterValue, MetricCatalog, MetricDefinition, MetricEmission,
    MetricFunction, Scope, Step, TimeBucket,
};
use skylark_storage::{AlarmQuery, SledConfig, SledStorage, Storage};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// 2026-05-01 12:00 UTC.
const MINUTE0: i64 = 1_777_636_800_000;
const SERVICE: &str = "mini-program-sim-wechat";

type Received = Arc<Mutex<Vec<(String, String)>>>;

async fn receiver() -> (u16, Received) {
    let got: Received = Arc::default();
    let app = axum::Router::new()
        .route(
            "/{kind}",
            post(
                |State(got): State<Received>, UrlPath(kind): UrlPath<String>, body: String| async move {
                    got.lock().unwrap().push((kind.clone(), body));
                    match kind.as_str() {
                        "fail" => axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                        "hang" => {
                            tokio::time::sleep(Duration::from_secs(60)).await;
                            axum::http::StatusCode::OK
                        }
                        _ => axum::http::StatusCode::OK,
                    }
                },
            ),
        )
        .with_state(got.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (port, got)
}

fn resp_time() -> MetricDefinition {
    MetricDefinition {
        name: "service_resp_time".into(),
        scope: Scope::Service,
        function: MetricFunction::Avg,
        percentile_ranks: Vec::new(),
    }
}

fn write(storage: &dyn Storage, minute: i64, value: i64) {
    let ms = MINUTE0 + minute * 60_000;
    storage
        .write_traffic(
            vec![Traffic::Service(ServiceTraffic {
                name: SERVICE.into(),
                layer: Layer::WECHAT_MINI_PROGRAM,
            })],
            ms,
        )
        .unwrap();
    storage
        .write_metrics(vec![MetricEmission {
            metric: Arc::new(resp_time()),
            entity: MeterEntity::service(SERVICE, Layer::WECHAT_MINI_PROGRAM),
            minute: TimeBucket::from_epoch_ms(ms, Step::Minute).unwrap(),
            value: MeterValue::Single(value),
        }])
        .unwrap();
    storage.flush().unwrap();
}

fn settings_text(port: u16) -> String {
    format!(
        "rules:
  resp_time_rule:
    expression: sum(service_resp_time > 100) >= 1
    period: 2
    silence-period: 2
    recovery-observation-period: 1
    message: Service {{name}} response time is more than 100ms.
    tags:
      level: CRITICAL
      receivers: zhangsan
hooks:
  webhook:
    default:
      is-default: true
      urls:
        - http://127.0.0.1:{port}/alarm
      recovery-urls:
        - http://127.0.0.1:{port}/recovery
"
    )
}

struct Rig {
    engine: AlarmEngine,
    storage: Arc<dyn Storage>,
}

fn rig(dir: &std::path::Path, port: u16, clock: Clock, telemetry: Arc<Telemetry>) -> Rig {
    let storage: Arc<dyn Storage> = Arc::new(SledStorage::open(SledConfig::new(dir)).unwrap());
    let catalog = Arc::new(MetricCatalog::new());
    catalog.register(resp_time()).unwrap();
    let settings = parse(
        std::path::Path::new("alarm-settings.yml"),
        &settings_text(port),
        &catalog,
    )
    .unwrap();
    let dispatcher = Dispatcher::start(DeliveryConfig::default(), telemetry.clone());
    let engine = AlarmEngine::new(
        settings,
        storage.clone(),
        catalog,
        telemetry,
        Some(dispatcher),
        clock,
    )
    .unwrap();
    Rig { engine, storage }
}

async fn wait_for(got: &Received, n: usize) -> Vec<(String, String)> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let now = got.lock().unwrap().clone();
        if now.len() >= n || Instant::now() > deadline {
            return now;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fires_silences_survives_a_restart_and_recovers() {
    let (port, got) = receiver().await;
    let dir = tempfile::tempdir().unwrap();
    let now = Arc::new(AtomicI64::new(0));
    let clock: Clock = {
        let now = now.clone();
        Arc::new(move || now.load(Ordering::SeqCst))
    };
    // 20 s into minute `m`: OAP checks only after the first 15 s.
    let at = |m: i64| now.store(MINUTE0 + m * 60_000 + 20_000, Ordering::SeqCst);
    let telemetry = Arc::new(Telemetry::new());
    let rig = rig(dir.path(), port, clock.clone(), telemetry.clone());

    write(rig.storage.as_ref(), 0, 500);
    now.store(MINUTE0 + 10_000, Ordering::SeqCst);
    assert!(
        rig.engine.tick().unwrap().is_empty(),
        "not in the first 15 s"
    );
    at(0);
    let fired = rig.engine.tick().unwrap();
    assert_eq!(fired.len(), 1);
    assert!(rig.engine.tick().unwrap().is_empty(), "once per minute");
    let received = wait_for(&got, 1).await;
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].0, "alarm");
    let body: serde_json::Value = serde_json::from_str(&received[0].1).unwrap();
    let m = &body[0];
    // The shape of OAP's e2e `silence-before-webhook.yml`.
    assert_eq!(m["scopeId"], 1);
    assert_eq!(m["scope"], "SERVICE");
    assert_eq!(m["name"], SERVICE);
    assert_eq!(m["id0"], "bWluaS1wcm9ncmFtLXNpbS13ZWNoYXQ=.1");
    assert_eq!(m["id1"], "");
    assert_eq!(m["ruleName"], "resp_time_rule");
    assert_eq!(
        m["alarmMessage"],
        format!("Service {SERVICE} response time is more than 100ms.")
    );
    assert_eq!(m["startTime"], MINUTE0 + 20_000);
    assert!(m.get("recoveryTime").is_none());
    assert_eq!(
        m["tags"],
        serde_json::json!([{"key": "level", "value": "CRITICAL"}, {"key": "receivers", "value": "zhangsan"}])
    );
    assert_eq!(m["layers"], serde_json::json!(["WECHAT_MINI_PROGRAM"]));
    let uuid = m["uuid"].as_str().unwrap().to_string();

    // Still true: silenced.
    write(rig.storage.as_ref(), 1, 500);
    at(1);
    assert!(rig.engine.tick().unwrap().is_empty(), "silenced");

    // A restart within the silence period sends nothing new.
    drop(rig);
    let rig = self::rig(dir.path(), port, clock.clone(), telemetry.clone());
    write(rig.storage.as_ref(), 2, 50);
    at(2);
    assert!(
        rig.engine.tick().unwrap().is_empty(),
        "the window still holds minute 1's 500, but silence survived the restart"
    );
    // False from now on: observing, then recovered.
    write(rig.storage.as_ref(), 3, 50);
    at(3);
    assert!(rig.engine.tick().unwrap().is_empty(), "observing recovery");
    write(rig.storage.as_ref(), 4, 50);
    at(4);
    let recovered = rig.engine.tick().unwrap();
    assert_eq!(recovered.len(), 1);
    assert_eq!(recovered[0].uuid, uuid);
    let received = wait_for(&got, 2).await;
    assert_eq!(received.len(), 2, "{received:?}");
    assert_eq!(received[1].0, "recovery");
    let body: serde_json::Value = serde_json::from_str(&received[1].1).unwrap();
    assert_eq!(body[0]["uuid"], uuid.as_str());
    assert_eq!(body[0]["recoveryTime"], MINUTE0 + 4 * 60_000 + 20_000);
    assert_eq!(body[0]["startTime"], MINUTE0 + 20_000);

    // The stored record carries both times and is found by its tags.
    let q = AlarmQuery {
        tags: vec![("level".into(), Some("CRITICAL".into()))],
        ..Default::default()
    };
    let records = rig.storage.query_alarms(&q).unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].uuid, uuid);
    assert_eq!(
        records[0].recovery_time_ms,
        Some(MINUTE0 + 4 * 60_000 + 20_000)
    );
    assert!(
        records[0].snapshot[0].1.contains("\"doubleValue\":500.0"),
        "{:?}",
        records[0].snapshot
    );
    write(rig.storage.as_ref(), 5, 50);
    at(5);
    assert!(rig.engine.tick().unwrap().is_empty());
    assert_eq!(
        rig.engine.states_of("resp_time_rule")[0].machine.state,
        skylark_alarm::State::Normal
    );
    assert!(telemetry
        .render()
        .contains("skylark_alarm_messages_total{kind=\"recovery\"} 1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_and_hanging_hooks_are_retried_and_counted_without_delaying_others() {
    let (port, got) = receiver().await;
    let telemetry = Arc::new(Telemetry::new());
    let config = DeliveryConfig {
        queue_capacity: 4,
        concurrency: 4,
        timeout: Duration::from_millis(300),
        max_attempts: 3,
        backoff: Duration::from_millis(50),
    };
    let dispatcher = Dispatcher::start(config, telemetry.clone());
    let delivery = |path: &str| skylark_alarm::Delivery {
        hook: "webhook",
        url: format!("http://127.0.0.1:{port}/{path}"),
        body: "[]".into(),
        headers: Vec::new(),
        token: None,
    };
    let started = Instant::now();
    dispatcher.submit(delivery("hang"));
    dispatcher.submit(delivery("fail"));
    dispatcher.submit(delivery("ok"));
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "submitting never waits"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = telemetry.render();
        let done = text
            .contains("skylark_alarm_hook_deliveries_total{hook=\"webhook\",outcome=\"failed\"} 2");
        if done || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let got = got.lock().unwrap().clone();
    let count = |k: &str| got.iter().filter(|(p, _)| p == k).count();
    assert_eq!(count("fail"), 3, "three attempts");
    assert_eq!(count("hang"), 3, "three attempts, each timed out");
    assert_eq!(count("ok"), 1);
    let text = telemetry.render();
    assert!(
        text.contains("skylark_alarm_hook_failures_total{hook=\"webhook\",reason=\"status\"} 3"),
        "{text}"
    );
    assert!(
        text.contains("skylark_alarm_hook_failures_total{hook=\"webhook\",reason=\"timeout\"} 3"),
        "{text}"
    );
    assert!(
        text.contains("skylark_alarm_hook_deliveries_total{hook=\"webhook\",outcome=\"ok\"} 1"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_hook_cannot_grow_the_queue() {
    let (port, _got) = receiver().await;
    let telemetry = Arc::new(Telemetry::new());
    let config = DeliveryConfig {
        queue_capacity: 2,
        concurrency: 1,
        timeout: Duration::from_secs(30),
        max_attempts: 1,
        backoff: Duration::from_millis(10),
    };
    let dispatcher = Dispatcher::start(config, telemetry.clone());
    for _ in 0..20 {
        dispatcher.submit(skylark_alarm::Delivery {
            hook: "webhook",
            url: format!("http://127.0.0.1:{port}/hang"),
            body: "[]".into(),
            headers: Vec::new(),
            token: None,
        });
    }
    let text = telemetry.render();
    // One in flight at most, two waiting: the rest are dropped and counted.
    let dropped: u64 = text
        .lines()
        .find(|l| {
            l.starts_with(
                "skylark_alarm_hook_deliveries_total{hook=\"webhook\",outcome=\"dropped\"}",
            )
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!((17..=18).contains(&dropped), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_shows_rules_running_entities_window_and_countdowns() {
    let (port, _got) = receiver().await;
    let dir = tempfile::tempdir().unwrap();
    let now = Arc::new(AtomicI64::new(MINUTE0 + 60_000 + 20_000));
    let clock: Clock = {
        let now = now.clone();
        Arc::new(move || now.load(Ordering::SeqCst))
    };
    let rig = rig(dir.path(), port, clock, Arc::new(Telemetry::new()));
    assert_eq!(
        rig.engine.rules_status(),
        serde_json::json!({"ruleList": [{"id": "resp_time_rule"}]})
    );
    assert!(rig.engine.rule_status("nope_rule").is_none());
    let idle = rig.engine.rule_status("resp_time_rule").unwrap();
    assert_eq!(idle["runningEntities"], serde_json::json!([]));
    assert_eq!(idle["period"], 2);
    assert_eq!(idle["silencePeriod"], 2);
    assert_eq!(idle["recoveryObservationPeriod"], 1);
    assert_eq!(idle["hooks"], serde_json::json!(["webhook.default"]));
    assert_eq!(
        idle["includeMetrics"],
        serde_json::json!(["service_resp_time"])
    );
    assert_eq!(
        idle["tags"],
        serde_json::json!([{"key": "level", "value": "CRITICAL"}, {"key": "receivers", "value": "zhangsan"}])
    );

    write(rig.storage.as_ref(), 1, 500);
    assert_eq!(rig.engine.tick().unwrap().len(), 1);
    let rule = rig.engine.rule_status("resp_time_rule").unwrap();
    assert_eq!(
        rule["runningEntities"],
        serde_json::json!([{"scope": "SERVICE", "name": SERVICE,
            "formattedMessage": format!("Service {SERVICE} response time is more than 100ms.")}])
    );
    let entity = rig.engine.entity_status("resp_time_rule", SERVICE).unwrap();
    assert_eq!(entity["currentState"], "FIRING");
    assert_eq!(entity["size"], 2);
    assert_eq!(entity["silenceCountdown"], 2);
    assert_eq!(entity["recoveryObservationCountdown"], 1);
    assert_eq!(entity["lastAlarmTime"], MINUTE0 + 60_000 + 20_000);
    let minute1 = TimeBucket::from_epoch_ms(MINUTE0 + 60_000, Step::Minute)
        .unwrap()
        .value;
    assert_eq!(
        entity["windowValues"],
        serde_json::json!([
            {"index": 0, "metrics": []},
            {"index": 1, "metrics": [{"name": "service_resp_time", "timeBucket": minute1, "value": "500"}]}
        ])
    );
    let end = minute1.to_string();
    assert_eq!(
        entity["endTime"],
        format!(
            "{}-{}-{}T{}:{}:00.000",
            &end[0..4],
            &end[4..6],
            &end[6..8],
            &end[8..10],
            &end[10..12]
        )
    );
    assert!(entity["mqeMetricsSnapshot"]["service_resp_time"].is_string());

    // The next check is silenced; the countdown shows it.
    write(rig.storage.as_ref(), 2, 500);
    now.store(MINUTE0 + 2 * 60_000 + 20_000, Ordering::SeqCst);
    assert!(rig.engine.tick().unwrap().is_empty());
    let entity = rig.engine.entity_status("resp_time_rule", SERVICE).unwrap();
    assert_eq!(entity["currentState"], "SILENCED_FIRING");
    assert_eq!(entity["silenceCountdown"], 1);

    // An entity the rule is not checking: OAP's empty context.
    let other = rig.engine.entity_status("resp_time_rule", "other").unwrap();
    assert_eq!(other["size"], 0);
    assert_eq!(other["windowValues"], serde_json::json!([]));
    assert_eq!(other["lastAlarmTime"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_does_not_check_an_already_checked_minute_again() {
    let (port, got) = receiver().await;
    let dir = tempfile::tempdir().unwrap();
    let now = Arc::new(AtomicI64::new(MINUTE0 + 20_000));
    let clock: Clock = {
        let now = now.clone();
        Arc::new(move || now.load(Ordering::SeqCst))
    };
    let at = |m: i64| now.store(MINUTE0 + m * 60_000 + 20_000, Ordering::SeqCst);
    let telemetry = Arc::new(Telemetry::new());
    let rig = rig(dir.path(), port, clock.clone(), telemetry.clone());
    write(rig.storage.as_ref(), 0, 500);
    assert_eq!(rig.engine.tick().unwrap().len(), 1);
    // Restarted within the same minute: the new engine's first tick must not count it again.
    drop(rig);
    let rig = self::rig(dir.path(), port, clock.clone(), telemetry);
    assert!(rig.engine.tick().unwrap().is_empty());
    let status = rig.engine.entity_status("resp_time_rule", SERVICE).unwrap();
    assert_eq!(status["currentState"], "FIRING");
    assert_eq!(status["silenceCountdown"], 2, "{status}");
    // silence-period 2: minutes 1 and 2 are silent, minute 3 fires again.
    for m in 1..=2 {
        write(rig.storage.as_ref(), m, 500);
        at(m);
        assert!(
            rig.engine.tick().unwrap().is_empty(),
            "minute {m} is silent"
        );
    }
    write(rig.storage.as_ref(), 3, 500);
    at(3);
    assert_eq!(
        rig.engine.tick().unwrap().len(),
        1,
        "fires again after the silence"
    );
    assert_eq!(wait_for(&got, 2).await.len(), 2);
}

/// An engine over `text` with no hooks, its clock at minute `m` (20 s in) via `at`.
fn trend_rig(dir: &std::path::Path, text: &str, clock: Clock) -> Rig {
    let storage: Arc<dyn Storage> = Arc::new(SledStorage::open(SledConfig::new(dir)).unwrap());
    let catalog = Arc::new(MetricCatalog::new());
    catalog.register(resp_time()).unwrap();
    let settings = parse(std::path::Path::new("alarm-settings.yml"), text, &catalog).unwrap();
    let engine = AlarmEngine::new(
        settings,
        storage.clone(),
        catalog,
        Arc::new(Telemetry::new()),
        None,
        clock,
    )
    .unwrap();
    Rig { engine, storage }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trend_rule_window_includes_the_trend_range_as_oaps_additional_period() {
    let dir = tempfile::tempdir().unwrap();
    let now = Arc::new(AtomicI64::new(MINUTE0 + 20_000));
    let clock: Clock = {
        let now = now.clone();
        Arc::new(move || now.load(Ordering::SeqCst))
    };
    let at = |m: i64| now.store(MINUTE0 + m * 60_000 + 20_000, Ordering::SeqCst);
    // Both rules fire on the same minute; only the trend rule's window reaches two minutes
    // further back.
    let text = "rules:
  growth_rule:
    expression: sum(increase(service_resp_time, 2) > 50) >= 1
    period: 1
  level_rule:
    expression: sum(service_resp_time > 50) >= 1
    period: 1
";
    let rig = trend_rig(dir.path(), text, clock);
    let growth = &rig.engine.settings().rules[0];
    assert_eq!(growth.additional_period, 2);
    assert_eq!(rig.engine.settings().rules[1].additional_period, 0);
    let status = rig.engine.rule_status("growth_rule").unwrap();
    assert_eq!(status["additionalPeriod"], 2);

    write(rig.storage.as_ref(), 0, 10);
    at(0);
    let fired = rig.engine.tick().unwrap();
    assert_eq!(
        fired.len(),
        0,
        "no earlier value to grow from, and 10 <= 50"
    );
    write(rig.storage.as_ref(), 2, 100);
    at(2);
    let mut fired = rig.engine.tick().unwrap();
    fired.sort_by(|a, b| a.rule_name.cmp(&b.rule_name));
    let names: Vec<&str> = fired.iter().map(|m| m.rule_name.as_str()).collect();
    assert_eq!(
        names,
        ["growth_rule", "level_rule"],
        "100 - 10 > 50 and 100 > 50"
    );
    // The growth alarm's snapshot shows the minute its increase started from, as OAP's does.
    let series: serde_json::Value = serde_json::from_str(
        fired[0].mqe_metrics_snapshot["service_resp_time"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    let values: Vec<(bool, f64)> = series[0]["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["isEmptyValue"].as_bool().unwrap(),
                v["doubleValue"].as_f64().unwrap(),
            )
        })
        .collect();
    assert_eq!(values, [(false, 10.0), (true, 0.0), (false, 100.0)]);
    let level: serde_json::Value = serde_json::from_str(
        fired[1].mqe_metrics_snapshot["service_resp_time"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(level[0]["values"].as_array().unwrap().len(), 1);
    let entity = rig.engine.entity_status("growth_rule", SERVICE).unwrap();
    assert_eq!(entity["size"], 3);
    assert_eq!(entity["windowValues"].as_array().unwrap().len(), 3);

    // The data stops. The plain rule's one-minute window is empty at once, so its entity
    // leaves without a recovery (as in OAP); the trend rule still holds minute 2 in its
    // window, sees the condition false, and recovers after its silence.
    at(3);
    assert!(rig.engine.tick().unwrap().is_empty());
    assert!(rig.engine.states_of("level_rule").is_empty());
    assert_eq!(rig.engine.states_of("growth_rule").len(), 1);
    at(4);
    let recovered = rig.engine.tick().unwrap();
    assert_eq!(recovered.len(), 1, "{recovered:?}");
    assert_eq!(recovered[0].rule_name, "growth_rule");
    assert!(recovered[0].recovery_time.is_some());
    assert_eq!(recovered[0].uuid, fired[0].uuid);
    at(5);
    assert!(rig.engine.tick().unwrap().is_empty());
    assert!(
        rig.engine.states_of("growth_rule").is_empty(),
        "minute 2 left the window"
    );
}
