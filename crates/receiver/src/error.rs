use skylark_core::{ErrorCode, IngestError};

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a request was refused.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `Content-Type` is missing or names an encoding OTLP/HTTP does not define.
    #[error("unsupported content type {0:?}: expected application/x-protobuf or application/json")]
    UnsupportedContentType(String),
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
    /// The blocking task decoding a large body panicked or was cancelled.
    #[error("decoding task failed: {0}")]
    DecodeTask(#[source] tokio::task::JoinError),
    /// The sink refused the decoded data.
    #[error("ingestion refused: {0}")]
    Ingest(#[source] IngestError),
}

impl Error {
    /// The category that decides the HTTP status and the gRPC code.
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::UnsupportedContentType(_) | Error::UnsupportedContentEncoding(_) => {
                ErrorCode::UnsupportedMediaType
            }
            Error::BodyTooLarge { .. } => ErrorCode::PayloadTooLarge,
            Error::ReadBody(_) | Error::Gzip(_) | Error::Protobuf(_) | Error::Json(_) => {
                ErrorCode::BadRequest
            }
            Error::DecodeTask(_) => ErrorCode::Internal,
            Error::Ingest(e) => e.code(),
        }
    }
}

impl From<IngestError> for Error {
    fn from(e: IngestError) -> Self {
        Error::Ingest(e)
    }
}
