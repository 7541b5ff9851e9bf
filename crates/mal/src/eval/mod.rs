//! Evaluation of compiled MAL expressions on one batch of sample families.
pub(crate) mod counter;
pub(crate) mod family;
pub(crate) mod value;

use crate::ast::{BinOp, Closure, Expr, ExprKind, UnaryOp};
use crate::context::{EvalContext, TimeUnit};
use crate::error::EvalError;
use counter::{parse_duration_ms, CounterWindows};
use family::{Agg, TagTest};
use foldhash::HashMap;
use skylark_core::{Labels, Layer, MeterEntity, Sample, Scope};
use std::borrow::Cow;
use std::sync::{Arc, Mutex, RwLock};
use value::{Interp, RegexCache, Value};

/// Names that denote classes (enums, registries) rather than sample families.
pub(crate) const CLASSES: &[&str] = &[
    "Layer",
    "DetectPoint",
    "TimeUnit",
    "K8sRetagType",
    "DownsamplingType",
    "ProcessRegistry",
];

type EvalResult<T> = Result<T, EvalError>;

/// A value at MAL level: a sample family, borrowed from the batch until a function changes it,
/// or a plain value.
#[derive(Debug, Clone)]
pub(crate) enum MalValue<'s> {
    /// Samples; empty is OAP's `EMPTY`.
    Family(Cow<'s, [Sample]>),
    /// Anything else.
    Plain(Value),
}

impl MalValue<'_> {
    pub(crate) fn type_name(&self) -> &'static str {
        match self {
            MalValue::Family(_) => "sample family",
            MalValue::Plain(v) => v.type_name(),
        }
    }

    fn render(&self) -> String {
        match self {
            MalValue::Family(f) => format!("SampleFamily({} samples)", f.len()),
            MalValue::Plain(v) => v.render(),
        }
    }

    fn as_f64(&self) -> Option<f64> {
        match self {
            MalValue::Family(_) => None,
            MalValue::Plain(v) => v.as_f64(),
        }
    }
}

/// The input sample families of one rule, by metric name.
#[derive(Debug, Default)]
pub(crate) struct Inputs<'s> {
    families: Vec<(&'s str, &'s [Sample])>,
}

impl<'s> Inputs<'s> {
    pub(crate) fn push(&mut self, name: &'s str, samples: &'s [Sample]) {
        self.families.push((name, samples));
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.families.is_empty()
    }

    fn get(&self, name: &str) -> Option<&'s [Sample]> {
        self.families
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, f)| *f)
    }
}

/// An entity and its samples (scope labels removed), as the last scope call grouped them.
#[derive(Debug, Clone)]
pub(crate) struct EntityGroup {
    pub(crate) entity: MeterEntity,
    pub(crate) samples: Vec<Sample>,
}

/// Label lists and scope specs of calls whose arguments are all literals, resolved once per
/// rule set instead of once per evaluation. Keyed by the address of the argument expressions,
/// which the rule set owns and never moves or changes.
#[derive(Debug, Default)]
pub(crate) struct ConstantArgs {
    labels: RwLock<HashMap<usize, Arc<Vec<String>>>>,
    scopes: RwLock<HashMap<usize, Arc<ScopeSpec>>>,
}

/// Whether `e` evaluates to the same value every time: literals, lists of them and class
/// constants such as `Layer.GENERAL` (class names are capitalised; families are not).
fn is_literal(e: &Expr) -> bool {
    match &e.kind {
        ExprKind::Number(..) | ExprKind::Str(_) | ExprKind::Bool(_) | ExprKind::Null => true,
        ExprKind::List(items) => items.iter().all(is_literal),
        ExprKind::Property { target, .. } => {
            matches!(&target.kind, ExprKind::Ident(class) if class.starts_with(char::is_uppercase))
        }
        _ => false,
    }
}

fn cached<T>(
    map: &RwLock<HashMap<usize, Arc<T>>>,
    key: usize,
    make: impl FnOnce() -> EvalResult<T>,
) -> EvalResult<Arc<T>> {
    if let Some(v) = map.read().unwrap_or_else(|e| e.into_inner()).get(&key) {
        return Ok(v.clone());
    }
    let v = Arc::new(make()?);
    map.write()
        .unwrap_or_else(|e| e.into_inner())
        .insert(key, v.clone());
    Ok(v)
}

