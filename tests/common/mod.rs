//! Shared harness for the end-to-end tests: a real `skylark` process on free loopback ports with
//! a temporary data folder, and the SDK fixtures from `../shared`, re-timed to now.
#![allow(dead_code)]

use prost::Message;
use serde_json::{json, Value};
use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("repo root")
}

/// `../shared/fixtures/sdk`, or `None` (with a message) when `../shared` is absent.
pub fn fixtures_dir() -> Option<PathBuf> {
    let dir = repo_root().join("../shared/fixtures/sdk");
    if dir.join("manifest.json").is_file() {
        Some(dir)
    } else {
        eprintln!(
            "SKIPPED: {} is absent; this test needs ../shared beside the project",
            dir.display()
        );
        None
    }
}

/// `../shared/reference/skywalking`, or `None` (with a message) when absent.
pub fn reference_dir() -> Option<PathBuf> {
    let dir = repo_root().join("../shared/reference/skywalking");
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!(
            "SKIPPED: {} is absent; this test needs ../shared beside the project",
            dir.display()
        );
        None
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// A running `skylark` process; killed when dropped, and it also exits by itself when the test
/// process goes away (its stdin closes).
pub struct Server {
    child: Child,
    pub rest: u16,
    pub grpc: u16,
    /// The admin port (`GET /metrics`).
    pub admin: u16,
    pub data: tempfile::TempDir,
    client: reqwest::Client,
}

impl Server {
    /// Starts the server with extra environment settings and waits until GraphQL answers. A
    /// free port another test took between its choice and the server's bind is chosen anew.
    pub async fn start_with(env: &[(&str, &str)]) -> Server {
        const ATTEMPTS: usize = 3;
        for attempt in 1.. {
            match Server::try_start(env).await {
                Ok(server) => return server,
                Err(log) if attempt < ATTEMPTS && log.contains("Address already in use") => {}
                Err(log) => panic!("skylark did not start; log:\n{log}"),
            }
        }
        unreachable!("the loop returns or panics")
    }

    /// One start; the server's log when it does not answer.
    async fn try_start(env: &[(&str, &str)]) -> Result<Server, String> {
        let data = tempfile::tempdir().expect("tempdir");
        let (rest, grpc, admin) = (free_port(), free_port(), free_port());
        let log = std::fs::File::create(data.path().join("server.log")).expect("log file");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_skylark"));
        cmd.current_dir(repo_root())
            .env("SW_CORE_REST_HOST", "127.0.0.1")
            .env("SW_CORE_REST_PORT", rest.to_string())
            .env("SW_CORE_GRPC_HOST", "127.0.0.1")
            .env("SW_CORE_GRPC_PORT", grpc.to_string())
            .env("SW_ADMIN_PORT", admin.to_string())
            .env("SW_STORAGE_SLED_PATH", data.path().join("db"))
            .env("SW_CORE_PERSISTENT_PERIOD_MS", "500")
            .env("SKYLARK_STOP_ON_STDIN_EOF", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log));
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("spawn skylark");
        let mut server = Server {
            child,
            rest,
            grpc,
            admin,
            data,
            client: reqwest::Client::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = server
                .graphql("query { version }", json!({}))
                .await
                .get("data")
                .cloned()
                .ok_or(())
            {
                if r.get("version").is_some() {
                    break;
                }
            }
            let exited = matches!(server.child.try_wait(), Ok(Some(_)));
            if exited || Instant::now() > deadline {
                return Err(server.log());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(server)
    }

    /// Starts the server with the default settings.
    pub async fn start() -> Server {
        Server::start_with(&[]).await
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.data.path().join("server.log")).unwrap_or_default()
    }

    /// `http://127.0.0.1:<rest>`.
    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.rest)
    }

    /// POSTs a body; returns the status and the response text.
    pub async fn post(&self, path: &str, content_type: &str, body: Vec<u8>) -> (u16, String) {
        let r = self
            .client
            .post(format!("{}{}", self.base(), path))
            .header("Content-Type", content_type)
            .body(body)
            .send()
            .await
            .expect("request");
        let status = r.status().as_u16();
        (status, r.text().await.unwrap_or_default())
    }

    /// Sends a GraphQL document as swctl does; returns the whole JSON reply.
    pub async fn graphql(&self, query: &str, variables: Value) -> Value {
        let r = self
            .client
            .post(format!("{}/graphql", self.base()))
            .header("Content-Type", "application/json; charset=utf-8")
            .header("Accept", "application/json; charset=utf-8")
            .json(&json!({"query": query, "variables": variables}))
            .send()
            .await;
        match r {
            Ok(r) => r.json().await.unwrap_or(Value::Null),
            Err(_) => Value::Null,
        }
    }

    /// The process id (for `/proc/<pid>/status`).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The Prometheus text at the admin port's `/metrics`.
    pub async fn self_metrics(&self) -> String {
        match self
            .client
            .get(format!("http://127.0.0.1:{}/metrics", self.admin))
            .send()
            .await
        {
            Ok(r) => r.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        }
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Sends SIGTERM and waits for the process to exit; returns how long it took.
    pub fn terminate(&mut self) -> Duration {
        let start = Instant::now();
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
        start.elapsed()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut stdin) = self.child.stdin.take() {
            let _ = stdin.flush();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One captured SDK request.
#[derive(Debug, Clone)]
pub struct Fixture {
    pub file: String,
    pub platform: String,
    pub encoding: String,
    pub path: String,
    pub content_type: String,
    pub body: Vec<u8>,
}

/// Every fixture whose manifest `path` is `path` (e.g. `/v1/metrics`).
pub fn fixtures(dir: &Path, path: &str) -> Vec<Fixture> {
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).expect("manifest"))
            .expect("manifest json");
    let mut out = Vec::new();
    for f in manifest["files"].as_array().expect("files") {
        if f["path"] != path {
            continue;
        }
        let file = f["file"].as_str().unwrap_or_default().to_string();
        out.push(Fixture {
            body: std::fs::read(dir.join(&file)).expect("fixture body"),
            file,
            platform: f["platform"].as_str().unwrap_or_default().to_string(),
            encoding: f["encoding"].as_str().unwrap_or_default().to_string(),
            path: path.to_string(),
            content_type: f["content_type"]
                .as_str()
                .unwrap_or("application/json")
                .to_string(),
        });
    }
    out.sort_by(|a, b| a.file.cmp(&b.file));
    out
}

