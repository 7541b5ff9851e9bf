//! Compile-time checks and metadata of a MAL expression (OAP's `MALMetadataExtractor`).
use crate::ast::{BinOp, Closure, Expr, ExprKind, Stmt};
use crate::error::CompileError;
use crate::eval::value::CLOSURE_METHODS;
use crate::eval::CLASSES;
use crate::span::Span;
use skylark_core::{MetricFunction, Scope};

/// Sample-family methods: name and allowed argument counts.
const METHODS: &[(&str, &[usize])] = &[
    ("tagEqual", &[1, 2, 4, 6, 8, 10]),
    ("tagNotEqual", &[1, 2, 4, 6, 8, 10]),
    ("tagMatch", &[1, 2, 4, 6, 8, 10]),
    ("tagNotMatch", &[1, 2, 4, 6, 8, 10]),
    ("valueEqual", &[1]),
    ("valueNotEqual", &[1]),
    ("valueGreater", &[1]),
    ("valueGreaterEqual", &[1]),
    ("valueLess", &[1]),
    ("valueLessEqual", &[1]),
    ("sum", &[0, 1]),
    ("avg", &[0, 1]),
    ("min", &[0, 1]),
    ("max", &[0, 1]),
    ("count", &[0, 1]),
    ("plus", &[1]),
    ("minus", &[1]),
    ("multiply", &[1]),
    ("div", &[1]),
    ("negative", &[0]),
    ("safeDiv", &[1]),
    ("increase", &[1]),
    ("rate", &[1]),
    ("irate", &[0]),
    ("tag", &[1]),
    ("filter", &[1]),
    ("forEach", &[2]),
    ("retagByK8sMeta", &[4]),
    ("histogram", &[0, 1, 2]),
    ("histogram_percentile", &[1]),
    ("downsampling", &[1]),
    ("decorate", &[1]),
    ("service", &[2, 3]),
    ("instance", &[3, 5, 6]),
    ("endpoint", &[3, 4]),
    ("process", &[4]),
    ("serviceRelation", &[4, 6]),
    ("serviceInstanceRelation", &[6, 8]),
    ("processRelation", &[6]),
];

/// The storage downsampling a rule asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Downsampling {
    Avg,
    Sum,
    Latest,
    SumPerMin,
    Max,
    Min,
}

impl Downsampling {
    fn from_name(name: &str) -> Option<Downsampling> {
        Some(match name {
            "AVG" => Downsampling::Avg,
            "SUM" => Downsampling::Sum,
            "LATEST" => Downsampling::Latest,
            "SUM_PER_MIN" => Downsampling::SumPerMin,
            "MAX" => Downsampling::Max,
            "MIN" => Downsampling::Min,
            _ => return None,
        })
    }
}

/// What kind of value a rule emits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ValueKind {
    Single,
    Labeled,
    Histogram,
    HistogramPercentile,
}

/// Compile-time facts about one expression.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Metadata {
    pub(crate) inputs: Vec<String>,
    pub(crate) scope: Option<Scope>,
    pub(crate) scope_labels: Vec<String>,
    pub(crate) aggregation_labels: Vec<String>,
    pub(crate) downsampling: Downsampling,
    pub(crate) histogram: bool,
    pub(crate) percentiles: Vec<u32>,
}

impl Metadata {
    pub(crate) fn value_kind(&self) -> ValueKind {
        if self.histogram {
            if self.percentiles.is_empty() {
                ValueKind::Histogram
            } else {
                ValueKind::HistogramPercentile
            }
        } else if self
            .aggregation_labels
            .iter()
            .any(|l| !self.scope_labels.contains(l))
        {
            ValueKind::Labeled
        } else {
            ValueKind::Single
        }
    }

