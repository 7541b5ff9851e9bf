//! Hand-written lexer for the Groovy-like LAL syntax.
//!
//! Strings: `'single'` (no interpolation), `"double"` (with `${expr}` / `$name.path`),
//! `/slashy/` and `$/dollar slashy/$` (regular expressions, backslashes kept as written).
use crate::error::ParseError;
use crate::span::Span;
use crate::token::{StrPart, Tok, Token};

pub(crate) fn lex(src: &str) -> Result<Vec<Token>, ParseError> {
    let mut lexer = Lexer {
        src,
        pos: 0,
        line: 1,
        col: 1,
        interpolations: 0,
    };
    lexer.tokens(false)
}

/// Deepest nesting of `${…}` interpolations (a string inside an interpolation inside a string…);
/// each level is a recursion of the lexer.
const MAX_INTERPOLATION_NESTING: usize = 16;

struct Lexer<'a> {
    src: &'a str,
    pos: usize,
    line: u32,
    col: u32,
    /// Open `${` interpolations.
    interpolations: usize,
}

impl Lexer<'_> {
    fn peek(&self) -> Option<char> {
        self.src[self.pos..].chars().next()
    }

    fn peek_at(&self, n: usize) -> Option<char> {
        self.src[self.pos..].chars().nth(n)
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        if c == '\n' {
            self.line += 1;
            self.col = 1;
        } else {
            self.col += 1;
        }
        Some(c)
    }

    fn here(&self) -> Span {
        Span {
            start: self.pos,
            end: self.pos,
            line: self.line,
            col: self.col,
        }
    }

    fn finish(&self, start: Span) -> Span {
        Span {
            end: self.pos,
            ..start
        }
    }

    /// Skips blanks and comments; reports whether a line break was crossed.
    fn skip_trivia(&mut self) -> Result<bool, ParseError> {
        let mut newline = false;
        loop {
            match self.peek() {
                Some('\n') => {
                    newline = true;
                    self.bump();
                }
                Some(c) if c.is_whitespace() => {
                    self.bump();
                }
                Some('/') if self.peek_at(1) == Some('/') => {
                    while let Some(c) = self.peek() {
                        if c == '\n' {
                            break;
                        }
                        self.bump();
                    }
                }
                Some('/') if self.peek_at(1) == Some('*') => {
                    let start = self.here();
                    self.bump();
                    self.bump();
                    loop {
                        match self.peek() {
                            None => {
                                return Err(ParseError::new(
                                    "LAL101",
                                    start,
                                    "unterminated block comment",
                                ))
                            }
                            Some('*') if self.peek_at(1) == Some('/') => {
                                self.bump();
                                self.bump();
                                break;
                            }
                            Some('\n') => {
                                newline = true;
                                self.bump();
                            }
                            Some(_) => {
                                self.bump();
                            }
                        }
                    }
                }
                _ => return Ok(newline),
            }
        }
    }

    /// Lexes until end of input, or (inside `${…}`) until the unmatched `}` which is consumed.
    fn tokens(&mut self, in_interpolation: bool) -> Result<Vec<Token>, ParseError> {
        let mut out: Vec<Token> = Vec::new();
        let mut depth = 0usize;
        loop {
            let before = self.pos;
            let newline_before = self.skip_trivia()?;
            let had_space = self.pos > before;
            let start = self.here();
            let Some(c) = self.peek() else {
                if in_interpolation {
                    return Err(ParseError::new(
                        "LAL102",
                        start,
                        "unterminated `${` interpolation",
                    ));
                }
                out.push(Token {
                    tok: Tok::Eof,
                    span: start,
                    newline_before,
                });
                return Ok(out);
            };
            if in_interpolation && c == '}' && depth == 0 {
                self.bump();
                out.push(Token {
                    tok: Tok::Eof,
                    span: self.finish(start),
                    newline_before,
                });
                return Ok(out);
            }
            let tok = match c {
                '{' => {
                    depth += 1;
                    self.bump();
                    Tok::LBrace
                }
                '}' => {
                    depth = depth.saturating_sub(1);
                    self.bump();
                    Tok::RBrace
                }
                '(' => self.single(Tok::LParen),
                ')' => self.single(Tok::RParen),
                '[' => self.single(Tok::LBracket),
                ']' => self.single(Tok::RBracket),
                ',' => self.single(Tok::Comma),
                ':' => self.single(Tok::Colon),
                ';' => self.single(Tok::Semi),
                '.' => self.single(Tok::Dot),
                '+' => self.single(Tok::Plus),
                '-' => self.single(Tok::Minus),
                '*' => self.single(Tok::Star),
                '%' => self.single(Tok::Percent),
                '?' => match self.peek_at(1) {
                    Some('.') => self.double(Tok::SafeDot),
                    Some(':') => self.double(Tok::Elvis),
                    _ => self.single(Tok::Question),
                },
                '=' => match self.peek_at(1) {
                    Some('=') => self.double(Tok::EqEq),
                    _ => self.single(Tok::Assign),
                },
                '!' => match self.peek_at(1) {
                    Some('=') => self.double(Tok::NotEq),
                    _ => self.single(Tok::Not),
                },
                '<' => match self.peek_at(1) {
                    Some('=') => self.double(Tok::Le),
                    _ => self.single(Tok::Lt),
                },
                '>' => match self.peek_at(1) {
                    Some('=') => self.double(Tok::Ge),
                    _ => self.single(Tok::Gt),
                },
                '&' if self.peek_at(1) == Some('&') => self.double(Tok::AndAnd),
                '|' if self.peek_at(1) == Some('|') => self.double(Tok::OrOr),
                '\'' => self.quoted('\'', start)?,
                '"' => self.quoted('"', start)?,
                '$' if self.peek_at(1) == Some('/') => self.dollar_slashy(start)?,
                '/' => {
                    if slash_starts_string(out.last(), had_space, self.peek_at(1)) {
                        self.slashy(start)?
                    } else {
                        self.single(Tok::Slash)
                    }
                }
                c if c.is_ascii_digit() => self.number(start)?,
                c if is_ident_start(c) => Tok::Ident(self.ident()),
                other => {
                    return Err(ParseError::new(
                        "LAL103",
                        start,
                        format!("unexpected character `{other}`"),
                    ))
                }
            };
            out.push(Token {
                tok,
                span: self.finish(start),
                newline_before,
            });
        }
    }

    fn single(&mut self, tok: Tok) -> Tok {
        self.bump();
        tok
    }

    fn double(&mut self, tok: Tok) -> Tok {
        self.bump();
        self.bump();
        tok
    }

    fn ident(&mut self) -> String {
        let start = self.pos;
        while self.peek().is_some_and(is_ident_continue) {
            self.bump();
        }
        self.src[start..self.pos].to_string()
    }

    fn number(&mut self, start: Span) -> Result<Tok, ParseError> {
        let begin = self.pos;
        let mut is_float = false;
        while self.peek().is_some_and(|c| c.is_ascii_digit() || c == '_') {
            self.bump();
        }
        if self.peek() == Some('.') && self.peek_at(1).is_some_and(|c| c.is_ascii_digit()) {
            is_float = true;
            self.bump();
            while self.peek().is_some_and(|c| c.is_ascii_digit() || c == '_') {
                self.bump();
            }
        }
        if matches!(self.peek(), Some('e' | 'E'))
            && (self.peek_at(1).is_some_and(|c| c.is_ascii_digit())
                || (matches!(self.peek_at(1), Some('+' | '-'))
                    && self.peek_at(2).is_some_and(|c| c.is_ascii_digit())))
        {
            is_float = true;
            self.bump();
            self.bump();
            while self.peek().is_some_and(|c| c.is_ascii_digit()) {
                self.bump();
            }
        }
        let text: String = self.src[begin..self.pos]
            .chars()
            .filter(|c| *c != '_')
            .collect();
        match self.peek() {
            Some('L' | 'l' | 'I' | 'i' | 'G' | 'g') if !is_float => {
                self.bump();
            }
            Some('D' | 'd' | 'F' | 'f') => {
                is_float = true;
                self.bump();
            }
            _ => {}
        }
        if let Some(c) = self.peek().filter(|c| is_ident_continue(*c)) {
            // The offending character may be multi-byte (`1é`): quote all of it.
            let end = self.pos + c.len_utf8();
            return Err(ParseError::new(
                "LAL104",
                self.finish(start),
                format!("invalid number `{}`", &self.src[begin..end]),
            ));
        }
        if is_float {
            text.parse::<f64>().map(Tok::Float).map_err(|_| {
                ParseError::new(
                    "LAL104",
                    self.finish(start),
                    format!("invalid number `{text}`"),
                )
            })
        } else {
            text.parse::<i64>().map(Tok::Int).map_err(|_| {
                ParseError::new(
                    "LAL104",
                    self.finish(start),
                    format!("integer `{text}` is out of range"),
                )
            })
        }
    }

    fn escape(&mut self, start: Span) -> Result<char, ParseError> {
        let esc_start = self.here();
        self.bump(); // the backslash
        let Some(c) = self.bump() else {
            return Err(ParseError::new("LAL105", start, "unterminated string"));
        };
        Ok(match c {
            'n' => '\n',
            't' => '\t',
            'r' => '\r',
            'b' => '\u{8}',
            'f' => '\u{c}',
            '0' => '\0',
            '\\' | '\'' | '"' | '$' | '/' => c,
            'u' => {
                let mut code = 0u32;
                for _ in 0..4 {
                    let d = self.bump().and_then(|d| d.to_digit(16)).ok_or_else(|| {
                        ParseError::new("LAL106", esc_start, "invalid unicode escape")
                    })?;
                    code = code * 16 + d;
                }
                char::from_u32(code)
                    .ok_or_else(|| ParseError::new("LAL106", esc_start, "invalid unicode escape"))?
            }
            other => {
                return Err(ParseError::new(
                    "LAL106",
                    esc_start,
                    format!("unknown escape `\\{other}`"),
                ))
            }
        })
    }

    fn quoted(&mut self, quote: char, start: Span) -> Result<Tok, ParseError> {
        self.bump();
        let interpolate = quote == '"';
        let mut parts = Vec::new();
        let mut lit = String::new();
        loop {
            match self.peek() {
                None | Some('\n') => {
                    return Err(ParseError::new("LAL105", start, "unterminated string"))
                }
                Some(c) if c == quote => {
                    self.bump();
                    break;
                }
                Some('\\') => lit.push(self.escape(start)?),
                Some('$') if interpolate => self.interpolation(&mut parts, &mut lit)?,
                Some(c) => {
                    lit.push(c);
                    self.bump();
                }
            }
        }
        if !lit.is_empty() || parts.is_empty() {
            parts.push(StrPart::Lit(lit));
        }
        Ok(Tok::Str(parts))
    }

    /// At a `$` inside an interpolating string: `${expr}`, `$name.path`, or a literal `$`.
    fn interpolation(
        &mut self,
        parts: &mut Vec<StrPart>,
        lit: &mut String,
    ) -> Result<(), ParseError> {
        match self.peek_at(1) {
            Some('{') => {
                if self.interpolations >= MAX_INTERPOLATION_NESTING {
                    return Err(ParseError::new(
                        "LAL107",
                        self.here(),
                        format!(
                            "string interpolations nest deeper than {MAX_INTERPOLATION_NESTING} levels"
                        ),
                    ));
                }
                self.bump();
                self.bump();
                if !lit.is_empty() {
                    parts.push(StrPart::Lit(std::mem::take(lit)));
                }
                self.interpolations += 1;
                let tokens = self.tokens(true);
                self.interpolations -= 1;
                let tokens = tokens?;
                parts.push(StrPart::Expr(tokens));
            }
            Some(c) if is_ident_start(c) => {
                self.bump();
                if !lit.is_empty() {
                    parts.push(StrPart::Lit(std::mem::take(lit)));
                }
                let mut tokens = Vec::new();
                loop {
                    let start = self.here();
                    let name = self.ident();
                    tokens.push(Token {
                        tok: Tok::Ident(name),
                        span: self.finish(start),
                        newline_before: false,
                    });
                    if self.peek() == Some('.') && self.peek_at(1).is_some_and(is_ident_start) {
                        let dot = self.here();
                        self.bump();
                        tokens.push(Token {
                            tok: Tok::Dot,
                            span: self.finish(dot),
                            newline_before: false,
                        });
                    } else {
                        break;
                    }
                }
                tokens.push(Token {
                    tok: Tok::Eof,
                    span: self.here(),
                    newline_before: false,
                });
                parts.push(StrPart::Expr(tokens));
            }
            _ => {
                lit.push('$');
                self.bump();
            }
        }
        Ok(())
    }

    /// `/…/`: only `\/` is an escape; other backslashes stay (they belong to the regex).
    fn slashy(&mut self, start: Span) -> Result<Tok, ParseError> {
        self.bump();
        let mut parts = Vec::new();
        let mut lit = String::new();
        loop {
            match self.peek() {
                None => {
                    return Err(ParseError::new(
                        "LAL105",
                        start,
                        "unterminated slashy string",
                    ))
                }
                Some('/') => {
                    self.bump();
                    break;
                }
                Some('\\') if self.peek_at(1) == Some('/') => {
                    self.bump();
                    self.bump();
                    lit.push('/');
                }
                Some('$') if matches!(self.peek_at(1), Some('{')) => {
                    self.interpolation(&mut parts, &mut lit)?
                }
                Some(c) => {
                    lit.push(c);
                    self.bump();
                }
            }
        }
        if !lit.is_empty() || parts.is_empty() {
            parts.push(StrPart::Lit(lit));
        }
        Ok(Tok::Str(parts))
    }

    /// `$/…/$`: `$$` is `$`, `$/` is `/`; backslashes stay.
    fn dollar_slashy(&mut self, start: Span) -> Result<Tok, ParseError> {
        self.bump();
        self.bump();
        let mut parts = Vec::new();
        let mut lit = String::new();
        loop {
            match self.peek() {
                None => {
                    return Err(ParseError::new(
                        "LAL105",
                        start,
                        "unterminated dollar-slashy string",
                    ))
                }
                Some('/') if self.peek_at(1) == Some('$') => {
                    self.bump();
                    self.bump();
                    break;
                }
                Some('$') if matches!(self.peek_at(1), Some('$' | '/')) => {
                    self.bump();
                    lit.push(self.bump().unwrap_or('$'));
                }
                Some('$') if matches!(self.peek_at(1), Some('{')) => {
                    self.interpolation(&mut parts, &mut lit)?
                }
                Some(c) => {
                    lit.push(c);
                    self.bump();
                }
            }
        }
        if !lit.is_empty() || parts.is_empty() {
            parts.push(StrPart::Lit(lit));
        }
        Ok(Tok::Str(parts))
    }
}

