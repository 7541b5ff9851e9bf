//! Recursive-descent / precedence-climbing parser for `MQEParser.g4`.

use super::ast::*;
use super::lexer::{tokenize, Tok, Token};
use super::ParseError;

/// Longest expression accepted, in bytes. The UI's longest expressions are a few hundred bytes.
pub const MAX_EXPRESSION_BYTES: usize = 16 * 1024;

/// Deepest nesting of parentheses, function calls and operator operands. The parser, the
/// evaluator, `Display` and `Drop` all recurse over the tree, so an unbounded depth would let one
/// request overflow the stack and abort the whole server.
pub const MAX_NESTING: usize = 64;

/// Most terms (metrics, numbers, function calls, operators) in one expression. It bounds the
/// height of a flat chain such as `m+m+…+m`, which the loop below parses without nesting but
/// which the evaluator still walks recursively, and the metric reads one expression can ask for.
pub const MAX_TERMS: usize = 256;

/// Parses an expression the way OAP does (`parser.expression()`, not `root`): tokens after a
/// complete expression are ignored.
pub fn parse_expression(src: &str) -> Result<Expr, ParseError> {
    let mut p = Parser::new(src)?;
    p.expression(0)
}

/// Parses a whole expression (`root: expression EOF`): trailing tokens are an error.
pub fn parse(src: &str) -> Result<Expr, ParseError> {
    let mut p = Parser::new(src)?;
    let e = p.expression(0)?;
    p.expect(Tok::Eof, "<EOF>")?;
    Ok(e)
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
    /// Open `expression` calls: how deep the parser (and so the tree) nests right now.
    depth: usize,
    /// Terms made so far; every node of the tree is one.
    terms: usize,
}

/// Binding power of binary operators: `* / %` over `+ -` over comparisons over `&& ||`.
fn binary_op(kind: Tok) -> Option<(BinaryOp, u8)> {
    Some(match kind {
        Tok::Mul => (BinaryOp::Mul, 4),
        Tok::Div => (BinaryOp::Div, 4),
        Tok::Mod => (BinaryOp::Mod, 4),
        Tok::Add => (BinaryOp::Add, 3),
        Tok::Sub => (BinaryOp::Sub, 3),
        Tok::Deq => (BinaryOp::Eq, 2),
        Tok::Neq => (BinaryOp::Neq, 2),
        Tok::Lt => (BinaryOp::Lt, 2),
        Tok::Lte => (BinaryOp::Lte, 2),
        Tok::Gt => (BinaryOp::Gt, 2),
        Tok::Gte => (BinaryOp::Gte, 2),
        Tok::And => (BinaryOp::And, 1),
        Tok::Or => (BinaryOp::Or, 1),
        _ => return None,
    })
}

fn aggregation(kind: Tok) -> Option<Aggregation> {
    Some(match kind {
        Tok::Avg => Aggregation::Avg,
        Tok::Count => Aggregation::Count,
        Tok::Latest => Aggregation::Latest,
        Tok::Sum => Aggregation::Sum,
        Tok::Max => Aggregation::Max,
        Tok::Min => Aggregation::Min,
        _ => return None,
    })
}

impl Parser {
    fn new(src: &str) -> Result<Parser, ParseError> {
        if src.len() > MAX_EXPRESSION_BYTES {
            return Err(ParseError::new(
                1,
                0,
                format!(
                    "expression is {} bytes long, more than the {MAX_EXPRESSION_BYTES} allowed",
                    src.len()
                ),
            ));
        }
        Ok(Parser {
            tokens: tokenize(src)?,
            pos: 0,
            depth: 0,
            terms: 0,
        })
    }

    /// Counts one more node of the tree, refusing past [`MAX_TERMS`].
    fn term(&mut self) -> Result<(), ParseError> {
        self.terms += 1;
        if self.terms > MAX_TERMS {
            return Err(self.error_here(format!("expression has more than {MAX_TERMS} terms")));
        }
        Ok(())
    }

    fn peek(&self) -> &Token {
        // The token list always ends with Eof and `pos` never passes it.
        &self.tokens[self.pos.min(self.tokens.len() - 1)]
    }

    fn peek_at(&self, ahead: usize) -> &Token {
        &self.tokens[(self.pos + ahead).min(self.tokens.len() - 1)]
    }

    fn bump(&mut self) -> Token {
        let t = self.peek().clone();
        if t.kind != Tok::Eof {
            self.pos += 1;
        }
        t
    }

    fn error_here(&self, message: String) -> ParseError {
        let t = self.peek();
        ParseError::new(t.line, t.column, message)
    }

    fn mismatched(&self, expecting: &str) -> ParseError {
        let t = self.peek();
        self.error_here(format!(
            "mismatched input '{}' expecting {expecting}",
            t.text
        ))
    }

