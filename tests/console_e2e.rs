//! The console in real Chromium (Debian's `chromium`, driven over CDP by chromiumoxide): the RUM
//! and SkyAPM SDK fixtures replayed into a real server, then every page opened. Each page loads
//! without console errors or exceptions, shows the numbers the GraphQL API gives for the same
//! question, and list → detail → trace navigation works by clicking. Screenshots of every page go
//! to `target/console-shots/`; page weights and the time to render a 500-event timeline are
//! printed (measured, not asserted).
mod common;

use chromiumoxide::browser::{Browser, BrowserConfig};
use chromiumoxide::cdp::browser_protocol::emulation::SetDeviceMetricsOverrideParams;
use chromiumoxide::cdp::browser_protocol::log::EventEntryAdded;
use chromiumoxide::cdp::js_protocol::runtime::{
    ConsoleApiCalledType, EvaluateParams, EventConsoleApiCalled, EventExceptionThrown,
};
use chromiumoxide::handler::viewport::Viewport;
use chromiumoxide::page::ScreenshotParams;
use chromiumoxide::Page;
use common::*;
use futures::StreamExt;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const SERVICE: &str = "shop-miniprogram";
const BACKEND: &str = "shop-api";

/// The system Chromium, or `None` (with a SKIPPED line).
fn chromium() -> Option<PathBuf> {
    let candidates = [
        std::env::var("CHROMIUM").unwrap_or_default(),
        "/usr/bin/chromium".into(),
        "/usr/bin/chromium-browser".into(),
    ];
    let found = candidates
        .iter()
        .filter(|c| !c.is_empty())
        .map(PathBuf::from)
        .find(|p| p.is_file());
    if found.is_none() {
        // CI installs chromium (.ci/run) and sets this, so the browser test can never pass there
        // by skipping.
        assert!(
            std::env::var_os("SKYLARK_REQUIRE_CHROMIUM").is_none(),
            "SKYLARK_REQUIRE_CHROMIUM is set but no chromium was found"
        );
        eprintln!("SKIPPED: no chromium (apt-get install -y chromium, or set CHROMIUM=path)");
    }
    found
}

async fn post_rum(server: &Server, target: &str, headers: &[(String, String)], body: String) {
    let mut request = reqwest::Client::new()
        .post(format!("{}{}", server.base(), target))
        .body(body);
    for (k, v) in headers {
        request = request.header(k.as_str(), v.as_str());
    }
    let response = request.send().await.expect("request");
    assert_eq!(response.status().as_u16(), 202, "{target}");
}

/// Replays the RUM fixtures (first event 10 minutes ago) and the SkyAPM SDK fixtures.
async fn replay(server: &Server, rum: &Path, sdk: &Path) {
    let all = recorded(rum);
    let first = all
        .iter()
        .flat_map(|r| r.body.split('\n'))
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|e| e["date"].as_i64())
        .min()
        .expect("dated events");
    let delta = chrono::Utc::now().timestamp_millis() - 600_000 - first;
    for r in &all {
        let body = shift_numbers(&r.body, "\"date\":", delta);
        let target = shift_numbers(
            &shift_numbers(&r.target, "batch_time%3D", delta),
            "batch_time=",
            delta,
        );
        post_rum(server, &target, &r.headers, body).await;
    }
    let latest = now_nanos() - 60_000_000_000;
    for f in fixtures(sdk, "/v1/metrics") {
        let (status, text) = server
            .post("/v1/metrics", &f.content_type, retime_metrics(&f, latest))
            .await;
        assert_eq!(status, 200, "{}: {text}", f.file);
    }
    for f in fixtures(sdk, "/v1/logs") {
        let (status, text) = server
            .post("/v1/logs", &f.content_type, retime_logs(&f, latest))
            .await;
        assert_eq!(status, 200, "{}: {text}", f.file);
    }
    let latest_ms = chrono::Utc::now().timestamp_millis() - 30_000;
    for f in fixtures(sdk, "/v3/segments") {
        let body = serde_json::to_vec(&retime_segments(&f.body, latest_ms)).unwrap();
        let (status, text) = server.post("/v3/segments", "application/json", body).await;
        assert_eq!(status, 200, "{}: {text}", f.file);
    }
}

