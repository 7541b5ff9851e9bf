//! Running one rule's program on one log (OAP's filter → parser → extractor → sink chain).
use std::collections::HashMap;
use std::sync::Mutex;

use skylark_core::{LogData, Sample, SampleFamilies, SampleFamily};

use crate::ast::{BinaryOp, Expr, SExpr, TemplatePart, UnaryOp};
use crate::program::{
    ExtractStmt, Field, FilterStmt, IfChain, MetricsStmt, Program, SamplerStmt, SinkStmt,
};
use crate::timefmt::parse_with_pattern;
use crate::value::Value;

/// The log's metadata: what `log.*` reads and what traffic is derived from.
#[derive(Debug, Clone)]
pub(crate) struct Metadata {
    pub(crate) service: String,
    pub(crate) service_instance: String,
    pub(crate) endpoint: String,
    pub(crate) layer: String,
    pub(crate) timestamp: i64,
}

/// What the extractor set on the output record; `None` = take it from the metadata.
#[derive(Debug, Clone, Default)]
pub(crate) struct Extracted {
    pub(crate) service: Option<String>,
    pub(crate) instance: Option<String>,
    pub(crate) endpoint: Option<String>,
    pub(crate) trace_id: Option<String>,
    pub(crate) segment_id: Option<String>,
    pub(crate) span_id: Option<i32>,
    pub(crate) timestamp: Option<i64>,
    pub(crate) tags: Vec<(String, String)>,
    /// Fields of non-log output types, kept for debugging only.
    pub(crate) fields: Vec<(String, String)>,
}

/// Sampler state shared by every run of an engine: rate-limit windows and the random source.
#[derive(Debug)]
pub(crate) struct Samplers {
    windows: Mutex<HashMap<String, (i64, u64)>>,
    rng: Mutex<u64>,
}

impl Samplers {
    pub(crate) fn new(seed: u64) -> Self {
        Samplers {
            windows: Mutex::new(HashMap::new()),
            rng: Mutex::new(seed | 1),
        }
    }

    /// OAP's rate-limiting sampler: at most `rpm` logs per id per wall-clock minute.
    fn rate_limit(&self, key: String, rpm: i64, now_ms: i64) -> bool {
        let minute = now_ms.div_euclid(60_000);
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        let entry = windows.entry(key).or_insert((minute, 0));
        if entry.0 != minute {
            *entry = (minute, 0);
        }
        entry.1 += 1;
        i64::try_from(entry.1).is_ok_and(|n| n <= rpm)
    }

    /// Keeps a log with `percentage`% probability.
    fn possibility(&self, percentage: f64) -> bool {
        let mut state = self.rng.lock().unwrap_or_else(|e| e.into_inner());
        // xorshift64: sampling needs no cryptographic quality.
        let mut x = *state;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *state = x;
        ((x % 10_000) as f64) < percentage * 100.0
    }
}

/// The outcome of one rule on one log.
#[derive(Debug)]
pub(crate) struct RuleRun {
    pub(crate) aborted: bool,
    /// `None`: no `sink` was reached; `Some(save)` otherwise.
    pub(crate) sink: Option<bool>,
    pub(crate) meta: Metadata,
    pub(crate) out: Extracted,
    pub(crate) samples: Vec<SampleFamilies>,
}

pub(crate) struct Run<'a> {
    log: &'a LogData,
    rule: &'a str,
    samplers: &'a Samplers,
    now_ms: i64,
    parsed: Value,
    state: RuleRun,
}

impl<'a> Run<'a> {
    pub(crate) fn new(
        log: &'a LogData,
        meta: Metadata,
        rule: &'a str,
        samplers: &'a Samplers,
        now_ms: i64,
    ) -> Self {
        Run {
            log,
            rule,
            samplers,
            now_ms,
            parsed: Value::Null,
            state: RuleRun {
                aborted: false,
                sink: None,
                meta,
                out: Extracted::default(),
                samples: Vec::new(),
            },
        }
    }

