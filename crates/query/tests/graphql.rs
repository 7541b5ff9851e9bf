//! The GraphQL surface as clients use it: swctl's exact documents and variables, batched
//! aliased documents with inline literals (Horizon), introspection and the HTTP route.

mod common;

use async_graphql::{Request, Variables};
use common::*;
use serde_json::{json, Value};
use skylark_core::{InstanceId, Layer, MetricValue, ServiceId};
use std::sync::Arc;

const DOCS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/reference/skywalking/swctl/documents"
);
const SVC: &str = "mini-program-sim-wechat";
const SVC_ID: &str = "bWluaS1wcm9ncmFtLXNpbS13ZWNoYXQ=.1";

fn document(name: &str) -> Option<String> {
    let path = format!("{DOCS}/{name}");
    match std::fs::read_to_string(&path) {
        Ok(d) => Some(d),
        Err(_) => {
            eprintln!("skipping: {path} is absent");
            None
        }
    }
}

fn duration() -> Value {
    json!({"start": "2026-05-01 1200", "end": "2026-05-01 1230", "step": "MINUTE", "coldStage": false})
}

fn storage() -> Arc<FakeStorage> {
    let s = FakeStorage::default();
    s.add_service(SVC, &[Layer::WECHAT_MINI_PROGRAM]);
    s.add_service("grp::alipay-app", &[Layer::ALIPAY_MINI_PROGRAM]);
    let ping = minute("2026-05-01 1220").start_epoch_ms().unwrap();
    s.add_instance(SVC, "sim", ping);
    s.add_endpoint(SVC, "pages/index/index", ping);
    s.add_endpoint(SVC, "pages/logs/logs", ping);
    s.put(
        "meter_wechat_mp_app_launch_duration",
        SVC_ID,
        202605011215,
        MetricValue::Single(300),
    );
    let iid = InstanceId::new(&ServiceId::new(SVC, true), "sim").into_string();
    s.put(
        "meter_wechat_mp_instance_app_launch_duration",
        &iid,
        202605011216,
        MetricValue::Single(42),
    );
    s.put(
        "meter_wechat_mp_error_count",
        SVC_ID,
        202605011217,
        MetricValue::Labeled(vec![(labels(&[("exception_type", "js")]), 2)]),
    );
    Arc::new(s)
}

async fn exec(doc: &str, vars: Value) -> Value {
    let schema = schema(storage());
    let resp = schema
        .execute(Request::new(doc).variables(Variables::from_json(vars)))
        .await;
    assert!(resp.errors.is_empty(), "errors: {:?}", resp.errors);
    resp.data.into_json().unwrap()
}

fn swctl_entity(scope: &str, instance: &str) -> Value {
    json!({"scope": scope, "serviceName": SVC, "normal": true,
           "serviceInstanceName": instance, "endpointName": "", "destServiceName": "",
           "destNormal": false, "destServiceInstanceName": "", "destEndpointName": ""})
}

#[tokio::test]
async fn swctl_version_and_find_service() {
    let Some(doc) = document("version.graphql") else {
        return;
    };
    let data = exec(&doc, json!({})).await;
    assert_eq!(data["result"], "10.3.0");

    let Some(doc) = document("FindService.graphql") else {
        return;
    };
    let data = exec(&doc, json!({"serviceName": SVC})).await;
    assert_eq!(
        data["result"],
        json!({"id": SVC_ID, "name": SVC, "group": "", "shortName": SVC,
               "layers": ["WECHAT_MINI_PROGRAM"], "normal": true})
    );
    let data = exec(&doc, json!({"serviceName": "nope"})).await;
    assert_eq!(data["result"], Value::Null);
}

#[tokio::test]
async fn swctl_list_service_by_layer() {
    let Some(doc) = document("ListService.graphql") else {
        return;
    };
    let data = exec(&doc, json!({"layer": "WECHAT_MINI_PROGRAM"})).await;
    assert_eq!(
        data["result"],
        json!([{"id": SVC_ID, "name": SVC, "group": "", "shortName": SVC,
                "layers": ["WECHAT_MINI_PROGRAM"], "normal": true}])
    );
    let data = exec(&doc, json!({"layer": "ALIPAY_MINI_PROGRAM"})).await;
    assert_eq!(data["result"][0]["group"], "grp");
    assert_eq!(data["result"][0]["shortName"], "alipay-app");
}

