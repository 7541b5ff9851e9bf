//! `make bench`: ingest through the whole path against decode-only of the same bodies, measured
//! in one run, for each signal: OTLP metrics (protobuf), OTLP logs (protobuf), SkyWalking
//! segments (JSON) and RUM events (the Flashcat SDK's NDJSON requests, when `--rum-fixtures`
//! holds them); plus an in-process metrics stage (no HTTP), the server's RSS, and the end-to-end
//! stages again with `SW_CORE_DURABILITY=relaxed` to show what `sync` costs.
//!
//! usage: see `USAGE` (`--help`).
use anyhow::{bail, Context, Result};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use prost::Message;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

// Decode-only runs with the allocator the server uses, so both sides of the ratio pay the same
// price per allocation.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

const USAGE: &str =
    "usage: skylark-bench [--server PATH] [--fixtures DIR] [--rum-fixtures DIR] [--seconds N] [--concurrency N] [--storage-only] [--only metrics|logs|segments|rum]\n       skylark-bench --http-sink PORT [--http-sink-threads N]   (the bare HTTP server the one-core and ceiling stages compare with; 1 thread unless told)";

struct Args {
    server: PathBuf,
    fixtures: PathBuf,
    rum_fixtures: PathBuf,
    seconds: u64,
    concurrency: usize,
    /// Only the sled-against-PostgreSQL stages (with `SW_STORAGE=postgresql`).
    storage_only: bool,
    /// Only the workload whose path contains this (e.g. `logs`), for profiling one signal.
    only: Option<String>,
    /// Serve as the bare HTTP sink on this port instead of benchmarking.
    http_sink: Option<u16>,
    /// Worker threads of the bare HTTP sink.
    http_sink_threads: usize,
}

fn parse_args() -> Result<Args> {
    let mut a = Args {
        server: "target/release/skylark".into(),
        fixtures: "../shared/fixtures/sdk".into(),
        rum_fixtures: "../shared/fixtures/rum".into(),
        seconds: 10,
        concurrency: 32,
        storage_only: false,
        only: None,
        http_sink: None,
        http_sink_threads: 1,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        if k == "--help" || k == "-h" {
            println!("{USAGE}");
            std::process::exit(0);
        }
        if k == "--storage-only" {
            a.storage_only = true;
            continue;
        }
        if ![
            "--server",
            "--fixtures",
            "--rum-fixtures",
            "--seconds",
            "--concurrency",
            "--only",
            "--http-sink",
            "--http-sink-threads",
        ]
        .contains(&k.as_str())
        {
            bail!("unknown argument {k}\n{USAGE}");
        }
        let v = it
            .next()
            .with_context(|| format!("{k} needs a value\n{USAGE}"))?;
        match k.as_str() {
            "--server" => a.server = v.into(),
            "--fixtures" => a.fixtures = v.into(),
            "--rum-fixtures" => a.rum_fixtures = v.into(),
            "--seconds" => a.seconds = v.parse()?,
            "--concurrency" => a.concurrency = v.parse()?,
            "--only" => a.only = Some(v),
            "--http-sink" => a.http_sink = Some(v.parse()?),
            "--http-sink-threads" => a.http_sink_threads = v.parse()?,
            _ => bail!("unknown argument {k}\n{USAGE}"),
        }
    }
    Ok(a)
}

/// Which receiver a workload exercises.
#[derive(Clone, Copy, PartialEq)]
enum Signal {
    Metrics,
    Logs,
    Segments,
    Rum,
}

impl Signal {
    fn path(self) -> &'static str {
        match self {
            Signal::Metrics => "/v1/metrics",
            Signal::Logs => "/v1/logs",
            Signal::Segments => "/v3/segments",
            Signal::Rum => skylark_receiver::RUM_INTAKE_PATH,
        }
    }
    fn content_type(self) -> &'static str {
        match self {
            Signal::Metrics | Signal::Logs => "application/x-protobuf",
            Signal::Segments => "application/json",
            // What the Flashcat SDK sends (the recorded requests' header).
            Signal::Rum => "text/plain;charset=UTF-8",
        }
    }
    fn unit(self) -> &'static str {
        match self {
            Signal::Metrics => "data points",
            Signal::Logs => "records",
            Signal::Segments => "segments",
            Signal::Rum => "events",
        }
    }
    /// Decodes a body the way the receiver does (decode + conversion to model types); `rum`
    /// is the body's request parameters, for RUM.
    fn decode(self, body: &[u8], rum: Option<&RumRequest>) -> Result<()> {
        match self {
            Signal::Metrics => {
                std::hint::black_box(skylark_receiver::decode_metrics(self.content_type(), body)?);
            }
            Signal::Logs => {
                std::hint::black_box(skylark_receiver::decode_logs(self.content_type(), body)?);
            }
            Signal::Segments => {
                std::hint::black_box(skylark_receiver::decode_segments_json(body, 10_000)?);
            }
            Signal::Rum => {
                let rum = rum.context("a RUM body without its request parameters")?;
                let events = skylark_receiver::decode_rum_ndjson(body, &rum.ddsource, &rum.ddtags);
                if events == 0 {
                    bail!("a RUM fixture body decoded to no event");
                }
                std::hint::black_box(events);
            }
        }
        Ok(())
    }
}

/// Bodies of one signal with the number of items each carries.
struct Workload {
    signal: Signal,
    bodies: Vec<(Vec<u8>, u64)>,
    /// For RUM, each body's request (same order as `bodies`); empty for the other signals.
    rum: Vec<RumRequest>,
}

/// The parts of a recorded RUM request besides its body.
struct RumRequest {
    /// Path and query string as the SDK sent them (`/?ddforward=…` or `/api/v2/rum?…`),
    /// re-timed and without `dd-request-id`.
    target: String,
    ddsource: String,
    ddtags: String,
}

