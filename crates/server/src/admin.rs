//! The admin listener: Prometheus text at `GET /metrics`, and OAP's alarm runtime status
//! (`/status/alarm/rules`, `/status/alarm/rules/{ruleId}`, `/status/alarm/{ruleId}/{entityName}`).
//! Storage-derived gauges (disk bytes, entity counts, pending rows) are refreshed on each scrape,
//! so an idle server does no work.
use axum::extract::{Path as UrlPath, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::get;
use axum::Router;
use skylark_core::telemetry::{
    Telemetry, STORAGE_DISK_BYTES, STORAGE_ENTITIES, STORAGE_PENDING_ROWS,
};
use skylark_core::ServiceId;
use skylark_storage::Storage;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// What the admin routes read.
#[derive(Clone)]
pub struct AdminState {
    /// The shared self-metrics registry.
    pub telemetry: Arc<Telemetry>,
    /// Storage, for entity counts and pending rows.
    pub storage: Arc<dyn Storage>,
    /// The storage folder, for its size on disk.
    pub data_path: PathBuf,
    /// The alarm evaluator, for its status.
    pub alarms: Option<Arc<skylark_alarm::AlarmEngine>>,
    /// This node as OAP names it in status answers (`host_grpcPort`).
    pub node_address: String,
}

/// `GET /metrics` and the alarm status routes.
pub fn router(state: AdminState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/status/alarm/rules", get(alarm_rules))
        .route("/status/alarm/rules/{rule_id}", get(alarm_rule))
        .route("/status/alarm/{rule_id}/{entity_name}", get(alarm_entity))
        .with_state(state)
}

/// OAP's answer: one entry per OAP node (Skylark is one), with its `status` or `errorMsg`.
fn oap_instances(
    state: &AdminState,
    status: Option<serde_json::Value>,
    missing: String,
) -> Response {
    let (code, entry) = match status {
        Some(status) => (
            StatusCode::OK,
            serde_json::json!({"address": state.node_address, "status": status}),
        ),
        None => (
            StatusCode::NOT_FOUND,
            serde_json::json!({"address": state.node_address, "errorMsg": missing}),
        ),
    };
    (code, Json(serde_json::json!({ "oapInstances": [entry] }))).into_response()
}

async fn alarm_rules(State(state): State<AdminState>) -> Response {
    let status = state.alarms.as_ref().map(|a| a.rules_status());
    oap_instances(&state, status, "alarms are not running".into())
}

async fn alarm_rule(
    State(state): State<AdminState>,
    UrlPath(rule_id): UrlPath<String>,
) -> Response {
    let status = state.alarms.as_ref().and_then(|a| a.rule_status(&rule_id));
    oap_instances(&state, status, format!("no alarm rule {rule_id}"))
}

async fn alarm_entity(
    State(state): State<AdminState>,
    UrlPath((rule_id, entity_name)): UrlPath<(String, String)>,
) -> Response {
    let status = state
        .alarms
        .as_ref()
        .and_then(|a| a.entity_status(&rule_id, &entity_name));
    oap_instances(&state, status, format!("no alarm rule {rule_id}"))
}

async fn metrics(State(state): State<AdminState>) -> Response {
    let telemetry = state.telemetry.clone();
    let refreshed = tokio::task::spawn_blocking(move || refresh_storage_gauges(&state)).await;
    match refreshed {
        Ok(Err(error)) => tracing::warn!(%error, "entity counts unavailable for /metrics"),
        Err(error) => tracing::warn!(%error, "refreshing storage gauges failed"),
        Ok(Ok(())) => {}
    }
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        telemetry.render(),
    )
        .into_response()
}

/// Sets the disk, pending-row and entity gauges from storage (blocking: it lists entities and
/// walks the data folder).
pub fn refresh_storage_gauges(state: &AdminState) -> skylark_storage::Result<()> {
    let t = &state.telemetry;
    t.gauge(STORAGE_DISK_BYTES, &[])
        .set(i64::try_from(disk_usage(&state.data_path)).unwrap_or(i64::MAX));
    t.gauge(STORAGE_PENDING_ROWS, &[])
        .set(i64::try_from(state.storage.pending_rows()).unwrap_or(i64::MAX));
    let services = state.storage.list_services(None)?;
    let (mut instances, mut endpoints) = (0usize, 0usize);
    for service in &services {
        let id = ServiceId::new(&service.name, true);
        instances += state.storage.list_instances(&id, i64::MIN)?.len();
        endpoints += state.storage.find_endpoints(&id, None, usize::MAX)?.len();
    }
    for (kind, n) in [
        ("service", services.len()),
        ("instance", instances),
        ("endpoint", endpoints),
    ] {
        t.gauge(STORAGE_ENTITIES, &[("kind", kind)])
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }
    Ok(())
}

