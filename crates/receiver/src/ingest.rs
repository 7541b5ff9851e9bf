//! The one place both transports hand decoded data to the sink, so HTTP and gRPC cannot drift.
use skylark_core::{IngestReport, MetricBatch};

use crate::{ReceiverState, Result};

/// Hands one request's metrics to the sink.
pub(crate) async fn ingest_metrics(
    state: &ReceiverState,
    batch: MetricBatch,
    protocol: &'static str,
) -> Result<IngestReport> {
    let resources = batch.resources.len();
    let skipped_points = batch.skipped_points;
    match state.sink.ingest_metrics(batch).await {
        Ok(report) => {
            tracing::debug!(
                protocol,
                signal = "metrics",
                resources,
                skipped_points,
                accepted = report.accepted,
                rejected = report.rejected,
                "otlp metrics ingested"
            );
            Ok(report)
        }
        Err(e) => {
            tracing::warn!(protocol, signal = "metrics", error = %e, "otlp metrics ingestion failed");
            Err(e.into())
        }
    }
}
