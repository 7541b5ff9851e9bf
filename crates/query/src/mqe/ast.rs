//! The MQE syntax tree.

use std::fmt;

/// `labelName = 'value'`; the value has its quotes stripped (MQE has no escapes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Label {
    /// Label name (`_` is allowed, meaning the general label).
    pub name: String,
    /// The raw value between the quotes, e.g. `50,75`.
    pub value: String,
    /// The quote character used (kept to reproduce the source text in messages).
    pub quote: char,
}

/// A metric reference with its optional label selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricRef {
    /// Metric name.
    pub name: String,
    /// Label selector (`None` when no braces were written).
    pub labels: Option<Vec<Label>>,
}

/// `+ - * / %`, comparisons and `&& ||`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinaryOp {
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
    Neq,
    /// `<`
    Lt,
    /// `<=`
    Lte,
    /// `>`
    Gt,
    /// `>=`
    Gte,
    /// `&&`
    And,
    /// `||`
    Or,
}

impl BinaryOp {
    /// The operator as written.
    pub fn symbol(self) -> &'static str {
        match self {
            BinaryOp::Add => "+",
            BinaryOp::Sub => "-",
            BinaryOp::Mul => "*",
            BinaryOp::Div => "/",
            BinaryOp::Mod => "%",
            BinaryOp::Eq => "==",
            BinaryOp::Neq => "!=",
            BinaryOp::Lt => "<",
            BinaryOp::Lte => "<=",
            BinaryOp::Gt => ">",
            BinaryOp::Gte => ">=",
            BinaryOp::And => "&&",
            BinaryOp::Or => "||",
        }
    }

    /// Whether this is a comparison (result values are 1/0).
    pub fn is_compare(self) -> bool {
        matches!(
            self,
            BinaryOp::Eq
                | BinaryOp::Neq
                | BinaryOp::Lt
                | BinaryOp::Lte
                | BinaryOp::Gt
                | BinaryOp::Gte
        )
    }
}

/// `avg count latest sum max min`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Aggregation {
    /// Mean of present points.
    Avg,
    /// Number of present points.
    Count,
    /// Last present point.
    Latest,
    /// Sum of present points.
    Sum,
    /// Point with the largest value.
    Max,
    /// Point with the smallest value.
    Min,
}

impl Aggregation {
    /// The keyword.
    pub fn name(self) -> &'static str {
        match self {
            Aggregation::Avg => "avg",
            Aggregation::Count => "count",
            Aggregation::Latest => "latest",
            Aggregation::Sum => "sum",
            Aggregation::Max => "max",
            Aggregation::Min => "min",
        }
    }
}

/// One-argument math functions (`abs ceil floor`, plus `log log2 log10`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MathFunction {
    /// `abs`
    Abs,
    /// `ceil`
    Ceil,
    /// `floor`
    Floor,
    /// `log` (natural logarithm; not in the 10.x grammar, accepted as an extension)
    Ln,
    /// `log2` (extension)
    Log2,
    /// `log10` (extension)
    Log10,
}

impl MathFunction {
    /// The keyword.
    pub fn name(self) -> &'static str {
        match self {
            MathFunction::Abs => "abs",
            MathFunction::Ceil => "ceil",
            MathFunction::Floor => "floor",
            MathFunction::Ln => "log",
            MathFunction::Log2 => "log2",
            MathFunction::Log10 => "log10",
        }
    }
}

/// `increase` / `rate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trend {
    /// Difference to the value `N` steps earlier.
    Increase,
    /// `Increase` per second.
    Rate,
}

/// `view_as_seq` / `is_present`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogicalFunction {
    /// The first expression that has a value.
    ViewAsSeq,
    /// 1 if any expression has a value, else 0.
    IsPresent,
}

/// `asc` / `des`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// Ascending.
    Asc,
    /// Descending.
    Des,
}

/// `sum avg max min` of `aggregate_labels`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LabelAggregation {
    /// Sum.
    Sum,
    /// Mean.
    Avg,
    /// Maximum.
    Max,
    /// Minimum.
    Min,
}

/// `attrN = 'v'` / `attrN != 'v'` inside `top_n`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttributeFilter {
    /// N of `attrN` (0..=5).
    pub index: u8,
    /// `true` for `=`, `false` for `!=`.
    pub equal: bool,
    /// The value between the quotes.
    pub value: String,
}

/// `top_n(metric, N, order[, attrs])`.
#[derive(Debug, Clone, PartialEq)]
pub struct TopN {
    /// The ranked metric.
    pub metric: MetricRef,
    /// How many entities.
    pub n: i64,
    /// Ranking order.
    pub order: Order,
    /// Entity attribute filters.
    pub attributes: Vec<AttributeFilter>,
}

/// `baseline(metric, value|upper|lower)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BaselineKind {
    /// `value`
    Value,
    /// `upper`
    Upper,
    /// `lower`
    Lower,
}