fn manifest_files(dir: &Path, path: &str, encoding: &str) -> Result<Vec<PathBuf>> {
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).with_context(|| {
            format!(
                "{} has no manifest.json (make bench needs ../shared/fixtures/sdk)",
                dir.display()
            )
        })?)?;
    Ok(manifest["files"]
        .as_array()
        .context("manifest files")?
        .iter()
        .filter(|f| f["path"] == path && f["encoding"] == encoding)
        .filter_map(|f| f["file"].as_str().map(|n| dir.join(n)))
        .collect())
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// The protobuf metric bodies, re-timed so their points are one minute old.
fn metric_bodies(dir: &Path) -> Result<Vec<(Vec<u8>, u64)>> {
    let target = (now_ms() as u64 - 60_000) * 1_000_000;
    let mut out = Vec::new();
    for file in manifest_files(dir, "/v1/metrics", "proto")? {
        let mut req = ExportMetricsServiceRequest::decode(std::fs::read(file)?.as_slice())?;
        let metrics = || {
            req.resource_metrics
                .iter()
                .flat_map(|r| &r.scope_metrics)
                .flat_map(|s| &s.metrics)
        };
        let mut max = 0;
        let mut points = 0u64;
        for m in metrics() {
            let times: Vec<u64> = match &m.data {
                Some(Data::Gauge(g)) => g.data_points.iter().map(|p| p.time_unix_nano).collect(),
                Some(Data::Sum(g)) => g.data_points.iter().map(|p| p.time_unix_nano).collect(),
                Some(Data::Histogram(g)) => {
                    g.data_points.iter().map(|p| p.time_unix_nano).collect()
                }
                _ => Vec::new(),
            };
            points += times.len() as u64;
            max = times.into_iter().fold(max, u64::max);
        }
        let shift = target.saturating_sub(max);
        for m in req
            .resource_metrics
            .iter_mut()
            .flat_map(|r| &mut r.scope_metrics)
            .flat_map(|s| &mut s.metrics)
        {
            match &mut m.data {
                Some(Data::Gauge(g)) => g
                    .data_points
                    .iter_mut()
                    .for_each(|p| p.time_unix_nano += shift),
                Some(Data::Sum(g)) => g
                    .data_points
                    .iter_mut()
                    .for_each(|p| p.time_unix_nano += shift),
                Some(Data::Histogram(g)) => g
                    .data_points
                    .iter_mut()
                    .for_each(|p| p.time_unix_nano += shift),
                _ => {}
            }
        }
        out.push((req.encode_to_vec(), points));
    }
    Ok(out)
}

/// The protobuf log bodies, re-timed to one minute ago.
fn log_bodies(dir: &Path) -> Result<Vec<(Vec<u8>, u64)>> {
    let target = (now_ms() as u64 - 60_000) * 1_000_000;
    let mut out = Vec::new();
    for file in manifest_files(dir, "/v1/logs", "proto")? {
        let mut req = ExportLogsServiceRequest::decode(std::fs::read(file)?.as_slice())?;
        let records = req
            .resource_logs
            .iter_mut()
            .flat_map(|r| &mut r.scope_logs)
            .flat_map(|s| &mut s.log_records);
        let mut n = 0;
        for r in records {
            r.time_unix_nano = target;
            r.observed_time_unix_nano = target;
            n += 1;
        }
        out.push((req.encode_to_vec(), n));
    }
    Ok(out)
}

