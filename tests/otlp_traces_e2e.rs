//! OTLP traces end to end: a mini-program request (a RUM resource carrying a trace id) and the
//! OTLP spans of a two-service backend with that trace id (JSON over HTTP, protobuf over gRPC)
//! → `queryTrace` shows the request as the mini program's exit span at the root and the backend
//! spans linked (a parent in another service as a ref, within a segment as `parentSpanId`), and
//! `queryRumEvents(traceId)` finds the resource and its session;
//! bad OTLP input gets clear errors and loses nothing else.
mod common;

use common::*;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{
    span, status, ResourceSpans, ScopeSpans, Span, Status,
};
use prost::Message;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const SPANS: &str = "query ($traceId: ID!) { trace: queryTrace(traceId: $traceId) { spans { traceId segmentId spanId parentSpanId refs { traceId parentSegmentId parentSpanId type } serviceCode endpointName type isError peer layer tags { key value } logs { time data { key value } } } } }";

/// The mini program's request: Datadog's 64-bit trace and span ids (decimal on the wire).
const TRACE_LOW: u64 = 0x1122_3344_5566_7788;
const RUM_SPAN: u64 = 0x0a0b_0c0d_0e0f_1011;

fn trace_hex() -> String {
    format!("{TRACE_LOW:032x}")
}

fn kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.into())),
        }),
        ..KeyValue::default()
    }
}

fn resource(service: &str) -> Option<Resource> {
    Some(Resource {
        attributes: vec![kv("service.name", service)],
        ..Resource::default()
    })
}

fn otlp_span(id: u64, parent: Option<u64>, name: &str, kind: span::SpanKind, at_ms: u64) -> Span {
    Span {
        trace_id: (TRACE_LOW as u128).to_be_bytes().to_vec(),
        span_id: id.to_be_bytes().to_vec(),
        parent_span_id: parent.map(|p| p.to_be_bytes().to_vec()).unwrap_or_default(),
        name: name.into(),
        kind: kind as i32,
        start_time_unix_nano: at_ms * 1_000_000,
        end_time_unix_nano: (at_ms + 40) * 1_000_000,
        ..Span::default()
    }
}

fn request(service: &str, spans: Vec<Span>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: resource(service),
            scope_spans: vec![ScopeSpans {
                spans,
                ..ScopeSpans::default()
            }],
            ..ResourceSpans::default()
        }],
    }
}

