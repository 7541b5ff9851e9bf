//! The SkyWalking web UIs against a real `skylark` holding every SDK fixture: every MQE expression
//! of every dashboard template, every GraphQL operation booster-ui and horizon-ui were recorded
//! sending (`../shared/reference/ui-ops`), and template management.
mod common;

use common::*;
use serde_json::{json, Map, Value};
use skylark_query::{template_expressions, UiTemplates};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const WECHAT: &str = "mini-program-sim-wechat";
const ALIPAY: &str = "mini-program-sim-alipay";
const INSTANCE: &str = "sim-instance-1";
/// The page with the most data points in both platforms' fixtures.
const PAGE: &str = "pages/index/index";
/// The peer of the fixtures' exit spans: the API host both mini programs call.
const API_HOST: &str = "api.example.com";

/// booster-ui's `execExpression` selection (see ui-client.md).
const BOOSTER_SELECTION: &str = "{ type results { metric { labels { key value } } values { name: id value refId: traceID owner { scope serviceID serviceName normal serviceInstanceID serviceInstanceName endpointID endpointName } } } error }";

/// Template expressions the replayed fixtures cannot fill, each with the reason. Everything else
/// must give at least one non-null value; these must give none (so the list cannot go stale).
///
/// It is empty on purpose, checked against the fixtures: the metrics Alipay lacks
/// (route/script/package_load, WeChat-only performance entries) appear in no Alipay template;
/// both platforms' gauges and request histograms carry `miniprogram.page.path` (so the per-page
/// metrics of `pages/index/index` have data) and `service.instance.id = sim-instance-1` (per-version
/// metrics); and the logs hold every error type the templates select, `ajax` included (the
/// demo, sw8probe and error-storm scenarios all report failed requests). Add an entry here, with its reason,
/// when a template gains an expression these fixtures cannot fill.
const EXPECTED_EMPTY: &[(&str, &str)] = &[];

// ---------------------------------------------------------------------------------------------
// Replaying the fixtures

/// What the replay put in: the trace ids of each service's segments.
struct Replayed {
    trace_ids: BTreeMap<String, Vec<String>>,
}

/// Posts every SDK fixture (metrics, logs, segments), re-timed so the data ends a minute ago.
async fn replay_everything(server: &Server, dir: &Path) -> Replayed {
    let latest = now_nanos() - 60_000_000_000;
    for f in fixtures(dir, "/v1/metrics") {
        let (status, text) = server
            .post("/v1/metrics", &f.content_type, retime_metrics(&f, latest))
            .await;
        assert_eq!(status, 200, "{}: {text}", f.file);
    }
    for f in fixtures(dir, "/v1/logs") {
        let (status, text) = server
            .post("/v1/logs", &f.content_type, retime_logs(&f, latest))
            .await;
        assert_eq!(status, 200, "{}: {text}", f.file);
    }
    let latest_ms = chrono::Utc::now().timestamp_millis() - 30_000;
    let mut trace_ids: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for f in fixtures(dir, "/v3/segments") {
        let body = retime_segments(&f.body, latest_ms);
        for seg in body.as_array().into_iter().flatten() {
            if let (Some(service), Some(id)) = (seg["service"].as_str(), seg["traceId"].as_str()) {
                trace_ids
                    .entry(service.to_string())
                    .or_default()
                    .push(id.to_string());
            }
        }
        let (status, text) = server
            .post(
                "/v3/segments",
                "application/json",
                serde_json::to_vec(&body).unwrap(),
            )
            .await;
        assert_eq!(status, 200, "{}: {text}", f.file);
    }
    assert!(
        trace_ids.contains_key(WECHAT) && trace_ids.contains_key(ALIPAY),
        "segments of both platforms: {:?}",
        trace_ids.keys()
    );
    Replayed { trace_ids }
}

fn no_errors(reply: &Value) -> bool {
    reply
        .get("errors")
        .is_none_or(|e| e.as_array().is_some_and(|a| a.is_empty()))
}

/// Whether an `execExpression` result holds at least one non-null value.
fn has_value(result: &Value) -> bool {
    result["results"].as_array().is_some_and(|rs| {
        rs.iter().any(|r| {
            r["values"]
                .as_array()
                .is_some_and(|vs| vs.iter().any(|v| v["value"].is_string()))
        })
    })
}

fn service_id(name: &str) -> String {
    format!("{}.1", b64(name))
}

fn child_id(service: &str, name: &str) -> String {
    format!("{}_{}", service_id(service), b64(name))
}

// ---------------------------------------------------------------------------------------------
// 1. Templates

