use std::fmt;
use std::path::PathBuf;

use crate::span::Span;

/// A problem in a LAL script, located in the script's own text.
///
/// Codes are stable: `LAL1xx` lexing, `LAL2xx` parsing, `LAL3xx` checking, `LAL4xx` rule files.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}:{}: {message} ({code})", span.line, span.col)]
pub struct ParseError {
    /// Stable error code.
    pub code: &'static str,
    /// What is wrong, lowercase.
    pub message: String,
    /// Where.
    pub span: Span,
}

impl ParseError {
    pub(crate) fn new(code: &'static str, span: Span, message: impl Into<String>) -> Self {
        ParseError {
            code,
            message: message.into(),
            span,
        }
    }
}

/// A problem in a rule file, located in the file: displays as `file:line:col: problem`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file.
    pub file: PathBuf,
    /// 1-based line in the file.
    pub line: u32,
    /// 1-based column in the file.
    pub col: u32,
    /// Stable error code (see [`ParseError`]).
    pub code: &'static str,
    /// What is wrong, lowercase.
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {} ({})",
            self.file.display(),
            self.line,
            self.col,
            self.message,
            self.code
        )
    }
}

impl std::error::Error for Diagnostic {}

/// Why LAL rules could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A rule file could not be read.
    #[error("cannot read rule file {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The IO failure.
        #[source]
        source: std::io::Error,
    },
    /// A rule file is invalid (YAML shape, DSL syntax or semantics).
    #[error(transparent)]
    Invalid(#[from] Diagnostic),
}

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