async fn spans_of(server: &Server, trace: &str) -> Vec<Value> {
    let reply = server.graphql(SPANS, json!({"traceId": trace})).await;
    assert!(reply.get("errors").is_none(), "{reply}");
    reply["data"]["trace"]["spans"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

async fn eventually_spans(server: &Server, trace: &str, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let spans = spans_of(server, trace).await;
        if spans.len() >= n {
            return spans;
        }
        assert!(Instant::now() < deadline, "{trace}: {} spans", spans.len());
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn by_endpoint<'a>(spans: &'a [Value], name: &str) -> &'a Value {
    spans
        .iter()
        .find(|s| s["endpointName"] == name)
        .unwrap_or_else(|| panic!("no span {name} in {spans:?}"))
}

#[tokio::test]
async fn a_mini_program_request_and_its_otlp_backend_spans_share_one_trace() {
    let server = Server::start().await;
    let now = chrono::Utc::now().timestamp_millis() as u64 - 60_000;

    // The mini program's request, as the RUM SDK reports it.
    let resource_line = format!(
        r#"{{"date":{now},"type":"resource","service":"shop-mp","version":"1.0","session":{{"id":"s-traced"}},"view":{{"id":"v-1","name":"pages/cart/index"}},"resource":{{"id":"r-traced","type":"xhr","method":"POST","url":"https://api.shop.example/orders","status_code":500,"duration":90000000}},"_dd":{{"trace_id":"{TRACE_LOW}","span_id":"{RUM_SPAN}"}}}}"#
    );
    let (status, text) = server
        .post(
            "/api/v2/rum?ddsource=miniapp&ddtags=env%3Atest&dd-request-id=traced",
            "text/plain;charset=UTF-8",
            resource_line.into_bytes(),
        )
        .await;
    assert_eq!(status, 202, "{text}");

    // The gateway, OTLP/JSON over HTTP as an OpenTelemetry SDK posts it: its server span's
    // parent is the mini program's span; its client span calls the orders service.
    let gateway = json!({"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "gateway"}}]},
        "scopeSpans": [{"spans": [
            {"traceId": trace_hex(), "spanId": "00000000000000a2", "parentSpanId": "00000000000000a1",
             "name": "POST orders", "kind": 3,
             "startTimeUnixNano": ((now + 6) * 1_000_000).to_string(),
             "endTimeUnixNano": ((now + 50) * 1_000_000).to_string(),
             "attributes": [{"key": "server.address", "value": {"stringValue": "orders"}},
                            {"key": "server.port", "value": {"intValue": "8080"}},
                            {"key": "http.request.method", "value": {"stringValue": "POST"}}]},
            {"traceId": trace_hex(), "spanId": "00000000000000a1", "parentSpanId": format!("{RUM_SPAN:016x}"),
             "name": "POST /orders", "kind": 2,
             "startTimeUnixNano": ((now + 5) * 1_000_000).to_string(),
             "endTimeUnixNano": ((now + 60) * 1_000_000).to_string(),
             "status": {"code": 2, "message": "upstream failed"}}
        ]}]
    }]});
    let (status, text) = server
        .post(
            "/v1/traces",
            "application/json",
            serde_json::to_vec(&gateway).unwrap(),
        )
        .await;
    assert_eq!(status, 200, "{text}");

    // The orders service, protobuf over gRPC: a server span under the gateway's client span and
    // a database call under it, failed, with an event.
    let mut db = otlp_span(
        0xb2,
        Some(0xb1),
        "INSERT orders",
        span::SpanKind::Client,
        now + 12,
    );
    db.attributes = vec![kv("db.system", "mysql"), kv("db.statement", "INSERT ...")];
    db.status = Some(Status {
        code: status::StatusCode::Error as i32,
        message: "deadlock".into(),
    });
    db.events = vec![span::Event {
        time_unix_nano: (now + 20) * 1_000_000,
        name: "exception".into(),
        attributes: vec![kv("exception.message", "deadlock found")],
        ..span::Event::default()
    }];
    let orders = request(
        "orders",
        vec![
            db,
            otlp_span(
                0xb1,
                Some(0xa2),
                "POST /orders",
                span::SpanKind::Server,
                now + 10,
            ),
        ],
    );
    let mut client = TraceServiceClient::connect(format!("http://127.0.0.1:{}", server.grpc))
        .await
        .expect("connect");
    let answer = client.export(orders).await.expect("export").into_inner();
    assert!(answer.partial_success.is_none(), "{answer:?}");

    let spans = eventually_spans(&server, &trace_hex(), 5).await;
    assert_eq!(spans.len(), 5, "{spans:?}");
    let gateway_server = spans
        .iter()
        .find(|s| s["endpointName"] == "POST /orders" && s["serviceCode"] == "gateway")
        .unwrap();
    let gateway_client = by_endpoint(&spans, "POST orders");
    let orders_server = spans
        .iter()
        .find(|s| s["endpointName"] == "POST /orders" && s["serviceCode"] == "orders")
        .unwrap();
    let insert = by_endpoint(&spans, "INSERT orders");
    for s in &spans {
        assert_eq!(s["traceId"], trace_hex().as_str());
    }
    assert_eq!(gateway_server["type"], "Entry");
    assert_eq!(gateway_server["isError"], true);
    assert_eq!(gateway_client["type"], "Exit");
    assert_eq!(gateway_client["peer"], "orders:8080");
    assert_eq!(gateway_client["layer"], "Http");
    // Within a segment: parentSpanId (the client span came first in its request).
    assert_eq!(gateway_client["segmentId"], gateway_server["segmentId"]);
    assert_eq!(gateway_client["parentSpanId"], gateway_server["spanId"]);
    assert_eq!(insert["segmentId"], orders_server["segmentId"]);
    assert_eq!(insert["parentSpanId"], orders_server["spanId"]);
    // Across services: a ref to the gateway's client span.
    let refs = orders_server["refs"].as_array().unwrap();
    assert_eq!(refs.len(), 1, "{orders_server}");
    assert_eq!(refs[0]["parentSegmentId"], gateway_client["segmentId"]);
    assert_eq!(refs[0]["parentSpanId"], gateway_client["spanId"]);
    assert_eq!(refs[0]["type"], "CROSS_PROCESS");
    assert_eq!(insert["isError"], true);
    assert_eq!(insert["layer"], "Database");
    let tags = insert["tags"].as_array().unwrap();
    assert!(
        tags.contains(&json!({"key": "db.statement", "value": "INSERT ..."})),
        "{tags:?}"
    );
    let log = &insert["logs"][0];
    assert_eq!(log["time"], (now + 20) as i64);
    assert!(log["data"]
        .as_array()
        .unwrap()
        .contains(&json!({"key": "exception.message", "value": "deadlock found"})));
    // The mini program's request is the exit span at the root, and the gateway's entry span
    // refers to it.
    let request = &spans[0];
    assert_eq!(request["serviceCode"], "shop-mp");
    assert_eq!(request["type"], "Exit");
    assert_eq!(request["endpointName"], "https://api.shop.example/orders");
    assert_eq!(request["peer"], "api.shop.example");
    assert_eq!(request["isError"], true, "answered 500");
    assert!(request["refs"].as_array().unwrap().is_empty());
    let up = gateway_server["refs"].as_array().unwrap();
    assert_eq!(up.len(), 1);
    assert_eq!(up[0]["parentSegmentId"], request["segmentId"]);
    assert_eq!(up[0]["parentSpanId"], request["spanId"]);
    // Trace order: the request, the gateway's entry, then its client span and the orders spans.
    let order: Vec<String> = spans
        .iter()
        .map(|s| {
            format!(
                "{}:{}",
                s["serviceCode"].as_str().unwrap(),
                s["endpointName"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        order,
        [
            "shop-mp:https://api.shop.example/orders",
            "gateway:POST /orders",
            "gateway:POST orders",
            "orders:POST /orders",
            "orders:INSERT orders",
        ]
    );

    // The trace list finds both services' segments by the trace id.
    let reply = server
        .graphql(
            "query ($c: TraceQueryCondition) { d: queryBasicTraces(condition: $c) { traces { segmentId endpointNames isError traceIds } } }",
            json!({"c": {"traceId": trace_hex(), "queryDuration": window(30, "MINUTE"), "traceState": "ALL", "queryOrder": "BY_START_TIME", "paging": {"pageNum": 1, "pageSize": 20}}}),
        )
        .await;
    let listed = reply["data"]["d"]["traces"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        listed.len(),
        3,
        "the request's, the gateway's and the orders' segments: {reply}"
    );
    assert!(
        listed
            .iter()
            .all(|t| t["traceIds"][0] == trace_hex().as_str()),
        "{reply}"
    );

    // From the trace back to the mini program: the resource and its session.
    let reply = server
        .graphql(
            "query ($c: RumEventCondition!) { r: queryRumEvents(condition: $c) { total events { type sessionId viewName traceId status } } }",
            json!({"c": {"traceId": trace_hex(), "duration": window(30, "MINUTE"), "paging": {"pageNum": 1, "pageSize": 10}}}),
        )
        .await;
    let events = reply["data"]["r"]["events"].as_array().unwrap();
    assert_eq!(events.len(), 1, "{reply}");
    assert_eq!(events[0]["type"], "resource");
    assert_eq!(events[0]["sessionId"], "s-traced");
    assert_eq!(events[0]["status"], 500);
    assert_eq!(events[0]["traceId"], trace_hex().as_str());
}

#[tokio::test]
async fn bad_otlp_traces_get_clear_errors_and_lose_nothing_else() {
    let server = Server::start_with(&[("SW_CORE_MAX_BODY_BYTES", "67108864")]).await;
    let now = chrono::Utc::now().timestamp_millis() as u64 - 60_000;
    let good = otlp_span(0xc1, None, "GET /health", span::SpanKind::Server, now);

    // Truncated protobuf: 400 naming the decoding failure; nothing stored.
    let body = request("svc-bad", vec![good.clone()]).encode_to_vec();
    let (status, text) = server
        .post(
            "/v1/traces",
            "application/x-protobuf",
            body[..body.len() - 7].to_vec(),
        )
        .await;
    assert_eq!(status, 400, "{text}");
    assert!(!text.is_empty());

    // Wrong id lengths and no trace id: those spans are refused and named; the good one kept.
    let mut short_trace = otlp_span(0xc2, None, "short trace", span::SpanKind::Server, now);
    short_trace.trace_id.truncate(8);
    let mut no_trace = otlp_span(0xc3, None, "no trace", span::SpanKind::Server, now);
    no_trace.trace_id.clear();
    let mut long_span = otlp_span(0xc4, None, "long span id", span::SpanKind::Server, now);
    long_span.span_id = vec![1; 16];
    // Sent as OTLP/JSON (ids in hex), so the answer's partial success reads as text.
    let body = serde_json::to_vec(&request(
        "svc-bad",
        vec![short_trace, good, no_trace, long_span],
    ))
    .unwrap();
    let (status, text) = server.post("/v1/traces", "application/json", body).await;
    assert_eq!(status, 200, "{text}");
    let answer: Value = serde_json::from_str(&text).unwrap();
    let partial = &answer["partialSuccess"];
    assert_eq!(
        partial["rejectedSpans"].to_string().trim_matches('"'),
        "3",
        "{answer}"
    );
    assert!(
        partial["errorMessage"]
            .as_str()
            .unwrap()
            .contains("trace id must be 16 bytes"),
        "{answer}"
    );
    let spans = eventually_spans(&server, &trace_hex(), 1).await;
    assert_eq!(spans.len(), 1, "{spans:?}");
    assert_eq!(spans[0]["endpointName"], "GET /health");

    // 100,000 spans in one request: one segment keeps the span limit's worth, the rest are
    // counted as rejected, the server answers and keeps serving.
    let many: Vec<Span> = (0..100_000u64)
        .map(|i| {
            let mut s = otlp_span(
                0x1_0000 + i,
                Some(0xc1),
                "work",
                span::SpanKind::Internal,
                now,
            );
            s.trace_id = 0xfeed_u128.to_be_bytes().to_vec();
            s
        })
        .collect();
    let body = request("svc-many", many).encode_to_vec();
    let started = Instant::now();
    let (status, text) = server
        .post("/v1/traces", "application/x-protobuf", body)
        .await;
    assert!(started.elapsed() < Duration::from_secs(60));
    assert_eq!(status, 200, "{text}");
    let spans = eventually_spans(&server, &format!("{:032x}", 0xfeed_u128), 1).await;
    assert!(
        !spans.is_empty() && spans.len() < 100_000,
        "{}",
        spans.len()
    );
    // Nothing else lost: the good span is still there.
    assert_eq!(spans_of(&server, &trace_hex()).await.len(), 1);
}

#[tokio::test]
async fn resources_whose_trace_is_kept_elsewhere_link_out() {
    let server = Server::start_with(&[(
        "SW_TRACE_LINK_TEMPLATE",
        "https://jaeger.example/trace/{traceId}",
    )])
    .await;
    let now = chrono::Utc::now().timestamp_millis() as u64 - 60_000;
    // Two traced requests; only the first one's backend reports to Skylark.
    let line = |id: &str, trace: u64, span: u64| {
        format!(
            r#"{{"date":{now},"type":"resource","service":"shop-mp","version":"1.0","session":{{"id":"s-links"}},"view":{{"id":"v-1","name":"pages/cart/index"}},"resource":{{"id":"{id}","type":"xhr","method":"GET","url":"https://api.shop.example/cart","status_code":200,"duration":1000000}},"_dd":{{"trace_id":"{trace}","span_id":"{span}"}}}}"#
        )
    };
    let body = [
        line("r-here", TRACE_LOW, RUM_SPAN),
        line("r-away", 0xabc, 0xdef),
    ]
    .join("\n");
    let (status, text) = server
        .post(
            "/api/v2/rum?ddsource=miniapp&ddtags=env%3Atest&dd-request-id=links",
            "text/plain;charset=UTF-8",
            body.into_bytes(),
        )
        .await;
    assert_eq!(status, 202, "{text}");
    let backend = request(
        "gateway",
        vec![otlp_span(
            0xa1,
            Some(RUM_SPAN),
            "GET /cart",
            span::SpanKind::Server,
            now + 2,
        )],
    );
    let (status, text) = server
        .post(
            "/v1/traces",
            "application/x-protobuf",
            backend.encode_to_vec(),
        )
        .await;
    assert_eq!(status, 200, "{text}");
    eventually_spans(&server, &trace_hex(), 2).await;

    let reply = server
        .graphql(
            "query ($c: RumEventCondition!) { r: queryRumEvents(condition: $c) { events { name traceId traceLink } } }",
            json!({"c": {"sessionId": "s-links", "duration": window(30, "MINUTE"), "paging": {"pageNum": 1, "pageSize": 10}}}),
        )
        .await;
    let events = reply["data"]["r"]["events"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(events.len(), 2, "{reply}");
    for e in &events {
        let trace = e["traceId"].as_str().unwrap();
        if trace == trace_hex() {
            assert!(e["traceLink"].is_null(), "held in Skylark: {e}");
        } else {
            assert_eq!(
                e["traceLink"],
                format!("https://jaeger.example/trace/{trace}").as_str()
            );
        }
    }
    let reply = server
        .graphql(
            "query { t: querySessionTimeline(sessionId: \"s-links\") { views { events { traceId traceLink } } } }",
            json!({}),
        )
        .await;
    let linked: Vec<&Value> = reply["data"]["t"]["views"][0]["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["traceLink"].is_string())
        .collect();
    assert_eq!(linked.len(), 1, "{reply}");
    assert_eq!(linked[0]["traceId"], format!("{:032x}", 0xabc).as_str());
}

#[tokio::test]
async fn a_skyapm_request_and_its_sw8_linked_backend_segment_share_one_trace() {
    let server = Server::start().await;
    let now = chrono::Utc::now().timestamp_millis() - 60_000;
    let trace = "b0860bd3-a9b6-4b2a-a730-df0f43fde66f";
    // The SkyAPM mini-program SDK's exit span; its sw8 header carried the trace, this segment and
    // span 0 to the backend, whose agent reports the link as a ref.
    let mini_program = json!([{
        "traceId": trace, "traceSegmentId": "mp-seg-1", "service": "mini-program-sim-wechat",
        "serviceInstance": "sim-instance-1",
        "spans": [{"operationName": "pages/search/index", "startTime": now, "endTime": now + 80,
                   "spanId": 0, "parentSpanId": -1, "spanLayer": "Http", "spanType": "Exit",
                   "isError": false, "componentId": 10002, "peer": "api.example.com",
                   "tags": [{"key": "http.method", "value": "GET"},
                            {"key": "url", "value": "https://api.example.com/checkout"}]}]
    }]);
    let backend = json!([{
        "traceId": trace, "traceSegmentId": "api-seg-1", "service": "checkout-api",
        "serviceInstance": "api-1",
        "spans": [
            {"operationName": "GET:/checkout", "startTime": now + 5, "endTime": now + 70,
             "spanId": 0, "parentSpanId": -1, "spanLayer": "Http", "spanType": "Entry",
             "isError": false, "componentId": 1, "peer": "",
             "refs": [{"refType": "CrossProcess", "traceId": trace,
                       "parentTraceSegmentId": "mp-seg-1", "parentSpanId": 0,
                       "parentService": "mini-program-sim-wechat",
                       "parentServiceInstance": "sim-instance-1",
                       "parentEndpoint": "pages/search/index",
                       "networkAddressUsedAtPeer": "api.example.com"}]},
            {"operationName": "SELECT cart", "startTime": now + 10, "endTime": now + 30,
             "spanId": 1, "parentSpanId": 0, "spanLayer": "Database", "spanType": "Exit",
             "isError": false, "componentId": 5, "peer": "mysql:3306"}
        ]
    }]);
    for body in [&backend, &mini_program] {
        let (status, text) = server
            .post(
                "/v3/segments",
                "application/json",
                serde_json::to_vec(body).unwrap(),
            )
            .await;
        assert_eq!(status, 200, "{text}");
    }
    let spans = eventually_spans(&server, trace, 3).await;
    let order: Vec<String> = spans
        .iter()
        .map(|s| {
            format!(
                "{}:{}",
                s["serviceCode"].as_str().unwrap(),
                s["endpointName"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        order,
        [
            "mini-program-sim-wechat:pages/search/index",
            "checkout-api:GET:/checkout",
            "checkout-api:SELECT cart",
        ]
    );
    assert_eq!(spans[1]["refs"][0]["parentSegmentId"], "mp-seg-1");
    assert_eq!(spans[1]["refs"][0]["parentSpanId"], 0);
    assert_eq!(spans[2]["parentSpanId"], spans[1]["spanId"]);
}