/// The JSON segment bodies, re-timed so the latest span ends one minute ago.
fn segment_bodies(dir: &Path) -> Result<Vec<(Vec<u8>, u64)>> {
    fn shift(v: &mut Value, delta: i64) {
        match v {
            Value::Object(m) => {
                for (k, x) in m.iter_mut() {
                    if k == "startTime" || k == "endTime" {
                        if let Some(t) = x
                            .as_i64()
                            .or_else(|| x.as_str().and_then(|s| s.parse().ok()))
                        {
                            *x = Value::from(t + delta);
                        }
                    } else {
                        shift(x, delta);
                    }
                }
            }
            Value::Array(a) => a.iter_mut().for_each(|x| shift(x, delta)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    for file in manifest_files(dir, "/v3/segments", "json")? {
        let mut v: Value = serde_json::from_slice(&std::fs::read(file)?)?;
        let n = v.as_array().map(Vec::len).unwrap_or(0) as u64;
        let text = v.to_string();
        let max = text
            .split("\"endTime\":")
            .skip(1)
            .filter_map(|s| {
                s.trim_start_matches('"')
                    .split(|c: char| !c.is_ascii_digit())
                    .next()?
                    .parse::<i64>()
                    .ok()
            })
            .max()
            .unwrap_or(0);
        shift(&mut v, now_ms() - 60_000 - max);
        out.push((serde_json::to_vec(&v)?, n));
    }
    Ok(out)
}

/// Adds `delta` to every number that follows `marker` in `text` (event `date`s, `batch_time`).
fn shift_numbers(text: &str, marker: &str, delta: i64) -> Result<String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(marker) {
        let (head, tail) = rest.split_at(at + marker.len());
        out.push_str(head);
        let digits = tail.chars().take_while(|c| c.is_ascii_digit()).count();
        let n: i64 = tail[..digits]
            .parse()
            .with_context(|| format!("no number after {marker}"))?;
        out.push_str(&(n + delta).to_string());
        rest = &tail[digits..];
    }
    out.push_str(rest);
    Ok(out)
}

/// `text` without `marker` and the request id (hex digits and dashes) that follows it.
fn without_request_id(text: &str, marker: &str) -> String {
    match text.find(marker) {
        Some(at) => {
            let tail = &text[at + marker.len()..];
            let id = tail
                .chars()
                .take_while(|c| c.is_ascii_hexdigit() || *c == '-')
                .count();
            format!("{}{}", &text[..at], &tail[id..])
        }
        None => text.to_owned(),
    }
}

/// The recorded Flashcat RUM requests (bodies, targets, parameters), re-timed so the latest
/// event is one minute old, or `None` when `dir` has no manifest. `dd-request-id` is dropped:
/// the intake answers a repeated id from its idempotency cache without decoding, and the bench
/// replays each body many times.
fn rum_workload(dir: &Path) -> Result<Option<Workload>> {
    let Ok(manifest) = std::fs::read(dir.join("manifest.json")) else {
        return Ok(None);
    };
    let manifest: Value = serde_json::from_slice(&manifest)?;
    let files = manifest["files"].as_array().context("manifest files")?;
    let mut recorded = Vec::new();
    for f in files {
        let file = f["file"].as_str().context("manifest file name")?;
        let body = std::fs::read_to_string(dir.join(file))?;
        let params = &f["query_params"];
        let text = |k: &str| params[k].as_str().unwrap_or_default().to_owned();
        let request = RumRequest {
            target: f["request_target"]
                .as_str()
                .context("manifest request_target")?
                .to_owned(),
            ddsource: text("ddsource"),
            ddtags: text("ddtags"),
        };
        recorded.push((body, request));
    }
    let latest = recorded
        .iter()
        .flat_map(|(body, _)| body.lines())
        .filter_map(|line| serde_json::from_str::<Value>(line).ok()?["date"].as_i64())
        .max()
        .context("no RUM event has a date")?;
    let delta = now_ms() - 60_000 - latest;
    let mut bodies = Vec::new();
    let mut rum = Vec::new();
    for (body, mut request) in recorded {
        let events = body.lines().filter(|l| !l.trim().is_empty()).count() as u64;
        bodies.push((
            shift_numbers(&body, "\"date\":", delta)?.into_bytes(),
            events,
        ));
        let target = shift_numbers(&request.target, "batch_time%3D", delta)?;
        let target = shift_numbers(&target, "batch_time=", delta)?;
        let target = without_request_id(&target, "%26dd-request-id%3D");
        request.target = without_request_id(&target, "&dd-request-id=");
        rum.push(request);
    }
    Ok(Some(Workload {
        signal: Signal::Rum,
        bodies,
        rum,
    }))
}

/// (requests/s, items/s) of decoding every body on one thread for ~2 s.
fn decode_rate(w: &Workload) -> Result<(f64, f64)> {
    let start = Instant::now();
    let (mut reqs, mut items) = (0u64, 0u64);
    while start.elapsed() < Duration::from_secs(2) {
        for (i, (b, n)) in w.bodies.iter().enumerate() {
            w.signal.decode(b, w.rum.get(i))?;
            reqs += 1;
            items += n;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    Ok((reqs as f64 / secs, items as f64 / secs))
}

/// Metrics through decode, the shipped rules and sled, without HTTP, one thread: requests and
/// data points per second, and the CPU microseconds (every thread of this process, sled's
/// included) per request, which a busy neighbour moves less than the rates.
fn in_process(bodies: &[(Vec<u8>, u64)]) -> Result<(f64, f64, f64)> {
    use skylark_core::IngestSink;
    let config = skylark_server::config::Config::load(None)?;
    let dir = tempfile::tempdir()?;
    let storage: Arc<dyn skylark_storage::Storage> = Arc::new(skylark_storage::SledStorage::open(
        skylark_storage::SledConfig::new(dir.path().join("db")),
    )?);
    let pipeline = skylark_server::pipeline::Pipeline::new(
        skylark_server::load_rules(&config)?,
        storage.clone(),
        config.core.metrics_data_ttl,
        config.core.record_data_ttl,
        skylark_server::pipeline::system_clock(),
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let start = Instant::now();
    let cpu_start = cpu_secs(std::process::id());
    let (mut reqs, mut pts) = (0u64, 0u64);
    while start.elapsed() < Duration::from_secs(2) {
        for (b, n) in bodies {
            let batch = skylark_receiver::decode_metrics("application/x-protobuf", b)?;
            rt.block_on(pipeline.ingest_metrics(batch))
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            reqs += 1;
            pts += n;
        }
        storage.flush()?;
    }
    let secs = start.elapsed().as_secs_f64();
    let cpu_us = (cpu_secs(std::process::id()) - cpu_start) * 1e6 / reqs.max(1) as f64;
    Ok((reqs as f64 / secs, pts as f64 / secs, cpu_us))
}

fn rss_kb(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|n| n.parse().ok()))
        })
        .unwrap_or(0)
}

/// `N` distinct free ports: the listeners are held until all are picked, so servers started
/// together never get the same port.
fn free_ports<const N: usize>() -> Result<[u16; N]> {
    let listeners = (0..N)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0"))
        .collect::<std::io::Result<Vec<_>>>()?;
    let mut ports = [0u16; N];
    for (port, listener) in ports.iter_mut().zip(&listeners) {
        *port = listener.local_addr()?.port();
    }
    Ok(ports)
}

/// The runtime the benchmark's clients run on: one worker thread, so that the clients leave
/// the other cores to the server they measure.
fn client_runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?)
}

/// Result of one end-to-end stage.
struct Stage {
    ok: u64,
    failed: u64,
    items: u64,
    secs: f64,
    /// CPU time (user + system, all threads) the server spent during the stage.
    server_cpu_secs: f64,
    /// CPU time this process (the clients) spent during the stage.
    client_cpu_secs: f64,
}

impl Stage {
    /// Several stages of one workload as one.
    fn sum(stages: Vec<Stage>) -> Stage {
        stages.into_iter().fold(
            Stage {
                ok: 0,
                failed: 0,
                items: 0,
                secs: 0.0,
                server_cpu_secs: 0.0,
                client_cpu_secs: 0.0,
            },
            |a, b| Stage {
                ok: a.ok + b.ok,
                failed: a.failed + b.failed,
                items: a.items + b.items,
                secs: a.secs + b.secs,
                server_cpu_secs: a.server_cpu_secs + b.server_cpu_secs,
                client_cpu_secs: a.client_cpu_secs + b.client_cpu_secs,
            },
        )
    }

    /// Server CPU per acknowledged request, in microseconds: unlike throughput, this barely
    /// moves when a neighbour on the host takes CPU time, so it is the figure to compare
    /// between builds.
    fn cpu_us_per_request(&self) -> f64 {
        self.us_per_request(self.server_cpu_secs)
    }

    /// Client CPU per acknowledged request, in microseconds.
    fn client_cpu_us_per_request(&self) -> f64 {
        self.us_per_request(self.client_cpu_secs)
    }

    /// `secs` spread over the stage's acknowledged requests, in microseconds.
    fn us_per_request(&self, secs: f64) -> f64 {
        secs * 1e6 / self.ok.max(1) as f64
    }
}