const TIME_KEYS: [&str; 3] = ["timeUnixNano", "startTimeUnixNano", "observedTimeUnixNano"];

fn json_times(v: &Value, out: &mut Vec<i128>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                if TIME_KEYS.contains(&k.as_str()) {
                    if let Some(n) = x
                        .as_str()
                        .and_then(|s| s.parse::<i128>().ok())
                        .or_else(|| x.as_i64().map(i128::from))
                    {
                        if n > 0 {
                            out.push(n);
                        }
                    }
                } else {
                    json_times(x, out);
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| json_times(x, out)),
        _ => {}
    }
}

fn json_shift(v: &mut Value, delta: i128) {
    match v {
        Value::Object(m) => {
            for (k, x) in m.iter_mut() {
                if TIME_KEYS.contains(&k.as_str()) {
                    let n = x
                        .as_str()
                        .and_then(|s| s.parse::<i128>().ok())
                        .or_else(|| x.as_i64().map(i128::from));
                    if let Some(n) = n.filter(|n| *n > 0) {
                        *x = Value::String((n + delta).to_string());
                    }
                } else {
                    json_shift(x, delta);
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|x| json_shift(x, delta)),
        _ => {}
    }
}

/// Epoch nanoseconds now.
pub fn now_nanos() -> i128 {
    chrono::Utc::now()
        .timestamp_nanos_opt()
        .map(i128::from)
        .unwrap_or(0)
}

/// Re-times an OTLP metrics body so that its latest timestamp is `latest_nanos`, keeping the
/// spacing between its points.
pub fn retime_metrics(f: &Fixture, latest_nanos: i128) -> Vec<u8> {
    use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
    use opentelemetry_proto::tonic::metrics::v1::metric::Data;
    if f.encoding == "proto" {
        let mut req =
            ExportMetricsServiceRequest::decode(f.body.as_slice()).expect("fixture protobuf");
        let mut max = 0u64;
        let visit = |shift: Option<i128>, req: &mut ExportMetricsServiceRequest, max: &mut u64| {
            for rm in &mut req.resource_metrics {
                for sm in &mut rm.scope_metrics {
                    for m in &mut sm.metrics {
                        let mut times: Vec<&mut u64> = Vec::new();
                        match &mut m.data {
                            Some(Data::Gauge(g)) => g
                                .data_points
                                .iter_mut()
                                .for_each(|p| times.push(&mut p.time_unix_nano)),
                            Some(Data::Sum(g)) => g
                                .data_points
                                .iter_mut()
                                .for_each(|p| times.push(&mut p.time_unix_nano)),
                            Some(Data::Histogram(g)) => g
                                .data_points
                                .iter_mut()
                                .for_each(|p| times.push(&mut p.time_unix_nano)),
                            _ => {}
                        }
                        for t in times {
                            match shift {
                                None => *max = (*max).max(*t),
                                Some(d) if *t > 0 => *t = (*t as i128 + d) as u64,
                                _ => {}
                            }
                        }
                    }
                }
            }
        };
        visit(None, &mut req, &mut max);
        visit(Some(latest_nanos - max as i128), &mut req, &mut max);
        req.encode_to_vec()
    } else {
        let mut v: Value = serde_json::from_slice(&f.body).expect("fixture json");
        let mut times = Vec::new();
        json_times(&v, &mut times);
        let max = times.into_iter().max().unwrap_or(latest_nanos);
        json_shift(&mut v, latest_nanos - max);
        serde_json::to_vec(&v).expect("json")
    }
}

/// The swctl time window: the last 30 minutes, `yyyy-MM-dd HHmm` in local time, MINUTE step.
pub fn swctl_duration() -> Value {
    let now = chrono::Local::now();
    let start = now - chrono::Duration::minutes(30);
    json!({"start": start.format("%Y-%m-%d %H%M").to_string(), "end": now.format("%Y-%m-%d %H%M").to_string(),
           "step": "MINUTE", "coldStage": false})
}

/// A swctl document from `../shared/reference/skywalking/swctl/documents`.
pub fn swctl_document(reference: &Path, name: &str) -> String {
    std::fs::read_to_string(reference.join("swctl/documents").join(name)).expect("swctl document")
}

/// Standard Base64 of a name.
pub fn b64(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// Re-times an OTLP logs body so that its latest record time is `latest_nanos`.
pub fn retime_logs(f: &Fixture, latest_nanos: i128) -> Vec<u8> {
    use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
    if f.encoding == "proto" {
        let mut req =
            ExportLogsServiceRequest::decode(f.body.as_slice()).expect("fixture protobuf");
        let max = req
            .resource_logs
            .iter()
            .flat_map(|r| &r.scope_logs)
            .flat_map(|s| &s.log_records)
            .map(|r| r.time_unix_nano.max(r.observed_time_unix_nano))
            .max()
            .unwrap_or(0);
        let delta = latest_nanos - max as i128;
        for r in req
            .resource_logs
            .iter_mut()
            .flat_map(|r| &mut r.scope_logs)
            .flat_map(|s| &mut s.log_records)
        {
            for t in [&mut r.time_unix_nano, &mut r.observed_time_unix_nano] {
                if *t > 0 {
                    *t = (*t as i128 + delta) as u64;
                }
            }
        }
        req.encode_to_vec()
    } else {
        let mut v: Value = serde_json::from_slice(&f.body).expect("fixture json");
        let mut times = Vec::new();
        json_times(&v, &mut times);
        let max = times.into_iter().max().unwrap_or(latest_nanos);
        json_shift(&mut v, latest_nanos - max);
        serde_json::to_vec(&v).expect("json")
    }
}

/// Decodes an OTLP logs fixture (either encoding).
pub fn decode_logs_fixture(
    f: &Fixture,
) -> opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest {
    use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
    if f.encoding == "proto" {
        ExportLogsServiceRequest::decode(f.body.as_slice()).expect("fixture protobuf")
    } else {
        serde_json::from_slice(&f.body).expect("fixture json")
    }
}

/// A string attribute's value.
pub fn attr(
    attrs: &[opentelemetry_proto::tonic::common::v1::KeyValue],
    key: &str,
) -> Option<String> {
    use opentelemetry_proto::tonic::common::v1::any_value::Value as V;
    attrs.iter().find(|kv| kv.key == key).and_then(|kv| {
        match kv.value.as_ref()?.value.as_ref()? {
            V::StringValue(s) => Some(s.clone()),
            V::IntValue(i) => Some(i.to_string()),
            _ => None,
        }
    })
}

/// A time window covering the last `minutes` minutes at `step` (`MINUTE` or `SECOND`).
pub fn window(minutes: i64, step: &str) -> Value {
    let now = chrono::Local::now() + chrono::Duration::minutes(1);
    let start = now - chrono::Duration::minutes(minutes);
    let fmt = if step == "SECOND" {
        "%Y-%m-%d %H%M%S"
    } else {
        "%Y-%m-%d %H%M"
    };
    json!({"start": start.format(fmt).to_string(), "end": now.format(fmt).to_string(), "step": step})
}

/// Re-times a `/v3/segments` JSON body so its latest span end is `latest_ms`.
pub fn retime_segments(body: &[u8], latest_ms: i64) -> Value {
    fn walk(v: &mut Value, f: &mut dyn FnMut(&mut Value)) {
        match v {
            Value::Object(m) => {
                for (k, x) in m.iter_mut() {
                    if k == "startTime" || k == "endTime" || (k == "time" && !x.is_object()) {
                        f(x);
                    } else {
                        walk(x, f);
                    }
                }
            }
            Value::Array(a) => a.iter_mut().for_each(|x| walk(x, f)),
            _ => {}
        }
    }
    let read = |x: &Value| {
        x.as_i64()
            .or_else(|| x.as_str().and_then(|s| s.parse().ok()))
    };
    let mut v: Value = serde_json::from_slice(body).expect("segments json");
    let mut max = 0;
    walk(&mut v, &mut |x| max = max.max(read(x).unwrap_or(0)));
    let delta = latest_ms - max;
    walk(&mut v, &mut |x| {
        if let Some(t) = read(x).filter(|t| *t > 0) {
            *x = json!(t + delta);
        }
    });
    v
}

/// `../shared/fixtures/rum` with its manifest, or `None` (and a SKIPPED line) when absent.
pub fn rum_dir() -> Option<PathBuf> {
    let dir = repo_root().join("../shared/fixtures/rum");
    if dir.join("manifest.json").is_file() {
        Some(dir)
    } else {
        eprintln!("SKIPPED: {} is absent", dir.display());
        None
    }
}

/// One recorded request: its wire target, the headers as received, the body.
pub struct Recorded {
    pub file: String,
    pub run: String,
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

/// Every request of the RUM fixtures' manifest, as recorded.
pub fn recorded(dir: &Path) -> Vec<Recorded> {
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap();
    manifest["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let file = f["file"].as_str().unwrap().to_owned();
            let headers = f["wire_headers"]
                .as_object()
                .unwrap()
                .iter()
                .filter(|(k, _)| !matches!(k.as_str(), "host" | "content-length" | "connection"))
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                .collect();
            Recorded {
                body: std::fs::read_to_string(dir.join(&file)).unwrap(),
                file,
                run: f["run"].as_str().unwrap().to_owned(),
                target: f["request_target"].as_str().unwrap().to_owned(),
                headers,
            }
        })
        .collect()
}

/// Adds `delta` to every number following `marker` in `text` (event `date`s, `batch_time`).
pub fn shift_numbers(text: &str, marker: &str, delta: i64) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(marker) {
        let (head, tail) = rest.split_at(at + marker.len());
        out.push_str(head);
        let digits = tail.chars().take_while(|c| c.is_ascii_digit()).count();
        let n: i64 = tail[..digits].parse().unwrap();
        out.push_str(&(n + delta).to_string());
        rest = &tail[digits..];
    }
    out.push_str(rest);
    out
}
