//! Syntax tree of MAL expressions and the Groovy-like closures inside them.
use crate::span::Span;

/// A binary operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinOp {
    /// `+`
    Add,
    /// `-`
    Sub,
    /// `*`
    Mul,
    /// `/`
    Div,
    /// `%`
    Mod,
    /// `==`
    Eq,
    /// `!=`
    NotEq,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `&&`
    And,
    /// `||`
    Or,
    /// `in`
    In,
    /// `=~` (regex find)
    RegexFind,
    /// `==~` (regex full match)
    RegexMatch,
}

/// A unary operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnaryOp {
    /// `-x`
    Neg,
    /// `+x`
    Plus,
    /// `!x`
    Not,
}

/// A closure literal `{ a, b -> statements }`.
#[derive(Debug, Clone, PartialEq)]
pub struct Closure {
    /// Parameter names (empty: Groovy's implicit `it`).
    pub params: Vec<String>,
    /// The body.
    pub body: Vec<Stmt>,
    /// Where it is written.
    pub span: Span,
}

/// An expression node with its place.
#[derive(Debug, Clone, PartialEq)]
pub struct Expr {
    /// What it is.
    pub kind: ExprKind,
    /// Where it is written.
    pub span: Span,
}

/// The kinds of expression.
#[derive(Debug, Clone, PartialEq)]
pub enum ExprKind {
    /// A number; `true` when written as an integer.
    Number(f64, bool),
    /// A string literal.
    Str(String),
    /// `true` / `false`.
    Bool(bool),
    /// `null`.
    Null,
    /// A name: a sample family at MAL level, a variable inside closures, or a class (`Layer`).
    Ident(String),
    /// `[a, b]`.
    List(Vec<Expr>),
    /// `['k': v]` / `[:]`.
    Map(Vec<(Expr, Expr)>),
    /// `{ tags -> ... }`.
    Closure(Box<Closure>),
    /// `target.name` / `target?.name`.
    Property {
        /// The object.
        target: Box<Expr>,
        /// The property.
        name: String,
        /// `?.`
        safe: bool,
    },
    /// `target[index]`.
    Index {
        /// The object.
        target: Box<Expr>,
        /// The key.
        index: Box<Expr>,
    },
    /// `name(args)` or `target.name(args)`.
    Call {
        /// The receiver; `None` for a bare function call.
        target: Option<Box<Expr>>,
        /// Function or method name (`ns::name` for extension calls).
        name: String,
        /// Where the name is written.
        name_span: Span,
        /// Arguments.
        args: Vec<Expr>,
        /// `?.`
        safe: bool,
    },
    /// `-x`, `!x`.
    Unary {
        /// The operator.
        op: UnaryOp,
        /// The operand.
        expr: Box<Expr>,
    },
    /// `a op b`.
    Binary {
        /// The operator.
        op: BinOp,
        /// Left operand.
        lhs: Box<Expr>,
        /// Right operand.
        rhs: Box<Expr>,
    },
    /// `c ? a : b`.
    Ternary {
        /// Condition.
        cond: Box<Expr>,
        /// Value when true.
        then: Box<Expr>,
        /// Value when false.
        otherwise: Box<Expr>,
    },
    /// `a ?: b`.
    Elvis {
        /// The value, if truthy.
        lhs: Box<Expr>,
        /// The fallback.
        rhs: Box<Expr>,
    },
    /// `x as Type`.
    Cast {
        /// The value.
        expr: Box<Expr>,
        /// The type name.
        ty: String,
    },
    /// `target = value` (closures only).
    Assign {
        /// A name, property or index expression.
        target: Box<Expr>,
        /// The new value.
        value: Box<Expr>,
    },
}

/// A statement inside a closure body.
#[derive(Debug, Clone, PartialEq)]
pub enum Stmt {
    /// An expression (its value is the closure's result when last).
    Expr(Expr),
    /// `def x = v` / `String x = v`.
    Var {
        /// Variable name.
        name: String,
        /// Initial value.
        value: Option<Expr>,
        /// Where it is written.
        span: Span,
    },
    /// `if (c) {..} else {..}`.
    If {
        /// Condition.
        cond: Expr,
        /// Statements when true.
        then: Vec<Stmt>,
        /// Statements when false.
        otherwise: Option<Vec<Stmt>>,
    },
    /// `return [v]`.
    Return(Option<Expr>, Span),
    /// `{ ... }` in statement position.
    Block(Vec<Stmt>),
}

impl Expr {
    pub(crate) fn new(kind: ExprKind, span: Span) -> Expr {
        Expr { kind, span }
    }
}
