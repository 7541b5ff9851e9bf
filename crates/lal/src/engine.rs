//! Rule files, rule selection (`layer: auto` and the GENERAL fallback) and what a processed log
//! yields: records, log-MAL samples and traffic.
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use skylark_core::traffic::{EndpointTraffic, InstanceTraffic, ServiceTraffic, Traffic};
use skylark_core::{Layer, LogData, LogRecord, SampleFamilies};

use crate::error::{Diagnostic, Error, ParseError, Result};
use crate::eval::{Metadata, RuleRun, Run, Samplers};
use crate::parser::parse;
use crate::program::{compile, CompileOptions, Program};
use crate::span::Span;

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    #[serde(default)]
    rules: Vec<RuleEntry>,
    #[serde(default, rename = "layerDefinitions")]
    layer_definitions: Vec<LayerDefinition>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleEntry {
    name: String,
    layer: String,
    dsl: String,
    #[serde(default, rename = "inputType")]
    input_type: Option<String>,
    #[serde(default, rename = "outputType")]
    output_type: Option<String>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct LayerDefinition {
    name: String,
    #[serde(alias = "value")]
    ordinal: i32,
    #[serde(default)]
    #[allow(dead_code)]
    normal: Option<bool>,
}

/// A checked rule.
#[derive(Debug)]
struct Rule {
    name: String,
    /// `None` for `layer: auto`.
    layer: Option<String>,
    /// Only `Log` output (the default) persists log records.
    persists_logs: bool,
    program: Program,
}

/// What processing one log produced.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LalOutput {
    /// Log records to persist.
    pub records: Vec<LogRecord>,
    /// One single-sample family per `metrics {}` emission, for the log-MAL rules.
    pub samples: Vec<SampleFamilies>,
    /// Entity registrations from persisted logs (service, and instance/endpoint when the
    /// metadata names one).
    pub traffic: Vec<Traffic>,
}

/// The loaded LAL rules, ready to process logs.
#[derive(Debug)]
pub struct LalEngine {
    rules: Vec<Rule>,
    auto: Vec<usize>,
    by_layer: HashMap<String, Vec<usize>>,
    custom_layers: HashMap<String, Layer>,
    samplers: Samplers,
}

/// Where each rule's `dsl:` text sits in its file, to translate script positions.
#[derive(Debug, Clone, Copy)]
struct DslOrigin {
    /// 1-based file line of the `dsl:` key.
    key_line: u32,
    /// For a block scalar (`|`), the indentation of its content; `None` for inline scalars.
    block_indent: Option<u32>,
    /// 1-based column where an inline value starts.
    inline_col: u32,
}

fn key_lines(text: &str, key: &str) -> Vec<(u32, u32, String)> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        let trimmed_dash = trimmed
            .strip_prefix('-')
            .map(str::trim_start)
            .unwrap_or(trimmed);
        if let Some(rest) = trimmed_dash.strip_prefix(key) {
            if let Some(value) = rest.strip_prefix(':') {
                let col = (line.len() - value.trim_start().len()) as u32 + 1;
                out.push((i as u32 + 1, col, value.trim().to_string()));
            }
        }
    }
    out
}

fn dsl_origins(text: &str) -> Vec<DslOrigin> {
    let lines: Vec<&str> = text.lines().collect();
    key_lines(text, "dsl")
        .into_iter()
        .map(|(line, col, value)| {
            let block_indent = if value.starts_with('|') || value.starts_with('>') {
                lines
                    .iter()
                    .skip(line as usize)
                    .find(|l| !l.trim().is_empty())
                    .map(|l| (l.len() - l.trim_start().len()) as u32)
            } else {
                None
            };
            DslOrigin {
                key_line: line,
                block_indent,
                inline_col: col,
            }
        })
        .collect()
}

