//! The issue fields over GraphQL against the in-memory store: status changes are refused unless
//! enabled, and enabled ones resolve and reopen issues.
mod common;

use async_graphql::{Request, Variables};
use serde_json::{json, Value};
use skylark_core::{IssueOccurrence, Layer};
use skylark_query::{schema_with_issues, IssuesContext, QueryContext, SkylarkSchema, UiContext};
use skylark_storage::{MemStorage, Storage};
use std::sync::Arc;

const NOW: i64 = 1_767_000_000_000;

fn occurrence(version: &str, time_ms: i64) -> IssueOccurrence {
    IssueOccurrence {
        fingerprint: "0123456789abcdef0123456789abcdef".into(),
        service: "shop".into(),
        layer: Layer::WECHAT_MINI_PROGRAM,
        kind: "js".into(),
        error_type: "TypeError".into(),
        title: "TypeError: boom".into(),
        culprit: "onLoad (pages/a.js)".into(),
        time_ms,
        version: version.into(),
        page: "pages/a".into(),
        message: "boom".into(),
        stack: "    at Object.onLoad (pages/a.js:12:5)".into(),
        session_id: None,
        user_id: None,
        trace_id: None,
    }
}

fn schema(storage: Arc<dyn Storage>, editing: bool) -> SkylarkSchema {
    let ctx = QueryContext {
        storage,
        catalog: Arc::new(common::mini_program_catalog()),
        version: "10.3.0".into(),
        metrics_ttl_days: 7,
        records_ttl_days: 3,
        mqe_limits: Default::default(),
    };
    let issues = IssuesContext {
        status_editing: editing,
        clock: Arc::new(|| NOW),
        ..IssuesContext::default()
    };
    schema_with_issues(ctx, UiContext::default(), issues)
}

async fn run(schema: &SkylarkSchema, query: &str, vars: Value) -> Value {
    let response = schema
        .execute(Request::new(query).variables(Variables::from_json(vars)))
        .await;
    assert!(response.errors.is_empty(), "{:?}", response.errors);
    response.data.into_json().unwrap()
}

const SET: &str = "mutation ($s: IssueStatus!) { setIssueStatus(id: \"0123456789abcdef0123456789abcdef\", status: $s) { status message issue { status } } }";
const GET: &str = "{ getIssue(id: \"0123456789abcdef0123456789abcdef\") { status count regressedInVersion events(paging: {pageSize: 5}) { version resolvedStack { function file line column } } } }";

fn store_with_issue() -> Arc<dyn Storage> {
    let storage: Arc<dyn Storage> = Arc::new(MemStorage::new());
    storage
        .record_issue_occurrences(
            None,
            vec![occurrence("1.0.0", NOW - 60_000)],
            &skylark_issues::record_occurrence,
        )
        .unwrap();
    storage
}

#[tokio::test]
async fn status_changes_are_refused_unless_enabled() {
    let storage = store_with_issue();
    let schema = schema(storage.clone(), false);
    let reply = run(&schema, SET, json!({"s": "RESOLVED"})).await;
    assert_eq!(reply["setIssueStatus"]["status"], false);
    assert!(reply["setIssueStatus"]["message"]
        .as_str()
        .unwrap()
        .contains("SW_ENABLE_UPDATE_ISSUE_STATUS"));
    assert_eq!(
        run(&schema, GET, json!({})).await["getIssue"]["status"],
        "UNRESOLVED"
    );
}

#[tokio::test]
async fn a_resolved_issue_regresses_in_a_newer_version() {
    let storage = store_with_issue();
    let schema = schema(storage.clone(), true);
    let reply = run(&schema, SET, json!({"s": "RESOLVED"})).await;
    assert_eq!(
        reply["setIssueStatus"]["issue"]["status"], "RESOLVED",
        "{reply}"
    );
    let reply = run(&schema, SET, json!({"s": "REGRESSED"})).await;
    assert_eq!(reply["setIssueStatus"]["status"], false);
    storage
        .record_issue_occurrences(
            None,
            vec![occurrence("1.1.0", NOW + 60_000)],
            &skylark_issues::record_occurrence,
        )
        .unwrap();
    let issue = run(&schema, GET, json!({})).await;
    assert_eq!(issue["getIssue"]["status"], "REGRESSED", "{issue}");
    assert_eq!(issue["getIssue"]["regressedInVersion"], "1.1.0");
    assert_eq!(issue["getIssue"]["count"], 2);
    let top = &issue["getIssue"]["events"][0];
    assert_eq!(top["version"], "1.1.0");
    assert_eq!(
        top["resolvedStack"][0],
        json!({"function": "onLoad", "file": "pages/a.js", "line": 12, "column": 5})
    );
}
