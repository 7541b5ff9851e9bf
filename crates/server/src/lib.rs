//! The `skylark` server: wiring of receivers, rules, storage and the query API. No logic of its
//! own beyond configuration, the write path ([`pipeline`]) and background tasks.

pub mod admin;
pub mod config;
pub mod guards;
pub mod issues;
pub mod pipeline;
pub mod retention;
pub mod sourcemap_cli;

/// The write-ahead log, the durable sink and the batch codec live in `skylark-wal`; these
/// re-exports keep their old paths (`skylark_server::durable::...`) working.
pub use skylark_wal::{batch_codec, durable, wal};

use anyhow::{Context, Result};
use config::Config;
use pipeline::{Clock, Pipeline};
use skylark_core::telemetry::{Telemetry, STORAGE_FLUSHES_TOTAL, STORAGE_FLUSH_DURATION_SECONDS};
use skylark_core::MetricCatalog;
use skylark_storage::{RetentionPolicy, SledConfig, SledStorage, Storage};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

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

/// The embedded database's settings.
fn sled_config(config: &Config) -> SledConfig {
    SledConfig {
        cache_capacity_bytes: config.storage.sled.cache_capacity_mb * 1024 * 1024,
        ..SledConfig::new(config.storage.sled.path.clone())
    }
}

/// Opens the backend `storage.selector` names.
pub fn open_storage(config: &Config) -> Result<Arc<dyn Storage>> {
    Ok(match config.storage_kind()? {
        config::StorageKind::Sled => {
            let sled = SledStorage::open(sled_config(config)).with_context(|| {
                format!(
                    "cannot open storage at {}",
                    config.storage.sled.path.display()
                )
            })?;
            Arc::new(sled)
        }
        config::StorageKind::Postgresql => {
            let pg = config.postgres_config()?;
            let storage =
                skylark_storage_postgres::PostgresStorage::connect(&pg).with_context(|| {
                    format!(
                        "cannot open postgresql storage at {}:{}/{}",
                        pg.host, pg.port, pg.database
                    )
                })?;
            Arc::new(storage)
        }
    })
}

