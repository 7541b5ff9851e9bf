//! Checking a parsed script against LAL's vocabulary, producing the typed program the
//! interpreter runs. Every misuse (unknown section, statement in the wrong place, unknown
//! function, bad regexp) is reported here with its position.
use regex::Regex;

use crate::ast::{Arg, Block, Expr, IfStmt, SExpr, Script, Stmt, TemplatePart};
use crate::error::ParseError;
use crate::span::{Span, Spanned};

/// What the checker needs to know about the rule a script belongs to.
#[derive(Debug, Clone, Default)]
pub struct CompileOptions {
    /// The rule's `outputType` (`None` or `Log` = a log record; others such as `SlowSQL` accept
    /// their own extractor fields).
    pub output_type: Option<String>,
    /// Layer names defined by the rule file's `layerDefinitions`, valid besides OAP's layers.
    pub extra_layers: Vec<String>,
}

/// A checked script, ready to run.
#[derive(Debug, Clone)]
pub struct Program {
    pub(crate) filter: Vec<FilterStmt>,
}

#[derive(Debug, Clone)]
pub(crate) struct IfChain<S> {
    pub(crate) branches: Vec<(SExpr, Vec<S>)>,
    pub(crate) otherwise: Vec<S>,
}

#[derive(Debug, Clone)]
pub(crate) enum FilterStmt {
    If(IfChain<FilterStmt>),
    Abort,
    Text {
        patterns: Vec<Regex>,
        abort_on_failure: bool,
    },
    Json {
        abort_on_failure: bool,
    },
    Yaml {
        abort_on_failure: bool,
    },
    Extractor(Vec<ExtractStmt>),
    Sink(Vec<SinkStmt>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Field {
    Service,
    Instance,
    Endpoint,
    Layer,
    TraceId,
    SegmentId,
    SpanId,
}

#[derive(Debug, Clone)]
pub(crate) enum ExtractStmt {
    If(IfChain<ExtractStmt>),
    Abort,
    Field(Field, SExpr),
    Timestamp(SExpr, Option<SExpr>),
    Tag(Vec<(String, SExpr)>),
    Metrics(Vec<MetricsStmt>),
    /// A field of a non-log output type (`statement`, `latency`, …): evaluated, not persisted.
    Output(String, SExpr),
    /// `slowSql { … }` / `sampledTrace { … }`.
    OutputBlock(Vec<ExtractStmt>),
}

#[derive(Debug, Clone)]
pub(crate) enum MetricsStmt {
    If(IfChain<MetricsStmt>),
    Name(SExpr),
    Timestamp(SExpr),
    Labels(Vec<(String, SExpr)>),
    Value(SExpr),
}

#[derive(Debug, Clone)]
pub(crate) enum SinkStmt {
    If(IfChain<SinkStmt>),
    Sampler(Vec<SamplerStmt>),
    Enforcer,
    Dropper,
}

#[derive(Debug, Clone)]
pub(crate) enum SamplerStmt {
    If(IfChain<SamplerStmt>),
    RateLimit { id: SExpr, rpm: SExpr },
    Possibility { percentage: SExpr },
}

/// Checks `script` and builds its program.
pub fn compile(script: &Script, options: &CompileOptions) -> Result<Program, ParseError> {
    let checker = Checker {
        options: options.clone(),
    };
    let mut filter = None;
    for stmt in &script.stmts {
        match &stmt.node {
            Stmt::Section { name, args, body } if name.node == "filter" => {
                no_args(name, args)?;
                if filter.is_some() {
                    return Err(ParseError::new(
                        "LAL301",
                        name.span,
                        "a script has exactly one `filter { }`",
                    ));
                }
                filter = Some(checker.block(body, Checker::filter_stmt)?);
            }
            _ => {
                return Err(ParseError::new(
                    "LAL301",
                    stmt.span,
                    "a script must consist of one `filter { }` block",
                ))
            }
        }
    }
    match filter {
        Some(filter) => Ok(Program { filter }),
        None => Err(ParseError::new(
            "LAL301",
            Span {
                line: 1,
                col: 1,
                ..Span::default()
            },
            "a script must consist of one `filter { }` block",
        )),
    }
}

struct Checker {
    options: CompileOptions,
}

type StmtFn<S> = fn(&Checker, &Spanned<Stmt>) -> Result<S, ParseError>;

fn no_args(name: &Spanned<String>, args: &[Arg]) -> Result<(), ParseError> {
    if args.is_empty() {
        Ok(())
    } else {
        Err(ParseError::new(
            "LAL306",
            name.span,
            format!("`{}` takes no arguments", name.node),
        ))
    }
}

/// The single positional argument of a command.
fn one_value<'s>(name: &Spanned<String>, args: &'s [Arg]) -> Result<&'s SExpr, ParseError> {
    match args {
        [Arg::Positional(e)] => Ok(e),
        _ => Err(ParseError::new(
            "LAL306",
            name.span,
            format!("`{}` takes exactly one value", name.node),
        )),
    }
}

