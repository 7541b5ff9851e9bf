//! Rule files: loading, compiling and evaluating.
use crate::ast::{Closure, Expr, ExprKind};
use crate::check::{analyze, ValueKind};
use crate::context::{EvalContext, RuleOutput};
use crate::error::{CompileError, Diagnostic, Error, ParseError, Result};
use crate::eval::counter::CounterWindows;
use crate::eval::value::{label_reads, Interp, RegexCache, Value};
use crate::eval::{ConstantArgs, EntityGroup, Inputs, MalEval, MalValue};
use crate::parser::parse;
use crate::span::{line_col, Part, Span};
use skylark_core::traffic::{EndpointTraffic, InstanceTraffic, ServiceTraffic, Traffic};
use skylark_core::{
    to_long, HistogramGroup, MeterValue, MetricDefinition, MetricEmission, Sample, SampleFamilies,
    Scope, Step, TimeBucket,
};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct RuleFileYaml {
    filter: Option<String>,
    exp_prefix: Option<String>,
    exp_suffix: Option<String>,
    metric_prefix: Option<String>,
    #[allow(dead_code)]
    layer_definitions: Option<serde_yaml::Value>,
    #[serde(default)]
    metrics_rules: Vec<RuleYaml>,
}

#[derive(Debug, serde::Deserialize)]
struct RuleYaml {
    name: String,
    exp: String,
}

/// One compiled rule.
#[derive(Debug)]
struct CompiledRule {
    definition: Arc<MetricDefinition>,
    kind: ValueKind,
    expr: Expr,
    inputs: Vec<String>,
}

/// One compiled file.
#[derive(Debug)]
struct CompiledFile {
    name: String,
    filter: Option<Closure>,
    rules: Vec<CompiledRule>,
}

/// A file filter, shared by every file whose filter has the same text.
#[derive(Debug)]
struct FileFilter {
    closure: Closure,
    /// The labels the closure reads, when it reads nothing else (see `label_reads`).
    reads: Option<Vec<String>>,
}

/// A loaded file: its rules and which of the rule set's filters applies.
#[derive(Debug)]
struct LoadedFile {
    name: String,
    filter: Option<usize>,
    rules: Vec<CompiledRule>,
    /// Every metric any rule of the file reads, to skip files a batch has nothing for.
    inputs: foldhash::HashSet<String>,
}

/// The MAL rules of a set of files, ready to evaluate batches of samples.
///
/// Counter state for `increase`/`rate`/`irate` lives here, so keep one `RuleSet` per process.
#[derive(Debug)]
pub struct RuleSet {
    files: Vec<LoadedFile>,
    filters: Vec<FileFilter>,
    counters: Mutex<CounterWindows>,
    regexes: RegexCache,
    constants: ConstantArgs,
}

/// One family after a file filter.
enum Filtered {
    /// Every sample passed: the batch's family as it is.
    All,
    /// Only these passed.
    Some(Vec<Sample>),
    /// None passed.
    Nothing,
    /// The filter failed on a sample: rules reading this family see their input unfiltered.
    Failed,
}

/// What each filter made of each family of one batch, worked out on first use: a filter
/// looks at every sample once per batch however many rules and files share it.
struct FilterResults<'r> {
    filters: &'r [FileFilter],
    regexes: &'r RegexCache,
    done: Vec<foldhash::HashMap<&'r str, Filtered>>,
    /// Per filter that reads only some labels: its verdict (`None`: it failed) by the values of
    /// those labels. Samples of one resource mostly share them, so the closure runs once.
    verdicts: Vec<foldhash::HashMap<Vec<Option<&'r str>>, Option<bool>>>,
}

impl<'r> FilterResults<'r> {
    fn new(filters: &'r [FileFilter], regexes: &'r RegexCache) -> Self {
        FilterResults {
            filters,
            regexes,
            done: filters.iter().map(|_| Default::default()).collect(),
            verdicts: filters.iter().map(|_| Default::default()).collect(),
        }
    }

