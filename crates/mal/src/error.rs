use crate::span::Span;
use std::fmt;

/// A syntax error in one expression, with its place in that expression's text.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{line}:{column}: {message}")]
pub struct ParseError {
    /// What is wrong.
    pub message: String,
    /// Where, as byte offsets.
    pub span: Span,
    /// 1-based line in the expression text (filled by [`crate::parse_expression`]).
    pub line: usize,
    /// 1-based column in the expression text.
    pub column: usize,
}

impl ParseError {
    pub(crate) fn new(message: impl Into<String>, span: Span) -> ParseError {
        ParseError {
            message: message.into(),
            span,
            line: 0,
            column: 0,
        }
    }
}

/// A problem in a rule file, located at `file:line:col`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file (as given).
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file, self.line, self.column, self.message
        )
    }
}

impl std::error::Error for Diagnostic {}

/// Why rules could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A rule file could not be read.
    #[error("cannot read rule file {path}")]
    Read {
        /// The file.
        path: String,
        /// The IO error.
        #[source]
        source: std::io::Error,
    },
    /// A rule file is invalid (syntax, unknown function, missing field, ...).
    #[error("{0}")]
    Invalid(Diagnostic),
}

/// Result of this crate's fallible operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An error while evaluating one rule on one batch; logged, never fatal.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub(crate) struct EvalError {
    pub(crate) message: String,
}

impl EvalError {
    pub(crate) fn new(message: impl Into<String>) -> EvalError {
        EvalError {
            message: message.into(),
        }
    }
}

/// A semantic error found when compiling an expression.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct CompileError {
    pub(crate) message: String,
    pub(crate) span: Span,
}

impl CompileError {
    pub(crate) fn new(message: impl Into<String>, span: Span) -> CompileError {
        CompileError {
            message: message.into(),
            span,
        }
    }
}
