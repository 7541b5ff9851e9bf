//! RUM sessions end to end: the captured Flashcat SDK requests replayed into a real server, then
//! `querySessions` (counts computed here from the fixture files), `querySessionTimeline` and the
//! `hasError` filter; and a 500-event session's timeline answered promptly.
mod common;

use common::*;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

async fn post(server: &Server, target: &str, headers: &[(String, String)], body: String) {
    let mut request = reqwest::Client::new()
        .post(format!("{}{}", server.base(), target))
        .body(body);
    for (k, v) in headers {
        request = request.header(k.as_str(), v.as_str());
    }
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    assert_eq!(
        status,
        202,
        "{target}: {}",
        response.text().await.unwrap_or_default()
    );
}

fn minutes_duration(start_ms: i64, end_ms: i64) -> Value {
    let f = |ms: i64| {
        chrono::DateTime::from_timestamp_millis(ms)
            .unwrap()
            .with_timezone(&chrono::Local)
            .format("%Y-%m-%d %H%M")
            .to_string()
    };
    json!({"start": f(start_ms), "end": f(end_ms), "step": "MINUTE"})
}

const SESSION_FIELDS: &str = "id serviceName version versions userId anonymousId device os network start end durationMs viewCount actionCount resourceCount errorCount crashCount hasFailedRequest sampled pages";

async fn sessions(server: &Server, condition: Value) -> (i64, Vec<Value>) {
    let query = format!(
        "query ($condition: SessionCondition!) {{ result: querySessions(condition: $condition) {{ total sessions {{ {SESSION_FIELDS} }} }} }}"
    );
    let reply = server
        .graphql(&query, json!({"condition": condition}))
        .await;
    assert!(reply.get("errors").is_none(), "{reply}");
    let result = &reply["data"]["result"];
    (
        result["total"].as_i64().unwrap(),
        result["sessions"].as_array().cloned().unwrap_or_default(),
    )
}

async fn timeline(server: &Server, id: &str) -> Value {
    let query = format!(
        "query ($id: ID!) {{ result: querySessionTimeline(sessionId: $id) {{ truncated session {{ {SESSION_FIELDS} }} views {{ id name url start durationMs loadingType events {{ type time durationMs name status method url message traceId spanId }} }} }} }}"
    );
    let reply = server.graphql(&query, json!({"id": id})).await;
    assert!(reply.get("errors").is_none(), "{reply}");
    reply["data"]["result"].clone()
}

/// What the fixture files say of one session.
#[derive(Default, Debug)]
struct Expected {
    views: BTreeSet<String>,
    /// type → distinct event ids (lines without an id are each their own event).
    events: BTreeMap<String, BTreeSet<String>>,
    user: String,
    /// Every network description its events give (effective type, interfaces, status).
    networks: BTreeSet<String>,
    first_ms: i64,
    view_starts: BTreeMap<String, i64>,
}