    fn ensure(&mut self, filter: usize, file: &str, name: &'r str, samples: &'r [Sample]) {
        if self.done[filter].contains_key(name) {
            return;
        }
        let f = &self.filters[filter];
        let verdicts = &mut self.verdicts[filter];
        let mut interp = Interp::new(self.regexes);
        let mut run = |tags: Value| match interp.call(&f.closure, vec![tags]) {
            Ok((v, _)) => Some(v.truthy()),
            Err(e) => {
                tracing::debug!(file, error = %e, "filter failed; using unfiltered input");
                None
            }
        };
        let mut passed = Vec::with_capacity(samples.len());
        let mut failed = false;
        let mut values: Vec<Option<&str>> = Vec::new();
        for s in samples {
            let verdict = match &f.reads {
                Some(keys) => {
                    values.clear();
                    values.extend(keys.iter().map(|k| s.labels.get(k)));
                    match verdicts.get(values.as_slice()) {
                        Some(v) => *v,
                        None => {
                            let v = run(Value::from_some_labels(&s.labels, keys));
                            verdicts.insert(values.clone(), v);
                            v
                        }
                    }
                }
                None => run(Value::from_labels(&s.labels)),
            };
            match verdict {
                Some(p) => passed.push(p),
                None => {
                    failed = true;
                    break;
                }
            }
        }
        let result = if failed {
            Filtered::Failed
        } else if passed.iter().all(|p| *p) {
            Filtered::All
        } else if !passed.iter().any(|p| *p) {
            Filtered::Nothing
        } else {
            Filtered::Some(
                samples
                    .iter()
                    .zip(&passed)
                    .filter(|(_, p)| **p)
                    .map(|(s, _)| s.clone())
                    .collect(),
            )
        };
        self.done[filter].insert(name, result);
    }
}

/// Where each piece of a rule file is written, for error positions.
struct SourceMap<'a> {
    file: &'a str,
    raw: &'a str,
}

impl SourceMap<'_> {
    fn diag(&self, offset: usize, message: impl Into<String>) -> Diagnostic {
        let (line, column) = line_col(self.raw, offset);
        Diagnostic {
            file: self.file.to_string(),
            line,
            column,
            message: message.into(),
        }
    }

    /// Byte offset where the value of the `nth` (0-based) `key:` starts; top-level keys when
    /// `top_level`, else list-item keys at any indentation.
    fn value_start(&self, key: &str, nth: usize, top_level: bool) -> Option<usize> {
        let mut seen = 0;
        let mut offset = 0;
        for line in self.raw.split_inclusive('\n') {
            let trimmed = line.trim_start();
            let body = if top_level {
                if trimmed.len() != line.len() {
                    offset += line.len();
                    continue;
                }
                trimmed
            } else {
                trimmed
                    .strip_prefix('-')
                    .map(str::trim_start)
                    .unwrap_or(trimmed)
            };
            if let Some(rest) = body.strip_prefix(key) {
                if let Some(after) = rest.trim_start().strip_prefix(':') {
                    if seen == nth {
                        let value_off = offset + (line.len() - after.len());
                        let lead = after.len() - after.trim_start().len();
                        let v = after.trim_start();
                        if v.starts_with('|') || v.starts_with('>') {
                            // Block scalar: the value starts on the next non-blank line.
                            let next = offset + line.len();
                            let tail = &self.raw[next..];
                            let skip = tail.len() - tail.trim_start().len();
                            return Some(next + skip);
                        }
                        return Some(value_off + lead);
                    }
                    seen += 1;
                }
            }
            offset += line.len();
        }
        None
    }

    /// Maps `offset` in the parsed `value` to the raw file: the value's non-blank characters
    /// appear in the same order in the raw text, whatever YAML folding and quoting did.
    fn map(&self, start: Option<usize>, value: &str, offset: usize) -> usize {
        let Some(mut r) = start else { return 0 };
        let raw = self.raw;
        for (i, c) in value.char_indices() {
            if i >= offset {
                break;
            }
            if c.is_whitespace() {
                continue;
            }
            if let Some(found) = raw[r..].find(c) {
                r += found + c.len_utf8();
            }
        }
        // Whitespace can be wider than a byte (U+00A0).
        while let Some(c) = raw[r..].chars().next().filter(|c| c.is_whitespace()) {
            r += c.len_utf8();
        }
        r.min(raw.len())
    }
}

