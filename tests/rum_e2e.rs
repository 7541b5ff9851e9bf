//! RUM end to end: every captured Flashcat SDK request replayed as recorded (both URL forms,
//! re-timed to now) into a real server, then GraphQL: the SkyAPM dashboards' metrics, error
//! logs, `queryRumEvents`, views counted once; and every kind of bad input refused clearly.
mod common;

use common::*;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::time::{Duration, Instant};

const SERVICE: &str = "shop-miniprogram";

/// Every event of every fixture, as JSON.
fn events(all: &[Recorded]) -> Vec<Value> {
    all.iter()
        .flat_map(|r| r.body.split('\n'))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The local-time MQE/record duration of one minute.
fn minute_duration(epoch_ms: i64) -> Value {
    let t = chrono::DateTime::from_timestamp_millis(epoch_ms)
        .unwrap()
        .with_timezone(&chrono::Local);
    let m = t.format("%Y-%m-%d %H%M").to_string();
    json!({"start": m, "end": m, "step": "MINUTE"})
}

fn span_duration(start_ms: i64, end_ms: i64) -> Value {
    let f = |ms: i64| {
        chrono::DateTime::from_timestamp_millis(ms)
            .unwrap()
            .with_timezone(&chrono::Local)
            .format("%Y-%m-%d %H%M")
            .to_string()
    };
    json!({"start": f(start_ms), "end": f(end_ms), "step": "MINUTE"})
}

async fn post(
    server: &Server,
    target: &str,
    headers: &[(String, String)],
    body: Vec<u8>,
) -> (u16, String) {
    let client = reqwest::Client::new();
    let mut request = client
        .post(format!("{}{}", server.base(), target))
        .body(body);
    for (k, v) in headers {
        request = request.header(k.as_str(), v.as_str());
    }
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    (status, response.text().await.unwrap_or_default())
}

const EXEC: &str = "query ($expression: String!, $entity: Entity!, $duration: Duration!) { result: execExpression(expression: $expression, entity: $entity, duration: $duration) { type results { metric { labels { key value } } values { id value } } error } }";

/// `label=value` → the values of one MQE expression (unlabelled: key "").
async fn exec(
    server: &Server,
    expression: &str,
    endpoint: Option<&str>,
    duration: Value,
) -> BTreeMap<String, Vec<Option<i64>>> {
    let entity = match endpoint {
        Some(e) => {
            json!({"scope": "Endpoint", "serviceName": SERVICE, "normal": true, "endpointName": e})
        }
        None => json!({"scope": "Service", "serviceName": SERVICE, "normal": true}),
    };
    let reply = server
        .graphql(
            EXEC,
            json!({"expression": expression, "entity": entity, "duration": duration}),
        )
        .await;
    let result = &reply["data"]["result"];
    assert!(result["error"].is_null(), "{expression}: {reply}");
    let mut out = BTreeMap::new();
    for r in result["results"].as_array().cloned().unwrap_or_default() {
        let label = r["metric"]["labels"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| {
                format!(
                    "{}={}",
                    l["key"].as_str().unwrap(),
                    l["value"].as_str().unwrap()
                )
            })
            .collect::<Vec<_>>()
            .join(",");
        let values = r["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| {
                v["value"]
                    .as_str()
                    .and_then(|s| s.parse::<f64>().ok())
                    .map(|f| f as i64)
            })
            .collect();
        out.insert(label, values);
    }
    out
}

const RUM_QUERY: &str = "query ($condition: RumEventCondition!) { result: queryRumEvents(condition: $condition) { total events { type time serviceName version sessionId viewId viewName name duration status traceId spanId message stack attributes { key value } } } }";

async fn rum_events(server: &Server, condition: Value) -> (i64, Vec<Value>) {
    let reply = server
        .graphql(RUM_QUERY, json!({"condition": condition}))
        .await;
    assert!(reply.get("errors").is_none(), "{reply}");
    let result = &reply["data"]["result"];
    (
        result["total"].as_i64().unwrap(),
        result["events"].as_array().cloned().unwrap_or_default(),
    )
}

