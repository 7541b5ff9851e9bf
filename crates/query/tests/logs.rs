//! `queryLogs` as swctl, booster-ui and Horizon send it, over the real in-memory storage.

use async_graphql::{Request, Variables};
use serde_json::{json, Value};
use skylark_core::{
    ContentType, EndpointId, InstanceId, Layer, LogRecord, MetricCatalog, ServiceId, Step,
    TimeBucket,
};
use skylark_query::{QueryContext, SkylarkSchema, LOG_CONDITION_REQUIRED};
use skylark_storage::{MemStorage, Storage};
use std::sync::Arc;

const SWCTL_LOGS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/reference/skywalking/swctl/documents/Logs.graphql"
);
const LOGS: &str = "query ($condition: LogQueryCondition) { r: queryLogs(condition: $condition) { errorReason debuggingTrace { traceId } logs { serviceName serviceId serviceInstanceName serviceInstanceId endpointName endpointId traceId timestamp contentType content tags { key value } } } }";
const WECHAT: &str = "mini-program-sim-wechat";
const ALIPAY: &str = "mini-program-sim-alipay";

/// Epoch ms of `hhmm` on 2026-05-01 plus `seconds`, in the server's time zone.
fn at(hhmm: &str, seconds: i64) -> i64 {
    TimeBucket::parse(&format!("2026-05-01 {hhmm}"), Step::Minute)
        .unwrap()
        .start_epoch_ms()
        .unwrap()
        + seconds * 1000
}

fn log(service: &str, instance: &str, endpoint: &str, ts: i64, content: &str) -> LogRecord {
    let platform = if service == WECHAT {
        "wechat"
    } else {
        "alipay"
    };
    LogRecord {
        service: service.into(),
        service_instance: instance.into(),
        endpoint: endpoint.into(),
        layer: Layer::WECHAT_MINI_PROGRAM,
        timestamp_ms: ts,
        trace_id: None,
        segment_id: None,
        span_id: None,
        content_type: ContentType::Text,
        content: content.into(),
        tags: vec![("platform".into(), platform.into())],
    }
}