/// A session of 10 views and 490 actions and requests (500 events).
async fn post_500_event_session(server: &Server) {
    let now = chrono::Utc::now().timestamp_millis() - 300_000;
    let mut lines = Vec::new();
    for v in 0..10 {
        let start = now + v * 10_000;
        lines.push(format!(
            r#"{{"date":{start},"type":"view","service":"perf-app","version":"1.0","session":{{"id":"s-500"}},"view":{{"id":"v-{v}","name":"pages/p{v}/index","url":"pages/p{v}/index","time_spent":9000000000}},"_dd":{{"document_version":1}}}}"#
        ));
        for i in 0..49 {
            let kind = if i % 2 == 0 { "action" } else { "resource" };
            let date = start + 100 + i * 100;
            let extra = if kind == "resource" {
                r#","type":"xhr","method":"GET","url":"https://api.example/x","status_code":200,"duration":60000000"#
            } else {
                r#","type":"tap""#
            };
            lines.push(format!(
                r#"{{"date":{date},"type":"{kind}","service":"perf-app","version":"1.0","session":{{"id":"s-500"}},"view":{{"id":"v-{v}","name":"pages/p{v}/index"}},"{kind}":{{"id":"{kind}-{v}-{i}"{extra}}}}}"#
            ));
        }
    }
    let text = vec![("content-type".to_owned(), "text/plain".to_owned())];
    for (n, chunk) in lines.chunks(100).enumerate() {
        post_rum(
            server,
            &format!("/api/v2/rum?ddsource=miniapp&ddtags=env%3Atest&dd-request-id=perf-{n}"),
            &text,
            chunk.join("\n"),
        )
        .await;
    }
}

/// Two backend spans (OTLP JSON) under the mini program's request span, so the trace runs from
/// the mini program into a backend.
async fn post_backend_spans(server: &Server, trace: &str, parent_span: &str, at_ms: i64) {
    let span = |id: &str, parent: &str, name: &str, kind: i32, from: i64, to: i64| {
        json!({"traceId": trace, "spanId": id, "parentSpanId": parent, "name": name, "kind": kind,
               "startTimeUnixNano": (from * 1_000_000).to_string(),
               "endTimeUnixNano": (to * 1_000_000).to_string()})
    };
    let body = json!({"resourceSpans": [{
    "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": BACKEND}}]},
    "scopeSpans": [{"spans": [
        span("00000000000000a1", parent_span, "GET /api/cart", 2, at_ms + 2, at_ms + 40),
        span("00000000000000a2", "00000000000000a1", "SELECT cart", 3, at_ms + 5, at_ms + 30),
    ]}]}]});
    let (status, text) = server
        .post(
            "/v1/traces",
            "application/json",
            serde_json::to_vec(&body).unwrap(),
        )
        .await;
    assert_eq!(status, 200, "{text}");
}

/// Console errors, uncaught exceptions and browser log errors (failed loads, CSP refusals) seen
/// by a page since it was last asked.
#[derive(Clone, Default)]
struct Problems(Arc<Mutex<Vec<String>>>);

impl Problems {
    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
    fn push(&self, p: String) {
        self.0.lock().unwrap().push(p);
    }
}

