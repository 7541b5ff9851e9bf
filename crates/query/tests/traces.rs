//! Trace lists and trace detail as swctl and the UIs ask for them, over the real in-memory
//! storage.

use async_graphql::{Request, Variables};
use serde_json::{json, Value};
use skylark_core::{
    EndpointId, InstanceId, MetricCatalog, RefType, Segment, SegmentRecord, SegmentRef, ServiceId,
    Span, SpanLayer, SpanLog, SpanType, Step, TimeBucket,
};
use skylark_query::{QueryContext, SkylarkSchema};
use skylark_storage::{MemStorage, Storage};
use std::sync::Arc;

const DOCS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/reference/skywalking/swctl/documents"
);
const BASIC: &str = "query ($condition: TraceQueryCondition) { data: queryBasicTraces(condition: $condition) { traces { key: segmentId endpointNames duration start isError traceIds } debuggingTrace { traceId } } }";
const WECHAT: &str = "mini-program-sim-wechat";
const ALIPAY: &str = "mini-program-sim-alipay";

fn at(hhmm: &str, seconds: i64) -> i64 {
    TimeBucket::parse(&format!("2026-05-01 {hhmm}"), Step::Minute)
        .unwrap()
        .start_epoch_ms()
        .unwrap()
        + seconds * 1000
}

/// One mini-program request: a single exit span, as the SDK sends it.
fn request(
    service: &str,
    trace: &str,
    start: i64,
    latency: i64,
    page: &str,
    error: bool,
) -> Segment {
    let component = if service == WECHAT { 10002 } else { 10003 };
    let mut tags = vec![
        ("http.method".to_string(), "GET".to_string()),
        (
            "url".to_string(),
            "https://api.example.com/v1/items".to_string(),
        ),
    ];
    if error {
        tags.push(("error.message".into(), "timeout".into()));
    } else {
        tags.push(("http.status_code".into(), "200".into()));
    }
    Segment {
        trace_id: trace.into(),
        segment_id: format!("{trace}-seg"),
        service: service.into(),
        service_instance: "sim".into(),
        spans: vec![Span {
            span_id: 0,
            parent_span_id: -1,
            start_time_ms: start,
            end_time_ms: start + latency,
            refs: Vec::new(),
            operation_name: page.into(),
            peer: "api.example.com".into(),
            span_type: SpanType::Exit,
            span_layer: SpanLayer::Http,
            component_id: component,
            is_error: error,
            tags,
            logs: Vec::new(),
            skip_analysis: false,
        }],
        is_size_limited: false,
    }
}

/// A two-segment trace: a backend entry span whose parent is the mini-program's exit span.
fn backend_child() -> Segment {
    Segment {
        trace_id: "t-fast".into(),
        segment_id: "t-fast-backend".into(),
        service: "backend".into(),
        service_instance: "pod-1".into(),
        spans: vec![
            Span {
                span_id: 1,
                parent_span_id: 0,
                start_time_ms: at("1205", 0) + 3,
                end_time_ms: at("1205", 0) + 5,
                operation_name: "SELECT".into(),
                peer: "db:3306".into(),
                span_type: SpanType::Exit,
                span_layer: SpanLayer::Database,
                component_id: 33,
                ..Span::default()
            },
            Span {
                span_id: 0,
                parent_span_id: -1,
                start_time_ms: at("1205", 0) + 2,
                end_time_ms: at("1205", 0) + 8,
                refs: vec![SegmentRef {
                    ref_type: RefType::CrossProcess,
                    trace_id: "t-fast".into(),
                    parent_segment_id: "t-fast-seg".into(),
                    parent_span_id: 0,
                    ..SegmentRef::default()
                }],
                operation_name: "/v1/items".into(),
                span_type: SpanType::Entry,
                component_id: 99_999,
                logs: vec![SpanLog {
                    time_ms: at("1205", 0) + 4,
                    data: vec![("event".into(), "error".into())],
                }],
                ..Span::default()
            },
        ],
        is_size_limited: false,
    }
}