    fn expect(&mut self, kind: Tok, name: &str) -> Result<Token, ParseError> {
        if self.peek().kind == kind {
            Ok(self.bump())
        } else {
            Err(self.mismatched(&format!("'{name}'")))
        }
    }

    fn expression(&mut self, min_power: u8) -> Result<Expr, ParseError> {
        if self.depth >= MAX_NESTING {
            return Err(
                self.error_here(format!("expression nests deeper than {MAX_NESTING} levels"))
            );
        }
        self.depth += 1;
        let e = self.operands(min_power);
        self.depth -= 1;
        e
    }

    /// Precedence climbing: a chain of one precedence is built in this loop, left-associative;
    /// only a tighter-binding right operand recurses.
    fn operands(&mut self, min_power: u8) -> Result<Expr, ParseError> {
        let mut left = self.primary()?;
        while let Some((op, power)) = binary_op(self.peek().kind) {
            if power < min_power {
                break;
            }
            self.term()?;
            self.bump();
            let bool_modifier = op.is_compare() && self.peek().kind == Tok::Bool && {
                self.bump();
                true
            };
            let right = self.expression(power + 1)?;
            left = Expr::Binary {
                op,
                bool_modifier,
                left: Box::new(left),
                right: Box::new(right),
            };
        }
        Ok(left)
    }

    fn integer(&mut self) -> Result<i64, ParseError> {
        let t = self.peek().clone();
        if t.kind != Tok::Integer {
            return Err(self.mismatched("INTEGER"));
        }
        let v = t.text.parse::<i64>().map_err(|_| {
            ParseError::new(
                t.line,
                t.column,
                format!("integer '{}' is too large", t.text),
            )
        })?;
        self.bump();
        Ok(v)
    }

    fn order(&mut self) -> Result<Order, ParseError> {
        match self.peek().kind {
            Tok::Asc => {
                self.bump();
                Ok(Order::Asc)
            }
            Tok::Des => {
                self.bump();
                Ok(Order::Des)
            }
            _ => Err(self.mismatched("{ASC, DES}")),
        }
    }

    /// One operand. Each alternative is its own function, called through one pointer, so that
    /// this frame, which every nesting level repeats, stays small (a debug build keeps a stack
    /// slot for every call result of every arm of a big `match`).
    fn primary(&mut self) -> Result<Expr, ParseError> {
        self.term()?;
        let alternative: fn(&mut Self, Token) -> Result<Expr, ParseError> = match self.peek().kind {
            Tok::LParen => Self::paren,
            Tok::Integer | Tok::Decimal => Self::number,
            Tok::NameString => Self::name_or_log,
            k if aggregation(k).is_some() => Self::aggregation_call,
            Tok::Abs | Tok::Ceil | Tok::Floor => Self::math_call,
            Tok::Round => Self::round_call,
            Tok::Increase | Tok::Rate => Self::trend_call,
            Tok::ViewAsSeq | Tok::IsPresent => Self::logical_call,
            Tok::TopN => Self::top_n_call,
            Tok::TopNOf => Self::top_n_of_call,
            Tok::Relabels => Self::relabels_call,
            Tok::AggregateLabels => Self::aggregate_labels_call,
            Tok::SortValues => Self::sort_values_call,
            Tok::SortLabelValues => Self::sort_label_values_call,
            Tok::Baseline => Self::baseline_call,
            _ => Self::no_viable,
        };
        let t = self.peek().clone();
        alternative(self, t)
    }

    fn paren(&mut self, _: Token) -> Result<Expr, ParseError> {
        self.bump();
        let e = self.expression(0)?;
        self.expect(Tok::RParen, ")")?;
        Ok(Expr::Paren(Box::new(e)))
    }

    fn number(&mut self, t: Token) -> Result<Expr, ParseError> {
        self.bump();
        let value = t
            .text
            .parse::<f64>()
            .map_err(|_| ParseError::new(t.line, t.column, format!("bad number '{}'", t.text)))?;
        Ok(Expr::Scalar {
            value,
            text: t.text,
        })
    }

    fn name_or_log(&mut self, t: Token) -> Result<Expr, ParseError> {
        let math = match t.text.as_str() {
            "log" => Some(MathFunction::Ln),
            "log2" => Some(MathFunction::Log2),
            "log10" => Some(MathFunction::Log10),
            _ => None,
        };
        match math {
            Some(f) if self.peek_at(1).kind == Tok::LParen => {
                self.bump();
                let e = self.call_one()?;
                Ok(Expr::Math(f, Box::new(e)))
            }
            _ => Ok(Expr::Metric(self.metric()?)),
        }
    }

