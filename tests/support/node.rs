//! A `skylark` process that can be killed and restarted on the same data folder and ports, for
//! the durability tests.
#![allow(dead_code)]

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The service every durability test log belongs to.
pub const SERVICE: &str = "durability-sim";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("repo root")
}

/// One server installation: a data folder, fixed ports, and at most one running process.
/// Shareable: clients post while the test kills and restarts the process.
pub struct Node {
    pub data: PathBuf,
    pub rest: u16,
    grpc: u16,
    admin: u16,
    env: Vec<(String, String)>,
    child: Mutex<Option<Child>>,
    /// Renewed at each start so no pooled connection to a dead process is reused.
    client: Mutex<reqwest::Client>,
}

impl Node {
    /// A node keeping its data in `data`, with extra environment settings.
    pub fn new(data: &Path, env: &[(&str, &str)]) -> Node {
        Node {
            data: data.to_path_buf(),
            rest: free_port(),
            grpc: free_port(),
            admin: free_port(),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            child: Mutex::new(None),
            client: Mutex::new(reqwest::Client::new()),
        }
    }

    fn log_path(&self) -> PathBuf {
        self.data.join("server.log")
    }

    /// The server's log over every run.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// The write-ahead log folder (the default: `wal/` in the storage folder).
    pub fn wal_dir(&self) -> PathBuf {
        self.data.join("db/wal")
    }

