use skylark_core::ErrorCode;

/// A storage failure.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The embedded database failed.
    #[error("sled failed")]
    Sled(#[from] sled::Error),
    /// A stored row could not be decoded.
    #[error("stored row {key} is corrupt")]
    Corrupt {
        /// The row key.
        key: String,
        /// Why decoding failed.
        #[source]
        source: serde_json::Error,
    },
    /// A stored row in the binary row format could not be decoded.
    #[error("stored row {key} is corrupt")]
    CorruptRow {
        /// The row key.
        key: String,
        /// Why decoding failed.
        #[source]
        source: postcard::Error,
    },
    /// A row of the metric key dictionary could not be read.
    #[error("the metric dictionary row {key} is corrupt: {reason}")]
    CorruptName {
        /// The row key.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A record run file could not be read back: which file, and what is wrong with it.
    #[error("the record run {0}")]
    CorruptRun(String),
    /// Reading or writing a record run file failed.
    #[error("record run file {path}")]
    RunIo {
        /// The file or folder.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A row could not be encoded in the binary row format.
    #[error("row could not be encoded")]
    EncodeRow(#[source] postcard::Error),
    /// The data folder was written by a newer Skylark.
    #[error(
        "the data folder is in storage format {found}, newer than this Skylark reads \
         (format {supported}): run the Skylark that wrote it, or start from an empty folder"
    )]
    NewerFormat {
        /// The folder's format.
        found: u32,
        /// The newest format this build reads.
        supported: u32,
    },
    /// The data folder's format row is not a format number.
    #[error("the data folder's format row is corrupt")]
    CorruptFormat,
    /// A read waited this long for a persist's chunk to land and it did not.
    #[error("a metric row stayed between memory and storage for {0:?}: a persist is stuck")]
    PersistStuck(std::time::Duration),
    /// The backend does not implement this part of the contract.
    #[error("{0} are not supported by this storage")]
    Unsupported(&'static str),
    /// A stored write-ahead-log mark is not a sequence number.
    #[error("stored write-ahead-log mark {0} is corrupt")]
    CorruptMark(String),
    /// Another crate's backend (e.g. PostgreSQL) failed.
    #[error("storage backend failed: {context}")]
    Backend {
        /// What was being done.
        context: String,
        /// The backend's own error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A row could not be encoded.
    #[error("row could not be encoded")]
    Encode(#[source] serde_json::Error),
    /// The clock gave a time that is not a calendar time here.
    #[error("the clock's time {0} ms is not a valid time")]
    InvalidClock(i64),
}

impl Error {
    /// The category used for status codes.
    pub fn code(&self) -> ErrorCode {
        ErrorCode::Internal
    }
}

/// Storage results.
pub type Result<T> = std::result::Result<T, Error>;