fn pairs(name: &Spanned<String>, args: &[Arg]) -> Result<Vec<(String, SExpr)>, ParseError> {
    let mut out = Vec::new();
    for arg in args {
        match arg {
            Arg::Named { key, value } => out.push((key.node.clone(), value.clone())),
            Arg::Positional(e) => {
                return Err(ParseError::new(
                    "LAL306",
                    e.span,
                    format!("`{}` takes `key: value` pairs", name.node),
                ))
            }
        }
    }
    if out.is_empty() {
        return Err(ParseError::new(
            "LAL306",
            name.span,
            format!("`{}` needs at least one `key: value` pair", name.node),
        ));
    }
    Ok(out)
}

fn misplaced(stmt: &Spanned<Stmt>, place: &str) -> ParseError {
    let what = match &stmt.node {
        Stmt::If(_) => "if".to_string(),
        Stmt::Section { name, .. } | Stmt::Command { name, .. } => name.node.clone(),
    };
    ParseError::new(
        "LAL302",
        stmt.span,
        format!("`{what}` is not allowed in {place}"),
    )
}

fn constant_string(e: &SExpr, what: &str) -> Result<String, ParseError> {
    match &e.node {
        Expr::Str(s) => Ok(s.clone()),
        _ => Err(ParseError::new(
            "LAL307",
            e.span,
            format!("{what} must be a constant string"),
        )),
    }
}

fn constant_bool(e: &SExpr, what: &str) -> Result<bool, ParseError> {
    match &e.node {
        Expr::Bool(b) => Ok(*b),
        _ => Err(ParseError::new(
            "LAL307",
            e.span,
            format!("{what} must be `true` or `false`"),
        )),
    }
}

/// The properties `log.<name>` can read.
pub(crate) const LOG_PROPERTIES: &[&str] = &[
    "service",
    "serviceInstance",
    "endpoint",
    "layer",
    "timestamp",
    "body",
    "tags",
    "traceContext",
];

const CAST_TYPES: &[&str] = &[
    "String", "Long", "Integer", "Double", "Float", "Boolean", "Number", "long", "int", "double",
    "float", "boolean",
];

impl Checker {
    fn block<S>(&self, block: &Block, f: StmtFn<S>) -> Result<Vec<S>, ParseError> {
        block.stmts.iter().map(|s| f(self, s)).collect()
    }

    fn if_chain<S>(&self, stmt: &IfStmt, f: StmtFn<S>) -> Result<IfChain<S>, ParseError> {
        let mut branches = Vec::new();
        for (cond, body) in &stmt.branches {
            self.expr(cond)?;
            branches.push((cond.clone(), self.block(body, f)?));
        }
        let otherwise = match &stmt.otherwise {
            Some(b) => self.block(b, f)?,
            None => Vec::new(),
        };
        Ok(IfChain {
            branches,
            otherwise,
        })
    }

