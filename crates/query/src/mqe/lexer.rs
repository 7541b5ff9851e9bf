//! MQE tokens, as `MQELexer.g4` defines them (longest match, first rule wins a tie).

use super::ParseError;

/// A token kind of `MQELexer.g4`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tok {
    Bool,
    GeneralLabelName,
    Dot,
    Comma,
    LParen,
    RParen,
    LBracket,
    RBracket,
    LBrace,
    RBrace,
    Eq,
    Sub,
    Add,
    Mul,
    Div,
    Mod,
    Deq,
    Neq,
    Lte,
    Lt,
    Gte,
    Gt,
    And,
    Or,
    Avg,
    Count,
    Latest,
    Max,
    Min,
    Sum,
    Abs,
    Ceil,
    Floor,
    Round,
    Increase,
    Rate,
    TopN,
    TopNOf,
    ViewAsSeq,
    IsPresent,
    Relabels,
    Asc,
    Des,
    AggregateLabels,
    SortValues,
    SortLabelValues,
    Attr(u8),
    Baseline,
    Value,
    Upper,
    Lower,
    Integer,
    Decimal,
    NameString,
    ValueString,
    Eof,
}

/// One token with its text and where it starts (line 1-based, column 0-based as ANTLR reports).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Token {
    pub(crate) kind: Tok,
    pub(crate) text: String,
    pub(crate) line: usize,
    pub(crate) column: usize,
}

/// Keywords matched exactly (lower case), in lexer declaration order.
const KEYWORDS: &[(&str, Tok)] = &[
    ("avg", Tok::Avg),
    ("count", Tok::Count),
    ("latest", Tok::Latest),
    ("max", Tok::Max),
    ("min", Tok::Min),
    ("sum", Tok::Sum),
    ("abs", Tok::Abs),
    ("ceil", Tok::Ceil),
    ("floor", Tok::Floor),
    ("round", Tok::Round),
    ("increase", Tok::Increase),
    ("rate", Tok::Rate),
    ("top_n", Tok::TopN),
    ("top_n_of", Tok::TopNOf),
    ("view_as_seq", Tok::ViewAsSeq),
    ("is_present", Tok::IsPresent),
    ("relabels", Tok::Relabels),
    ("aggregate_labels", Tok::AggregateLabels),
    ("sort_values", Tok::SortValues),
    ("sort_label_values", Tok::SortLabelValues),
    ("attr0", Tok::Attr(0)),
    ("attr1", Tok::Attr(1)),
    ("attr2", Tok::Attr(2)),
    ("attr3", Tok::Attr(3)),
    ("attr4", Tok::Attr(4)),
    ("attr5", Tok::Attr(5)),
    ("baseline", Tok::Baseline),
    ("value", Tok::Value),
    ("upper", Tok::Upper),
    ("lower", Tok::Lower),
];

fn is_name_letter(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Splits `src` into tokens, ending with an `Eof` token.
pub(crate) fn tokenize(src: &str) -> Result<Vec<Token>, ParseError> {
    let chars: Vec<char> = src.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    let mut line = 1;
    let mut column = 0;
    // Advances over `n` chars, keeping line/column right across newlines inside strings.
    let advance = |i: &mut usize, line: &mut usize, column: &mut usize, n: usize| {
        for _ in 0..n {
            if chars.get(*i) == Some(&'\n') {
                *line += 1;
                *column = 0;
            } else {
                *column += 1;
            }
            *i += 1;
        }
    };
    while i < chars.len() {
        let c = chars[i];
        if matches!(c, ' ' | '\t' | '\r' | '\n') {
            advance(&mut i, &mut line, &mut column, 1);
            continue;
        }
        let (start_line, start_col) = (line, column);
        let next = chars.get(i + 1).copied();
        let (kind, len) = if is_name_letter(c) {
            let run = chars[i..]
                .iter()
                .take_while(|c| is_name_letter(**c))
                .count();
            let word: String = chars[i..i + run].iter().collect();
            let all_digits = word.chars().all(|c| c.is_ascii_digit());
            let decimal_len = if all_digits && chars.get(i + run) == Some(&'.') {
                let frac = chars[i + run + 1..]
                    .iter()
                    .take_while(|c| c.is_ascii_digit())
                    .count();
                if frac > 0 {
                    run + 1 + frac
                } else {
                    0
                }
            } else {
                0
            };
            if decimal_len > 0 {
                (Tok::Decimal, decimal_len)
            } else if all_digits {
                (Tok::Integer, run)
            } else if word == "_" {
                (Tok::GeneralLabelName, run)
            } else if word.eq_ignore_ascii_case("bool") {
                (Tok::Bool, run)
            } else if word.eq_ignore_ascii_case("asc") {
                (Tok::Asc, run)
            } else if word.eq_ignore_ascii_case("des") {
                (Tok::Des, run)
            } else if let Some((_, k)) = KEYWORDS.iter().find(|(w, _)| *w == word) {
                (*k, run)
            } else {
                (Tok::NameString, run)
            }
        } else {
            match (c, next) {
                ('=', Some('=')) => (Tok::Deq, 2),
                ('!', Some('=')) => (Tok::Neq, 2),
                ('<', Some('=')) => (Tok::Lte, 2),
                ('>', Some('=')) => (Tok::Gte, 2),
                ('&', Some('&')) => (Tok::And, 2),
                ('|', Some('|')) => (Tok::Or, 2),
                ('.', _) => (Tok::Dot, 1),
                (',', _) => (Tok::Comma, 1),
                ('(', _) => (Tok::LParen, 1),
                (')', _) => (Tok::RParen, 1),
                ('[', _) => (Tok::LBracket, 1),
                (']', _) => (Tok::RBracket, 1),
                ('{', _) => (Tok::LBrace, 1),
                ('}', _) => (Tok::RBrace, 1),
                ('=', _) => (Tok::Eq, 1),
                ('-', _) => (Tok::Sub, 1),
                ('+', _) => (Tok::Add, 1),
                ('*', _) => (Tok::Mul, 1),
                ('/', _) => (Tok::Div, 1),
                ('%', _) => (Tok::Mod, 1),
                ('<', _) => (Tok::Lt, 1),
                ('>', _) => (Tok::Gt, 1),
                ('\'', _) | ('"', _) => match chars[i + 1..].iter().position(|x| *x == c) {
                    Some(end) => (Tok::ValueString, end + 2),
                    None => {
                        let rest: String = chars[i..].iter().collect();
                        return Err(ParseError::new(
                            start_line,
                            start_col,
                            format!("token recognition error at: '{rest}'"),
                        ));
                    }
                },
                _ => {
                    return Err(ParseError::new(
                        start_line,
                        start_col,
                        format!("token recognition error at: '{c}'"),
                    ))
                }
            }
        };
        let text: String = chars[i..i + len].iter().collect();
        tokens.push(Token {
            kind,
            text,
            line: start_line,
            column: start_col,
        });
        advance(&mut i, &mut line, &mut column, len);
    }
    tokens.push(Token {
        kind: Tok::Eof,
        text: "<EOF>".to_string(),
        line,
        column,
    });
    Ok(tokens)
}
