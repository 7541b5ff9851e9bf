//! MQE (Metrics Query Expression): lexer, parser, evaluator and value formatting.

mod ast;
mod eval;
mod format;
mod lexer;
mod model;
mod parser;

pub use ast::{
    Aggregation, AttributeFilter, BaselineKind, BinaryOp, Expr, Label, LabelAggregation,
    LogicalFunction, MathFunction, MetricRef, Order, TopN, Trend,
};
pub use eval::{execute, MqeContext, MqeLimits};
pub use format::format_value;
pub use model::{ExpressionOutcome, MqeEntity, MqeSeries, MqeValue, Owner, ResultType};
pub use parser::{parse, parse_expression, MAX_EXPRESSION_BYTES, MAX_NESTING, MAX_TERMS};

/// A syntax error, reported as ANTLR does: `line L:C message` (column 0-based).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}:{column} {message}")]
pub struct ParseError {
    /// 1-based line.
    pub line: usize,
    /// 0-based column (character offset in the line).
    pub column: usize,
    /// What went wrong.
    pub message: String,
}

impl ParseError {
    pub(crate) fn new(line: usize, column: usize, message: String) -> Self {
        ParseError {
            line,
            column,
            message,
        }
    }
}
