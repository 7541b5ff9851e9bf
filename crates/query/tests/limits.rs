//! `/graphql` within its limits: body size (declared or streamed), fields per document, page
//! size, the query timeout, and queries running on threads of their own so that a slow one
//! leaves the serving workers free.
use axum::body::{Body, Bytes};
use axum::http::{Request as HttpRequest, StatusCode};
use serde_json::{json, Value};
use skylark_core::traffic::Traffic;
use skylark_core::{
    EndpointId, InstanceId, Layer, LogRecord, MetricCatalog, MetricDefinition, MetricEmission,
    MetricValue, SegmentRecord, ServiceId, TimeBucket,
};
use skylark_query::{QueryContext, QueryLimits, UiContext};
use skylark_storage::{
    EndpointRecord, InstanceRecord, LogQuery, MemStorage, RetentionPolicy, ServiceRecord, Storage,
    StoredLog, TraceQuery,
};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tower::ServiceExt;

type StorageResult<T> = skylark_storage::Result<T>;

/// Memory storage whose `list_services` takes `delay` of synchronous work, as a heavy read does.
struct SlowStorage {
    inner: MemStorage,
    delay: Duration,
}

impl Storage for SlowStorage {
    fn write_metrics(&self, e: Vec<MetricEmission>) -> StorageResult<()> {
        self.inner.write_metrics(e)
    }
    fn write_traffic(&self, t: Vec<Traffic>, now_ms: i64) -> StorageResult<()> {
        self.inner.write_traffic(t, now_ms)
    }
    fn flush(&self) -> StorageResult<()> {
        self.inner.flush()
    }
    fn read_metric(
        &self,
        m: &MetricDefinition,
        id: &str,
        b: &[TimeBucket],
    ) -> StorageResult<Vec<Option<MetricValue>>> {
        self.inner.read_metric(m, id, b)
    }
    fn metric_entities(
        &self,
        m: &MetricDefinition,
        b: &[TimeBucket],
    ) -> StorageResult<Vec<String>> {
        self.inner.metric_entities(m, b)
    }
    fn list_services(&self, layer: Option<Layer>) -> StorageResult<Vec<ServiceRecord>> {
        std::thread::sleep(self.delay);
        self.inner.list_services(layer)
    }
    fn get_service(&self, id: &ServiceId) -> StorageResult<Option<ServiceRecord>> {
        self.inner.get_service(id)
    }
    fn list_instances(&self, s: &ServiceId, since: i64) -> StorageResult<Vec<InstanceRecord>> {
        self.inner.list_instances(s, since)
    }
    fn get_instance(&self, id: &InstanceId) -> StorageResult<Option<InstanceRecord>> {
        self.inner.get_instance(id)
    }
    fn find_endpoints(
        &self,
        s: &ServiceId,
        k: Option<&str>,
        limit: usize,
    ) -> StorageResult<Vec<EndpointRecord>> {
        self.inner.find_endpoints(s, k, limit)
    }
    fn get_endpoint(&self, id: &EndpointId) -> StorageResult<Option<EndpointRecord>> {
        self.inner.get_endpoint(id)
    }
    fn write_logs(&self, logs: Vec<LogRecord>) -> StorageResult<()> {
        self.inner.write_logs(logs)
    }
    fn query_logs(&self, q: &LogQuery) -> StorageResult<Vec<StoredLog>> {
        self.inner.query_logs(q)
    }
    fn log_tag_keys(&self, s: i64, e: i64) -> StorageResult<Vec<String>> {
        self.inner.log_tag_keys(s, e)
    }
    fn log_tag_values(&self, k: &str, s: i64, e: i64) -> StorageResult<Vec<String>> {
        self.inner.log_tag_values(k, s, e)
    }
    fn write_segments(&self, s: Vec<SegmentRecord>) -> StorageResult<()> {
        self.inner.write_segments(s)
    }
    fn query_segments(&self, q: &TraceQuery) -> StorageResult<Vec<SegmentRecord>> {
        self.inner.query_segments(q)
    }
    fn get_trace(&self, id: &str) -> StorageResult<Vec<SegmentRecord>> {
        self.inner.get_trace(id)
    }
    fn trace_tag_keys(&self, s: i64, e: i64) -> StorageResult<Vec<String>> {
        self.inner.trace_tag_keys(s, e)
    }
    fn trace_tag_values(&self, k: &str, s: i64, e: i64) -> StorageResult<Vec<String>> {
        self.inner.trace_tag_values(k, s, e)
    }
    fn remove_expired(&self, p: &RetentionPolicy, now_ms: i64) -> StorageResult<u64> {
        self.inner.remove_expired(p, now_ms)
    }
}