#[tokio::test]
async fn swctl_metrics_exec_service_and_instance() {
    let Some(doc) = document("ExecuteExpression.graphql") else {
        return;
    };
    let data = exec(
        &doc,
        json!({"expression": "meter_wechat_mp_app_launch_duration",
               "entity": swctl_entity("Service", ""), "duration": duration()}),
    )
    .await;
    let r = &data["result"];
    assert_eq!(r["type"], "TIME_SERIES_VALUES");
    assert_eq!(r["error"], Value::Null);
    let series = &r["results"][0];
    assert_eq!(series["metric"]["labels"], json!([]));
    let values = series["values"].as_array().unwrap();
    assert_eq!(values.len(), 31);
    for v in values {
        assert_eq!(v["owner"], Value::Null);
        assert_eq!(v["traceID"], Value::Null);
        assert!(v["id"].as_str().unwrap().parse::<i64>().is_ok());
    }
    assert_eq!(values[15]["value"], "300");
    assert_eq!(values[0]["value"], Value::Null);

    let data = exec(
        &doc,
        json!({"expression": "meter_wechat_mp_instance_app_launch_duration",
               "entity": swctl_entity("ServiceInstance", "sim"), "duration": duration()}),
    )
    .await;
    assert_eq!(data["result"]["results"][0]["values"][16]["value"], "42");

    let data = exec(
        &doc,
        json!({"expression": "meter_wechat_mp_error_count",
               "entity": swctl_entity("Service", ""), "duration": duration()}),
    )
    .await;
    assert_eq!(
        data["result"]["results"][0]["metric"]["labels"],
        json!([{"key": "exception_type", "value": "js"}])
    );

    let data = exec(
        &doc,
        json!({"expression": "meter_missing", "entity": swctl_entity("Service", ""),
               "duration": duration()}),
    )
    .await;
    assert_eq!(
        data["result"],
        json!({"type": "UNKNOWN", "results": [], "error": "Metric: [meter_missing] does not exist."})
    );
}

#[tokio::test]
async fn swctl_instances_endpoints_layers_time_health() {
    let Some(doc) = document("extra_Instances.graphql") else {
        return;
    };
    let data = exec(&doc, json!({"serviceId": SVC_ID, "duration": duration()})).await;
    let iid = format!("{SVC_ID}_c2lt");
    assert_eq!(
        data["result"],
        json!([{"id": iid, "name": "sim", "language": "UNKNOWN", "instanceUUID": iid, "attributes": []}])
    );

    let Some(doc) = document("extra_FindEndpointsWithDuration.graphql") else {
        return;
    };
    let data = exec(
        &doc,
        json!({"keyword": "index", "serviceId": SVC_ID, "limit": 100, "duration": duration()}),
    )
    .await;
    assert_eq!(data["result"].as_array().unwrap().len(), 1);
    assert_eq!(data["result"][0]["name"], "pages/index/index");
    // Explicit null for the nullable duration, empty keyword = any.
    let data = exec(
        &doc,
        json!({"keyword": "", "serviceId": SVC_ID, "limit": 1, "duration": null}),
    )
    .await;
    assert_eq!(data["result"].as_array().unwrap().len(), 1);

    let Some(doc) = document("extra_FindEndpointsWithoutDuration.graphql") else {
        return;
    };
    let data = exec(
        &doc,
        json!({"keyword": "", "serviceId": SVC_ID, "limit": 100}),
    )
    .await;
    assert_eq!(data["result"].as_array().unwrap().len(), 2);

    let Some(doc) = document("extra_ListLayers.graphql") else {
        return;
    };
    let data = exec(&doc, json!({})).await;
    assert_eq!(
        data["result"],
        json!(["ALIPAY_MINI_PROGRAM", "WECHAT_MINI_PROGRAM"])
    );

    let Some(doc) = document("extra_ServerTimeInfo.graphql") else {
        return;
    };
    let data = exec(&doc, json!({})).await;
    let tz = data["result"]["timezone"].as_str().unwrap();
    assert_eq!(tz.len(), 5);
    assert!(tz.starts_with('+') || tz.starts_with('-'));
    assert!(data["result"]["currentTimestamp"].as_i64().unwrap() > 1_600_000_000_000);

    let Some(doc) = document("extra_healthcheck_healthcheck.graphql") else {
        return;
    };
    let data = exec(&doc, json!({})).await;
    assert_eq!(data["checkHealth"], json!({"score": 0, "details": null}));
}