    fn aggregation_call(&mut self, t: Token) -> Result<Expr, ParseError> {
        self.bump();
        let e = self.call_one()?;
        Ok(Expr::Aggregation(
            aggregation(t.kind).unwrap_or(Aggregation::Avg),
            Box::new(e),
        ))
    }

    fn math_call(&mut self, t: Token) -> Result<Expr, ParseError> {
        self.bump();
        let f = match t.kind {
            Tok::Abs => MathFunction::Abs,
            Tok::Ceil => MathFunction::Ceil,
            _ => MathFunction::Floor,
        };
        let e = self.call_one()?;
        Ok(Expr::Math(f, Box::new(e)))
    }

    fn round_call(&mut self, _: Token) -> Result<Expr, ParseError> {
        self.bump();
        self.expect(Tok::LParen, "(")?;
        let e = self.expression(0)?;
        self.expect(Tok::Comma, ",")?;
        let n = self.integer()?;
        self.expect(Tok::RParen, ")")?;
        Ok(Expr::Round(Box::new(e), n))
    }

    fn trend_call(&mut self, t: Token) -> Result<Expr, ParseError> {
        self.bump();
        self.expect(Tok::LParen, "(")?;
        let m = self.metric()?;
        self.expect(Tok::Comma, ",")?;
        let n = self.integer()?;
        self.expect(Tok::RParen, ")")?;
        let trend = if t.kind == Tok::Increase {
            Trend::Increase
        } else {
            Trend::Rate
        };
        Ok(Expr::Trend(trend, m, n))
    }

    fn logical_call(&mut self, t: Token) -> Result<Expr, ParseError> {
        self.bump();
        self.expect(Tok::LParen, "(")?;
        let mut list = vec![self.expression(0)?];
        while self.peek().kind == Tok::Comma {
            self.bump();
            list.push(self.expression(0)?);
        }
        self.expect(Tok::RParen, ")")?;
        let f = if t.kind == Tok::ViewAsSeq {
            LogicalFunction::ViewAsSeq
        } else {
            LogicalFunction::IsPresent
        };
        Ok(Expr::Logical(f, list))
    }

    fn top_n_call(&mut self, _: Token) -> Result<Expr, ParseError> {
        Ok(Expr::TopN(self.top_n()?))
    }

    fn top_n_of_call(&mut self, _: Token) -> Result<Expr, ParseError> {
        self.bump();
        self.expect(Tok::LParen, "(")?;
        let mut list = vec![self.top_n()?];
        loop {
            self.expect(Tok::Comma, ",")?;
            if self.peek().kind == Tok::TopN {
                self.term()?;
                list.push(self.top_n()?);
            } else {
                break;
            }
        }
        let n = self.integer()?;
        self.expect(Tok::Comma, ",")?;
        let order = self.order()?;
        self.expect(Tok::RParen, ")")?;
        Ok(Expr::TopNOf(list, n, order))
    }

    fn relabels_call(&mut self, _: Token) -> Result<Expr, ParseError> {
        self.bump();
        self.expect(Tok::LParen, "(")?;
        let e = self.expression(0)?;
        self.expect(Tok::Comma, ",")?;
        let src = self.label()?;
        self.expect(Tok::Comma, ",")?;
        let dst = self.label()?;
        self.expect(Tok::RParen, ")")?;
        Ok(Expr::Relabels(Box::new(e), src, dst))
    }

    fn aggregate_labels_call(&mut self, _: Token) -> Result<Expr, ParseError> {
        self.bump();
        self.expect(Tok::LParen, "(")?;
        let e = self.expression(0)?;
        self.expect(Tok::Comma, ",")?;
        let func = match self.peek().kind {
            Tok::Avg => LabelAggregation::Avg,
            Tok::Sum => LabelAggregation::Sum,
            Tok::Max => LabelAggregation::Max,
            Tok::Min => LabelAggregation::Min,
            _ => return Err(self.mismatched("{'avg', 'max', 'min', 'sum'}")),
        };
        self.bump();
        let mut labels = Vec::new();
        if self.peek().kind == Tok::LParen {
            self.bump();
            labels = self.label_name_list()?;
            self.expect(Tok::RParen, ")")?;
        }
        self.expect(Tok::RParen, ")")?;
        Ok(Expr::AggregateLabels(Box::new(e), func, labels))
    }

    fn sort_values_call(&mut self, _: Token) -> Result<Expr, ParseError> {
        self.bump();
        self.expect(Tok::LParen, "(")?;
        let e = self.expression(0)?;
        self.expect(Tok::Comma, ",")?;
        let n = self.integer()?;
        self.expect(Tok::Comma, ",")?;
        let order = self.order()?;
        self.expect(Tok::Comma, ",")?;
        let agg = aggregation(self.peek().kind);
        if agg.is_some() {
            self.bump();
        }
        self.expect(Tok::RParen, ")")?;
        Ok(Expr::SortValues(Box::new(e), n, order, agg))
    }