    pub(crate) fn execute(mut self, program: &Program) -> RuleRun {
        self.filter(&program.filter);
        self.state
    }

    fn pick<'s, S>(&self, chain: &'s IfChain<S>) -> &'s [S] {
        for (cond, body) in &chain.branches {
            if self.eval(cond).truthy() {
                return body;
            }
        }
        &chain.otherwise
    }

    fn filter(&mut self, stmts: &[FilterStmt]) {
        for stmt in stmts {
            if self.state.aborted {
                return;
            }
            match stmt {
                FilterStmt::If(chain) => {
                    let body = self.pick(chain);
                    self.filter(body);
                }
                FilterStmt::Abort => self.state.aborted = true,
                FilterStmt::Text {
                    patterns,
                    abort_on_failure,
                } => {
                    let text = self.log.body.content();
                    let found = patterns.iter().find_map(|re| {
                        let caps = re.captures(text)?;
                        let map = re
                            .capture_names()
                            .flatten()
                            .filter_map(|n| {
                                Some((n.to_string(), Value::str(caps.name(n)?.as_str())))
                            })
                            .collect();
                        Some(Value::Map(map))
                    });
                    match found {
                        Some(v) => self.parsed = v,
                        None => self.parse_failed(*abort_on_failure, "text"),
                    }
                }
                FilterStmt::Json { abort_on_failure } => {
                    match serde_json::from_str::<serde_json::Value>(self.log.body.content()) {
                        Ok(v @ serde_json::Value::Object(_)) => self.parsed = Value::from(v),
                        _ => self.parse_failed(*abort_on_failure, "json"),
                    }
                }
                FilterStmt::Yaml { abort_on_failure } => {
                    match serde_yaml::from_str::<serde_yaml::Value>(self.log.body.content()) {
                        Ok(v @ serde_yaml::Value::Mapping(_)) => self.parsed = Value::from(v),
                        _ => self.parse_failed(*abort_on_failure, "yaml"),
                    }
                }
                FilterStmt::Extractor(body) => self.extract(body),
                FilterStmt::Sink(body) => {
                    let mut save = true;
                    self.sink(body, &mut save);
                    if !self.state.aborted {
                        self.state.sink = Some(save);
                    }
                }
            }
        }
    }

    fn parse_failed(&mut self, abort_on_failure: bool, parser: &str) {
        tracing::debug!(rule = self.rule, parser, "log body did not parse");
        if abort_on_failure {
            self.state.aborted = true;
        }
    }

    fn text_of(&self, e: &SExpr) -> Option<String> {
        self.eval(e).to_text()
    }

    fn extract(&mut self, stmts: &[ExtractStmt]) {
        for stmt in stmts {
            if self.state.aborted {
                return;
            }
            match stmt {
                ExtractStmt::If(chain) => {
                    let body = self.pick(chain);
                    self.extract(body);
                }
                ExtractStmt::Abort => self.state.aborted = true,
                ExtractStmt::Field(field, e) => {
                    let v = self.eval(e);
                    if v.is_null() {
                        continue;
                    }
                    let text = v.to_text().unwrap_or_default();
                    let out = &mut self.state.out;
                    match field {
                        Field::Service => out.service = Some(text),
                        Field::Instance => out.instance = Some(text),
                        Field::Endpoint => out.endpoint = Some(text),
                        Field::Layer => self.state.meta.layer = text,
                        Field::TraceId => out.trace_id = Some(text),
                        Field::SegmentId => out.segment_id = Some(text),
                        Field::SpanId => {
                            out.span_id = v.as_i64().and_then(|n| i32::try_from(n).ok())
                        }
                    }
                }
                ExtractStmt::Timestamp(e, format) => {
                    let v = self.eval(e);
                    let format = format.as_ref().and_then(|f| self.text_of(f));
                    let ts = match (&v, format) {
                        (Value::Str(s), Some(f)) if !f.is_empty() => parse_with_pattern(s, &f),
                        _ => v.as_i64(),
                    };
                    match ts {
                        Some(ts) => self.state.out.timestamp = Some(ts),
                        None if v.is_null() => {}
                        None => tracing::debug!(rule = self.rule, "unreadable timestamp ignored"),
                    }
                }
                ExtractStmt::Tag(pairs) => {
                    for (k, e) in pairs {
                        let v = self.text_of(e).unwrap_or_default();
                        if !k.is_empty() && !v.is_empty() {
                            self.state.out.tags.push((k.clone(), v));
                        }
                    }
                }
                ExtractStmt::Metrics(body) => {
                    let mut sample = Sample {
                        name: "".into(),
                        labels: Default::default(),
                        value: f64::NAN,
                        timestamp_ms: self.state.meta.timestamp,
                    };
                    self.metrics(body, &mut sample);
                    if self.state.aborted {
                        return;
                    }
                    if sample.name.is_empty() || sample.value.is_nan() {
                        tracing::warn!(
                            rule = self.rule,
                            "metrics block without name or value skipped"
                        );
                        continue;
                    }
                    let mut families = SampleFamilies::default();
                    families.insert(sample.name.to_string(), SampleFamily::new(vec![sample]));
                    self.state.samples.push(families);
                }
                ExtractStmt::Output(name, e) => {
                    let v = self.eval(e).to_text().unwrap_or_default();
                    self.state.out.fields.push((name.clone(), v));
                }
                ExtractStmt::OutputBlock(body) => self.extract(body),
            }
        }
    }

    fn metrics(&mut self, stmts: &[MetricsStmt], sample: &mut Sample) {
        for stmt in stmts {
            match stmt {
                MetricsStmt::If(chain) => {
                    let body = self.pick(chain);
                    self.metrics(body, sample);
                }
                MetricsStmt::Name(e) => sample.name = self.text_of(e).unwrap_or_default().into(),
                MetricsStmt::Timestamp(e) => {
                    if let Some(ts) = self.eval(e).as_i64() {
                        sample.timestamp_ms = ts;
                    }
                }
                MetricsStmt::Labels(pairs) => {
                    for (k, e) in pairs {
                        if k.trim().is_empty() {
                            continue;
                        }
                        if let Some(v) = self.text_of(e) {
                            sample.labels.insert(k.clone(), v);
                        }
                    }
                }
                MetricsStmt::Value(e) => {
                    sample.value = self.eval(e).as_f64().unwrap_or(f64::NAN);
                }
            }
        }
    }

    fn sink(&mut self, stmts: &[SinkStmt], save: &mut bool) {
        for stmt in stmts {
            match stmt {
                SinkStmt::If(chain) => {
                    let body = self.pick(chain);
                    self.sink(body, save);
                }
                SinkStmt::Sampler(body) => {
                    if let Some(sampled) = self.sampler(body) {
                        *save = sampled;
                    }
                }
                SinkStmt::Enforcer => *save = true,
                SinkStmt::Dropper => *save = false,
            }
        }
    }

    /// `Some(sampled)` from the last sampler that ran; `None` if none did.
    fn sampler(&mut self, stmts: &[SamplerStmt]) -> Option<bool> {
        let mut decision = None;
        for stmt in stmts {
            let d = match stmt {
                SamplerStmt::If(chain) => {
                    let body = self.pick(chain);
                    self.sampler(body)
                }
                SamplerStmt::RateLimit { id, rpm } => {
                    let id = self.eval(id).interpolated();
                    let rpm = self.eval(rpm).as_i64().unwrap_or(0);
                    let key = format!("{}\u{0}{id}", self.rule);
                    Some(self.samplers.rate_limit(key, rpm, self.now_ms))
                }
                SamplerStmt::Possibility { percentage } => {
                    let p = self.eval(percentage).as_f64().unwrap_or(0.0);
                    Some(self.samplers.possibility(p))
                }
            };
            if d.is_some() {
                decision = d;
            }
        }
        decision
    }

    fn log_property(&self, name: &str) -> Value {
        let meta = &self.state.meta;
        match name {
            "service" => Value::str(&meta.service),
            "serviceInstance" => Value::str(&meta.service_instance),
            "endpoint" => Value::str(&meta.endpoint),
            "layer" => Value::str(&meta.layer),
            "timestamp" => Value::Int(meta.timestamp),
            "body" => Value::str(self.log.body.content()),
            "tags" => {
                let mut m = std::collections::BTreeMap::new();
                for (k, v) in &self.log.tags {
                    m.entry(k.clone()).or_insert_with(|| Value::str(v));
                }
                Value::Map(m)
            }
            "traceContext" => {
                let mut m = std::collections::BTreeMap::new();
                let opt = |s: &Option<String>| s.clone().map(Value::Str).unwrap_or(Value::Null);
                m.insert("traceId".to_string(), opt(&self.log.trace_id));
                m.insert("traceSegmentId".to_string(), opt(&self.log.segment_id));
                m.insert(
                    "spanId".to_string(),
                    self.log
                        .span_id
                        .map(|n| Value::Int(n.into()))
                        .unwrap_or(Value::Null),
                );
                Value::Map(m)
            }
            _ => Value::Null,
        }
    }

    /// `parsed.a.b?.c` resolved by reference, without copying the parsed document.
    fn parsed_path(&self, e: &SExpr) -> Option<Value> {
        let mut names = Vec::new();
        let mut cur = e;
        loop {
            match &cur.node {
                Expr::Property { target, name, .. } => {
                    names.push(name.as_str());
                    cur = target;
                }
                Expr::Ident(n) if n == "parsed" => break,
                _ => return None,
            }
        }
        let mut v = &self.parsed;
        for name in names.iter().rev() {
            match v {
                Value::Map(m) => match m.get(*name) {
                    Some(next) => v = next,
                    None => return Some(Value::Null),
                },
                _ => return Some(Value::Null),
            }
        }
        Some(v.clone())
    }

    fn eval(&self, e: &SExpr) -> Value {
        match &e.node {
            Expr::Null => Value::Null,
            Expr::Bool(b) => Value::Bool(*b),
            Expr::Int(n) => Value::Int(*n),
            Expr::Float(f) => Value::Float(*f),
            Expr::Str(s) => Value::str(s),
            Expr::Template(parts) => {
                let mut s = String::new();
                for p in parts {
                    match p {
                        TemplatePart::Lit(l) => s.push_str(l),
                        TemplatePart::Expr(x) => s.push_str(&self.eval(x).interpolated()),
                    }
                }
                Value::Str(s)
            }
            Expr::Ident(name) => match name.as_str() {
                "parsed" => self.parsed.clone(),
                _ => Value::Null,
            },
            Expr::Call { name, args } => {
                let key = args
                    .first()
                    .map(|a| self.eval(a).interpolated())
                    .unwrap_or_default();
                let list = match name.as_str() {
                    "tag" => &self.log.tags,
                    _ => &self.log.source_attributes,
                };
                Value::str(
                    list.iter()
                        .find(|(k, _)| *k == key)
                        .map(|(_, v)| v.as_str())
                        .unwrap_or(""),
                )
            }
            Expr::Property { target, name, .. } => {
                if matches!(&target.node, Expr::Ident(n) if n == "log") {
                    return self.log_property(name);
                }
                if let Some(v) = self.parsed_path(e) {
                    return v;
                }
                self.eval(target).property(name)
            }
            Expr::Method {
                target, name, args, ..
            } => {
                let t = self.eval(target);
                if t.is_null() {
                    return Value::Null;
                }
                let args: Vec<Value> = args.iter().map(|a| self.eval(a)).collect();
                t.method(name, &args)
            }
            Expr::Index { target, index } => self.eval(target).index(&self.eval(index)),
            Expr::Unary { op, expr } => {
                let v = self.eval(expr);
                match op {
                    UnaryOp::Not => Value::Bool(!v.truthy()),
                    UnaryOp::Neg => match v {
                        Value::Int(n) => n.checked_neg().map(Value::Int).unwrap_or(Value::Null),
                        other => other
                            .as_f64()
                            .map(|f| Value::Float(-f))
                            .unwrap_or(Value::Null),
                    },
                }
            }
            Expr::Binary { op, lhs, rhs } => self.binary(*op, lhs, rhs),
            Expr::Cast { expr, ty } => self.eval(expr).cast(&ty.node),
            Expr::Ternary {
                cond,
                then,
                otherwise,
            } => {
                if self.eval(cond).truthy() {
                    self.eval(then)
                } else {
                    self.eval(otherwise)
                }
            }
            Expr::Elvis { lhs, rhs } => {
                let v = self.eval(lhs);
                if v.truthy() {
                    v
                } else {
                    self.eval(rhs)
                }
            }
        }
    }

    fn binary(&self, op: BinaryOp, lhs: &SExpr, rhs: &SExpr) -> Value {
        match op {
            BinaryOp::And => {
                return Value::Bool(self.eval(lhs).truthy() && self.eval(rhs).truthy())
            }
            BinaryOp::Or => return Value::Bool(self.eval(lhs).truthy() || self.eval(rhs).truthy()),
            _ => {}
        }
        let (a, b) = (self.eval(lhs), self.eval(rhs));
        use std::cmp::Ordering::{Equal, Greater, Less};
        match op {
            BinaryOp::Eq => Value::Bool(a.loose_eq(&b)),
            BinaryOp::Ne => Value::Bool(!a.loose_eq(&b)),
            BinaryOp::Lt => Value::Bool(a.compare(&b) == Some(Less)),
            BinaryOp::Le => Value::Bool(matches!(a.compare(&b), Some(Less | Equal))),
            BinaryOp::Gt => Value::Bool(a.compare(&b) == Some(Greater)),
            BinaryOp::Ge => Value::Bool(matches!(a.compare(&b), Some(Greater | Equal))),
            BinaryOp::Add if matches!(a, Value::Str(_)) || matches!(b, Value::Str(_)) => {
                if a.is_null() {
                    return Value::Null;
                }
                Value::Str(a.interpolated() + &b.interpolated())
            }
            _ => arithmetic(op, &a, &b),
        }
    }
}

