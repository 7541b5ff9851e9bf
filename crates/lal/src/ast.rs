//! Syntax tree of a LAL script, before it is checked against the DSL's vocabulary.
use crate::span::{Span, Spanned};

/// A parsed expression with its span.
pub type SExpr = Spanned<Expr>;

/// A whole script: its top-level statements (a valid script has exactly one `filter { }`).
#[derive(Debug, Clone, PartialEq)]
pub struct Script {
    /// Top-level statements.
    pub stmts: Vec<Spanned<Stmt>>,
}

/// `{ … }`.
#[derive(Debug, Clone, PartialEq)]
pub struct Block {
    /// Statements in order.
    pub stmts: Vec<Spanned<Stmt>>,
    /// From `{` to `}`.
    pub span: Span,
}

/// A statement. LAL's vocabulary (`extractor`, `tag`, `rateLimit`, …) is not part of the
/// grammar: every statement is an `if`, a named section with a block, or a command.
#[derive(Debug, Clone, PartialEq)]
pub enum Stmt {
    /// `if (c) { } else if (c) { } else { }`.
    If(IfStmt),
    /// `name { … }` or `name(args) { … }`.
    Section {
        /// Section name.
        name: Spanned<String>,
        /// Arguments in parentheses, if any.
        args: Vec<Arg>,
        /// The block.
        body: Block,
    },
    /// `name arg, key: value, …` or `name(args)`.
    Command {
        /// Command name.
        name: Spanned<String>,
        /// Arguments.
        args: Vec<Arg>,
    },
}

/// An `if` chain.
#[derive(Debug, Clone, PartialEq)]
pub struct IfStmt {
    /// `(condition, block)` for `if` and every `else if`.
    pub branches: Vec<(SExpr, Block)>,
    /// The final `else` block.
    pub otherwise: Option<Block>,
}

/// An argument of a command or section.
#[derive(Debug, Clone, PartialEq)]
pub enum Arg {
    /// A plain value.
    Positional(SExpr),
    /// `key: value` (key written as a name or a string).
    Named {
        /// The key.
        key: Spanned<String>,
        /// The value.
        value: SExpr,
    },
}

/// An expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// `null`.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// Integer literal.
    Int(i64),
    /// Floating-point literal.
    Float(f64),
    /// String without interpolation.
    Str(String),
    /// String with `${…}` parts.
    Template(Vec<TemplatePart>),
    /// A bare name (`log`, `parsed`, …).
    Ident(String),
    /// `name(args)`: `tag("k")`, `sourceAttribute("k")`.
    Call {
        /// Function name.
        name: String,
        /// Arguments.
        args: Vec<SExpr>,
    },
    /// `target.name` / `target?.name`.
    Property {
        /// The value read from.
        target: Box<SExpr>,
        /// Property name.
        name: String,
        /// `?.`.
        safe: bool,
    },
    /// `target.name(args)` / `target?.name(args)`.
    Method {
        /// The receiver.
        target: Box<SExpr>,
        /// Method name.
        name: String,
        /// Arguments.
        args: Vec<SExpr>,
        /// `?.`.
        safe: bool,
    },
    /// `target[index]`.
    Index {
        /// The value indexed.
        target: Box<SExpr>,
        /// The key or position.
        index: Box<SExpr>,
    },
    /// `!x`, `-x`.
    Unary {
        /// Operator.
        op: UnaryOp,
        /// Operand.
        expr: Box<SExpr>,
    },
    /// `a op b`.
    Binary {
        /// Operator.
        op: BinaryOp,
        /// Left side.
        lhs: Box<SExpr>,
        /// Right side.
        rhs: Box<SExpr>,
    },
    /// `x as Type`.
    Cast {
        /// The value.
        expr: Box<SExpr>,
        /// Target type name as written (`Long`, `String`, …).
        ty: Spanned<String>,
    },
    /// `c ? a : b`.
    Ternary {
        /// Condition.
        cond: Box<SExpr>,
        /// Value when true.
        then: Box<SExpr>,
        /// Value when false.
        otherwise: Box<SExpr>,
    },
    /// `a ?: b`.
    Elvis {
        /// Value if truthy.
        lhs: Box<SExpr>,
        /// Fallback.
        rhs: Box<SExpr>,
    },
}

/// A piece of an interpolated string.
#[derive(Debug, Clone, PartialEq)]
pub enum TemplatePart {
    /// Literal text.
    Lit(String),
    /// `${expr}`.
    Expr(SExpr),
}

/// Prefix operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnaryOp {
    /// `!`.
    Not,
    /// `-`.
    Neg,
}

/// Infix operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinaryOp {
    /// `||`.
    Or,
    /// `&&`.
    And,
    /// `==`.
    Eq,
    /// `!=`.
    Ne,
    /// `<`.
    Lt,
    /// `<=`.
    Le,
    /// `>`.
    Gt,
    /// `>=`.
    Ge,
    /// `+`.
    Add,
    /// `-`.
    Sub,
    /// `*`.
    Mul,
    /// `/`.
    Div,
    /// `%`.
    Rem,
}
