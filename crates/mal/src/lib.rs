//! MAL (Meter Analysis Language): rule files, a hand-written parser for MAL expressions and
//! the Groovy-like closures inside them, a compiler that derives each metric's storage
//! function, and an evaluator over sample families with OAP's semantics.
#![warn(missing_docs, unreachable_pub)]

mod ast;
mod check;
mod context;
mod error;
mod eval;
mod lexer;
mod parser;
mod rules;
mod span;
mod token;

pub use ast::{BinOp, Closure, Expr, ExprKind, Stmt, UnaryOp};
pub use context::{EvalContext, RuleOutput, TimeUnit};
pub use error::{Diagnostic, Error, ParseError, Result};
pub use parser::{MAX_HEIGHT, MAX_NESTING, MAX_TOKENS};
pub use rules::{check_file, RuleSet};
pub use span::{Part, Span};

/// Parses one MAL expression (no rule-file context); errors carry line and column in `text`.
pub fn parse_expression(text: &str) -> std::result::Result<Expr, ParseError> {
    parser::parse(text, Part::Exp).map_err(|mut e| {
        let (line, column) = span::line_col(text, e.span.start);
        e.line = line;
        e.column = column;
        e
    })
}
