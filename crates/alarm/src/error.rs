//! The alarm crate's errors.
use std::path::PathBuf;

/// What went wrong loading alarm settings or running alarms.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The settings file could not be read.
    #[error("{}:1: cannot read alarm settings", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A problem in the settings file, at a line.
    #[error("{}:{line}: {message}", path.display())]
    Settings {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// Storage refused to store or read alarms.
    #[error("alarm storage failed")]
    Storage(#[from] skylark_storage::Error),
}

/// The crate's result type.
pub type Result<T> = std::result::Result<T, Error>;