async fn watch(page: &Page) -> Problems {
    let problems = Problems::default();
    page.enable_log().await.expect("log domain");
    page.enable_runtime().await.expect("runtime domain");
    let mut console = page
        .event_listener::<EventConsoleApiCalled>()
        .await
        .unwrap();
    let mut thrown = page.event_listener::<EventExceptionThrown>().await.unwrap();
    let mut log = page.event_listener::<EventEntryAdded>().await.unwrap();
    let p = problems.clone();
    tokio::spawn(async move {
        while let Some(e) = console.next().await {
            if matches!(
                e.r#type,
                ConsoleApiCalledType::Error | ConsoleApiCalledType::Warning
            ) {
                p.push(format!("console {:?}: {:?}", e.r#type, e.args));
            }
        }
    });
    let p = problems.clone();
    tokio::spawn(async move {
        while let Some(e) = thrown.next().await {
            p.push(format!("exception: {:?}", e.exception_details));
        }
    });
    let p = problems.clone();
    tokio::spawn(async move {
        while let Some(e) = log.next().await {
            let level = format!("{:?}", e.entry.level).to_lowercase();
            if level.contains("error") || level.contains("warn") {
                p.push(format!("log {level}: {} {:?}", e.entry.text, e.entry.url));
            }
        }
    });
    problems
}

async fn eval<T: serde::de::DeserializeOwned>(page: &Page, js: &str) -> T {
    let params = EvaluateParams::builder()
        .expression(js)
        .await_promise(true)
        .return_by_value(true)
        .build()
        .unwrap();
    page.evaluate_expression(params)
        .await
        .unwrap_or_else(|e| panic!("{js}: {e}"))
        .into_value()
        .unwrap_or_else(|e| panic!("{js}: {e}"))
}

/// Marks the current document, so `wait_ready` can tell the next one from it.
async fn mark_stale(page: &Page) {
    let _: Value = eval(page, "(document.documentElement.dataset.stale = '1', true)").await;
}

/// Waits until a new document (not marked by `mark_stale`) has drawn itself (`body[data-ready]`).
async fn wait_ready(page: &Page) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        // While a click's navigation is under way the old document's context may be gone.
        let params = EvaluateParams::builder()
            .expression("({href: location.href, stale: document.documentElement.dataset.stale === '1', ready: document.body ? document.body.dataset.ready === 'true' : false})")
            .return_by_value(true)
            .build()
            .unwrap();
        let state: Value = match page.evaluate_expression(params).await {
            Ok(v) => v.into_value().unwrap_or(Value::Null),
            Err(_) => Value::Null,
        };
        let href = state["href"].as_str().unwrap_or_default().to_owned();
        if state["ready"] == true && state["stale"] == false {
            return href;
        }
        assert!(Instant::now() < deadline, "page did not get ready: {state}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn open(page: &Page, url: &str) -> String {
    mark_stale(page).await;
    page.goto(url).await.expect("navigate");
    wait_ready(page).await
}

async fn click(page: &Page, selector: &str) -> String {
    mark_stale(page).await;
    page.find_element(selector)
        .await
        .unwrap_or_else(|e| panic!("{selector}: {e}"))
        .click()
        .await
        .unwrap_or_else(|e| panic!("click {selector}: {e}"));
    wait_ready(page).await
}

fn shots_dir() -> PathBuf {
    let dir = repo_root().join("target/console-shots");
    std::fs::create_dir_all(&dir).expect("target/console-shots");
    dir
}

async fn shot(page: &Page, name: &str) {
    let path = shots_dir().join(format!("{name}.png"));
    // A full-page capture resets the device metrics, so phone-sized pages are shot as seen.
    let full = !name.contains("phone") && !name.ends_with("-top");
    page.save_screenshot(ScreenshotParams::builder().full_page(full).build(), &path)
        .await
        .unwrap_or_else(|e| panic!("screenshot {name}: {e}"));
}

/// Uncompressed bytes the current page loaded: the document, every asset and every `/graphql`
/// answer (`decodedBodySize`, so cached assets count too).
async fn page_bytes(page: &Page) -> (u64, u64) {
    let v: Value = eval(
        page,
        "(() => { const all = [...performance.getEntriesByType('navigation'), ...performance.getEntriesByType('resource')];
                  return { decoded: all.reduce((n, e) => n + (e.decodedBodySize || 0), 0),
                           requests: all.length }; })()",
    )
    .await;
    (
        v["decoded"].as_u64().unwrap_or(0),
        v["requests"].as_u64().unwrap_or(0),
    )
}

