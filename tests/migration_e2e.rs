//! Data folders written by earlier Skylarks are migrated at start-up and answer as they did.
//! Both folders hold the same data, written by `tests/data/make_format1.py` and a clean
//! shutdown: metrics for `migration-sim` at 2026-12-06 07:00, 07:01 and 07:02 UTC (app launch
//! 100, 200 and 300 ms, two points each) and one error log.
//! - `tests/data/format1.tar.gz`: storage format 1 (JSON metric rows, no format row), by the
//!   `skylark` of main before format 2 (commit 248d011).
//! - `tests/data/format3.tar.gz`: storage format 3 (metric keys spelling out metric and entity,
//!   hour rows built when the hour closes), by the `skylark` of commit 2c44793.
#[path = "support/node.rs"]
mod support;

use serde_json::{json, Value};
use std::path::Path;
use std::process::Command;
use support::Node;

const SERVICE: &str = "migration-sim";

/// The UTC minutes as the GraphQL duration (server local time, as the UIs send it).
fn window(start_utc: &str, end_utc: &str, step: &str) -> Value {
    let local = |t: &str| {
        let utc = chrono::NaiveDateTime::parse_from_str(t, "%Y-%m-%d %H%M")
            .expect("time")
            .and_utc();
        let fmt = if step == "HOUR" {
            "%Y-%m-%d %H"
        } else {
            "%Y-%m-%d %H%M"
        };
        utc.with_timezone(&chrono::Local).format(fmt).to_string()
    };
    json!({"start": local(start_utc), "end": local(end_utc), "step": step})
}

async fn launch_values(node: &Node, duration: Value) -> Vec<String> {
    let q = "query ($e: String!, $entity: Entity!, $d: Duration!) { r: execExpression(expression: $e, entity: $entity, duration: $d) { error results { values { value } } } }";
    let reply = node
        .graphql(
            q,
            json!({"e": "meter_wechat_mp_app_launch_duration",
                   "entity": {"serviceName": SERVICE, "normal": true}, "d": duration}),
        )
        .await;
    assert!(reply["data"]["r"]["error"].is_null(), "{reply}");
    reply["data"]["r"]["results"][0]["values"]
        .as_array()
        .expect("values")
        .iter()
        .map(|v| v["value"].as_str().unwrap_or("null").to_string())
        .collect()
}

#[tokio::test]
async fn a_format_1_folder_is_migrated_and_answers_as_before() {
    migrated_folder_answers_as_before("format1.tar.gz").await;
}

#[tokio::test]
async fn a_format_3_folder_is_migrated_and_answers_as_before() {
    migrated_folder_answers_as_before("format3.tar.gz").await;
}

async fn migrated_folder_answers_as_before(archive: &str) {
    let archive = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/data")
        .join(archive);
    let dir = tempfile::tempdir().expect("tempdir");
    let status = Command::new("tar")
        .arg("-xzf")
        .arg(&archive)
        .arg("-C")
        .arg(dir.path())
        .status()
        .expect("tar");
    assert!(status.success(), "could not unpack {}", archive.display());
    // The data is from a fixed day: keep it whatever today's date.
    let ttl = [
        ("SW_CORE_METRICS_DATA_TTL", "36500"),
        ("SW_CORE_RECORD_DATA_TTL", "36500"),
    ];
    let node = Node::new(dir.path(), &ttl);
    node.start().await;
    assert!(
        node.log().contains("data folder migrated"),
        "no migration logged:\n{}",
        node.log()
    );
    let minutes = window("2026-12-06 0700", "2026-12-06 0702", "MINUTE");
    assert_eq!(
        launch_values(&node, minutes.clone()).await,
        ["100", "200", "300"]
    );
    let hour = window("2026-12-06 0700", "2026-12-06 0700", "HOUR");
    assert_eq!(launch_values(&node, hour.clone()).await, ["200"]);
    let logs = node
        .graphql(
            "query ($c: LogQueryCondition!) { queryLogs(condition: $c) { logs { content } } }",
            json!({"c": {"queryDuration": window("2026-12-06 0700", "2026-12-06 0702", "MINUTE"),
                         "paging": {"pageNum": 1, "pageSize": 10}}}),
        )
        .await;
    assert_eq!(
        logs["data"]["queryLogs"]["logs"],
        json!([{"content": "migration log"}]),
        "{logs}"
    );

    // New data lands in the migrated folder, and a second start migrates nothing again.
    let (_, clean) = node.terminate();
    assert!(clean, "{}", node.log());
    // sled recovers from a snapshot it writes only while opening: a clean stop writes it, so
    // the next start does not replay everything since this one.
    assert!(
        node.log().contains("start-up snapshot written"),
        "{}",
        node.log()
    );
    node.start().await;
    assert_eq!(node.log().matches("data folder migrated").count(), 1);
    assert_eq!(launch_values(&node, minutes).await, ["100", "200", "300"]);
    assert_eq!(launch_values(&node, hour).await, ["200"]);
}