fn schema() -> SkylarkSchema {
    let storage = MemStorage::new();
    let mut no_instance = log(
        WECHAT,
        "",
        "pages/index/index",
        at("1210", 10),
        "TypeError: x is undefined",
    );
    no_instance.content_type = ContentType::None;
    no_instance
        .tags
        .push(("exception.type".into(), "TypeError".into()));
    let mut traced = log(WECHAT, "sim", "", at("1220", 0), "request failed 500");
    traced.trace_id = Some("trace-1".into());
    traced.segment_id = Some("seg-1".into());
    traced.span_id = Some(0);
    traced.content_type = ContentType::Json;
    // 12:30:45 is inside a MINUTE window ending at 1230.
    let late = log(ALIPAY, "sim", "pages/pay", at("1230", 45), "alipay crash");
    let outside = log(
        WECHAT,
        "sim",
        "pages/index/index",
        at("1431", 0),
        "too late",
    );
    storage
        .write_logs(vec![no_instance, traced, late, outside])
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

fn minute_window() -> Value {
    json!({"start": "2026-05-01 1200", "end": "2026-05-01 1230", "step": "MINUTE", "coldStage": false})
}

fn condition(extra: Value) -> Value {
    let mut c = json!({"queryDuration": minute_window(), "paging": {"pageNum": 1, "pageSize": 15}});
    for (k, v) in extra.as_object().unwrap() {
        c[k] = v.clone();
    }
    json!({ "condition": c })
}

async fn contents(schema: &SkylarkSchema, extra: Value) -> Vec<String> {
    let data = run(schema, LOGS, condition(extra)).await;
    assert_eq!(data["r"]["errorReason"], Value::Null);
    data["r"]["logs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["content"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn swctl_logs_document_returns_rows_as_the_e2e_expects() {
    let Ok(doc) = std::fs::read_to_string(SWCTL_LOGS) else {
        eprintln!("skipping: {SWCTL_LOGS} is absent");
        return;
    };
    let schema = schema();
    let sid = ServiceId::new(WECHAT, true);
    let vars = json!({"condition": {"serviceId": sid.as_str(), "serviceInstanceId": "", "endpointId": "",
        "relatedTrace": {"traceId": ""}, "queryDuration": minute_window(),
        "paging": {"pageNum": 1, "pageSize": 15}}});
    let data = run(&schema, &doc, vars).await;
    let logs = data["result"]["logs"].as_array().unwrap();
    // Newest first; the 14:31 log is outside the window and the alipay one another service.
    assert_eq!(logs.len(), 2, "{logs:?}");
    let traced = &logs[0];
    assert_eq!(traced["traceId"], "trace-1");
    assert_eq!(traced["contentType"], "JSON");
    assert_eq!(
        traced["serviceInstanceId"],
        InstanceId::new(&sid, "sim").as_str()
    );
    assert_eq!(traced["serviceInstanceName"], "sim");
    assert_eq!(traced["endpointId"], Value::Null);
    assert_eq!(traced["endpointName"], Value::Null);

    let row = &logs[1];
    assert_eq!(row["serviceName"], WECHAT);
    assert_eq!(row["serviceId"], "bWluaS1wcm9ncmFtLXNpbS13ZWNoYXQ=.1");
    assert_eq!(row["serviceInstanceName"], Value::Null);
    assert_eq!(row["serviceInstanceId"], Value::Null);
    assert_eq!(row["endpointName"], "pages/index/index");
    assert_eq!(
        row["endpointId"],
        EndpointId::new(&sid, "pages/index/index").as_str()
    );
    assert_eq!(row["traceId"], Value::Null);
    assert_eq!(row["timestamp"], at("1210", 10));
    assert_eq!(row["contentType"], "TEXT");
    assert_eq!(row["content"], "TypeError: x is undefined");
    assert_eq!(
        row["tags"],
        json!([{"key": "platform", "value": "wechat"}, {"key": "exception.type", "value": "TypeError"}])
    );
}

#[tokio::test]
async fn empty_ids_filter_nothing_and_the_minute_end_covers_its_seconds() {
    let schema = schema();
    let all = contents(
        &schema,
        json!({"serviceId": "", "serviceInstanceId": "", "endpointId": "", "relatedTrace": {"traceId": ""}}),
    )
    .await;
    assert_eq!(
        all,
        vec![
            "alipay crash",
            "request failed 500",
            "TypeError: x is undefined"
        ]
    );
}

#[tokio::test]
async fn tags_keywords_instance_and_endpoint_filter() {
    let schema = schema();
    assert_eq!(
        contents(
            &schema,
            json!({"tags": [{"key": "platform", "value": "alipay"}]})
        )
        .await,
        vec!["alipay crash"]
    );
    assert_eq!(
        contents(&schema, json!({"keywordsOfContent": ["500"]})).await,
        vec!["request failed 500"]
    );
    assert_eq!(
        contents(
            &schema,
            json!({"excludingKeywordsOfContent": ["crash", "TypeError"]})
        )
        .await,
        vec!["request failed 500"]
    );
    let alipay_sim = InstanceId::new(&ServiceId::new(ALIPAY, true), "sim");
    assert_eq!(
        contents(
            &schema,
            json!({"serviceInstanceId": alipay_sim.as_str(), "keywordsOfContent": [], "excludingKeywordsOfContent": []})
        )
        .await,
        vec!["alipay crash"]
    );
    let page = EndpointId::new(&ServiceId::new(WECHAT, true), "pages/index/index");
    assert_eq!(
        contents(&schema, json!({"endpointId": page.as_str()})).await,
        vec!["TypeError: x is undefined"]
    );
}

#[tokio::test]
async fn paging_and_order() {
    let schema = schema();
    assert_eq!(
        contents(&schema, json!({"paging": {"pageNum": 2, "pageSize": 1}})).await,
        vec!["request failed 500"]
    );
    assert_eq!(
        contents(
            &schema,
            json!({"paging": {"pageSize": 2}, "queryOrder": "ASC"})
        )
        .await,
        vec!["TypeError: x is undefined", "request failed 500"]
    );
    assert_eq!(
        contents(
            &schema,
            json!({"paging": {"pageSize": 1}, "queryOrder": "DES"})
        )
        .await,
        vec!["alipay crash"]
    );
}

#[tokio::test]
async fn a_second_window_is_exact_to_the_second() {
    let schema = schema();
    let window =
        json!({"start": "2026-05-01 121000", "end": "2026-05-01 121010", "step": "SECOND"});
    assert_eq!(
        contents(&schema, json!({"queryDuration": window})).await,
        vec!["TypeError: x is undefined"]
    );
    let window =
        json!({"start": "2026-05-01 121011", "end": "2026-05-01 122959", "step": "SECOND"});
    assert_eq!(
        contents(&schema, json!({"queryDuration": window})).await,
        vec!["request failed 500"]
    );
}

#[tokio::test]
async fn related_trace_replaces_the_duration_and_neither_is_an_error_reason() {
    let schema = schema();
    let data = run(
        &schema,
        LOGS,
        json!({"condition": {"relatedTrace": {"traceId": "trace-1", "segmentId": "seg-1", "spanId": 0},
                             "paging": {"pageSize": 10}}}),
    )
    .await;
    let logs = data["r"]["logs"].as_array().unwrap();
    assert_eq!(logs.len(), 1);
    assert_eq!(logs[0]["content"], "request failed 500");

    for c in [
        json!({"paging": {"pageSize": 10}}),
        json!({"relatedTrace": {"traceId": ""}, "serviceId": "", "paging": {"pageSize": 10}}),
    ] {
        let data = run(&schema, LOGS, json!({ "condition": c })).await;
        assert_eq!(data["r"]["errorReason"], LOG_CONDITION_REQUIRED);
        assert_eq!(data["r"]["logs"], json!([]));
        assert_eq!(data["r"]["debuggingTrace"], Value::Null);
    }
}

#[tokio::test]
async fn logs_by_name_keyword_support_and_tag_autocomplete() {
    let schema = schema();
    let q = "query ($c: LogQueryConditionByName, $d: Duration!) {
        k: supportQueryLogsByKeywords
        keys: queryLogTagAutocompleteKeys(duration: $d)
        values: queryLogTagAutocompleteValues(tagKey: \"platform\", duration: $d)
        r: queryLogsByName(condition: $c) { logs { content } } }";
    let data = run(
        &schema,
        q,
        json!({"d": {"start": "2026-05-01 120000", "end": "2026-05-01 123059", "step": "SECOND"},
               "c": {"service": {"serviceName": WECHAT}, "instance": {"serviceName": WECHAT, "instanceName": "sim"},
                     "queryDuration": minute_window(), "paging": {"pageSize": 5}}}),
    )
    .await;
    assert_eq!(data["k"], true);
    let keys = data["keys"].as_array().unwrap();
    assert!(keys.contains(&json!("platform")), "{keys:?}");
    assert!(keys.contains(&json!("exception.type")), "{keys:?}");
    assert_eq!(data["values"], json!(["alipay", "wechat"]));
    assert_eq!(
        data["r"]["logs"],
        json!([{"content": "request failed 500"}])
    );
}

#[tokio::test]
async fn booster_log_tab_documents_run_without_errors() {
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
        if !["queryLogs", "queryLogsByKeywords", "queryTagKeys"].contains(&name) {
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
        if name == "queryLogs" {
            assert!(data["queryLogs"]["logs"].is_array(), "{data}");
        }
        ran += 1;
    }
    assert!(ran >= 3, "expected the booster log documents, ran {ran}");
}
