use skylark_core::ErrorCode;

/// Why a source map or archive was refused.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The bytes are not a usable source map.
    #[error("not a usable source map: {0}")]
    InvalidMap(String),
    /// The map is over the configured size.
    #[error("source map of {bytes} bytes is over the {limit} byte limit")]
    MapTooLarge {
        /// Its size.
        bytes: usize,
        /// The limit.
        limit: usize,
    },
    /// The zip cannot be read.
    #[error("not a usable zip of source maps: {0}")]
    InvalidArchive(String),
    /// The zip holds too many entries or unpacks too large.
    #[error("zip of source maps is too large: {0}")]
    ArchiveTooLarge(String),
}

impl Error {
    /// The error's kind, mapped to HTTP and gRPC status once in `core`.
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::MapTooLarge { .. } | Error::ArchiveTooLarge(_) => ErrorCode::PayloadTooLarge,
            Error::InvalidMap(_) | Error::InvalidArchive(_) => ErrorCode::BadRequest,
        }
    }
}

/// This crate's result.
pub type Result<T> = std::result::Result<T, Error>;
