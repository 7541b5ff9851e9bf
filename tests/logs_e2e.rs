//! Error logs end to end: SDK OTLP logs in, swctl's `logs list` and the error_count metric out.
mod common;

use common::*;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;
use serde_json::{json, Value};
use std::collections::BTreeMap;

const WECHAT: &str = "mini-program-sim-wechat";
const ALIPAY: &str = "mini-program-sim-alipay";

fn kv(k: &str, v: &str) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(v.into())),
        }),
        ..Default::default()
    }
}

/// One OTLP log request with one record.
fn log_request(resource: &[(&str, &str)], attributes: &[(&str, &str)], body: &str) -> Vec<u8> {
    let now = now_nanos() as u64;
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(Resource {
                attributes: resource.iter().map(|(k, v)| kv(k, v)).collect(),
                ..Default::default()
            }),
            scope_logs: vec![ScopeLogs {
                log_records: vec![LogRecord {
                    time_unix_nano: now,
                    body: Some(AnyValue {
                        value: Some(any_value::Value::StringValue(body.into())),
                    }),
                    attributes: attributes.iter().map(|(k, v)| kv(k, v)).collect(),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
    .encode_to_vec()
}

const LOGS_QUERY: &str = "query ($condition: LogQueryCondition!) { result: queryLogs(condition: $condition) { errorReason logs { serviceName serviceId serviceInstanceName serviceInstanceId endpointName endpointId traceId timestamp contentType content tags { key value } } } }";

async fn query_logs(server: &Server, condition: Value) -> Vec<Value> {
    let reply = server
        .graphql(LOGS_QUERY, json!({"condition": condition}))
        .await;
    assert!(reply.get("errors").is_none(), "{reply}");
    reply["data"]["result"]["logs"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn tag<'a>(log: &'a Value, key: &str) -> Vec<&'a str> {
    log["tags"]
        .as_array()
        .map(|t| {
            t.iter()
                .filter(|t| t["key"] == key)
                .filter_map(|t| t["value"].as_str())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn replayed_sdk_logs_answer_swctl_and_count_errors() {
    let (Some(dir), Some(reference)) = (fixtures_dir(), reference_dir()) else {
        return;
    };
    let server = Server::start().await;
    let latest = now_nanos() - 60_000_000_000;
    for f in fixtures(&dir, "/v1/metrics") {
        let (status, text) = server
            .post("/v1/metrics", &f.content_type, retime_metrics(&f, latest))
            .await;
        assert_eq!(status, 200, "{}: {text}", f.file);
    }
    // Expected error counts: every record the mini-program rule claims (platform wechat/alipay and
    // a non-empty exception.type), per platform and type, duplicates from SDK retries included.
    let mut expected: BTreeMap<(String, String), u64> = BTreeMap::new();
    let logs = fixtures(&dir, "/v1/logs");
    assert!(
        logs.iter().any(|f| f.encoding == "proto") && logs.iter().any(|f| f.encoding == "json")
    );
    for f in &logs {
        for rl in decode_logs_fixture(f).resource_logs {
            let resource = rl.resource.map(|r| r.attributes).unwrap_or_default();
            let platform = attr(&resource, "miniprogram.platform").unwrap_or_default();
            for record in rl.scope_logs.iter().flat_map(|s| &s.log_records) {
                let kind = attr(&record.attributes, "exception.type").unwrap_or_default();
                if !kind.is_empty() && (platform == "wechat" || platform == "alipay") {
                    *expected.entry((platform.clone(), kind)).or_default() += 1;
                }
            }
        }
        let (status, text) = server
            .post("/v1/logs", &f.content_type, retime_logs(f, latest))
            .await;
        assert_eq!(status, 200, "{}: {text}", f.file);
    }

    for (service, platform) in [(WECHAT, "wechat"), (ALIPAY, "alipay")] {
        // swctl logs list --service-name: version, findService, then Logs.graphql.
        let version = server.graphql("query { result: version }", json!({})).await;
        assert!(version["data"]["result"].is_string());
        let found = server
            .graphql(
                &swctl_document(&reference, "FindService.graphql"),
                json!({"serviceName": service}),
            )
            .await;
        let service_id = found["data"]["result"]["id"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert_eq!(service_id, format!("{}.1", b64(service)));
        let vars = json!({"condition": {"serviceId": service_id, "serviceInstanceId": "", "endpointId": "",
            "relatedTrace": {"traceId": ""}, "queryDuration": swctl_duration(), "paging": {"pageNum": 1, "pageSize": 15}}});
        let reply = server
            .graphql(&swctl_document(&reference, "Logs.graphql"), vars)
            .await;
        assert!(reply.get("errors").is_none(), "{reply}");
        let rows = reply["data"]["result"]["logs"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert!(!rows.is_empty() && rows.len() <= 15, "{reply}");
        let row = rows
            .iter()
            .find(|r| {
                r["serviceInstanceName"] == "sim-instance-1"
                    && r["endpointName"].as_str().is_some_and(|e| !e.is_empty())
            })
            .unwrap_or_else(|| panic!("no row with instance and page: {reply}"));
        assert_eq!(row["serviceName"], service);
        assert_eq!(row["serviceId"], format!("{}.1", b64(service)));
        assert_eq!(
            row["serviceInstanceId"],
            format!("{}.1_{}", b64(service), b64("sim-instance-1"))
        );
        let page = row["endpointName"].as_str().unwrap_or_default();
        assert_eq!(
            row["endpointId"],
            format!("{}.1_{}", b64(service), b64(page))
        );
        assert!(
            row["traceId"].is_null(),
            "traceId must be null, not \"\": {row}"
        );
        assert!(row["timestamp"].as_i64().is_some_and(|t| t > 0));
        assert_eq!(row["contentType"], "TEXT");
        assert!(row["content"].as_str().is_some_and(|c| !c.is_empty()));
        assert_eq!(tag(row, "platform"), [platform]);

        // error_count: one series per exception type seen, summing to the records replayed.
        let entity = json!({"serviceName": service, "normal": true});
        let q = "query ($e: String!, $entity: Entity!, $d: Duration!) { r: execExpression(expression: $e, entity: $entity, duration: $d) { type error results { metric { labels { key value } } values { value } } } }";
        let reply = server
            .graphql(q, json!({"e": format!("sum(meter_{platform}_mp_error_count)"), "entity": entity, "d": window(30, "MINUTE")}))
            .await;
        let results = reply["data"]["r"]["results"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let mut got: BTreeMap<String, u64> = BTreeMap::new();
        for r in &results {
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
            got.insert(kind, value);
        }
        let want: BTreeMap<String, u64> = expected
            .iter()
            .filter(|((p, _), _)| p == platform)
            .map(|((_, k), n)| (k.clone(), *n))
            .collect();
        assert!(!want.is_empty());
        assert_eq!(got, want, "{reply}");
    }
}

#[tokio::test]
async fn auto_layer_fallback_filters_and_paging() {
    let server = Server::start().await;
    let resource = [
        ("service.name", "shop-app"),
        ("service.instance.id", "v1"),
        ("miniprogram.platform", "wechat"),
    ];
    for i in 0..5 {
        let body = log_request(
            &resource,
            &[
                ("exception.type", "js"),
                ("miniprogram.page.path", "pages/cart/index"),
            ],
            &format!("TypeError: cart item {i} is undefined"),
        );
        assert_eq!(
            server
                .post("/v1/logs", "application/x-protobuf", body)
                .await
                .0,
            200
        );
    }
    // No exception.type → the mini-program rule aborts → the default rule keeps it under GENERAL.
    let plain = log_request(&resource, &[("level", "INFO")], "app started");
    assert_eq!(
        server
            .post("/v1/logs", "application/x-protobuf", plain)
            .await
            .0,
        200
    );
    // No service.instance.id → no instance entity, and the row has no instance id.
    let alipay = log_request(
        &[
            ("service.name", "pay-app"),
            ("miniprogram.platform", "alipay"),
        ],
        &[
            ("exception.type", "ajax"),
            ("miniprogram.page.path", "pages/pay/index"),
        ],
        "request failed",
    );
    assert_eq!(
        server
            .post("/v1/logs", "application/json", {
                let req = ExportLogsServiceRequest::decode(alipay.as_slice()).unwrap();
                serde_json::to_vec(&req).unwrap()
            })
            .await
            .0,
        200
    );

    let layers = |reply: &Value| -> Vec<String> {
        reply["data"]["r"]
            .as_array()
            .map(|l| {
                l.iter()
                    .filter_map(|s| s["name"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let q = "query ($l: String) { r: listServices(layer: $l) { name layers } }";
    assert!(
        layers(&server.graphql(q, json!({"l": "WECHAT_MINI_PROGRAM"})).await)
            .contains(&"shop-app".to_string())
    );
    assert!(
        layers(&server.graphql(q, json!({"l": "GENERAL"})).await).contains(&"shop-app".to_string())
    );
    assert!(
        layers(&server.graphql(q, json!({"l": "ALIPAY_MINI_PROGRAM"})).await)
            .contains(&"pay-app".to_string())
    );
    let instances = server
        .graphql("query ($s: ID!, $d: Duration!) { r: listInstances(serviceId: $s, duration: $d) { name } }",
            json!({"s": format!("{}.1", b64("pay-app")), "d": window(30, "MINUTE")}))
        .await;
    assert_eq!(instances["data"]["r"], json!([]), "{instances}");

    let shop = format!("{}.1", b64("shop-app"));
    let base = json!({"serviceId": shop, "queryDuration": window(30, "SECOND"), "paging": {"pageNum": 1, "pageSize": 50}});
    let all = query_logs(&server, base.clone()).await;
    assert_eq!(all.len(), 6, "{all:?}");
    let general: Vec<_> = all
        .iter()
        .filter(|l| l["content"] == "app started")
        .collect();
    assert_eq!(general.len(), 1);
    assert!(
        tag(general[0], "platform").is_empty(),
        "the GENERAL rule adds no extractor tags"
    );

    let mut c = base.clone();
    c["keywordsOfContent"] = json!(["cart item 3"]);
    assert_eq!(query_logs(&server, c.clone()).await.len(), 1);
    c["keywordsOfContent"] = json!(["TypeError"]);
    c["excludingKeywordsOfContent"] = json!(["item 0"]);
    assert_eq!(query_logs(&server, c).await.len(), 4);
    let mut c = base.clone();
    c["tags"] = json!([{"key": "level", "value": "INFO"}]);
    assert_eq!(query_logs(&server, c).await.len(), 1);

    let mut pages = Vec::new();
    for page in 1..=3 {
        let mut c = base.clone();
        c["paging"] = json!({"pageNum": page, "pageSize": 2});
        let rows = query_logs(&server, c).await;
        assert_eq!(rows.len(), 2);
        pages.extend(
            rows.into_iter()
                .map(|r| r["timestamp"].as_i64().unwrap_or(0)),
        );
    }
    assert!(
        pages.windows(2).all(|w| w[0] >= w[1]),
        "newest first across pages: {pages:?}"
    );

    let pay = query_logs(&server, json!({"serviceId": format!("{}.1", b64("pay-app")), "queryDuration": window(30, "MINUTE"), "paging": {"pageSize": 10}})).await;
    assert_eq!(pay.len(), 1);
    assert!(pay[0]["serviceInstanceId"].is_null(), "{:?}", pay[0]);
    assert_eq!(tag(&pay[0], "platform"), ["alipay"]);
}

#[tokio::test]
async fn bad_log_input_is_refused_or_truncated_and_nothing_else_lost() {
    let server = Server::start().await;
    let resource = [
        ("service.name", "edge-app"),
        ("miniprogram.platform", "wechat"),
    ];
    let good = log_request(&resource, &[("exception.type", "js")], "good one");
    assert_eq!(
        server
            .post("/v1/logs", "application/x-protobuf", good.clone())
            .await
            .0,
        200
    );
    let (status, text) = server
        .post(
            "/v1/logs",
            "application/x-protobuf",
            good[..good.len() - 4].to_vec(),
        )
        .await;
    assert_eq!(status, 400, "{text}");
    let (status, text) = server
        .post(
            "/v1/logs",
            "application/json",
            b"{\"resourceLogs\": [{".to_vec(),
        )
        .await;
    assert_eq!(status, 400, "{text}");
    assert!(!text.is_empty());
    // Invalid UTF-8 inside a protobuf string field: a 400 naming the problem.
    let mut invalid = log_request(&resource, &[("exception.type", "js")], "XXXX");
    let at = invalid
        .windows(4)
        .position(|w| w == b"XXXX")
        .expect("body bytes");
    invalid[at] = 0xff;
    let (status, text) = server
        .post("/v1/logs", "application/x-protobuf", invalid)
        .await;
    assert_eq!(status, 400, "{text}");
    // A 1 MB body and 10,000 attributes: accepted, stored truncated.
    let huge = "x".repeat(1_000_000);
    let big = log_request(&resource, &[("exception.type", "js")], &huge);
    assert_eq!(
        server
            .post("/v1/logs", "application/x-protobuf", big)
            .await
            .0,
        200
    );
    let many: Vec<(String, String)> = (0..10_000)
        .map(|i| (format!("k{i}"), "v".to_string()))
        .collect();
    let mut attrs: Vec<(&str, &str)> = many.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    attrs.push(("exception.type", "promise"));
    let wide = log_request(&resource, &attrs, "many attributes");
    assert_eq!(
        server
            .post("/v1/logs", "application/x-protobuf", wide)
            .await
            .0,
        200
    );

    let rows = query_logs(&server, json!({"serviceId": format!("{}.1", b64("edge-app")), "queryDuration": window(30, "MINUTE"), "paging": {"pageSize": 10}})).await;
    assert_eq!(rows.len(), 3, "good, huge and wide rows are stored");
    assert!(rows.iter().any(|r| r["content"] == "good one"));
    let huge_row = rows
        .iter()
        .find(|r| r["content"].as_str().is_some_and(|c| c.starts_with("xxx")))
        .expect("huge row");
    assert!(huge_row["content"].as_str().unwrap_or_default().len() < huge.len());
    assert_eq!(tag(huge_row, "truncated"), ["true"]);
    let wide_row = rows
        .iter()
        .find(|r| r["content"] == "many attributes")
        .expect("wide row");
    assert_eq!(tag(wide_row, "truncated"), ["true"]);
    assert!(server.graphql("query { version }", json!({})).await["data"]["version"].is_string());
}
