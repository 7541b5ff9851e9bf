use skylark_core::ErrorCode;
use std::path::PathBuf;

/// A write-ahead-log or durable-sink failure.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading, writing, syncing or deleting a log file failed.
    #[error("write-ahead log file operation failed")]
    Io(#[from] std::io::Error),
    /// The log folder could not be opened (created, listed or scanned).
    #[error("cannot open the write-ahead log in {}", path.display())]
    Open {
        /// The log folder.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// An entry's sequence number is not after the last one in the log.
    #[error("write-ahead log entry {seq} is not after {last}")]
    OutOfOrder {
        /// The refused entry's sequence number.
        seq: u64,
        /// The last sequence number in the log.
        last: u64,
    },
    /// An entry is larger than a record can hold.
    #[error("write-ahead log entry of {0} bytes is too large")]
    TooLarge(usize),
    /// A log entry could not be encoded.
    #[error("cannot encode the write-ahead log entry")]
    Encode(#[source] postcard::Error),
    /// A logged entry names a format this version does not know (a newer version wrote it).
    #[error("write-ahead log entry format {0} is unknown")]
    UnknownFormat(u8),
    /// A logged entry is not valid postcard of an entry.
    #[error("write-ahead log entry cannot be decoded")]
    Decode(#[source] postcard::Error),
    /// Bytes follow a logged entry.
    #[error("{0} bytes follow the write-ahead log entry")]
    TrailingBytes(usize),
    /// An entry an earlier version wrote (bincode, untagged) cannot be decoded.
    #[error("write-ahead log entry of an earlier version cannot be decoded")]
    DecodeLegacy(#[source] bincode::Error),
    /// A logged metrics batch in the compact encoding cannot be decoded.
    #[error("logged metrics batch cannot be decoded")]
    BatchCodec(#[from] crate::batch_codec::BatchCodecError),
    /// A logged metrics body cannot be decoded again.
    #[error("logged metrics body cannot be decoded")]
    DecodeBody(#[source] crate::durable::BodyError),
    /// Storage failed (reading the applied marks, flushing); shown as storage's own error.
    #[error(transparent)]
    Storage(#[from] skylark_storage::Error),
    /// Replaying an entry into storage failed; the server must not start.
    #[error("replaying write-ahead log entry {seq} into storage failed")]
    Replay {
        /// The entry's sequence number.
        seq: u64,
        /// What storage said.
        #[source]
        source: skylark_storage::Error,
    },
    /// The log writer thread could not be started.
    #[error("cannot start the write-ahead log thread")]
    Thread(#[source] std::io::Error),
    /// The log writer thread panicked.
    #[error("the write-ahead log thread panicked")]
    WriterPanicked,
}

impl Error {
    /// The failure category: always a server-side failure.
    pub fn code(&self) -> ErrorCode {
        ErrorCode::Internal
    }
}

/// Write-ahead-log results.
pub type Result<T> = std::result::Result<T, Error>;

/// `error` and its sources, joined by ": " (for log lines and answers, which show one string).
pub(crate) fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
