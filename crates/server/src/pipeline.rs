//! The write path: decoded data → rules → storage. This is the one place every acknowledged
//! request passes through, so a write-ahead log can later sit at its entry.
use skylark_core::{IngestError, IngestReport, IngestSink, MetricBatch, SampleFamilies};
use skylark_mal::{EvalContext, RuleSet, TimeUnit};
use skylark_storage::Storage;
use std::sync::Arc;

/// Samples further ahead than this are refused: a device clock years in the future would
/// otherwise create rows that outlive every TTL.
const MAX_FUTURE_MS: i64 = 24 * 3600 * 1000;

/// A source of "now" in epoch milliseconds (injectable for tests).
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// The system clock.
pub fn system_clock() -> Clock {
    Arc::new(|| chrono::Utc::now().timestamp_millis())
}

/// Runs OTLP metric batches through the MAL rules into storage.
pub struct Pipeline {
    otel_rules: RuleSet,
    storage: Arc<dyn Storage>,
    metrics_ttl_ms: i64,
    clock: Clock,
}

impl Pipeline {
    /// A pipeline over these rules and storage; samples older than `metrics_ttl_days` are dropped.
    pub fn new(
        otel_rules: RuleSet,
        storage: Arc<dyn Storage>,
        metrics_ttl_days: u32,
        clock: Clock,
    ) -> Self {
        Pipeline {
            otel_rules,
            storage,
            metrics_ttl_ms: i64::from(metrics_ttl_days) * 86_400_000,
            clock,
        }
    }

    /// Drops samples OAP would never store (timestamp ≤ 0, older than the TTL) and those too far
    /// in the future; returns how many were dropped.
    fn drop_out_of_range(&self, families: &mut SampleFamilies, now_ms: i64) -> u64 {
        let oldest = now_ms - self.metrics_ttl_ms;
        let newest = now_ms + MAX_FUTURE_MS;
        let mut dropped = 0;
        for family in families.values_mut() {
            let before = family.samples.len();
            family.samples.retain(|s| {
                s.timestamp_ms > 0 && s.timestamp_ms >= oldest && s.timestamp_ms <= newest
            });
            dropped += (before - family.samples.len()) as u64;
        }
        families.retain(|_, f| !f.is_empty());
        dropped
    }
}

#[async_trait::async_trait]
impl IngestSink for Pipeline {
    async fn ingest_metrics(&self, batch: MetricBatch) -> Result<IngestReport, IngestError> {
        let now_ms = (self.clock)();
        let mut report = IngestReport {
            accepted: 0,
            rejected: batch.skipped_points,
        };
        let ctx = EvalContext {
            default_histogram_unit: TimeUnit::Seconds,
            now_ms,
        };
        for mut families in batch.resources {
            let dropped = self.drop_out_of_range(&mut families, now_ms);
            if dropped > 0 {
                tracing::debug!(
                    dropped,
                    "samples outside the accepted time range were dropped"
                );
            }
            report.rejected += dropped;
            report.accepted += families
                .values()
                .map(|f| f.samples.len() as u64)
                .sum::<u64>();
            if families.is_empty() {
                continue;
            }
            let out = self.otel_rules.evaluate(&families, &ctx);
            self.storage
                .write_metrics(out.emissions)
                .map_err(|e| IngestError::Internal(format!("{e:#}")))?;
            self.storage
                .write_traffic(out.traffic, now_ms)
                .map_err(|e| IngestError::Internal(format!("{e:#}")))?;
        }
        Ok(report)
    }
}