/// An MQE expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// A metric read.
    Metric(MetricRef),
    /// A number, with its source text.
    Scalar {
        /// The value.
        value: f64,
        /// As written.
        text: String,
    },
    /// `( expr )`, kept so that messages can quote the source.
    Paren(Box<Expr>),
    /// `left op right`.
    Binary {
        /// The operator.
        op: BinaryOp,
        /// Whether a comparison carried the `bool` modifier.
        bool_modifier: bool,
        /// Left operand.
        left: Box<Expr>,
        /// Right operand.
        right: Box<Expr>,
    },
    /// `avg(expr)` etc.
    Aggregation(Aggregation, Box<Expr>),
    /// `abs(expr)` etc.
    Math(MathFunction, Box<Expr>),
    /// `round(expr, n)`.
    Round(Box<Expr>, i64),
    /// `increase(metric, n)` / `rate(metric, n)`.
    Trend(Trend, MetricRef, i64),
    /// `view_as_seq(e, ...)` / `is_present(e, ...)`.
    Logical(LogicalFunction, Vec<Expr>),
    /// `top_n(...)`.
    TopN(TopN),
    /// `top_n_of(top_n(...), ..., N, order)`.
    TopNOf(Vec<TopN>, i64, Order),
    /// `relabels(expr, src='..', dst='..')`.
    Relabels(Box<Expr>, Label, Label),
    /// `aggregate_labels(expr, func[(labels)])`.
    AggregateLabels(Box<Expr>, LabelAggregation, Vec<String>),
    /// `sort_values(expr, N, order, aggregation)` (aggregation may be left empty).
    SortValues(Box<Expr>, i64, Order, Option<Aggregation>),
    /// `sort_label_values(expr, order, labels)`.
    SortLabelValues(Box<Expr>, Order, Vec<String>),
    /// `baseline(metric, kind)`.
    Baseline(MetricRef, BaselineKind),
}

impl fmt::Display for Label {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}={}{}{}",
            self.name, self.quote, self.value, self.quote
        )
    }
}

impl fmt::Display for MetricRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)?;
        if let Some(labels) = &self.labels {
            f.write_str("{")?;
            for (i, l) in labels.iter().enumerate() {
                if i > 0 {
                    f.write_str(",")?;
                }
                write!(f, "{l}")?;
            }
            f.write_str("}")?;
        }
        Ok(())
    }
}

fn order_text(o: Order) -> &'static str {
    match o {
        Order::Asc => "asc",
        Order::Des => "des",
    }
}

impl fmt::Display for TopN {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "top_n({},{},{}",
            self.metric,
            self.n,
            order_text(self.order)
        )?;
        for a in &self.attributes {
            let op = if a.equal { "=" } else { "!=" };
            write!(f, ",attr{}{}'{}'", a.index, op, a.value)?;
        }
        f.write_str(")")
    }
}

/// The source text without whitespace, as ANTLR's `getText()` gives it (used in OAP messages).
impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::Metric(m) => write!(f, "{m}"),
            Expr::Scalar { text, .. } => f.write_str(text),
            Expr::Paren(e) => write!(f, "({e})"),
            Expr::Binary {
                op,
                bool_modifier,
                left,
                right,
            } => {
                write!(f, "{left}{}", op.symbol())?;
                if *bool_modifier {
                    f.write_str("bool")?;
                }
                write!(f, "{right}")
            }
            Expr::Aggregation(a, e) => write!(f, "{}({e})", a.name()),
            Expr::Math(m, e) => write!(f, "{}({e})", m.name()),
            Expr::Round(e, n) => write!(f, "round({e},{n})"),
            Expr::Trend(t, m, n) => {
                let name = match t {
                    Trend::Increase => "increase",
                    Trend::Rate => "rate",
                };
                write!(f, "{name}({m},{n})")
            }
            Expr::Logical(l, es) => {
                let name = match l {
                    LogicalFunction::ViewAsSeq => "view_as_seq",
                    LogicalFunction::IsPresent => "is_present",
                };
                write!(f, "{name}(")?;
                for (i, e) in es.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    write!(f, "{e}")?;
                }
                f.write_str(")")
            }
            Expr::TopN(t) => write!(f, "{t}"),
            Expr::TopNOf(ts, n, o) => {
                f.write_str("top_n_of(")?;
                for t in ts {
                    write!(f, "{t},")?;
                }
                write!(f, "{n},{})", order_text(*o))
            }
            Expr::Relabels(e, a, b) => write!(f, "relabels({e},{a},{b})"),
            Expr::AggregateLabels(e, func, labels) => {
                let name = match func {
                    LabelAggregation::Sum => "sum",
                    LabelAggregation::Avg => "avg",
                    LabelAggregation::Max => "max",
                    LabelAggregation::Min => "min",
                };
                write!(f, "aggregate_labels({e},{name}")?;
                if !labels.is_empty() {
                    write!(f, "({})", labels.join(","))?;
                }
                f.write_str(")")
            }
            Expr::SortValues(e, n, o, a) => write!(
                f,
                "sort_values({e},{n},{},{})",
                order_text(*o),
                a.map(|a| a.name()).unwrap_or("")
            ),
            Expr::SortLabelValues(e, o, labels) => write!(
                f,
                "sort_label_values({e},{},{})",
                order_text(*o),
                labels.join(",")
            ),
            Expr::Baseline(m, k) => {
                let kind = match k {
                    BaselineKind::Value => "value",
                    BaselineKind::Upper => "upper",
                    BaselineKind::Lower => "lower",
                };
                write!(f, "baseline({m},{kind})")
            }
        }
    }
}