/// One scope call's arguments, resolved.
#[derive(Debug, Clone)]
struct ScopeSpec {
    scope: Scope,
    layer: Option<Layer>,
    /// Label lists naming each part of the entity, with the delimiter joining each.
    service: (Vec<String>, String),
    instance: (Vec<String>, String),
    endpoint: (Vec<String>, String),
    process: Vec<String>,
    dest_service: Vec<String>,
    dest_instance: Vec<String>,
    dest_process: Vec<String>,
    /// Single labels that also take part in grouping (layer, component, detect point).
    extra_keys: Vec<String>,
    layer_key: Option<String>,
    /// Every label the entity is grouped by ([`ScopeSpec::label_keys`]).
    keys: Vec<String>,
}

impl ScopeSpec {
    fn new(scope: Scope) -> ScopeSpec {
        ScopeSpec {
            scope,
            layer: None,
            service: (Vec::new(), ".".into()),
            instance: (Vec::new(), ".".into()),
            endpoint: (Vec::new(), ".".into()),
            process: Vec::new(),
            dest_service: Vec::new(),
            dest_instance: Vec::new(),
            dest_process: Vec::new(),
            extra_keys: Vec::new(),
            layer_key: None,
            keys: Vec::new(),
        }
    }

    fn label_keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = Vec::new();
        for k in self
            .service
            .0
            .iter()
            .chain(&self.instance.0)
            .chain(&self.endpoint.0)
            .chain(&self.process)
            .chain(&self.dest_service)
            .chain(&self.dest_instance)
            .chain(&self.dest_process)
            .chain(&self.extra_keys)
        {
            if !keys.contains(k) {
                keys.push(k.clone());
            }
        }
        keys
    }
}

/// Values of `keys` in `labels`, skipping empty ones, joined with `delimiter` (OAP's `dim`).
fn dim(labels: &Labels, keys: &[String], delimiter: &str) -> String {
    let delimiter = if delimiter.is_empty() { "." } else { delimiter };
    let mut out = String::new();
    for v in keys
        .iter()
        .filter_map(|k| labels.get(k).filter(|v| !v.is_empty()))
    {
        // Every part is non-empty, so an empty `out` means no part yet.
        if !out.is_empty() {
            out.push_str(delimiter);
        }
        out.push_str(v);
    }
    out
}

fn truncate(name: String, max: usize) -> String {
    match name.char_indices().nth(max) {
        Some((i, _)) => name[..i].to_string(),
        None => name,
    }
}

/// Evaluates one rule's expression.
pub(crate) struct MalEval<'a> {
    pub(crate) families: &'a Inputs<'a>,
    pub(crate) ctx: &'a EvalContext,
    pub(crate) counters: &'a Mutex<CounterWindows>,
    pub(crate) regexes: &'a RegexCache,
    pub(crate) constants: &'a ConstantArgs,
    /// The rule's metric name: counter state is keyed by it.
    pub(crate) metric_name: &'a str,
    /// Set by the last scope call evaluated.
    pub(crate) groups: Option<Vec<EntityGroup>>,
    /// Whether `groups` keep their samples' labels (labeled and histogram values read them;
    /// single values do not).
    pub(crate) group_labels: bool,
}

