//! The one place both transports hand decoded data to the sink, so HTTP and gRPC cannot drift.
use skylark_core::segment::Segment;
use skylark_core::{IngestReport, MetricBatch};

use crate::{LogBatch, ReceiverState, Result};

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

/// Hands one request's logs to the sink; records the receiver dropped count as rejected. A request
/// whose every record was dropped never reaches the sink.
pub(crate) async fn ingest_logs(
    state: &ReceiverState,
    batch: LogBatch,
    protocol: &'static str,
) -> Result<IngestReport> {
    let dropped = batch.rejected;
    if batch.logs.is_empty() {
        tracing::debug!(
            protocol,
            signal = "logs",
            dropped,
            "no otlp log records to ingest"
        );
        return Ok(IngestReport {
            accepted: 0,
            rejected: dropped,
        });
    }
    match state.sink.ingest_logs(batch.logs).await {
        Ok(mut report) => {
            report.rejected += dropped;
            tracing::debug!(
                protocol,
                signal = "logs",
                dropped,
                accepted = report.accepted,
                rejected = report.rejected,
                "otlp logs ingested"
            );
            Ok(report)
        }
        Err(e) => {
            tracing::warn!(protocol, signal = "logs", error = %e, "otlp logs ingestion failed");
            Err(e.into())
        }
    }
}

/// Hands valid segments to the sink (nothing when there are none). Rejected segments are the
/// caller's to report.
pub(crate) async fn ingest_segments(
    state: &ReceiverState,
    segments: Vec<Segment>,
    protocol: &'static str,
) -> Result<IngestReport> {
    if segments.is_empty() {
        return Ok(IngestReport::default());
    }
    let count = segments.len();
    match state.sink.ingest_segments(segments).await {
        Ok(report) => {
            tracing::debug!(
                protocol,
                signal = "segments",
                segments = count,
                accepted = report.accepted,
                rejected = report.rejected,
                "segments ingested"
            );
            Ok(report)
        }
        Err(e) => {
            tracing::warn!(protocol, signal = "segments", error = %e, "segment ingestion failed");
            Err(e.into())
        }
    }
}
