//! Several Skylark nodes over one PostgreSQL database: the SDK fixtures split between two nodes
//! answer every swctl/GraphQL query exactly as one sled node fed all of them; and a node
//! `kill -9`ed under load and restarted loses and doubles nothing it acknowledged.
//!
//! Skips with a message when PostgreSQL (127.0.0.1:5432) or `../shared` is absent; CI sets
//! `SKYLARK_REQUIRE_POSTGRES=1`, which turns the first skip into a failure.
mod common;
#[path = "support/node.rs"]
mod node;

use common::*;
use serde_json::{json, Value};
use skylark_storage_postgres::TestDatabase;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const WECHAT: &str = "mini-program-sim-wechat";
const ALIPAY: &str = "mini-program-sim-alipay";
const INSTANCE: &str = "sim-instance-1";

const LOGS: &str = "query ($c: LogQueryCondition!) { r: queryLogs(condition: $c) { errorReason logs { serviceName serviceId serviceInstanceName serviceInstanceId endpointName endpointId traceId timestamp contentType content tags { key value } } } }";
const TRACES: &str = "query ($c: TraceQueryCondition) { r: queryBasicTraces(condition: $c) { traces { segmentId endpointNames duration start isError traceIds } } }";
const SPANS: &str = "query ($t: ID!) { r: queryTrace(traceId: $t) { spans { traceId segmentId spanId parentSpanId refs { traceId parentSegmentId parentSpanId type } serviceCode serviceInstanceName startTime endTime endpointName type peer component isError layer tags { key value } logs { time data { key value } } } } }";
const EXEC: &str = "query ($e: String!, $entity: Entity!, $d: Duration!) { r: execExpression(expression: $e, entity: $entity, duration: $d) { type error results { metric { labels { key value } } values { id value } } } }";

fn pg_env(db: &TestDatabase, node_id: &str) -> Vec<(String, String)> {
    vec![
        ("SW_STORAGE".into(), "postgresql".into()),
        ("SW_JDBC_URL".into(), db.jdbc_url()),
        ("SW_DATA_SOURCE_USER".into(), db.user().into()),
        ("SW_DATA_SOURCE_MAXIMUM_POOL_SIZE".into(), "4".into()),
        ("SW_NODE_ID".into(), node_id.into()),
    ]
}