/// The template folders: ours, and OAP's upstream set when `../shared` is there.
fn template_dirs() -> Vec<(String, PathBuf)> {
    let mut dirs = vec![("project".to_string(), repo_root().join("ui-templates"))];
    match reference_dir() {
        Some(reference) if reference.join("ui-templates").is_dir() => {
            dirs.push(("upstream".to_string(), reference.join("ui-templates")))
        }
        _ => eprintln!("SKIPPED (upstream templates only): ../shared/reference/skywalking/ui-templates is absent"),
    }
    dirs
}

/// The entity booster-ui sends for an expression of a template: the template's own entity, with
/// the instance (InstanceList rows, instance dashboards) or page (EndpointList rows, endpoint
/// dashboards) added when the expression reads an instance- or endpoint-scope metric.
fn template_entity(layer: &str, entity: &str, expression: &str) -> Value {
    let service = match layer {
        "WECHAT_MINI_PROGRAM" => WECHAT,
        "ALIPAY_MINI_PROGRAM" => ALIPAY,
        other => panic!("template for layer {other}: no fixture service carries that layer"),
    };
    let mut e = json!({"serviceName": service, "normal": true});
    if entity == "ServiceInstance" || expression.contains("_mp_instance_") {
        e["serviceInstanceName"] = json!(INSTANCE);
    }
    if entity == "Endpoint" || expression.contains("_mp_endpoint_") {
        e["endpointName"] = json!(PAGE);
    }
    // A topology edge's values: the mini program's calls to its API host (the segments' peer).
    // The API-host lists (`top_n`) rank the edges of the service itself.
    if expression.contains("service_relation_") && !expression.contains("top_n(") {
        e["scope"] = json!("ServiceRelation");
        e["destServiceName"] = json!(API_HOST);
        e["destNormal"] = json!(true);
    }
    e
}

#[tokio::test]
async fn every_template_expression_evaluates_against_the_replayed_fixtures() {
    let Some(dir) = fixtures_dir() else { return };
    let server = Server::start().await;
    replay_everything(&server, &dir).await;
    let mut duration = window(30, "MINUTE");
    duration["coldStage"] = json!(false);

    let mut failures = Vec::new();
    let mut evaluated = 0;
    let mut template_count = 0;
    let mut empty_seen: BTreeSet<String> = BTreeSet::new();
    let mut distinct: BTreeSet<String> = BTreeSet::new();
    for (origin, path) in template_dirs() {
        let templates = UiTemplates::load(&path).unwrap_or_else(|e| panic!("{origin}: {e}"));
        assert!(
            templates.templates().len() >= 8,
            "{origin}: the 8 mini-program dashboards"
        );
        for template in templates.templates() {
            template_count += 1;
            let configuration: Value = serde_json::from_str(&template.configuration).unwrap();
            let mut expressions = template_expressions(&configuration);
            expressions.dedup();
            if template.entity != "All" || template.is_root {
                // Every mini-program dashboard shows metrics (the root one through its list).
                assert!(!expressions.is_empty(), "{origin} {}", template.id);
            }
            // One booster-style `queryData` per template: aliased fields, shared duration.
            let mut declarations = vec!["$duration: Duration!".to_string()];
            let mut fields = Vec::new();
            let mut variables = Map::new();
            variables.insert("duration".into(), duration.clone());
            for (i, expression) in expressions.iter().enumerate() {
                declarations.push(format!("$expression{i}: String!, $entity{i}: Entity!"));
                fields.push(format!("expression{i}: execExpression(expression: $expression{i}, entity: $entity{i}, duration: $duration){BOOSTER_SELECTION}"));
                variables.insert(format!("expression{i}"), json!(expression));
                variables.insert(
                    format!("entity{i}"),
                    template_entity(&template.layer, &template.entity, expression),
                );
            }
            if expressions.is_empty() {
                continue;
            }
            let document = format!(
                "query queryData({}) {{ {} }}",
                declarations.join(", "),
                fields.join(" ")
            );
            let reply = server.graphql(&document, Value::Object(variables)).await;
            assert!(
                no_errors(&reply) && reply["data"].is_object(),
                "{origin} {}: {reply}",
                template.id
            );
            for (i, expression) in expressions.iter().enumerate() {
                evaluated += 1;
                distinct.insert(expression.clone());
                let result = &reply["data"][format!("expression{i}")];
                let at = format!("{origin} {} `{expression}`", template.id);
                if !result["error"].is_null() {
                    failures.push(format!("{at}: error {}", result["error"]));
                    continue;
                }
                let expected_empty = EXPECTED_EMPTY.iter().any(|(e, _)| e == expression);
                if expected_empty {
                    empty_seen.insert(expression.clone());
                }
                match (has_value(result), expected_empty) {
                    (false, false) => failures.push(format!("{at}: no value: {result}")),
                    (true, true) => failures.push(format!(
                        "{at}: listed as expected empty but has data: {result}"
                    )),
                    _ => {}
                }
            }
        }
    }
    for (expression, _) in EXPECTED_EMPTY {
        assert!(
            empty_seen.contains(*expression),
            "`{expression}` is listed as expected empty but no template uses it"
        );
    }
    eprintln!(
        "templates: {template_count}, expressions evaluated: {evaluated} ({} distinct)",
        distinct.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

// ---------------------------------------------------------------------------------------------
// 2. Recorded UI operations
//
// The recordings were made against a stand-in holding `wechat-demo-app` (instances `v1.0.0` and
// `v1.1.0`, pages `pages/index/index` and `pages/cart/cart`, trace `trace-1`) at a fixed time.
// Before sending, each recorded operation is rewritten to the replayed data:
// - names: the recorded service, instances and pages are mapped to the fixtures' ones (both
//   instances to `sim-instance-1`, `pages/cart/cart` to `pages/cart/index`), and so are the ids
//   built from them (`serviceId`, `serviceInstanceId`, `endpointId`: decoded, mapped, re-encoded);
// - `traceId`: the first replayed WeChat trace;
// - times: every `start`/`end` of a Duration (booster's variables, and Horizon's inline literals
//   in the document text, e.g. `duration: { start: "2026-11-29 0423", end: ..., step: MINUTE }`)
//   is shifted by one amount per operation so the latest of them is now, keeping each time's
//   format (its step) and each window's length (30 minutes for booster, 1 hour for Horizon);
// - Horizon's inline `serviceName: "..."`, `serviceInstanceName: "..."` and
//   `endpointName: "..."` literals get the same name mapping as variables.
// Nothing else in a document changes.

/// One recorded GraphQL request.
#[derive(Debug, Clone)]
struct RecordedOp {
    ui: &'static str,
    file: String,
    op: String,
    query: String,
    variables: Value,
}

/// Every recorded GraphQL request of `../shared/reference/ui-ops/*.jsonl` (`ops-h*` are
/// horizon-ui's BFF, the rest booster-ui), or `None` when the folder is absent.
fn recorded_ops() -> Option<Vec<RecordedOp>> {
    let dir = repo_root().join("../shared/reference/ui-ops");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        eprintln!(
            "SKIPPED: {} is absent; this test needs ../shared beside the project",
            dir.display()
        );
        return None;
    };
    let mut files: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for path in files {
        let file = path.file_name().unwrap().to_string_lossy().to_string();
        let ui = if file.starts_with("ops-h") {
            "horizon-ui"
        } else {
            "booster-ui"
        };
        for line in std::fs::read_to_string(&path).unwrap().lines() {
            let record: Value = serde_json::from_str(line).unwrap();
            // Non-GraphQL calls (Horizon's Zipkin probe) carry no document.
            let Some(query) = record["query"].as_str() else {
                continue;
            };
            out.push(RecordedOp {
                ui,
                file: file.clone(),
                op: record["op"].as_str().unwrap_or_default().to_string(),
                query: query.to_string(),
                variables: record["variables"].clone(),
            });
        }
    }
    Some(out)
}

fn map_service(name: &str) -> &'static str {
    match name {
        "wechat-demo-app" => WECHAT,
        "alipay-demo-app" => ALIPAY,
        other => panic!("recorded service {other}: add it to map_service"),
    }
}

