//! The one place both transports admit requests and hand decoded data to the sink, so HTTP and
//! gRPC cannot drift.
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsPartialSuccess, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsPartialSuccess, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceResponse,
};
use skylark_core::segment::Segment;
use skylark_core::telemetry::{
    Gauge, RECEIVER_BUSY_REJECTIONS_TOTAL, RECEIVER_INFLIGHT_REQUESTS, RECEIVER_ITEMS_TOTAL,
    RECEIVER_REJECTED_ITEMS_TOTAL, RECEIVER_REQUESTS_TOTAL,
};
use skylark_core::{IngestError, IngestReport, MetricBatch, RejectReason, Rejections};
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
fn record_items(state: &ReceiverState, signal: &'static str, accepted: u64, rejected: u64) {
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

/// Counts a request's items as accepted and rejected, and the rejected ones by reason.
pub(crate) fn record_report(state: &ReceiverState, signal: &'static str, report: &IngestReport) {
    record_items(state, signal, report.accepted, report.rejected);
    record_reasons(state, signal, &report.reasons);
}

/// Counts refused items per reason (they are in [`record_items`]' `rejected` too).
pub(crate) fn record_reasons(state: &ReceiverState, signal: &'static str, reasons: &Rejections) {
    for (reason, n) in reasons.iter() {
        state
            .telemetry
            .counter(
                RECEIVER_REJECTED_ITEMS_TOTAL,
                &[("signal", signal), ("reason", reason.as_str())],
            )
            .add(n);
    }
}

/// Counts `n` items refused for `reason` before they reached the sink.
pub(crate) fn record_rejected(
    state: &ReceiverState,
    signal: &'static str,
    reason: RejectReason,
    n: u64,
) {
    let mut report = IngestReport::default();
    report.reject(reason, n);
    record_report(state, signal, &report);
}

/// The OTLP `partial_success` of a report: how many items were refused and why, or `None`
/// (the spec's "fully accepted") when none were.
fn partial_success(report: &IngestReport) -> Option<(i64, String)> {
    (report.rejected > 0).then(|| {
        (
            i64::try_from(report.rejected).unwrap_or(i64::MAX),
            format!("rejected: {}", report.rejection_summary()),
        )
    })
}

/// The OTLP metrics answer for a report (HTTP and gRPC alike). Rejected counts are samples: a
/// histogram point is `_count`, `_sum` and one sample per bucket.
pub(crate) fn metrics_response(report: &IngestReport) -> ExportMetricsServiceResponse {
    ExportMetricsServiceResponse {
        partial_success: partial_success(report).map(|(rejected, error_message)| {
            ExportMetricsPartialSuccess {
                rejected_data_points: rejected,
                error_message,
            }
        }),
    }
}

/// Converts an OTLP trace request, counts the spans it refused, hands its segments to the sink
/// and builds the answer (HTTP and gRPC alike): refused spans and refused segments' spans are
/// reported as a partial success naming the first reason.
pub(crate) async fn ingest_otlp_traces(
    state: &ReceiverState,
    conversion: crate::otlp::TraceConversion,
    protocol: &'static str,
) -> Result<ExportTraceServiceResponse> {
    if conversion.rejected_spans > 0 {
        record_rejected(
            state,
            "traces",
            RejectReason::Malformed,
            conversion.rejected_spans,
        );
    }
    let report = ingest_segments(state, conversion.segments, protocol).await?;
    let mut rejected = i64::try_from(conversion.rejected_spans).unwrap_or(i64::MAX);
    let mut messages: Vec<String> = conversion.first_problem.into_iter().collect();
    if let Some((segments, message)) = partial_success(&report) {
        rejected = rejected.saturating_add(segments);
        messages.push(format!("segments {message}"));
    }
    Ok(ExportTraceServiceResponse {
        partial_success: (rejected > 0).then(|| ExportTracePartialSuccess {
            rejected_spans: rejected,
            error_message: messages.join("; "),
        }),
    })
}

/// The OTLP logs answer for a report (HTTP and gRPC alike).
pub(crate) fn logs_response(report: &IngestReport) -> ExportLogsServiceResponse {
    ExportLogsServiceResponse {
        partial_success: partial_success(report).map(|(rejected, error_message)| {
            ExportLogsPartialSuccess {
                rejected_log_records: rejected,
                error_message,
            }
        }),
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
            record_report(state, "metrics", &report);
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
    // What the receiver drops has no service name or a repeated attribute key.
    let dropped = batch.rejected;
    if batch.logs.is_empty() {
        let mut report = IngestReport::default();
        report.reject(RejectReason::Malformed, dropped);
        record_report(state, "logs", &report);
        tracing::debug!(
            protocol,
            signal = "logs",
            dropped,
            "no otlp log records to ingest"
        );
        return Ok(report);
    }
    match state.sink.ingest_logs(batch.logs).await {
        Ok(mut report) => {
            report.reject(RejectReason::Malformed, dropped);
            record_report(state, "logs", &report);
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
            record_report(state, "segments", &report);
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