    /// The storage function OAP picks; `None` if that combination does not exist.
    pub(crate) fn function(&self) -> Option<MetricFunction> {
        use Downsampling as D;
        use MetricFunction as F;
        use ValueKind as K;
        Some(match (self.downsampling, self.value_kind()) {
            (D::Avg, K::Single) => F::Avg,
            (D::Avg, K::Labeled) => F::AvgLabeled,
            (D::Avg, K::Histogram) => F::AvgHistogram,
            (D::Avg, K::HistogramPercentile) => F::AvgHistogramPercentile,
            (D::Sum, K::Single) => F::Sum,
            (D::Sum, K::Labeled) => F::SumLabeled,
            (D::Sum, K::Histogram) => F::SumHistogram,
            (D::Sum, K::HistogramPercentile) => F::SumHistogramPercentile,
            (D::SumPerMin, K::Single) => F::SumPerMin,
            (D::SumPerMin, K::Labeled) => F::SumPerMinLabeled,
            (D::Latest, K::Single) => F::Latest,
            (D::Latest, K::Labeled) => F::LatestLabeled,
            (D::Max, K::Single) => F::Max,
            (D::Max, K::Labeled) => F::MaxLabeled,
            (D::Min, K::Single) => F::Min,
            (D::Min, K::Labeled) => F::MinLabeled,
            _ => return None,
        })
    }
}

fn push_unique(v: &mut Vec<String>, items: impl IntoIterator<Item = String>) {
    for i in items {
        if !v.contains(&i) {
            v.push(i);
        }
    }
}

fn string_list(e: &Expr) -> Option<Vec<String>> {
    match &e.kind {
        ExprKind::List(items) => items
            .iter()
            .map(|i| match &i.kind {
                ExprKind::Str(s) => Some(s.clone()),
                _ => None,
            })
            .collect(),
        _ => None,
    }
}

/// Validates `expr` against the function registry and extracts its metadata.
pub(crate) fn analyze(expr: &Expr) -> Result<Metadata, CompileError> {
    let mut md = Metadata {
        inputs: Vec::new(),
        scope: None,
        scope_labels: Vec::new(),
        aggregation_labels: Vec::new(),
        downsampling: Downsampling::Avg,
        histogram: false,
        percentiles: Vec::new(),
    };
    walk(expr, &mut md)?;
    Ok(md)
}

fn walk(e: &Expr, md: &mut Metadata) -> Result<(), CompileError> {
    match &e.kind {
        ExprKind::Number(..) | ExprKind::Str(_) | ExprKind::Bool(_) | ExprKind::Null => Ok(()),
        ExprKind::Ident(name) => {
            if !CLASSES.contains(&name.as_str()) {
                push_unique(&mut md.inputs, [name.clone()]);
            }
            Ok(())
        }
        ExprKind::List(items) => items.iter().try_for_each(|i| walk(i, md)),
        ExprKind::Property { target, name, .. } => check_enum(target, name, e.span),
        ExprKind::Unary { expr, .. } => walk(expr, md),
        ExprKind::Binary { op, lhs, rhs } => {
            if !matches!(op, BinOp::Add | BinOp::Sub | BinOp::Mul | BinOp::Div) {
                return Err(CompileError::new(
                    format!("operator {op:?} cannot be used on sample families"),
                    e.span,
                ));
            }
            walk(lhs, md)?;
            walk(rhs, md)
        }
        ExprKind::Call {
            target: None,
            name,
            name_span,
            args,
            ..
        } => {
            if name == "time" {
                if !args.is_empty() {
                    return Err(CompileError::new("time() takes no arguments", *name_span));
                }
                return Ok(());
            }
            Err(CompileError::new(
                format!("unknown function '{name}'"),
                *name_span,
            ))
        }
        ExprKind::Call {
            target: Some(target),
            name,
            name_span,
            args,
            ..
        } => {
            walk(target, md)?;
            let Some((_, arities)) = METHODS.iter().find(|(n, _)| n == name) else {
                return Err(CompileError::new(
                    format!("unknown function '{name}'"),
                    *name_span,
                ));
            };
            // Label filters take any number of label/value pairs.
            let pair_filter = name.starts_with("tag") && name != "tag" && args.len() % 2 == 0;
            if !arities.contains(&args.len()) && !pair_filter {
                let allowed: Vec<String> = arities.iter().map(usize::to_string).collect();
                return Err(CompileError::new(
                    format!(
                        "function '{name}' takes {} argument(s), got {}",
                        allowed.join(" or "),
                        args.len()
                    ),
                    *name_span,
                ));
            }
            method_facts(name, args, md, e.span)?;
            for a in args {
                match &a.kind {
                    ExprKind::Closure(c) => check_closure(c)?,
                    _ if name == "downsampling" => {}
                    _ => walk(a, md)?,
                }
            }
            Ok(())
        }
        ExprKind::Closure(c) => Err(CompileError::new(
            "a closure can only be a function argument",
            c.span,
        )),
        _ => Err(CompileError::new(
            "this expression is not valid at MAL level",
            e.span,
        )),
    }
}