    fn filter_stmt(&self, stmt: &Spanned<Stmt>) -> Result<FilterStmt, ParseError> {
        match &stmt.node {
            Stmt::If(i) => Ok(FilterStmt::If(self.if_chain(i, Checker::filter_stmt)?)),
            Stmt::Section { name, args, body } => {
                no_args(name, args)?;
                match name.node.as_str() {
                    "abort" => {
                        self.empty(body, "abort")?;
                        Ok(FilterStmt::Abort)
                    }
                    "text" => self.text(body),
                    "json" => Ok(FilterStmt::Json {
                        abort_on_failure: self.parser_options(body, "json")?,
                    }),
                    "yaml" => Ok(FilterStmt::Yaml {
                        abort_on_failure: self.parser_options(body, "yaml")?,
                    }),
                    "extractor" => Ok(FilterStmt::Extractor(
                        self.block(body, Checker::extract_stmt)?,
                    )),
                    "sink" => Ok(FilterStmt::Sink(self.block(body, Checker::sink_stmt)?)),
                    _ => Err(ParseError::new(
                        "LAL302",
                        name.span,
                        format!("unknown section `{}` in filter", name.node),
                    )),
                }
            }
            Stmt::Command { .. } => Err(misplaced(stmt, "filter")),
        }
    }

    fn empty(&self, body: &Block, what: &str) -> Result<(), ParseError> {
        match body.stmts.first() {
            None => Ok(()),
            Some(s) => Err(misplaced(s, &format!("`{what}`"))),
        }
    }

    fn parser_options(&self, body: &Block, what: &str) -> Result<bool, ParseError> {
        let mut abort_on_failure = true;
        for stmt in &body.stmts {
            match &stmt.node {
                Stmt::Command { name, args } if name.node == "abortOnFailure" => {
                    abort_on_failure = constant_bool(one_value(name, args)?, "abortOnFailure")?;
                }
                _ => return Err(misplaced(stmt, &format!("`{what}`"))),
            }
        }
        Ok(abort_on_failure)
    }

    fn text(&self, body: &Block) -> Result<FilterStmt, ParseError> {
        let mut patterns = Vec::new();
        let mut abort_on_failure = true;
        for stmt in &body.stmts {
            match &stmt.node {
                Stmt::Command { name, args } if name.node == "regexp" => {
                    let e = one_value(name, args)?;
                    let src = constant_string(e, "a regexp")?;
                    let re = Regex::new(&src).map_err(|err| {
                        ParseError::new("LAL308", e.span, format!("invalid regexp: {err}"))
                    })?;
                    patterns.push(re);
                }
                Stmt::Command { name, args } if name.node == "abortOnFailure" => {
                    abort_on_failure = constant_bool(one_value(name, args)?, "abortOnFailure")?;
                }
                _ => return Err(misplaced(stmt, "`text`")),
            }
        }
        Ok(FilterStmt::Text {
            patterns,
            abort_on_failure,
        })
    }

    fn has_custom_output(&self) -> bool {
        self.options
            .output_type
            .as_deref()
            .is_some_and(|t| !t.is_empty() && t != "Log")
    }

    fn extract_stmt(&self, stmt: &Spanned<Stmt>) -> Result<ExtractStmt, ParseError> {
        let (name, args) = match &stmt.node {
            Stmt::If(i) => return Ok(ExtractStmt::If(self.if_chain(i, Checker::extract_stmt)?)),
            Stmt::Section { name, args, body } => {
                no_args(name, args)?;
                return match name.node.as_str() {
                    "abort" => {
                        self.empty(body, "abort")?;
                        Ok(ExtractStmt::Abort)
                    }
                    "metrics" => Ok(ExtractStmt::Metrics(
                        self.block(body, Checker::metrics_stmt)?,
                    )),
                    "slowSql" | "sampledTrace" => Ok(ExtractStmt::OutputBlock(
                        self.block(body, Checker::output_stmt)?,
                    )),
                    _ => Err(ParseError::new(
                        "LAL302",
                        name.span,
                        format!("unknown section `{}` in extractor", name.node),
                    )),
                };
            }
            Stmt::Command { name, args } => (name, args),
        };
        let field = match name.node.as_str() {
            "service" => Some(Field::Service),
            "instance" => Some(Field::Instance),
            "endpoint" => Some(Field::Endpoint),
            "layer" => Some(Field::Layer),
            "traceId" => Some(Field::TraceId),
            "segmentId" => Some(Field::SegmentId),
            "spanId" => Some(Field::SpanId),
            _ => None,
        };
        if let Some(field) = field {
            let e = one_value(name, args)?;
            self.expr(e)?;
            if field == Field::Layer {
                self.check_layer_literal(e)?;
            }
            return Ok(ExtractStmt::Field(field, e.clone()));
        }
        match name.node.as_str() {
            "timestamp" => match args.as_slice() {
                [Arg::Positional(v)] => {
                    self.expr(v)?;
                    Ok(ExtractStmt::Timestamp(v.clone(), None))
                }
                [Arg::Positional(v), Arg::Positional(fmt)] => {
                    self.expr(v)?;
                    self.expr(fmt)?;
                    Ok(ExtractStmt::Timestamp(v.clone(), Some(fmt.clone())))
                }
                _ => Err(ParseError::new(
                    "LAL306",
                    name.span,
                    "`timestamp` takes a value and an optional format",
                )),
            },
            "tag" => {
                let kv = pairs(name, args)?;
                for (_, v) in &kv {
                    self.expr(v)?;
                }
                Ok(ExtractStmt::Tag(kv))
            }
            _ if self.has_custom_output() => self.output_stmt(stmt),
            _ => Err(ParseError::new(
                "LAL302",
                name.span,
                format!("unknown extractor statement `{}`", name.node),
            )),
        }
    }