fn arithmetic(op: BinaryOp, a: &Value, b: &Value) -> Value {
    if let (Value::Int(x), Value::Int(y)) = (a, b) {
        let r = match op {
            BinaryOp::Add => x.checked_add(*y),
            BinaryOp::Sub => x.checked_sub(*y),
            BinaryOp::Mul => x.checked_mul(*y),
            // Java's long `%` wraps: `Long.MIN_VALUE % -1` is 0.
            BinaryOp::Rem if *y != 0 => Some(x.wrapping_rem(*y)),
            // Exact quotients stay integers; `i64::MIN / -1` overflows and falls to floats.
            BinaryOp::Div if x.checked_rem(*y) == Some(0) => x.checked_div(*y),
            _ => None,
        };
        if let Some(r) = r {
            return Value::Int(r);
        }
    }
    let (Some(x), Some(y)) = (number(a), number(b)) else {
        return Value::Null;
    };
    let r = match op {
        BinaryOp::Add => x + y,
        BinaryOp::Sub => x - y,
        BinaryOp::Mul => x * y,
        BinaryOp::Div if y != 0.0 => x / y,
        BinaryOp::Rem if y != 0.0 => x % y,
        _ => return Value::Null,
    };
    Value::Float(r)
}

/// Arithmetic operands must already be numbers (Groovy does not add a string to a number).
fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Int(n) => Some(*n as f64),
        Value::Float(f) => Some(*f),
        _ => None,
    }
}