fn app(delay: Duration, limits: QueryLimits) -> axum::Router {
    let storage = SlowStorage {
        inner: MemStorage::new(),
        delay,
    };
    let schema = skylark_query::schema_with_limits(
        QueryContext {
            storage: Arc::new(storage),
            catalog: Arc::new(MetricCatalog::new()),
            version: "10.3.0".into(),
            metrics_ttl_days: 7,
            records_ttl_days: 3,
            mqe_limits: Default::default(),
        },
        UiContext::default(),
        &limits,
    );
    skylark_query::router(schema, limits)
        .expect("query threads start")
        .route("/ping", axum::routing::get(|| async { "pong" }))
}

fn post(body: impl Into<Body>, content_length: Option<usize>) -> HttpRequest<Body> {
    let mut request = HttpRequest::post("/graphql").header("Content-Type", "application/json");
    if let Some(n) = content_length {
        request = request.header("Content-Length", n.to_string());
    }
    request.body(body.into()).expect("request")
}

fn graphql(query: &str, variables: Value) -> HttpRequest<Body> {
    let body = json!({"query": query, "variables": variables}).to_string();
    let n = body.len();
    post(body, Some(n))
}

async fn answer(app: axum::Router, request: HttpRequest<Body>) -> (StatusCode, Value, String) {
    let response = app.oneshot(request).await.expect("answered");
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 16 << 20)
        .await
        .expect("body");
    let text = String::from_utf8_lossy(&bytes).to_string();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        text,
    )
}

