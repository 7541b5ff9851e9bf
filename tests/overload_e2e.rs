//! Overload against the real binary with a low in-flight limit: the server answers 503 with
//! `Retry-After` instead of queueing, its memory stays bounded, and every acknowledged request
//! is queryable afterwards. The load is a bounded loop that stops by itself.
mod common;

use common::*;
use serde_json::json;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The in-flight limit the server runs with.
const INFLIGHT_LIMIT: &str = "2";
/// How long capacity is measured with one sequential client.
const MEASURE_FOR: Duration = Duration::from_secs(2);
/// How long the overload lasts.
const OVERLOAD_FOR: Duration = Duration::from_secs(22);
/// Concurrent clients during the overload, each sending as fast as it is answered.
const CLIENTS: usize = 48;
/// The server's resident memory must stay under this during the overload (debug build; an idle
/// server takes about 60 MiB, most of it sled's page cache and the rules).
const RSS_BOUND_KIB: u64 = 160 * 1024;
/// Acknowledged traces checked per GraphQL request.
const CHECK_BATCH: usize = 100;

fn segment_body(trace_id: &str, now_ms: i64) -> Vec<u8> {
    let segment = json!([{
        "traceId": trace_id,
        "traceSegmentId": format!("{trace_id}.seg"),
        "service": "overload-svc",
        "serviceInstance": "overload-instance",
        "spans": [{
            "operationName": "pages/index/index",
            "startTime": now_ms - 20,
            "endTime": now_ms,
            "spanId": 0,
            "parentSpanId": -1,
            "spanLayer": "Http",
            "spanType": "Exit",
            "isError": false,
            "componentId": 10002,
            "peer": "api.example.com",
            "tags": [{"key": "http.method", "value": "GET"}]
        }]
    }]);
    serde_json::to_vec(&segment).unwrap()
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[derive(Default)]
struct Tally {
    sent: AtomicU64,
    busy: AtomicU64,
    busy_without_retry_after: AtomicU64,
    other_status: AtomicU64,
    transport_errors: AtomicU64,
    acknowledged: Mutex<Vec<String>>,
}

async fn send(client: &reqwest::Client, url: &str, trace_id: &str, tally: &Tally) {
    tally.sent.fetch_add(1, Ordering::Relaxed);
    let response = client
        .post(url)
        .header("Content-Type", "application/json")
        .body(segment_body(trace_id, now_ms()))
        .send()
        .await;
    match response {
        Ok(r) if r.status() == 200 => tally
            .acknowledged
            .lock()
            .unwrap()
            .push(trace_id.to_string()),
        Ok(r) if r.status() == 503 => {
            tally.busy.fetch_add(1, Ordering::Relaxed);
            if r.headers().get("retry-after").is_none_or(|v| v != "1") {
                tally
                    .busy_without_retry_after
                    .fetch_add(1, Ordering::Relaxed);
            }
        }
        Ok(_) => {
            tally.other_status.fetch_add(1, Ordering::Relaxed);
        }
        // Not acknowledged either; such a request is simply not checked afterwards.
        Err(_) => {
            tally.transport_errors.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Asks for every trace of `ids` in one GraphQL document; returns those without their span.
async fn missing_traces(server: &Server, ids: &[String]) -> Vec<String> {
    let fields: Vec<String> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| format!("t{i}: queryTrace(traceId: \"{id}\") {{ spans {{ traceId }} }}"))
        .collect();
    let reply = server
        .graphql(&format!("query {{ {} }}", fields.join(" ")), json!({}))
        .await;
    ids.iter()
        .enumerate()
        .filter(|(i, id)| {
            let spans = &reply["data"][format!("t{i}")]["spans"];
            !spans
                .as_array()
                .is_some_and(|a| a.iter().any(|s| s["traceId"] == id.as_str()))
        })
        .map(|(_, id)| id.clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn overload_is_refused_with_503_memory_stays_bounded_and_acknowledged_data_is_kept() {
    let server = Server::start_with(&[("SW_CORE_MAX_INFLIGHT_REQUESTS", INFLIGHT_LIMIT)]).await;
    let url = format!("{}/v3/segments", server.base());
    let client = reqwest::Client::new();
    let tally = Arc::new(Tally::default());

    // Capacity: one client, one request at a time.
    let started = Instant::now();
    let mut n = 0u64;
    while started.elapsed() < MEASURE_FOR {
        send(&client, &url, &format!("cap-{n}"), &tally).await;
        n += 1;
    }
    let capacity = tally.acknowledged.lock().unwrap().len() as f64 / MEASURE_FOR.as_secs_f64();
    assert!(
        capacity > 0.0,
        "nothing acknowledged; log:\n{}",
        server.log()
    );
    let rss_idle = rss_kib(server.pid()).unwrap_or(0);
    let sent_before = tally.sent.load(Ordering::Relaxed);
    let acknowledged_before = tally.acknowledged.lock().unwrap().len();

    // Overload: many clients, each sending as fast as it is answered, until the deadline.
    let deadline = Instant::now() + OVERLOAD_FOR;
    let done = Arc::new(AtomicBool::new(false));
    let pid = server.pid();
    let sampler = {
        let done = done.clone();
        tokio::spawn(async move {
            let mut peak = 0;
            while !done.load(Ordering::Relaxed) {
                peak = peak.max(rss_kib(pid).unwrap_or(0));
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            peak
        })
    };
    let mut clients = Vec::new();
    for c in 0..CLIENTS {
        let (client, url, tally) = (client.clone(), url.clone(), tally.clone());
        clients.push(tokio::spawn(async move {
            let mut n = 0u64;
            while Instant::now() < deadline {
                send(&client, &url, &format!("ovl-{c}-{n}"), &tally).await;
                n += 1;
            }
        }));
    }
    for c in clients {
        c.await.unwrap();
    }
    done.store(true, Ordering::Relaxed);
    let peak_rss = sampler.await.unwrap();

    let sent = tally.sent.load(Ordering::Relaxed) - sent_before;
    let busy = tally.busy.load(Ordering::Relaxed);
    let acknowledged = tally.acknowledged.lock().unwrap().clone();
    let offered = sent as f64 / OVERLOAD_FOR.as_secs_f64();
    eprintln!(
        "overload figures: capacity {capacity:.0} req/s (sequential); overload {sent} requests in \
         {}s ({offered:.0} req/s, {:.1}x capacity) from {CLIENTS} clients: {} acknowledged \
         ({} with the capacity run), {busy} answered 503, {} other statuses, {} transport errors; \
         RSS idle {} KiB, peak {} KiB (bound {} KiB)",
        OVERLOAD_FOR.as_secs(),
        offered / capacity,
        acknowledged.len() - acknowledged_before,
        acknowledged.len(),
        tally.other_status.load(Ordering::Relaxed),
        tally.transport_errors.load(Ordering::Relaxed),
        rss_idle,
        peak_rss,
        RSS_BOUND_KIB,
    );
    assert!(busy > 0, "the server never answered 503 under overload");
    assert_eq!(
        tally.busy_without_retry_after.load(Ordering::Relaxed),
        0,
        "every 503 carries Retry-After: 1"
    );
    assert_eq!(tally.other_status.load(Ordering::Relaxed), 0);
    assert!(peak_rss > 0, "VmRSS was readable");
    assert!(
        peak_rss < RSS_BOUND_KIB,
        "peak RSS {peak_rss} KiB over the bound {RSS_BOUND_KIB} KiB"
    );

    // Everything acknowledged is queryable once the load is over.
    let mut missing = Vec::new();
    for ids in acknowledged.chunks(CHECK_BATCH) {
        missing.extend(missing_traces(&server, ids).await);
    }
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged traces are missing, e.g. {:?}",
        missing.len(),
        acknowledged.len(),
        &missing[..missing.len().min(5)]
    );

    // The self-metrics saw the same refusals.
    let metrics = server.self_metrics().await;
    let line = format!(
        "skylark_receiver_requests_total{{protocol=\"http\",signal=\"segments\",status=\"unavailable\"}} {busy}\n"
    );
    assert!(metrics.contains(&line), "{line} not in\n{metrics}");
    assert!(metrics.contains("skylark_receiver_inflight_requests_limit 2\n"));
}
