//! The admin listener: Prometheus text at `GET /metrics`. Storage-derived gauges (disk bytes,
//! entity counts, pending rows) are refreshed on each scrape, so an idle server does no work.
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
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
}

/// `GET /metrics`.
pub fn router(state: AdminState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .with_state(state)
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
}
