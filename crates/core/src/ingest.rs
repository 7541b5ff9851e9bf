use crate::log::LogData;
use crate::rum::RumBatch;
use crate::segment::Segment;
use crate::{ErrorCode, SampleFamilies};

/// Decoded OTLP metrics of one request: one [`SampleFamilies`] per `ResourceMetrics`, processed
/// independently as OAP does. Serializable so a write-ahead log can keep it.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MetricBatch {
    /// One entry per `ResourceMetrics`.
    pub resources: Vec<SampleFamilies>,
    /// Data points the receiver skipped (no data type, NaN, no recorded value), for counting.
    pub skipped_points: u64,
    /// Why the receiver skipped them: `skipped_points` broken down by reason. Only the receiver
    /// counts these; a write-ahead log need not keep them (replay reports nothing).
    #[serde(skip)]
    pub skip_reasons: Rejections,
    /// The body the batch was decoded from, when the receiver kept it (HTTP does): a
    /// write-ahead log can keep these bytes instead of encoding the batch.
    #[serde(skip)]
    pub source: Option<EncodedRequest>,
}

/// A request body as received (decompressed), with the `Content-Type` that says how to decode
/// it again.
#[derive(Debug, Clone, PartialEq)]
pub struct EncodedRequest {
    /// `application/x-protobuf` or `application/json`.
    pub content_type: &'static str,
    /// The body.
    pub body: bytes::Bytes,
}

/// Why an item (sample, data point, log record, segment) was refused. A bounded set, so it can
/// label a self-metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RejectReason {
    /// The time is more than [`MAX_FUTURE_MS`] ahead of the server's clock.
    FutureTimestamp,
    /// The time is at or before the epoch, or older than the retention.
    ExpiredTimestamp,
    /// The value is NaN or ±Infinity.
    NonFiniteValue,
    /// A duration (a `*.duration` metric) is negative.
    NegativeDuration,
    /// A value or count is beyond what a stored long can hold (|v| ≥ 2^63).
    ValueOverflow,
    /// The point says it holds no value (OTLP `FLAG_NO_RECORDED_VALUE`).
    NoRecordedValue,
    /// The item is malformed: no data type, too few buckets, no service name, a repeated
    /// attribute key, a segment without spans or with invalid fields, ...
    Malformed,
}

impl RejectReason {
    /// Every reason, in label order.
    pub const ALL: [RejectReason; 7] = [
        RejectReason::FutureTimestamp,
        RejectReason::ExpiredTimestamp,
        RejectReason::NonFiniteValue,
        RejectReason::NegativeDuration,
        RejectReason::ValueOverflow,
        RejectReason::NoRecordedValue,
        RejectReason::Malformed,
    ];

    /// The `reason` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::FutureTimestamp => "future_timestamp",
            RejectReason::ExpiredTimestamp => "expired_timestamp",
            RejectReason::NonFiniteValue => "non_finite_value",
            RejectReason::NegativeDuration => "negative_duration",
            RejectReason::ValueOverflow => "value_overflow",
            RejectReason::NoRecordedValue => "no_recorded_value",
            RejectReason::Malformed => "malformed",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Records further ahead of the server's clock than this are refused, for every signal: a device
/// clock years ahead would otherwise create rows that outlive every TTL and that no query window
/// ever finds.
pub const MAX_FUTURE_MS: i64 = 24 * 3600 * 1000;

/// Whether `time_ms` is more than [`MAX_FUTURE_MS`] ahead of `now_ms`.
pub fn is_too_far_ahead(time_ms: i64, now_ms: i64) -> bool {
    time_ms > now_ms.saturating_add(MAX_FUTURE_MS)
}

/// Refused items counted per [`RejectReason`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rejections([u64; RejectReason::ALL.len()]);

impl Rejections {
    /// Counts `n` more items refused for `reason`.
    pub fn add(&mut self, reason: RejectReason, n: u64) {
        let cell = &mut self.0[reason.index()];
        *cell = cell.saturating_add(n);
    }

    /// Items refused for `reason`.
    pub fn get(&self, reason: RejectReason) -> u64 {
        self.0[reason.index()]
    }

    /// Items refused for any reason.
    pub fn total(&self) -> u64 {
        self.0.iter().fold(0, |t, n| t.saturating_add(*n))
    }

    /// Adds every count of `other`.
    pub fn merge(&mut self, other: &Rejections) {
        for reason in RejectReason::ALL {
            self.add(reason, other.get(reason));
        }
    }

    /// The reasons with a non-zero count.
    pub fn iter(&self) -> impl Iterator<Item = (RejectReason, u64)> + '_ {
        RejectReason::ALL
            .into_iter()
            .map(|r| (r, self.get(r)))
            .filter(|(_, n)| *n > 0)
    }
}