    /// A field of a non-log output (`statement parsed.x`, `latency …`).
    fn output_stmt(&self, stmt: &Spanned<Stmt>) -> Result<ExtractStmt, ParseError> {
        match &stmt.node {
            Stmt::If(i) => Ok(ExtractStmt::If(self.if_chain(i, Checker::output_stmt)?)),
            Stmt::Command { name, args } => {
                let e = one_value(name, args)?;
                self.expr(e)?;
                Ok(ExtractStmt::Output(name.node.clone(), e.clone()))
            }
            Stmt::Section { .. } => Err(misplaced(stmt, "an output block")),
        }
    }

    fn check_layer_literal(&self, e: &SExpr) -> Result<(), ParseError> {
        if let Expr::Str(name) = &e.node {
            let known = skylark_core::Layer::from_name(name).is_some()
                || self.options.extra_layers.iter().any(|l| l == name);
            if !known {
                return Err(ParseError::new(
                    "LAL309",
                    e.span,
                    format!("unknown layer `{name}`"),
                ));
            }
        }
        Ok(())
    }

    fn metrics_stmt(&self, stmt: &Spanned<Stmt>) -> Result<MetricsStmt, ParseError> {
        match &stmt.node {
            Stmt::If(i) => Ok(MetricsStmt::If(self.if_chain(i, Checker::metrics_stmt)?)),
            Stmt::Command { name, args } => {
                if name.node == "labels" {
                    let kv = pairs(name, args)?;
                    for (_, v) in &kv {
                        self.expr(v)?;
                    }
                    return Ok(MetricsStmt::Labels(kv));
                }
                let make: fn(SExpr) -> MetricsStmt = match name.node.as_str() {
                    "name" => MetricsStmt::Name,
                    "timestamp" => MetricsStmt::Timestamp,
                    "value" => MetricsStmt::Value,
                    _ => return Err(misplaced(stmt, "`metrics`")),
                };
                let e = one_value(name, args)?;
                self.expr(e)?;
                Ok(make(e.clone()))
            }
            Stmt::Section { .. } => Err(misplaced(stmt, "`metrics`")),
        }
    }

    fn sink_stmt(&self, stmt: &Spanned<Stmt>) -> Result<SinkStmt, ParseError> {
        match &stmt.node {
            Stmt::If(i) => Ok(SinkStmt::If(self.if_chain(i, Checker::sink_stmt)?)),
            Stmt::Section { name, args, body } => {
                no_args(name, args)?;
                match name.node.as_str() {
                    "sampler" => Ok(SinkStmt::Sampler(self.block(body, Checker::sampler_stmt)?)),
                    "enforcer" => {
                        self.empty(body, "enforcer")?;
                        Ok(SinkStmt::Enforcer)
                    }
                    "dropper" => {
                        self.empty(body, "dropper")?;
                        Ok(SinkStmt::Dropper)
                    }
                    _ => Err(misplaced(stmt, "`sink`")),
                }
            }
            Stmt::Command { .. } => Err(misplaced(stmt, "`sink`")),
        }
    }

