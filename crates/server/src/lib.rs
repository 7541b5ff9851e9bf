//! The `skylark` server: wiring of receivers, rules, storage and the query API. No logic of its
//! own beyond configuration, the write path ([`pipeline`]) and background tasks.

pub mod config;
pub mod pipeline;

use anyhow::{Context, Result};
use config::Config;
use pipeline::{Clock, Pipeline};
use skylark_core::MetricCatalog;
use skylark_storage::{RetentionPolicy, SledConfig, SledStorage, Storage};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// How often expired rows are swept.
const RETENTION_SWEEP: Duration = Duration::from_secs(600);

/// Loads every configured rule file; a bad file fails naming its file:line:col.
pub fn load_rules(config: &Config) -> Result<pipeline::Rules> {
    let otel = skylark_mal::RuleSet::load(&config.otel_rule_files()?)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let lal =
        skylark_lal::LalEngine::load(&config.lal_files()?).map_err(|e| anyhow::anyhow!("{e}"))?;
    let log_mal =
        skylark_mal::RuleSet::load(&config.log_mal_files()?).map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(pipeline::Rules { otel, lal, log_mal })
}

/// Runs the server until `shutdown` resolves, then persists everything and returns.
pub async fn serve(
    config: Config,
    clock: Clock,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let rules = load_rules(&config)?;

    let sled = SledStorage::open(SledConfig {
        cache_capacity_bytes: config.storage.sled.cache_capacity_mb * 1024 * 1024,
        ..SledConfig::new(config.storage.sled.path.clone())
    })
    .with_context(|| {
        format!(
            "cannot open storage at {}",
            config.storage.sled.path.display()
        )
    })?;
    let storage: Arc<dyn Storage> = Arc::new(sled);

    let pipeline = Arc::new(Pipeline::new(
        rules,
        storage.clone(),
        config.core.metrics_data_ttl,
        config.core.record_data_ttl,
        clock.clone(),
    ));
    let catalog = Arc::new(MetricCatalog::new());
    for def in pipeline.definitions() {
        catalog.register(def).map_err(anyhow::Error::msg)?;
    }
    let receiver_state = skylark_receiver::ReceiverState {
        sink: pipeline.clone(),
        config: skylark_receiver::ReceiverConfig {
            max_body_bytes: config.core.max_body_bytes,
            ..Default::default()
        },
    };

    let templates = skylark_query::UiTemplates::load(&config.core.ui_templates_path)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let ui = skylark_query::UiContext {
        templates: Arc::new(templates),
        ui_template_editing: config.core.enable_update_ui_template,
    };
    let schema = skylark_query::schema_with_ui(
        skylark_query::QueryContext {
            storage: storage.clone(),
            catalog: catalog.clone(),
            version: config.core.version.clone(),
            metrics_ttl_days: config.core.metrics_data_ttl,
            records_ttl_days: config.core.record_data_ttl,
        },
        ui,
    );
    let app =
        skylark_receiver::http_router(receiver_state.clone()).merge(skylark_query::router(schema));

    let rest_addr: SocketAddr = format!("{}:{}", config.core.rest.host, config.core.rest.port)
        .parse()
        .with_context(|| "core.rest.host/port do not form a socket address")?;
    let grpc_addr: SocketAddr = format!("{}:{}", config.core.grpc.host, config.core.grpc.port)
        .parse()
        .with_context(|| "core.grpc.host/port do not form a socket address")?;
    let rest = tokio::net::TcpListener::bind(rest_addr)
        .await
        .with_context(|| format!("cannot listen on {rest_addr}"))?;
    let grpc = tokio::net::TcpListener::bind(grpc_addr)
        .await
        .with_context(|| format!("cannot listen on {grpc_addr}"))?;
    tracing::info!(rest = %rest.local_addr()?, grpc = %grpc.local_addr()?, "skylark is listening");

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };

    let flush_storage = storage.clone();
    let period = Duration::from_millis(config.core.persistent_period_ms);
    let mut flush_stop = stop_rx.clone();
    let flusher = tokio::spawn(async move {
        let mut tick = tokio::time::interval(period);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = flush_stop.wait_for(|s| *s) => break,
            }
            let s = flush_storage.clone();
            match tokio::task::spawn_blocking(move || s.flush()).await {
                Ok(Err(e)) => tracing::error!(error = %e, "persisting metrics failed"),
                Err(e) => tracing::error!(error = %e, "persist task failed"),
                Ok(Ok(())) => {}
            }
        }
    });

    let sweep_storage = storage.clone();
    let policy = RetentionPolicy {
        metrics_days: config.core.metrics_data_ttl,
        records_days: config.core.record_data_ttl,
    };
    let sweep_clock = clock.clone();
    let mut sweep_stop = stop_rx.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(RETENTION_SWEEP);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = sweep_stop.wait_for(|s| *s) => break,
            }
            let s = sweep_storage.clone();
            let now = sweep_clock();
            match tokio::task::spawn_blocking(move || s.remove_expired(&policy, now)).await {
                Ok(Ok(n)) if n > 0 => tracing::info!(removed = n, "expired rows removed"),
                Ok(Err(e)) => tracing::error!(error = %e, "retention sweep failed"),
                _ => {}
            }
        }
    });

    let http = axum::serve(rest, app).with_graceful_shutdown(stopped(stop_rx.clone()));
    let grpc_server = tonic::transport::Server::builder()
        .add_routes(skylark_receiver::grpc_routes(receiver_state))
        .serve_with_incoming_shutdown(
            tokio_stream::wrappers::TcpListenerStream::new(grpc),
            stopped(stop_rx.clone()),
        );
    let (h, g) = tokio::join!(http, grpc_server);
    h.context("REST server failed")?;
    g.context("gRPC server failed")?;

    let _ = flusher.await;
    tokio::task::spawn_blocking(move || storage.flush())
        .await
        .context("final persist task failed")??;
    tracing::info!("skylark stopped; everything aggregated was persisted");
    Ok(())
}

/// Validates one rule file, MAL or LAL (a LAL file has a top-level `rules:` list): `Err`
/// carries `file:line:col: problem`.
pub fn check_rule_file(path: &std::path::Path) -> std::result::Result<(), String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("{}:1:1: cannot read: {e}", path.display()))?;
    let is_lal = text.lines().any(|l| l.starts_with("rules:"));
    if is_lal {
        skylark_lal::check_file(path).map_err(|d| d.to_string())
    } else {
        skylark_mal::check_file(path).map_err(|d| d.to_string())
    }
}
