use skylark_core::{ErrorCode, TimeError};

/// A query failure that becomes a GraphQL error (MQE problems are reported in results instead).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The duration covers more than 500 buckets (or ends before it starts); OAP's message.
    #[error("Duration data error, the range between the start time and the end time can't exceed 500 minutes")]
    DurationTooLong,
    /// A duration string does not match its step's format.
    #[error("invalid duration: {0}")]
    Time(#[from] TimeError),
    /// A layer name OAP does not define.
    #[error("unknown layer {0}")]
    UnknownLayer(String),
    /// The `regex` argument of `listMetrics` is not a valid pattern.
    #[error("invalid regex")]
    Regex(#[source] regex::Error),
    /// `paging.pageSize` is over the configured maximum.
    #[error("paging.pageSize {size} is over the limit of {max} (SW_QUERY_MAX_PAGE_SIZE)")]
    PageTooLarge {
        /// The page size asked for.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// The storage failed.
    #[error("storage failed")]
    Storage(#[from] skylark_storage::Error),
}

impl Error {
    /// The category used for status codes.
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::Storage(_) => ErrorCode::Internal,
            _ => ErrorCode::BadRequest,
        }
    }
}

/// Query results.
pub type Result<T> = std::result::Result<T, Error>;