impl DslOrigin {
    fn locate(self, span: Span) -> (u32, u32) {
        match self.block_indent {
            Some(indent) => (self.key_line + span.line, indent + span.col),
            None => (self.key_line, self.inline_col + span.col.saturating_sub(1)),
        }
    }
}

fn diagnostic(file: &Path, line: u32, col: u32, code: &'static str, message: String) -> Diagnostic {
    Diagnostic {
        file: file.to_path_buf(),
        line,
        col,
        code,
        message,
    }
}

/// Rules of one file, checked; positions of problems are reported in the file.
fn load_file(path: &Path, text: &str) -> Result<(Vec<Rule>, HashMap<String, Layer>), Diagnostic> {
    let file: RuleFile = serde_yaml::from_str(text).map_err(|e| {
        let (line, col) = e
            .location()
            .map(|l| (l.line() as u32, l.column() as u32))
            .unwrap_or((1, 1));
        let mut message = e.to_string();
        // The position is already in front of the message.
        if let Some(at) = message.rfind(" at line ") {
            message.truncate(at);
        }
        diagnostic(
            path,
            line,
            col,
            "LAL401",
            format!("invalid rule file: {message}"),
        )
    })?;
    let origins = dsl_origins(text);
    let layer_lines = key_lines(text, "layer");
    let mut custom_layers = HashMap::new();
    for def in &file.layer_definitions {
        custom_layers.insert(def.name.clone(), Layer(def.ordinal));
    }
    let options_layers: Vec<String> = custom_layers.keys().cloned().collect();
    let mut rules = Vec::new();
    for (i, entry) in file.rules.iter().enumerate() {
        let layer = if entry.layer == "auto" {
            None
        } else {
            if Layer::from_name(&entry.layer).is_none() && !custom_layers.contains_key(&entry.layer)
            {
                let (line, col) = layer_lines
                    .get(i)
                    .map(|(l, c, _)| (*l, *c))
                    .unwrap_or((1, 1));
                return Err(diagnostic(
                    path,
                    line,
                    col,
                    "LAL402",
                    format!("rule `{}`: unknown layer `{}`", entry.name, entry.layer),
                ));
            }
            Some(entry.layer.clone())
        };
        let options = CompileOptions {
            output_type: entry.output_type.clone(),
            extra_layers: options_layers.clone(),
        };
        let origin = origins.get(i).copied().unwrap_or(DslOrigin {
            key_line: 1,
            block_indent: None,
            inline_col: 1,
        });
        let program = parse(&entry.dsl)
            .and_then(|script| compile(&script, &options))
            .map_err(|e: ParseError| {
                let (line, col) = origin.locate(e.span);
                diagnostic(
                    path,
                    line,
                    col,
                    e.code,
                    format!("rule `{}`: {}", entry.name, e.message),
                )
            })?;
        if entry.input_type.is_some() {
            tracing::debug!(rule = %entry.name, "inputType is informational here");
        }
        rules.push(Rule {
            name: entry.name.clone(),
            layer,
            persists_logs: entry
                .output_type
                .as_deref()
                .is_none_or(|t| t.is_empty() || t == "Log"),
            program,
        });
    }
    Ok((rules, custom_layers))
}

