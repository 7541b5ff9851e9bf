//! The one place both transports admit requests and hand decoded data to the sink, so HTTP and
//! gRPC cannot drift.
use skylark_core::segment::Segment;
use skylark_core::telemetry::{
    Gauge, RECEIVER_BUSY_REJECTIONS_TOTAL, RECEIVER_INFLIGHT_REQUESTS, RECEIVER_ITEMS_TOTAL,
    RECEIVER_REQUESTS_TOTAL,
};
use skylark_core::{IngestError, IngestReport, MetricBatch};
use tokio::sync::OwnedSemaphorePermit;

use crate::{Error, LogBatch, ReceiverState, Result};

/// One of the `max_inflight_requests` slots, held while a request is decoded and ingested.
pub(crate) struct Admitted {
    _permit: OwnedSemaphorePermit,
    inflight: Gauge,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        self.inflight.add(-1);
    }
}

/// Takes an in-flight slot without waiting, then asks the backpressure check; refuses as busy
/// (503 + `Retry-After`, gRPC `UNAVAILABLE`) when either says no, so overload costs a counter
/// increment instead of queued memory.
pub(crate) fn admit(state: &ReceiverState) -> Result<Admitted> {
    let busy = |reason: &'static str, detail: String| {
        state
            .telemetry
            .counter(RECEIVER_BUSY_REJECTIONS_TOTAL, &[("reason", reason)])
            .inc();
        Error::Ingest(IngestError::Busy(detail))
    };
    let Ok(permit) = state.inflight.clone().try_acquire_owned() else {
        return Err(busy(
            "inflight",
            format!(
                "{} requests are already being ingested",
                state.config.max_inflight_requests
            ),
        ));
    };
    if let Some(overload) = state.backpressure.as_ref().and_then(|b| b.overloaded()) {
        return Err(busy(overload.reason, overload.detail));
    }
    let inflight = state.telemetry.gauge(RECEIVER_INFLIGHT_REQUESTS, &[]);
    inflight.add(1);
    Ok(Admitted {
        _permit: permit,
        inflight,
    })
}

/// Counts a finished request under its status (`ok` or the error category).
pub(crate) fn record_request<T>(
    state: &ReceiverState,
    protocol: &'static str,
    signal: &'static str,
    result: &Result<T>,
) {
    let status = match result {
        Ok(_) => "ok",
        Err(e) => e.code().as_str(),
    };
    state
        .telemetry
        .counter(
            RECEIVER_REQUESTS_TOTAL,
            &[
                ("protocol", protocol),
                ("signal", signal),
                ("status", status),
            ],
        )
        .inc();
}

/// Counts items of a request as accepted and rejected.
pub(crate) fn record_items(
    state: &ReceiverState,
    signal: &'static str,
    accepted: u64,
    rejected: u64,
) {
    for (outcome, n) in [("accepted", accepted), ("rejected", rejected)] {
        if n > 0 {
            state
                .telemetry
                .counter(
                    RECEIVER_ITEMS_TOTAL,
                    &[("signal", signal), ("outcome", outcome)],
                )
                .add(n);
        }
    }
}

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
            record_items(state, "metrics", report.accepted, report.rejected);
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
        record_items(state, "logs", 0, dropped);
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
            record_items(state, "logs", report.accepted, report.rejected);
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
            record_items(state, "segments", report.accepted, report.rejected);
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