impl<'a> MalEval<'a> {
    pub(crate) fn eval(&mut self, e: &Expr) -> EvalResult<MalValue<'a>> {
        let plain = |v: Value| Ok(MalValue::Plain(v));
        match &e.kind {
            ExprKind::Number(n, true) if n.abs() < 9.0e15 => plain(Value::Int(*n as i64)),
            ExprKind::Number(n, _) => plain(Value::Float(*n)),
            ExprKind::Str(s) => plain(Value::Str(s.clone())),
            ExprKind::Bool(b) => plain(Value::Bool(*b)),
            ExprKind::Null => plain(Value::Null),
            ExprKind::Ident(name) if CLASSES.contains(&name.as_str()) => {
                plain(Value::Class(name.clone()))
            }
            ExprKind::Ident(name) => Ok(MalValue::Family(Cow::Borrowed(
                self.families.get(name).unwrap_or_default(),
            ))),
            ExprKind::List(items) => {
                let mut out = Vec::with_capacity(items.len());
                for i in items {
                    match self.eval(i)? {
                        MalValue::Plain(v) => out.push(v),
                        MalValue::Family(_) => {
                            return Err(EvalError::new("a list cannot hold sample families"))
                        }
                    }
                }
                plain(Value::List(out))
            }
            ExprKind::Property { target, name, .. } => match self.eval(target)? {
                MalValue::Plain(Value::Class(c)) => plain(Value::Enum(c, name.clone())),
                other => Err(EvalError::new(format!(
                    "cannot get property '{name}' of a {}",
                    other.type_name()
                ))),
            },
            ExprKind::Unary { op, expr } => {
                let v = self.eval(expr)?;
                match (op, v) {
                    (UnaryOp::Plus, v) => Ok(v),
                    (UnaryOp::Neg, MalValue::Family(f)) => {
                        Ok(MalValue::Family(family::map_values(f, |v| -v)))
                    }
                    (UnaryOp::Neg, MalValue::Plain(Value::Int(i))) => {
                        plain(Value::Int(i.wrapping_neg()))
                    }
                    (UnaryOp::Neg, MalValue::Plain(Value::Float(f))) => plain(Value::Float(-f)),
                    (_, v) => Err(EvalError::new(format!(
                        "operator {op:?} does not apply to a {}",
                        v.type_name()
                    ))),
                }
            }
            ExprKind::Binary { op, lhs, rhs } => {
                let l = self.eval(lhs)?;
                let r = self.eval(rhs)?;
                arithmetic(*op, l, r, self.regexes)
            }
            ExprKind::Call {
                target: None,
                name,
                args,
                ..
            } if name == "time" && args.is_empty() => {
                plain(Value::Int(self.ctx.now_ms.div_euclid(1000)))
            }
            ExprKind::Call {
                target: Some(target),
                name,
                args,
                ..
            } => {
                let t = self.eval(target)?;
                match t {
                    MalValue::Family(samples) => self.method(samples, name, args),
                    other => Err(EvalError::new(format!(
                        "cannot call '{name}' on a {}",
                        other.type_name()
                    ))),
                }
            }
            ExprKind::Call { name, .. } => {
                Err(EvalError::new(format!("unknown function '{name}'")))
            }
            _ => Err(EvalError::new("this expression is not valid at MAL level")),
        }
    }

    fn string(&mut self, e: &Expr) -> EvalResult<String> {
        match self.eval(e)? {
            MalValue::Plain(Value::Str(s)) => Ok(s),
            other => Err(EvalError::new(format!(
                "expected a string, found a {}",
                other.type_name()
            ))),
        }
    }

    fn string_list(&mut self, e: &Expr) -> EvalResult<Vec<String>> {
        // Label lists are nearly always written out: read them without building values.
        if let ExprKind::List(items) = &e.kind {
            let literal: Option<Vec<String>> = items
                .iter()
                .map(|i| match &i.kind {
                    ExprKind::Str(s) => Some(s.clone()),
                    _ => None,
                })
                .collect();
            if let Some(labels) = literal {
                return Ok(labels);
            }
        }
        match self.eval(e)? {
            MalValue::Plain(Value::List(items)) => Ok(items.iter().map(Value::render).collect()),
            MalValue::Plain(Value::Str(s)) => Ok(vec![s]),
            other => Err(EvalError::new(format!(
                "expected a list of labels, found a {}",
                other.type_name()
            ))),
        }
    }

    /// String arguments given either as varargs or as one list.
    fn strings(&mut self, args: &[Expr]) -> EvalResult<Vec<String>> {
        let mut out = Vec::new();
        for a in args {
            match self.eval(a)? {
                MalValue::Plain(Value::List(items)) => out.extend(items.iter().map(Value::render)),
                MalValue::Plain(Value::Null) => out.push(String::new()),
                v => out.push(v.render()),
            }
        }
        Ok(out)
    }

    fn number(&mut self, e: &Expr) -> EvalResult<f64> {
        self.eval(e)?
            .as_f64()
            .ok_or_else(|| EvalError::new("expected a number"))
    }

    fn layer(&mut self, e: &Expr) -> EvalResult<Layer> {
        match self.eval(e)? {
            MalValue::Plain(Value::Enum(_, name) | Value::Str(name)) => {
                Ok(Layer::from_name_or_undefined(&name))
            }
            other => Err(EvalError::new(format!(
                "expected a Layer, found a {}",
                other.type_name()
            ))),
        }
    }

    fn by_labels(&mut self, args: &[Expr]) -> EvalResult<Option<Arc<Vec<String>>>> {
        match args.first() {
            None => Ok(None),
            Some(a) if is_literal(a) => {
                let key = a as *const Expr as usize;
                cached(&self.constants.labels, key, || self.string_list(a)).map(Some)
            }
            Some(a) => Ok(Some(Arc::new(self.string_list(a)?))),
        }
    }

    fn closure<'e>(&self, e: Option<&'e Expr>) -> EvalResult<&'e Closure> {
        match e.map(|e| &e.kind) {
            Some(ExprKind::Closure(c)) => Ok(c),
            _ => Err(EvalError::new("expected a closure argument")),
        }
    }

    fn method(
        &mut self,
        sf: Cow<'a, [Sample]>,
        name: &str,
        args: &[Expr],
    ) -> EvalResult<MalValue<'a>> {
        let arg = |i: usize| -> EvalResult<&Expr> {
            args.get(i)
                .ok_or_else(|| EvalError::new(format!("'{name}' needs argument {}", i + 1)))
        };
        let out: Cow<'a, [Sample]> = match name {
            "tagEqual" | "tagNotEqual" | "tagMatch" | "tagNotMatch" => {
                let flat = self.strings(args)?;
                if flat.len() % 2 != 0 {
                    return Err(EvalError::new(format!("'{name}' needs label/value pairs")));
                }
                let pairs: Vec<(String, String)> = flat
                    .chunks(2)
                    .map(|c| (c[0].clone(), c[1].clone()))
                    .collect();
                let test = match name {
                    "tagEqual" => TagTest::Equal,
                    "tagNotEqual" => TagTest::NotEqual,
                    "tagMatch" => TagTest::Match,
                    _ => TagTest::NotMatch,
                };
                family::tag_filter(sf, &pairs, test, self.regexes)?
            }
            "valueEqual" | "valueNotEqual" | "valueGreater" | "valueGreaterEqual" | "valueLess"
            | "valueLessEqual" => {
                let x = self.number(arg(0)?)?;
                family::keep(sf, |s| {
                    Ok::<_, EvalError>(match name {
                        "valueEqual" => s.value == x,
                        "valueNotEqual" => s.value != x,
                        "valueGreater" => s.value > x,
                        "valueGreaterEqual" => s.value >= x,
                        "valueLess" => s.value < x,
                        _ => s.value <= x,
                    })
                })?
            }
            "sum" | "avg" | "min" | "max" => {
                let by = self.by_labels(args)?;
                let agg = match name {
                    "sum" => Agg::Sum,
                    "avg" => Agg::Avg,
                    "min" => Agg::Min,
                    _ => Agg::Max,
                };
                Cow::Owned(family::aggregate(
                    &sf,
                    by.as_ref().map(|b| b.as_slice()),
                    agg,
                ))
            }
            "count" => {
                let by = self.by_labels(args)?;
                Cow::Owned(family::count(&sf, by.as_ref().map(|b| b.as_slice())))
            }
            "plus" | "minus" | "multiply" | "div" => {
                let op = match name {
                    "plus" => BinOp::Add,
                    "minus" => BinOp::Sub,
                    "multiply" => BinOp::Mul,
                    _ => BinOp::Div,
                };
                let r = self.eval(arg(0)?)?;
                return arithmetic(op, MalValue::Family(sf), r, self.regexes);
            }
            "negative" => family::map_values(sf, |v| -v),
            "safeDiv" => match self.eval(arg(0)?)? {
                MalValue::Family(other) => {
                    if sf.is_empty() || other.is_empty() {
                        Cow::Owned(Vec::new())
                    } else {
                        Cow::Owned(family::zip(
                            &sf,
                            &other,
                            |a, b| {
                                if b == 0.0 {
                                    0.0
                                } else {
                                    a / b
                                }
                            },
                        ))
                    }
                }
                v => {
                    let d = v.as_f64().ok_or_else(|| {
                        EvalError::new("safeDiv needs a number or a sample family")
                    })?;
                    family::map_values(sf, |a| if d == 0.0 { 0.0 } else { a / d })
                }
            },
            "increase" | "rate" => {
                let range_text = self.string(arg(0)?)?;
                let range = parse_duration_ms(&range_text)
                    .ok_or_else(|| EvalError::new(format!("invalid duration '{range_text}'")))?;
                let mut counters = self.counters.lock().unwrap_or_else(|e| e.into_inner());
                let mut out = sf.into_owned();
                for s in &mut out {
                    let (t0, v0) = counters.increase(
                        self.metric_name,
                        &s.labels,
                        s.value,
                        range,
                        s.timestamp_ms,
                    );
                    s.value = if name == "increase" {
                        s.value - v0
                    } else {
                        per_second(s, t0, v0)
                    };
                }
                Cow::Owned(out)
            }
            "irate" => {
                let mut counters = self.counters.lock().unwrap_or_else(|e| e.into_inner());
                let mut out = sf.into_owned();
                for s in &mut out {
                    let (t0, v0) =
                        counters.previous(self.metric_name, &s.labels, s.value, s.timestamp_ms);
                    s.value = per_second(s, t0, v0);
                }
                Cow::Owned(out)
            }
            "tag" => {
                let c = self.closure(args.first())?;
                let mut interp = Interp::new(self.regexes);
                let mut out = sf.into_owned();
                for s in &mut out {
                    let (r, params) = interp.call(c, vec![Value::from_labels(&s.labels)])?;
                    s.labels = match r {
                        Value::Map(_) => r.to_labels(),
                        _ => params.first().and_then(Value::to_labels),
                    }
                    .unwrap_or_default();
                }
                Cow::Owned(out)
            }
            "filter" => {
                let c = self.closure(args.first())?;
                let mut interp = Interp::new(self.regexes);
                let reads = value::label_reads(c);
                family::keep(sf, |s| {
                    let tags = match &reads {
                        Some(keys) => Value::from_some_labels(&s.labels, keys),
                        None => Value::from_labels(&s.labels),
                    };
                    Ok(interp.call(c, vec![tags])?.0.truthy())
                })?
            }
            "forEach" => {
                let elements = self.string_list(arg(0)?)?;
                let c = self.closure(args.get(1))?;
                let mut interp = Interp::new(self.regexes);
                let mut out = sf.into_owned();
                for s in &mut out {
                    let mut tags = Value::from_labels(&s.labels);
                    for el in &elements {
                        let (_, params) = interp.call(c, vec![Value::Str(el.clone()), tags])?;
                        tags = params.into_iter().nth(1).unwrap_or(Value::Map(Vec::new()));
                    }
                    s.labels = tags.to_labels().unwrap_or_default();
                }
                Cow::Owned(out)
            }
            // Needs Kubernetes metadata Skylark does not have: samples pass through unchanged.
            "retagByK8sMeta" => sf,
            "histogram" => {
                let le = match args.first() {
                    Some(a) => self.string(a)?,
                    None => "le".to_string(),
                };
                let unit = match args.get(1) {
                    Some(a) => match self.eval(a)? {
                        MalValue::Plain(Value::Enum(_, n) | Value::Str(n)) => {
                            TimeUnit::from_name(&n)
                                .ok_or_else(|| EvalError::new(format!("unknown TimeUnit '{n}'")))?
                        }
                        other => {
                            return Err(EvalError::new(format!(
                                "expected a TimeUnit, found a {}",
                                other.type_name()
                            )))
                        }
                    },
                    None => self.ctx.default_histogram_unit,
                };
                let scale = unit.millis();
                if scale <= 0 {
                    return Err(EvalError::new(format!(
                        "histogram unit {unit:?} is finer than milliseconds"
                    )));
                }
                Cow::Owned(family::histogram(sf, &le, scale)?)
            }
            "histogram_percentile" | "downsampling" | "decorate" => sf,
            "service"
            | "instance"
            | "endpoint"
            | "process"
            | "serviceRelation"
            | "serviceInstanceRelation"
            | "processRelation" => {
                if sf.is_empty() {
                    return Ok(MalValue::Family(sf));
                }
                let spec = if args.iter().all(is_literal) {
                    let key = args.as_ptr() as usize;
                    cached(&self.constants.scopes, key, || self.scope_spec(name, args))?
                } else {
                    Arc::new(self.scope_spec(name, args)?)
                };
                self.groups = Some(group_entities(&sf, &spec, self.group_labels));
                sf
            }
            other => return Err(EvalError::new(format!("unknown function '{other}'"))),
        };
        Ok(MalValue::Family(out))
    }

    fn scope_spec(&mut self, name: &str, args: &[Expr]) -> EvalResult<ScopeSpec> {
        let n = args.len();
        let get = |i: usize| -> EvalResult<&Expr> {
            args.get(i)
                .ok_or_else(|| EvalError::new(format!("'{name}' needs argument {}", i + 1)))
        };
        let mut spec;
        match name {
            "service" => {
                spec = ScopeSpec::new(Scope::Service);
                spec.service.0 = self.string_list(get(0)?)?;
                if n == 3 {
                    spec.service.1 = self.string(get(1)?)?;
                }
                spec.layer = Some(self.layer(get(n - 1)?)?);
            }
            "instance" => {
                spec = ScopeSpec::new(Scope::ServiceInstance);
                spec.service.0 = self.string_list(get(0)?)?;
                if n >= 5 {
                    spec.service.1 = self.string(get(1)?)?;
                    spec.instance.0 = self.string_list(get(2)?)?;
                    spec.instance.1 = self.string(get(3)?)?;
                    spec.layer = Some(self.layer(get(4)?)?);
                } else {
                    spec.instance.0 = self.string_list(get(1)?)?;
                    spec.layer = Some(self.layer(get(2)?)?);
                }
            }
            "endpoint" => {
                spec = ScopeSpec::new(Scope::Endpoint);
                spec.service.0 = self.string_list(get(0)?)?;
                spec.endpoint.0 = self.string_list(get(1)?)?;
                if n == 4 {
                    let d = self.string(get(2)?)?;
                    spec.service.1 = d.clone();
                    spec.endpoint.1 = d;
                }
                spec.layer = Some(self.layer(get(n - 1)?)?);
            }
            "process" => {
                spec = ScopeSpec::new(Scope::Process);
                spec.service.0 = self.string_list(get(0)?)?;
                spec.instance.0 = self.string_list(get(1)?)?;
                spec.process = self.string_list(get(2)?)?;
                let key = self.string(get(3)?)?;
                spec.extra_keys.push(key.clone());
                spec.layer_key = Some(key);
            }
            "serviceRelation" => {
                spec = ScopeSpec::new(Scope::ServiceRelation);
                spec.service.0 = self.string_list(get(1)?)?;
                spec.dest_service = self.string_list(get(2)?)?;
                if n >= 6 {
                    spec.service.1 = self.string(get(3)?)?;
                    spec.layer = Some(self.layer(get(4)?)?);
                    spec.extra_keys.push(self.string(get(5)?)?);
                } else {
                    spec.layer = Some(self.layer(get(3)?)?);
                }
            }
            "serviceInstanceRelation" => {
                spec = ScopeSpec::new(Scope::ServiceInstanceRelation);
                spec.service.0 = self.string_list(get(1)?)?;
                spec.instance.0 = self.string_list(get(2)?)?;
                spec.dest_service = self.string_list(get(3)?)?;
                spec.dest_instance = self.string_list(get(4)?)?;
                if n >= 8 {
                    spec.service.1 = self.string(get(5)?)?;
                    spec.layer = Some(self.layer(get(6)?)?);
                    spec.extra_keys.push(self.string(get(7)?)?);
                } else {
                    spec.layer = Some(self.layer(get(5)?)?);
                }
            }
            _ => {
                spec = ScopeSpec::new(Scope::ProcessRelation);
                spec.extra_keys.push(self.string(get(0)?)?);
                spec.service.0 = self.string_list(get(1)?)?;
                spec.instance.0 = self.string_list(get(2)?)?;
                spec.process = vec![self.string(get(3)?)?];
                spec.dest_process = vec![self.string(get(4)?)?];
                spec.extra_keys.push(self.string(get(5)?)?);
            }
        }
        spec.keys = spec.label_keys();
        Ok(spec)
    }
}