/// Waits (generously) until `check` holds; a persist runs every 500 ms.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(20);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test]
async fn replayed_flashcat_requests_light_up_the_skyapm_dashboards_and_rum_queries() {
    let Some(dir) = rum_dir() else {
        return;
    };
    let all = recorded(&dir);
    assert_eq!(all.len(), 18);
    assert!(all
        .iter()
        .any(|r| r.run == "proxy" && r.target.starts_with("/?ddforward=")));
    assert!(all
        .iter()
        .any(|r| r.run == "direct" && r.target.starts_with("/api/v2/rum?")));
    let fixture_events = events(&all);
    let first = fixture_events
        .iter()
        .map(|e| e["date"].as_i64().unwrap())
        .min()
        .unwrap();
    // The first event lands 1 s into a minute three minutes ago: the fixtures span 78 s, so every
    // app launch (within the first 31 s) falls in that one minute.
    let now = chrono::Utc::now().timestamp_millis();
    let m0 = now.div_euclid(60_000) * 60_000 - 180_000;
    let delta = m0 + 1_000 - first;

    let server = Server::start().await;
    for r in &all {
        let body = shift_numbers(&r.body, "\"date\":", delta);
        let target = shift_numbers(
            &shift_numbers(&r.target, "batch_time%3D", delta),
            "batch_time=",
            delta,
        );
        let (status, text) = post(&server, &target, &r.headers, body.into_bytes()).await;
        assert_eq!(status, 202, "{}: {text}", r.file);
    }

    // The service is listed under the mini-program layer.
    eventually("the service in WECHAT_MINI_PROGRAM", || async {
        let reply = server
            .graphql(
                "query { s: listServices(layer: \"WECHAT_MINI_PROGRAM\") { name } }",
                json!({}),
            )
            .await;
        reply["data"]["s"]
            .as_array()
            .is_some_and(|s| s.iter().any(|s| s["name"] == SERVICE))
    })
    .await;

    // Worked by hand from the fixtures: the six app launches (highest view versions) are
    // 1392, 1506, 2069, 1850, 1149 and 1468 ms; OAP's avg is 9434 / 6 = 1572.
    let minute = minute_duration(m0);
    let launch = exec(
        &server,
        "meter_wechat_mp_app_launch_duration",
        None,
        minute.clone(),
    )
    .await;
    assert_eq!(launch[""], [Some(1572)], "{launch:?}");
    let render = exec(
        &server,
        "meter_wechat_mp_first_render_duration",
        None,
        minute.clone(),
    )
    .await;
    assert!(render[""][0].is_some_and(|v| v > 0), "{render:?}");
    let cpm = exec(&server, "meter_wechat_mp_request_cpm", None, minute.clone()).await;
    assert!(cpm[""][0].is_some_and(|v| v > 0), "{cpm:?}");
    // 55 xhr requests in that minute: 8 at most 100 ms, 34 in (100, 250] ms, so the median is
    // in the 250 ms bucket.
    let percentiles = exec(
        &server,
        "meter_wechat_mp_request_duration_percentile{p='50,75,90,95,99'}",
        None,
        minute.clone(),
    )
    .await;
    assert_eq!(percentiles.len(), 5, "{percentiles:?}");
    assert_eq!(percentiles["p=50"], [Some(250)], "{percentiles:?}");
    for (label, values) in &percentiles {
        assert!(values[0].is_some(), "{label}: {percentiles:?}");
    }
    let page = Some("pages/index/index");
    for metric in [
        "meter_wechat_mp_endpoint_app_launch_duration",
        "meter_wechat_mp_endpoint_first_render_duration",
        "meter_wechat_mp_endpoint_request_cpm",
    ] {
        let values = exec(&server, metric, page, minute.clone()).await;
        assert!(values[""][0].is_some(), "{metric}: {values:?}");
    }
    let endpoint_percentiles = exec(
        &server,
        "meter_wechat_mp_endpoint_request_duration_percentile{p='50,75,90,95,99'}",
        page,
        minute.clone(),
    )
    .await;
    assert_eq!(endpoint_percentiles.len(), 5, "{endpoint_percentiles:?}");
    assert!(
        endpoint_percentiles.values().all(|v| v[0].is_some()),
        "{endpoint_percentiles:?}"
    );
    // The endpoint launch: the same six launches, all on the first page.
    let endpoint_launch = exec(
        &server,
        "meter_wechat_mp_endpoint_app_launch_duration",
        page,
        minute.clone(),
    )
    .await;
    assert_eq!(endpoint_launch[""], [Some(1572)]);

    // A re-sent view is counted once: 318 view events are 31 views.
    let both = span_duration(m0, m0 + 60_000);
    let views = exec(
        &server,
        "meter_wechat_mp_rum_page_views",
        None,
        both.clone(),
    )
    .await;
    let total_views: i64 = views[""].iter().flatten().sum();
    assert_eq!(total_views, 31, "{views:?}");
    let sessions = exec(&server, "meter_wechat_mp_rum_sessions", None, both.clone()).await;
    assert_eq!(
        sessions[""].iter().flatten().sum::<i64>(),
        7,
        "6 devices, one stopSession()"
    );

    // Errors are SkyAPM error logs.
    let reply = server
        .graphql(
            "query ($c: LogQueryCondition!) { r: queryLogs(condition: $c) { logs { serviceName endpointName content tags { key value } } } }",
            json!({"c": {"queryDuration": both.clone(), "paging": {"pageNum": 1, "pageSize": 100}}}),
        )
        .await;
    let logs = reply["data"]["r"]["logs"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(logs.len(), 44, "{reply}");
    let types: BTreeSet<String> = logs
        .iter()
        .flat_map(|l| l["tags"].as_array().cloned().unwrap_or_default())
        .filter(|t| t["key"] == "exception.type")
        .map(|t| t["value"].as_str().unwrap().to_owned())
        .collect();
    let expected: BTreeSet<String> = [
        "js",
        "promise",
        "ajax",
        "pageNotFound",
        "custom",
        "lazy-load",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(types, expected);
    assert!(logs.iter().all(|l| l["serviceName"] == SERVICE));
    let errors = exec(&server, "meter_wechat_mp_error_count", None, both.clone()).await;
    assert_eq!(
        errors
            .values()
            .flat_map(|v| v.iter().flatten())
            .sum::<i64>(),
        44,
        "{errors:?}"
    );

    // queryRumEvents by session: every event of the session, each view once.
    let session = fixture_events[0]["session"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let of_session: Vec<&Value> = fixture_events
        .iter()
        .filter(|e| e["session"]["id"] == session.as_str())
        .collect();
    let distinct: BTreeSet<String> = of_session
        .iter()
        .map(|e| match e["type"].as_str().unwrap() {
            "view" => format!("view {}", e["view"]["id"]),
            t => format!(
                "{t} {}",
                e[t]["id"]
                    .as_str()
                    .or_else(|| e["event"]["id"].as_str())
                    .unwrap_or_default()
            ),
        })
        .collect();
    let (total, found) = rum_events(
        &server,
        json!({"sessionId": session, "duration": both.clone(), "paging": {"pageNum": 1, "pageSize": 500}}),
    )
    .await;
    assert_eq!(total as usize, distinct.len());
    assert_eq!(found.len(), distinct.len());
    assert!(found
        .iter()
        .all(|e| e["sessionId"] == session.as_str() && e["serviceName"] == SERVICE));
    let stored_view = found.iter().find(|e| e["type"] == "view").unwrap();
    let highest = of_session
        .iter()
        .filter(|e| e["type"] == "view" && e["view"]["id"] == stored_view["viewId"])
        .map(|e| e["_dd"]["document_version"].as_i64().unwrap())
        .max()
        .unwrap();
    let version = stored_view["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["key"] == "_dd.document_version")
        .unwrap()["value"]
        .clone();
    assert_eq!(
        version,
        json!(highest.to_string()),
        "the stored view is its highest version"
    );

    // By trace id: Datadog's decimal form and the traceparent's hex both find the resource.
    let resource = fixture_events
        .iter()
        .find(|e| e["type"] == "resource" && e["_dd"]["trace_id"].is_string())
        .unwrap();
    let decimal = resource["_dd"]["trace_id"].as_str().unwrap();
    let hex = format!("{:032x}", decimal.parse::<u64>().unwrap());
    for trace in [decimal.to_owned(), hex.clone()] {
        let (total, found) = rum_events(
            &server,
            json!({"traceId": trace, "duration": both.clone(), "paging": {"pageNum": 1, "pageSize": 10}}),
        )
        .await;
        assert_eq!(total, 1);
        assert_eq!(found[0]["type"], "resource");
        assert_eq!(found[0]["traceId"], hex.as_str());
        assert_eq!(found[0]["name"], resource["resource"]["url"]);
        let ms = resource["resource"]["duration"].as_f64().unwrap() / 1e6;
        assert_eq!(found[0]["duration"].as_f64(), Some(ms), "durations are ms");
    }

    // The SDK retries a batch with the same dd-request-id: 202, not applied again.
    let again = &all[15];
    let body = shift_numbers(&again.body, "\"date\":", delta);
    let target = shift_numbers(&again.target, "batch_time=", delta);
    let (status, _) = post(&server, &target, &again.headers, body.into_bytes()).await;
    assert_eq!(status, 202);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let views = exec(
        &server,
        "meter_wechat_mp_rum_page_views",
        None,
        both.clone(),
    )
    .await;
    assert_eq!(views[""].iter().flatten().sum::<i64>(), 31);
    let (total, _) = rum_events(&server, json!({"duration": both.clone(), "types": ["error"], "paging": {"pageNum": 1, "pageSize": 1}})).await;
    assert_eq!(total, 44, "errors were not stored twice");
    assert!(server
        .self_metrics()
        .await
        .contains("skylark_rum_duplicate_requests_total 1"));
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn deflate(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn line(kind: &str, id: &str, extra: &str) -> String {
    let now = chrono::Utc::now().timestamp_millis();
    format!(
        r#"{{"date":{now},"type":"{kind}","service":"bad-input-app","version":"1.0","session":{{"id":"s-bad"}},"view":{{"id":"v-bad","name":"pages/a/a"}},"{kind}":{{"id":"{id}"{extra}}}}}"#
    )
}

#[tokio::test]
async fn bad_rum_input_is_refused_clearly_and_loses_nothing_else() {
    let server = Server::start_with(&[
        ("SW_RUM_CLIENT_TOKENS", "pub-good,pub-bound:bound-app"),
        ("SW_CORE_MAX_BODY_BYTES", "100000"),
    ])
    .await;
    let text = vec![(
        "content-type".to_owned(),
        "text/plain;charset=UTF-8".to_owned(),
    )];
    let url = |key: &str, id: &str| {
        format!(
            "/api/v2/rum?ddsource=browser&ddtags=env%3Atest&dd-api-key={key}&dd-request-id={id}"
        )
    };

    // Not NDJSON at all.
    let (status, reason) = post(
        &server,
        &url("pub-good", "r1"),
        &text,
        b"<html>hello</html>".to_vec(),
    )
    .await;
    assert_eq!(status, 400, "{reason}");
    assert!(reason.contains("line 1: not JSON"), "{reason}");
    // An empty body.
    let (status, _) = post(&server, &url("pub-good", "r1b"), &text, Vec::new()).await;
    assert_eq!(status, 400);

    // One bad line among good ones, a negative and an absurd duration, dates years off: those
    // lines are skipped and counted, the rest kept.
    let long_ago = chrono::Utc::now().timestamp_millis() - 5 * 365 * 86_400_000;
    let ahead = chrono::Utc::now().timestamp_millis() + 5 * 365 * 86_400_000;
    let body = [
        line("error", "e-good-1", r#","message":"boom","source":"app""#),
        "{not json".to_owned(),
        line("resource", "r-negative", r#","type":"xhr","duration":-5"#),
        line("resource", "r-absurd", r#","type":"xhr","duration":1e25"#),
        line("error", "e-old", r#","message":"old","source":"app""#).replacen(
            "\"date\":",
            &format!("\"date\":{long_ago},\"x\":"),
            1,
        ),
        line("error", "e-future", r#","message":"future","source":"app""#).replacen(
            "\"date\":",
            &format!("\"date\":{ahead},\"x\":"),
            1,
        ),
        line("action", "a-good-2", r#","type":"tap""#),
    ]
    .join("\n");
    let (status, reason) = post(&server, &url("pub-good", "r2"), &text, body.into_bytes()).await;
    assert_eq!(status, 202, "{reason}");
    let window = window(10, "MINUTE");
    let (total, found) = rum_events(&server, json!({"serviceName": "bad-input-app", "duration": window.clone(), "paging": {"pageNum": 1, "pageSize": 10}})).await;
    let mut ids: Vec<&str> = found
        .iter()
        .map(|e| {
            e["attributes"]
                .as_array()
                .unwrap()
                .iter()
                .find(|a| a["key"] == "event.id")
                .unwrap()["value"]
                .as_str()
                .unwrap()
        })
        .collect();
    ids.sort();
    assert_eq!((total, ids), (2, vec!["a-good-2", "e-good-1"]));
    let metrics = server.self_metrics().await;
    for expected in [
        // The two bad lines here and the body that was not NDJSON.
        r#"skylark_receiver_rejected_items_total{reason="malformed",signal="rum"} 3"#,
        r#"skylark_receiver_rejected_items_total{reason="negative_duration",signal="rum"} 1"#,
        r#"skylark_receiver_rejected_items_total{reason="expired_timestamp",signal="rum"} 1"#,
        r#"skylark_receiver_rejected_items_total{reason="future_timestamp",signal="rum"} 1"#,
        r#"skylark_receiver_items_total{outcome="accepted",signal="rum"} 2"#,
    ] {
        assert!(metrics.contains(expected), "{expected} in\n{metrics}");
    }

    // A ddforward naming anything but the intake.
    let forward = "/rum?ddforward=%2Fapi%2Fv2%2Flogs%3Fddsource%3Dbrowser";
    let (status, reason) = post(
        &server,
        forward,
        &text,
        line("action", "a-x", "").into_bytes(),
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        reason.contains("ddforward must name /api/v2/rum"),
        "{reason}"
    );
    let (status, _) = post(
        &server,
        "/rum?ddforward=http%3A%2F%2Fevil.example%2Fapi%2Fv2%2Frum",
        &text,
        Vec::new(),
    )
    .await;
    assert_eq!(status, 400);
    // Paths without ddforward are simply not found.
    let (status, _) = post(&server, "/elsewhere", &text, Vec::new()).await;
    assert_eq!(status, 404);

    // Tokens: unknown → 403; a bound token may not write another service.
    let (status, reason) = post(
        &server,
        &url("pub-stolen", "r3"),
        &text,
        line("action", "a-3", "").into_bytes(),
    )
    .await;
    assert_eq!(status, 403);
    assert!(reason.contains("unknown client token"), "{reason}");
    let (status, reason) = post(
        &server,
        &url("pub-bound", "r4"),
        &text,
        line("action", "a-4", "").into_bytes(),
    )
    .await;
    assert_eq!(status, 403);
    assert!(
        reason.contains("may only write service \"bound-app\""),
        "{reason}"
    );

    // Oversized bodies, plain and as a deflate or gzip bomb: 413.
    let big = vec![b'x'; 200_000];
    let (status, _) = post(&server, &url("pub-good", "r5"), &text, big.clone()).await;
    assert_eq!(status, 413);
    let bomb = deflate(&vec![b' '; 5_000_000]);
    assert!(bomb.len() < 100_000);
    let (status, reason) = post(
        &server,
        &format!("{}&dd-evp-encoding=deflate", url("pub-good", "r6")),
        &text,
        bomb,
    )
    .await;
    assert_eq!(status, 413, "{reason}");
    let mut gz = text.clone();
    gz.push(("content-encoding".to_owned(), "gzip".to_owned()));
    let (status, _) = post(
        &server,
        &url("pub-good", "r7"),
        &gz,
        gzip(&vec![b' '; 5_000_000]),
    )
    .await;
    assert_eq!(status, 413);
    // Compressed good bodies are accepted.
    let (status, reason) = post(
        &server,
        &format!("{}&dd-evp-encoding=deflate", url("pub-good", "r8")),
        &text,
        deflate(line("action", "a-deflate", "").as_bytes()),
    )
    .await;
    assert_eq!(status, 202, "{reason}");
    let (status, _) = post(
        &server,
        &url("pub-good", "r9"),
        &gz,
        gzip(line("action", "a-gzip", "").as_bytes()),
    )
    .await;
    assert_eq!(status, 202);

    // The same batch twice with one dd-request-id is applied once.
    for _ in 0..2 {
        let (status, _) = post(
            &server,
            &url("pub-good", "same-id"),
            &text,
            line("error", "e-twice", r#","message":"twice","source":"app""#).into_bytes(),
        )
        .await;
        assert_eq!(status, 202);
    }
    let reply = server
        .graphql(
            "query ($c: LogQueryCondition!) { r: queryLogs(condition: $c) { logs { content } } }",
            json!({"c": {"queryDuration": window.clone(), "keywordsOfContent": ["twice"], "paging": {"pageNum": 1, "pageSize": 10}}}),
        )
        .await;
    assert_eq!(
        reply["data"]["r"]["logs"].as_array().map(Vec::len),
        Some(1),
        "{reply}"
    );

    // A CORS preflight on both URL forms.
    let client = reqwest::Client::new();
    for target in ["/api/v2/rum", "/?ddforward=%2Fapi%2Fv2%2Frum"] {
        let response = client
            .request(
                reqwest::Method::OPTIONS,
                format!("{}{target}", server.base()),
            )
            .header("Origin", "https://servicewechat.com")
            .header("Access-Control-Request-Method", "POST")
            .header("Access-Control-Request-Headers", "content-type")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 204, "{target}");
        assert_eq!(
            response.headers()["access-control-allow-origin"],
            "https://servicewechat.com"
        );
        assert!(response.headers()["access-control-allow-methods"]
            .to_str()
            .unwrap()
            .contains("POST"));
    }

    // Everything good above is still there.
    let (total, _) = rum_events(&server, json!({"serviceName": "bad-input-app", "duration": window, "paging": {"pageNum": 1, "pageSize": 10}})).await;
    assert_eq!(total, 5);
}