    /// Starts the process without waiting for it.
    pub fn spawn(&self) {
        let mut child = self.child.lock().unwrap();
        assert!(child.is_none(), "already running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("log file");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_skylark"));
        cmd.current_dir(repo_root())
            .env("SW_CORE_REST_HOST", "127.0.0.1")
            .env("SW_CORE_REST_PORT", self.rest.to_string())
            .env("SW_CORE_GRPC_HOST", "127.0.0.1")
            .env("SW_CORE_GRPC_PORT", self.grpc.to_string())
            .env("SW_ADMIN_HOST", "127.0.0.1")
            .env("SW_ADMIN_PORT", self.admin.to_string())
            .env("SW_STORAGE_SLED_PATH", self.data.join("db"))
            .env("SW_CORE_PERSISTENT_PERIOD_MS", "300")
            .env("SKYLARK_STOP_ON_STDIN_EOF", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log));
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        *child = Some(cmd.spawn().expect("spawn skylark"));
        *self.client.lock().unwrap() = reqwest::Client::new();
    }

    fn client(&self) -> reqwest::Client {
        self.client.lock().unwrap().clone()
    }

    /// Whether GraphQL answers within `within`.
    pub async fn wait_ready(&self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            let reply = self.graphql("query { version }", json!({})).await;
            if reply["data"]["version"].is_string() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    }

    /// Starts the process and waits until it answers.
    pub async fn start(&self) {
        self.spawn();
        if !self.wait_ready(Duration::from_secs(60)).await {
            panic!("skylark did not start; log:\n{}", self.log());
        }
    }

    /// `kill -9`: no chance to persist anything.
    pub fn kill9(&self) {
        if let Some(mut child) = self.child.lock().unwrap().take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then waits for the exit; returns how long it took and whether it exited cleanly.
    pub fn terminate(&self) -> (Duration, bool) {
        let mut child = self.child.lock().unwrap().take().expect("running");
        let started = Instant::now();
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        let status = child.wait().expect("wait");
        (started.elapsed(), status.success())
    }

    /// POSTs a body; `Err` when no HTTP answer came (connection refused or reset).
    pub async fn post(&self, path: &str, content_type: &str, body: Vec<u8>) -> Result<u16, String> {
        self.client()
            .post(format!("http://127.0.0.1:{}{}", self.rest, path))
            .header("Content-Type", content_type)
            .timeout(Duration::from_secs(20))
            .body(body)
            .send()
            .await
            .map(|r| r.status().as_u16())
            .map_err(|e| e.to_string())
    }

    /// One GraphQL call; `Null` when it fails.
    pub async fn graphql(&self, query: &str, variables: Value) -> Value {
        let reply = self
            .client()
            .post(format!("http://127.0.0.1:{}/graphql", self.rest))
            .json(&json!({"query": query, "variables": variables}))
            .timeout(Duration::from_secs(60))
            .send()
            .await;
        match reply {
            Ok(r) => r.json().await.unwrap_or(Value::Null),
            Err(_) => Value::Null,
        }
    }

    /// Posts the uniquely numbered log request `id`; `Ok(status)` or `Err` without an answer.
    pub async fn post_log(&self, id: u64) -> Result<u16, String> {
        self.post("/v1/logs", "application/x-protobuf", log_request(id))
            .await
    }

    /// How many times each log content of [`SERVICE`] is stored (read page by page, at the
    /// largest page size the server allows).
    pub async fn stored_logs(&self) -> BTreeMap<String, u64> {
        const PAGE: usize = 1000;
        let query =
            "query ($c: LogQueryCondition!) { r: queryLogs(condition: $c) { logs { content } } }";
        let mut counts = BTreeMap::new();
        for page in 1.. {
            let condition = json!({"serviceId": format!("{}.1", b64(SERVICE)),
                "queryDuration": window(), "paging": {"pageNum": page, "pageSize": PAGE}});
            let reply = self.graphql(query, json!({"c": condition})).await;
            assert!(reply.get("errors").is_none(), "{reply}");
            let logs = reply["data"]["r"]["logs"].as_array().expect("logs");
            for log in logs {
                let content = log["content"].as_str().unwrap_or_default().to_string();
                *counts.entry(content).or_default() += 1;
            }
            if logs.len() < PAGE {
                break;
            }
        }
        counts
    }

    /// `meter_wechat_mp_error_count` of [`SERVICE`] summed over the window, per exception type.
    pub async fn error_counts(&self) -> BTreeMap<String, u64> {
        let q = "query ($e: String!, $entity: Entity!, $d: Duration!) { r: execExpression(expression: $e, entity: $entity, duration: $d) { error results { metric { labels { key value } } values { value } } } }";
        let reply = self
            .graphql(
                q,
                json!({"e": "sum(meter_wechat_mp_error_count)",
                       "entity": {"serviceName": SERVICE, "normal": true}, "d": window()}),
            )
            .await;
        assert!(reply.get("errors").is_none(), "{reply}");
        assert!(reply["data"]["r"]["error"].is_null(), "{reply}");
        let mut out = BTreeMap::new();
        for r in reply["data"]["r"]["results"].as_array().expect("results") {
            let kind = r["metric"]["labels"]
                .as_array()
                .and_then(|l| l.iter().find(|l| l["key"] == "exception_type"))
                .and_then(|l| l["value"].as_str())
                .unwrap_or_default()
                .to_string();
            let value = r["values"][0]["value"]
                .as_str()
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            out.insert(kind, value);
        }
        out
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// The content of log request `id`.
pub fn content(id: u64) -> String {
    format!("durability log {id}")
}

/// The exception type of log request `id` (one error_count series per request).
pub fn exception_type(id: u64) -> String {
    format!("E{id}")
}

fn kv(k: &str, v: &str) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(v.into())),
        }),
        ..Default::default()
    }
}

/// An OTLP logs request with one wechat error log: stored as a record by LAL and counted in
/// `meter_wechat_mp_error_count{exception_type="E<id>"}` by log-MAL.
pub fn log_request(id: u64) -> Vec<u8> {
    let now = chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default() as u64;
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(Resource {
                attributes: vec![
                    kv("service.name", SERVICE),
                    kv("service.instance.id", "instance-1"),
                    kv("miniprogram.platform", "wechat"),
                ],
                ..Default::default()
            }),
            scope_logs: vec![ScopeLogs {
                log_records: vec![LogRecord {
                    time_unix_nano: now,
                    body: Some(AnyValue {
                        value: Some(any_value::Value::StringValue(content(id))),
                    }),
                    attributes: vec![kv("exception.type", &exception_type(id))],
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
    .encode_to_vec()
}

/// Standard Base64 of a name.
pub fn b64(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// The last two hours to one minute ahead, minute step (local time, as swctl sends it).
pub fn window() -> Value {
    let end = chrono::Local::now() + chrono::Duration::minutes(1);
    let start = end - chrono::Duration::minutes(120);
    json!({"start": start.format("%Y-%m-%d %H%M").to_string(),
           "end": end.format("%Y-%m-%d %H%M").to_string(), "step": "MINUTE"})
}