#[tokio::test]
async fn batched_aliases_with_inline_literals_and_non_null_variable() {
    let doc = r#"
      query Batch($layer: String!, $d: Duration!) {
        services: listServices(layer: $layer) { id }
        e0: execExpression(expression: "avg(meter_wechat_mp_app_launch_duration)",
              entity: {scope: Service, serviceName: "mini-program-sim-wechat", normal: true},
              duration: {start: "2026-05-01 1200", end: "2026-05-01 1230", step: MINUTE}) {
          type error results { values { id value } }
        }
        e1: execExpression(expression: "meter_wechat_mp_app_launch_duration", entity: {normal: true,
              serviceName: "mini-program-sim-wechat"}, duration: $d) {
          type results { values { value } }
        }
        bad: execExpression(expression: "avg(", entity: {scope: Service, normal: true}, duration: $d) {
          type error
        }
        ep: getEndpointInfo(endpointId: "bWluaS1wcm9ncmFtLXNpbS13ZWNoYXQ=.1_cGFnZXMvbG9ncy9sb2dz") {
          name serviceId serviceName
        }
        levels: listLayerLevels { layer level }
        v2: hasQueryTracesV2Support
        ttl: getMetricsTTL { metadata minute hour day coldMinute }
        rttl: getRecordsTTL { normal log coldLog }
        t: typeOfMetrics(name: "meter_wechat_mp_error_count")
        m: listMetrics(regex: "meter_wechat_mp_instance_.*_duration") { name type catalog }
        gs: getService(serviceId: "bWluaS1wcm9ncmFtLXNpbS13ZWNoYXQ=.1") { name }
        gi: getInstance(instanceId: "bWluaS1wcm9ncmFtLXNpbS13ZWNoYXQ=.1_c2lt") { name instanceUUID }
        all: getAllServices(duration: $d, group: "") { name }
      }"#;
    let data = exec(
        doc,
        json!({"layer": "WECHAT_MINI_PROGRAM", "d": duration()}),
    )
    .await;
    assert_eq!(data["services"], json!([{"id": SVC_ID}]));
    assert_eq!(
        data["e0"],
        json!({"type": "SINGLE_VALUE", "error": null, "results": [{"values": [{"id": null, "value": "300"}]}]})
    );
    assert_eq!(
        data["e1"]["results"][0]["values"].as_array().unwrap().len(),
        31
    );
    assert_eq!(data["bad"]["type"], "UNKNOWN");
    assert!(data["bad"]["error"]
        .as_str()
        .unwrap()
        .starts_with("line 1:4 "));
    assert_eq!(
        data["ep"],
        json!({"name": "pages/logs/logs", "serviceId": SVC_ID, "serviceName": SVC})
    );
    assert_eq!(data["levels"], json!([]));
    assert_eq!(data["v2"], false);
    assert_eq!(
        data["ttl"],
        json!({"metadata": 7, "minute": 7, "hour": 7, "day": 7, "coldMinute": -1})
    );
    assert_eq!(data["rttl"], json!({"normal": 3, "log": 3, "coldLog": -1}));
    assert_eq!(data["t"], "LABELED_VALUE");
    let names: Vec<&str> = data["m"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"meter_wechat_mp_instance_route_duration"));
    assert!(!names.contains(&"meter_wechat_mp_instance_request_cpm"));
    assert_eq!(data["m"][0]["catalog"], "SERVICE_INSTANCE");
    assert_eq!(data["gs"]["name"], SVC);
    assert_eq!(data["gi"]["instanceUUID"], format!("{SVC_ID}_c2lt"));
    assert_eq!(data["all"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn long_durations_are_graphql_errors_with_oap_message() {
    let schema = schema(storage());
    let doc = r#"query { r: execExpression(expression: "meter_wechat_mp_app_launch_duration",
        entity: {serviceName: "x", normal: true},
        duration: {start: "2026-05-01 0000", end: "2026-05-01 0900", step: MINUTE}) { type } }"#;
    let resp = schema.execute(doc).await;
    assert_eq!(
        resp.errors[0].message,
        "Duration data error, the range between the start time and the end time can't exceed 500 minutes"
    );
    // 500 points exactly is fine.
    let doc = doc.replace("0900", "0819");
    assert!(schema.execute(doc.as_str()).await.errors.is_empty());
}

