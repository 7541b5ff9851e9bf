//! Acknowledged means durable: uniquely numbered log requests against the real binary, `kill -9`
//! at random moments (under load, and sometimes during start-up replay) with restarts in between,
//! then every acknowledged request must be queryable exactly once, and nothing counted twice.
//!
//! `SKYLARK_CRASH_KILLS` sets the number of kills (default 5; `make test-crash` runs 25).
#[path = "support/node.rs"]
mod node;

use node::{content, exception_type, Node};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Clients posting at once.
const CLIENTS: usize = 8;

/// xorshift64: the kill moments only need to vary, and the seed is printed to repeat a run.
struct Moments(u64);

impl Moments {
    fn next(&mut self, below: u64) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x % below
    }
}

/// What the clients learnt: ids answered 2xx, and ids whose fate is unknown (no answer).
#[derive(Default)]
struct Outcomes {
    acknowledged: BTreeSet<u64>,
    in_doubt: BTreeSet<u64>,
    refused: u64,
}

async fn load(
    node: Arc<Node>,
    next: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    out: Arc<Mutex<Outcomes>>,
) {
    while !stop.load(Ordering::SeqCst) {
        let id = next.fetch_add(1, Ordering::SeqCst);
        let result = node.post_log(id).await;
        let answered = result.is_ok();
        {
            let mut out = out.lock().unwrap();
            match result {
                Ok(status) if (200..300).contains(&status) => {
                    out.acknowledged.insert(id);
                }
                // A clean refusal (busy, shutting down): the SDK would resend as a new attempt.
                Ok(_) => {
                    out.refused += 1;
                    out.in_doubt.insert(id);
                }
                Err(_) => {
                    out.in_doubt.insert(id);
                }
            }
        }
        if !answered {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_requests_survive_kill_9_exactly_once() {
    let kills: u64 = std::env::var("SKYLARK_CRASH_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let seed = std::env::var("SKYLARK_CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| chrono::Utc::now().timestamp_nanos_opt().unwrap_or(1) as u64 | 1);
    println!("crash test: {kills} kills, seed {seed} (SKYLARK_CRASH_SEED repeats it)");
    let mut moments = Moments(seed);
    let dir = tempfile::tempdir().unwrap();
    // One error_count series per request: the label cap must not fold them.
    let env = [("SW_CORE_MAX_LABEL_VALUES_PER_METRIC", "100000000")];
    let node = Arc::new(Node::new(dir.path(), &env));
    let next = Arc::new(AtomicU64::new(1));
    let outcomes = Arc::new(Mutex::new(Outcomes::default()));
    let mut killed_in_startup = 0;

    for round in 0..kills {
        node.spawn();
        // Some kills land during start-up, while the log is being replayed.
        if moments.next(5) == 0 {
            tokio::time::sleep(Duration::from_millis(moments.next(400))).await;
            node.kill9();
            killed_in_startup += 1;
            continue;
        }
        if !node.wait_ready(Duration::from_secs(60)).await {
            panic!("round {round}: skylark did not start; log:\n{}", node.log());
        }
        let stop = Arc::new(AtomicBool::new(false));
        let clients: Vec<_> = (0..CLIENTS)
            .map(|_| {
                tokio::spawn(load(
                    node.clone(),
                    next.clone(),
                    stop.clone(),
                    outcomes.clone(),
                ))
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(100 + moments.next(1500))).await;
        // The kill lands while requests are in flight; the clients notice and stop.
        node.kill9();
        stop.store(true, Ordering::SeqCst);
        for c in clients {
            c.await.unwrap();
        }
    }

    // The last start must replay everything the kills left in the log.
    node.start().await;
    let stored = node.stored_logs().await;
    let counted = node.error_counts().await;
    let out = outcomes.lock().unwrap();
    let mut missing = Vec::new();
    let mut found = 0u64;
    for id in &out.acknowledged {
        let logs = stored.get(&content(*id)).copied().unwrap_or(0);
        let count = counted.get(&exception_type(*id)).copied().unwrap_or(0);
        if logs == 1 && count == 1 {
            found += 1;
        } else {
            missing.push((*id, logs, count));
        }
    }
    let twice: Vec<_> = stored.iter().filter(|(_, n)| **n > 1).collect();
    let counted_twice: Vec<_> = counted.iter().filter(|(_, n)| **n > 1).collect();
    let persisted_in_doubt = out
        .in_doubt
        .iter()
        .filter(|id| stored.contains_key(&content(**id)))
        .count();
    // A request is applied whole or not at all: its record and its count go together.
    let torn: Vec<u64> = out
        .in_doubt
        .iter()
        .copied()
        .filter(|id| {
            stored.get(&content(*id)).copied().unwrap_or(0)
                != counted.get(&exception_type(*id)).copied().unwrap_or(0)
        })
        .collect();
    let strangers = stored
        .keys()
        .filter(|c| {
            !c.strip_prefix("durability log ")
                .and_then(|n| n.parse::<u64>().ok())
                .is_some_and(|id| out.acknowledged.contains(&id) || out.in_doubt.contains(&id))
        })
        .count();
    println!(
        "kills {kills} ({killed_in_startup} during start-up); acknowledged {}, found {found}; \
         in doubt {} ({persisted_in_doubt} persisted, {} refused cleanly); stored logs {}, \
         error_count total {}",
        out.acknowledged.len(),
        out.in_doubt.len(),
        out.refused,
        stored.values().sum::<u64>(),
        counted.values().sum::<u64>()
    );
    assert!(
        out.acknowledged.len() as u64 > kills,
        "too little load to mean anything"
    );
    assert!(
        missing.is_empty(),
        "acknowledged but lost or doubled (id, logs, count): {missing:?}\nlog:\n{}",
        node.log()
    );
    assert!(twice.is_empty(), "logs stored twice: {twice:?}");
    assert!(
        counted_twice.is_empty(),
        "requests counted twice: {counted_twice:?}"
    );
    assert!(torn.is_empty(), "requests half applied: {torn:?}");
    assert_eq!(strangers, 0, "logs nobody sent");
    assert_eq!(found, out.acknowledged.len() as u64);
    let (_, clean) = node.terminate();
    assert!(clean, "graceful stop failed; log:\n{}", node.log());
}
