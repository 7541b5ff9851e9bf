//! Error issues end to end: errors thrown "in" a small bundle arrive through the SkyAPM SDK's
//! log shape and the RUM shape, a source map made here is uploaded afterwards, and the issues'
//! stacks resolve to the original file, line and function; a version without a map falls back
//! and says so; a resolved issue regresses in a newer version; bad uploads and huge errors are
//! refused or bounded without losing anything else.
mod common;

use common::*;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;
use serde_json::{json, Value};
use std::io::Write;

const SERVICE: &str = "shop-mp";
const TOKEN: &str = "s3cret";

fn kv(k: &str, v: &str) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(v.into())),
        }),
        ..Default::default()
    }
}

/// One OTLP error log as the SkyAPM SDK sends it (version in the resource).
fn error_log(version: &str, attributes: &[(&str, &str)], body: &str) -> Vec<u8> {
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(Resource {
                attributes: vec![
                    kv("service.name", SERVICE),
                    kv("service.version", version),
                    kv("service.instance.id", "device-1"),
                    kv("miniprogram.platform", "wechat"),
                ],
                ..Default::default()
            }),
            scope_logs: vec![ScopeLogs {
                log_records: vec![LogRecord {
                    time_unix_nano: now_nanos() as u64,
                    severity_number: 17,
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

/// The bundle's error as a WeChat device prints it (SkyAPM `js`).
const SKYAPM_STACK: &str = "TypeError: Cannot read properties of undefined (reading 'price')\n    at e.t (https://usr/app-service.js:1:4210)\n    at e.n (https://usr/app-service.js:1:5001)\n    at https://lib/WAService.js:2:100";
/// The same error as the Flashcat RUM SDK rewrites it.
const RUM_STACK: &str = "TypeError: Cannot read properties of undefined (reading 'price')\n  at t @ app-service.js:1:4210\n  at n @ app-service.js:1:5001";
const MESSAGE: &str = "Cannot read properties of undefined (reading 'price')";

async fn send_skyapm(server: &Server, version: &str) {
    let body = error_log(
        version,
        &[
            ("exception.type", "js"),
            ("exception.stacktrace", SKYAPM_STACK),
            ("miniprogram.page.path", "pages/cart/index"),
        ],
        MESSAGE,
    );
    let (status, text) = server
        .post("/v1/logs", "application/x-protobuf", body)
        .await;
    assert_eq!(status, 200, "{text}");
}

async fn send_rum(server: &Server, version: &str) {
    let body = error_log(
        version,
        &[
            ("exception.type", "app"),
            ("exception.stacktrace", RUM_STACK),
            ("miniprogram.page.path", "pages/cart/index"),
            ("session.id", "session-1"),
        ],
        MESSAGE,
    );
    let (status, text) = server
        .post("/v1/logs", "application/x-protobuf", body)
        .await;
    assert_eq!(status, 200, "{text}");
}

/// Line 12 of the original page, where the bug is.
const BUGGY_LINE: &str = "    const total = cart.items.reduce(sum, 0).price;";

/// A source map for `app-service.js` (one minified line): column 4210 comes from `onTapPay` at
/// pages/cart/index.js:12:5, column 5001 from `submitOrder` at 31:3. Made with the `sourcemap`
/// crate's builder, as a bundler would write it.
fn bundle_map() -> Vec<u8> {
    let mut original: Vec<String> = (1..=40).map(|i| format!("// line {i}")).collect();
    original[11] = BUGGY_LINE.to_string();
    let mut builder = sourcemap::SourceMapBuilder::new(Some("app-service.js"));
    let src = builder.add_source("pages/cart/index.js");
    builder.set_source_contents(src, Some(&original.join("\n")));
    builder.add(0, 0, 0, 0, Some("pages/cart/index.js"), None, false);
    builder.add(
        0,
        4209,
        11,
        4,
        Some("pages/cart/index.js"),
        Some("onTapPay"),
        false,
    );
    builder.add(0, 4300, 12, 0, Some("pages/cart/index.js"), None, false);
    builder.add(
        0,
        5000,
        30,
        2,
        Some("pages/cart/index.js"),
        Some("submitOrder"),
        false,
    );
    let mut out = Vec::new();
    builder.into_sourcemap().to_writer(&mut out).unwrap();
    out
}

async fn upload(server: &Server, query: &str, token: Option<&str>, body: Vec<u8>) -> (u16, Value) {
    let mut request = reqwest::Client::new()
        .post(format!("{}/api/sourcemaps?{query}", server.base()))
        .body(body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    match request.send().await {
        Ok(r) => {
            let status = r.status().as_u16();
            (status, r.json().await.unwrap_or(Value::Null))
        }
        // A server that stops reading an oversized body may close before the client finishes.
        Err(e) => (0, json!({ "error": e.to_string() })),
    }
}

const ISSUES: &str = "query ($c: IssueCondition!) { queryIssues(condition: $c) { total issues { id fingerprint serviceName type title culprit status firstSeen lastSeen count versions pages sessionCount } } }";
const ISSUE: &str = "query ($id: String!, $d: Duration!) { getIssue(id: $id) { id type status count versions resolvedInVersion regressedInVersion culprit title events(paging: {pageNum: 1, pageSize: 10}) { time version page message stack sessionId resolvedWithFallback resolvedStack { function file line column source mapVersion fallback } } trend(duration: $d) { time count } } }";
const SET_STATUS: &str = "mutation ($id: String!, $s: IssueStatus!) { setIssueStatus(id: $id, status: $s) { status message issue { status resolvedInVersion } } }";

async fn issues(server: &Server, extra: Value) -> Value {
    let mut condition = json!({
        "serviceName": SERVICE,
        "duration": window(30, "MINUTE"),
        "paging": {"pageNum": 1, "pageSize": 20},
        "orderBy": "COUNT",
    });
    if let (Some(c), Some(extra)) = (condition.as_object_mut(), extra.as_object()) {
        c.extend(extra.clone());
    }
    let reply = server.graphql(ISSUES, json!({ "c": condition })).await;
    assert!(reply.get("errors").is_none(), "{reply}");
    reply["data"]["queryIssues"].clone()
}

async fn issue(server: &Server, id: &str) -> Value {
    let reply = server
        .graphql(ISSUE, json!({"id": id, "d": window(30, "MINUTE")}))
        .await;
    assert!(reply.get("errors").is_none(), "{reply}");
    reply["data"]["getIssue"].clone()
}

fn id_of_kind(list: &Value, kind: &str) -> String {
    list["issues"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["type"] == kind)
        .unwrap_or_else(|| panic!("no {kind} issue in {list}"))["id"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn errors_group_resolve_through_uploaded_maps_and_regress() {
    let server = Server::start_with(&[
        ("SW_ENABLE_UPDATE_ISSUE_STATUS", "true"),
        ("SW_ADMIN_TOKEN", TOKEN),
        ("SW_SOURCEMAP_MAX_BYTES", "4194304"),
    ])
    .await;

    // Errors arrive before any map: the bundle's frames say nothing stable, so the message
    // groups them, one issue per SDK kind.
    send_skyapm(&server, "1.0.0").await;
    send_skyapm(&server, "1.0.0").await;
    send_rum(&server, "1.0.0").await;
    let list = issues(&server, json!({})).await;
    assert_eq!(list["total"], 2, "{list}");
    let js = id_of_kind(&list, "js");
    let app = id_of_kind(&list, "app");
    let first = &list["issues"][0];
    assert_eq!(first["type"], "js");
    assert_eq!(first["count"], 2);
    assert_eq!(first["status"], "UNRESOLVED");
    assert_eq!(first["versions"], json!(["1.0.0"]));
    assert_eq!(first["pages"], json!(["pages/cart/index"]));
    assert_eq!(first["culprit"], "e.t (app-service.js)");
    assert_eq!(
        first["title"],
        "TypeError: Cannot read properties of undefined (reading 'price')"
    );
    assert_eq!(list["issues"][1]["sessionCount"], 1);
    let before = issue(&server, &js).await;
    let frame = &before["events"][0]["resolvedStack"][0];
    assert_eq!(
        (frame["file"].as_str(), frame["line"].as_i64()),
        (Some("app-service.js"), Some(1))
    );
    assert_eq!(frame["mapVersion"], "");

    // Uploads need the token, and a broken map is refused with its reason.
    let (status, _) = upload(
        &server,
        "service=shop-mp&version=1.0.0&file=app-service.js",
        None,
        bundle_map(),
    )
    .await;
    assert_eq!(status, 401);
    let (status, reply) = upload(
        &server,
        "service=shop-mp&version=1.0.0&file=app-service.js",
        Some(TOKEN),
        b"{\"version\":3,\"mappings\":".to_vec(),
    )
    .await;
    assert_eq!(status, 400, "{reply}");
    assert!(
        reply["error"]
            .as_str()
            .unwrap()
            .contains("not a usable source map"),
        "{reply}"
    );
    let (status, reply) = upload(
        &server,
        "service=shop-mp&version=1.0.0&file=weapp:///app-service.js",
        Some(TOKEN),
        bundle_map(),
    )
    .await;
    assert_eq!(status, 201, "{reply}");
    assert_eq!(reply["stored"][0]["file"], "app-service.js");

    // The errors that arrived before the map now resolve, in both SDK shapes.
    for id in [&js, &app] {
        let after = issue(&server, id).await;
        let event = &after["events"][0];
        let top = &event["resolvedStack"][0];
        assert_eq!(top["function"], "onTapPay", "{after}");
        assert_eq!(top["file"], "pages/cart/index.js");
        assert_eq!(
            (top["line"].as_i64(), top["column"].as_i64()),
            (Some(12), Some(5))
        );
        assert_eq!(top["source"], BUGGY_LINE);
        assert_eq!(
            (top["mapVersion"].as_str(), top["fallback"].as_bool()),
            (Some("1.0.0"), Some(false))
        );
        assert_eq!(event["resolvedStack"][1]["function"], "submitOrder");
        assert_eq!(event["resolvedStack"][1]["line"], 31);
        assert_eq!(event["resolvedWithFallback"], false);
    }

    // New occurrences fingerprint on the resolved frames; a new build without a map falls back
    // to 1.0.0's map, says so, and is the same issue.
    send_skyapm(&server, "1.0.0").await;
    send_skyapm(&server, "1.1.0").await;
    let list = issues(&server, json!({"version": "1.1.0"})).await;
    assert_eq!(list["total"], 1, "{list}");
    let resolved_id = list["issues"][0]["id"].as_str().unwrap().to_string();
    assert_ne!(resolved_id, js);
    assert_eq!(
        list["issues"][0]["culprit"],
        "onTapPay (pages/cart/index.js)"
    );
    assert_eq!(list["issues"][0]["versions"], json!(["1.0.0", "1.1.0"]));
    let detail = issue(&server, &resolved_id).await;
    let newest = &detail["events"][0];
    assert_eq!(newest["version"], "1.1.0");
    assert_eq!(newest["resolvedWithFallback"], true, "{detail}");
    assert_eq!(newest["resolvedStack"][0]["mapVersion"], "1.0.0");
    assert_eq!(newest["resolvedStack"][0]["fallback"], true);
    assert_eq!(newest["resolvedStack"][0]["function"], "onTapPay");
    // The same counts as a metric MQE can chart.
    let q = "query ($x: String!, $e: Entity!, $d: Duration!) { r: execExpression(expression: $x, entity: $e, duration: $d) { error results { values { value } } } }";
    let reply = server
        .graphql(
            q,
            json!({
                "x": format!("sum(meter_issue_occurrence_count{{issue='{resolved_id}'}})"),
                "e": {"serviceName": SERVICE, "normal": true},
                "d": window(30, "MINUTE"),
            }),
        )
        .await;
    let charted: i64 = reply["data"]["r"]["results"][0]["values"]
        .as_array()
        .unwrap_or_else(|| panic!("{reply}"))
        .iter()
        .filter_map(|v| v["value"].as_str().and_then(|v| v.parse::<i64>().ok()))
        .sum();
    assert_eq!(charted, 2, "{reply}");
    let trend_total: i64 = detail["trend"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["count"].as_i64().unwrap())
        .sum();
    assert_eq!(trend_total, 2, "{detail}");

    // Regression: resolved while 1.1.0 was the newest version, seen again in 1.2.0.
    let reply = server
        .graphql(SET_STATUS, json!({"id": resolved_id, "s": "RESOLVED"}))
        .await;
    assert_eq!(reply["data"]["setIssueStatus"]["status"], true, "{reply}");
    assert_eq!(
        reply["data"]["setIssueStatus"]["issue"]["resolvedInVersion"],
        "1.1.0"
    );
    let list = issues(&server, json!({"status": "RESOLVED"})).await;
    assert_eq!(list["total"], 1);
    send_skyapm(&server, "1.2.0").await;
    let detail = issue(&server, &resolved_id).await;
    assert_eq!(detail["status"], "REGRESSED", "{detail}");
    assert_eq!(detail["regressedInVersion"], "1.2.0");
    assert_eq!(detail["count"], 3);

    // A map for a file no frame uses is stored and changes nothing; zips of WeChat's layout
    // are unpacked; maps are listed and deleted over the same API.
    let (status, _) = upload(
        &server,
        "service=shop-mp&version=1.0.0&file=pages/unused.js",
        Some(TOKEN),
        bundle_map(),
    )
    .await;
    assert_eq!(status, 201);
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default();
    zip.start_file("__APP__/app-service.map.map", options)
        .unwrap();
    zip.write_all(&bundle_map()).unwrap();
    zip.start_file("__APP__/README.txt", options).unwrap();
    zip.write_all(b"not a map").unwrap();
    let archive = zip.finish().unwrap().into_inner();
    let (status, reply) = upload(
        &server,
        "service=shop-mp&version=1.2.0",
        Some(TOKEN),
        archive,
    )
    .await;
    assert_eq!(status, 201, "{reply}");
    assert_eq!(reply["stored"].as_array().unwrap().len(), 1);
    assert_eq!(reply["stored"][0]["file"], "app-service.js");
    let detail = issue(&server, &resolved_id).await;
    assert_eq!(
        detail["events"][0]["resolvedStack"][0]["mapVersion"],
        "1.2.0"
    );
    assert_eq!(detail["events"][0]["resolvedWithFallback"], false);
    let listed: Value = reqwest::Client::new()
        .get(format!("{}/api/sourcemaps?service=shop-mp", server.base()))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["maps"].as_array().unwrap().len(), 3, "{listed}");
    let deleted = reqwest::Client::new()
        .delete(format!(
            "{}/api/sourcemaps?service=shop-mp&version=1.0.0&file=pages/unused.js",
            server.base()
        ))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status().as_u16(), 204);

    // Bad input: an oversized map, a zip bomb, a 100k-line stack and a 1 MB message.
    let (status, reply) = upload(
        &server,
        "service=shop-mp&version=9&file=app-service.js",
        Some(TOKEN),
        vec![b' '; 50 * 1024 * 1024],
    )
    .await;
    assert!(status == 413 || status == 0, "{status} {reply}");
    let mut bomb = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let deflated = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    bomb.start_file("__APP__/app-service.map.map", deflated)
        .unwrap();
    let zeros = vec![b' '; 1024 * 1024];
    for _ in 0..16 {
        bomb.write_all(&zeros).unwrap();
    }
    let bomb = bomb.finish().unwrap().into_inner();
    assert!(
        bomb.len() < 100 * 1024,
        "the bomb compresses well: {}",
        bomb.len()
    );
    let (status, reply) = upload(&server, "service=shop-mp&version=9", Some(TOKEN), bomb).await;
    assert_eq!(status, 413, "{reply}");
    assert!(
        reply["error"].as_str().unwrap().contains("too large"),
        "{reply}"
    );

    let huge_stack = "    at e.t (https://usr/app-service.js:1:4210)\n".repeat(100_000);
    let huge_message = format!("Error: {}", "x".repeat(1024 * 1024));
    let body = error_log(
        "1.2.0",
        &[
            ("exception.type", "manual"),
            ("exception.stacktrace", &huge_stack),
        ],
        &huge_message,
    );
    let (status, text) = server
        .post("/v1/logs", "application/x-protobuf", body)
        .await;
    assert_eq!(status, 200, "{text}");
    let list = issues(&server, json!({"keyword": "xxxx"})).await;
    assert_eq!(list["total"], 1, "{list}");
    assert!(list["issues"][0]["title"].as_str().unwrap().chars().count() <= 200);
    let huge = issue(&server, list["issues"][0]["id"].as_str().unwrap()).await;
    assert!(huge["events"][0]["message"].as_str().unwrap().len() <= 4096);
    assert!(huge["events"][0]["resolvedStack"].as_array().unwrap().len() <= 50);

    // Nothing else was lost: every issue and count is as before.
    let all = issues(&server, json!({})).await;
    assert_eq!(all["total"], 4, "{all}");
    assert_eq!(issue(&server, &js).await["count"], 2);
    assert_eq!(issue(&server, &resolved_id).await["count"], 3);
}

#[tokio::test]
async fn the_cli_uploads_every_map_in_a_folder() {
    let server = Server::start_with(&[("SW_ADMIN_TOKEN", TOKEN)]).await;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("__APP__")).unwrap();
    std::fs::create_dir_all(root.join("packages/promo")).unwrap();
    std::fs::write(root.join("__APP__/app-service.map.map"), bundle_map()).unwrap();
    std::fs::write(
        root.join("packages/promo/app-service.map.map"),
        bundle_map(),
    )
    .unwrap();
    std::fs::write(root.join("__APP__/app-service.js"), "minified").unwrap();
    let run = |token: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_skylark"))
            .args(["sourcemaps", "upload"])
            .arg(root)
            .args([
                "--service",
                SERVICE,
                "--version",
                "2.0.0",
                "--url",
                &server.base(),
            ])
            .args(["--token", token])
            .env_remove("SW_ADMIN_TOKEN")
            .output()
            .unwrap()
    };
    let refused = run("wrong");
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("401"),
        "{refused:?}"
    );
    let out = run(TOKEN);
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        stdout.lines().collect::<Vec<_>>(),
        [
            "stored app-service.js",
            "stored packages/promo/app-service.js"
        ]
    );
    let listed: Value = reqwest::Client::new()
        .get(format!(
            "{}/api/sourcemaps?service={SERVICE}",
            server.base()
        ))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut files: Vec<&str> = listed["maps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["file"].as_str().unwrap())
        .collect();
    files.sort();
    assert_eq!(files, ["app-service.js", "packages/promo/app-service.js"]);
}