/// Runs the server until `shutdown` resolves, then persists everything and returns.
pub async fn serve(
    config: Config,
    clock: Clock,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let rules = load_rules(&config)?;

    let storage = open_storage(&config)?;
    let telemetry = Arc::new(Telemetry::new());
    let guard = Arc::new(guards::CardinalityGuard::new(
        config.core.cardinality.limits(),
        &telemetry,
    ));
    guard
        .seed(storage.as_ref())
        .context("cannot count the stored entities")?;
    let budget = Arc::new(guards::MemoryBudget::new(
        storage.clone(),
        config.core.max_memory_mb,
        telemetry.clone(),
    ));

    let grouping = Arc::new(issues::IssueGrouping::new(
        config.issues.grouper(),
        storage.clone(),
    ));
    let pipeline = Arc::new(
        Pipeline::new(
            rules,
            storage.clone(),
            config.core.metrics_data_ttl,
            config.core.record_data_ttl,
            clock.clone(),
        )
        .with_cardinality_guard(guard)
        .with_rum_platforms(config.rum.platforms())
        .with_issues(grouping.clone()),
    );
    let catalog = Arc::new(MetricCatalog::new());
    for def in pipeline.definitions() {
        catalog.register(def).map_err(anyhow::Error::msg)?;
    }
    // Replays the write-ahead log before anything listens, so queries see every acknowledged write.
    let (durable, _) = durable::DurableSink::start(pipeline.clone(), &config.durability())?;
    let durable = Arc::new(durable);
    let receiver_state = skylark_receiver::ReceiverState::new(
        durable.clone(),
        skylark_receiver::ReceiverConfig {
            max_body_bytes: config.core.max_body_bytes,
            max_inflight_requests: config.core.max_inflight_requests,
            ..Default::default()
        },
    )
    .with_telemetry(telemetry.clone())
    .with_backpressure(budget.clone());

    let templates = skylark_query::UiTemplates::load(&config.core.ui_templates_path)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let ui = skylark_query::UiContext {
        templates: Arc::new(templates),
        ui_template_editing: config.core.enable_update_ui_template,
        trace_link_template: config.rum.trace_link_template()?,
    };
    let query_limits = config.query.graphql.limits();
    let issues_context = skylark_query::IssuesContext {
        grouper: grouping.grouper(),
        maps: grouping.maps(),
        status_editing: config.issues.enable_update_issue_status,
        clock: {
            let clock = clock.clone();
            Arc::new(move || clock())
        },
    };
    let schema = skylark_query::schema_full(
        skylark_query::QueryContext {
            storage: storage.clone(),
            catalog: catalog.clone(),
            version: config.core.version.clone(),
            metrics_ttl_days: config.core.metrics_data_ttl,
            records_ttl_days: config.core.record_data_ttl,
            mqe_limits: config.core.mqe.limits(),
        },
        ui,
        issues_context,
        &query_limits,
    );
    let alarms = Arc::new(
        skylark_alarm::AlarmEngine::new(
            skylark_alarm::load(&config.alarm.settings_path, &catalog)?,
            storage.clone(),
            catalog.clone(),
            telemetry.clone(),
            Some(skylark_alarm::Dispatcher::start(
                config.alarm.delivery(),
                telemetry.clone(),
            )),
            Arc::new({
                let clock = clock.clone();
                move || clock()
            }),
        )
        .context("cannot load the alarm state")?,
    );
    let query_routes =
        skylark_query::router(schema, query_limits).context("cannot start the query threads")?;
    let sourcemaps = issues::sourcemap_router(issues::SourceMapApi {
        storage: storage.clone(),
        grouping: grouping.clone(),
        token: config.issues.admin_token.clone(),
        clock: clock.clone(),
    });
    let app = skylark_receiver::http_router(receiver_state.clone())
        .merge(skylark_receiver::rum_router(
            receiver_state.clone(),
            config.rum.intake(),
        ))
        .merge(query_routes)
        .merge(sourcemaps)
        .merge(skylark_console::router());

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
    let admin_addr: SocketAddr = format!("{}:{}", config.core.admin.host, config.core.admin.port)
        .parse()
        .with_context(|| "core.admin.host/port do not form a socket address")?;
    let admin_listener = tokio::net::TcpListener::bind(admin_addr)
        .await
        .with_context(|| format!("cannot listen on {admin_addr} (admin, SW_ADMIN_PORT)"))?;
    tracing::info!(
        rest = %rest.local_addr()?,
        grpc = %grpc.local_addr()?,
        admin = %admin_listener.local_addr()?,
        "skylark is listening"
    );

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped_at = Arc::new(std::sync::OnceLock::new());
    let stop_moment = stopped_at.clone();
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_moment.set(Instant::now());
        let _ = stop_tx.send(true);
    });
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };

    let flush_storage = durable.clone();
    let rollup_storage = storage.clone();
    let period = Duration::from_millis(config.core.persistent_period_ms);
    let mut flush_stop = stop_rx.clone();
    let flush_budget = budget.clone();
    let flush_telemetry = telemetry.clone();
    let flusher = tokio::spawn(async move {
        let duration = flush_telemetry.histogram(STORAGE_FLUSH_DURATION_SECONDS, &[]);
        let mut tick = tokio::time::interval(period);
        loop {
            // Over half the memory budget, the flush starts before its period.
            let trigger = tokio::select! {
                _ = tick.tick() => "period",
                _ = flush_budget.flush_requested() => "pressure",
                _ = flush_stop.wait_for(|s| *s) => break,
            };
            let s = flush_storage.clone();
            let started = Instant::now();
            let outcome = match tokio::task::spawn_blocking(move || s.persist()).await {
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "persisting metrics failed");
                    "error"
                }
                Err(e) => {
                    tracing::error!(error = %e, "persist task failed");
                    "error"
                }
                Ok(Ok(())) => "ok",
            };
            duration.observe(started.elapsed());
            flush_telemetry
                .counter(
                    STORAGE_FLUSHES_TOTAL,
                    &[("trigger", trigger), ("outcome", outcome)],
                )
                .inc();
            // Hours and days that closed are built after a successful periodic persist, outside
            // it: the persist stays short, and so do the ones at shutdown and after a replay.
            if outcome == "ok" && trigger == "period" {
                let s = rollup_storage.clone();
                match tokio::task::spawn_blocking(move || s.build_rollups()).await {
                    Ok(Err(e)) => tracing::error!(error = %e, "building hour and day rows failed"),
                    Err(e) => tracing::error!(error = %e, "rollup build task failed"),
                    Ok(Ok(_)) => {}
                }
            }
        }
    });

    let policy = RetentionPolicy {
        metrics_days: config.core.metrics_data_ttl,
        records_days: config.core.record_data_ttl,
    };
    retention::spawn_sweeper(
        storage.clone(),
        policy,
        clock.clone(),
        Duration::from_millis(config.core.retention_sweep_ms),
        telemetry.clone(),
        stop_rx.clone(),
    );

    let alarm_ticker = spawn_alarm_ticker(
        alarms.clone(),
        Duration::from_millis(config.alarm.check_interval_ms.max(1)),
        stop_rx.clone(),
    );

    let grpc_local = grpc.local_addr()?;
    let admin_server = axum::serve(
        admin_listener,
        admin::router(admin::AdminState {
            telemetry: telemetry.clone(),
            storage: storage.clone(),
            data_path: config.storage.sled.path.clone(),
            alarms: Some(alarms),
            node_address: format!("{}_{}", grpc_local.ip(), grpc_local.port()),
        }),
    )
    .with_graceful_shutdown(stopped(stop_rx.clone()));
    let http = axum::serve(rest, app).with_graceful_shutdown(stopped(stop_rx.clone()));
    let grpc_server = tonic::transport::Server::builder()
        .add_routes(skylark_receiver::grpc_routes(receiver_state))
        .serve_with_incoming_shutdown(
            tokio_stream::wrappers::TcpListenerStream::new(grpc),
            stopped(stop_rx.clone()),
        );
    // Connections still open (a gRPC stream, a slow upload) get a grace period, then are
    // dropped unanswered so that the persist below still ends within the 5 s shutdown promise.
    let mut grace_stop = stop_rx.clone();
    let grace = async move {
        let _ = grace_stop.wait_for(|s| *s).await;
        tokio::time::sleep(durable::SHUTDOWN_GRACE).await;
    };
    tokio::select! {
        (h, g, a) = async { tokio::join!(http, grpc_server, admin_server) } => {
            h.context("REST server failed")?;
            g.context("gRPC server failed")?;
            a.context("admin server failed")?;
        }
        _ = grace => tracing::warn!("connections still open after the shutdown grace period were dropped"),
    }

    // The final persist gets what is left of the shutdown deadline. Cut short, it leaves the
    // write-ahead log as it is (the log is only cut back to what storage holds), and the next
    // start replays what was not stored; the caller must not wait for the abandoned task.
    let stopped_at = stopped_at.get().copied().unwrap_or_else(Instant::now);
    let deadline = tokio::time::Instant::from_std(stopped_at + durable::SHUTDOWN_DEADLINE);
    if tokio::time::timeout_at(deadline, flusher).await.is_err() {
        tracing::warn!("a periodic persist was still running at the shutdown deadline");
    }
    // The engine holds storage: it must be gone before the final persist hands storage back.
    if tokio::time::timeout_at(deadline, alarm_ticker)
        .await
        .is_err()
    {
        tracing::warn!("an alarm check was still running at the shutdown deadline");
    }
    let final_persist = tokio::task::spawn_blocking(move || durable.shutdown());
    match tokio::time::timeout_at(deadline, final_persist).await {
        Ok(joined) => {
            joined.context("final persist task failed")??;
            tracing::info!("skylark stopped; everything aggregated was persisted");
            if config.storage_kind()? == config::StorageKind::Sled {
                // Everything that may hold storage is done with it.
                drop((budget, grouping, pipeline));
                write_start_up_snapshot(storage, sled_config(&config), deadline).await;
            }
        }
        Err(_) => tracing::warn!(
            deadline_ms = durable::SHUTDOWN_DEADLINE.as_millis() as u64,
            "the final persist did not finish by the shutdown deadline; what it did not store \
             stays in the write-ahead log and is replayed on the next start"
        ),
    }
    Ok(())
}