    fn sampler_stmt(&self, stmt: &Spanned<Stmt>) -> Result<SamplerStmt, ParseError> {
        match &stmt.node {
            Stmt::If(i) => Ok(SamplerStmt::If(self.if_chain(i, Checker::sampler_stmt)?)),
            Stmt::Section { name, args, body } if name.node == "rateLimit" => {
                let id = one_value(name, args)?;
                self.expr(id)?;
                let mut rpm = None;
                for s in &body.stmts {
                    match &s.node {
                        Stmt::Command { name, args } if name.node == "rpm" => {
                            let e = one_value(name, args)?;
                            self.expr(e)?;
                            rpm = Some(e.clone());
                        }
                        _ => return Err(misplaced(s, "`rateLimit`")),
                    }
                }
                let rpm = rpm.ok_or_else(|| {
                    ParseError::new("LAL306", name.span, "`rateLimit` needs `rpm <n>`")
                })?;
                Ok(SamplerStmt::RateLimit {
                    id: id.clone(),
                    rpm,
                })
            }
            Stmt::Section { name, args, .. } | Stmt::Command { name, args }
                if name.node == "possibility" =>
            {
                if let Some(body) = body_of(stmt) {
                    self.empty(body, "possibility")?;
                }
                let e = one_value(name, args)?;
                self.expr(e)?;
                Ok(SamplerStmt::Possibility {
                    percentage: e.clone(),
                })
            }
            _ => Err(misplaced(stmt, "`sampler`")),
        }
    }

    fn expr(&self, e: &SExpr) -> Result<(), ParseError> {
        match &e.node {
            Expr::Null | Expr::Bool(_) | Expr::Int(_) | Expr::Float(_) | Expr::Str(_) => Ok(()),
            Expr::Template(parts) => {
                for p in parts {
                    if let TemplatePart::Expr(x) = p {
                        self.expr(x)?;
                    }
                }
                Ok(())
            }
            Expr::Ident(name) => match name.as_str() {
                "log" | "parsed" | "ProcessRegistry" => Ok(()),
                _ => Err(ParseError::new(
                    "LAL303",
                    e.span,
                    format!("unknown name `{name}`"),
                )),
            },
            Expr::Call { name, args } => {
                match name.as_str() {
                    "tag" | "sourceAttribute" => {
                        if args.len() != 1 {
                            return Err(ParseError::new(
                                "LAL304",
                                e.span,
                                format!("`{name}` takes one argument"),
                            ));
                        }
                    }
                    _ => {
                        return Err(ParseError::new(
                            "LAL304",
                            e.span,
                            format!("unknown function `{name}`"),
                        ))
                    }
                }
                args.iter().try_for_each(|a| self.expr(a))
            }
            Expr::Property { target, name, .. } => {
                if matches!(&target.node, Expr::Ident(n) if n == "log")
                    && !LOG_PROPERTIES.contains(&name.as_str())
                {
                    return Err(ParseError::new(
                        "LAL303",
                        e.span,
                        format!("`log` has no property `{name}`"),
                    ));
                }
                self.expr(target)
            }
            Expr::Method { target, args, .. } => {
                self.expr(target)?;
                args.iter().try_for_each(|a| self.expr(a))
            }
            Expr::Index { target, index } => {
                self.expr(target)?;
                self.expr(index)
            }
            Expr::Unary { expr, .. } => self.expr(expr),
            Expr::Binary { lhs, rhs, .. } | Expr::Elvis { lhs, rhs } => {
                self.expr(lhs)?;
                self.expr(rhs)
            }
            Expr::Cast { expr, ty } => {
                if !CAST_TYPES.contains(&ty.node.as_str()) {
                    return Err(ParseError::new(
                        "LAL305",
                        ty.span,
                        format!("unknown type `{}`", ty.node),
                    ));
                }
                self.expr(expr)
            }
            Expr::Ternary {
                cond,
                then,
                otherwise,
            } => {
                self.expr(cond)?;
                self.expr(then)?;
                self.expr(otherwise)
            }
        }
    }
}

fn body_of(stmt: &Spanned<Stmt>) -> Option<&Block> {
    match &stmt.node {
        Stmt::Section { body, .. } => Some(body),
        _ => None,
    }
}