fn map_instance(name: &str) -> &'static str {
    match name {
        "v1.0.0" | "v1.1.0" => INSTANCE,
        other => panic!("recorded instance {other}: add it to map_instance"),
    }
}

fn map_page(name: &str) -> &'static str {
    match name {
        "pages/index/index" => PAGE,
        "pages/cart/cart" => "pages/cart/index",
        other => panic!("recorded page {other}: add it to map_page"),
    }
}

fn unb64(s: &str) -> String {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(s)
        .unwrap_or_else(|e| panic!("recorded id part {s}: {e}"));
    String::from_utf8(bytes).unwrap()
}

/// `base64(service).1` of the mapped service.
fn map_service_id(id: &str) -> String {
    let (name, normal) = id.split_once('.').expect("service id has a dot");
    format!("{}.{normal}", b64(map_service(&unb64(name))))
}

/// `serviceId_base64(name)` with the service and the name mapped.
fn map_child_id(id: &str, map: fn(&str) -> &'static str) -> String {
    let (service, name) = id.split_once('_').expect("child id has an underscore");
    format!("{}_{}", map_service_id(service), b64(map(&unb64(name))))
}

/// The UI time formats, by length: SECOND, MINUTE, HOUR, DAY.
fn parse_ui_time(s: &str) -> Option<chrono::NaiveDateTime> {
    use chrono::{NaiveDate, NaiveDateTime};
    match s.len() {
        17 => NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H%M%S").ok(),
        15 => NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H%M").ok(),
        13 => NaiveDateTime::parse_from_str(&format!("{s}00"), "%Y-%m-%d %H%M").ok(),
        10 => NaiveDate::parse_from_str(s, "%Y-%m-%d")
            .ok()
            .and_then(|d| d.and_hms_opt(0, 0, 0)),
        _ => None,
    }
}

