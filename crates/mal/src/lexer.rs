use crate::error::ParseError;
use crate::span::{Part, Span};
use crate::token::{Token, TokenKind};

/// Splits MAL / Groovy-closure text into tokens.
pub(crate) fn tokenize(src: &str, part: Part) -> Result<Vec<Token>, ParseError> {
    let bytes = src.as_bytes();
    let mut tokens = Vec::new();
    let mut i = 0;
    let mut newline_before = false;
    let err =
        |start: usize, end: usize, msg: String| ParseError::new(msg, Span::new(start, end, part));
    while i < bytes.len() {
        let c = bytes[i];
        if c == b'\n' {
            newline_before = true;
            i += 1;
            continue;
        }
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        if c == b'/' && bytes.get(i + 1) == Some(&b'/') {
            while i < bytes.len() && bytes[i] != b'\n' {
                i += 1;
            }
            continue;
        }
        if c == b'/' && bytes.get(i + 1) == Some(&b'*') {
            let start = i;
            i += 2;
            loop {
                if i + 1 >= bytes.len() {
                    return Err(err(start, bytes.len(), "unterminated block comment".into()));
                }
                if bytes[i] == b'*' && bytes[i + 1] == b'/' {
                    i += 2;
                    break;
                }
                if bytes[i] == b'\n' {
                    newline_before = true;
                }
                i += 1;
            }
            continue;
        }
        let start = i;
        let kind = if c.is_ascii_alphabetic() || c == b'_' || c == b'$' {
            while i < bytes.len()
                && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_' || bytes[i] == b'$')
            {
                i += 1;
            }
            TokenKind::Ident(src[start..i].to_string())
        } else if c.is_ascii_digit() {
            let mut integral = true;
            while i < bytes.len() && bytes[i].is_ascii_digit() {
                i += 1;
            }
            if i + 1 < bytes.len() && bytes[i] == b'.' && bytes[i + 1].is_ascii_digit() {
                integral = false;
                i += 1;
                while i < bytes.len() && bytes[i].is_ascii_digit() {
                    i += 1;
                }
            }
            if i < bytes.len() && (bytes[i] == b'e' || bytes[i] == b'E') {
                let save = i;
                i += 1;
                if i < bytes.len() && (bytes[i] == b'+' || bytes[i] == b'-') {
                    i += 1;
                }
                if i < bytes.len() && bytes[i].is_ascii_digit() {
                    integral = false;
                    while i < bytes.len() && bytes[i].is_ascii_digit() {
                        i += 1;
                    }
                } else {
                    i = save;
                }
            }
            let text = &src[start..i];
            // Groovy type suffixes (10L, 1.5d, 2f) change nothing for MAL.
            if i < bytes.len() && matches!(bytes[i], b'L' | b'l' | b'D' | b'd' | b'F' | b'f') {
                i += 1;
            }
            let value: f64 = text
                .parse()
                .map_err(|_| err(start, i, format!("invalid number '{text}'")))?;
            TokenKind::Number(value, integral)
        } else if c == b'\'' || c == b'"' {
            let quote = c;
            i += 1;
            let mut out = String::new();
            loop {
                let Some(&b) = bytes.get(i) else {
                    return Err(err(
                        start,
                        bytes.len(),
                        "unterminated string literal".into(),
                    ));
                };
                if b == quote {
                    i += 1;
                    break;
                }
                if b == b'\\' {
                    let Some(&e) = bytes.get(i + 1) else {
                        return Err(err(
                            start,
                            bytes.len(),
                            "unterminated string literal".into(),
                        ));
                    };
                    let ch = match e {
                        b'n' => '\n',
                        b't' => '\t',
                        b'r' => '\r',
                        b'\\' => '\\',
                        b'\'' => '\'',
                        b'"' => '"',
                        b'$' => '$',
                        b'/' => '/',
                        // Keep unknown escapes as written: regexes such as '\d' rely on it.
                        _ => {
                            out.push('\\');
                            i += 1;
                            continue;
                        }
                    };
                    out.push(ch);
                    i += 2;
                    continue;
                }
                let ch_len = utf8_len(b);
                out.push_str(&src[i..i + ch_len]);
                i += ch_len;
            }
            TokenKind::Str(out)
        } else {
            // `get`: the next bytes may end inside a multi-byte character, and then they are no
            // (ASCII) operator anyway.
            let two = src.get(i..i + 2).unwrap_or("");
            let three = src.get(i..i + 3).unwrap_or("");
            let (kind, len) = if three == "==~" {
                (TokenKind::RegexMatch, 3)
            } else {
                match two {
                    "?." => (TokenKind::SafeDot, 2),
                    "?:" => (TokenKind::Elvis, 2),
                    "::" => (TokenKind::DoubleColon, 2),
                    "->" => (TokenKind::Arrow, 2),
                    "==" => (TokenKind::EqEq, 2),
                    "!=" => (TokenKind::NotEq, 2),
                    "<=" => (TokenKind::Le, 2),
                    ">=" => (TokenKind::Ge, 2),
                    "&&" => (TokenKind::AndAnd, 2),
                    "||" => (TokenKind::OrOr, 2),
                    "=~" => (TokenKind::RegexFind, 2),
                    _ => {
                        let k = match c {
                            b'(' => TokenKind::LParen,
                            b')' => TokenKind::RParen,
                            b'[' => TokenKind::LBracket,
                            b']' => TokenKind::RBracket,
                            b'{' => TokenKind::LBrace,
                            b'}' => TokenKind::RBrace,
                            b',' => TokenKind::Comma,
                            b'.' => TokenKind::Dot,
                            b':' => TokenKind::Colon,
                            b';' => TokenKind::Semicolon,
                            b'?' => TokenKind::Question,
                            b'+' => TokenKind::Plus,
                            b'-' => TokenKind::Minus,
                            b'*' => TokenKind::Star,
                            b'/' => TokenKind::Slash,
                            b'%' => TokenKind::Percent,
                            b'!' => TokenKind::Bang,
                            b'=' => TokenKind::Eq,
                            b'<' => TokenKind::Lt,
                            b'>' => TokenKind::Gt,
                            _ => {
                                let len = utf8_len(c);
                                return Err(err(
                                    start,
                                    start + len,
                                    format!("unexpected character '{}'", &src[start..start + len]),
                                ));
                            }
                        };
                        (k, 1)
                    }
                }
            };
            i += len;
            kind
        };
        tokens.push(Token {
            kind,
            span: Span::new(start, i, part),
            newline_before,
        });
        newline_before = false;
    }
    tokens.push(Token {
        kind: TokenKind::Eof,
        span: Span::new(src.len(), src.len(), part),
        newline_before,
    });
    Ok(tokens)
}

fn utf8_len(first: u8) -> usize {
    match first {
        0x00..=0x7f => 1,
        0xc0..=0xdf => 2,
        0xe0..=0xef => 3,
        _ => 4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(s: &str) -> Vec<TokenKind> {
        tokenize(s, Part::Exp)
            .unwrap()
            .into_iter()
            .map(|t| t.kind)
            .collect()
    }

    #[test]
    fn lexes_groovy_operators() {
        assert_eq!(
            kinds("a?.b ?: 'x' ==~ y"),
            vec![
                TokenKind::Ident("a".into()),
                TokenKind::SafeDot,
                TokenKind::Ident("b".into()),
                TokenKind::Elvis,
                TokenKind::Str("x".into()),
                TokenKind::RegexMatch,
                TokenKind::Ident("y".into()),
                TokenKind::Eof
            ]
        );
    }

    #[test]
    fn unterminated_string_is_located() {
        let e = tokenize("a.tagEqual('x)", Part::Exp).unwrap_err();
        assert_eq!(e.span.start, 11);
        assert!(e.message.contains("unterminated"));
    }
}