/// Checks one rule file: YAML shape, every rule's DSL and its layer names.
pub fn check_file(path: impl AsRef<Path>) -> std::result::Result<(), Diagnostic> {
    let path = path.as_ref();
    let text = std::fs::read_to_string(path)
        .map_err(|e| diagnostic(path, 1, 1, "LAL400", format!("cannot read file: {e}")))?;
    load_file(path, &text).map(|_| ())
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

impl LalEngine {
    /// Loads rule files in order (as OAP's `lalFiles`); the first bad file fails the load with
    /// its `file:line:col`.
    pub fn load<P: AsRef<Path>>(paths: &[P]) -> Result<LalEngine> {
        let mut sources = Vec::new();
        for p in paths {
            let path = p.as_ref().to_path_buf();
            let text = std::fs::read_to_string(&path).map_err(|source| Error::Read {
                path: path.clone(),
                source,
            })?;
            sources.push((path, text));
        }
        LalEngine::from_sources(sources)
    }

    /// Builds an engine from `(file name, YAML text)` pairs already in memory.
    pub fn from_sources<I>(sources: I) -> Result<LalEngine>
    where
        I: IntoIterator<Item = (PathBuf, String)>,
    {
        let mut engine = LalEngine {
            rules: Vec::new(),
            auto: Vec::new(),
            by_layer: HashMap::new(),
            custom_layers: HashMap::new(),
            samplers: Samplers::new(now_ms() as u64),
        };
        for (path, text) in sources {
            let (rules, layers) = load_file(&path, &text)?;
            engine.custom_layers.extend(layers);
            for rule in rules {
                let idx = engine.rules.len();
                match &rule.layer {
                    None => {
                        if engine
                            .auto
                            .iter()
                            .any(|&i| engine.rules[i].name == rule.name)
                        {
                            let (line, col) = key_lines(&text, "name")
                                .into_iter()
                                .find(|(_, _, v)| v.trim_matches(['\'', '"']) == rule.name)
                                .map(|(l, c, _)| (l, c))
                                .unwrap_or((1, 1));
                            return Err(diagnostic(
                                &path,
                                line,
                                col,
                                "LAL403",
                                format!("duplicate `layer: auto` rule name `{}`", rule.name),
                            )
                            .into());
                        }
                        engine.auto.push(idx);
                    }
                    Some(layer) => engine.by_layer.entry(layer.clone()).or_default().push(idx),
                }
                engine.rules.push(rule);
            }
        }
        tracing::info!(
            rules = engine.rules.len(),
            auto = engine.auto.len(),
            "lal rules loaded"
        );
        Ok(engine)
    }

    /// Number of loaded rules.
    pub fn rule_count(&self) -> usize {
        self.rules.len()
    }

    fn layer_named(&self, name: &str) -> Option<Layer> {
        Layer::from_name(name).or_else(|| self.custom_layers.get(name).copied())
    }

    /// Processes one log now (wall clock for time-0 logs and rate limits).
    pub fn process(&self, log: LogData) -> LalOutput {
        self.process_at(log, now_ms())
    }

    /// Processes one log as if the wall clock read `now_ms` (used for logs without a timestamp
    /// and for rate-limit windows).
    pub fn process_at(&self, log: LogData, now_ms: i64) -> LalOutput {
        let mut output = LalOutput::default();
        let meta = Metadata {
            service: log.service.clone(),
            service_instance: log.service_instance.clone(),
            endpoint: log.endpoint.clone(),
            layer: log.layer.clone(),
            timestamp: if log.timestamp_ms == 0 {
                now_ms
            } else {
                log.timestamp_ms
            },
        };
        if !log.layer.is_empty() {
            if self.layer_named(&log.layer).is_none() {
                tracing::warn!(layer = %log.layer, service = %log.service, "log with unknown layer dropped");
                return output;
            }
            for &idx in self.by_layer.get(&log.layer).into_iter().flatten() {
                self.run(idx, &log, meta.clone(), now_ms, &mut output);
            }
            return output;
        }
        let mut claimed = false;
        for &idx in &self.auto {
            claimed |= self.run(idx, &log, meta.clone(), now_ms, &mut output);
        }
        if !claimed {
            for &idx in self
                .by_layer
                .get(Layer::GENERAL.name())
                .into_iter()
                .flatten()
            {
                self.run(idx, &log, meta.clone(), now_ms, &mut output);
            }
        }
        output
    }

    /// Runs one rule; returns whether it claimed the log (did not abort).
    fn run(
        &self,
        idx: usize,
        log: &LogData,
        mut meta: Metadata,
        now_ms: i64,
        output: &mut LalOutput,
    ) -> bool {
        let rule = &self.rules[idx];
        if meta.layer.is_empty() {
            if let Some(layer) = &rule.layer {
                meta.layer = layer.clone();
            }
        }
        let run = Run::new(log, meta, &rule.name, &self.samplers, now_ms).execute(&rule.program);
        output.samples.extend(run.samples.iter().cloned());
        if run.aborted {
            return false;
        }
        if run.sink == Some(true) {
            self.persist(rule, log, run, output);
        }
        true
    }

    fn persist(&self, rule: &Rule, log: &LogData, run: RuleRun, output: &mut LalOutput) {
        let RuleRun { meta, out, .. } = run;
        if meta.layer.is_empty() {
            tracing::warn!(rule = %rule.name, service = %meta.service, "auto rule reached sink without a layer; log dropped");
            return;
        }
        let Some(layer) = self.layer_named(&meta.layer) else {
            tracing::warn!(rule = %rule.name, layer = %meta.layer, "rule set an unknown layer; log dropped");
            return;
        };
        if !rule.persists_logs {
            tracing::debug!(rule = %rule.name, fields = ?out.fields, "non-log output is not stored");
            return;
        }
        let non_empty = |s: Option<String>| s.filter(|s| !s.is_empty());
        let tags = merged_tags(&log.tags, out.tags);
        output.records.push(LogRecord {
            service: out.service.unwrap_or_else(|| meta.service.clone()),
            service_instance: out
                .instance
                .unwrap_or_else(|| meta.service_instance.clone()),
            endpoint: out.endpoint.unwrap_or_else(|| meta.endpoint.clone()),
            layer,
            timestamp_ms: out.timestamp.unwrap_or(meta.timestamp),
            trace_id: non_empty(out.trace_id.or_else(|| log.trace_id.clone())),
            segment_id: non_empty(out.segment_id.or_else(|| log.segment_id.clone())),
            span_id: out.span_id.or(log.span_id),
            content_type: log.body.content_type(),
            content: log.body.content().to_string(),
            tags,
        });
        output.traffic.push(Traffic::Service(ServiceTraffic {
            name: meta.service.clone(),
            layer,
        }));
        if !meta.service_instance.is_empty() {
            output.traffic.push(Traffic::Instance(InstanceTraffic {
                service_name: meta.service.clone(),
                name: meta.service_instance.clone(),
                layer,
            }));
        }
        if !meta.endpoint.is_empty() {
            output.traffic.push(Traffic::Endpoint(EndpointTraffic {
                service_name: meta.service,
                name: meta.endpoint,
                layer,
            }));
        }
    }
}

/// The log's attributes followed by the extractor's tags, each key/value pair once: rules copy
/// attributes into tags (`tag 'exception.type': tag("exception.type")`), and a pair stored twice
/// shows twice in every UI and is indexed twice.
fn merged_tags(
    attributes: &[(String, String)],
    extracted: Vec<(String, String)>,
) -> Vec<(String, String)> {
    let mut tags: Vec<(String, String)> = Vec::with_capacity(attributes.len() + extracted.len());
    let mut seen = std::collections::HashSet::with_capacity(tags.capacity());
    for pair in attributes.iter().cloned().chain(extracted) {
        if seen.insert(pair.clone()) {
            tags.push(pair);
        }
    }
    tags
}

#[cfg(test)]
mod tests {
    use super::merged_tags;

    fn kv(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_pair_is_kept_once_and_a_new_value_of_a_key_is_kept() {
        let attributes = kv(&[("exception.type", "js"), ("a", "1"), ("a", "1")]);
        let extracted = kv(&[("exception.type", "js"), ("platform", "wechat"), ("a", "2")]);
        assert_eq!(
            merged_tags(&attributes, extracted),
            kv(&[
                ("exception.type", "js"),
                ("a", "1"),
                ("platform", "wechat"),
                ("a", "2")
            ])
        );
    }
}