fn is_ident_start(c: char) -> bool {
    c.is_alphabetic() || c == '_'
}

fn is_ident_continue(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Groovy reads `/` as a slashy string where a value is expected: after an operator, or after a
/// command name (`regexp /x/`) when the slash is not followed by a blank.
fn slash_starts_string(prev: Option<&Token>, had_space: bool, next: Option<char>) -> bool {
    match prev.map(|t| &t.tok) {
        None => true,
        Some(Tok::Int(_) | Tok::Float(_) | Tok::Str(_) | Tok::RParen | Tok::RBracket) => false,
        Some(Tok::Ident(_)) => had_space && next.is_some_and(|c| !c.is_whitespace()),
        Some(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(src: &str) -> Vec<Tok> {
        lex(src).unwrap().into_iter().map(|t| t.tok).collect()
    }

    #[test]
    fn regex_strings_keep_backslashes() {
        let toks = kinds(r#"regexp $/a \"(?<x>\d+)\" /$"#);
        assert_eq!(
            toks[1],
            Tok::Str(vec![StrPart::Lit(r#"a \"(?<x>\d+)\" "#.to_string())])
        );
        let toks = kinds(r"regexp /a\/b\d/");
        assert_eq!(toks[1], Tok::Str(vec![StrPart::Lit(r"a/b\d".to_string())]));
    }

    #[test]
    fn interpolation_is_split_into_tokens() {
        let toks = kinds(r#""${log.service}:$x""#);
        let Tok::Str(parts) = &toks[0] else {
            panic!("not a string")
        };
        assert_eq!(parts.len(), 3);
        assert!(matches!(&parts[1], StrPart::Lit(s) if s == ":"));
    }

    #[test]
    fn positions_are_line_and_column() {
        let toks = lex("a\n  // c\n  bb").unwrap();
        assert_eq!((toks[1].span.line, toks[1].span.col), (3, 3));
        assert!(toks[1].newline_before);
        let err = lex("x\n  'open").unwrap_err();
        assert_eq!((err.span.line, err.span.col), (2, 3));
    }
}