fn per_second(s: &Sample, t0: i64, v0: f64) -> f64 {
    let secs = (s.timestamp_ms - t0) / 1000;
    if secs < 1 {
        0.0
    } else {
        (s.value - v0) / secs as f64
    }
}

fn group_entities(samples: &[Sample], spec: &ScopeSpec, keep_labels: bool) -> Vec<EntityGroup> {
    use skylark_core::{ENDPOINT_NAME_MAX, SERVICE_NAME_MAX};
    let keys = &spec.keys;
    family::group_by(samples, keys)
        .iter()
        .map(|members| {
            let first = &members[0].labels;
            let svc_delim = &spec.service.1;
            let layer = match &spec.layer_key {
                Some(k) => Layer::from_name_or_undefined(&dim(first, std::slice::from_ref(k), ".")),
                None => spec.layer.unwrap_or(Layer::UNDEFINED),
            };
            let mut entity = MeterEntity::new(spec.scope, layer);
            entity.service_name =
                truncate(dim(first, &spec.service.0, svc_delim), SERVICE_NAME_MAX);
            entity.instance_name = truncate(
                dim(first, &spec.instance.0, &spec.instance.1),
                SERVICE_NAME_MAX,
            );
            entity.endpoint_name = truncate(
                dim(first, &spec.endpoint.0, &spec.endpoint.1),
                ENDPOINT_NAME_MAX,
            );
            entity.process_name = dim(first, &spec.process, ".");
            entity.dest_service_name =
                truncate(dim(first, &spec.dest_service, svc_delim), SERVICE_NAME_MAX);
            entity.dest_instance_name =
                truncate(dim(first, &spec.dest_instance, svc_delim), SERVICE_NAME_MAX);
            entity.dest_process_name = dim(first, &spec.dest_process, ".");
            let samples = members
                .iter()
                .map(|s| Sample {
                    name: s.name.clone(),
                    labels: if keep_labels {
                        let mut labels = s.labels.clone();
                        labels.retain(|k, _| !keys.iter().any(|key| key == k));
                        labels
                    } else {
                        Labels::new()
                    },
                    value: s.value,
                    timestamp_ms: s.timestamp_ms,
                })
                .collect();
            EntityGroup { entity, samples }
        })
        .collect()
}

