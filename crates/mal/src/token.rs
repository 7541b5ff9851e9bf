use crate::span::Span;

/// What a token is.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum TokenKind {
    Ident(String),
    /// A number literal and whether it was written without a fraction or exponent.
    Number(f64, bool),
    Str(String),
    LParen,
    RParen,
    LBracket,
    RBracket,
    LBrace,
    RBrace,
    Comma,
    Dot,
    SafeDot,
    Colon,
    DoubleColon,
    Semicolon,
    Arrow,
    Question,
    Elvis,
    Plus,
    Minus,
    Star,
    Slash,
    Percent,
    Bang,
    Eq,
    EqEq,
    NotEq,
    Lt,
    Le,
    Gt,
    Ge,
    AndAnd,
    OrOr,
    RegexFind,
    RegexMatch,
    Eof,
}

impl TokenKind {
    /// How the token reads in an error message.
    pub(crate) fn describe(&self) -> String {
        match self {
            TokenKind::Ident(s) => format!("'{s}'"),
            TokenKind::Number(n, _) => format!("number {n}"),
            TokenKind::Str(s) => format!("string '{s}'"),
            TokenKind::Eof => "end of expression".to_string(),
            other => format!("'{}'", other.symbol()),
        }
    }

    fn symbol(&self) -> &'static str {
        match self {
            TokenKind::LParen => "(",
            TokenKind::RParen => ")",
            TokenKind::LBracket => "[",
            TokenKind::RBracket => "]",
            TokenKind::LBrace => "{",
            TokenKind::RBrace => "}",
            TokenKind::Comma => ",",
            TokenKind::Dot => ".",
            TokenKind::SafeDot => "?.",
            TokenKind::Colon => ":",
            TokenKind::DoubleColon => "::",
            TokenKind::Semicolon => ";",
            TokenKind::Arrow => "->",
            TokenKind::Question => "?",
            TokenKind::Elvis => "?:",
            TokenKind::Plus => "+",
            TokenKind::Minus => "-",
            TokenKind::Star => "*",
            TokenKind::Slash => "/",
            TokenKind::Percent => "%",
            TokenKind::Bang => "!",
            TokenKind::Eq => "=",
            TokenKind::EqEq => "==",
            TokenKind::NotEq => "!=",
            TokenKind::Lt => "<",
            TokenKind::Le => "<=",
            TokenKind::Gt => ">",
            TokenKind::Ge => ">=",
            TokenKind::AndAnd => "&&",
            TokenKind::OrOr => "||",
            TokenKind::RegexFind => "=~",
            TokenKind::RegexMatch => "==~",
            _ => "?",
        }
    }
}

/// A token with its place and whether a line break preceded it (Groovy ends statements there).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Token {
    pub(crate) kind: TokenKind,
    pub(crate) span: Span,
    pub(crate) newline_before: bool,
}