/// What ingestion did with a request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IngestReport {
    /// Items (samples, log records, segments) accepted.
    pub accepted: u64,
    /// Items dropped with a reason (expired timestamps, skipped points, ...).
    pub rejected: u64,
    /// `rejected` broken down by reason (a receiver reports it in `partial_success` and counts
    /// it per reason).
    pub reasons: Rejections,
}

impl IngestReport {
    /// Counts `n` items refused for `reason` (in `rejected` and `reasons` alike).
    pub fn reject(&mut self, reason: RejectReason, n: u64) {
        self.rejected = self.rejected.saturating_add(n);
        self.reasons.add(reason, n);
    }

    /// Adds the refusals of `other` (in `rejected` and `reasons` alike).
    pub fn reject_all(&mut self, other: &Rejections) {
        self.rejected = self.rejected.saturating_add(other.total());
        self.reasons.merge(other);
    }

    /// A short, bounded description of why items were refused (`"3 future_timestamp, 1
    /// malformed"`), empty when none were.
    pub fn rejection_summary(&self) -> String {
        let mut parts: Vec<String> = self
            .reasons
            .iter()
            .map(|(r, n)| format!("{n} {}", r.as_str()))
            .collect();
        let other = self.rejected.saturating_sub(self.reasons.total());
        if other > 0 {
            parts.push(format!("{other} other"));
        }
        parts.join(", ")
    }
}

/// Why ingestion refused a request.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The server cannot take more now; the client should retry.
    #[error("server is busy: {0}")]
    Busy(String),
    /// Processing failed.
    #[error("ingestion failed: {0}")]
    Internal(String),
}

impl IngestError {
    /// The category used for status codes.
    pub fn code(&self) -> ErrorCode {
        match self {
            IngestError::Busy(_) => ErrorCode::Unavailable,
            IngestError::Internal(_) => ErrorCode::Internal,
        }
    }
}

/// Where receivers hand decoded data. The receiver only decodes; everything after (write-ahead
/// log, rules, aggregation, storage) sits behind this trait, so the receiver never depends on
/// storage.
#[async_trait::async_trait]
pub trait IngestSink: Send + Sync + 'static {
    /// Takes the metrics of one request. Returning `Ok` is the acknowledgement.
    async fn ingest_metrics(&self, batch: MetricBatch) -> Result<IngestReport, IngestError>;

    /// Takes the logs of one request (already converted, in arrival order). Returning `Ok` is the
    /// acknowledgement. Sinks that do not handle logs keep the default, which refuses them.
    async fn ingest_logs(&self, logs: Vec<LogData>) -> Result<IngestReport, IngestError> {
        let _ = logs;
        Err(IngestError::Internal(
            "log ingestion is not supported".to_owned(),
        ))
    }

    /// Takes the trace segments of one request (already validated, in arrival order). Returning
    /// `Ok` is the acknowledgement. Sinks that do not handle segments keep the default, which
    /// refuses them.
    async fn ingest_segments(&self, segments: Vec<Segment>) -> Result<IngestReport, IngestError> {
        let _ = segments;
        Err(IngestError::Internal(
            "segment ingestion is not supported".to_owned(),
        ))
    }

    /// Takes the RUM events of one intake request (decoded, in arrival order). Returning `Ok` is
    /// the acknowledgement. Sinks that do not handle RUM keep the default, which refuses them.
    async fn ingest_rum(&self, batch: RumBatch) -> Result<IngestReport, IngestError> {
        let _ = batch;
        Err(IngestError::Internal(
            "RUM ingestion is not supported".to_owned(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn far_future_rule_is_a_day_and_never_overflows() {
        let now = 1_700_000_000_000;
        assert!(!is_too_far_ahead(now + MAX_FUTURE_MS, now));
        assert!(is_too_far_ahead(now + MAX_FUTURE_MS + 1, now));
        assert!(is_too_far_ahead(i64::MAX, now));
        assert!(!is_too_far_ahead(i64::MAX, i64::MAX));
    }

    #[test]
    fn report_counts_rejections_by_reason() {
        let mut report = IngestReport::default();
        report.reject(RejectReason::FutureTimestamp, 2);
        let mut decoded = Rejections::default();
        decoded.add(RejectReason::Malformed, 1);
        decoded.add(RejectReason::FutureTimestamp, 1);
        report.reject_all(&decoded);
        assert_eq!(report.rejected, 4);
        assert_eq!(report.reasons.get(RejectReason::FutureTimestamp), 3);
        assert_eq!(
            report.rejection_summary(),
            "3 future_timestamp, 1 malformed"
        );
        // Rejections counted without a reason still show up.
        report.rejected += 1;
        assert_eq!(
            report.rejection_summary(),
            "3 future_timestamp, 1 malformed, 1 other"
        );
    }
}