fn first_error(reply: &Value) -> String {
    reply["errors"][0]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[tokio::test]
async fn bodies_over_the_limit_are_refused_with_413_declared_or_streamed() {
    let limits = QueryLimits {
        max_body_bytes: 4096,
        ..QueryLimits::default()
    };
    let app = app(Duration::ZERO, limits);
    let big = format!(
        "{{\"query\": \"query {{ version }}\", \"pad\": \"{}\"}}",
        "x".repeat(8192)
    );
    let (status, _, text) = answer(app.clone(), post(big.clone(), Some(big.len()))).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{text}");
    assert!(text.contains("SW_QUERY_MAX_BODY_BYTES"), "{text}");

    // No Content-Length: the body arrives in chunks and is cut off once past the limit; the
    // stream is endless, so buffering it would never answer.
    let endless = futures_util::stream::repeat_with(|| {
        Ok::<_, std::io::Error>(Bytes::from(vec![b' '; 1024]))
    });
    let (status, _, text) = answer(app.clone(), post(Body::from_stream(endless), None)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{text}");

    // Under the limit, the same route answers.
    let (status, reply, _) = answer(app, graphql("query { version }", json!({}))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(reply["data"]["version"], "10.3.0");
}

#[tokio::test]
async fn fifty_thousand_aliased_expressions_are_refused_before_running() {
    // A body limit large enough that only the field count can refuse it; the default timeout
    // holds because the count is read off the text before the (far slower) parse.
    let limits = QueryLimits {
        max_body_bytes: 8 << 20,
        ..QueryLimits::default()
    };
    let app = app(Duration::ZERO, limits);
    let aliases: String = (0..50_000)
        .map(|i| {
            format!("e{i}: execExpression(expression: $x, entity: $e, duration: $d) {{ error }} ")
        })
        .collect();
    let query = format!("query ($x: String!, $e: Entity!, $d: Duration!) {{ {aliases} }}");
    let started = Instant::now();
    let (status, reply, _) = answer(
        app,
        graphql(
            &query,
            json!({"x": "1", "e": {"serviceName": "s", "normal": true},
                   "d": {"start": "2026-05-01 1200", "end": "2026-05-01 1230", "step": "MINUTE"}}),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let message = first_error(&reply);
    assert!(
        message.contains("more than 3000 fields")
            && message.contains("SW_QUERY_MAX_QUERY_COMPLEXITY"),
        "{reply}"
    );
    assert!(reply["data"].is_null(), "nothing ran: {reply}");
    eprintln!("50,000 aliases refused in {:?}", started.elapsed());
}

#[tokio::test]
async fn a_page_over_the_limit_is_refused_with_a_clear_error() {
    let app = app(Duration::ZERO, QueryLimits::default());
    let logs = "query ($c: LogQueryCondition) { queryLogs(condition: $c) { logs { content } errorReason } }";
    let traces = "query ($c: TraceQueryCondition) { queryBasicTraces(condition: $c) { traces { segmentId } } }";
    let duration = json!({"start": "2026-05-01 1200", "end": "2026-05-01 1230", "step": "MINUTE"});
    for (query, condition) in [
        (
            logs,
            json!({"queryDuration": duration, "paging": {"pageNum": 1, "pageSize": 1_000_000}}),
        ),
        (
            traces,
            json!({"queryDuration": duration, "traceState": "ALL", "queryOrder": "BY_START_TIME",
                        "paging": {"pageNum": 1, "pageSize": 1_000_000}}),
        ),
    ] {
        let (status, reply, _) = answer(app.clone(), graphql(query, json!({"c": condition}))).await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            first_error(&reply).contains(
                "paging.pageSize 1000000 is over the limit of 1000 (SW_QUERY_MAX_PAGE_SIZE)"
            ),
            "{reply}"
        );
    }
    // The page sizes the UIs send (15, 20, 21, 201) pass.
    let condition = json!({"queryDuration": duration, "paging": {"pageNum": 1, "pageSize": 201}});
    let (_, reply, _) = answer(app, graphql(logs, json!({"c": condition}))).await;
    assert!(reply["errors"].is_null(), "{reply}");
    assert_eq!(reply["data"]["queryLogs"]["logs"], json!([]));
}

#[tokio::test]
async fn a_query_past_its_time_limit_gets_a_clear_error_in_time() {
    let limits = QueryLimits {
        timeout: Duration::from_millis(300),
        ..QueryLimits::default()
    };
    let app = app(Duration::from_secs(3), limits);
    let started = Instant::now();
    let (status, reply, _) = answer(
        app,
        graphql(
            "query { listServices(layer: \"GENERAL\") { name } }",
            json!({}),
        ),
    )
    .await;
    let took = started.elapsed();
    assert_eq!(status, StatusCode::OK);
    assert!(
        first_error(&reply).contains("did not finish within 300 ms (SW_QUERY_TIMEOUT_MS)"),
        "{reply}"
    );
    assert!(took < Duration::from_secs(2), "answered after {took:?}");
}

/// The serving runtime has one worker, as a busy server's ingest workers are all taken: a query
/// that spends two seconds in synchronous storage reads must not hold that worker.
#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn a_slow_query_leaves_the_serving_workers_free() {
    let app = app(Duration::from_secs(2), QueryLimits::default());
    let slow = tokio::spawn(answer(
        app.clone(),
        graphql(
            "query { listServices(layer: \"GENERAL\") { name } }",
            json!({}),
        ),
    ));
    // Let the slow query start its storage read. (A timer would not do: with the only worker
    // blocked, nothing drives timers, which is the very delay this test looks for.)
    std::thread::sleep(Duration::from_millis(300));
    let ping_app = app.clone();
    let started = Instant::now();
    let ping = tokio::spawn(async move {
        let response = ping_app
            .oneshot(
                HttpRequest::get("/ping")
                    .body(Body::empty())
                    .expect("request"),
            )
            .await
            .expect("answered");
        response.status()
    });
    let status = ping.await.expect("ping task");
    let took = started.elapsed();
    assert_eq!(status, StatusCode::OK);
    assert!(
        took < Duration::from_millis(1000),
        "another request waited {took:?} behind the slow query"
    );
    let (status, reply, _) = slow.await.expect("slow task");
    assert_eq!(status, StatusCode::OK);
    assert_eq!(reply["data"]["listServices"], json!([]), "{reply}");
}

/// With one query thread, at most 32 requests are read or wait at once; the rest are answered
/// 503 with `Retry-After` at once instead of piling up, and every admitted one is answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_beyond_the_waiting_cap_are_answered_busy() {
    let limits = QueryLimits {
        threads: 1,
        ..QueryLimits::default()
    };
    let app = app(Duration::from_millis(100), limits);
    let mut requests = Vec::new();
    for _ in 0..40 {
        let app = app.clone();
        requests.push(tokio::spawn(async move {
            let response = app
                .oneshot(graphql(
                    "query { listServices(layer: \"GENERAL\") { name } }",
                    json!({}),
                ))
                .await
                .expect("answered");
            (
                response.status(),
                response.headers().get("retry-after").cloned(),
            )
        }));
    }
    let (mut ok, mut busy) = (0, 0);
    for r in requests {
        match r.await.expect("task") {
            (StatusCode::OK, _) => ok += 1,
            (StatusCode::SERVICE_UNAVAILABLE, Some(retry)) if retry == "1" => busy += 1,
            other => panic!("unexpected answer {other:?}"),
        }
    }
    assert_eq!(ok + busy, 40);
    assert!(busy >= 8, "{busy} answered busy");
    assert!(ok >= 1, "{ok} answered");
}