/// en-US number text as the console shows it (grouping, at most two decimals).
fn en_us(n: f64) -> String {
    let rounded = (n * 100.0).round() / 100.0;
    let int = rounded.trunc() as i64;
    let digits = int.abs().to_string();
    let mut grouped = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(c);
    }
    let sign = if rounded < 0.0 { "-" } else { "" };
    let frac = ((rounded.abs().fract()) * 100.0).round() as i64;
    if frac == 0 {
        format!("{sign}{grouped}")
    } else if frac % 10 == 0 {
        format!("{sign}{grouped}.{}", frac / 10)
    } else {
        format!("{sign}{grouped}.{frac:02}")
    }
}

/// A duration as the console shows it (`SK.fmtMs`, below a minute).
fn fmt_ms(ms: f64) -> String {
    if ms < 1000.0 {
        format!("{} ms", ms.round())
    } else if ms < 10_000.0 {
        format!("{:.2} s", ms / 1000.0)
    } else {
        format!("{:.1} s", ms / 1000.0)
    }
}

async fn texts(page: &Page, selector: &str) -> Vec<String> {
    eval(
        page,
        &format!(
            "[...document.querySelectorAll({})].map(e => e.textContent.trim())",
            serde_json::to_string(selector).unwrap()
        ),
    )
    .await
}

async fn attrs(page: &Page, selector: &str, attr: &str) -> Vec<String> {
    eval(
        page,
        &format!(
            "[...document.querySelectorAll({})].map(e => e.getAttribute({}))",
            serde_json::to_string(selector).unwrap(),
            serde_json::to_string(attr).unwrap()
        ),
    )
    .await
}