/// `+ - * /` between sample families and numbers, with OAP's EMPTY rules.
fn arithmetic<'s>(
    op: BinOp,
    l: MalValue<'s>,
    r: MalValue<'s>,
    regexes: &RegexCache,
) -> EvalResult<MalValue<'s>> {
    let f = |op: BinOp| -> fn(f64, f64) -> f64 {
        match op {
            BinOp::Add => |a, b| a + b,
            BinOp::Sub => |a, b| a - b,
            BinOp::Mul => |a, b| a * b,
            _ => |a, b| a / b,
        }
    };
    if !matches!(op, BinOp::Add | BinOp::Sub | BinOp::Mul | BinOp::Div) {
        return match (l, r) {
            (MalValue::Plain(l), MalValue::Plain(r)) => {
                Ok(MalValue::Plain(value::binary(op, &l, &r, regexes)?))
            }
            _ => Err(EvalError::new(format!(
                "operator {op:?} does not apply to sample families"
            ))),
        };
    }
    let apply = f(op);
    Ok(match (l, r) {
        (MalValue::Family(a), MalValue::Family(b)) => MalValue::Family(match op {
            BinOp::Add if a.is_empty() => b,
            BinOp::Add if b.is_empty() => a,
            BinOp::Sub if a.is_empty() => family::map_values(b, |v| -v),
            BinOp::Sub if b.is_empty() => a,
            BinOp::Mul if a.is_empty() || b.is_empty() => Cow::Owned(Vec::new()),
            BinOp::Div if a.is_empty() => Cow::Owned(Vec::new()),
            BinOp::Div if b.is_empty() => family::map_values(a, |v| v / 0.0),
            _ => Cow::Owned(family::zip(&a, &b, apply)),
        }),
        (MalValue::Family(a), n) => {
            let x = n.as_f64().ok_or_else(|| {
                EvalError::new(format!(
                    "cannot combine a sample family with a {}",
                    n.type_name()
                ))
            })?;
            MalValue::Family(family::map_values(a, |v| apply(v, x)))
        }
        (n, MalValue::Family(b)) => {
            let x = n.as_f64().ok_or_else(|| {
                EvalError::new(format!(
                    "cannot combine a {} with a sample family",
                    n.type_name()
                ))
            })?;
            MalValue::Family(family::map_values(b, |v| apply(x, v)))
        }
        (MalValue::Plain(l), MalValue::Plain(r)) => {
            MalValue::Plain(value::binary(op, &l, &r, regexes)?)
        }
    })
}
