//! Alarms end to end, in-process with an injected clock (no sleeping for minutes): the SDK's
//! metrics are replayed minute by minute so a rule on the launch time fires; a webhook receiver
//! on loopback gets OAP's body; silence suppresses the next minute even across a restart;
//! recovery is sent after the observation period; `getAlarm` with tags, `queryAlarms` with an
//! entity filter and the admin status API answer. Bodies and answers are compared with the
//! shapes of SkyWalking's own alarm e2e (`../shared/reference/skywalking/alarm/e2e-expected/`).
mod common;

use axum::extract::State;
use axum::routing::post;
use common::*;
use serde_json::{json, Value};
use skylark_server::config::Config;
use skylark_server::pipeline::Clock;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const SERVICE: &str = "mini-program-sim-wechat";
const RULE: &str = "wechat_launch_e2e_rule";
const FIXTURE: &str = "wechat-once-proto-0003-v1_metrics.bin";
const MESSAGE: &str =
    "Launch of WeChat mini program mini-program-sim-wechat is over 1 s in 2 of the last 3 minutes.";

type Received = Arc<Mutex<Vec<(String, Value)>>>;

/// A webhook receiver on loopback that keeps every `(path, JSON body)`.
async fn webhook_receiver() -> (u16, Received) {
    let got: Received = Arc::default();
    let record = |State(got): State<Received>, uri: axum::http::Uri, body: String| async move {
        let value = serde_json::from_str(&body).unwrap_or(Value::String(body));
        got.lock().unwrap().push((uri.path().to_string(), value));
        axum::http::StatusCode::OK
    };
    let app = axum::Router::new()
        .route("/alarm/receive", post(record))
        .route("/alarm/recovery", post(record))
        .with_state(got.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (port, got)
}

fn settings(port: u16) -> String {
    format!(
        "rules:
  {RULE}:
    expression: sum(meter_wechat_mp_app_launch_duration > 1000) >= 2
    period: 3
    silence-period: 1
    recovery-observation-period: 1
    message: Launch of WeChat mini program {{name}} is over 1 s in 2 of the last 3 minutes.
    tags:
      level: WARNING
      receivers: lisi
    hooks:
      - webhook.custom
hooks:
  webhook:
    custom:
      urls:
        - http://127.0.0.1:{port}/alarm/receive
      recovery-urls:
        - http://127.0.0.1:{port}/alarm/recovery
"
    )
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// The server running in this process on loopback ports, stopped by `stop` (or when dropped).
struct InProcess {
    rest: u16,
    admin: u16,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    client: reqwest::Client,
}

impl InProcess {
    async fn start(data: &Path, settings_path: &Path, clock: Clock) -> InProcess {
        let root = repo_root();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let mut config = Config::load(None).expect("embedded config");
            config.core.rest.host = "127.0.0.1".into();
            config.core.rest.port = free_port();
            config.core.grpc.host = "127.0.0.1".into();
            config.core.grpc.port = free_port();
            config.core.admin.host = "127.0.0.1".into();
            config.core.admin.port = free_port();
            config.core.persistent_period_ms = 200;
            config.core.ui_templates_path = root.join("ui-templates");
            config.receiver_otel.rules_path = root.join("otel-rules");
            config.log_analyzer.lal_path = root.join("config/lal");
            config.log_analyzer.mal_path = root.join("config/log-mal-rules");
            config.storage.sled.path = data.to_path_buf();
            config.alarm.settings_path = settings_path.to_path_buf();
            config.alarm.check_interval_ms = 50;
            let (rest, admin) = (config.core.rest.port, config.core.admin.port);
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            let task = tokio::spawn(skylark_server::serve(config, clock.clone(), async {
                let _ = stopped.await;
            }));
            let server = InProcess {
                rest,
                admin,
                stop: Some(stop),
                task: Some(task),
                client: reqwest::Client::new(),
            };
            // Up once GraphQL answers; a start that failed (the previous run's storage not yet
            // released) is tried again.
            loop {
                if server.graphql("query { version }", json!({})).await["data"]["version"]
                    .is_string()
                {
                    return server;
                }
                if server.task.as_ref().is_some_and(|t| t.is_finished()) {
                    break;
                }
                assert!(Instant::now() < deadline, "skylark did not start");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let mut server = server;
            let failed = server.task.take().unwrap().await.unwrap();
            assert!(
                Instant::now() < deadline,
                "skylark did not start: {failed:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let result = tokio::time::timeout(Duration::from_secs(20), task)
                .await
                .expect("skylark stopped within 20 s");
            result.unwrap().expect("skylark stopped cleanly");
        }
    }

    async fn graphql(&self, query: &str, variables: Value) -> Value {
        match self
            .client
            .post(format!("http://127.0.0.1:{}/graphql", self.rest))
            .json(&json!({"query": query, "variables": variables}))
            .send()
            .await
        {
            Ok(r) => r.json().await.unwrap_or(Value::Null),
            Err(_) => Value::Null,
        }
    }

    async fn post_metrics(&self, body: Vec<u8>) {
        let r = self
            .client
            .post(format!("http://127.0.0.1:{}/v1/metrics", self.rest))
            .header("Content-Type", "application/x-protobuf")
            .body(body)
            .send()
            .await
            .expect("metrics request");
        assert_eq!(r.status().as_u16(), 200, "{:?}", r.text().await);
    }

    async fn admin_json(&self, path: &str) -> (u16, Value) {
        let r = self
            .client
            .get(format!("http://127.0.0.1:{}{path}", self.admin))
            .send()
            .await
            .expect("admin request");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// The rule's status of the service, once its check of `minute` has run.
    async fn checked(&self, minute_ms: i64) -> Value {
        let end = chrono::DateTime::from_timestamp_millis(minute_ms)
            .unwrap()
            .with_timezone(&chrono::Local)
            .format("%Y-%m-%dT%H:%M:00.000")
            .to_string();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let (_, body) = self
                .admin_json(&format!("/status/alarm/{RULE}/{SERVICE}"))
                .await;
            let status = body["oapInstances"][0]["status"].clone();
            if status["endTime"] == end.as_str() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the check of {end} did not run: {body}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for InProcess {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Keys of the first list item of an e2e-expected file (`- scopeId: 1` and the keys under it).
fn expected_item_keys(file: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(file).expect("expected file");
    let mut keys = Vec::new();
    let mut item_indent = None;
    for line in text.lines() {
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with("{{") {
            continue;
        }
        let indent = line.len() - trimmed.len();
        match item_indent {
            None if trimmed.starts_with("- ") && trimmed.contains(':') => {
                item_indent = Some(indent);
                keys.push(trimmed[2..].split(':').next().unwrap().trim().to_string());
            }
            Some(i) if indent == i + 2 && trimmed.contains(':') => {
                keys.push(trimmed.split(':').next().unwrap().trim().to_string());
            }
            Some(i) if indent <= i => break,
            _ => {}
        }
    }
    assert!(!keys.is_empty(), "no item in {}", file.display());
    keys
}

/// Asserts every key an expected file lists (compared without case: swctl prints lowercase) is
/// in `item`, except those the expected file allows to be empty.
fn assert_shape(item: &Value, file: &Path, may_be_absent: &[&str]) {
    let object = item.as_object().expect("an object");
    for key in expected_item_keys(file) {
        let found = object.keys().any(|k| k.eq_ignore_ascii_case(&key));
        assert!(
            found || may_be_absent.contains(&key.as_str()),
            "{key} (from {}) missing in {item}",
            file.display()
        );
    }
}

async fn wait_received(got: &Received, n: usize) -> Vec<(String, Value)> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let now = got.lock().unwrap().clone();
        if now.len() >= n || Instant::now() > deadline {
            return now;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn local_minute(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap()
        .with_timezone(&chrono::Local)
        .format("%Y-%m-%d %H%M")
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_sdk_rule_fires_stays_silent_across_a_restart_and_recovers() {
    let (Some(fixtures_dir), Some(reference)) = (fixtures_dir(), reference_dir()) else {
        return;
    };
    let expected = reference.join("alarm/e2e-expected");
    let fixture = fixtures(&fixtures_dir, "/v1/metrics")
        .into_iter()
        .find(|f| f.file == FIXTURE)
        .expect("the wechat-once metrics fixture");
    let (port, got) = webhook_receiver().await;
    let dir = tempfile::tempdir().unwrap();
    let settings_path: PathBuf = dir.path().join("alarm-settings.yml");
    std::fs::write(&settings_path, settings(port)).unwrap();
    let data = dir.path().join("data");

    // Minute 0 is ten minutes ago; each check runs 20 s into its minute, as OAP's.
    let m0 = (chrono::Utc::now().timestamp_millis() / 60_000 - 10) * 60_000;
    let minute = |k: i64| m0 + k * 60_000;
    let now = Arc::new(AtomicI64::new(minute(-1) + 20_000));
    let clock: Clock = {
        let now = now.clone();
        Arc::new(move || now.load(Ordering::SeqCst))
    };
    let check_at = |k: i64| now.store(minute(k) + 20_000, Ordering::SeqCst);
    // The SDK's launch time (1438 ms) lands in minute `k`.
    let replay_at = |k: i64| retime_metrics(&fixture, i128::from(minute(k) + 5_000) * 1_000_000);

    let server = InProcess::start(&data, &settings_path, clock.clone()).await;
    server.post_metrics(replay_at(0)).await;
    check_at(0);
    let status = server.checked(minute(0)).await;
    assert_eq!(
        status["currentState"], "NORMAL",
        "one slow minute of two: {status}"
    );

    server.post_metrics(replay_at(1)).await;
    check_at(1);
    let status = server.checked(minute(1)).await;
    assert_eq!(status["currentState"], "FIRING", "{status}");
    let received = wait_received(&got, 1).await;
    assert_eq!(received.len(), 1, "{received:?}");
    let (path, body) = &received[0];
    assert_eq!(path, "/alarm/receive");
    let fired = &body[0];
    assert_eq!(body.as_array().unwrap().len(), 1);
    assert_shape(
        fired,
        &expected.join("silence-before-webhook.yml"),
        &["recoveryTime"],
    );
    assert_eq!(fired["scopeId"], 1);
    assert_eq!(fired["scope"], "SERVICE");
    assert_eq!(fired["name"], SERVICE);
    assert_eq!(fired["id0"], format!("{}.1", b64(SERVICE)));
    assert_eq!(fired["id1"], "");
    assert_eq!(fired["ruleName"], RULE);
    assert_eq!(fired["alarmMessage"], MESSAGE);
    assert_eq!(fired["startTime"], minute(1) + 20_000);
    assert!(fired.get("recoveryTime").is_none(), "{fired}");
    assert_eq!(
        fired["tags"],
        json!([{"key": "level", "value": "WARNING"}, {"key": "receivers", "value": "lisi"}])
    );
    let uuid = fired["uuid"].as_str().unwrap().to_string();

    // A restart within the silence period: the state comes back from storage.
    server.stop().await;
    let server = InProcess::start(&data, &settings_path, clock.clone()).await;
    check_at(2);
    let status = server.checked(minute(2)).await;
    assert_eq!(
        status["currentState"], "SILENCED_FIRING",
        "still two slow minutes in the window, silenced: {status}"
    );
    assert_eq!(status["lastAlarmTime"], minute(1) + 20_000);

    check_at(3);
    let status = server.checked(minute(3)).await;
    assert_eq!(status["currentState"], "OBSERVING_RECOVERY", "{status}");

    server.post_metrics(replay_at(4)).await;
    check_at(4);
    let status = server.checked(minute(4)).await;
    assert_eq!(status["currentState"], "RECOVERED", "{status}");
    let received = wait_received(&got, 2).await;
    assert_eq!(
        received.len(),
        2,
        "only the firing and the recovery were sent (nothing while silent): {received:?}"
    );
    let (path, body) = &received[1];
    assert_eq!(path, "/alarm/recovery");
    let recovered = &body[0];
    assert_shape(recovered, &expected.join("recovery-webhook.yml"), &[]);
    assert_eq!(recovered["uuid"], uuid.as_str());
    assert_eq!(recovered["ruleName"], RULE);
    assert_eq!(recovered["startTime"], minute(1) + 20_000);
    assert_eq!(recovered["recoveryTime"], minute(4) + 20_000);

    // `swctl alarm ls --tags level=WARNING,receivers=lisi` (with the e2e's selection).
    let duration = json!({"start": local_minute(minute(-5)), "end": local_minute(minute(10)), "step": "MINUTE"});
    let ls = "query ($duration: Duration!, $scope: Scope, $keyword: String, $paging: Pagination!, $tags: [AlarmTag]) {
        result: getAlarm(duration: $duration, scope: $scope, keyword: $keyword, paging: $paging, tags: $tags) {
          msgs { startTime recoveryTime scope id name message tags { key value }
                 events { name uuid layer source { service } }
                 snapshot { expression metrics { name results { metric { labels { key value } } values { id owner { scope } value traceID } } } } }
        } }";
    let reply = server
        .graphql(
            ls,
            json!({"duration": duration, "paging": {"pageNum": 1, "pageSize": 15},
                   "tags": [{"key": "level", "value": "WARNING"}, {"key": "receivers", "value": "lisi"}]}),
        )
        .await;
    let msgs = reply["data"]["result"]["msgs"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(msgs.len(), 1, "{reply}");
    let alarm = &msgs[0];
    assert_shape(
        alarm,
        &expected.join("silence-before-graphql-warn.yml"),
        &[],
    );
    assert_eq!(alarm["startTime"], minute(1) + 20_000);
    assert_eq!(alarm["recoveryTime"], minute(4) + 20_000);
    assert_eq!(alarm["scope"], "Service");
    assert_eq!(alarm["id"], format!("{}.1", b64(SERVICE)));
    assert_eq!(alarm["name"], SERVICE);
    assert_eq!(alarm["message"], MESSAGE);
    assert_eq!(alarm["events"], json!([]));
    let snapshot = &alarm["snapshot"];
    assert_eq!(
        snapshot["expression"],
        "sum(meter_wechat_mp_app_launch_duration > 1000) >= 2"
    );
    let metric = &snapshot["metrics"][0];
    assert_eq!(metric["name"], "meter_wechat_mp_app_launch_duration");
    let values: Vec<Value> = metric["results"][0]["values"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(values.len(), 3, "the rule's window: {metric}");
    assert_eq!(values[1]["value"], "1438", "{metric}");
    assert_eq!(values[2]["value"], "1438", "{metric}");
    assert!(values
        .iter()
        .all(|v| v["id"].is_string() && v["owner"].is_null() && v["traceID"].is_null()));
    // A tag value the alarm does not carry finds nothing.
    let reply = server
        .graphql(
            ls,
            json!({"duration": duration, "paging": {"pageNum": 1, "pageSize": 15},
                   "tags": [{"key": "level", "value": "CRITICAL"}]}),
        )
        .await;
    assert_eq!(reply["data"]["result"]["msgs"], json!([]), "{reply}");
    let keys = server
        .graphql(
            "query ($duration: Duration!) { result: queryAlarmTagAutocompleteKeys(duration: $duration) }",
            json!({"duration": duration}),
        )
        .await;
    assert_eq!(
        keys["data"]["result"],
        json!(["level", "receivers"]),
        "{keys}"
    );

    // OAP 11's queryAlarms with the e2e's entity filter, and one for another service.
    let query_alarms = "query ($cond: AlarmQueryCondition!) { queryAlarms(condition: $cond) { msgs { scope name } } }";
    let condition = |service: &str| {
        json!({"cond": {"duration": duration, "paging": {"pageNum": 1, "pageSize": 50},
                        "entities": [{"scope": "Service", "serviceName": service, "normal": true}]}})
    };
    let reply = server.graphql(query_alarms, condition(SERVICE)).await;
    let msgs = &reply["data"]["queryAlarms"]["msgs"];
    assert_eq!(
        msgs,
        &json!([{"scope": "Service", "name": SERVICE}]),
        "{reply}"
    );
    assert_shape(
        &msgs[0],
        &expected.join("queryAlarms-entity-provider.yml"),
        &[],
    );
    let reply = server
        .graphql(query_alarms, condition("mini-program-sim-alipay"))
        .await;
    assert_eq!(reply["data"]["queryAlarms"]["msgs"], json!([]), "{reply}");

    // The rule's status lists the entity it checks.
    let (code, rules) = server.admin_json("/status/alarm/rules").await;
    assert_eq!(code, 200);
    assert_eq!(
        rules["oapInstances"][0]["status"]["ruleList"],
        json!([{"id": RULE}])
    );
    let (_, rule) = server
        .admin_json(&format!("/status/alarm/rules/{RULE}"))
        .await;
    assert_eq!(
        rule["oapInstances"][0]["status"]["runningEntities"][0]["formattedMessage"],
        MESSAGE
    );
    server.stop().await;
}
