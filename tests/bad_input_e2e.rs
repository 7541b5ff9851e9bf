//! Bad input against a real `skylark`: each gets the right status and message, the server keeps
//! serving, and data from good requests stays intact.
mod common;

use common::*;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::{
    metric, number_data_point, Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;
use serde_json::json;

const SERVICE: &str = "bad-input-app";

fn kv(k: &str, v: &str) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(v.into())),
        }),
        ..Default::default()
    }
}

/// A WeChat app_launch gauge request with one point per (page, value, time).
fn launch_request(points: &[(String, f64, u64)]) -> Vec<u8> {
    let data_points = points
        .iter()
        .map(|(page, value, t)| NumberDataPoint {
            attributes: vec![kv("miniprogram.page.path", page)],
            time_unix_nano: *t,
            value: Some(number_data_point::Value::AsDouble(*value)),
            ..Default::default()
        })
        .collect();
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: vec![
                    kv("service.name", SERVICE),
                    kv("miniprogram.platform", "wechat"),
                ],
                ..Default::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                metrics: vec![Metric {
                    name: "miniprogram.app_launch.duration".into(),
                    unit: "ms".into(),
                    data: Some(metric::Data::Gauge(Gauge { data_points })),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
    .encode_to_vec()
}

fn minute_ago_nanos() -> u64 {
    let now = chrono::Utc::now().timestamp();
    ((now - now % 60 - 60 + 30) as u64) * 1_000_000_000
}

async fn launch_value(server: &Server) -> Vec<String> {
    let now = chrono::Local::now() - chrono::Duration::minutes(1);
    let minute = now.format("%Y-%m-%d %H%M").to_string();
    let q = "query ($e: Entity!, $d: Duration!) { r: execExpression(expression: \"meter_wechat_mp_app_launch_duration\", entity: $e, duration: $d) { results { values { value } } error } }";
    let reply = server
        .graphql(q, json!({"e": {"serviceName": SERVICE, "normal": true}, "d": {"start": minute, "end": minute, "step": "MINUTE"}}))
        .await;
    reply["data"]["r"]["results"][0]["values"]
        .as_array()
        .map(|vs| {
            vs.iter()
                .filter_map(|v| v["value"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn bad_requests_are_refused_and_good_data_survives() {
    let server = Server::start_with(&[("SW_CORE_MAX_BODY_BYTES", "1048576")]).await;
    let t = minute_ago_nanos();
    let good = launch_request(&[("pages/a".into(), 100.0, t)]);
    let (status, _) = server
        .post("/v1/metrics", "application/x-protobuf", good.clone())
        .await;
    assert_eq!(status, 200);

    // Truncated protobuf.
    let (status, text) = server
        .post(
            "/v1/metrics",
            "application/x-protobuf",
            good[..good.len() - 3].to_vec(),
        )
        .await;
    assert_eq!(status, 400, "{text}");
    assert!(!text.is_empty(), "a 400 carries the reason");
    // Invalid JSON.
    let (status, text) = server
        .post(
            "/v1/metrics",
            "application/json",
            b"{\"resourceMetrics\": [".to_vec(),
        )
        .await;
    assert_eq!(status, 400, "{text}");
    assert!(!text.is_empty());
    // Wrong content type.
    let (status, text) = server
        .post("/v1/metrics", "text/plain", b"hello".to_vec())
        .await;
    assert_eq!(status, 415, "{text}");
    // Oversized body (limit set to 1 MiB above).
    let (status, _) = server
        .post(
            "/v1/metrics",
            "application/x-protobuf",
            vec![0u8; 2 * 1024 * 1024],
        )
        .await;
    assert_eq!(status, 413);

    // NaN and infinite values are skipped, the good point beside them is kept.
    let mixed = launch_request(&[
        ("pages/a".into(), f64::NAN, t),
        ("pages/a".into(), f64::INFINITY, t),
        ("pages/a".into(), 300.0, t),
    ]);
    let (status, text) = server
        .post("/v1/metrics", "application/x-protobuf", mixed)
        .await;
    assert_eq!(status, 200, "{text}");

    // Timestamps years in the past and in the future are dropped, not stored.
    let years = 3 * 365 * 86_400 * 1_000_000_000u64;
    let skewed = launch_request(&[
        ("pages/a".into(), 5000.0, t - years),
        ("pages/a".into(), 7000.0, t + years),
    ]);
    let (status, text) = server
        .post("/v1/metrics", "application/x-protobuf", skewed)
        .await;
    assert_eq!(status, 200, "{text}");

    // 10,000 distinct label values in one request.
    let many: Vec<(String, f64, u64)> = (0..10_000)
        .map(|i| (format!("pages/p{i}"), 200.0, t))
        .collect();
    let (status, text) = server
        .post(
            "/v1/metrics",
            "application/x-protobuf",
            launch_request(&many),
        )
        .await;
    assert_eq!(status, 200, "{text}");

    // The service value is the average of every accepted request: (100 + 300 + 200) / 3 = 200.
    // (Each request's points are first averaged by MAL: 100; 300 (NaN/Inf skipped); 200.)
    assert_eq!(launch_value(&server).await, ["200"], "{}", server.log());
    let reply = server.graphql("query { version }", json!({})).await;
    assert!(reply["data"]["version"].is_string(), "server keeps serving");
}

// ---------------------------------------------------------------------------------------------
// Hardening, server side (issue 12: bounded /graphql, queries apart from ingestion, bounded
// shutdown). Kept together at the end of the file.
// ---------------------------------------------------------------------------------------------

#[path = "support/node.rs"]
mod node;

/// Endpoints (pages) per metrics request of the shutdown test.
const SHUTDOWN_PAGES_PER_REQUEST: usize = 5000;
/// Points per page in each request, a minute apart.
const SHUTDOWN_MINUTES: u64 = 6;
/// Metrics requests of the shutdown test.
const SHUTDOWN_REQUESTS: usize = 10;

async fn assert_logs_once(node: &node::Node, ids: std::ops::Range<u64>) {
    let stored = node.stored_logs().await;
    let counted = node.error_counts().await;
    for id in ids.clone() {
        assert_eq!(stored.get(&node::content(id)), Some(&1), "log {id}");
        assert_eq!(
            counted.get(&node::exception_type(id)),
            Some(&1),
            "count {id}"
        );
    }
    assert_eq!(stored.len(), ids.clone().count());
    assert_eq!(counted.len(), ids.count());
}

/// SIGTERM with hundreds of thousands of metric rows waiting for their persist and a client
/// stalled mid-upload (so the whole connection grace is spent): the process still exits within
/// 5 s, and after a restart every acknowledged log is stored and counted exactly once and the
/// metrics are all there (what the cut-short persist did not store was replayed from the log).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_much_unpersisted_data_exits_within_five_seconds_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let node = node::Node::new(
        dir.path(),
        &[
            // Only the shutdown persists: no periodic or memory-pressure persist.
            ("SW_CORE_PERSISTENT_PERIOD_MS", "3600000"),
            ("SW_CORE_MAX_MEMORY_MB", "8192"),
            ("SW_CORE_MAX_ENDPOINTS_PER_SERVICE", "10000000"),
            ("SW_CORE_MAX_LABEL_VALUES_PER_METRIC", "10000000"),
        ],
    );
    node.start().await;
    for id in 0..20 {
        assert_eq!(node.post_log(id).await, Ok(200), "log:\n{}", node.log());
    }
    let started = std::time::Instant::now();
    let last_minute = minute_ago_nanos();
    for r in 0..SHUTDOWN_REQUESTS {
        let points: Vec<(String, f64, u64)> = (0..SHUTDOWN_PAGES_PER_REQUEST)
            .flat_map(|p| {
                (0..SHUTDOWN_MINUTES).map(move |m| {
                    (
                        format!("pages/r{r}/p{p}"),
                        100.0,
                        last_minute - m * 60_000_000_000,
                    )
                })
            })
            .collect();
        let status = node
            .post(
                "/v1/metrics",
                "application/x-protobuf",
                launch_request(&points),
            )
            .await;
        assert_eq!(status, Ok(200), "log:\n{}", node.log());
    }
    eprintln!(
        "shutdown test: {} points in {} requests ingested in {:?}",
        SHUTDOWN_REQUESTS * SHUTDOWN_PAGES_PER_REQUEST * SHUTDOWN_MINUTES as usize,
        SHUTDOWN_REQUESTS,
        started.elapsed()
    );
    for id in 20..40 {
        assert_eq!(node.post_log(id).await, Ok(200), "log:\n{}", node.log());
    }
    // A client stalled mid-upload holds its connection through the whole grace period.
    let mut stalled = tokio::net::TcpStream::connect(("127.0.0.1", node.rest))
        .await
        .unwrap();
    tokio::io::AsyncWriteExt::write_all(
        &mut stalled,
        b"POST /v1/logs HTTP/1.1\r\nHost: skylark\r\nContent-Type: application/x-protobuf\r\nContent-Length: 1000\r\n\r\n0123456789",
    )
    .await
    .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;

    let now = chrono::Local::now();
    let window = json!({"start": (now - chrono::Duration::minutes(30)).format("%Y-%m-%d %H%M").to_string(),
                        "end": now.format("%Y-%m-%d %H%M").to_string(), "step": "MINUTE"});
    let before = endpoint_samples(&node, &window).await;
    let (took, clean) = tokio::task::block_in_place(|| node.terminate());
    let cut_short = node
        .log()
        .contains("did not finish by the shutdown deadline");
    eprintln!(
        "shutdown test: exited {took:?} after SIGTERM (final persist cut short: {cut_short})"
    );
    assert!(clean, "log:\n{}", node.log());
    if cut_short {
        // What the cut-short persist did not store is still in the write-ahead log.
        let segments = std::fs::read_dir(node.wal_dir()).map_or(0, |d| d.count());
        assert!(
            segments > 0,
            "the write-ahead log was emptied; log:\n{}",
            node.log()
        );
    }
    assert!(
        took < std::time::Duration::from_secs(5),
        "exited {took:?} after SIGTERM, over the 5 s promise"
    );
    drop(stalled);

    node.start().await;
    assert_logs_once(&node, 0..40).await;
    assert_eq!(
        endpoint_samples(&node, &window).await,
        before,
        "metrics read before SIGTERM differ after the restart"
    );
}

/// `meter_wechat_mp_endpoint_app_launch_duration` of the first and last page of the first and
/// last request of the shutdown test, over `window`.
async fn endpoint_samples(node: &node::Node, window: &serde_json::Value) -> Vec<serde_json::Value> {
    let q = "query ($e: Entity!, $d: Duration!) { r: execExpression(expression: \"meter_wechat_mp_endpoint_app_launch_duration\", entity: $e, duration: $d) { results { values { id value } } error } }";
    let mut samples = Vec::new();
    for r in [0, SHUTDOWN_REQUESTS - 1] {
        for p in [0, SHUTDOWN_PAGES_PER_REQUEST - 1] {
            let e = json!({"serviceName": SERVICE, "endpointName": format!("pages/r{r}/p{p}"), "normal": true});
            let reply = node.graphql(q, json!({"e": e, "d": window})).await;
            let values = reply["data"]["r"]["results"][0]["values"].clone();
            assert!(
                values
                    .as_array()
                    .is_some_and(|vs| vs.iter().any(|v| v["value"] == "100")),
                "pages/r{r}/p{p} has no value: {reply}"
            );
            samples.push(values);
        }
    }
    samples
}

/// Writes a raw HTTP/1.1 request head and `body_bytes` of body (chunked when `chunked`), then
/// reads the answer's status line; `None` when the connection broke before an answer came.
async fn raw_post(port: u16, path: &str, body_bytes: usize, chunked: bool) -> Option<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .ok()?;
    let length = if chunked {
        "Transfer-Encoding: chunked".to_string()
    } else {
        format!("Content-Length: {body_bytes}")
    };
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: skylark\r\nContent-Type: application/json\r\n{length}\r\n\r\n"
    );
    let (mut reader, mut writer) = stream.split();
    let write = async {
        writer.write_all(head.as_bytes()).await?;
        let chunk = vec![b' '; 64 * 1024];
        let mut sent = 0;
        while sent < body_bytes {
            let n = chunk.len().min(body_bytes - sent);
            if chunked {
                writer.write_all(format!("{n:x}\r\n").as_bytes()).await?;
                writer.write_all(&chunk[..n]).await?;
                writer.write_all(b"\r\n").await?;
            } else {
                writer.write_all(&chunk[..n]).await?;
            }
            sent += n;
        }
        if chunked {
            writer.write_all(b"0\r\n\r\n").await?;
        }
        Ok::<_, std::io::Error>(())
    };
    // The answer may come before the whole body is written; keep reading either way.
    let read = async {
        let mut answer = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match reader.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
            }
            if answer.windows(4).any(|w| w == b"\r\n\r\n") {
                break;
            }
        }
        answer
    };
    let (_, answer) = tokio::join!(write, read);
    let text = String::from_utf8_lossy(&answer).to_string();
    text.lines()
        .next()
        .map(str::to_string)
        .filter(|l| !l.is_empty())
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

/// `/graphql` bodies over `SW_QUERY_MAX_BODY_BYTES` (1 MiB by default) are answered 413 whether
/// they declare their length or arrive chunked, without being buffered: a 256 MiB body leaves
/// the server's memory where it was, and it keeps serving.
#[tokio::test]
async fn graphql_bodies_over_the_limit_get_413_and_are_not_buffered() {
    let server = Server::start().await;
    for chunked in [false, true] {
        let status = raw_post(server.rest, "/graphql", 2 * 1024 * 1024, chunked).await;
        assert!(
            status.as_deref().is_some_and(|s| s.contains(" 413 ")),
            "chunked {chunked}: {status:?}"
        );
    }
    let rss_before = rss_kib(server.pid());
    // Far past the limit: the server answers 413 and closes instead of reading it all.
    let status = raw_post(server.rest, "/graphql", 256 * 1024 * 1024, true).await;
    let rss_after = rss_kib(server.pid());
    eprintln!(
        "graphql 256 MiB chunked body: answer {status:?}, RSS {rss_before} KiB before, {rss_after} KiB after"
    );
    assert!(
        status.is_none() || status.as_deref().is_some_and(|s| s.contains(" 413 ")),
        "{status:?}"
    );
    assert!(
        rss_after < rss_before + 32 * 1024,
        "RSS grew from {rss_before} KiB to {rss_after} KiB"
    );
    let reply = server.graphql("query { version }", json!({})).await;
    assert!(reply["data"]["version"].is_string(), "server keeps serving");
}

/// A 1 MiB document of aliased `execExpression`s, a deeply nested one and an oversized page are
/// each refused with an error naming the limit, before any of it runs.
#[tokio::test]
async fn graphql_documents_over_the_limits_are_refused_with_clear_errors() {
    let server = Server::start().await;
    let field =
        |i: usize| format!("e{i}:execExpression(expression:$x,entity:$e,duration:$d){{error}} ");
    let mut aliases = String::new();
    let mut n = 0;
    while aliases.len() < 1000 * 1024 {
        aliases.push_str(&field(n));
        n += 1;
    }
    let query = format!("query($x:String!,$e:Entity!,$d:Duration!){{ {aliases} }}");
    let variables = json!({"x": "meter_wechat_mp_app_launch_duration",
        "e": {"serviceName": SERVICE, "normal": true}, "d": swctl_duration()});
    let started = std::time::Instant::now();
    let reply = server.graphql(&query, variables).await;
    let message = reply["errors"][0]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("SW_QUERY_MAX_QUERY_COMPLEXITY"),
        "{n} aliases: {}",
        &reply.to_string()[..reply.to_string().len().min(500)]
    );
    eprintln!(
        "{n} aliased execExpressions refused in {:?}",
        started.elapsed()
    );

    let deep = format!("query {}{}", "{ a ".repeat(100_000), "}".repeat(100_000));
    let reply = server.graphql(&deep, json!({})).await;
    let message = reply["errors"][0]["message"].as_str().unwrap_or_default();
    assert!(message.contains("nests brackets"), "{reply}");

    let q = "query ($c: LogQueryCondition) { queryLogs(condition: $c) { logs { content } } }";
    let reply = server
        .graphql(q, json!({"c": {"queryDuration": swctl_duration(), "paging": {"pageNum": 1, "pageSize": 5000}}}))
        .await;
    let message = reply["errors"][0]["message"].as_str().unwrap_or_default();
    assert!(message.contains("SW_QUERY_MAX_PAGE_SIZE"), "{reply}");
    let reply = server.graphql("query { version }", json!({})).await;
    assert!(reply["data"]["version"].is_string(), "server keeps serving");
}

/// A GraphQL document that keeps a query thread busy for seconds: 700 evaluations of a
/// 500-minute window (350,000 bucket reads).
fn heavy_query() -> (String, serde_json::Value) {
    let fields: String = (0..700)
        .map(|i| format!("e{i}:execExpression(expression:$x,entity:$e,duration:$d){{error}} "))
        .collect();
    let now = chrono::Local::now();
    let window = json!({"start": (now - chrono::Duration::minutes(499)).format("%Y-%m-%d %H%M").to_string(),
                        "end": now.format("%Y-%m-%d %H%M").to_string(), "step": "MINUTE"});
    (
        format!("query($x:String!,$e:Entity!,$d:Duration!){{ {fields} }}"),
        json!({"x": "meter_wechat_mp_app_launch_duration",
               "e": {"serviceName": SERVICE, "normal": true}, "d": window}),
    )
}

/// Heavy dashboards do not delay ingestion: while four clients keep the query threads busy with
/// documents that take seconds each, segment reports are still acknowledged promptly (queries
/// on the ingest workers held every acknowledgement behind them).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn heavy_queries_do_not_delay_ingest_acknowledgements() {
    let server = std::sync::Arc::new(Server::start().await);
    let (query, variables) = heavy_query();
    let started = std::time::Instant::now();
    let reply = server.graphql(&query, variables.clone()).await;
    let one_query = started.elapsed();
    assert!(
        reply["errors"].is_null(),
        "{}",
        &reply.to_string()[..200.min(reply.to_string().len())]
    );
    eprintln!("one heavy query took {one_query:?}");

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut heavy = Vec::new();
    for _ in 0..4 {
        let (server, query, variables, stop) = (
            server.clone(),
            query.clone(),
            variables.clone(),
            stop.clone(),
        );
        heavy.push(tokio::spawn(async move {
            let mut answered = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let reply = server.graphql(&query, variables.clone()).await;
                if !reply.is_null() {
                    answered += 1;
                }
            }
            answered
        }));
    }
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let client = reqwest::Client::new();
    let url = format!("{}/v3/segments", server.base());
    let mut slowest = std::time::Duration::ZERO;
    let load_until =
        std::time::Instant::now() + one_query.max(std::time::Duration::from_secs(2)) * 3;
    let mut acknowledged = 0;
    while std::time::Instant::now() < load_until {
        let now_ms = chrono::Utc::now().timestamp_millis();
        let body = json!([{"traceId": format!("heavy-{acknowledged}"), "traceSegmentId": format!("heavy-{acknowledged}.0"),
            "service": SERVICE, "serviceInstance": "i1",
            "spans": [{"operationName": "pages/index/index", "startTime": now_ms - 5, "endTime": now_ms,
                       "spanId": 0, "parentSpanId": -1, "spanLayer": "Http", "spanType": "Entry",
                       "isError": false, "componentId": 10002}]}]);
        let sent = std::time::Instant::now();
        let status = client
            .post(&url)
            .json(&body)
            .send()
            .await
            .map(|r| r.status().as_u16());
        slowest = slowest.max(sent.elapsed());
        assert_eq!(status.ok(), Some(200), "log:\n{}", server.log());
        acknowledged += 1;
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut queries = 0;
    for h in heavy {
        queries += h.await.unwrap();
    }
    eprintln!(
        "{acknowledged} segment reports acknowledged during {queries} heavy queries (one alone \
         took {one_query:?}); the slowest acknowledgement took {slowest:?}"
    );
    assert!(queries > 0, "the heavy queries were answered");
    assert!(
        slowest < one_query.min(std::time::Duration::from_secs(2)),
        "an acknowledgement took {slowest:?}, as long as a heavy query ({one_query:?})"
    );
}