fn schema() -> SkylarkSchema {
    let storage = MemStorage::new();
    let segments = [
        request(
            WECHAT,
            "t-fast",
            at("1205", 0),
            10,
            "pages/index/index",
            false,
        ),
        request(
            WECHAT,
            "t-slow",
            at("1210", 0),
            900,
            "pages/list/list",
            false,
        ),
        request(
            WECHAT,
            "t-error",
            at("1215", 0),
            300,
            "pages/index/index",
            true,
        ),
        request(
            ALIPAY,
            "t-alipay",
            at("1220", 0),
            50,
            "pages/pay/pay",
            false,
        ),
        request(
            WECHAT,
            "t-old",
            at("0900", 0),
            20,
            "pages/index/index",
            false,
        ),
        backend_child(),
    ];
    storage
        .write_segments(
            segments
                .iter()
                .map(|s| SegmentRecord::from_segment(s).unwrap())
                .collect(),
        )
        .unwrap();
    skylark_query::schema(QueryContext {
        storage: Arc::new(storage),
        catalog: Arc::new(MetricCatalog::new()),
        version: "10.3.0".into(),
        metrics_ttl_days: 7,
        records_ttl_days: 3,
        mqe_limits: Default::default(),
    })
}

async fn run(schema: &SkylarkSchema, doc: &str, vars: Value) -> Value {
    let resp = schema
        .execute(Request::new(doc).variables(Variables::from_json(vars)))
        .await;
    assert!(resp.errors.is_empty(), "errors: {:?}", resp.errors);
    resp.data.into_json().unwrap()
}

fn window() -> Value {
    json!({"start": "2026-05-01 120000", "end": "2026-05-01 123059", "step": "SECOND", "coldStage": false})
}

