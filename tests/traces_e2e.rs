//! Trace segments end to end: SDK segments in over HTTP and gRPC, trace list, trace detail and
//! topology out.
mod common;

use common::*;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};

const BASIC_TRACES: &str = "query queryTraces($condition: TraceQueryCondition) { data: queryBasicTraces(condition: $condition) { traces { key: segmentId endpointNames duration start isError traceIds } } }";
const SPANS: &str = "query querySpans($traceId: ID!) { trace: queryTrace(traceId: $traceId) { spans { traceId segmentId spanId parentSpanId refs { traceId parentSegmentId parentSpanId type } serviceCode serviceInstanceName startTime endTime endpointName type peer component isError layer tags { key value } logs { time data { key value } } attachedEvents { startTime { seconds nanos } event endTime { seconds nanos } tags { key value } summary { key value } } } } }";

/// What the fixtures hold, per platform: service, pages, peers, error segment count.
#[derive(Default, Debug)]
struct Expected {
    service: String,
    pages: BTreeSet<String>,
    peers: BTreeSet<String>,
    trace_ids: BTreeSet<String>,
    errors: usize,
}

/// Every `/v3/segments` fixture, re-timed, with what it holds per platform.
fn load_segments() -> Option<(Vec<Value>, BTreeMap<String, Expected>)> {
    let dir = fixtures_dir()?;
    let latest = chrono::Utc::now().timestamp_millis() - 30_000;
    let mut bodies = Vec::new();
    let mut expected: BTreeMap<String, Expected> = BTreeMap::new();
    for f in fixtures(&dir, "/v3/segments") {
        let body = retime_segments(&f.body, latest);
        for seg in body.as_array().cloned().unwrap_or_default() {
            let e = expected.entry(f.platform.clone()).or_default();
            e.service = seg["service"].as_str().unwrap_or_default().to_string();
            e.trace_ids
                .insert(seg["traceId"].as_str().unwrap_or_default().to_string());
            for span in seg["spans"].as_array().cloned().unwrap_or_default() {
                e.pages.insert(
                    span["operationName"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                );
                if let Some(p) = span["peer"].as_str().filter(|p| !p.is_empty()) {
                    e.peers.insert(p.to_string());
                }
                if span["isError"] == true {
                    e.errors += 1;
                }
            }
        }
        bodies.push(body);
    }
    Some((bodies, expected))
}

async fn traces(server: &Server, condition: Value) -> Vec<Value> {
    let reply = server
        .graphql(BASIC_TRACES, json!({"condition": condition}))
        .await;
    assert!(reply.get("errors").is_none(), "{reply}");
    reply["data"]["data"]["traces"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn condition(service_id: Option<&str>, state: &str) -> Value {
    let mut c = json!({"queryDuration": window(30, "SECOND"), "traceState": state, "queryOrder": "BY_START_TIME",
                       "paging": {"pageNum": 1, "pageSize": 500}, "minTraceDuration": null, "maxTraceDuration": null});
    if let Some(id) = service_id {
        c["serviceId"] = json!(id);
    }
    c
}

/// The assertions of the issue, per platform, against a server holding the fixtures' segments.
async fn assert_traces_answer(server: &Server, expected: &BTreeMap<String, Expected>) {
    let everything = traces(server, condition(None, "ALL")).await;
    for (platform, e) in expected {
        let service_id = format!("{}.1", b64(&e.service));
        let list = traces(server, condition(Some(&service_id), "ALL")).await;
        assert!(!list.is_empty(), "{platform}: no traces");
        let pages: BTreeSet<String> = list
            .iter()
            .flat_map(|t| t["endpointNames"].as_array().cloned().unwrap_or_default())
            .filter_map(|p| p.as_str().map(str::to_string))
            .collect();
        assert_eq!(pages, e.pages, "{platform}: the page is the endpoint name");
        let ids: BTreeSet<String> = list
            .iter()
            .flat_map(|t| t["traceIds"].as_array().cloned().unwrap_or_default())
            .filter_map(|p| p.as_str().map(str::to_string))
            .collect();
        assert_eq!(ids, e.trace_ids, "{platform}");
        // The UI's first query has no service id: it lists these too.
        let first_ids: BTreeSet<String> = everything
            .iter()
            .filter_map(|t| t["traceIds"][0].as_str().map(str::to_string))
            .collect();
        assert!(
            e.trace_ids.is_subset(&first_ids),
            "{platform}: list without service id"
        );
        let errors = traces(server, condition(Some(&service_id), "ERROR")).await;
        assert_eq!(errors.len(), e.errors, "{platform}: ERROR filter");
        assert!(errors.iter().all(|t| t["isError"] == true));
        if e.errors > 0 {
            let ok = traces(server, condition(Some(&service_id), "SUCCESS")).await;
            assert!(ok.iter().all(|t| t["isError"] == false));
            assert_eq!(ok.len() + errors.len(), list.len());
        }

        let trace_id = list[0]["traceIds"][0]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let reply = server.graphql(SPANS, json!({"traceId": trace_id})).await;
        assert!(reply.get("errors").is_none(), "{reply}");
        let spans = reply["data"]["trace"]["spans"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let span = spans
            .iter()
            .find(|s| s["type"] == "Exit")
            .unwrap_or_else(|| panic!("no exit span: {reply}"));
        let component = if platform == "wechat" {
            "WeChat-MiniProgram"
        } else {
            "AliPay-MiniProgram"
        };
        assert_eq!(span["component"], component);
        assert_eq!(span["layer"], "Http");
        assert_eq!(span["serviceCode"], e.service.as_str());
        assert!(
            span["peer"].as_str().is_some_and(|p| e.peers.contains(p)),
            "{span}"
        );
        let keys: BTreeSet<&str> = span["tags"]
            .as_array()
            .map(|t| t.iter().filter_map(|t| t["key"].as_str()).collect())
            .unwrap_or_default();
        for k in ["http.method", "url", "miniprogram.platform"] {
            assert!(keys.contains(k), "{k} in {span}");
        }
        assert!(
            keys.contains("http.status_code") || keys.contains("error.message"),
            "{span}"
        );

        // Topology: an edge from the mini-program to each peer host, with a call rate.
        let topo = server
            .graphql("query ($ids: [ID!]!, $d: Duration!) { t: getServicesTopology(serviceIds: $ids, duration: $d) { nodes { id name isReal } calls { id source target } } }",
                json!({"ids": [service_id], "d": window(30, "MINUTE")}))
            .await;
        assert!(topo.get("errors").is_none(), "{topo}");
        let calls = topo["data"]["t"]["calls"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        for peer in &e.peers {
            let target = format!("{}.1", b64(peer));
            assert!(
                calls
                    .iter()
                    .any(|c| c["source"] == service_id.as_str() && c["target"] == target.as_str()),
                "{peer}: {topo}"
            );
            let cpm = server
                .graphql("query ($e: Entity!, $d: Duration!) { r: execExpression(expression: \"sum(service_relation_client_cpm)\", entity: $e, duration: $d) { error results { values { value } } } }",
                    json!({"e": {"serviceName": e.service, "normal": true, "destServiceName": peer, "destNormal": true}, "d": window(30, "MINUTE")}))
                .await;
            let value: f64 = cpm["data"]["r"]["results"][0]["values"][0]["value"]
                .as_str()
                .and_then(|v| v.parse().ok())
                .unwrap_or(0.0);
            assert!(value > 0.0, "{peer}: {cpm}");
        }
        // Segments register nothing: the service keeps exactly its mini-program layer.
        let svc = server
            .graphql(
                "query ($n: String!) { s: findService(serviceName: $n) { layers } }",
                json!({"n": e.service}),
            )
            .await;
        assert_eq!(
            svc["data"]["s"]["layers"].as_array().map(Vec::len),
            Some(1),
            "{svc}"
        );
    }
}

/// Registers the mini-program services the way the SDK does (metrics through MAL).
async fn register_services(server: &Server) {
    let Some(dir) = fixtures_dir() else { return };
    let latest = now_nanos() - 60_000_000_000;
    for f in fixtures(&dir, "/v1/metrics")
        .into_iter()
        .filter(|f| f.file.contains("-demo-"))
    {
        assert_eq!(
            server
                .post("/v1/metrics", &f.content_type, retime_metrics(&f, latest))
                .await
                .0,
            200
        );
    }
}

#[tokio::test]
async fn segments_over_http_answer_trace_and_topology_queries() {
    let Some((bodies, expected)) = load_segments() else {
        return;
    };
    let server = Server::start().await;
    register_services(&server).await;
    for body in &bodies {
        let (status, text) = server
            .post(
                "/v3/segments",
                "application/json",
                serde_json::to_vec(body).unwrap(),
            )
            .await;
        assert_eq!(status, 200, "{text}");
    }
    assert_eq!(expected.len(), 2, "both platforms");
    assert_traces_answer(&server, &expected).await;
}

mod wire {
    //! The trace protocol as its own prost messages, so the gRPC path is checked against the wire
    //! format independently of the server's generated code.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct KeyStringValuePair {
        #[prost(string, tag = "1")]
        pub key: String,
        #[prost(string, tag = "2")]
        pub value: String,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct SpanObject {
        #[prost(int32, tag = "1")]
        pub span_id: i32,
        #[prost(int32, tag = "2")]
        pub parent_span_id: i32,
        #[prost(int64, tag = "3")]
        pub start_time: i64,
        #[prost(int64, tag = "4")]
        pub end_time: i64,
        #[prost(string, tag = "6")]
        pub operation_name: String,
        #[prost(string, tag = "7")]
        pub peer: String,
        #[prost(int32, tag = "8")]
        pub span_type: i32,
        #[prost(int32, tag = "9")]
        pub span_layer: i32,
        #[prost(int32, tag = "10")]
        pub component_id: i32,
        #[prost(bool, tag = "11")]
        pub is_error: bool,
        #[prost(message, repeated, tag = "12")]
        pub tags: Vec<KeyStringValuePair>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct SegmentObject {
        #[prost(string, tag = "1")]
        pub trace_id: String,
        #[prost(string, tag = "2")]
        pub trace_segment_id: String,
        #[prost(message, repeated, tag = "3")]
        pub spans: Vec<SpanObject>,
        #[prost(string, tag = "4")]
        pub service: String,
        #[prost(string, tag = "5")]
        pub service_instance: String,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct SegmentCollection {
        #[prost(message, repeated, tag = "1")]
        pub segments: Vec<SegmentObject>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Commands {}
}

fn to_wire(seg: &Value) -> wire::SegmentObject {
    let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
    let n = |v: &Value| {
        v.as_i64()
            .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
            .unwrap_or(0)
    };
    wire::SegmentObject {
        trace_id: s(&seg["traceId"]),
        trace_segment_id: s(&seg["traceSegmentId"]),
        service: s(&seg["service"]),
        service_instance: s(&seg["serviceInstance"]),
        spans: seg["spans"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|sp| wire::SpanObject {
                span_id: n(&sp["spanId"]) as i32,
                parent_span_id: n(&sp["parentSpanId"]) as i32,
                start_time: n(&sp["startTime"]),
                end_time: n(&sp["endTime"]),
                operation_name: s(&sp["operationName"]),
                peer: s(&sp["peer"]),
                span_type: match sp["spanType"].as_str() {
                    Some("Entry") => 0,
                    Some("Local") => 2,
                    _ => 1,
                },
                span_layer: if sp["spanLayer"] == "Http" { 3 } else { 0 },
                component_id: n(&sp["componentId"]) as i32,
                is_error: sp["isError"] == true,
                tags: sp["tags"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                    .iter()
                    .map(|t| wire::KeyStringValuePair {
                        key: s(&t["key"]),
                        value: s(&t["value"]),
                    })
                    .collect(),
            })
            .collect(),
    }
}

#[tokio::test]
async fn segments_over_grpc_give_the_same_answers() {
    let Some((bodies, expected)) = load_segments() else {
        return;
    };
    let server = Server::start().await;
    register_services(&server).await;
    let segments: Vec<wire::SegmentObject> = bodies
        .iter()
        .flat_map(|b| b.as_array().cloned().unwrap_or_default())
        .map(|s| to_wire(&s))
        .collect();
    let (first, second) = segments.split_at(segments.len() / 2);
    let channel =
        tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{}", server.grpc))
            .unwrap()
            .connect()
            .await
            .expect("connect");
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    // collect: a client stream.
    let path = tonic::codegen::http::uri::PathAndQuery::from_static(
        "/skywalking.v3.TraceSegmentReportService/collect",
    );
    let codec: tonic_prost::ProstCodec<wire::SegmentObject, wire::Commands> =
        tonic_prost::ProstCodec::default();
    let stream = tokio_stream::iter(first.to_vec());
    grpc.client_streaming(tonic::Request::new(stream), path, codec)
        .await
        .expect("collect");
    // collectInSync: one collection.
    grpc.ready().await.unwrap();
    let path = tonic::codegen::http::uri::PathAndQuery::from_static(
        "/skywalking.v3.TraceSegmentReportService/collectInSync",
    );
    let codec: tonic_prost::ProstCodec<wire::SegmentCollection, wire::Commands> =
        tonic_prost::ProstCodec::default();
    grpc.unary(
        tonic::Request::new(wire::SegmentCollection {
            segments: second.to_vec(),
        }),
        path,
        codec,
    )
    .await
    .expect("collectInSync");
    assert_traces_answer(&server, &expected).await;
}

#[tokio::test]
async fn bad_segments_get_clear_errors_and_lose_nothing_else() {
    // A 100,000-span segment is ~20 MB of JSON: let it past the body limit to reach the span cap.
    let server = Server::start_with(&[("SW_CORE_MAX_BODY_BYTES", "67108864")]).await;
    let now = chrono::Utc::now().timestamp_millis();
    let seg = |trace: &str, id: &str, start: i64, end: i64, spans: usize| {
        let span = json!({"spanId": 0, "parentSpanId": -1, "startTime": start, "endTime": end, "operationName": "pages/a",
                          "peer": "api.example.com", "spanType": "Exit", "spanLayer": "Http", "componentId": 10002, "isError": false});
        json!({"traceId": trace, "traceSegmentId": id, "service": "bad-seg-app", "serviceInstance": "-", "spans": vec![span; spans]})
    };
    let (status, text) = server
        .post(
            "/v3/segments",
            "application/json",
            b"[{\"traceId\": ".to_vec(),
        )
        .await;
    assert_eq!(status, 400, "{text}");
    let batch = json!([
        seg("t-good", "s-good", now - 2000, now - 1000, 1),
        seg("t-neg", "s-neg", now - 1000, now - 2000, 1),
        seg("", "s-noid", now - 2000, now - 1000, 1),
        seg("t-huge", "s-huge", now - 2000, now - 1000, 100_000)
    ]);
    let (status, text) = server
        .post(
            "/v3/segments",
            "application/json",
            serde_json::to_vec(&batch).unwrap(),
        )
        .await;
    assert_eq!(status, 400, "{text}");
    assert!(
        text.contains("[1]") && text.contains("[2]") && text.contains("[3]"),
        "each bad segment named: {text}"
    );
    let (status, text) = server
        .post(
            "/v3/segment",
            "application/json",
            serde_json::to_vec(&seg("t-one", "s-one", now - 500, now - 100, 1)).unwrap(),
        )
        .await;
    assert_eq!(status, 200, "{text}");
    let list = traces(
        &server,
        condition(Some(&format!("{}.1", b64("bad-seg-app"))), "ALL"),
    )
    .await;
    let ids: BTreeSet<String> = list
        .iter()
        .filter_map(|t| t["traceIds"][0].as_str().map(str::to_string))
        .collect();
    assert_eq!(
        ids,
        BTreeSet::from(["t-good".to_string(), "t-one".to_string()])
    );
}