/// CPU seconds (user + system, every thread) `pid` has used so far.
fn cpu_secs(pid: u32) -> f64 {
    // Fields 14 and 15 of /proc/PID/stat, in USER_HZ ticks (100 per second on Linux). The
    // command name (field 2) may hold spaces, so fields are counted after its closing paren.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            let rest = &s[s.rfind(')')? + 1..];
            let f: Vec<&str> = rest.split_whitespace().collect();
            Some(f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?)
        })
        .map_or(0.0, |ticks| ticks / 100.0)
}

/// One keep-alive HTTP/1.1 connection that posts prepared requests and reads the replies.
///
/// The load generator shares this 2-core machine with the server, so it is kept lean: each
/// request's bytes (head and body) are built once up front and sent with one write, and a
/// reply is read just far enough to learn its status and skip its body. A general client
/// (reqwest) spent about a quarter of a core on this, taken from the server it measures.
struct Connection {
    stream: tokio::net::TcpStream,
    buf: Vec<u8>,
}

impl Connection {
    async fn open(addr: std::net::SocketAddr) -> std::io::Result<Connection> {
        let stream = tokio::net::TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Connection {
            stream,
            buf: Vec::with_capacity(4096),
        })
    }

    /// Sends `request` and returns the reply's status code.
    async fn post(&mut self, request: &[u8]) -> std::io::Result<u16> {
        use std::io::{Error, ErrorKind};
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        self.stream.write_all(request).await?;
        self.buf.clear();
        let head_end = loop {
            if let Some(i) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            if self.stream.read_buf(&mut self.buf).await? == 0 {
                return Err(Error::new(
                    ErrorKind::UnexpectedEof,
                    "server closed the connection",
                ));
            }
        };
        let head = std::str::from_utf8(&self.buf[..head_end])
            .map_err(|_| Error::new(ErrorKind::InvalidData, "reply head is not UTF-8"))?;
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse::<u16>().ok())
            .ok_or_else(|| Error::new(ErrorKind::InvalidData, "reply has no status code"))?;
        let length = head
            .lines()
            .filter_map(|l| l.split_once(':'))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| v.trim().parse::<usize>().ok())
            .ok_or_else(|| Error::new(ErrorKind::InvalidData, "reply has no content-length"))?;
        while self.buf.len() < head_end + length {
            if self.stream.read_buf(&mut self.buf).await? == 0 {
                return Err(Error::new(ErrorKind::UnexpectedEof, "reply body cut short"));
            }
        }
        Ok(status)
    }
}

/// Posts the workload's bodies round-robin from `concurrency` connections for `seconds`.
async fn end_to_end(
    server_pid: u32,
    addr: std::net::SocketAddr,
    w: &Workload,
    seconds: u64,
    concurrency: usize,
) -> Result<Stage> {
    let requests: Vec<(Vec<u8>, u64)> = w
        .bodies
        .iter()
        .enumerate()
        .map(|(i, (body, n))| {
            let target = w.rum.get(i).map_or(w.signal.path(), |r| r.target.as_str());
            (http_post(addr, target, w.signal.content_type(), body), *n)
        })
        .collect();
    send_requests(server_pid, addr, requests, seconds, concurrency).await
}

/// A complete HTTP/1.1 `POST` of `body`.
fn http_post(addr: std::net::SocketAddr, target: &str, content_type: &str, body: &[u8]) -> Vec<u8> {
    let mut r = format!(
        "POST {target} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    r.extend_from_slice(body);
    r
}

/// Sends `requests` (each with the items it carries) in turn from `concurrency` clients for
/// `seconds`, counting 2xx answers and the server's CPU time.
async fn send_requests(
    server_pid: u32,
    addr: std::net::SocketAddr,
    requests: Vec<(Vec<u8>, u64)>,
    seconds: u64,
    concurrency: usize,
) -> Result<Stage> {
    let requests = Arc::new(requests);
    let (ok, failed, items) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
    );
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let cpu_before = cpu_secs(server_pid);
    let client_cpu_before = cpu_secs(std::process::id());
    let start = Instant::now();
    let mut tasks = Vec::new();
    for worker in 0..concurrency {
        let requests = requests.clone();
        let (ok, failed, items) = (ok.clone(), failed.clone(), items.clone());
        tasks.push(tokio::spawn(async move {
            let mut i = worker;
            let mut conn = None;
            while Instant::now() < deadline {
                let (request, n) = &requests[i % requests.len()];
                i += 1;
                if conn.is_none() {
                    conn = Connection::open(addr).await.ok();
                }
                let Some(c) = conn.as_mut() else {
                    failed.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                match c.post(request).await {
                    Ok(status) if (200..300).contains(&status) => {
                        ok.fetch_add(1, Ordering::Relaxed);
                        items.fetch_add(*n, Ordering::Relaxed);
                    }
                    Ok(_) => {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(_) => {
                        failed.fetch_add(1, Ordering::Relaxed);
                        conn = None;
                    }
                }
            }
        }));
    }
    for t in tasks {
        t.await?;
    }
    Ok(Stage {
        ok: ok.load(Ordering::Relaxed),
        failed: failed.load(Ordering::Relaxed),
        items: items.load(Ordering::Relaxed),
        secs: start.elapsed().as_secs_f64(),
        server_cpu_secs: cpu_secs(server_pid) - cpu_before,
        client_cpu_secs: cpu_secs(std::process::id()) - client_cpu_before,
    })
}

/// Waits up to 30 s for the server on `rest` to answer GraphQL; `label` names it in the error.
async fn wait_ready(rest: u16, label: &str) -> Result<()> {
    let client = reqwest::Client::new();
    let ready = Instant::now();
    while client
        .post(format!("http://127.0.0.1:{rest}/graphql"))
        .json(&serde_json::json!({"query": "{ version }"}))
        .send()
        .await
        .is_err()
    {
        if ready.elapsed() > Duration::from_secs(30) {
            bail!("server ({label}) did not start");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

/// A bench server's settings on `cmd` (the server, or `taskset` running it): loopback ports
/// `[rest, grpc, admin]`, `storage` with its data folder under `data`, stopping when its stdin
/// closes, warnings only.
fn server_settings<'a>(
    cmd: &'a mut Command,
    [rest, grpc, admin]: [u16; 3],
    storage: &str,
    data: &Path,
) -> &'a mut Command {
    cmd.env("SW_CORE_REST_HOST", "127.0.0.1")
        .env("SW_CORE_REST_PORT", rest.to_string())
        .env("SW_CORE_GRPC_HOST", "127.0.0.1")
        .env("SW_CORE_GRPC_PORT", grpc.to_string())
        .env("SW_ADMIN_HOST", "127.0.0.1")
        .env("SW_ADMIN_PORT", admin.to_string())
        .env("SW_STORAGE", storage)
        .env("SW_STORAGE_SLED_PATH", data.join("db"))
        .env("SKYLARK_STOP_ON_STDIN_EOF", "1")
        .env("SKYLARK_LOG", "warn")
        .stdin(Stdio::piped())
}

/// The end-to-end stages against a fresh server started with `SW_CORE_DURABILITY=mode`.
fn stages_with_durability(args: &Args, workloads: &[Workload], mode: &str) -> Result<Vec<Stage>> {
    let data = tempfile::tempdir()?;
    let ports = free_ports()?;
    let rest = ports[0];
    let mut child = server_settings(&mut Command::new(&args.server), ports, "sled", data.path())
        .env("SW_CORE_DURABILITY", mode)
        .spawn()
        .with_context(|| format!("cannot start {}", args.server.display()))?;
    let pid = child.id();
    let rt = client_runtime()?;
    let result = rt.block_on(async {
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], rest));
        wait_ready(rest, &format!("{mode} durability")).await?;
        let mut stages = Vec::new();
        for w in workloads {
            stages.push(end_to_end(pid, addr, w, args.seconds, args.concurrency).await?);
        }
        Ok(stages)
    });
    let _ = child.kill();
    let _ = child.wait();
    result
}