/// Segment ids returned for a booster-style condition plus `extra`.
async fn segment_ids(schema: &SkylarkSchema, extra: Value) -> Vec<String> {
    let mut c = json!({"queryDuration": window(), "traceState": "ALL", "queryOrder": "BY_START_TIME",
                       "paging": {"pageNum": 1, "pageSize": 20}, "minTraceDuration": null, "maxTraceDuration": null});
    for (k, v) in extra.as_object().unwrap() {
        c[k] = v.clone();
    }
    let data = run(schema, BASIC, json!({ "condition": c })).await;
    assert_eq!(data["data"]["debuggingTrace"], Value::Null);
    data["data"]["traces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["key"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn trace_list_without_and_with_a_service() {
    let schema = schema();
    // The UI's first query carries no service: every service's segments, latest first.
    assert_eq!(
        segment_ids(&schema, json!({})).await,
        vec![
            "t-alipay-seg",
            "t-error-seg",
            "t-slow-seg",
            "t-fast-backend",
            "t-fast-seg"
        ]
    );
    let sid = ServiceId::new(WECHAT, true);
    assert_eq!(
        segment_ids(
            &schema,
            json!({"serviceId": sid.as_str(), "serviceInstanceId": "", "endpointId": "", "traceId": ""})
        )
        .await,
        vec!["t-error-seg", "t-slow-seg", "t-fast-seg"]
    );
    let page = EndpointId::new(&sid, "pages/index/index");
    assert_eq!(
        segment_ids(&schema, json!({"endpointId": page.as_str()})).await,
        vec!["t-error-seg", "t-fast-seg"]
    );
    let instance = InstanceId::new(&ServiceId::new(ALIPAY, true), "sim");
    assert_eq!(
        segment_ids(&schema, json!({"serviceInstanceId": instance.as_str()})).await,
        vec!["t-alipay-seg"]
    );
    assert_eq!(
        segment_ids(&schema, json!({"traceId": "t-fast"})).await,
        vec!["t-fast-backend", "t-fast-seg"]
    );
}

#[tokio::test]
async fn basic_trace_fields() {
    let schema = schema();
    let c = json!({"condition": {"queryDuration": window(), "traceState": "ERROR", "queryOrder": "BY_START_TIME",
                                 "paging": {"pageNum": 1, "pageSize": 20}}});
    let data = run(&schema, BASIC, c).await;
    assert_eq!(
        data["data"]["traces"],
        json!([{"key": "t-error-seg", "endpointNames": ["pages/index/index"], "duration": 300,
                "start": at("1215", 0).to_string(), "isError": true, "traceIds": ["t-error"]}])
    );
}

#[tokio::test]
async fn state_order_duration_bounds_tags_and_paging() {
    let schema = schema();
    assert_eq!(
        segment_ids(
            &schema,
            json!({"traceState": "SUCCESS", "serviceId": ServiceId::new(WECHAT, true).as_str()})
        )
        .await,
        vec!["t-slow-seg", "t-fast-seg"]
    );
    assert_eq!(
        segment_ids(&schema, json!({"queryOrder": "BY_DURATION"})).await,
        vec![
            "t-slow-seg",
            "t-error-seg",
            "t-alipay-seg",
            "t-fast-seg",
            "t-fast-backend"
        ]
    );
    assert_eq!(
        segment_ids(
            &schema,
            json!({"minTraceDuration": 40, "maxTraceDuration": 400})
        )
        .await,
        vec!["t-alipay-seg", "t-error-seg"]
    );
    assert_eq!(
        segment_ids(
            &schema,
            json!({"tags": [{"key": "http.status_code", "value": "200"}]})
        )
        .await,
        vec!["t-alipay-seg", "t-slow-seg", "t-fast-seg"]
    );
    assert_eq!(
        segment_ids(
            &schema,
            json!({"queryOrder": "BY_DURATION", "paging": {"pageNum": 2, "pageSize": 2}})
        )
        .await,
        vec!["t-alipay-seg", "t-fast-seg"]
    );
}

#[tokio::test]
async fn swctl_trace_list_document() {
    let Ok(doc) = std::fs::read_to_string(format!("{DOCS}/extra_trace_Traces.graphql")) else {
        eprintln!("skipping: {DOCS}/extra_trace_Traces.graphql is absent");
        return;
    };
    let schema = schema();
    let vars = json!({"condition": {"serviceId": "", "serviceInstanceId": "", "traceId": "", "endpointId": "",
        "queryDuration": {"start": "2026-05-01 1200", "end": "2026-05-01 1230", "step": "MINUTE", "coldStage": false},
        "traceState": "ALL", "queryOrder": "BY_DURATION", "paging": {"pageNum": 1, "pageSize": 15}}});
    let data = run(&schema, &doc, vars).await;
    let traces = data["result"]["traces"].as_array().unwrap();
    assert_eq!(traces.len(), 5);
    assert_eq!(traces[0]["segmentId"], "t-slow-seg");
    assert_eq!(traces[0]["duration"], 900);
}

#[tokio::test]
async fn query_trace_spans_carry_oap_names() {
    let Ok(doc) =
        std::fs::read_to_string(format!("{DOCS}/extra_trace_TraceWithoutDuration.graphql"))
    else {
        eprintln!("skipping: {DOCS}/extra_trace_TraceWithoutDuration.graphql is absent");
        return;
    };
    let schema = schema();
    let data = run(&schema, &doc, json!({"traceId": "t-error"})).await;
    let spans = data["result"]["spans"].as_array().unwrap();
    assert_eq!(spans.len(), 1);
    assert_eq!(
        spans[0],
        json!({"traceId": "t-error", "segmentId": "t-error-seg", "spanId": 0, "parentSpanId": -1, "refs": [],
               "serviceCode": WECHAT, "serviceInstanceName": "sim", "startTime": at("1215", 0),
               "endTime": at("1215", 0) + 300, "endpointName": "pages/index/index", "type": "Exit",
               "peer": "api.example.com", "component": "WeChat-MiniProgram", "isError": true, "layer": "Http",
               "tags": [{"key": "http.method", "value": "GET"},
                        {"key": "url", "value": "https://api.example.com/v1/items"},
                        {"key": "error.message", "value": "timeout"}],
               "logs": [], "attachedEvents": []})
    );

    let unknown = run(&schema, &doc, json!({"traceId": "nope"})).await;
    assert_eq!(unknown["result"]["spans"], json!([]));
}

#[tokio::test]
async fn a_cross_segment_trace_lists_parents_before_children() {
    let schema = schema();
    let q = "query ($id: ID!, $d: Duration) { t: queryTrace(traceId: $id, duration: $d) { spans { segmentId spanId type component layer refs { parentSegmentId parentSpanId type } logs { time data { key value } } } } }";
    let data = run(
        &schema,
        q,
        json!({"id": "t-fast", "d": {"start": "2026-05-01 1200", "end": "2026-05-01 1230", "step": "MINUTE"}}),
    )
    .await;
    let spans = data["t"]["spans"].as_array().unwrap();
    let order: Vec<(String, i64)> = spans
        .iter()
        .map(|s| {
            (
                s["segmentId"].as_str().unwrap().to_string(),
                s["spanId"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        order,
        vec![
            ("t-fast-seg".to_string(), 0),
            ("t-fast-backend".to_string(), 0),
            ("t-fast-backend".to_string(), 1)
        ]
    );
    let entry = &spans[1];
    assert_eq!(entry["type"], "Entry");
    // An id outside the component table shows as the number.
    assert_eq!(entry["component"], "99999");
    assert_eq!(entry["layer"], "Unknown");
    assert_eq!(
        entry["refs"],
        json!([{"parentSegmentId": "t-fast-seg", "parentSpanId": 0, "type": "CROSS_PROCESS"}])
    );
    assert_eq!(
        entry["logs"],
        json!([{"time": at("1205", 0) + 4, "data": [{"key": "event", "value": "error"}]}])
    );
    assert_eq!(spans[2]["component"], "mysql-connector-java");
    assert_eq!(spans[2]["layer"], "Database");
}

#[tokio::test]
async fn query_traces_v2_pages_whole_traces() {
    let Ok(doc) = std::fs::read_to_string(format!("{DOCS}/extra_tracev2_Traces.graphql")) else {
        eprintln!("skipping: {DOCS}/extra_tracev2_Traces.graphql is absent");
        return;
    };
    let schema = schema();
    let vars = json!({"condition": {"queryDuration": window(), "traceState": "ALL", "queryOrder": "BY_START_TIME",
                                    "paging": {"pageNum": 1, "pageSize": 10}}});
    let data = run(&schema, &doc, vars).await;
    let traces = data["result"]["traces"].as_array().unwrap();
    // Four traces in the window; t-fast's two segments come back as one trace.
    assert_eq!(traces.len(), 4);
    let fast = traces
        .iter()
        .find(|t| t["spans"][0]["traceId"] == "t-fast")
        .unwrap();
    assert_eq!(fast["spans"].as_array().unwrap().len(), 3);
    assert_eq!(
        data["result"]["retrievedTimeRange"]["startTime"],
        at("1200", 0)
    );
    assert_eq!(
        data["result"]["retrievedTimeRange"]["endTime"],
        at("1230", 59) + 999
    );
    let probe = run(&schema, "{ hasQueryTracesV2Support }", json!({})).await;
    assert_eq!(probe["hasQueryTracesV2Support"], false);
}

#[tokio::test]
async fn trace_tag_autocomplete_offers_searchable_tags() {
    let schema = schema();
    let q = "query ($d: Duration!) { keys: queryTraceTagAutocompleteKeys(duration: $d) values: queryTraceTagAutocompleteValues(tagKey: \"http.status_code\", duration: $d) }";
    let data = run(&schema, q, json!({"d": window()})).await;
    let keys = data["keys"].as_array().unwrap();
    assert!(keys.contains(&json!("http.method")), "{keys:?}");
    // `url` is not a searchable tag key.
    assert!(!keys.contains(&json!("url")), "{keys:?}");
    assert_eq!(data["values"], json!(["200"]));
}

#[tokio::test]
async fn booster_trace_tab_documents_run_without_errors() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/reference/ui-ops/all-booster.jsonl"
    );
    let Ok(text) = std::fs::read_to_string(path) else {
        eprintln!("skipping: {path} is absent");
        return;
    };
    let schema = schema();
    let mut ran = 0;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let op: Value = serde_json::from_str(line).unwrap();
        let name = op["op"].as_str().unwrap_or_default();
        if ![
            "queryTraces",
            "querySpans",
            "queryTraceTagKeys",
            "queryHasQueryTracesV2Support",
        ]
        .contains(&name)
        {
            continue;
        }
        let resp = schema
            .execute(
                Request::new(op["query"].as_str().unwrap())
                    .variables(Variables::from_json(op["variables"].clone())),
            )
            .await;
        assert!(resp.errors.is_empty(), "{name}: {:?}", resp.errors);
        let data = resp.data.into_json().unwrap();
        match name {
            "queryTraces" => assert!(data["data"]["traces"].is_array(), "{data}"),
            "querySpans" => assert!(data["trace"]["spans"].is_array(), "{data}"),
            _ => {}
        }
        ran += 1;
    }
    assert!(ran >= 3, "expected the booster trace documents, ran {ran}");
}
