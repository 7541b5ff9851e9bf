use crate::log::LogData;
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

/// What ingestion did with a request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IngestReport {
    /// Items (samples, log records, segments) accepted.
    pub accepted: u64,
    /// Items dropped with a reason (expired timestamps, skipped points, ...).
    pub rejected: u64,
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
}