/// Prints what acknowledging only after the write-ahead-log fsync (`sync`, the default the
/// main run used) costs against acknowledging before it (`relaxed`).
fn print_durability_cost(workloads: &[Workload], sync: &[Stage], relaxed: &[Stage]) {
    println!();
    println!("| signal | sync (default) items/s | relaxed items/s | sync / relaxed |");
    println!("|---|---|---|---|");
    for ((w, s), r) in workloads.iter().zip(sync).zip(relaxed) {
        let (si, ri) = (s.items as f64 / s.secs, r.items as f64 / r.secs);
        println!(
            "| {} ({}) | {si:.0} | {ri:.0} | {:.3} |",
            w.signal.path(),
            w.signal.unit(),
            si / ri
        );
    }
}

fn main() -> Result<()> {
    let args = parse_args()?;
    if let Some(port) = args.http_sink {
        return http_sink(port, args.http_sink_threads);
    }
    let mut workloads = vec![
        Workload {
            signal: Signal::Metrics,
            bodies: metric_bodies(&args.fixtures)?,
            rum: Vec::new(),
        },
        Workload {
            signal: Signal::Logs,
            bodies: log_bodies(&args.fixtures)?,
            rum: Vec::new(),
        },
        Workload {
            signal: Signal::Segments,
            bodies: segment_bodies(&args.fixtures)?,
            rum: Vec::new(),
        },
    ];
    match rum_workload(&args.rum_fixtures)? {
        Some(rum) => workloads.push(rum),
        None => println!(
            "{}: skipped, {} has no manifest.json (the RUM fixtures)",
            Signal::Rum.path(),
            args.rum_fixtures.display()
        ),
    }
    if let Some(only) = &args.only {
        workloads.retain(|w| w.signal.path().contains(only.as_str()));
        if workloads.is_empty() {
            bail!("--only {only} matches no workload");
        }
    }
    for w in &workloads {
        if w.bodies.is_empty() {
            bail!("no fixtures for {}", w.signal.path());
        }
        let items: u64 = w.bodies.iter().map(|(_, n)| n).sum();
        println!(
            "{}: {} fixture bodies, {} {}",
            w.signal.path(),
            w.bodies.len(),
            items,
            w.signal.unit()
        );
    }
    if args.storage_only {
        if !std::env::var("SW_STORAGE").is_ok_and(|s| s == "postgresql") {
            bail!("--storage-only compares sled with PostgreSQL: set SW_STORAGE=postgresql");
        }
        return storage_comparison(&args, &workloads);
    }
    let decode_before: Vec<(f64, f64)> =
        workloads.iter().map(decode_rate).collect::<Result<_>>()?;
    // The in-process stage runs metrics bodies (absent under `--only` another signal).
    let metrics_at = workloads.iter().position(|w| w.signal == Signal::Metrics);
    let inproc = match metrics_at {
        Some(i) => Some(in_process(&workloads[i].bodies)?),
        None => None,
    };

    let data = tempfile::tempdir()?;
    let ports = free_ports()?;
    let rest = ports[0];
    let mut child = server_settings(&mut Command::new(&args.server), ports, "sled", data.path())
        .spawn()
        .with_context(|| format!("cannot start {}", args.server.display()))?;
    let pid = child.id();
    let rt = client_runtime()?;
    let result = rt.block_on(async {
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], rest));
        wait_ready(rest, "sync durability").await?;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let idle_rss = rss_kb(pid, "VmRSS:");
        let mut stages = Vec::new();
        for w in &workloads {
            stages.push(end_to_end(pid, addr, w, args.seconds, args.concurrency).await?);
        }
        Ok::<_, anyhow::Error>((idle_rss, stages))
    });
    let peak_rss = rss_kb(pid, "VmHWM:");
    let _ = child.kill();
    let _ = child.wait();
    let (idle_rss, stages) = result?;
    // This machine's speed drifts (it shares a host): decode-only is measured on both sides of
    // the end-to-end stages and the ratio uses the mean, so drift does not favour either side.
    let decode_after: Vec<(f64, f64)> = workloads.iter().map(decode_rate).collect::<Result<_>>()?;
    let decode: Vec<(f64, f64)> = decode_before
        .iter()
        .zip(&decode_after)
        .map(|(b, a)| ((b.0 + a.0) / 2.0, (b.1 + a.1) / 2.0))
        .collect();

    println!();
    println!("| signal | decode only (1 thread, mean of before/after) req/s | items/s | end to end ({} clients) req/s | items/s | ratio | server CPU µs/req |", args.concurrency);
    println!("|---|---|---|---|---|---|---|");
    for ((w, (drps, dips)), s) in workloads.iter().zip(&decode).zip(&stages) {
        let (erps, eips) = (s.ok as f64 / s.secs, s.items as f64 / s.secs);
        println!(
            "| {} ({}) | {drps:.0} | {dips:.0} | {erps:.0} | {eips:.0} | {:.3} | {:.0} |",
            w.signal.path(),
            w.signal.unit(),
            eips / dips,
            s.cpu_us_per_request()
        );
    }
    println!();
    for ((w, b), a) in workloads.iter().zip(&decode_before).zip(&decode_after) {
        println!(
            "{} decode only: {:.0} {}/s before the end-to-end stages, {:.0} after",
            w.signal.path(),
            b.1,
            w.signal.unit(),
            a.1
        );
    }
    for ((w, (drps, _)), s) in workloads.iter().zip(&decode).zip(&stages) {
        println!(
            "{}: the server used {:.2} CPUs end to end, {:.0} µs per request; decoding one takes {:.0} µs ({:.1}% of it)",
            w.signal.path(),
            s.server_cpu_secs / s.secs,
            s.cpu_us_per_request(),
            1e6 / drps,
            100.0 * (1e6 / drps) / s.cpu_us_per_request()
        );
    }
    if let (Some(inproc), Some(i)) = (inproc, metrics_at) {
        println!(
            "metrics in process (decode → MAL → sled, 1 thread, no HTTP): {:.0} req/s, {:.0} data points/s ({:.3} of decode-only), {:.0} µs CPU per request",
            inproc.0,
            inproc.1,
            inproc.1 / decode[i].1,
            inproc.2
        );
    }
    for (w, s) in workloads.iter().zip(&stages) {
        println!(
            "{}: {} acknowledged, {} failed in {:.1} s",
            w.signal.path(),
            s.ok,
            s.failed,
            s.secs
        );
    }
    println!(
        "server RSS: idle {:.1} MB, peak {:.1} MB",
        idle_rss as f64 / 1024.0,
        peak_rss as f64 / 1024.0
    );
    http_ceiling(&args, &workloads, &decode, &stages)?;
    let relaxed = stages_with_durability(&args, &workloads, "relaxed")?;
    print_durability_cost(&workloads, &stages, &relaxed);
    sdk_mix_on_one_core(&args, &workloads)?;
    if std::env::var("SW_STORAGE").is_ok_and(|s| s == "postgresql") {
        storage_comparison(&args, &workloads)?;
    }
    Ok(())
}