    fn sort_label_values_call(&mut self, _: Token) -> Result<Expr, ParseError> {
        self.bump();
        self.expect(Tok::LParen, "(")?;
        let e = self.expression(0)?;
        self.expect(Tok::Comma, ",")?;
        let order = self.order()?;
        self.expect(Tok::Comma, ",")?;
        let labels = self.label_name_list()?;
        self.expect(Tok::RParen, ")")?;
        Ok(Expr::SortLabelValues(Box::new(e), order, labels))
    }

    fn baseline_call(&mut self, _: Token) -> Result<Expr, ParseError> {
        self.bump();
        self.expect(Tok::LParen, "(")?;
        let m = self.metric()?;
        self.expect(Tok::Comma, ",")?;
        let kind = match self.peek().kind {
            Tok::Value => BaselineKind::Value,
            Tok::Upper => BaselineKind::Upper,
            Tok::Lower => BaselineKind::Lower,
            _ => return Err(self.mismatched("{'value', 'upper', 'lower'}")),
        };
        self.bump();
        self.expect(Tok::RParen, ")")?;
        Ok(Expr::Baseline(m, kind))
    }

    fn no_viable(&mut self, t: Token) -> Result<Expr, ParseError> {
        Err(self.error_here(format!("no viable alternative at input '{}'", t.text)))
    }

    /// `( expression )` after a function keyword.
    fn call_one(&mut self) -> Result<Expr, ParseError> {
        self.expect(Tok::LParen, "(")?;
        let e = self.expression(0)?;
        self.expect(Tok::RParen, ")")?;
        Ok(e)
    }

    fn metric(&mut self) -> Result<MetricRef, ParseError> {
        let name = self.expect(Tok::NameString, "NAME_STRING")?.text;
        let mut labels = None;
        if self.peek().kind == Tok::LBrace {
            self.bump();
            let mut list = Vec::new();
            if self.peek().kind != Tok::RBrace {
                list.push(self.label()?);
                while self.peek().kind == Tok::Comma {
                    self.bump();
                    list.push(self.label()?);
                }
            }
            self.expect(Tok::RBrace, "}")?;
            labels = Some(list);
        }
        Ok(MetricRef { name, labels })
    }

    fn label_name(&mut self) -> Result<String, ParseError> {
        match self.peek().kind {
            Tok::NameString | Tok::GeneralLabelName => Ok(self.bump().text),
            _ => Err(self.mismatched("{'_', NAME_STRING}")),
        }
    }

    fn label_name_list(&mut self) -> Result<Vec<String>, ParseError> {
        let mut names = vec![self.label_name()?];
        while self.peek().kind == Tok::Comma {
            self.bump();
            names.push(self.label_name()?);
        }
        Ok(names)
    }

    fn label(&mut self) -> Result<Label, ParseError> {
        let name = self.label_name()?;
        self.expect(Tok::Eq, "=")?;
        let v = self.expect(Tok::ValueString, "VALUE_STRING")?.text;
        Ok(unquote(name, &v))
    }

    fn top_n(&mut self) -> Result<TopN, ParseError> {
        self.expect(Tok::TopN, "top_n")?;
        self.expect(Tok::LParen, "(")?;
        let metric = self.metric()?;
        self.expect(Tok::Comma, ",")?;
        let n = self.integer()?;
        self.expect(Tok::Comma, ",")?;
        let order = self.order()?;
        let mut attributes = Vec::new();
        while self.peek().kind == Tok::Comma {
            self.bump();
            let index = match self.peek().kind {
                Tok::Attr(i) => i,
                _ => {
                    return Err(
                        self.mismatched("{'attr0', 'attr1', 'attr2', 'attr3', 'attr4', 'attr5'}")
                    )
                }
            };
            self.bump();
            let equal = match self.peek().kind {
                Tok::Eq => true,
                Tok::Neq => false,
                _ => return Err(self.mismatched("{'=', '!='}")),
            };
            self.bump();
            let v = self.expect(Tok::ValueString, "VALUE_STRING")?.text;
            attributes.push(AttributeFilter {
                index,
                equal,
                value: unquote(String::new(), &v).value,
            });
        }
        self.expect(Tok::RParen, ")")?;
        Ok(TopN {
            metric,
            n,
            order,
            attributes,
        })
    }
}

fn unquote(name: String, quoted: &str) -> Label {
    let quote = quoted.chars().next().unwrap_or('\'');
    let inner = quoted
        .get(1..quoted.len().saturating_sub(1))
        .unwrap_or("")
        .to_string();
    Label {
        name,
        value: inner,
        quote,
    }
}