/// Bytes of the regular files under `path` (0 when it cannot be read).
pub fn disk_usage(path: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else {
        return 0;
    };
    let mut total = 0;
    for entry in entries.flatten() {
        let Ok(meta) = entry.metadata() else { continue };
        if meta.is_dir() {
            total += disk_usage(&entry.path());
        } else {
            total += meta.len();
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::{to_bytes, Body};
    use axum::http::Request;
    use skylark_core::traffic::{EndpointTraffic, InstanceTraffic, ServiceTraffic, Traffic};
    use skylark_core::Layer;
    use tower::ServiceExt;

    #[tokio::test]
    async fn metrics_expose_entity_counts_and_disk_use_as_prometheus_text() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("blob"), vec![0u8; 1000]).unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/blob"), vec![0u8; 24]).unwrap();
        let storage = Arc::new(skylark_storage::MemStorage::new());
        storage
            .write_traffic(
                vec![
                    Traffic::Service(ServiceTraffic {
                        name: "svc".into(),
                        layer: Layer::GENERAL,
                    }),
                    Traffic::Instance(InstanceTraffic {
                        service_name: "svc".into(),
                        name: "i1".into(),
                        layer: Layer::GENERAL,
                    }),
                    Traffic::Endpoint(EndpointTraffic {
                        service_name: "svc".into(),
                        name: "/a".into(),
                        layer: Layer::GENERAL,
                    }),
                    Traffic::Endpoint(EndpointTraffic {
                        service_name: "svc".into(),
                        name: "/b".into(),
                        layer: Layer::GENERAL,
                    }),
                ],
                1_700_000_000_000,
            )
            .unwrap();
        let state = AdminState {
            telemetry: Arc::new(Telemetry::new()),
            storage,
            data_path: dir.path().to_path_buf(),
            alarms: None,
            node_address: "127.0.0.1_11800".into(),
        };
        let response = router(state)
            .oneshot(Request::get("/metrics").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert!(response.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4"));
        let text = String::from_utf8(
            to_bytes(response.into_body(), usize::MAX)
                .await
                .unwrap()
                .to_vec(),
        )
        .unwrap();
        assert!(text.contains("skylark_storage_disk_bytes 1024\n"), "{text}");
        assert!(text.contains("skylark_storage_entities{kind=\"service\"} 1\n"));
        assert!(text.contains("skylark_storage_entities{kind=\"instance\"} 1\n"));
        assert!(text.contains("skylark_storage_entities{kind=\"endpoint\"} 2\n"));
        assert!(text.contains("# TYPE skylark_storage_pending_rows gauge\n"));
    }

    async fn get_json(app: Router, path: &str) -> (StatusCode, serde_json::Value) {
        let response = app
            .oneshot(Request::get(path).body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let body = to_bytes(response.into_body(), usize::MAX).await.unwrap();
        (status, serde_json::from_slice(&body).unwrap())
    }

    #[tokio::test]
    async fn alarm_status_answers_in_oaps_shape() {
        let storage: Arc<dyn Storage> = Arc::new(skylark_storage::MemStorage::new());
        let catalog = Arc::new(skylark_core::MetricCatalog::new());
        catalog
            .register(skylark_core::MetricDefinition {
                name: "service_resp_time".into(),
                scope: skylark_core::Scope::Service,
                function: skylark_core::MetricFunction::Avg,
                percentile_ranks: Vec::new(),
            })
            .unwrap();
        let settings = skylark_alarm::parse(
            Path::new("alarm-settings.yml"),
            "rules:\n  slow_rule:\n    expression: sum(service_resp_time > 100) >= 1\n    period: 3\n    tags:\n      level: WARNING\n",
            &catalog,
        )
        .unwrap();
        let telemetry = Arc::new(Telemetry::new());
        let engine = skylark_alarm::AlarmEngine::new(
            settings,
            storage.clone(),
            catalog,
            telemetry.clone(),
            None,
            Arc::new(|| 0),
        )
        .unwrap();
        let app = router(AdminState {
            telemetry,
            storage,
            data_path: PathBuf::from("/nonexistent"),
            alarms: Some(Arc::new(engine)),
            node_address: "127.0.0.1_11800".into(),
        });
        let (status, body) = get_json(app.clone(), "/status/alarm/rules").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            body,
            serde_json::json!({"oapInstances": [{"address": "127.0.0.1_11800",
                "status": {"ruleList": [{"id": "slow_rule"}]}}]})
        );
        let (status, body) = get_json(app.clone(), "/status/alarm/rules/slow_rule").await;
        assert_eq!(status, StatusCode::OK);
        let rule = &body["oapInstances"][0]["status"];
        assert_eq!(rule["ruleId"], "slow_rule");
        assert_eq!(rule["expression"], "sum(service_resp_time > 100) >= 1");
        assert_eq!(rule["period"], 3);
        assert_eq!(rule["silencePeriod"], 3);
        assert_eq!(rule["runningEntities"], serde_json::json!([]));
        assert_eq!(
            rule["tags"],
            serde_json::json!([{"key": "level", "value": "WARNING"}])
        );
        // An entity name with a space and a slash, percent-encoded as a client sends it.
        let (status, body) = get_json(
            app.clone(),
            "/status/alarm/slow_rule/pages%2Findex%20in%20svc",
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["oapInstances"][0]["status"]["size"], 0);
        let (status, body) = get_json(app, "/status/alarm/rules/nope_rule").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(
            body["oapInstances"][0]["errorMsg"],
            "no alarm rule nope_rule"
        );
    }
}
