use skylark_core::{ErrorCode, IngestError};

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a request was refused.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `Content-Type` is missing or names an encoding OTLP/HTTP does not define.
    #[error("unsupported content type {0:?}: expected application/x-protobuf or application/json")]
    UnsupportedContentType(String),
    /// A SkyWalking segment report whose `Content-Type` is not `application/json`.
    #[error("unsupported content type {0:?}: expected application/json")]
    UnsupportedSegmentContentType(String),
    /// `Content-Encoding` is neither gzip nor identity.
    #[error("unsupported content encoding {0:?}: expected gzip or identity")]
    UnsupportedContentEncoding(String),
    /// The body (or its gzip-decompressed form) is larger than the configured limit.
    #[error("request body exceeds the limit of {limit} bytes")]
    BodyTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// Reading the request body from the connection failed.
    #[error("failed to read the request body: {0}")]
    ReadBody(#[source] axum::Error),
    /// The body claims gzip but does not decompress.
    #[error("invalid gzip body: {0}")]
    Gzip(#[source] std::io::Error),
    /// The body is not a valid OTLP protobuf message.
    #[error("invalid OTLP protobuf: {0}")]
    Protobuf(#[source] prost::DecodeError),
    /// The body is not a valid OTLP/JSON message.
    #[error("invalid OTLP JSON: {0}")]
    Json(#[source] serde_json::Error),
    /// A segment report body is not JSON of the expected shape at all (nothing was ingested).
    #[error("invalid segment JSON, expected {expected}: {source}")]
    SegmentJson {
        /// What the path expects: an array of segments or one segment.
        expected: &'static str,
        /// The parser's reason, with line and column.
        #[source]
        source: serde_json::Error,
    },
    /// Some segments of a report were rejected; the others were ingested.
    #[error(
        "{count} of {total} segments rejected: {reasons}",
        count = .rejected.len(),
        reasons = rejection_list(.rejected)
    )]
    SegmentsRejected {
        /// Segments in the report.
        total: usize,
        /// The rejected ones, by position in the report.
        rejected: Vec<RejectedSegment>,
    },
    /// The blocking task decoding a large body panicked or was cancelled.
    #[error("decoding task failed: {0}")]
    DecodeTask(#[source] tokio::task::JoinError),
    /// The sink refused the decoded data.
    #[error("ingestion refused: {0}")]
    Ingest(#[source] IngestError),
    /// A RUM intake request was refused.
    #[error(transparent)]
    Rum(#[from] crate::rum::RumError),
}

impl Error {
    /// The category that decides the HTTP status and the gRPC code.
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::UnsupportedContentType(_)
            | Error::UnsupportedSegmentContentType(_)
            | Error::UnsupportedContentEncoding(_) => ErrorCode::UnsupportedMediaType,
            Error::BodyTooLarge { .. } => ErrorCode::PayloadTooLarge,
            Error::ReadBody(_)
            | Error::Gzip(_)
            | Error::Protobuf(_)
            | Error::Json(_)
            | Error::SegmentJson { .. }
            | Error::SegmentsRejected { .. } => ErrorCode::BadRequest,
            Error::DecodeTask(_) => ErrorCode::Internal,
            Error::Ingest(e) => e.code(),
            Error::Rum(e) => e.code(),
        }
    }
}

impl From<IngestError> for Error {
    fn from(e: IngestError) -> Self {
        Error::Ingest(e)
    }
}

/// Why one segment of a report was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum SegmentRejection {
    /// The element is not a valid `SegmentObject` in proto3 JSON.
    #[error("invalid segment: {0}")]
    Json(#[source] serde_json::Error),
    /// `traceId` is empty or missing.
    #[error("missing traceId")]
    MissingTraceId,
    /// `traceSegmentId` is empty or missing.
    #[error("missing traceSegmentId")]
    MissingSegmentId,
    /// A span's `endTime` is before its `startTime`.
    #[error("span {span_id} ends before it starts (startTime {start_ms}, endTime {end_ms})")]
    NegativeDuration {
        /// The span's id.
        span_id: i32,
        /// Its start, epoch ms.
        start_ms: i64,
        /// Its end, epoch ms.
        end_ms: i64,
    },
    /// More spans than `ReceiverConfig::max_spans_per_segment`.
    #[error("segment has {spans} spans, more than the limit of {limit}")]
    TooManySpans {
        /// Spans in the segment.
        spans: usize,
        /// The configured limit.
        limit: usize,
    },
    /// A span's `spanType` number is not Entry/Exit/Local (binary protobuf only; JSON names
    /// are checked by the JSON decoder).
    #[error("span {span_id} has unknown spanType {value}")]
    UnknownSpanType {
        /// The span's id.
        span_id: i32,
        /// The number received.
        value: i32,
    },
    /// A reference's `refType` number is not CrossProcess/CrossThread.
    #[error("span {span_id} has a reference with unknown refType {value}")]
    UnknownRefType {
        /// The span's id.
        span_id: i32,
        /// The number received.
        value: i32,
    },
}

/// A rejected segment and its position in the report (0-based: array index or stream order).
#[derive(Debug)]
pub struct RejectedSegment {
    /// Position in the report.
    pub index: usize,
    /// Why it was rejected.
    pub reason: SegmentRejection,
}

/// Reasons listed in an error message; beyond this many only the count is given, so a report of
/// thousands of bad segments does not produce a megabyte of text.
const LISTED_REJECTIONS: usize = 10;

fn rejection_list(rejected: &[RejectedSegment]) -> String {
    let mut reasons: Vec<String> = rejected
        .iter()
        .take(LISTED_REJECTIONS)
        .map(|r| format!("[{}] {}", r.index, r.reason))
        .collect();
    if rejected.len() > LISTED_REJECTIONS {
        reasons.push(format!("and {} more", rejected.len() - LISTED_REJECTIONS));
    }
    reasons.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejections_list_index_and_reason_and_stay_short() {
        let error = Error::SegmentsRejected {
            total: 3,
            rejected: vec![
                RejectedSegment {
                    index: 0,
                    reason: SegmentRejection::MissingTraceId,
                },
                RejectedSegment {
                    index: 2,
                    reason: SegmentRejection::TooManySpans { spans: 7, limit: 5 },
                },
            ],
        };
        assert_eq!(
            error.to_string(),
            "2 of 3 segments rejected: [0] missing traceId; \
             [2] segment has 7 spans, more than the limit of 5"
        );
        assert_eq!(error.code(), ErrorCode::BadRequest);

        let many = (0..25)
            .map(|index| RejectedSegment {
                index,
                reason: SegmentRejection::MissingSegmentId,
            })
            .collect();
        let text = Error::SegmentsRejected {
            total: 25,
            rejected: many,
        }
        .to_string();
        assert!(
            text.starts_with("25 of 25 segments rejected: [0] missing"),
            "{text}"
        );
        assert!(
            text.ends_with("[9] missing traceSegmentId; and 15 more"),
            "{text}"
        );
    }
}