#[tokio::test]
async fn fixture_sessions_are_listed_with_their_counts_and_timelines() {
    let Some(dir) = rum_dir() else {
        return;
    };
    let all = recorded(&dir);
    let lines: Vec<Value> = all
        .iter()
        .flat_map(|r| r.body.split('\n'))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let first = lines
        .iter()
        .map(|e| e["date"].as_i64().unwrap())
        .min()
        .unwrap();
    let now = chrono::Utc::now().timestamp_millis();
    let delta = now - 600_000 - first;

    let mut expected: BTreeMap<String, Expected> = BTreeMap::new();
    for (n, e) in lines.iter().enumerate() {
        let session = e["session"]["id"].as_str().unwrap().to_owned();
        let kind = e["type"].as_str().unwrap().to_owned();
        let date = e["date"].as_i64().unwrap() + delta;
        let x = expected.entry(session).or_insert_with(|| Expected {
            first_ms: i64::MAX,
            ..Expected::default()
        });
        x.first_ms = x.first_ms.min(date);
        if let Some(user) = e["usr"]["id"].as_str() {
            x.user = user.to_owned();
        }
        let c = &e["connectivity"];
        let interfaces = c["interfaces"].as_array().map(|l| {
            l.iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(",")
        });
        let network = c["effective_type"]
            .as_str()
            .map(str::to_owned)
            .or(interfaces.filter(|i| !i.is_empty()))
            .or_else(|| c["status"].as_str().map(str::to_owned));
        x.networks.extend(network);
        let view = e["view"]["id"].as_str().unwrap().to_owned();
        if kind == "view" {
            x.views.insert(view.clone());
            x.view_starts.insert(view, date);
        } else {
            let id = e[kind.as_str()]["id"]
                .as_str()
                .map_or_else(|| format!("line-{n}"), str::to_owned);
            x.events.entry(kind).or_default().insert(id);
        }
    }
    assert!(expected.len() >= 2, "the fixtures hold several sessions");

    let server = Server::start().await;
    for Recorded {
        target,
        headers,
        body,
        ..
    } in &all
    {
        let body = shift_numbers(body, "\"date\":", delta);
        let target = shift_numbers(
            &shift_numbers(target, "batch_time%3D", delta),
            "batch_time=",
            delta,
        );
        post(&server, &target, headers, body).await;
    }
    // Replaying every request again (a client retrying) counts nothing twice.
    for Recorded {
        target,
        headers,
        body,
        ..
    } in &all
    {
        let body = shift_numbers(body, "\"date\":", delta);
        let target = shift_numbers(
            &shift_numbers(target, "batch_time%3D", delta),
            "batch_time=",
            delta,
        )
        .replace("dd-request-id", "dd-request-id-again");
        post(&server, &target, headers, body).await;
    }

    let window = minutes_duration(now - 3_600_000, now + 60_000);
    let condition = |extra: Value| {
        let mut c = json!({"serviceName": "shop-miniprogram", "duration": window, "paging": {"pageNum": 1, "pageSize": 50}});
        for (k, v) in extra.as_object().unwrap() {
            c[k] = v.clone();
        }
        c
    };
    let (total, listed) = sessions(&server, condition(json!({}))).await;
    assert_eq!(total as usize, expected.len());
    let starts: Vec<i64> = listed
        .iter()
        .map(|s| s["start"].as_i64().unwrap())
        .collect();
    assert!(
        starts.windows(2).all(|w| w[0] >= w[1]),
        "newest first: {starts:?}"
    );
    let count = |x: &Expected, kind: &str| x.events.get(kind).map_or(0, BTreeSet::len) as i64;
    for s in &listed {
        let id = s["id"].as_str().unwrap();
        let x = &expected[id];
        assert_eq!(s["viewCount"], x.views.len() as i64, "{id}");
        assert_eq!(s["actionCount"], count(x, "action"), "{id}");
        assert_eq!(s["resourceCount"], count(x, "resource"), "{id}");
        assert_eq!(s["errorCount"], count(x, "error"), "{id}");
        assert_eq!(s["userId"], x.user.as_str(), "{id}");
        assert_eq!(s["start"], x.first_ms, "{id}");
        assert_eq!(s["serviceName"], "shop-miniprogram");
        assert_eq!(s["version"], "1.4.2");
        assert!(
            x.networks.contains(s["network"].as_str().unwrap()),
            "{id}: {} not in {:?}",
            s["network"],
            x.networks
        );
        let pages: Vec<&Value> = s["pages"].as_array().unwrap().iter().collect();
        assert_eq!(pages.len(), x.views.len(), "{id}");
    }

    // hasError finds exactly the sessions with error events, and its negation the others.
    let with_errors: BTreeSet<&str> = expected
        .iter()
        .filter(|(_, x)| count(x, "error") > 0)
        .map(|(id, _)| id.as_str())
        .collect();
    assert!(!with_errors.is_empty() && with_errors.len() < expected.len());
    let (_, found) = sessions(&server, condition(json!({"hasError": true}))).await;
    let found: BTreeSet<&str> = found.iter().map(|s| s["id"].as_str().unwrap()).collect();
    assert_eq!(found, with_errors);
    let (without, _) = sessions(&server, condition(json!({"hasError": false}))).await;
    assert_eq!(without as usize, expected.len() - with_errors.len());
    // Other filters and paging.
    let (_, page) = sessions(
        &server,
        condition(json!({"paging": {"pageNum": 2, "pageSize": 1}})),
    )
    .await;
    assert_eq!(page.len(), 1);
    assert_eq!(page[0]["id"], listed[1]["id"]);
    let some_user = &expected.values().next().unwrap().user;
    let (n, by_user) = sessions(&server, condition(json!({"userId": some_user}))).await;
    assert!(n >= 1 && by_user.iter().all(|s| &s["userId"] == some_user));
    let (n, _) = sessions(&server, condition(json!({"version": "9.9.9"}))).await;
    assert_eq!(n, 0);
    let longest = listed
        .iter()
        .map(|s| s["durationMs"].as_i64().unwrap())
        .max()
        .unwrap();
    let (n, _) = sessions(&server, condition(json!({"minDurationMs": longest}))).await;
    assert!(n >= 1);
    let (n, _) = sessions(&server, condition(json!({"minDurationMs": longest + 1}))).await;
    assert_eq!(n, 0);

    // Every session's timeline: its views in start order, each with its events in time order,
    // all its events there.
    for (id, x) in &expected {
        let t = timeline(&server, id).await;
        assert_eq!(t["session"]["id"], id.as_str());
        assert_eq!(t["truncated"], false);
        let views = t["views"].as_array().unwrap();
        let ids: Vec<&str> = views.iter().map(|v| v["id"].as_str().unwrap()).collect();
        let mut by_start: Vec<(&i64, &String)> =
            x.view_starts.iter().map(|(v, s)| (s, v)).collect();
        by_start.sort();
        let wanted: Vec<&str> = by_start.iter().map(|(_, v)| v.as_str()).collect();
        assert_eq!(ids, wanted, "{id}");
        let mut events_seen = 0i64;
        for v in views {
            let times: Vec<i64> = v["events"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["time"].as_i64().unwrap())
                .collect();
            assert!(times.windows(2).all(|w| w[0] <= w[1]), "{id}: {times:?}");
            events_seen += times.len() as i64;
        }
        let total: i64 = x.events.values().map(|s| s.len() as i64).sum();
        assert_eq!(events_seen, total, "{id}");
        // A resource keeps its method, URL and trace id.
        if let Some(r) = views
            .iter()
            .flat_map(|v| v["events"].as_array().unwrap())
            .find(|e| e["type"] == "resource" && e["traceId"].is_string())
        {
            assert_eq!(r["traceId"].as_str().unwrap().len(), 32);
            assert!(r["url"].as_str().unwrap().starts_with("http"), "{r}");
            assert!(r["method"].is_string(), "{r}");
        }
    }
    assert!(timeline(&server, "no-such-session").await.is_null());
}