#[tokio::test]
async fn introspection_lists_query_fields_with_oap_names() {
    let schema = schema(storage());
    let resp = schema
        .execute(r#"{ __type(name: "Query") { fields { name args { name } } } }"#)
        .await;
    assert!(resp.errors.is_empty());
    let data = resp.data.into_json().unwrap();
    let fields = data["__type"]["fields"].as_array().unwrap();
    let names: Vec<&str> = fields.iter().map(|f| f["name"].as_str().unwrap()).collect();
    for want in [
        "version",
        "checkHealth",
        "getTimeInfo",
        "listLayers",
        "listServices",
        "findService",
        "getService",
        "getAllServices",
        "listInstances",
        "getInstance",
        "findEndpoint",
        "getEndpointInfo",
        "execExpression",
        "getMetricsTTL",
        "getRecordsTTL",
        "listLayerLevels",
        "hasQueryTracesV2Support",
        "typeOfMetrics",
        "listMetrics",
    ] {
        assert!(names.contains(&want), "missing {want}");
    }
    let exec = fields
        .iter()
        .find(|f| f["name"] == "execExpression")
        .unwrap();
    let args: Vec<&str> = exec["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        args,
        ["expression", "entity", "duration", "debug", "dumpDBRsp"]
    );
    let sdl = schema.sdl();
    for needle in [
        "scalar Long",
        "instanceUUID: String!",
        "serviceID: ID",
        "traceID: ID",
        "type MQEValues",
        "enum Scope",
        "ServiceInstanceRelation",
        "input Entity",
        "coldStage: Boolean",
        "type RecordsTTL",
        "type MetricsTTL",
    ] {
        assert!(sdl.contains(needle), "sdl lacks {needle}");
    }
}

#[tokio::test]
async fn http_route_accepts_swctl_content_type() {
    use axum::body::Body;
    use axum::http::Request as HttpRequest;
    use tower::ServiceExt;
    let app = skylark_query::router(schema(storage()), skylark_query::QueryLimits::default())
        .expect("query threads start");
    let body = json!({"query": "query { result: version }", "variables": {}}).to_string();
    let resp = app
        .oneshot(
            HttpRequest::post("/graphql")
                .header("Content-Type", "application/json; charset=utf-8")
                .header("Accept", "application/json; charset=utf-8")
                .body(Body::from(body))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    let v: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(v, json!({"data": {"result": "10.3.0"}}));
}

/// Every type, field, argument and enum value we serve exists in SkyWalking's `.graphqls` files
/// with the same type (so clients' documents validate unchanged).
#[test]
fn schema_matches_reference_graphqls() {
    use async_graphql::parser::parse_schema;
    use async_graphql::parser::types::{TypeKind, TypeSystemDefinition};
    use std::collections::BTreeMap;

    let dir = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/reference/skywalking/query-protocol"
    );
    let Ok(entries) = std::fs::read_dir(dir) else {
        eprintln!("skipping: {dir} is absent");
        return;
    };
    // "Type.field" → "type (args)" / "Enum" → values.
    fn collect(doc: &str, out: &mut BTreeMap<String, String>) {
        let doc = parse_schema(doc).unwrap();
        for def in doc.definitions {
            let TypeSystemDefinition::Type(t) = def else {
                continue;
            };
            let t = t.node;
            let name = t.name.node.to_string();
            match t.kind {
                TypeKind::Object(o) => {
                    for f in o.fields {
                        let f = f.node;
                        let args: Vec<String> = f
                            .arguments
                            .iter()
                            .map(|a| format!("{}: {}", a.node.name.node, a.node.ty.node))
                            .collect();
                        out.insert(
                            format!("{name}.{}", f.name.node),
                            format!("{} ({})", f.ty.node, args.join(", ")),
                        );
                    }
                }
                TypeKind::InputObject(o) => {
                    for f in o.fields {
                        out.insert(
                            format!("{name}.{}", f.node.name.node),
                            f.node.ty.node.to_string(),
                        );
                    }
                }
                TypeKind::Enum(e) => {
                    let mut vals: Vec<String> = e
                        .values
                        .iter()
                        .map(|v| v.node.value.node.to_string())
                        .collect();
                    vals.sort();
                    out.insert(name, vals.join(" "));
                }
                TypeKind::Scalar => {
                    out.insert(name, "scalar".into());
                }
                _ => {}
            }
        }
    }
    let mut reference = BTreeMap::new();
    for e in entries {
        let path = e.unwrap().path();
        if path.extension().is_some_and(|x| x == "graphqls") {
            collect(&std::fs::read_to_string(&path).unwrap(), &mut reference);
        }
    }
    // OAP 11 adds `queryAlarms` after the reference's query-protocol commit; its shape comes
    // from OAP's `AlarmQuery.java` and `AlarmQueryCondition.java`.
    for (key, ty) in [
        (
            "Query.queryAlarms",
            "Alarms (condition: AlarmQueryCondition!)",
        ),
        ("AlarmQueryCondition.duration", "Duration!"),
        ("AlarmQueryCondition.paging", "Pagination!"),
        ("AlarmQueryCondition.entities", "[Entity!]"),
        ("AlarmQueryCondition.layer", "String"),
        ("AlarmQueryCondition.ruleNames", "[String!]"),
        ("AlarmQueryCondition.keyword", "String"),
        ("AlarmQueryCondition.tags", "[AlarmTag]"),
    ] {
        assert!(reference.insert(key.into(), ty.into()).is_none(), "{key}");
    }
    let mut ours = BTreeMap::new();
    collect(&schema(storage()).sdl(), &mut ours);
    // Skylark's error-issue extension (README "Error issues"), absent from SkyWalking.
    let extension_types = [
        "Issue",
        "IssueList",
        "IssueEvent",
        "IssueTrendPoint",
        "IssueStatusChange",
        "IssueCondition",
        "IssueStatus",
        "IssueOrder",
        "ResolvedFrame",
        "StackFrame",
    ];
    let extension_fields = [
        "Query.queryIssues",
        "Query.getIssue",
        "Mutation.setIssueStatus",
    ];
    let mut checked = 0;
    for (key, ty) in &ours {
        if key.starts_with("__")
            || ["Boolean", "String", "Int", "Float", "ID"].contains(&key.as_str())
            || extension_types.contains(&key.split('.').next().unwrap_or(""))
            || extension_fields.contains(&key.as_str())
        {
            continue;
        }
        // Skylark's own extensions (documented in the README), additive to the reference.
        let type_name = key.split('.').next().unwrap_or_default();
        if [
            "Query.queryRumEvents",
            "Query.querySessions",
            "Query.querySessionTimeline",
        ]
        .contains(&key.as_str())
            || [
                "RumEvent",
                "RumEvents",
                "RumEventCondition",
                "Session",
                "Sessions",
                "SessionCondition",
                "SessionTimeline",
                "TimelineView",
                "TimelineEvent",
            ]
            .contains(&type_name)
        {
            assert!(
                !reference.contains_key(key),
                "{key} shadows a reference item"
            );
            continue;
        }
        let want = reference
            .get(key)
            .unwrap_or_else(|| panic!("{key} is not in the reference schema"));
        assert_eq!(ty, want, "{key}");
        checked += 1;
    }
    assert!(checked > 100, "only {checked} items compared");
}
