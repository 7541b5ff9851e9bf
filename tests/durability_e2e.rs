//! Graceful shutdown persists everything and empties the write-ahead log; `relaxed` durability
//! acknowledges and still survives a process crash (the log reached the operating system).
#[path = "support/node.rs"]
mod node;

use node::{content, exception_type, Node};

async fn post_all(node: &Node, ids: std::ops::Range<u64>) {
    for id in ids {
        assert_eq!(node.post_log(id).await, Ok(200), "log:\n{}", node.log());
    }
}

async fn assert_all_once(node: &Node, ids: std::ops::Range<u64>) {
    let stored = node.stored_logs().await;
    let counted = node.error_counts().await;
    for id in ids.clone() {
        assert_eq!(stored.get(&content(id)), Some(&1), "log {id}: {stored:?}");
        assert_eq!(
            counted.get(&exception_type(id)),
            Some(&1),
            "count {id}: {counted:?}"
        );
    }
    assert_eq!(stored.len(), ids.clone().count(), "{stored:?}");
    assert_eq!(counted.len(), ids.count(), "{counted:?}");
}

fn wal_segments(node: &Node) -> usize {
    std::fs::read_dir(node.wal_dir())
        .map(|d| d.count())
        .unwrap_or(0)
}

#[tokio::test]
async fn sigterm_persists_everything_within_five_seconds_and_a_restart_shows_it() {
    let dir = tempfile::tempdir().unwrap();
    // A persist period far beyond the test: only the shutdown can have persisted the metrics.
    let node = Node::new(dir.path(), &[("SW_CORE_PERSISTENT_PERIOD_MS", "3600000")]);
    node.start().await;
    post_all(&node, 0..40).await;
    assert!(
        wal_segments(&node) > 0,
        "acknowledged requests must be in the log"
    );
    let (took, clean) = node.terminate();
    assert!(clean, "log:\n{}", node.log());
    assert!(
        took.as_secs_f64() < 5.0,
        "graceful shutdown took {took:?}, over the 5 s promise"
    );
    // Everything was persisted, so nothing is left to replay.
    assert_eq!(wal_segments(&node), 0, "log:\n{}", node.log());
    node.start().await;
    assert_all_once(&node, 0..40).await;
}

#[tokio::test]
async fn relaxed_durability_acknowledges_and_survives_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::new(
        dir.path(),
        &[
            ("SW_CORE_DURABILITY", "relaxed"),
            ("SW_CORE_WAL_FLUSH_MS", "100"),
            ("SW_CORE_PERSISTENT_PERIOD_MS", "3600000"),
        ],
    );
    node.start().await;
    post_all(&node, 0..30).await;
    assert_all_once(&node, 0..30).await;
    node.kill9();
    node.start().await;
    assert!(
        node.log()
            .lines()
            .any(|l| l.contains("write-ahead log replayed") && l.contains("Relaxed")),
        "relaxed mode not in effect; log:\n{}",
        node.log()
    );
    assert_all_once(&node, 0..30).await;
}

#[tokio::test]
async fn sync_durability_replays_after_kill_9_without_counting_twice() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::new(dir.path(), &[("SW_CORE_PERSISTENT_PERIOD_MS", "200")]);
    node.start().await;
    post_all(&node, 0..20).await;
    // Let a persist store part of it, so the replay must skip what is already stored.
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    post_all(&node, 20..30).await;
    node.kill9();
    node.start().await;
    assert_all_once(&node, 0..30).await;
    // And again, with nothing new: a second replay changes nothing.
    node.kill9();
    node.start().await;
    assert_all_once(&node, 0..30).await;
}
