//! Metrics end to end: SDK OTLP bodies in, swctl's GraphQL traffic out, against a real `skylark`.
mod common;

use common::*;
use serde_json::{json, Value};

const WECHAT: &str = "mini-program-sim-wechat";
const ALIPAY: &str = "mini-program-sim-alipay";
const INSTANCE: &str = "sim-instance-1";

/// `swctl metrics exec`: version, findService, then execExpression with swctl's variables.
async fn metrics_exec(
    server: &Server,
    reference: &std::path::Path,
    expression: &str,
    service: &str,
    instance: Option<&str>,
    duration: Value,
) -> Value {
    let version = server.graphql("query { result: version }", json!({})).await;
    let v = version["data"]["result"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        v.split('.')
            .take(2)
            .all(|p| p.chars().next().is_some_and(|c| c.is_ascii_digit())),
        "version {v}"
    );
    let found = server
        .graphql(
            &swctl_document(reference, "FindService.graphql"),
            json!({"serviceName": service}),
        )
        .await;
    let id = found["data"]["result"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert_eq!(id, format!("{}.1", b64(service)), "findService {found}");
    let (scope, instance_name) = match instance {
        Some(i) => ("ServiceInstance", i),
        None => ("Service", ""),
    };
    let vars = json!({
        "expression": expression,
        "entity": {"scope": scope, "serviceName": service, "normal": true, "serviceInstanceName": instance_name,
                   "endpointName": "", "destServiceName": "", "destNormal": false,
                   "destServiceInstanceName": "", "destEndpointName": ""},
        "duration": duration,
    });
    let reply = server
        .graphql(
            &swctl_document(reference, "ExecuteExpression.graphql"),
            vars,
        )
        .await;
    assert!(
        reply
            .get("errors")
            .is_none_or(|e| e.as_array().is_none_or(|a| a.is_empty())),
        "errors in {reply}"
    );
    reply["data"]["result"].clone()
}

/// Runs an expression for an explicit entity (endpoint scope, as booster-ui sends it).
async fn exec_entity(server: &Server, expression: &str, entity: Value, duration: Value) -> Value {
    let q = "query ($expression: String!, $entity: Entity!, $duration: Duration!) { result: execExpression(expression: $expression, entity: $entity, duration: $duration) { type results { metric { labels { key value } } values { id value traceID owner { scope } } } error } }";
    let reply = server
        .graphql(
            q,
            json!({"expression": expression, "entity": entity, "duration": duration}),
        )
        .await;
    reply["data"]["result"].clone()
}

fn plain_series_has_value(result: &Value) -> bool {
    result["type"] == "TIME_SERIES_VALUES"
        && result["error"].is_null()
        && result["results"].as_array().is_some_and(|rs| {
            rs.iter().any(|r| {
                r["metric"]["labels"]
                    .as_array()
                    .is_some_and(|l| l.is_empty())
                    && r["values"].as_array().is_some_and(|vs| {
                        vs.iter().any(|v| {
                            v["id"].as_str().is_some_and(|s| !s.is_empty())
                                && v["value"].as_str().is_some_and(|s| !s.is_empty())
                                && v["traceID"].is_null()
                                && v["owner"].is_null()
                        })
                    })
            })
        })
}

fn label_values(result: &Value, key: &str) -> Vec<String> {
    let mut out: Vec<String> = result["results"]
        .as_array()
        .map(|rs| {
            rs.iter()
                .flat_map(|r| {
                    r["metric"]["labels"]
                        .as_array()
                        .cloned()
                        .unwrap_or_default()
                })
                .filter(|l| l["key"] == key)
                .filter_map(|l| l["value"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out.dedup();
    out
}

/// The non-null values of every series, in order.
fn values(result: &Value) -> Vec<String> {
    result["results"]
        .as_array()
        .map(|rs| {
            rs.iter()
                .flat_map(|r| r["values"].as_array().cloned().unwrap_or_default())
                .filter_map(|v| v["value"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn replayed_sdk_metrics_answer_swctl_queries() {
    let (Some(fixtures_dir), Some(reference)) = (fixtures_dir(), reference_dir()) else {
        return;
    };
    let server = Server::start().await;
    let bodies = fixtures(&fixtures_dir, "/v1/metrics");
    assert!(
        bodies.iter().any(|f| f.encoding == "proto") && bodies.iter().any(|f| f.encoding == "json")
    );
    assert!(
        bodies.iter().any(|f| f.platform == "wechat")
            && bodies.iter().any(|f| f.platform == "alipay")
    );
    let latest = now_nanos() - 60_000_000_000;
    for f in &bodies {
        let (status, text) = server
            .post("/v1/metrics", &f.content_type, retime_metrics(f, latest))
            .await;
        assert_eq!(status, 200, "{}: {text}\n{}", f.file, server.log());
    }

    for (layer, service) in [
        ("WECHAT_MINI_PROGRAM", WECHAT),
        ("ALIPAY_MINI_PROGRAM", ALIPAY),
    ] {
        let reply = server
            .graphql(
                &swctl_document(&reference, "ListService.graphql"),
                json!({"layer": layer}),
            )
            .await;
        let expected = json!({"id": format!("{}.1", b64(service)), "name": service, "group": "", "shortName": service,
                              "layers": [layer], "normal": true});
        let list = reply["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert!(list.contains(&expected), "service ly {layer}: {reply}");
    }

    let duration = swctl_duration();
    let plain = [
        (WECHAT, "meter_wechat_mp_app_launch_duration", None),
        (WECHAT, "meter_wechat_mp_first_render_duration", None),
        (WECHAT, "meter_wechat_mp_route_duration", None),
        (WECHAT, "meter_wechat_mp_script_duration", None),
        (WECHAT, "meter_wechat_mp_package_load_duration", None),
        (WECHAT, "meter_wechat_mp_request_cpm", None),
        (
            WECHAT,
            "meter_wechat_mp_instance_app_launch_duration",
            Some(INSTANCE),
        ),
        (
            WECHAT,
            "meter_wechat_mp_instance_request_cpm",
            Some(INSTANCE),
        ),
        (ALIPAY, "meter_alipay_mp_app_launch_duration", None),
        (ALIPAY, "meter_alipay_mp_first_render_duration", None),
        (ALIPAY, "meter_alipay_mp_request_cpm", None),
        (
            ALIPAY,
            "meter_alipay_mp_instance_app_launch_duration",
            Some(INSTANCE),
        ),
        (
            ALIPAY,
            "meter_alipay_mp_instance_request_cpm",
            Some(INSTANCE),
        ),
    ];
    for (service, expression, instance) in plain {
        let r = metrics_exec(
            &server,
            &reference,
            expression,
            service,
            instance,
            duration.clone(),
        )
        .await;
        assert!(plain_series_has_value(&r), "{expression}: {r}");
        let points = r["results"][0]["values"]
            .as_array()
            .map(Vec::len)
            .unwrap_or(0);
        assert_eq!(
            points, 31,
            "swctl's 30-minute window has 31 minute points: {r}"
        );
    }

    for (service, prefix) in [(WECHAT, "meter_wechat_mp"), (ALIPAY, "meter_alipay_mp")] {
        for expression in [
            format!("{prefix}_request_duration_percentile"),
            format!("{prefix}_instance_request_duration_percentile"),
        ] {
            let instance = expression.contains("_instance_").then_some(INSTANCE);
            let r = metrics_exec(
                &server,
                &reference,
                &expression,
                service,
                instance,
                duration.clone(),
            )
            .await;
            assert_eq!(
                label_values(&r, "p"),
                ["50", "75", "90", "95", "99"],
                "{expression}: {r}"
            );
            assert!(!values(&r).is_empty(), "{expression}: {r}");
        }
        for expression in [
            format!("{prefix}_endpoint_app_launch_duration"),
            format!("{prefix}_endpoint_request_cpm"),
        ] {
            let entity = json!({"serviceName": service, "normal": true, "endpointName": "pages/index/index"});
            let r = exec_entity(&server, &expression, entity, duration.clone()).await;
            assert!(plain_series_has_value(&r), "{expression}: {r}");
        }
        let entity =
            json!({"serviceName": service, "normal": true, "endpointName": "pages/index/index"});
        let r = exec_entity(
            &server,
            &format!("{prefix}_endpoint_request_duration_percentile{{p='50,99'}}"),
            entity,
            duration.clone(),
        )
        .await;
        assert_eq!(label_values(&r, "p"), ["50", "99"], "{r}");
    }
}

/// One fixture, worked by hand (wechat-slow-api-proto-0013):
/// gauges app_launch 2583, route 260, first_render 1244, script 183, package_load 523 on
/// `pages/search/index`; one histogram point with count 5 and per-bucket counts
/// le250:1, le2500:1, le5000:1, le10000:2.
/// 5 calls per send. Percentiles (total 5, or 10 with both sends: the same bounds): p50 roof round(2.5)=3 → cumulative 1,2,3 → 5000;
/// p75 roof round(3.75)=4 → 10000; p90 round(4.5)=5 → 10000; p95, p99 → 10000.
/// Sent twice in the same minute, `avg` stays 2583 ((2583+2583)/2) as in OAP, and request_cpm
/// is 10: the shipped rules sum the calls of the minute (upstream's AVG would say 5).
#[tokio::test]
async fn one_fixture_gives_the_values_worked_by_hand() {
    let Some(dir) = fixtures_dir() else { return };
    let server = Server::start().await;
    let fixture = fixtures(&dir, "/v1/metrics")
        .into_iter()
        .find(|f| f.file == "wechat-slow-api-proto-0013-v1_metrics.bin")
        .expect("fixture");
    // Put the request in the middle of the minute before last, so both its gauge time and its
    // histogram time (4.6 s apart) fall in the same minute.
    let now = chrono::Local::now();
    let minute_start = now.timestamp() - now.timestamp() % 60 - 120;
    let latest = i128::from(minute_start + 50) * 1_000_000_000;
    for _ in 0..2 {
        let (status, text) = server
            .post(
                "/v1/metrics",
                "application/x-protobuf",
                retime_metrics(&fixture, latest),
            )
            .await;
        assert_eq!(status, 200, "{text}");
    }
    let start = chrono::DateTime::from_timestamp(minute_start, 0)
        .expect("time")
        .with_timezone(&chrono::Local);
    let minute = start.format("%Y-%m-%d %H%M").to_string();
    let duration = json!({"start": minute, "end": minute, "step": "MINUTE"});
    let service = json!({"serviceName": WECHAT, "normal": true});
    for (expression, expected) in [
        ("meter_wechat_mp_app_launch_duration", "2583"),
        ("meter_wechat_mp_route_duration", "260"),
        ("meter_wechat_mp_first_render_duration", "1244"),
        ("meter_wechat_mp_script_duration", "183"),
        ("meter_wechat_mp_package_load_duration", "523"),
        ("meter_wechat_mp_request_cpm", "10"),
    ] {
        let r = exec_entity(&server, expression, service.clone(), duration.clone()).await;
        assert_eq!(values(&r), [expected], "{expression}: {r}");
    }
    let r = exec_entity(
        &server,
        "meter_wechat_mp_request_duration_percentile",
        service.clone(),
        duration.clone(),
    )
    .await;
    assert_eq!(label_values(&r, "p"), ["50", "75", "90", "95", "99"]);
    assert_eq!(
        values(&r),
        ["5000", "10000", "10000", "10000", "10000"],
        "{r}"
    );
    let endpoint =
        json!({"serviceName": WECHAT, "normal": true, "endpointName": "pages/search/index"});
    let r = exec_entity(
        &server,
        "meter_wechat_mp_endpoint_app_launch_duration",
        endpoint,
        duration.clone(),
    )
    .await;
    assert_eq!(values(&r), ["2583"], "{r}");
    let instance = json!({"serviceName": WECHAT, "normal": true, "serviceInstanceName": INSTANCE});
    let r = exec_entity(
        &server,
        "meter_wechat_mp_instance_request_cpm",
        instance,
        duration.clone(),
    )
    .await;
    assert_eq!(values(&r), ["10"], "{r}");
}