/// The service dashboard's Overview widgets (booster-ui sends them as one request of aliased
/// `execExpression` fields), for the wechat fixture service over the last 30 minutes.
fn dashboard_query() -> serde_json::Value {
    const EXPRESSIONS: &[&str] = &[
        "meter_wechat_mp_app_launch_duration",
        "meter_wechat_mp_first_render_duration",
        "meter_wechat_mp_package_load_duration",
        "meter_wechat_mp_route_duration",
        "meter_wechat_mp_script_duration",
        "meter_wechat_mp_request_cpm",
        "relabels(meter_wechat_mp_request_duration_percentile{p='50,75,90,95,99'},p='50,75,90,95,99',percentile='P50,P75,P90,P95,P99')",
        "meter_wechat_mp_error_count",
        "aggregate_labels(meter_wechat_mp_error_count{exception_type='ajax'},sum)",
        "meter_wechat_mp_request_success_count/meter_wechat_mp_request_count*100",
    ];
    let fields: Vec<String> = EXPRESSIONS
        .iter()
        .enumerate()
        .map(|(i, e)| {
            format!(
                "e{i}: execExpression(expression: {}, entity: $entity, duration: $d) {{ type error results {{ metric {{ labels {{ key value }} }} values {{ id value }} }} }}",
                serde_json::Value::String(e.to_string())
            )
        })
        .collect();
    let end = chrono::Local::now() + chrono::Duration::minutes(1);
    let start = end - chrono::Duration::minutes(30);
    serde_json::json!({
        "query": format!("query ($entity: Entity!, $d: Duration!) {{ {} }}", fields.join(" ")),
        "variables": {
            "entity": {"scope": "Service", "serviceName": "mini-program-sim-wechat", "normal": true},
            "d": {"start": start.format("%Y-%m-%d %H%M").to_string(),
                  "end": end.format("%Y-%m-%d %H%M").to_string(), "step": "MINUTE"},
        },
    })
}

/// `--http-sink PORT`: the stand-in for the nginx of the data layer issue's first figure, on
/// `threads` threads: reads each request's whole body and answers 200, nothing else.
fn http_sink(port: u16, threads: usize) -> Result<()> {
    let rt = if threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()?
    };
    rt.block_on(async move {
        let app = axum::Router::new().fallback(|body: axum::body::Bytes| async move {
            std::hint::black_box(body.len());
            axum::http::StatusCode::OK
        });
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
        axum::serve(listener, app).await?;
        Ok(())
    })
}