fn check_enum(target: &Expr, name: &str, span: Span) -> Result<(), CompileError> {
    let ExprKind::Ident(class) = &target.kind else {
        return Err(CompileError::new(
            format!("unexpected property access '.{name}'"),
            span,
        ));
    };
    let ok = match class.as_str() {
        // Unknown layers resolve to UNDEFINED at run time, as in OAP.
        "Layer" => true,
        "DetectPoint" => matches!(name, "CLIENT" | "SERVER" | "PROXY"),
        "TimeUnit" => crate::context::TimeUnit::from_name(name).is_some(),
        "DownsamplingType" => Downsampling::from_name(name).is_some(),
        "K8sRetagType" => name == "Pod2Service",
        _ => {
            return Err(CompileError::new(
                format!("'{class}' is not a known enum (sample families have no properties)"),
                span,
            ))
        }
    };
    if ok {
        Ok(())
    } else {
        Err(CompileError::new(
            format!("unknown {class} value '{name}'"),
            span,
        ))
    }
}

fn method_facts(
    name: &str,
    args: &[Expr],
    md: &mut Metadata,
    span: Span,
) -> Result<(), CompileError> {
    let need_closure = |i: usize| -> Result<(), CompileError> {
        match args.get(i).map(|a| &a.kind) {
            Some(ExprKind::Closure(_)) => Ok(()),
            _ => Err(CompileError::new(
                format!("argument {} of '{name}' must be a closure", i + 1),
                args.get(i).map(|a| a.span).unwrap_or(span),
            )),
        }
    };
    match name {
        "sum" | "avg" | "min" | "max" | "count" => {
            if let Some(a) = args.first() {
                let labels = string_list(a).ok_or_else(|| {
                    CompileError::new(format!("'{name}' takes a list of label names"), a.span)
                })?;
                push_unique(&mut md.aggregation_labels, labels);
            }
        }
        "service"
        | "instance"
        | "endpoint"
        | "process"
        | "serviceRelation"
        | "serviceInstanceRelation"
        | "processRelation" => {
            md.scope = Some(match name {
                "service" => Scope::Service,
                "instance" => Scope::ServiceInstance,
                "endpoint" => Scope::Endpoint,
                "process" => Scope::Process,
                "serviceRelation" => Scope::ServiceRelation,
                "serviceInstanceRelation" => Scope::ServiceInstanceRelation,
                _ => Scope::ProcessRelation,
            });
            for (i, a) in args.iter().enumerate() {
                if let Some(labels) = string_list(a) {
                    if name == "service" && i > 0 {
                        continue;
                    }
                    push_unique(&mut md.scope_labels, labels);
                } else if let ExprKind::Str(s) = &a.kind {
                    // Single-label arguments (layer, component, process ids) of these scopes.
                    if matches!(name, "process" | "serviceRelation" | "processRelation") {
                        push_unique(&mut md.scope_labels, [s.clone()]);
                    }
                }
            }
            if name == "instance" && args.len() == 6 {
                need_closure(5)?;
            }
        }
        "histogram" => {
            md.histogram = true;
            if let Some(a) = args.first() {
                if !matches!(a.kind, ExprKind::Str(_)) {
                    return Err(CompileError::new(
                        "histogram's first argument is the bucket label name",
                        a.span,
                    ));
                }
            }
            if let Some(ExprKind::Property { name: unit, .. }) = args.get(1).map(|a| &a.kind) {
                if crate::context::TimeUnit::from_name(unit).is_some_and(|u| u.millis() <= 0) {
                    return Err(CompileError::new(
                        format!("histogram unit {unit} is finer than milliseconds"),
                        args[1].span,
                    ));
                }
            }
        }
        "histogram_percentile" => {
            let bad =
                || CompileError::new("histogram_percentile takes a list of integer ranks", span);
            let ExprKind::List(items) = &args[0].kind else {
                return Err(bad());
            };
            let mut ranks = Vec::new();
            for i in items {
                match i.kind {
                    ExprKind::Number(n, _) if (0.0..=100.0).contains(&n) => ranks.push(n as u32),
                    _ => return Err(bad()),
                }
            }
            if ranks.is_empty() {
                return Err(bad());
            }
            md.percentiles = ranks;
        }
        "downsampling" => {
            let a = &args[0];
            let text = match &a.kind {
                ExprKind::Ident(n) => n.clone(),
                ExprKind::Property { target, name, .. } if matches!(&target.kind, ExprKind::Ident(c) if c == "DownsamplingType") => {
                    name.clone()
                }
                ExprKind::Str(s) => s.clone(),
                _ => String::new(),
            };
            md.downsampling = Downsampling::from_name(&text).ok_or_else(|| {
                CompileError::new(
                    format!("unknown downsampling type '{text}' (AVG, SUM, LATEST, SUM_PER_MIN, MAX, MIN)"),
                    a.span,
                )
            })?;
        }
        "tag" | "filter" | "decorate" => need_closure(0)?,
        "forEach" => need_closure(1)?,
        "increase" | "rate" => {
            if let ExprKind::Str(s) = &args[0].kind {
                if crate::eval::counter::parse_duration_ms(s).is_none() {
                    return Err(CompileError::new(
                        format!("invalid ISO-8601 duration '{s}'"),
                        args[0].span,
                    ));
                }
            }
        }
        _ => {}
    }
    Ok(())
}

