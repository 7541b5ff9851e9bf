//! LAL (Log Analysis Language): OAP's rule language for logs.
//!
//! A rule file (`rules: [{name, layer, dsl, …}]`) holds scripts in a Groovy-like syntax
//! (`filter { text {…} json {} extractor {…} sink {…} }`). [`parse`] reads a script into its
//! syntax tree, [`compile`] checks it against LAL's vocabulary, and [`LalEngine`] runs the rules
//! on [`skylark_core::LogData`] with OAP's rule selection (`layer: auto`, then GENERAL), giving
//! log records, log-MAL samples and traffic.
#![warn(missing_docs, unreachable_pub)]

mod ast;
mod engine;
mod error;
mod eval;
mod lexer;
mod parser;
mod program;
mod span;
mod timefmt;
mod token;
mod value;

pub use ast::{Arg, BinaryOp, Block, Expr, IfStmt, SExpr, Script, Stmt, TemplatePart, UnaryOp};
pub use engine::{check_file, LalEngine, LalOutput};
pub use error::{Diagnostic, Error, ParseError, Result};
pub use parser::{parse, MAX_HEIGHT, MAX_NESTING};
pub use program::{compile, CompileOptions, Program};
pub use span::{Span, Spanned};