fn format_ui_time_like(t: chrono::NaiveDateTime, like: &str) -> String {
    let format = match like.len() {
        17 => "%Y-%m-%d %H%M%S",
        15 => "%Y-%m-%d %H%M",
        13 => "%Y-%m-%d %H",
        _ => "%Y-%m-%d",
    };
    t.format(format).to_string()
}

/// Every string literal of a GraphQL document that is an argument value, as
/// `(key, byte range of the text between the quotes)`.
fn document_literals(document: &str) -> Vec<(String, std::ops::Range<usize>)> {
    let bytes = document.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'"' {
            i += 1;
            continue;
        }
        let start = i + 1;
        let end = start
            + document[start..]
                .find('"')
                .expect("unterminated string in document");
        // Look back over `key\s*:\s*`.
        let before = document[..i].trim_end();
        if let Some(before) = before.strip_suffix(':') {
            let before = before.trim_end();
            let key_start = before
                .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .map_or(0, |p| p + 1);
            out.push((before[key_start..].to_string(), start..end));
        }
        i = end + 1;
    }
    out
}

/// The times of an operation (variables and inline literals).
fn recorded_times(op: &RecordedOp) -> Vec<chrono::NaiveDateTime> {
    fn walk(v: &Value, out: &mut Vec<chrono::NaiveDateTime>) {
        match v {
            Value::Object(m) => {
                for (k, x) in m {
                    match (k.as_str(), x.as_str()) {
                        ("start" | "end", Some(s)) => out.extend(parse_ui_time(s)),
                        _ => walk(x, out),
                    }
                }
            }
            Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(&op.variables, &mut out);
    for (key, range) in document_literals(&op.query) {
        if key == "start" || key == "end" {
            out.extend(parse_ui_time(&op.query[range]));
        }
    }
    out
}

/// The value an argument or variable field `key` gets in the replayed world.
fn rewritten(key: &str, value: &str, shift: chrono::Duration, trace_id: &str) -> Option<String> {
    Some(match key {
        "serviceName" => map_service(value).to_string(),
        "serviceInstanceName" => map_instance(value).to_string(),
        "endpointName" => map_page(value).to_string(),
        "serviceId" => map_service_id(value),
        "serviceInstanceId" => map_child_id(value, map_instance),
        "endpointId" => map_child_id(value, map_page),
        "traceId" => trace_id.to_string(),
        "start" | "end" => {
            let t = parse_ui_time(value)?;
            format_ui_time_like(t + shift, value)
        }
        _ => return None,
    })
}

/// The operation with the replayed data's names, ids and times (see the comment above).
fn rewrite(op: &RecordedOp, trace_id: &str) -> (String, Value) {
    let latest = recorded_times(op).into_iter().max();
    let shift = latest.map_or(chrono::Duration::zero(), |t| {
        chrono::Local::now().naive_local() - t
    });
    fn walk(v: &mut Value, shift: chrono::Duration, trace_id: &str) {
        match v {
            Value::Object(m) => {
                for (k, x) in m.iter_mut() {
                    match x.as_str().and_then(|s| rewritten(k, s, shift, trace_id)) {
                        Some(new) => *x = Value::String(new),
                        None => walk(x, shift, trace_id),
                    }
                }
            }
            Value::Array(a) => a.iter_mut().for_each(|x| walk(x, shift, trace_id)),
            _ => {}
        }
    }
    let mut variables = op.variables.clone();
    walk(&mut variables, shift, trace_id);
    let mut query = op.query.clone();
    // Replace from the back so earlier ranges stay valid.
    for (key, range) in document_literals(&op.query).into_iter().rev() {
        if let Some(new) = rewritten(&key, &op.query[range.clone()], shift, trace_id) {
            query.replace_range(range, &new);
        }
    }
    (query, variables)
}

/// `alias -> expression` of every `execExpression` in a document, reading `$variables`.
fn alias_expressions(document: &str, variables: &Value) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (at, _) in document.match_indices("execExpression(") {
        let before = document[..at].trim_end();
        let before = before.strip_suffix(':').unwrap_or(before).trim_end();
        let alias_start = before
            .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .map_or(0, |p| p + 1);
        let alias = before[alias_start..].to_string();
        let args = &document[at + "execExpression(".len()..];
        let value = args
            .trim_start()
            .strip_prefix("expression")
            .and_then(|s| s.trim_start().strip_prefix(':'))
            .map(str::trim_start)
            .unwrap_or_else(|| panic!("expression is not the first argument of {alias}"));
        let expression = if let Some(var) = value.strip_prefix('$') {
            let name: String = var
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            variables[&name].as_str().unwrap_or_default().to_string()
        } else {
            let text = value.strip_prefix('"').expect("string literal");
            text[..text.find('"').unwrap()].to_string()
        };
        out.insert(alias, expression);
    }
    out
}

/// Operations horizon-ui sends only after a click ("Run query" on the Trace and Log tabs), so the
/// recordings lack them; written from ui-client.md in the recordings' terms (recorded service id,
/// trace id and times), and rewritten like the recorded ones.
fn documented_horizon_ops() -> Vec<RecordedOp> {
    let second =
        json!({"start": "2026-11-29 050300", "end": "2026-11-29 052300", "step": "SECOND"});
    let service_id = "d2VjaGF0LWRlbW8tYXBw.1";
    let trace_condition = |page: u32, size: u32| {
        json!({"queryDuration": second, "serviceId": service_id, "traceState": "ALL",
               "queryOrder": "BY_START_TIME", "paging": {"pageNum": page, "pageSize": size}})
    };
    let log_condition = |page: u32, size: u32| json!({"queryDuration": second, "serviceId": service_id, "paging": {"pageNum": page, "pageSize": size}});
    let op = |name: &str, query: &str, variables: Value| RecordedOp {
        ui: "horizon-ui",
        file: "ui-client.md".into(),
        op: name.into(),
        query: query.into(),
        variables,
    };
    vec![
        op(
            "QueryBasicTraces",
            "query QueryBasicTraces($condition: TraceQueryCondition, $probe: TraceQueryCondition) { data: queryBasicTraces(condition: $condition) { traces { key: segmentId endpointNames duration start isError traceIds } } probe: queryBasicTraces(condition: $probe) { traces { segmentId } } }",
            json!({"condition": trace_condition(1, 21), "probe": trace_condition(21, 1)}),
        ),
        op(
            "QueryTrace",
            "query QueryTrace($traceId: ID!, $duration: Duration) { trace: queryTrace(traceId: $traceId, duration: $duration) { spans { traceId segmentId spanId parentSpanId refs { traceId parentSegmentId parentSpanId type } serviceCode serviceInstanceName startTime endTime endpointName type peer component isError layer tags { key value } logs { time data { key value } } } } }",
            json!({"traceId": "trace-1", "duration": second}),
        ),
        op(
            "QueryLogs",
            "query QueryLogs($condition: LogQueryCondition, $probe: LogQueryCondition) { data: queryLogs(condition: $condition) { logs { serviceName serviceId serviceInstanceName serviceInstanceId endpointName endpointId traceId timestamp contentType content tags { key value } } } probe: queryLogs(condition: $probe) { logs { timestamp } } }",
            json!({"condition": log_condition(1, 21), "probe": log_condition(21, 1)}),
        ),
        op(
            "TraceTagKeys",
            "query TraceTagKeys($duration: Duration!) { keys: queryTraceTagAutocompleteKeys(duration: $duration) }",
            json!({"duration": second}),
        ),
        op(
            "LogTagKeys",
            "query LogTagKeys($duration: Duration!) { keys: queryLogTagAutocompleteKeys(duration: $duration) }",
            json!({"duration": second}),
        ),
    ]
}

fn names_of(list: &Value, field: &str) -> Vec<String> {
    list.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x[field].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// What a user of the page would miss if the answer were wrong; empty when the answer is good.
fn check_answer(op: &RecordedOp, query: &str, variables: &Value, data: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let mut expect = |ok: bool, what: &str| {
        if !ok {
            problems.push(what.to_string());
        }
    };
    let wechat_id = service_id(WECHAT);
    let has_service = |list: &Value, id: &str| names_of(list, "id").iter().any(|x| x == id);
    match op.op.as_str() {
        "menuItems" => {
            let leaves: Vec<&Value> = data["getMenuItems"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|g| g["subItems"].as_array().into_iter().flatten())
                .collect();
            for layer in ["WECHAT_MINI_PROGRAM", "ALIPAY_MINI_PROGRAM"] {
                expect(
                    leaves
                        .iter()
                        .any(|l| l["layer"] == layer && l["activate"] == true),
                    &format!("an active menu leaf for {layer}"),
                );
            }
        }
        "queryOAPTimeInfo" | "HorizonServerTime" => {
            let time = data
                .get("getTimeInfo")
                .or_else(|| data.get("time"))
                .unwrap_or(&Value::Null);
            expect(time["timezone"].is_string(), "a timezone");
        }
        "version" => expect(
            data["version"].as_str().is_some_and(|v| !v.is_empty()),
            "a version",
        ),
        "HorizonOapInfo" => {
            expect(data["version"].is_string(), "a version");
            expect(data["time"]["currentTimestamp"].is_i64(), "the server time");
            expect(data["health"]["score"] == 0, "a healthy score");
        }
        "MetricsTTL" => expect(data["getMetricsTTL"]["minute"].is_i64(), "metrics TTL"),
        "RecordsTTL" => expect(data["getRecordsTTL"]["log"].is_i64(), "records TTL"),
        "HorizonOapTtl" | "HorizonOapBackendProbe" => {
            expect(data["records"]["trace"].is_i64(), "records TTL");
            expect(data["metrics"]["metadata"].is_i64(), "metrics TTL metadata");
        }
        "queryHasQueryTracesV2Support" => {
            expect(data["hasQueryTracesV2Support"].is_boolean(), "a boolean")
        }
        "queryLogsByKeywords" => expect(data["support"].is_boolean(), "a boolean"),
        "HorizonLogKeywordSupport" => {
            expect(data["supportQueryLogsByKeywords"].is_boolean(), "a boolean")
        }
        "templates" => {
            let ids = names_of(&data["getAllTemplates"], "id");
            for id in ["WeChat-Mini-Program-Root", "Alipay-Mini-Program-Root"] {
                expect(ids.iter().any(|x| x == id), &format!("template {id}"));
            }
            expect(
                data["getAllTemplates"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .all(|t| {
                        t["configuration"]
                            .as_str()
                            .and_then(|c| serde_json::from_str::<Value>(c).ok())
                            .is_some_and(|c| c.is_object())
                    }),
                "configurations that are JSON objects",
            );
        }
        "HorizonMenu" | "HorizonServiceCatalogLayers" => {
            let layers: Vec<&str> = data["layers"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            expect(
                layers.contains(&"WECHAT_MINI_PROGRAM") && layers.contains(&"ALIPAY_MINI_PROGRAM"),
                "both mini-program layers",
            );
            if op.op == "HorizonMenu" {
                expect(data["levels"].is_array(), "layer levels");
            }
        }
        "queryServices" | "LandingServices" => {
            expect(
                has_service(&data["services"], &wechat_id),
                "the WeChat service",
            );
            expect(
                data["services"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .all(|s| s["group"].is_string()),
                "string groups",
            );
        }
        "HorizonServiceCatalogServices" => {
            expect(has_service(&data["_0"], &wechat_id), "the WeChat service");
            expect(
                has_service(&data["_1"], &service_id(ALIPAY)),
                "the Alipay service",
            );
        }
        "queryService" => expect(data["service"]["id"] == wechat_id.as_str(), "the service"),
        "queryInstances" | "LayerInstances" => {
            let list = data.get("pods").or_else(|| data.get("instances")).unwrap();
            expect(
                has_service(list, &child_id(WECHAT, INSTANCE)),
                "the instance sim-instance-1",
            );
        }
        "queryEndpoints" | "LayerEndpoints" => {
            let list = data.get("pods").or_else(|| data.get("endpoints")).unwrap();
            expect(has_service(list, &child_id(WECHAT, PAGE)), "the index page");
        }
        "queryEndpoint" => {
            expect(data["endpoint"]["value"] == PAGE, "the page");
            expect(data["endpoint"]["serviceName"] == WECHAT, "its service");
        }
        "queryData" | "LandingMqe" | "DashboardMqe" => {
            let expressions = alias_expressions(query, variables);
            expect(!expressions.is_empty(), "expressions");
            for (alias, expression) in expressions {
                let result = &data[&alias];
                expect(
                    result["error"].is_null(),
                    &format!("{alias} `{expression}` without error: {result}"),
                );
                expect(
                    has_value(result),
                    &format!("{alias} `{expression}` with a value: {result}"),
                );
            }
        }
        "queryTraceTagKeys" | "queryTagKeys" => expect(data["tagKeys"].is_array(), "tag keys"),
        "TraceTagKeys" | "LogTagKeys" => expect(data["keys"].is_array(), "tag keys"),
        "queryTraces" | "QueryBasicTraces" => {
            let traces = data["data"]["traces"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            expect(!traces.is_empty(), "traces");
            expect(
                traces.iter().all(|t| {
                    t["start"]
                        .as_str()
                        .is_some_and(|s| s.parse::<i64>().is_ok())
                }),
                "epoch-ms start strings",
            );
        }
        "querySpans" | "QueryTrace" => {
            let spans = data["trace"]["spans"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            expect(!spans.is_empty(), "spans");
            expect(
                spans.iter().all(|s| s["serviceCode"] == WECHAT),
                "spans of the WeChat service",
            );
        }
        "queryLogs" | "QueryLogs" => {
            let logs = data
                .get("queryLogs")
                .or_else(|| data.get("data"))
                .map(|l| l["logs"].as_array().cloned().unwrap_or_default())
                .unwrap_or_default();
            expect(!logs.is_empty(), "log rows");
            expect(
                logs.iter().all(|l| l["serviceName"] == WECHAT),
                "rows of the WeChat service",
            );
            let condition = &variables["condition"];
            if condition["serviceInstanceId"].is_string() {
                expect(
                    logs.iter().all(|l| l["serviceInstanceName"] == INSTANCE),
                    "rows of the selected instance",
                );
            }
        }
        "HorizonCountGetAlarm" => expect(data["getAlarm"]["msgs"].is_array(), "alarm messages"),
        "HorizonOapCapabilities" => {
            let fields = names_of(&data["__type"]["fields"], "name");
            for f in [
                "listServices",
                "listInstances",
                "findEndpoint",
                "execExpression",
                "queryBasicTraces",
                "queryTrace",
                "queryLogs",
                "getAlarm",
                "listLayerLevels",
            ] {
                expect(fields.iter().any(|x| x == f), &format!("Query.{f}"));
            }
        }
        other => panic!("{} {other}: no check for this operation yet", op.file),
    }
    problems
}

#[tokio::test]
async fn every_recorded_ui_operation_gets_data_from_the_replayed_fixtures() {
    let Some(dir) = fixtures_dir() else { return };
    let Some(mut ops) = recorded_ops() else {
        return;
    };
    ops.extend(documented_horizon_ops());
    let server = Server::start().await;
    let replayed = replay_everything(&server, &dir).await;
    let trace_id = replayed.trace_ids[WECHAT][0].clone();

    let mut seen = BTreeSet::new();
    let mut sent: BTreeMap<&str, usize> = BTreeMap::new();
    let mut documents: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    let mut op_names: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    let mut failures = Vec::new();
    let mut documented = 0;
    for op in &ops {
        // The same request recorded on several pages is sent once.
        if !seen.insert((op.query.clone(), op.variables.to_string())) {
            continue;
        }
        let (query, variables) = rewrite(op, &trace_id);
        let reply = server.graphql(&query, variables.clone()).await;
        *sent.entry(op.ui).or_default() += 1;
        if op.file == "ui-client.md" {
            documented += 1;
        }
        documents.entry(op.ui).or_default().insert(op.query.clone());
        op_names.entry(op.ui).or_default().insert(op.op.clone());
        let at = format!("{} {} ({})", op.ui, op.op, op.file);
        if !no_errors(&reply) || !reply["data"].is_object() {
            failures.push(format!(
                "{at}: {reply}\n  query: {query}\n  variables: {variables}"
            ));
            continue;
        }
        for problem in check_answer(op, &query, &variables, &reply["data"]) {
            failures.push(format!("{at}: expected {problem}"));
        }
    }
    for (ui, n) in &sent {
        eprintln!(
            "{ui}: {n} requests sent, {} distinct documents, {} operations: {:?}",
            documents[ui].len(),
            op_names[ui].len(),
            op_names[ui]
        );
    }
    eprintln!("of which documented in ui-client.md but not recorded: {documented} (horizon-ui)");
    assert!(
        sent.get("booster-ui").is_some_and(|n| *n >= 20)
            && sent.get("horizon-ui").is_some_and(|n| *n >= 15),
        "both UIs' recordings were replayed: {sent:?}"
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

// ---------------------------------------------------------------------------------------------
// 3. Template management (booster-ui's settings page)

const ADD: &str = "mutation addNewTemplate($setting: NewDashboardSetting!) { addTemplate(setting: $setting) { id status message } }";
const CHANGE: &str = "mutation changeTemplate($setting: DashboardSetting!) { changeTemplate(setting: $setting) { id status message } }";
const DISABLE: &str =
    "mutation disableTemplate($id: String!) { disableTemplate(id: $id) { id status message } }";
const ALL: &str = "query templates { getAllTemplates { id, configuration, } }";
const ONE: &str =
    "query getTemplate($id: String!) { template: getTemplate(id: $id) { id configuration } }";

fn dashboard(name: &str, expression: &str) -> Value {
    json!({"layer": "WECHAT_MINI_PROGRAM", "entity": "Service", "name": name, "isRoot": false,
           "children": [{"x": 0, "y": 0, "w": 24, "h": 12, "i": "0", "type": "Widget",
                         "widget": {"title": name}, "graph": {"type": "Line"},
                         "expressions": [expression]}]})
}

/// `id -> configuration` of `getAllTemplates`.
async fn all_templates(server: &Server) -> BTreeMap<String, Value> {
    let reply = server.graphql(ALL, json!({})).await;
    assert!(no_errors(&reply), "{reply}");
    reply["data"]["getAllTemplates"]
        .as_array()
        .expect("templates")
        .iter()
        .map(|t| {
            (
                t["id"].as_str().unwrap().to_string(),
                serde_json::from_str(t["configuration"].as_str().unwrap()).unwrap(),
            )
        })
        .collect()
}

async fn mutate(server: &Server, document: &str, variables: Value) -> Value {
    let reply = server.graphql(document, variables).await;
    assert!(no_errors(&reply), "{reply}");
    let data = reply["data"].as_object().expect("data").clone();
    data.into_iter().next().expect("one field").1
}

#[tokio::test]
async fn templates_round_trip_when_editing_is_enabled() {
    let server = Server::start_with(&[("SW_ENABLE_UPDATE_UI_TEMPLATE", "true")]).await;
    let shipped = all_templates(&server).await;
    assert!(shipped.contains_key("WeChat-Mini-Program-Service"));

    // add
    let first = dashboard("UI-Test", "meter_wechat_mp_request_cpm");
    let added = mutate(
        &server,
        ADD,
        json!({"setting": {"configuration": first.to_string()}}),
    )
    .await;
    assert_eq!(added["status"], true, "{added}");
    let id = added["id"].as_str().unwrap().to_string();
    assert!(!id.is_empty() && !shipped.contains_key(&id), "{added}");
    let now = all_templates(&server).await;
    assert_eq!(now.get(&id), Some(&first));
    assert_eq!(now.len(), shipped.len() + 1);

    // change
    let second = dashboard("UI-Test-Renamed", "meter_wechat_mp_error_count");
    let changed = mutate(
        &server,
        CHANGE,
        json!({"setting": {"id": id, "configuration": second.to_string()}}),
    )
    .await;
    assert_eq!(changed["status"], true, "{changed}");
    assert_eq!(all_templates(&server).await.get(&id), Some(&second));
    let one = server.graphql(ONE, json!({"id": id})).await;
    assert_eq!(
        serde_json::from_str::<Value>(one["data"]["template"]["configuration"].as_str().unwrap())
            .unwrap(),
        second,
        "{one}"
    );

    // disable: gone from the list the UI reads
    let disabled = mutate(&server, DISABLE, json!({"id": id})).await;
    assert_eq!(disabled["status"], true, "{disabled}");
    let now = all_templates(&server).await;
    assert!(!now.contains_key(&id));
    assert_eq!(now.len(), shipped.len());

    // a shipped dashboard can be edited and disabled too
    let mut edited = shipped["WeChat-Mini-Program-Service"].clone();
    edited["name"] = json!("WeChat-Mini-Program-Service-Edited");
    let changed = mutate(
        &server,
        CHANGE,
        json!({"setting": {"id": "WeChat-Mini-Program-Service", "configuration": edited.to_string()}}),
    )
    .await;
    assert_eq!(changed["status"], true, "{changed}");
    assert_eq!(
        all_templates(&server)
            .await
            .get("WeChat-Mini-Program-Service"),
        Some(&edited)
    );
    let disabled = mutate(
        &server,
        DISABLE,
        json!({"id": "WeChat-Mini-Program-Service"}),
    )
    .await;
    assert_eq!(disabled["status"], true, "{disabled}");
    let now = all_templates(&server).await;
    assert!(!now.contains_key("WeChat-Mini-Program-Service"));
    assert!(now.contains_key("WeChat-Mini-Program-Root"));

    // refusals are answers (status false + message), not GraphQL errors
    let unknown = mutate(
        &server,
        CHANGE,
        json!({"setting": {"id": "no-such-dashboard", "configuration": first.to_string()}}),
    )
    .await;
    assert_eq!(unknown["status"], false, "{unknown}");
    assert!(
        unknown["message"]
            .as_str()
            .is_some_and(|m| m.contains("no-such-dashboard")),
        "{unknown}"
    );
    let broken = mutate(
        &server,
        ADD,
        json!({"setting": {"configuration": "{\"layer\": "}}),
    )
    .await;
    assert_eq!(broken["status"], false, "{broken}");
    assert!(
        broken["message"]
            .as_str()
            .is_some_and(|m| m.contains("JSON")),
        "{broken}"
    );
    assert_eq!(all_templates(&server).await.len(), shipped.len() - 1);
}

#[tokio::test]
async fn template_edits_are_refused_with_a_clear_message_when_disabled() {
    let server = Server::start().await;
    let shipped = all_templates(&server).await;
    let config = dashboard("UI-Test", "meter_wechat_mp_request_cpm").to_string();
    let replies = [
        mutate(&server, ADD, json!({"setting": {"configuration": config}})).await,
        mutate(
            &server,
            CHANGE,
            json!({"setting": {"id": "WeChat-Mini-Program-Service", "configuration": config}}),
        )
        .await,
        mutate(&server, DISABLE, json!({"id": "WeChat-Mini-Program-Root"})).await,
    ];
    for reply in replies {
        assert_eq!(reply["status"], false, "{reply}");
        assert!(
            reply["message"]
                .as_str()
                .is_some_and(|m| m.contains("SW_ENABLE_UPDATE_UI_TEMPLATE")),
            "{reply}"
        );
    }
    assert_eq!(all_templates(&server).await, shipped, "nothing changed");
}