/// Checks method names used inside a closure.
pub(crate) fn check_closure(c: &Closure) -> Result<(), CompileError> {
    c.body.iter().try_for_each(check_stmt)
}

fn check_stmt(s: &Stmt) -> Result<(), CompileError> {
    match s {
        Stmt::Expr(e) => check_closure_expr(e),
        Stmt::Var { value, .. } => value.as_ref().map_or(Ok(()), check_closure_expr),
        Stmt::If {
            cond,
            then,
            otherwise,
        } => {
            check_closure_expr(cond)?;
            then.iter().try_for_each(check_stmt)?;
            otherwise.iter().flatten().try_for_each(check_stmt)
        }
        Stmt::Return(e, _) => e.as_ref().map_or(Ok(()), check_closure_expr),
        Stmt::Block(b) => b.iter().try_for_each(check_stmt),
    }
}

fn check_closure_expr(e: &Expr) -> Result<(), CompileError> {
    let sub = |x: &Expr| check_closure_expr(x);
    match &e.kind {
        ExprKind::Call {
            target,
            name,
            name_span,
            args,
            ..
        } => {
            match target {
                None => {
                    return Err(CompileError::new(
                        format!("unknown function '{name}' in closure"),
                        *name_span,
                    ))
                }
                Some(t) => sub(t)?,
            }
            if !CLOSURE_METHODS.contains(&name.as_str()) {
                return Err(CompileError::new(
                    format!("unknown method '{name}' in closure"),
                    *name_span,
                ));
            }
            args.iter().try_for_each(sub)
        }
        ExprKind::List(items) => items.iter().try_for_each(sub),
        ExprKind::Map(entries) => entries.iter().try_for_each(|(k, v)| {
            sub(k)?;
            sub(v)
        }),
        ExprKind::Closure(c) => check_closure(c),
        ExprKind::Property { target, .. } => sub(target),
        ExprKind::Index { target, index } => {
            sub(target)?;
            sub(index)
        }
        ExprKind::Unary { expr, .. } | ExprKind::Cast { expr, .. } => sub(expr),
        ExprKind::Binary { lhs, rhs, .. } | ExprKind::Elvis { lhs, rhs } => {
            sub(lhs)?;
            sub(rhs)
        }
        ExprKind::Ternary {
            cond,
            then,
            otherwise,
        } => {
            sub(cond)?;
            sub(then)?;
            sub(otherwise)
        }
        ExprKind::Assign { target, value } => {
            sub(target)?;
            sub(value)
        }
        _ => Ok(()),
    }
}
