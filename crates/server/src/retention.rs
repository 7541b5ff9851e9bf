//! The background retention sweep: every period, data older than the TTLs (by the injectable
//! clock) is removed.
use crate::pipeline::Clock;
use skylark_core::telemetry::{
    Telemetry, STORAGE_RETENTION_REMOVED_ROWS_TOTAL, STORAGE_RETENTION_SWEEP_DURATION_SECONDS,
};
use skylark_storage::{RetentionPolicy, Storage};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Sweeps once per `period` (the first sweep runs at once) until `stop` turns true.
pub fn spawn_sweeper(
    storage: Arc<dyn Storage>,
    policy: RetentionPolicy,
    clock: Clock,
    period: Duration,
    telemetry: Arc<Telemetry>,
    mut stop: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    let duration = telemetry.histogram(STORAGE_RETENTION_SWEEP_DURATION_SECONDS, &[]);
    let removed = telemetry.counter(STORAGE_RETENTION_REMOVED_ROWS_TOTAL, &[]);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.wait_for(|s| *s) => break,
            }
            let s = storage.clone();
            let now = clock();
            let started = Instant::now();
            match tokio::task::spawn_blocking(move || s.remove_expired(&policy, now)).await {
                Ok(Ok(n)) => {
                    duration.observe(started.elapsed());
                    removed.add(n);
                    if n > 0 {
                        tracing::info!(removed = n, "expired rows removed");
                    }
                }
                Ok(Err(e)) => tracing::error!(error = %e, "retention sweep failed"),
                Err(e) => tracing::error!(error = %e, "retention sweep task failed"),
            }
        }
    })
}
