/// A category of failure that every crate maps its errors onto, so that HTTP status codes and
/// gRPC codes are decided in one place.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// The request body could not be decoded or is semantically invalid (HTTP 400).
    BadRequest,
    /// The request body is larger than the configured limit (HTTP 413).
    PayloadTooLarge,
    /// The content type is not one we decode (HTTP 415).
    UnsupportedMediaType,
    /// The client is not allowed to send this (an unknown RUM client token; HTTP 403).
    Forbidden,
    /// The server is overloaded; the client should retry later (HTTP 503).
    Unavailable,
    /// Something failed on our side (HTTP 500).
    Internal,
}

impl ErrorCode {
    /// The HTTP status code for this category.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorCode::BadRequest => 400,
            ErrorCode::PayloadTooLarge => 413,
            ErrorCode::UnsupportedMediaType => 415,
            ErrorCode::Forbidden => 403,
            ErrorCode::Unavailable => 503,
            ErrorCode::Internal => 500,
        }
    }

    /// The gRPC status code number (as in `google.rpc.Code`) for this category.
    pub fn grpc_code(self) -> i32 {
        match self {
            ErrorCode::BadRequest => 3,           // INVALID_ARGUMENT
            ErrorCode::PayloadTooLarge => 8,      // RESOURCE_EXHAUSTED
            ErrorCode::UnsupportedMediaType => 3, // INVALID_ARGUMENT
            ErrorCode::Forbidden => 7,            // PERMISSION_DENIED
            ErrorCode::Unavailable => 14,         // UNAVAILABLE
            ErrorCode::Internal => 13,            // INTERNAL
        }
    }

    /// A short, stable, lowercase name used as a label value in self-metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::UnsupportedMediaType => "unsupported_media_type",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::Internal => "internal",
        }
    }
}