#[tokio::test]
async fn a_session_of_500_events_has_its_timeline_answered_promptly() {
    let server = Server::start().await;
    let now = chrono::Utc::now().timestamp_millis() - 120_000;
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
                r#","type":"xhr","method":"GET","url":"https://api.example/x","status_code":200,"duration":1000000"#
            } else {
                r#","type":"tap""#
            };
            lines.push(format!(
                r#"{{"date":{date},"type":"{kind}","service":"perf-app","version":"1.0","session":{{"id":"s-500"}},"view":{{"id":"v-{v}","name":"pages/p{v}/index"}},"{kind}":{{"id":"{kind}-{v}-{i}"{extra}}}}}"#
            ));
        }
    }
    assert_eq!(lines.len(), 500);
    let text = vec![(
        "content-type".to_owned(),
        "text/plain;charset=UTF-8".to_owned(),
    )];
    for (n, chunk) in lines.chunks(100).enumerate() {
        post(
            &server,
            &format!("/api/v2/rum?ddsource=miniapp&ddtags=env%3Atest&dd-request-id=perf-{n}"),
            &text,
            chunk.join("\n"),
        )
        .await;
    }
    let started = Instant::now();
    let t = timeline(&server, "s-500").await;
    let elapsed = started.elapsed();
    eprintln!("querySessionTimeline of 500 events answered in {elapsed:?}");
    assert!(elapsed < Duration::from_secs(10), "{elapsed:?}");
    let views = t["views"].as_array().unwrap();
    assert_eq!(views.len(), 10);
    let events: usize = views
        .iter()
        .map(|v| v["events"].as_array().unwrap().len())
        .sum();
    assert_eq!(events, 490);
    assert_eq!(t["session"]["viewCount"], 10);
    assert_eq!(t["session"]["actionCount"], 250);
    assert_eq!(t["session"]["resourceCount"], 240);
    assert_eq!(views[3]["name"], "pages/p3/index");
}

/// Posts `batches` batches of 200 events (a view and resources per session, 10 sessions a batch,
/// or no session at all) and returns the events per second through the whole path.
async fn events_per_second(server: &Server, tag: &str, with_sessions: bool, batches: usize) -> f64 {
    let text = vec![(
        "content-type".to_owned(),
        "text/plain;charset=UTF-8".to_owned(),
    )];
    let now = chrono::Utc::now().timestamp_millis() - 60_000;
    let started = Instant::now();
    for b in 0..batches {
        let lines: Vec<String> = (0..200)
            .map(|i| {
                let session = if with_sessions {
                    format!(r#","session":{{"id":"{tag}-s-{b}-{}"}}"#, i % 10)
                } else {
                    String::new()
                };
                format!(
                    r#"{{"date":{},"type":"resource","service":"cost-app","version":"1.0"{session},"view":{{"id":"{tag}-v-{b}","name":"pages/a"}},"resource":{{"id":"{tag}-r-{b}-{i}","type":"xhr","method":"GET","url":"https://api.example/x","status_code":200,"duration":1000000}}}}"#,
                    now + i
                )
            })
            .collect();
        post(
            server,
            &format!("/api/v2/rum?ddsource=miniapp&ddtags=env%3Atest&dd-request-id={tag}-{b}"),
            &text,
            lines.join("\n"),
        )
        .await;
    }
    (batches * 200) as f64 / started.elapsed().as_secs_f64()
}

/// The write cost of the session index (`cargo test --release -p skylark-server --test
/// sessions_e2e -- --ignored --nocapture`); prints figures, asserts only that both paths work.
#[tokio::test]
#[ignore]
async fn session_index_write_cost() {
    let server = Server::start().await;
    // Warm up, then alternate so both see the same store size.
    events_per_second(&server, "warm", true, 5).await;
    let mut with = Vec::new();
    let mut without = Vec::new();
    for round in 0..3 {
        without.push(events_per_second(&server, &format!("n{round}"), false, 50).await);
        with.push(events_per_second(&server, &format!("y{round}"), true, 50).await);
    }
    eprintln!("events/s without sessions: {without:.0?}; with sessions: {with:.0?}");
    assert!(with.iter().chain(&without).all(|r| *r > 0.0));
}