/// Waits until something accepts connections on `addr` (at most 10 s).
async fn wait_listening(addr: std::net::SocketAddr, what: &str) -> Result<()> {
    let ready = Instant::now() + Duration::from_secs(10);
    while tokio::net::TcpStream::connect(addr).await.is_err() {
        if Instant::now() > ready {
            bail!("{what} did not start");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

/// The same bodies, clients and duration against the bare HTTP sink on as many threads as the
/// machine has cores: what the end-to-end ratio would be if the server did nothing but read
/// each request, i.e. the highest ratio this machine and client can show.
fn http_ceiling(
    args: &Args,
    workloads: &[Workload],
    decode: &[(f64, f64)],
    stages: &[Stage],
) -> Result<()> {
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let [port] = free_ports()?;
    let mut sink = Command::new(std::env::current_exe()?)
        .arg("--http-sink")
        .arg(port.to_string())
        .arg("--http-sink-threads")
        .arg(threads.to_string())
        .stdin(Stdio::null())
        .spawn()
        .context("cannot start the bare HTTP sink")?;
    let rt = client_runtime()?;
    let result = rt.block_on(async {
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        wait_listening(addr, "the HTTP sink").await?;
        let mut bare = Vec::new();
        for w in workloads {
            bare.push(end_to_end(sink.id(), addr, w, args.seconds, args.concurrency).await?);
        }
        Ok::<_, anyhow::Error>(bare)
    });
    let _ = sink.kill();
    let _ = sink.wait();
    let bare = result?;
    println!();
    println!(
        "| signal | bare HTTP sink ({threads} threads, {} clients) items/s | sink ÷ decode-only (the ceiling) | skylark ÷ sink |",
        args.concurrency
    );
    println!("|---|---|---|---|");
    for (((w, (_, dips)), s), b) in workloads.iter().zip(decode).zip(stages).zip(&bare) {
        let (eips, bips) = (s.items as f64 / s.secs, b.items as f64 / b.secs);
        println!(
            "| {} ({}) | {bips:.0} | {:.3} | {:.3} |",
            w.signal.path(),
            w.signal.unit(),
            bips / dips,
            eips / bips
        );
    }
    cpu_budgets(workloads, decode, stages, &bare, threads);
    Ok(())
}

/// The end-to-end ratios the data layer issue (#13) asks of `make bench`.
const RATIO_GOALS: [(Signal, f64); 3] = [
    (Signal::Metrics, 0.5),
    (Signal::Logs, 0.3),
    (Signal::Segments, 0.4),
];

/// What each ratio goal leaves the server on this machine: the goal needs `goal × decode-only`
/// requests per second, the clients (in this process, on the same cores) spend their measured
/// CPU per request, and the server may use what is left of `cores`. Printed next to what the
/// bare sink and skylark use per request, so a goal no server could meet here shows as one.
fn cpu_budgets(
    workloads: &[Workload],
    decode: &[(f64, f64)],
    stages: &[Stage],
    bare: &[Stage],
    cores: usize,
) {
    println!();
    println!("| signal | ratio goal | end-to-end req/s it needs | client CPU µs/req | server CPU left per request on {cores} cores (µs) | bare sink µs/req | skylark µs/req |");
    println!("|---|---|---|---|---|---|---|");
    for (((w, (drps, _)), s), b) in workloads.iter().zip(decode).zip(stages).zip(bare) {
        let Some((_, goal)) = RATIO_GOALS.iter().find(|(signal, _)| *signal == w.signal) else {
            continue;
        };
        let needed = goal * drps;
        let client = b.client_cpu_us_per_request();
        let budget = cores as f64 * 1e6 / needed - client;
        println!(
            "| {} | {goal} | {needed:.0} | {client:.1} | {budget:.1} | {:.1} | {:.1} |",
            w.signal.path(),
            b.cpu_us_per_request(),
            s.cpu_us_per_request()
        );
    }
}

/// The fresh SDK traffic mix (the metrics, logs and segments bodies in turn, re-timed to now)
/// over HTTP to `skylark` pinned to one core (`taskset -c 0`, default settings, sled), and to
/// the bare HTTP sink pinned to the same core reading the same bodies, in this run. Skipped
/// under `--only` or without `taskset`.
fn sdk_mix_on_one_core(args: &Args, workloads: &[Workload]) -> Result<()> {
    let mix: Vec<&Workload> = [Signal::Metrics, Signal::Logs, Signal::Segments]
        .iter()
        .filter_map(|s| workloads.iter().find(|w| w.signal == *s))
        .collect();
    if mix.len() < 3 || Command::new("taskset").arg("--version").output().is_err() {
        println!(
            "fresh SDK mix on one core: skipped (needs metrics, logs and segments, and taskset)"
        );
        return Ok(());
    }
    let requests_to = |addr: std::net::SocketAddr| {
        let longest = mix.iter().map(|w| w.bodies.len()).max().unwrap_or(0);
        let mut requests = Vec::new();
        for i in 0..longest {
            for w in &mix {
                if let Some((body, n)) = w.bodies.get(i) {
                    requests.push((
                        http_post(addr, w.signal.path(), w.signal.content_type(), body),
                        *n,
                    ));
                }
            }
        }
        requests
    };
    let data = tempfile::tempdir()?;
    let [rest, grpc, admin, sink_port] = free_ports()?;
    let mut server = Command::new("taskset");
    server.arg("-c").arg("0").arg(&args.server);
    server_settings(&mut server, [rest, grpc, admin], "sled", data.path());
    let mut sink = Command::new("taskset");
    sink.arg("-c")
        .arg("0")
        .arg(std::env::current_exe()?)
        .arg("--http-sink")
        .arg(sink_port.to_string())
        .stdin(Stdio::null());
    let mut children = Vec::new();
    for cmd in [&mut server, &mut sink] {
        children.push(
            cmd.spawn()
                .context("cannot start a one-core stage process")?,
        );
    }
    let rt = client_runtime()?;
    let result = rt.block_on(async {
        wait_ready(rest, "one-core skylark").await?;
        let sink_addr = std::net::SocketAddr::from(([127, 0, 0, 1], sink_port));
        wait_listening(sink_addr, "the HTTP sink").await?;
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], rest));
        let skylark = send_requests(
            children[0].id(),
            addr,
            requests_to(addr),
            args.seconds,
            args.concurrency,
        )
        .await?;
        let bare = send_requests(
            children[1].id(),
            sink_addr,
            requests_to(sink_addr),
            args.seconds,
            args.concurrency,
        )
        .await?;
        Ok::<_, anyhow::Error>((skylark, bare))
    });
    for child in &mut children {
        let _ = child.kill();
        let _ = child.wait();
    }
    let (skylark, bare) = result?;
    let rate = |s: &Stage| s.ok as f64 / s.secs;
    println!();
    println!("| fresh SDK mix (metrics, logs, segments), server on one core | req/s | failed | server CPU µs/req |");
    println!("|---|---|---|---|");
    for (name, s) in [
        ("skylark (sled, defaults)", &skylark),
        ("bare HTTP sink (reads the body, 200)", &bare),
    ] {
        println!(
            "| {name} | {:.0} | {} | {:.0} |",
            rate(s),
            s.failed,
            s.cpu_us_per_request()
        );
    }
    println!(
        "fresh SDK mix on one core: skylark ÷ bare HTTP sink = {:.3}",
        rate(&skylark) / rate(&bare)
    );
    Ok(())
}