/// Has sled write the snapshot the next start recovers from (see
/// [`SledStorage::write_start_up_snapshot`]), within what is left of the shutdown deadline, if
/// nothing but `storage` still holds the database. Cut short, the next start does it instead.
async fn write_start_up_snapshot(
    storage: Arc<dyn Storage>,
    config: SledConfig,
    deadline: tokio::time::Instant,
) {
    let holders = Arc::strong_count(&storage);
    if holders != 1 {
        tracing::debug!(
            holders,
            "storage still held at shutdown, no start-up snapshot"
        );
        return;
    }
    drop(storage);
    let started = Instant::now();
    let write = tokio::task::spawn_blocking(move || SledStorage::write_start_up_snapshot(&config));
    match tokio::time::timeout_at(deadline, write).await {
        Ok(Ok(Ok(()))) => tracing::info!(
            elapsed_ms = started.elapsed().as_millis() as u64,
            "start-up snapshot written"
        ),
        Ok(Ok(Err(error))) => tracing::warn!(%error, "start-up snapshot not written"),
        Ok(Err(error)) => tracing::warn!(%error, "start-up snapshot task failed"),
        Err(_) => tracing::warn!("start-up snapshot not written by the shutdown deadline"),
    }
}

/// Looks at the clock every `every` (`SW_ALARM_CHECK_INTERVAL_MS`) and checks the alarm rules
/// when a new minute has passed its first 15 s (each minute is checked once, as OAP), off the
/// async threads, until `stop` is set.
fn spawn_alarm_ticker(
    alarms: Arc<skylark_alarm::AlarmEngine>,
    every: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.wait_for(|s| *s) => break,
            }
            let engine = alarms.clone();
            match tokio::task::spawn_blocking(move || engine.tick()).await {
                Ok(Err(error)) => tracing::error!(%error, "alarm check failed"),
                Err(error) => tracing::error!(%error, "alarm check task failed"),
                Ok(Ok(_)) => {}
            }
        }
    })
}