fn as_refs(env: &[(String, String)]) -> Vec<(&str, &str)> {
    env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

/// One request of the fixtures, ready to post.
struct Body {
    path: &'static str,
    content_type: String,
    body: Vec<u8>,
}

fn bodies(dir: &std::path::Path) -> Vec<Body> {
    let latest = now_nanos() - 60_000_000_000;
    let latest_ms = (latest / 1_000_000) as i64;
    let mut out = Vec::new();
    for f in fixtures(dir, "/v1/metrics") {
        out.push(Body {
            path: "/v1/metrics",
            content_type: f.content_type.clone(),
            body: retime_metrics(&f, latest),
        });
    }
    for f in fixtures(dir, "/v1/logs") {
        out.push(Body {
            path: "/v1/logs",
            content_type: f.content_type.clone(),
            body: retime_logs(&f, latest),
        });
    }
    for f in fixtures(dir, "/v3/segments") {
        out.push(Body {
            path: "/v3/segments",
            content_type: "application/json".into(),
            body: retime_segments(&f.body, latest_ms).to_string().into_bytes(),
        });
    }
    out
}

fn entity(service: &str, instance: Option<&str>) -> Value {
    json!({"scope": if instance.is_some() { "ServiceInstance" } else { "Service" },
           "serviceName": service, "normal": true, "serviceInstanceName": instance.unwrap_or(""),
           "endpointName": "", "destServiceName": "", "destNormal": false,
           "destServiceInstanceName": "", "destEndpointName": ""})
}

/// The query windows, fixed once for a whole comparison: computed per server, a minute
/// boundary between two servers' queries shifted one window against the other.
struct Windows {
    minutes: Value,
    hours: Value,
    traces: Value,
}

impl Windows {
    fn now() -> Self {
        let end = chrono::Local::now() + chrono::Duration::hours(1);
        let start = end - chrono::Duration::hours(3);
        Windows {
            minutes: swctl_duration(),
            hours: json!({"start": start.format("%Y-%m-%d %H").to_string(),
                          "end": end.format("%Y-%m-%d %H").to_string(), "step": "HOUR"}),
            traces: window(30, "SECOND"),
        }
    }
}

/// Every answer compared across nodes, labelled; lists whose order storage does not define
/// (equal timestamps) are sorted.
async fn answers(
    server: &Server,
    reference: &std::path::Path,
    windows: &Windows,
) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for layer in ["WECHAT_MINI_PROGRAM", "ALIPAY_MINI_PROGRAM"] {
        let reply = server
            .graphql(
                &swctl_document(reference, "ListService.graphql"),
                json!({"layer": layer}),
            )
            .await;
        out.push((format!("services {layer}"), reply));
    }
    let (minutes, hours) = (&windows.minutes, &windows.hours);
    for (platform, service) in [("wechat", WECHAT), ("alipay", ALIPAY)] {
        for metric in [
            "app_launch_duration",
            "first_render_duration",
            "route_duration",
            "request_cpm",
            "request_count",
            "request_success_count",
            "request_duration_percentile",
            "error_count",
        ] {
            let e = format!("meter_{platform}_mp_{metric}");
            for (step, d) in [("minute", minutes), ("hour", hours)] {
                let reply = server
                    .graphql(
                        EXEC,
                        json!({"e": e, "entity": entity(service, None), "d": d}),
                    )
                    .await;
                out.push((format!("{e} {step}"), reply));
            }
        }
        for metric in ["app_launch_duration", "request_cpm"] {
            let e = format!("meter_{platform}_mp_instance_{metric}");
            let reply = server
                .graphql(
                    EXEC,
                    json!({"e": e, "entity": entity(service, Some(INSTANCE)), "d": minutes}),
                )
                .await;
            out.push((e, reply));
        }
        let id = format!("{}.1", b64(service));
        let mut logs = server
            .graphql(
                LOGS,
                json!({"c": {"serviceId": id, "queryDuration": minutes,
                             "paging": {"pageNum": 1, "pageSize": 1000}}}),
            )
            .await;
        if let Some(list) = logs["data"]["r"]["logs"].as_array_mut() {
            list.sort_by_key(|l| l.to_string());
        }
        out.push((format!("logs {service}"), logs));
        let mut traces = server
            .graphql(
                TRACES,
                json!({"c": {"serviceId": id, "queryDuration": windows.traces,
                             "traceState": "ALL", "queryOrder": "BY_START_TIME",
                             "paging": {"pageNum": 1, "pageSize": 500}}}),
            )
            .await;
        let list = traces["data"]["r"]["traces"].as_array_mut();
        let mut trace_ids = Vec::new();
        if let Some(list) = list {
            list.sort_by_key(|t| t.to_string());
            for t in list.iter() {
                for id in t["traceIds"].as_array().cloned().unwrap_or_default() {
                    trace_ids.push(id.as_str().unwrap_or_default().to_string());
                }
            }
        }
        out.push((format!("traces {service}"), traces));
        trace_ids.sort();
        trace_ids.dedup();
        for t in trace_ids {
            let spans = server.graphql(SPANS, json!({"t": t})).await;
            out.push((format!("trace {t}"), spans));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_nodes_on_one_database_answer_like_one_sled_node() {
    let (Some(dir), Some(reference)) = (fixtures_dir(), reference_dir()) else {
        return;
    };
    let Some(db) = TestDatabase::create() else {
        return;
    };
    let all = bodies(&dir);
    let sled = Server::start().await;
    let a = Server::start_with(&as_refs(&pg_env(&db, "node-a"))).await;
    let b = Server::start_with(&as_refs(&pg_env(&db, "node-b"))).await;
    for (i, body) in all.iter().enumerate() {
        let (status, text) = sled
            .post(body.path, &body.content_type, body.body.clone())
            .await;
        assert_eq!(status, 200, "sled {}: {text}", body.path);
        let node = if i % 2 == 0 { &a } else { &b };
        let (status, text) = node
            .post(body.path, &body.content_type, body.body.clone())
            .await;
        assert_eq!(status, 200, "{}: {text}\n{}", body.path, node.log());
    }
    // Each node persists its metric rows every 500 ms; wait for both to have flushed.
    tokio::time::sleep(Duration::from_millis(2_000)).await;
    let windows = Windows::now();
    let expected = answers(&sled, &reference, &windows).await;
    assert!(expected.len() > 40, "{} answers", expected.len());
    let mut compared = 0;
    for (name, server) in [("node a", &a), ("node b", &b)] {
        let got = answers(server, &reference, &windows).await;
        assert_eq!(
            got.len(),
            expected.len(),
            "{name}: answers differ in number"
        );
        for ((label, want), (_, have)) in expected.iter().zip(&got) {
            assert!(
                want.get("errors").is_none() && want["data"].is_object(),
                "{label}: {want}"
            );
            assert_eq!(have, want, "{name}, {label}");
            compared += 1;
        }
    }
    // Something real was compared: data, not empty lists.
    let non_empty = expected
        .iter()
        .filter(|(_, v)| {
            let text = v.to_string();
            text.contains("\"value\":\"") || text.contains("\"content\"") || text.contains("spanId")
        })
        .count();
    assert!(non_empty > 20, "only {non_empty} answers hold data");
    println!("{compared} answers equal on both PostgreSQL nodes and sled ({non_empty} with data)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_killed_under_load_loses_and_doubles_nothing_acknowledged() {
    let Some(db) = TestDatabase::create() else {
        return;
    };
    let dir_a = tempfile::tempdir().unwrap();
    let dir_b = tempfile::tempdir().unwrap();
    let mut env_a = pg_env(&db, "node-a");
    let mut env_b = pg_env(&db, "node-b");
    for env in [&mut env_a, &mut env_b] {
        env.push((
            "SW_CORE_MAX_LABEL_VALUES_PER_METRIC".into(),
            "100000000".into(),
        ));
    }
    let a = Arc::new(node::Node::new(dir_a.path(), &as_refs(&env_a)));
    let b = Arc::new(node::Node::new(dir_b.path(), &as_refs(&env_b)));
    a.start().await;
    b.start().await;
    let next = Arc::new(AtomicU64::new(1));
    let acknowledged = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    for i in 0..6 {
        let target = if i % 2 == 0 { a.clone() } else { b.clone() };
        let (next, acknowledged, stop) = (next.clone(), acknowledged.clone(), stop.clone());
        clients.push(tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                let id = next.fetch_add(1, Ordering::SeqCst);
                match target.post_log(id).await {
                    Ok(status) if (200..300).contains(&status) => {
                        acknowledged.lock().unwrap().push(id)
                    }
                    _ => tokio::time::sleep(Duration::from_millis(20)).await,
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    // No chance to persist: whatever a acknowledged is only in its write-ahead log.
    a.kill9();
    tokio::time::sleep(Duration::from_millis(500)).await;
    a.start().await;
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    stop.store(true, Ordering::SeqCst);
    for c in clients {
        c.await.unwrap();
    }
    // Both nodes persist within their period; then either answers for all.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(
        acknowledged.len() > 50,
        "only {} acknowledged",
        acknowledged.len()
    );
    for reader in [&a, &b] {
        let stored = reader.stored_logs().await;
        let counted = reader.error_counts().await;
        let mut wrong = Vec::new();
        for id in &acknowledged {
            let logs = stored.get(&node::content(*id)).copied().unwrap_or(0);
            let count = counted
                .get(&node::exception_type(*id))
                .copied()
                .unwrap_or(0);
            if logs != 1 || count != 1 {
                wrong.push((*id, logs, count));
            }
        }
        assert!(
            wrong.is_empty(),
            "{} of {} acknowledged requests not found exactly once (id, logs, count): {:?}\n{}",
            wrong.len(),
            acknowledged.len(),
            &wrong[..wrong.len().min(20)],
            a.log()
        );
        let twice: Vec<_> = stored.iter().filter(|(_, n)| **n > 1).collect();
        assert!(twice.is_empty(), "stored twice: {twice:?}");
    }
    println!(
        "{} acknowledged requests over two nodes, one killed: each stored and counted once",
        acknowledged.len()
    );
}
