//! Overload against the real binary: ten times as many keep-alive clients as the in-flight
//! limit, each sending real segment reports as fast as it is answered, for 20 s. Every request
//! is answered (2xx, or 503 with `Retry-After`) on a connection the client can keep using, with
//! no broken pipe or reset; memory stays bounded; the server serves again within 5 s of the
//! load stopping; and every acknowledged segment is queryable afterwards.
mod common;

use common::*;
use serde_json::json;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The in-flight limit the server runs with (the shipped default).
const INFLIGHT_LIMIT: usize = 32;
/// Concurrent clients during the overload: ten times the limit.
const CLIENTS: usize = 10 * INFLIGHT_LIMIT;
/// How long the overload lasts.
const OVERLOAD_FOR: Duration = Duration::from_secs(20);
/// The server's resident memory must stay under this during the overload (debug build; an idle
/// server takes about 60 MiB, most of it sled's page cache and the rules).
const RSS_BOUND_KIB: u64 = 256 * 1024;
/// After the load stops, a request must be acknowledged within this.
const RECOVERY_WITHIN: Duration = Duration::from_secs(5);
/// Acknowledged traces checked per GraphQL request (3 fields each, under the complexity limit).
const CHECK_BATCH: usize = 500;
/// Spans per reported segment.
const SPANS: i64 = 8;
/// Bytes of request parameters recorded on each span, so that a request (about 40 KiB) takes
/// several reads to arrive, as the SDK's larger batches do: a body the server answers before
/// reading is then still on its way.
const PARAMS_BYTES: usize = 4096;

fn segment_body(trace_id: &str, now_ms: i64) -> Vec<u8> {
    let spans: Vec<_> = (0..SPANS)
        .map(|i| {
            json!({
                "operationName": format!("pages/index/index/request-{i}"),
                "startTime": now_ms - 20 - i,
                "endTime": now_ms - i,
                "spanId": i,
                "parentSpanId": i - 1,
                "spanLayer": "Http",
                "spanType": if i == 0 { "Entry" } else { "Exit" },
                "isError": false,
                "componentId": 10002,
                "peer": "api.example.com",
                "tags": [
                    {"key": "http.method", "value": "GET"},
                    {"key": "url", "value": format!("https://api.example.com/v1/items/{i}?page=1&size=20")},
                    {"key": "miniprogram.page.path", "value": "pages/index/index"},
                    {"key": "http.params", "value": "q".repeat(PARAMS_BYTES)}
                ]
            })
        })
        .collect();
    let segment = json!([{
        "traceId": trace_id,
        "traceSegmentId": format!("{trace_id}.seg"),
        "service": "overload-svc",
        "serviceInstance": "overload-instance",
        "spans": spans
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
    first_transport_error: Mutex<Option<String>>,
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
    // The answer's body is read too: a connection is only reusable once it is.
    let response = match response {
        Ok(r) => {
            let status = r.status().as_u16();
            let retry_after = r
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            r.bytes().await.map(|_| (status, retry_after))
        }
        Err(e) => Err(e),
    };
    match response {
        Ok((200, _)) => tally
            .acknowledged
            .lock()
            .unwrap()
            .push(trace_id.to_string()),
        Ok((503, retry_after)) => {
            tally.busy.fetch_add(1, Ordering::Relaxed);
            if retry_after.as_deref() != Some("1") {
                tally
                    .busy_without_retry_after
                    .fetch_add(1, Ordering::Relaxed);
            }
        }
        Ok(_) => {
            tally.other_status.fetch_add(1, Ordering::Relaxed);
        }
        Err(e) => {
            tally.transport_errors.fetch_add(1, Ordering::Relaxed);
            let mut first = tally.first_transport_error.lock().unwrap();
            if first.is_none() {
                *first = Some(format!("{e:?}"));
            }
        }
    }
}

/// Asks for every trace of `ids` in one GraphQL document; returns those without their spans.
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
            spans.as_array().map_or(0, |a| {
                a.iter().filter(|s| s["traceId"] == id.as_str()).count()
            }) != SPANS as usize
        })
        .map(|(_, id)| id.clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_times_the_inflight_limit_is_answered_cleanly_bounded_and_kept() {
    let limit = INFLIGHT_LIMIT.to_string();
    let server = Server::start_with(&[("SW_CORE_MAX_INFLIGHT_REQUESTS", limit.as_str())]).await;
    let url = format!("{}/v3/segments", server.base());
    let tally = Arc::new(Tally::default());
    let rss_idle = rss_kib(server.pid()).unwrap_or(0);

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
        let (url, tally) = (url.clone(), tally.clone());
        clients.push(tokio::spawn(async move {
            // One keep-alive connection per client, as each SDK instance has.
            let client = reqwest::Client::builder()
                .pool_max_idle_per_host(1)
                .build()
                .unwrap();
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

    // Recovery: once the load stops, a new request is acknowledged within the bound.
    let stopped = Instant::now();
    let recovery_client = reqwest::Client::new();
    let recovered_after = loop {
        let id = format!("recovery-{}", stopped.elapsed().as_millis());
        let before = tally.acknowledged.lock().unwrap().len();
        send(&recovery_client, &url, &id, &tally).await;
        if tally.acknowledged.lock().unwrap().len() > before {
            break stopped.elapsed();
        }
        assert!(
            stopped.elapsed() < RECOVERY_WITHIN,
            "no request acknowledged within {RECOVERY_WITHIN:?} of the load stopping"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };

    let sent = tally.sent.load(Ordering::Relaxed);
    let busy = tally.busy.load(Ordering::Relaxed);
    let transport_errors = tally.transport_errors.load(Ordering::Relaxed);
    let acknowledged = tally.acknowledged.lock().unwrap().clone();
    eprintln!(
        "overload figures: {CLIENTS} keep-alive clients against an in-flight limit of \
         {INFLIGHT_LIMIT} for {}s: {sent} requests ({:.0} req/s), {} acknowledged, {busy} \
         answered 503, {} other statuses, {transport_errors} transport errors; RSS idle {} KiB, \
         peak {} KiB (bound {} KiB); acknowledged again {} ms after the load stopped",
        OVERLOAD_FOR.as_secs(),
        sent as f64 / OVERLOAD_FOR.as_secs_f64(),
        acknowledged.len(),
        tally.other_status.load(Ordering::Relaxed),
        rss_idle,
        peak_rss,
        RSS_BOUND_KIB,
        recovered_after.as_millis(),
    );
    assert_eq!(
        transport_errors,
        0,
        "requests failed without an answer, first: {:?}",
        tally.first_transport_error.lock().unwrap()
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

    // Everything acknowledged is queryable, every span of it.
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
    let limit_line = format!("skylark_receiver_inflight_requests_limit {INFLIGHT_LIMIT}\n");
    assert!(
        metrics.contains(&limit_line),
        "{limit_line} not in\n{metrics}"
    );
}