/// Ingest through the whole path and dashboard latency, sled against PostgreSQL, in this run
/// (`make bench` with `SW_STORAGE=postgresql`). Both servers run at once and each signal's
/// stages alternate (sled, then PostgreSQL, `ROUNDS` times), so a change in the machine's other
/// load during the run falls on both backends alike.
fn storage_comparison(args: &Args, workloads: &[Workload]) -> Result<()> {
    const ROUNDS: usize = 2;
    let url = std::env::var("SW_JDBC_URL")
        .unwrap_or_else(|_| "jdbc:postgresql://127.0.0.1:5432/postgres".to_string());
    let user = std::env::var("SW_DATA_SOURCE_USER").unwrap_or_else(|_| "postgres".to_string());
    struct Server {
        backend: &'static str,
        child: std::process::Child,
        rest: u16,
        _data: tempfile::TempDir,
        _scratch: Option<skylark_storage_postgres::TestDatabase>,
    }
    let mut servers = Vec::new();
    let ports: [u16; 6] = free_ports()?;
    for (backend, ports) in ["sled", "postgresql"].into_iter().zip(ports.chunks(3)) {
        // A fresh database for this run, dropped afterwards (on the server SW_JDBC_URL names).
        let scratch = if backend == "postgresql" {
            Some(
                skylark_storage_postgres::TestDatabase::create_on(&url, &user)
                    .context("cannot create a scratch database for the benchmark")?,
            )
        } else {
            None
        };
        let data = tempfile::tempdir()?;
        let rest = ports[0];
        let mut cmd = Command::new(&args.server);
        server_settings(
            &mut cmd,
            [ports[0], ports[1], ports[2]],
            backend,
            data.path(),
        );
        if let Some(db) = &scratch {
            cmd.env("SW_JDBC_URL", db.jdbc_url())
                .env("SW_DATA_SOURCE_USER", db.user())
                .env("SW_NODE_ID", "bench");
        }
        let child = cmd
            .spawn()
            .with_context(|| format!("cannot start {}", args.server.display()))?;
        servers.push(Server {
            backend,
            child,
            rest,
            _data: data,
            _scratch: scratch,
        });
    }
    let rt = client_runtime()?;
    let outcome = rt.block_on(async {
        for server in &servers {
            wait_ready(server.rest, server.backend).await?;
        }
        // Per server, per workload: every round's stage, summed below.
        let mut rounds: Vec<Vec<Vec<Stage>>> = servers
            .iter()
            .map(|_| workloads.iter().map(|_| Vec::new()).collect())
            .collect();
        for (wi, w) in workloads.iter().enumerate() {
            for _ in 0..ROUNDS {
                for (si, server) in servers.iter().enumerate() {
                    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], server.rest));
                    let stage =
                        end_to_end(server.child.id(), addr, w, args.seconds, args.concurrency)
                            .await?;
                    rounds[si][wi].push(stage);
                }
            }
        }
        // Persisted, as a dashboard on another node would see it.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let client = reqwest::Client::new();
        let body = dashboard_query();
        // The dashboard shows the metrics workload's service (absent under `--only`).
        let dashboard_runs = if workloads.iter().any(|w| w.signal == Signal::Metrics) {
            200
        } else {
            0
        };
        let mut results = Vec::new();
        for (server, stages) in servers.iter().zip(rounds) {
            let base = format!("http://127.0.0.1:{}", server.rest);
            let mut latencies = Vec::new();
            for _ in 0..dashboard_runs {
                let started = Instant::now();
                let reply: serde_json::Value = client
                    .post(format!("{base}/graphql"))
                    .json(&body)
                    .send()
                    .await?
                    .json()
                    .await?;
                latencies.push(started.elapsed());
                if reply.get("errors").is_some() || !reply.to_string().contains("\"value\":\"") {
                    bail!("dashboard query failed on {}: {reply}", server.backend);
                }
            }
            latencies.sort();
            let stages: Vec<Stage> = stages.into_iter().map(Stage::sum).collect();
            results.push((server.backend, (stages, latencies)));
        }
        Ok(results)
    });
    for server in &mut servers {
        let _ = server.child.kill();
        let _ = server.child.wait();
    }
    let results = outcome?;
    println!();
    println!(
        "| storage | {} | dashboard p50 ms | p99 ms |",
        workloads
            .iter()
            .map(|w| format!("{} {}/s", w.signal.path(), w.signal.unit()))
            .collect::<Vec<_>>()
            .join(" | ")
    );
    println!("|---|{}---|---|", "---|".repeat(workloads.len()));
    for (backend, (stages, latencies)) in &results {
        let rates: Vec<String> = stages
            .iter()
            .map(|s| format!("{:.0}", s.items as f64 / s.secs))
            .collect();
        let at = |q: f64| {
            if latencies.is_empty() {
                return f64::NAN;
            }
            let i = ((latencies.len() as f64 * q).ceil() as usize).clamp(1, latencies.len()) - 1;
            latencies
                .get(i)
                .map_or(f64::NAN, |l| l.as_secs_f64() * 1000.0)
        };
        println!(
            "| {backend} | {} | {:.1} | {:.1} |",
            rates.join(" | "),
            at(0.50),
            at(0.99)
        );
    }
    if let [(_, (sled, _)), (_, (pg, _))] = results.as_slice() {
        for ((w, s), p) in workloads.iter().zip(sled).zip(pg) {
            println!(
                "{}: postgresql ingests {:.2} of sled's {} per second ({} failed requests on postgresql)",
                w.signal.path(),
                (p.items as f64 / p.secs) / (s.items as f64 / s.secs),
                w.signal.unit(),
                p.failed
            );
        }
    }
    Ok(())
}