/// The metric catalog of the configured rules (MAL, log-MAL and the relation metrics), which
/// alarm expressions are checked against.
pub fn metric_catalog(config: &Config) -> Result<MetricCatalog> {
    let rules = load_rules(config)?;
    let catalog = MetricCatalog::new();
    let mut defs = rules.otel.definitions();
    defs.extend(rules.log_mal.definitions());
    defs.extend(pipeline::relation_metrics());
    for def in defs {
        catalog.register(def).map_err(anyhow::Error::msg)?;
    }
    Ok(catalog)
}

/// Validates one rule file, MAL or LAL (a LAL file has a top-level `rules:` list): `Err`
/// carries `file:line:col: problem`.
pub fn check_rule_file(path: &std::path::Path) -> std::result::Result<(), String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("{}:1:1: cannot read: {e}", path.display()))?;
    // Alarm settings: `rules` is a mapping of `*_rule` keys (LAL's is a list).
    let is_alarm = serde_yaml::from_str::<serde_yaml::Value>(&text)
        .ok()
        .is_some_and(|v| {
            v.get("rules").is_some_and(|r| r.is_mapping()) || v.get("hooks").is_some()
        });
    if is_alarm {
        let config = Config::load(None).map_err(|e| format!("{}:1:1: {e:#}", path.display()))?;
        let catalog =
            metric_catalog(&config).map_err(|e| format!("{}:1:1: {e:#}", path.display()))?;
        return skylark_alarm::parse(path, &text, &catalog)
            .map(|_| ())
            .map_err(|e| e.to_string());
    }
    let is_lal = text.lines().any(|l| l.starts_with("rules:"));
    if is_lal {
        skylark_lal::check_file(path).map_err(|d| d.to_string())
    } else {
        skylark_mal::check_file(path).map_err(|d| d.to_string())
    }
}