/// Texts of one rule's pieces, to locate spans.
struct Pieces<'a> {
    exp: (&'a str, Option<usize>),
    prefix: (&'a str, Option<usize>),
    suffix: (&'a str, Option<usize>),
    filter: (&'a str, Option<usize>),
}

impl Pieces<'_> {
    fn locate(&self, map: &SourceMap<'_>, span: Span, message: impl Into<String>) -> Diagnostic {
        let (text, start) = match span.part {
            Part::Exp => self.exp,
            Part::Prefix => self.prefix,
            Part::Suffix => self.suffix,
            Part::Filter => self.filter,
        };
        map.diag(map.map(start, text, span.start), message)
    }
}

/// A chain fragment (`tag({..}).service([..], Layer.X)`) as the calls to graft, innermost first.
fn chain_calls(e: Expr, what: &str) -> Result<Vec<Expr>, CompileError> {
    match e.kind {
        ExprKind::Call {
            target,
            name,
            name_span,
            args,
            safe,
        } => {
            let mut calls = match target {
                Some(t) => chain_calls(*t, what)?,
                None => Vec::new(),
            };
            calls.push(Expr::new(
                ExprKind::Call {
                    target: None,
                    name,
                    name_span,
                    args,
                    safe,
                },
                e.span,
            ));
            Ok(calls)
        }
        _ => Err(CompileError::new(
            format!("{what} must be a chain of function calls"),
            e.span,
        )),
    }
}

fn graft(mut target: Expr, calls: &[Expr]) -> Expr {
    for c in calls {
        if let ExprKind::Call {
            name,
            name_span,
            args,
            safe,
            ..
        } = &c.kind
        {
            let span = target.span;
            target = Expr::new(
                ExprKind::Call {
                    target: Some(Box::new(target)),
                    name: name.clone(),
                    name_span: *name_span,
                    args: args.clone(),
                    safe: *safe,
                },
                span,
            );
        }
    }
    target
}

/// Puts the prefix chain right after every sample-family reference (not inside closures, nor
/// in `downsampling(...)`).
fn inject_prefix(e: Expr, calls: &[Expr]) -> Expr {
    let span = e.span;
    let boxed = |b: Box<Expr>| Box::new(inject_prefix(*b, calls));
    let kind = match e.kind {
        ExprKind::Ident(name) if !crate::eval::CLASSES.contains(&name.as_str()) => {
            return graft(Expr::new(ExprKind::Ident(name), span), calls)
        }
        ExprKind::Call {
            target,
            name,
            name_span,
            args,
            safe,
        } => {
            let args = if name == "downsampling" {
                args
            } else {
                args.into_iter().map(|a| inject_prefix(a, calls)).collect()
            };
            ExprKind::Call {
                target: target.map(boxed),
                name,
                name_span,
                args,
                safe,
            }
        }
        ExprKind::Binary { op, lhs, rhs } => ExprKind::Binary {
            op,
            lhs: boxed(lhs),
            rhs: boxed(rhs),
        },
        ExprKind::Unary { op, expr } => ExprKind::Unary {
            op,
            expr: boxed(expr),
        },
        ExprKind::List(items) => {
            ExprKind::List(items.into_iter().map(|a| inject_prefix(a, calls)).collect())
        }
        other => other,
    };
    Expr::new(kind, span)
}

fn parse_err(p: &Pieces<'_>, map: &SourceMap<'_>, e: ParseError) -> Error {
    Error::Invalid(p.locate(map, e.span, e.message))
}

fn compile_file(file: &str, raw: &str) -> Result<Option<CompiledFile>> {
    let map = SourceMap { file, raw };
    let doc: Option<RuleFileYaml> = if raw.lines().all(|l| {
        let t = l.trim();
        t.is_empty() || t.starts_with('#') || t == "---"
    }) {
        None
    } else {
        Some(serde_yaml::from_str(raw).map_err(|e| {
            let (line, column) = e
                .location()
                .map(|l| (l.line(), l.column()))
                .unwrap_or((1, 1));
            Error::Invalid(Diagnostic {
                file: file.to_string(),
                line,
                column,
                message: format!("invalid rule file: {e}"),
            })
        })?)
    };
    let Some(doc) = doc else {
        return Ok(None);
    };
    let prefix = doc.metric_prefix.as_deref().map(str::trim).unwrap_or("");
    if prefix.is_empty() {
        let off = map.value_start("metricPrefix", 0, true).unwrap_or(0);
        return Err(Error::Invalid(
            map.diag(off, "metricPrefix is required and must not be empty"),
        ));
    }
    let nonempty = |s: &Option<String>| {
        s.as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    let exp_prefix = nonempty(&doc.exp_prefix);
    let exp_suffix = nonempty(&doc.exp_suffix);
    let filter_text = nonempty(&doc.filter);
    let mut pieces = Pieces {
        exp: ("", None),
        prefix: (
            exp_prefix.as_deref().unwrap_or(""),
            map.value_start("expPrefix", 0, true),
        ),
        suffix: (
            exp_suffix.as_deref().unwrap_or(""),
            map.value_start("expSuffix", 0, true),
        ),
        filter: (
            filter_text.as_deref().unwrap_or(""),
            map.value_start("filter", 0, true),
        ),
    };
    let filter = match &filter_text {
        None => None,
        Some(text) => {
            let e = parse(text, Part::Filter).map_err(|e| parse_err(&pieces, &map, e))?;
            match e.kind {
                ExprKind::Closure(c) => {
                    crate::check::check_closure(&c)
                        .map_err(|ce| Error::Invalid(pieces.locate(&map, ce.span, ce.message)))?;
                    Some(*c)
                }
                _ => {
                    return Err(Error::Invalid(pieces.locate(
                        &map,
                        e.span,
                        "filter must be a closure such as { tags -> tags.job_name == 'x' }",
                    )))
                }
            }
        }
    };
    let prefix_calls = match &exp_prefix {
        None => Vec::new(),
        Some(t) => {
            let e = parse(t, Part::Prefix).map_err(|e| parse_err(&pieces, &map, e))?;
            chain_calls(e, "expPrefix")
                .map_err(|ce| Error::Invalid(pieces.locate(&map, ce.span, ce.message)))?
        }
    };
    let suffix_calls = match &exp_suffix {
        None => Vec::new(),
        Some(t) => {
            let e = parse(t, Part::Suffix).map_err(|e| parse_err(&pieces, &map, e))?;
            chain_calls(e, "expSuffix")
                .map_err(|ce| Error::Invalid(pieces.locate(&map, ce.span, ce.message)))?
        }
    };
    let mut rules = Vec::new();
    for (i, r) in doc.metrics_rules.iter().enumerate() {
        pieces.exp = (r.exp.as_str(), map.value_start("exp", i, false));
        let e = parse(&r.exp, Part::Exp).map_err(|e| parse_err(&pieces, &map, e))?;
        let e = if prefix_calls.is_empty() {
            e
        } else {
            inject_prefix(e, &prefix_calls)
        };
        let e = graft(e, &suffix_calls);
        let md =
            analyze(&e).map_err(|ce| Error::Invalid(pieces.locate(&map, ce.span, ce.message)))?;
        let exp_start = Span::new(0, 0, Part::Exp);
        let Some(scope) = md.scope else {
            return Err(Error::Invalid(pieces.locate(
                &map,
                exp_start,
                format!(
                    "rule '{}': one of service(), instance() or endpoint() should be invoked",
                    r.name
                ),
            )));
        };
        let Some(function) = md.function() else {
            return Err(Error::Invalid(pieces.locate(
                &map,
                exp_start,
                format!(
                    "rule '{}': no storage function for downsampling {:?} of a {:?} value",
                    r.name,
                    md.downsampling,
                    md.value_kind()
                ),
            )));
        };
        let kind = md.value_kind();
        rules.push(CompiledRule {
            definition: Arc::new(MetricDefinition {
                name: format!("{prefix}_{}", r.name),
                scope,
                function,
                percentile_ranks: if kind == ValueKind::HistogramPercentile {
                    md.percentiles.clone()
                } else {
                    Vec::new()
                },
            }),
            kind,
            expr: e,
            inputs: md.inputs,
        });
    }
    Ok(Some(CompiledFile {
        name: file.to_string(),
        filter,
        rules,
    }))
}

/// Checks one rule file: syntax, functions, scope and storage function of every rule.
pub fn check_file(path: &Path) -> Result<(), Diagnostic> {
    let name = path.display().to_string();
    let raw = std::fs::read_to_string(path).map_err(|e| Diagnostic {
        file: name.clone(),
        line: 1,
        column: 1,
        message: format!("cannot read file: {e}"),
    })?;
    match compile_file(&name, &raw) {
        Ok(_) => Ok(()),
        Err(Error::Invalid(d)) => Err(d),
        Err(e) => Err(Diagnostic {
            file: name,
            line: 1,
            column: 1,
            message: e.to_string(),
        }),
    }
}

impl RuleSet {
    /// Loads and compiles `paths` in order; the first bad file fails the whole set.
    pub fn load(paths: &[PathBuf]) -> Result<RuleSet> {
        let mut sources = Vec::new();
        for p in paths {
            let raw = std::fs::read_to_string(p).map_err(|source| Error::Read {
                path: p.display().to_string(),
                source,
            })?;
            sources.push((p.display().to_string(), raw));
        }
        let refs: Vec<(&str, &str)> = sources
            .iter()
            .map(|(n, r)| (n.as_str(), r.as_str()))
            .collect();
        RuleSet::from_sources(&refs)
    }

    /// Compiles rule files given as `(name, yaml text)` (the name is used in errors).
    pub fn from_sources(sources: &[(&str, &str)]) -> Result<RuleSet> {
        let mut files: Vec<CompiledFile> = Vec::new();
        let mut seen: Vec<MetricDefinition> = Vec::new();
        for (name, raw) in sources {
            let Some(file) = compile_file(name, raw)? else {
                continue;
            };
            for r in &file.rules {
                if let Some(other) = seen.iter().find(|d| d.name == r.definition.name) {
                    if other.scope != r.definition.scope || other.function != r.definition.function
                    {
                        let map = SourceMap { file: name, raw };
                        return Err(Error::Invalid(map.diag(
                            0,
                            format!(
                                "metric {} is already defined as {:?}/{} and cannot be redefined as {:?}/{}",
                                r.definition.name,
                                other.scope,
                                other.function.name(),
                                r.definition.scope,
                                r.definition.function.name()
                            ),
                        )));
                    }
                } else {
                    seen.push((*r.definition).clone());
                }
            }
            files.push(file);
        }
        let mut filters: Vec<FileFilter> = Vec::new();
        let files = files
            .into_iter()
            .map(|f| {
                let filter = f.filter.map(|closure| {
                    // Spans are relative to the filter's own text, so equal texts compare equal.
                    match filters.iter().position(|x| x.closure == closure) {
                        Some(i) => i,
                        None => {
                            filters.push(FileFilter {
                                reads: label_reads(&closure),
                                closure,
                            });
                            filters.len() - 1
                        }
                    }
                });
                LoadedFile {
                    inputs: f.rules.iter().flat_map(|r| r.inputs.clone()).collect(),
                    name: f.name,
                    filter,
                    rules: f.rules,
                }
            })
            .collect();
        Ok(RuleSet {
            files,
            filters,
            counters: Mutex::new(CounterWindows::default()),
            regexes: RegexCache::default(),
            constants: ConstantArgs::default(),
        })
    }

    /// Every metric the rules define (one per distinct name), in file and rule order.
    pub fn definitions(&self) -> Vec<MetricDefinition> {
        let mut out: Vec<MetricDefinition> = Vec::new();
        for r in self.files.iter().flat_map(|f| &f.rules) {
            if !out.iter().any(|d| d.name == r.definition.name) {
                out.push((*r.definition).clone());
            }
        }
        out
    }

    /// Series whose counter state (`increase`/`rate`/`irate`) is held now. Series idle longer
    /// than twice their range plus a few minutes are evicted as batches are evaluated.
    pub fn counter_series(&self) -> usize {
        self.counters
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }

    /// Runs every rule of every file on one batch (one OTLP `ResourceMetrics`). A rule that
    /// fails at run time is logged and skipped; the others still run.
    pub fn evaluate(&self, families: &SampleFamilies, ctx: &EvalContext) -> RuleOutput {
        // Counter state ages by the server's clock, which only the context knows.
        self.counters
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .tick(ctx.now_ms);
        let mut out = RuleOutput::default();
        let mut seen_traffic = foldhash::HashSet::default();
        let mut filtered = FilterResults::new(&self.filters, &self.regexes);
        for file in &self.files {
            if !families.keys().any(|k| file.inputs.contains(k)) {
                continue;
            }
            for rule in &file.rules {
                if let Some(f) = file.filter {
                    for (name, family) in
                        rule.inputs.iter().filter_map(|n| families.get_key_value(n))
                    {
                        filtered.ensure(f, &file.name, name, &family.samples);
                    }
                }
                let input = select(file, rule, families, &filtered);
                if input.is_empty() {
                    continue;
                }
                let mut ev = MalEval {
                    families: &input,
                    ctx,
                    counters: &self.counters,
                    regexes: &self.regexes,
                    constants: &self.constants,
                    metric_name: &rule.definition.name,
                    groups: None,
                    group_labels: rule.kind != ValueKind::Single,
                };
                match ev.eval(&rule.expr) {
                    Ok(MalValue::Family(result)) if !result.is_empty() => {
                        if let Some(groups) = ev.groups.take() {
                            emit(rule, groups, &mut out, &mut seen_traffic);
                        }
                    }
                    Ok(MalValue::Family(_)) => {}
                    Ok(other) => tracing::warn!(
                        file = %file.name,
                        metric = %rule.definition.name,
                        "rule produced a {} instead of a sample family",
                        other.type_name()
                    ),
                    Err(e) => tracing::warn!(
                        file = %file.name,
                        metric = %rule.definition.name,
                        error = %e,
                        "rule evaluation failed"
                    ),
                }
            }
        }
        out
    }
}

/// The rule's input families after the file filter (empty when nothing is left). When the
/// filter fails on any of them, the rule sees all of them unfiltered.
fn select<'a>(
    file: &LoadedFile,
    rule: &'a CompiledRule,
    families: &'a SampleFamilies,
    filtered: &'a FilterResults<'_>,
) -> Inputs<'a> {
    let present = rule
        .inputs
        .iter()
        .filter_map(|n| families.get(n).map(|f| (n.as_str(), f.samples.as_slice())));
    let mut input = Inputs::default();
    let Some(f) = file.filter else {
        present.for_each(|(n, s)| input.push(n, s));
        return input;
    };
    let results = &filtered.done[f];
    let failed = rule
        .inputs
        .iter()
        .any(|n| matches!(results.get(n.as_str()), Some(Filtered::Failed)));
    for (name, samples) in present {
        match results.get(name) {
            _ if failed => input.push(name, samples),
            Some(Filtered::All) => input.push(name, samples),
            Some(Filtered::Some(kept)) => input.push(name, kept),
            Some(Filtered::Nothing | Filtered::Failed) | None => {}
        }
    }
    input
}

fn bucket_bound(le: &str) -> i64 {
    le.parse::<i64>().unwrap_or_else(|_| {
        crate::eval::family::parse_java_double(le)
            .map(|f| f as i64)
            .unwrap_or(0)
    })
}

fn emit(
    rule: &CompiledRule,
    groups: Vec<EntityGroup>,
    out: &mut RuleOutput,
    seen: &mut foldhash::HashSet<Traffic>,
) {
    for g in groups {
        let Some(first) = g.samples.first() else {
            continue;
        };
        let minute = match TimeBucket::from_epoch_ms(first.timestamp_ms, Step::Minute) {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(metric = %rule.definition.name, error = %e, "sample time out of range");
                continue;
            }
        };
        let value = match rule.kind {
            ValueKind::Single => MeterValue::Single(to_long(first.value)),
            ValueKind::Labeled => MeterValue::Labeled(
                g.samples
                    .iter()
                    .map(|s| (s.labels.clone(), to_long(s.value)))
                    .collect(),
            ),
            ValueKind::Histogram | ValueKind::HistogramPercentile => {
                let mut groups: Vec<HistogramGroup> = Vec::new();
                for s in &g.samples {
                    let Some(le) = s.labels.get("le") else {
                        continue;
                    };
                    let bucket = (bucket_bound(le), to_long(s.value));
                    // Compared in place: only a new group pays for a copy without `le`.
                    match groups.iter_mut().find(|h| {
                        h.labels.len() + 1 == s.labels.len()
                            && h.labels
                                .iter()
                                .eq(s.labels.iter().filter(|(k, _)| *k != "le"))
                    }) {
                        Some(h) => h.buckets.push(bucket),
                        None => {
                            let mut labels = s.labels.clone();
                            labels.remove("le");
                            let mut buckets = Vec::with_capacity(g.samples.len());
                            buckets.push(bucket);
                            groups.push(HistogramGroup { labels, buckets })
                        }
                    }
                }
                for h in &mut groups {
                    h.buckets.sort_by_key(|(b, _)| *b);
                }
                MeterValue::Histogram(groups)
            }
        };
        let entity = g.entity;
        let mut push = |t: Traffic| {
            if !seen.contains(&t) {
                seen.insert(t.clone());
                out.traffic.push(t);
            }
        };
        push(Traffic::Service(ServiceTraffic {
            name: entity.service_name.clone(),
            layer: entity.layer,
        }));
        if entity.scope == Scope::ServiceInstance && !entity.instance_name.is_empty() {
            push(Traffic::Instance(InstanceTraffic {
                service_name: entity.service_name.clone(),
                name: entity.instance_name.clone(),
                layer: entity.layer,
            }));
        }
        if entity.scope == Scope::Endpoint && !entity.endpoint_name.is_empty() {
            push(Traffic::Endpoint(EndpointTraffic {
                service_name: entity.service_name.clone(),
                name: entity.endpoint_name.clone(),
                layer: entity.layer,
            }));
        }
        out.emissions.push(MetricEmission {
            metric: rule.definition.clone(),
            entity,
            minute,
            value,
        });
    }
}