async fn mqe_single(server: &Server, expression: &str, duration: &Value) -> f64 {
    let reply = server
        .graphql(
            "query ($e: String!, $d: Duration!) { r: execExpression(expression: $e, entity: {serviceName: \"shop-miniprogram\", normal: true}, duration: $d) { error results { values { value } } } }",
            json!({"e": expression, "d": duration}),
        )
        .await;
    assert!(reply.get("errors").is_none(), "{reply}");
    assert!(reply["data"]["r"]["error"].is_null(), "{reply}");
    reply["data"]["r"]["results"][0]["values"][0]["value"]
        .as_str()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn every_console_page_shows_the_graphql_numbers_in_chromium() {
    let (Some(chrome), Some(rum), Some(sdk)) = (chromium(), rum_dir(), fixtures_dir()) else {
        return;
    };
    let server = Server::start_with(&[("SW_ENABLE_UPDATE_ISSUE_STATUS", "true")]).await;
    replay(&server, &rum, &sdk).await;
    post_500_event_session(&server).await;
    let window = window(60, "MINUTE");

    // Sessions, and a request of a session with errors that carried a trace, as GraphQL sees them.
    let sessions = server
        .graphql(
            "query ($c: SessionCondition!) { r: querySessions(condition: $c) { total sessions { id errorCount viewCount } } }",
            json!({"c": {"serviceName": SERVICE, "duration": window, "paging": {"pageNum": 1, "pageSize": 20}}}),
        )
        .await;
    assert!(sessions.get("errors").is_none(), "{sessions}");
    let session_total = sessions["data"]["r"]["total"].as_i64().unwrap();
    let listed: Vec<Value> = sessions["data"]["r"]["sessions"]
        .as_array()
        .cloned()
        .unwrap();
    assert!(session_total >= 2, "{sessions}");
    let mut traced = None;
    for s in &listed {
        let id = s["id"].as_str().unwrap();
        let t = server
            .graphql(
                "query ($id: ID!) { t: querySessionTimeline(sessionId: $id) { views { events { type traceId spanId time } } } }",
                json!({"id": id}),
            )
            .await;
        let found = t["data"]["t"]["views"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|v| v["events"].as_array().cloned().unwrap_or_default())
            .find(|e| {
                e["type"] == "resource" && e["traceId"].is_string() && e["spanId"].is_string()
            });
        if let Some(e) = found {
            traced = Some((s.clone(), e));
            break;
        }
    }
    let (traced_session, request) = traced.expect("a fixture session has a traced request");
    let trace_id = request["traceId"].as_str().unwrap().to_owned();
    let span_id = request["spanId"].as_str().unwrap().to_owned();
    let span_hex = span_id
        .parse::<u64>()
        .map(|n| format!("{n:016x}"))
        .unwrap_or(span_id.clone());
    post_backend_spans(
        &server,
        &trace_id,
        &span_hex,
        request["time"].as_i64().unwrap(),
    )
    .await;

    // Metrics are persisted every 500 ms in tests: wait until MQE sees the page views.
    let deadline = Instant::now() + Duration::from_secs(30);
    let page_views = loop {
        let v = mqe_single(&server, "sum(meter_wechat_mp_rum_page_views)", &window).await;
        if v > 0.0 {
            break v;
        }
        assert!(Instant::now() < deadline, "no page views reached MQE");
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let trace_spans = loop {
        let t = server
            .graphql(
                "query ($id: ID!) { t: queryTrace(traceId: $id) { spans { serviceCode } } }",
                json!({"id": trace_id}),
            )
            .await;
        let spans = t["data"]["t"]["spans"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if spans.iter().any(|s| s["serviceCode"] == BACKEND)
            && spans.iter().any(|s| s["serviceCode"] == SERVICE)
        {
            break spans;
        }
        assert!(
            Instant::now() < deadline,
            "trace {trace_id} not joined: {t}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };

    let profile = tempfile::tempdir().unwrap();
    let config = BrowserConfig::builder()
        .chrome_executable(&chrome)
        .new_headless_mode()
        .no_sandbox()
        .user_data_dir(profile.path())
        .window_size(1280, 900)
        .viewport(Viewport {
            width: 1280,
            height: 900,
            ..Viewport::default()
        })
        .arg("--disable-gpu")
        .arg("--disable-dev-shm-usage")
        .build()
        .expect("browser config");
    let (mut browser, mut handler) = Browser::launch(config).await.expect("launch chromium");
    let driver = tokio::spawn(async move { while handler.next().await.is_some() {} });
    let page = browser.new_page("about:blank").await.expect("tab");
    let problems = watch(&page).await;
    let base = server.base();
    let mut weights: Vec<(String, u64, u64)> = Vec::new();
    macro_rules! clean {
        ($name:expr) => {{
            let found = problems.take();
            assert!(found.is_empty(), "{}: console problems {found:#?}", $name);
            weights.push((
                $name.to_string(),
                page_bytes(&page).await.0,
                page_bytes(&page).await.1,
            ));
            shot(&page, $name).await;
        }};
    }

    // Overview: the cards hold what MQE and the session query answer.
    open(
        &page,
        &format!("{base}/console/?service={SERVICE}&range=1h"),
    )
    .await;
    let card = |key: &str| format!(".card[data-metric={key}] .value");
    assert_eq!(
        texts(&page, &card("pageViews")).await,
        vec![en_us(page_views)]
    );
    assert_eq!(
        texts(&page, &card("sessions")).await,
        vec![en_us(session_total as f64)]
    );
    let errors = mqe_single(&server, "sum(meter_wechat_mp_rum_error_count)", &window).await;
    assert!(errors > 0.0);
    assert_eq!(texts(&page, &card("errors")).await, vec![en_us(errors)]);
    let with_errors = server
        .graphql(
            "query ($c: SessionCondition!) { r: querySessions(condition: $c) { total } }",
            json!({"c": {"serviceName": SERVICE, "duration": window, "hasError": true, "paging": {"pageNum": 1, "pageSize": 1}}}),
        )
        .await["data"]["r"]["total"]
        .as_i64()
        .unwrap();
    assert_eq!(
        texts(&page, &card("errorRate")).await,
        vec![format!(
            "{} %",
            en_us(with_errors as f64 * 100.0 / session_total as f64)
        )]
    );
    let top = server
        .graphql(
            "query ($c: IssueCondition!) { r: queryIssues(condition: $c) { total issues { id title count } } }",
            json!({"c": {"serviceName": SERVICE, "duration": window, "orderBy": "COUNT", "paging": {"pageNum": 1, "pageSize": 5}}}),
        )
        .await;
    let top_ids: Vec<String> = top["data"]["r"]["issues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_owned())
        .collect();
    assert!(!top_ids.is_empty(), "{top}");
    assert_eq!(
        attrs(&page, "table.top-issues tbody tr", "data-issue").await,
        top_ids
    );
    // Latency: the mean of the per-minute percentiles MQE gives.
    let latency = server
        .graphql(
            "query ($d: Duration!) { r: execExpression(expression: \"avg(meter_wechat_mp_request_duration_percentile{p='50,95'})\", entity: {serviceName: \"shop-miniprogram\", normal: true}, duration: $d) { error results { metric { labels { key value } } values { value } } } }",
            json!({"d": window}),
        )
        .await;
    assert!(latency["data"]["r"]["error"].is_null(), "{latency}");
    for r in latency["data"]["r"]["results"].as_array().unwrap() {
        let p = r["metric"]["labels"][0]["value"].as_str().unwrap();
        let ms: f64 = r["values"][0]["value"].as_str().unwrap().parse().unwrap();
        assert_eq!(
            texts(&page, &card(&format!("p{p}"))).await,
            vec![fmt_ms(ms)],
            "P{p}"
        );
    }
    clean!("overview");
    // One app version: page views from the per-version rule, sessions of that version.
    open(
        &page,
        &format!("{base}/console/?service={SERVICE}&version=1.4.2&range=1h"),
    )
    .await;
    let reply = server
        .graphql(
            "query ($d: Duration!) { r: execExpression(expression: \"sum(meter_wechat_mp_rum_instance_page_views)\", entity: {serviceName: \"shop-miniprogram\", serviceInstanceName: \"1.4.2\", normal: true}, duration: $d) { error results { values { value } } } }",
            json!({"d": window}),
        )
        .await;
    let version_views: f64 = reply["data"]["r"]["results"][0]["values"][0]["value"]
        .as_str()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{reply}"));
    assert_eq!(version_views, page_views, "every fixture view is of 1.4.2");
    assert_eq!(
        texts(&page, &card("pageViews")).await,
        vec![en_us(version_views)]
    );
    assert_eq!(
        texts(&page, &card("sessions")).await,
        vec![en_us(session_total as f64)]
    );
    clean!("overview-version");
    // Every service's overview draws without an error, SDK-only and RUM-only ones too.
    let services = server
        .graphql(
            "query { w: listServices(layer: \"WECHAT_MINI_PROGRAM\") { name } a: listServices(layer: \"ALIPAY_MINI_PROGRAM\") { name } }",
            json!({}),
        )
        .await;
    let names: Vec<String> = ["w", "a"]
        .iter()
        .flat_map(|k| services["data"][k].as_array().cloned().unwrap_or_default())
        .map(|s| s["name"].as_str().unwrap().to_owned())
        .collect();
    assert!(names.len() >= 3, "{services}");
    for name in &names {
        open(&page, &format!("{base}/console/?service={name}&range=1h")).await;
        assert_eq!(texts(&page, ".error").await, Vec::<String>::new(), "{name}");
        assert_eq!(texts(&page, ".cards .card").await.len(), 7, "{name}");
        let found = problems.take();
        assert!(found.is_empty(), "{name}: {found:#?}");
        if name.contains("alipay") {
            shot(&page, "overview-alipay").await;
        }
    }

    // Sessions: the rows are querySessions' page, in its order.
    open(
        &page,
        &format!("{base}/console/sessions?service={SERVICE}&range=1h"),
    )
    .await;
    let ids: Vec<String> = listed
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        attrs(&page, "table.sessions tbody tr", "data-session").await,
        ids
    );
    assert_eq!(
        attrs(&page, ".summary", "data-total").await,
        vec![session_total.to_string()]
    );
    let error_counts: Vec<String> = listed.iter().map(|s| s["errorCount"].to_string()).collect();
    assert_eq!(
        attrs(&page, "table.sessions tbody tr", "data-errors").await,
        error_counts
    );
    clean!("sessions");

    // list → session (click) → trace (click).
    let row = format!(
        "tr[data-session=\"{}\"] a.session-link",
        traced_session["id"].as_str().unwrap()
    );
    let at = click(&page, &row).await;
    assert!(at.contains("/console/sessions/"), "{at}");
    let views: Vec<String> = attrs(&page, ".view-block", "data-events").await;
    assert_eq!(
        views.len() as i64,
        traced_session["viewCount"].as_i64().unwrap()
    );
    clean!("session");
    shot(&page, "session-top").await;
    let link = format!("a.trace-link[data-trace=\"{trace_id}\"]");
    let at = click(&page, &link).await;
    assert!(at.contains(&format!("/console/traces/{trace_id}")), "{at}");
    let rows = attrs(&page, "table.spans tbody tr", "data-service").await;
    assert_eq!(rows.len(), trace_spans.len());
    assert_eq!(
        rows.first().map(String::as_str),
        Some(SERVICE),
        "the mini program is the root"
    );
    assert!(rows.iter().any(|s| s == BACKEND));
    assert_eq!(
        attrs(&page, ".rum-request a.session-link", "href")
            .await
            .len(),
        1,
        "the request's session is linked"
    );
    clean!("trace");
    // The lookup box in the header leads to the same page.
    open(
        &page,
        &format!("{base}/console/traces?id={}", trace_id.to_uppercase()),
    )
    .await;
    let at: String = eval(&page, "location.pathname").await;
    assert_eq!(at, format!("/console/traces/{trace_id}"));
    problems.take();

    // Issues: list in queryIssues' order, then an issue's occurrences.
    let issues = server
        .graphql(
            "query ($c: IssueCondition!) { r: queryIssues(condition: $c) { total issues { id count versions sessionCount } } }",
            json!({"c": {"serviceName": SERVICE, "duration": window, "paging": {"pageNum": 1, "pageSize": 20}}}),
        )
        .await;
    let issue_list = issues["data"]["r"]["issues"].as_array().cloned().unwrap();
    open(
        &page,
        &format!("{base}/console/issues?service={SERVICE}&range=1h"),
    )
    .await;
    let issue_ids: Vec<String> = issue_list
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        attrs(&page, "table.issues tbody tr", "data-issue").await,
        issue_ids
    );
    let counts: Vec<String> = issue_list
        .iter()
        .map(|i| i["count"].to_string().trim_matches('"').to_owned())
        .collect();
    assert_eq!(
        attrs(&page, "table.issues tbody tr", "data-count").await,
        counts
    );
    // RUM errors' issues know their app version and their sessions.
    for i in &issue_list {
        assert_eq!(i["versions"], json!(["1.4.2"]), "{i}");
        assert!(i["sessionCount"].as_i64().unwrap() >= 1, "{i}");
    }
    assert_eq!(
        texts(&page, "table.issues tbody tr td:nth-child(8)").await,
        vec!["1.4.2"; issue_list.len()]
    );
    clean!("issues");
    let first = &issue_ids[0];
    click(&page, &format!("tr[data-issue=\"{first}\"] a.issue-link")).await;
    let detail = server
        .graphql(
            "query ($id: String!) { i: getIssue(id: $id) { count events(paging: {pageNum: 1, pageSize: 20}) { time sessionId } } }",
            json!({"id": first}),
        )
        .await;
    let kept = detail["data"]["i"]["events"].as_array().unwrap().len();
    assert_eq!(texts(&page, "table.occurrences tbody tr").await.len(), kept);
    let trend_total: Vec<String> = attrs(&page, "[data-trend-total]", "data-trend-total").await;
    assert_eq!(
        trend_total,
        vec![detail["data"]["i"]["count"]
            .to_string()
            .trim_matches('"')
            .to_owned()]
    );
    clean!("issue");
    // Resolving by clicking (the server allows it here): the page shows the new status, and
    // so does GraphQL.
    let at: String = eval(&page, "location.href").await;
    click(&page, ".status-controls button").await;
    let status = server
        .graphql(
            "query ($id: String!) { i: getIssue(id: $id) { status } }",
            json!({"id": first}),
        )
        .await;
    assert_eq!(status["data"]["i"]["status"], "RESOLVED", "{status}");
    assert_eq!(texts(&page, ".facts .badge").await, vec!["resolved"]);
    assert_eq!(eval::<String>(&page, "location.href").await, at);
    problems.take();
    // An occurrence leads to its session.
    let occurrence_session = detail["data"]["i"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .find_map(|e| e["sessionId"].as_str().map(str::to_owned))
        .expect("a RUM issue's occurrences name their sessions");
    let at = click(&page, "table.occurrences a.session-link").await;
    assert!(
        at.contains(&format!("/console/sessions/{occurrence_session}")),
        "{at}"
    );
    problems.take();

    // Empty states and visible GraphQL errors.
    open(
        &page,
        &format!("{base}/console/sessions?service=no-such-app"),
    )
    .await;
    assert_eq!(texts(&page, ".empty").await.len(), 1);
    clean!("sessions-empty");
    open(&page, &format!("{base}/console/issues?status=NOT_A_STATUS")).await;
    let shown = texts(&page, ".error").await;
    assert!(
        shown.iter().any(|t| t.starts_with("GraphQL error:")),
        "{shown:?}"
    );
    problems.take();
    open(&page, &format!("{base}/console/sessions/no-such-session")).await;
    assert_eq!(texts(&page, "h1").await, vec!["Session not found"]);
    clean!("session-missing");

    // The 500-event timeline: drawn whole; how long it took.
    let mut timings = Vec::new();
    for _ in 0..5 {
        open(&page, &format!("{base}/console/sessions/s-500")).await;
        let t: Value = eval(&page, "window.__skylarkTimings").await;
        assert_eq!(t["events"], 500, "{t}");
        timings.push(t);
    }
    assert_eq!(
        attrs(&page, ".view-block", "data-events").await,
        vec!["49"; 10]
    );
    clean!("session-500");

    // Phone-sized and dark.
    page.execute(
        SetDeviceMetricsOverrideParams::builder()
            .width(390)
            .height(844)
            .device_scale_factor(1.0)
            .mobile(true)
            .build()
            .unwrap(),
    )
    .await
    .unwrap();
    open(
        &page,
        &format!("{base}/console/?service={SERVICE}&range=1h"),
    )
    .await;
    let overflow: bool = eval(
        &page,
        "document.documentElement.scrollWidth > window.innerWidth + 1",
    )
    .await;
    assert!(!overflow, "the overview scrolls sideways on a phone");
    clean!("overview-phone");
    page.emulate_media_features(vec![
        chromiumoxide::cdp::browser_protocol::emulation::MediaFeature {
            name: "prefers-color-scheme".into(),
            value: "dark".into(),
        },
    ])
    .await
    .unwrap();
    open(
        &page,
        &format!(
            "{base}/console/sessions/{}",
            traced_session["id"].as_str().unwrap()
        ),
    )
    .await;
    clean!("session-phone-dark");

    eprintln!("console page weights (uncompressed bytes: document + assets + GraphQL answers):");
    for (name, bytes, requests) in &weights {
        eprintln!("  {name:<20} {bytes:>8} B in {requests} requests");
    }
    let mut total: Vec<f64> = timings
        .iter()
        .map(|t| t["sinceNavigationMs"].as_f64().unwrap())
        .collect();
    total.sort_by(f64::total_cmp);
    let render: Vec<f64> = timings
        .iter()
        .map(|t| t["renderMs"].as_f64().unwrap())
        .collect();
    let fetch: Vec<f64> = timings
        .iter()
        .map(|t| t["fetchMs"].as_f64().unwrap())
        .collect();
    eprintln!(
        "500-event session timeline: navigation start → drawn {total:.1?} ms (median {:.1}); GraphQL {fetch:.1?} ms; drawing {render:.1?} ms",
        total[total.len() / 2]
    );
    eprintln!("screenshots in {}", shots_dir().display());
    browser.close().await.ok();
    browser.wait().await.ok();
    driver.abort();
}
