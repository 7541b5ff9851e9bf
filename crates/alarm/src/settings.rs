//! `alarm-settings.yml` in OAP's format: rules over MQE expressions, and hooks. Everything is
//! checked at load time and problems name the file and line.
use crate::error::{Error, Result};
use regex::Regex;
use serde_yaml::{Mapping, Value};
use skylark_core::{MetricCatalog, MetricDefinition, Scope};
use skylark_query::mqe::{self, Expr, MetricRef};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Largest settings file read, in bytes.
pub const MAX_SETTINGS_BYTES: u64 = 1024 * 1024;
/// Longest window a rule may look at, in minutes (one day): every rule reads its whole window
/// for every entity each minute.
pub const MAX_PERIOD_MINUTES: i64 = 1440;
/// Longest silence or recovery observation, in minutes (a week).
pub const MAX_COUNTDOWN_MINUTES: i64 = 10_080;
/// Most rules in one file.
pub const MAX_RULES: usize = 500;

/// The parsed and checked settings.
#[derive(Debug, Clone)]
pub struct AlarmSettings {
    /// Where they came from.
    pub path: PathBuf,
    /// The rules, in file order.
    pub rules: Vec<AlarmRule>,
    /// Every hook by id (`{type}.{name}`).
    pub hooks: BTreeMap<String, Hook>,
}

/// How an alarm message names its entity (OAP's `AlarmMessageFormatter`: `{name}` and `{id}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageFormat {
    /// Literal text between the placeholders (one more than `values`).
    segments: Vec<String>,
    /// `true` for `{name}`, `false` for `{id}`.
    values: Vec<bool>,
}

impl MessageFormat {
    /// Parses `{name}`/`{id}` placeholders; any other `{...}` is an error, as in OAP.
    pub fn parse(format: &str) -> std::result::Result<MessageFormat, String> {
        let mut segments = Vec::new();
        let mut values = Vec::new();
        let mut rest = format;
        while let Some(start) = rest.find('{') {
            let Some(len) = rest[start..].find('}') else {
                break;
            };
            let var = &rest[start + 1..start + len];
            match var {
                "name" => values.push(true),
                "id" => values.push(false),
                _ => {
                    return Err(format!(
                        "var [{var}] in alarm message [{format}] is illegal"
                    ))
                }
            }
            segments.push(rest[..start].to_string());
            rest = &rest[start + len + 1..];
        }
        segments.push(rest.to_string());
        Ok(MessageFormat { segments, values })
    }

    /// The message for an entity.
    pub fn format(&self, name: &str, id0: &str) -> String {
        let mut out = String::new();
        for (i, segment) in self.segments.iter().enumerate() {
            out.push_str(segment);
            if let Some(is_name) = self.values.get(i) {
                out.push_str(if *is_name { name } else { id0 });
            }
        }
        out
    }
}

/// One checked rule (OAP's `AlarmRule`).
#[derive(Debug, Clone)]
pub struct AlarmRule {
    /// The YAML key, ending in `_rule`.
    pub name: String,
    /// 1-based line of the key.
    pub line: usize,
    /// The MQE expression as written.
    pub expression: String,
    /// Metrics the expression reads (all of one scope).
    pub metrics: Vec<MetricDefinition>,
    /// Metric references as written (`m{p='50'}`), for the snapshot.
    pub metric_texts: Vec<String>,
    /// The scope of every metric.
    pub scope: Scope,
    /// Entity names the rule is limited to (empty: all).
    pub include_names: Vec<String>,
    /// Entity names the rule skips.
    pub exclude_names: Vec<String>,
    /// Entity names must match this whole (OAP's Java `matches`).
    pub include_names_regex: Option<Regex>,
    /// Entity names matching this whole are skipped.
    pub exclude_names_regex: Option<Regex>,
    /// Window size in minutes.
    pub period: u32,
    /// Extra minutes before the window that `increase`/`rate` read (OAP's `additionalPeriod`,
    /// the largest trend range in the expression; 0 without one).
    pub additional_period: u32,
    /// Checks to stay silent after firing (default: `period`).
    pub silence_period: u32,
    /// Consecutive false checks before recovery is sent (default 0).
    pub recovery_observation_period: u32,
    /// The message.
    pub message: MessageFormat,
    /// Tags, in file order.
    pub tags: Vec<(String, String)>,
    /// Hook ids notified (the rule's own, else every default hook).
    pub hooks: Vec<String>,
}

impl AlarmRule {
    /// Whether an entity name passes the include/exclude lists and regexes.
    pub fn accepts(&self, name: &str) -> bool {
        if !self.include_names.is_empty() && !self.include_names.iter().any(|n| n == name) {
            return false;
        }
        if self.exclude_names.iter().any(|n| n == name) {
            return false;
        }
        if let Some(re) = &self.include_names_regex {
            if !re.is_match(name) {
                return false;
            }
        }
        if let Some(re) = &self.exclude_names_regex {
            if re.is_match(name) {
                return false;
            }
        }
        true
    }
}

/// A webhook URL with its optional signing secret (DingTalk, Feishu).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedUrl {
    /// The URL.
    pub url: String,
    /// The secret; empty when the robot has no signing.
    pub secret: String,
}

/// A WeLink app and the groups its robot posts to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WeLinkWebhook {
    /// The app's client id (for the access token).
    pub client_id: String,
    /// The app's client secret (for the access token).
    pub client_secret: String,
    /// Where the access token is fetched.
    pub access_token_url: String,
    /// Where messages are posted.
    pub message_url: String,
    /// Group ids, comma-separated as written (OAP splits them at send time).
    pub group_ids: String,
    /// The robot's name shown in the groups (default `robot`).
    pub robot_name: String,
}

/// A Discord webhook and the name its messages show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscordWebhook {
    /// The webhook URL.
    pub url: String,
    /// The poster's name (default `robot`).
    pub username: String,
}

/// PagerDuty's Events API v2 endpoint of the US region, OAP's default.
pub const PAGERDUTY_EVENTS_API_URL: &str = "https://events.pagerduty.com/v2/enqueue";

/// What a hook sends and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HookKind {
    /// OAP's JSON list of alarm messages.
    Webhook {
        /// Firing messages go here.
        urls: Vec<String>,
        /// Recovery messages go here.
        recovery_urls: Vec<String>,
        /// Extra headers (authentication).
        headers: Vec<(String, String)>,
    },
    /// A WeChat Work group robot.
    Wechat {
        /// `%s` is replaced by the message.
        text_template: String,
        /// The same for recoveries (none sent when empty).
        recovery_text_template: String,
        /// Robot URLs.
        webhooks: Vec<String>,
    },
    /// A DingTalk robot, signed in the URL when it has a secret.
    Dingtalk {
        /// `%s` is replaced by the message.
        text_template: String,
        /// The same for recoveries.
        recovery_text_template: String,
        /// Robot URLs and secrets.
        webhooks: Vec<SignedUrl>,
    },
    /// A Feishu robot, signed in the body when it has a secret.
    Feishu {
        /// `%s` is replaced by the message (a JSON object with `msg_type` and `content`).
        text_template: String,
        /// The same for recoveries.
        recovery_text_template: String,
        /// Robot URLs and secrets.
        webhooks: Vec<SignedUrl>,
    },
    /// Slack incoming webhooks (one `blocks` list per call).
    Slack {
        /// `%s` is replaced by the message (a JSON block).
        text_template: String,
        /// The same for recoveries.
        recovery_text_template: String,
        /// Webhook URLs.
        webhooks: Vec<String>,
    },
    /// WeLink group robots: an access token is fetched, then the message is posted.
    WeLink {
        /// `%s` is replaced by the message (plain text).
        text_template: String,
        /// The same for recoveries.
        recovery_text_template: String,
        /// Apps and groups.
        webhooks: Vec<WeLinkWebhook>,
    },
    /// PagerDuty Events API v2: one `trigger` event per integration key and message.
    PagerDuty {
        /// `%s` is replaced by the message (plain text, the event's summary).
        text_template: String,
        /// The same for recoveries.
        recovery_text_template: String,
        /// The Events API endpoint (US region unless set).
        events_api_url: String,
        /// Integration (routing) keys.
        integration_keys: Vec<String>,
    },
    /// Discord webhooks.
    Discord {
        /// `%s` is replaced by the message (plain text).
        text_template: String,
        /// The same for recoveries.
        recovery_text_template: String,
        /// Webhook URLs and poster names.
        webhooks: Vec<DiscordWebhook>,
    },
}

impl HookKind {
    /// The hook type as written in the settings (also the metric label).
    pub fn type_name(&self) -> &'static str {
        match self {
            HookKind::Webhook { .. } => "webhook",
            HookKind::Wechat { .. } => "wechat",
            HookKind::Dingtalk { .. } => "dingtalk",
            HookKind::Feishu { .. } => "feishu",
            HookKind::Slack { .. } => "slack",
            HookKind::WeLink { .. } => "welink",
            HookKind::PagerDuty { .. } => "pagerduty",
            HookKind::Discord { .. } => "discord",
        }
    }
}

/// One configured hook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hook {
    /// `{type}.{name}`.
    pub id: String,
    /// Used by rules without `hooks`.
    pub is_default: bool,
    /// Type and settings.
    pub kind: HookKind,
}

/// Hook types Skylark sends.
const HOOK_TYPES: [&str; 8] = [
    "webhook",
    "wechat",
    "dingtalk",
    "feishu",
    "slack",
    "welink",
    "pagerduty",
    "discord",
];

/// OAP's gRPC hook: a streaming call to a user's gRPC server, not an HTTP call, so it is
/// refused at load rather than silently never called.
const GRPC_HOOK_TYPE: &str = "gRPC";

/// Finds the 1-based line of a nested key (`rules` → `x_rule` → `period`); the closest found
/// ancestor's line when the key itself is not written (defaults).
pub(crate) fn line_of(text: &str, path: &[&str]) -> usize {
    let mut line_no = 1;
    let mut depth = 0;
    let mut parent_indent: Option<usize> = None;
    for (i, line) in text.lines().enumerate() {
        if depth == path.len() {
            break;
        }
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let indent = line.len() - trimmed.len();
        if parent_indent.is_some_and(|p| indent <= p) {
            // Left the parent's block without finding the key.
            break;
        }
        let key = trimmed
            .trim_start_matches("- ")
            .split(':')
            .next()
            .unwrap_or_default()
            .trim()
            .trim_matches(|c| c == '"' || c == '\'');
        if key == path[depth] && trimmed.contains(':') {
            line_no = i + 1;
            parent_indent = Some(indent);
            depth += 1;
        }
    }
    line_no
}

struct Reader<'a> {
    path: &'a Path,
    text: &'a str,
}

impl Reader<'_> {
    fn err(&self, at: &[&str], message: impl Into<String>) -> Error {
        Error::Settings {
            path: self.path.to_path_buf(),
            line: line_of(self.text, at),
            message: message.into(),
        }
    }

    fn string(&self, map: &Mapping, key: &str, at: &[&str]) -> Result<Option<String>> {
        match map.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(Value::Bool(b)) => Ok(Some(b.to_string())),
            Some(_) => Err(self.err(&with(at, key), format!("`{key}` must be a string"))),
        }
    }

    fn strings(&self, map: &Mapping, key: &str, at: &[&str]) -> Result<Vec<String>> {
        match map.get(key) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Sequence(items)) => items
                .iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s.clone()),
                    Value::Number(n) => Ok(n.to_string()),
                    _ => Err(self.err(&with(at, key), format!("`{key}` must list strings"))),
                })
                .collect(),
            Some(_) => Err(self.err(&with(at, key), format!("`{key}` must be a list"))),
        }
    }

    fn minutes(&self, map: &Mapping, key: &str, at: &[&str], max: i64) -> Result<Option<u32>> {
        match map.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => match n.as_i64() {
                Some(v) if (0..=max).contains(&v) => Ok(Some(v as u32)),
                _ => Err(self.err(
                    &with(at, key),
                    format!("`{key}` must be a whole number of minutes from 0 to {max}"),
                )),
            },
            Some(_) => Err(self.err(&with(at, key), format!("`{key}` must be a number"))),
        }
    }

    fn flag(&self, map: &Mapping, key: &str, at: &[&str]) -> Result<bool> {
        match map.get(key) {
            None | Some(Value::Null) => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(_) => Err(self.err(&with(at, key), format!("`{key}` must be true or false"))),
        }
    }

    fn map<'v>(&self, value: &'v Value, at: &[&str], what: &str) -> Result<&'v Mapping> {
        match value {
            Value::Mapping(m) => Ok(m),
            _ => Err(self.err(at, format!("{what} must be a mapping"))),
        }
    }
}

fn with<'a>(at: &[&'a str], key: &'a str) -> Vec<&'a str> {
    let mut v = at.to_vec();
    v.push(key);
    v
}

fn key_text(key: &Value) -> String {
    match key {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        _ => String::new(),
    }
}

/// Loads and checks a settings file against the metric catalog.
pub fn load(path: &Path, catalog: &MetricCatalog) -> Result<AlarmSettings> {
    let read = |source| Error::Read {
        path: path.to_path_buf(),
        source,
    };
    let size = std::fs::metadata(path).map_err(read)?.len();
    if size > MAX_SETTINGS_BYTES {
        return Err(Error::Settings {
            path: path.to_path_buf(),
            line: 1,
            message: format!("the file is {size} bytes, more than {MAX_SETTINGS_BYTES}"),
        });
    }
    let text = std::fs::read_to_string(path).map_err(read)?;
    parse(path, &text, catalog)
}

/// Checks settings text (`path` only names it in errors).
pub fn parse(path: &Path, text: &str, catalog: &MetricCatalog) -> Result<AlarmSettings> {
    let r = Reader { path, text };
    let root: Value = serde_yaml::from_str(text).map_err(|e| Error::Settings {
        path: path.to_path_buf(),
        line: e.location().map(|l| l.line()).unwrap_or(1),
        message: format!("not valid YAML: {e}"),
    })?;
    let empty = Mapping::new();
    let root = match &root {
        Value::Null => &empty,
        v => r.map(v, &[], "the settings file")?,
    };
    for key in root.keys() {
        let k = key_text(key);
        if k != "rules" && k != "hooks" {
            return Err(r.err(
                &[&k],
                format!("unknown section `{k}` (expected rules, hooks)"),
            ));
        }
    }
    let hooks = match root.get("hooks") {
        None | Some(Value::Null) => BTreeMap::new(),
        Some(v) => read_hooks(&r, r.map(v, &["hooks"], "`hooks`")?)?,
    };
    let mut rules = Vec::new();
    if let Some(v) = root.get("rules").filter(|v| !v.is_null()) {
        let map = r.map(v, &["rules"], "`rules`")?;
        if map.len() > MAX_RULES {
            return Err(r.err(&["rules"], format!("more than {MAX_RULES} rules")));
        }
        for (key, value) in map {
            let name = key_text(key);
            rules.push(read_rule(&r, &name, value, &hooks, catalog)?);
        }
    }
    Ok(AlarmSettings {
        path: path.to_path_buf(),
        rules,
        hooks,
    })
}

const RULE_KEYS: [&str; 11] = [
    "expression",
    "period",
    "silence-period",
    "recovery-observation-period",
    "include-names",
    "exclude-names",
    "include-names-regex",
    "exclude-names-regex",
    "message",
    "tags",
    "hooks",
];

fn read_rule(
    r: &Reader<'_>,
    name: &str,
    value: &Value,
    hooks: &BTreeMap<String, Hook>,
    catalog: &MetricCatalog,
) -> Result<AlarmRule> {
    let at = ["rules", name];
    if !name.ends_with("_rule") {
        return Err(r.err(&at, format!("rule name `{name}` must end with `_rule`")));
    }
    let map = r.map(value, &at, &format!("rule `{name}`"))?;
    for key in map.keys() {
        let k = key_text(key);
        if !RULE_KEYS.contains(&k.as_str()) {
            return Err(r.err(
                &with(&at, &k),
                format!("rule `{name}`: unknown field `{k}`"),
            ));
        }
    }
    let expression = r
        .string(map, "expression", &at)?
        .filter(|e| !e.trim().is_empty())
        .ok_or_else(|| r.err(&at, format!("rule `{name}`: expression can't be empty")))?;
    let expr_at = with(&at, "expression");
    let fail = |message: String| r.err(&expr_at, format!("rule `{name}`: {message}"));
    let expr = mqe::parse(&expression)
        .map_err(|e| fail(format!("expression `{expression}` has a syntax error: {e}")))?;
    if !is_bool_root(&expr) {
        return Err(fail(format!(
            "expression `{expression}` root operation is not a Compare Operation"
        )));
    }
    if !is_single_value(&expr) {
        return Err(fail(format!(
            "expression `{expression}` is not a SINGLE_VALUE result expression"
        )));
    }
    let mut refs = Vec::new();
    metric_refs(&expr, &mut refs);
    let mut metrics: Vec<MetricDefinition> = Vec::new();
    let mut metric_texts = Vec::new();
    for m in &refs {
        let def = catalog
            .get(&m.name)
            .ok_or_else(|| fail(format!("metric `{}` does not exist", m.name)))?;
        if !metrics.iter().any(|d| d.name == def.name) {
            metrics.push(def);
        }
        let text = m.to_string();
        if !metric_texts.contains(&text) {
            metric_texts.push(text);
        }
    }
    let scopes: BTreeSet<&str> = metrics.iter().map(|d| d.scope.as_str()).collect();
    let scope = match (scopes.len(), metrics.first()) {
        (1, Some(def)) => def.scope,
        (0, _) => return Err(fail(format!("expression `{expression}` reads no metric"))),
        _ => {
            return Err(fail(format!(
                "the metrics in expression `{expression}` must have the same scope level, but got {scopes:?}"
            )))
        }
    };
    if !matches!(
        scope,
        Scope::Service | Scope::ServiceInstance | Scope::Endpoint
    ) {
        return Err(fail(format!(
            "alarms on {} metrics are not supported (service, instance and endpoint are)",
            scope.as_str()
        )));
    }
    let period = r
        .minutes(map, "period", &at, MAX_PERIOD_MINUTES)?
        .unwrap_or(1);
    if period == 0 {
        return Err(r.err(
            &with(&at, "period"),
            format!("rule `{name}`: period must be at least 1"),
        ));
    }
    let ranges = trend_ranges(&expr);
    if ranges.iter().any(|r| *r < 1) {
        return Err(fail("the trend range must be greater than 0".into()));
    }
    // OAP's `maxTrendRange`: the window grows by the longest range so every trend has its
    // earlier values.
    let additional_period = ranges.into_iter().max().unwrap_or(0);
    if i64::from(period) + additional_period > MAX_PERIOD_MINUTES {
        return Err(fail(format!(
            "period {period} plus the trend range {additional_period} is more than {MAX_PERIOD_MINUTES} minutes"
        )));
    }
    let silence_period = r
        .minutes(map, "silence-period", &at, MAX_COUNTDOWN_MINUTES)?
        .unwrap_or(period);
    let recovery_observation_period = r
        .minutes(
            map,
            "recovery-observation-period",
            &at,
            MAX_COUNTDOWN_MINUTES,
        )?
        .unwrap_or(0);
    let regex = |key: &str| -> Result<Option<Regex>> {
        match r.string(map, key, &at)?.filter(|s| !s.is_empty()) {
            // Java's `matches` is a whole-string match.
            Some(s) => Regex::new(&format!("^(?:{s})$")).map(Some).map_err(|e| {
                r.err(
                    &with(&at, key),
                    format!("rule `{name}`: `{key}` is not a valid regex: {e}"),
                )
            }),
            None => Ok(None),
        }
    };
    let message_text = r
        .string(map, "message", &at)?
        .unwrap_or_else(|| format!("Alarm caused by Rule {name}"));
    let message = MessageFormat::parse(&message_text)
        .map_err(|m| r.err(&with(&at, "message"), format!("rule `{name}`: {m}")))?;
    let mut tags = Vec::new();
    match map.get("tags") {
        None | Some(Value::Null) => {}
        Some(Value::Mapping(t)) => {
            for (k, v) in t {
                let value = match v {
                    Value::String(s) => s.clone(),
                    Value::Number(n) => n.to_string(),
                    Value::Bool(b) => b.to_string(),
                    _ => {
                        return Err(r.err(
                            &with(&at, "tags"),
                            format!("rule `{name}`: tag values must be strings"),
                        ))
                    }
                };
                tags.push((key_text(k), value));
            }
        }
        Some(_) => {
            return Err(r.err(
                &with(&at, "tags"),
                format!("rule `{name}`: `tags` must be a mapping"),
            ))
        }
    }
    let own_hooks = r.strings(map, "hooks", &at)?;
    for hook in &own_hooks {
        if !hooks.contains_key(hook) {
            return Err(r.err(
                &with(&at, "hooks"),
                format!("rule `{name}`: hook `{hook}` is not defined under `hooks` (ids are {{type}}.{{name}})"),
            ));
        }
    }
    let hook_ids = if own_hooks.is_empty() {
        hooks
            .values()
            .filter(|h| h.is_default)
            .map(|h| h.id.clone())
            .collect()
    } else {
        let mut ids = own_hooks;
        ids.dedup();
        ids
    };
    Ok(AlarmRule {
        name: name.to_string(),
        line: line_of(r.text, &at),
        expression,
        metrics,
        metric_texts,
        scope,
        include_names: r.strings(map, "include-names", &at)?,
        exclude_names: r.strings(map, "exclude-names", &at)?,
        include_names_regex: regex("include-names-regex")?,
        exclude_names_regex: regex("exclude-names-regex")?,
        period,
        additional_period: additional_period as u32,
        silence_period,
        recovery_observation_period,
        message,
        tags,
        hooks: hook_ids,
    })
}

fn unparen(e: &Expr) -> &Expr {
    match e {
        Expr::Paren(inner) => unparen(inner),
        other => other,
    }
}

/// OAP requires a Compare or Bool operation at the root (its result is 1 or 0).
fn is_bool_root(e: &Expr) -> bool {
    matches!(unparen(e), Expr::Binary { op, .. } if op.is_compare() || matches!(op, mqe::BinaryOp::And | mqe::BinaryOp::Or))
}

/// Whether the result is one value per series (aggregated), judged from the tree.
fn is_single_value(e: &Expr) -> bool {
    match e {
        Expr::Scalar { .. } | Expr::Aggregation(..) => true,
        Expr::Paren(inner)
        | Expr::Math(_, inner)
        | Expr::Round(inner, _)
        | Expr::Relabels(inner, ..)
        | Expr::AggregateLabels(inner, ..) => is_single_value(inner),
        Expr::Binary { left, right, .. } => is_single_value(left) && is_single_value(right),
        _ => false,
    }
}

/// The range of every `increase`/`rate` in the expression.
fn trend_ranges(e: &Expr) -> Vec<i64> {
    let mut ranges = Vec::new();
    visit(e, &mut |e| {
        if let Expr::Trend(_, _, range) = e {
            ranges.push(*range);
        }
    });
    ranges
}

/// Calls `f` on `e` and every expression inside it.
fn visit<'e>(e: &'e Expr, f: &mut dyn FnMut(&'e Expr)) {
    f(e);
    match e {
        Expr::Metric(_)
        | Expr::Trend(..)
        | Expr::Baseline(..)
        | Expr::Scalar { .. }
        | Expr::TopN(_)
        | Expr::TopNOf(..) => {}
        Expr::Paren(inner)
        | Expr::Aggregation(_, inner)
        | Expr::Math(_, inner)
        | Expr::Round(inner, _)
        | Expr::Relabels(inner, ..)
        | Expr::AggregateLabels(inner, ..)
        | Expr::SortValues(inner, ..)
        | Expr::SortLabelValues(inner, ..) => visit(inner, f),
        Expr::Binary { left, right, .. } => {
            visit(left, f);
            visit(right, f);
        }
        Expr::Logical(_, exprs) => exprs.iter().for_each(|x| visit(x, f)),
    }
}

fn metric_refs<'e>(e: &'e Expr, out: &mut Vec<&'e MetricRef>) {
    match e {
        Expr::Metric(m) | Expr::Trend(_, m, _) | Expr::Baseline(m, _) => out.push(m),
        Expr::Scalar { .. } => {}
        Expr::Paren(inner)
        | Expr::Aggregation(_, inner)
        | Expr::Math(_, inner)
        | Expr::Round(inner, _)
        | Expr::Relabels(inner, ..)
        | Expr::AggregateLabels(inner, ..)
        | Expr::SortValues(inner, ..)
        | Expr::SortLabelValues(inner, ..) => metric_refs(inner, out),
        Expr::Binary { left, right, .. } => {
            metric_refs(left, out);
            metric_refs(right, out);
        }
        Expr::Logical(_, exprs) => exprs.iter().for_each(|x| metric_refs(x, out)),
        Expr::TopN(t) => out.push(&t.metric),
        Expr::TopNOf(list, ..) => list.iter().for_each(|t| out.push(&t.metric)),
    }
}

fn read_hooks(r: &Reader<'_>, hooks: &Mapping) -> Result<BTreeMap<String, Hook>> {
    let mut out = BTreeMap::new();
    for (type_key, configs) in hooks {
        let kind = key_text(type_key);
        let at = ["hooks", kind.as_str()];
        let known = HOOK_TYPES.join(", ");
        if kind == GRPC_HOOK_TYPE {
            return Err(r.err(
                &at,
                format!("hook type `{kind}` is not supported (these are: {known})"),
            ));
        }
        if !HOOK_TYPES.contains(&kind.as_str()) {
            return Err(r.err(&at, format!("unknown hook type `{kind}` (known: {known})")));
        }
        let configs = match configs {
            Value::Null => continue,
            v => r.map(v, &at, &format!("`hooks.{kind}`"))?,
        };
        for (name_key, config) in configs {
            let name = key_text(name_key);
            let at = ["hooks", kind.as_str(), name.as_str()];
            let empty = Mapping::new();
            let config = match config {
                Value::Null => &empty,
                v => r.map(v, &at, &format!("hook `{kind}.{name}`"))?,
            };
            let hook = read_hook(r, &kind, config, &at)?;
            let id = format!("{kind}.{name}");
            out.insert(
                id.clone(),
                Hook {
                    id,
                    is_default: r.flag(config, "is-default", &at)?,
                    kind: hook,
                },
            );
        }
    }
    Ok(out)
}

fn read_signed(r: &Reader<'_>, map: &Mapping, at: &[&str]) -> Result<Vec<SignedUrl>> {
    match map.get("webhooks") {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Sequence(items)) => items
            .iter()
            .map(|item| {
                let m = r.map(item, &with(at, "webhooks"), "each webhook")?;
                let url = r.string(m, "url", at)?.unwrap_or_default();
                check_url(r, &url, &with(at, "webhooks"))?;
                Ok(SignedUrl {
                    url,
                    secret: r.string(m, "secret", at)?.unwrap_or_default(),
                })
            })
            .collect(),
        Some(_) => Err(r.err(&with(at, "webhooks"), "`webhooks` must be a list")),
    }
}

/// Each item of a hook's `webhooks` list, as a mapping.
fn webhook_maps<'v>(r: &Reader<'_>, map: &'v Mapping, at: &[&str]) -> Result<Vec<&'v Mapping>> {
    match map.get("webhooks") {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Sequence(items)) => items
            .iter()
            .map(|item| r.map(item, &with(at, "webhooks"), "each webhook"))
            .collect(),
        Some(_) => Err(r.err(&with(at, "webhooks"), "`webhooks` must be a list")),
    }
}

fn read_welink(r: &Reader<'_>, map: &Mapping, at: &[&str]) -> Result<Vec<WeLinkWebhook>> {
    let list_at = with(at, "webhooks");
    let mut out = Vec::new();
    for m in webhook_maps(r, map, at)? {
        let text =
            |key: &str| -> Result<String> { Ok(r.string(m, key, &list_at)?.unwrap_or_default()) };
        let access_token_url = text("access-token-url")?;
        check_url(r, &access_token_url, &list_at)?;
        let message_url = text("message-url")?;
        check_url(r, &message_url, &list_at)?;
        let group_ids = text("group-ids")?;
        if group_ids.trim().is_empty() {
            return Err(r.err(&list_at, "a welink webhook needs `group-ids`"));
        }
        out.push(WeLinkWebhook {
            client_id: text("client-id")?,
            client_secret: text("client-secret")?,
            access_token_url,
            message_url,
            group_ids,
            robot_name: r
                .string(m, "robot-name", &list_at)?
                .unwrap_or_else(|| "robot".into()),
        });
    }
    Ok(out)
}

fn read_discord(r: &Reader<'_>, map: &Mapping, at: &[&str]) -> Result<Vec<DiscordWebhook>> {
    let list_at = with(at, "webhooks");
    let mut out = Vec::new();
    for m in webhook_maps(r, map, at)? {
        let url = r.string(m, "url", &list_at)?.unwrap_or_default();
        check_url(r, &url, &list_at)?;
        out.push(DiscordWebhook {
            url,
            username: r
                .string(m, "username", &list_at)?
                .unwrap_or_else(|| "robot".into()),
        });
    }
    Ok(out)
}

fn check_url(r: &Reader<'_>, url: &str, at: &[&str]) -> Result<()> {
    match reqwest::Url::parse(url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Ok(()),
        _ => Err(r.err(at, format!("`{url}` is not an http(s) URL"))),
    }
}

fn read_hook(r: &Reader<'_>, kind: &str, map: &Mapping, at: &[&str]) -> Result<HookKind> {
    let templates = || -> Result<(String, String)> {
        Ok((
            r.string(map, "text-template", at)?.unwrap_or_default(),
            r.string(map, "recovery-text-template", at)?
                .unwrap_or_default(),
        ))
    };
    let urls = |key: &str| -> Result<Vec<String>> {
        let urls = r.strings(map, key, at)?;
        for url in &urls {
            check_url(r, url, &with(at, key))?;
        }
        Ok(urls)
    };
    Ok(match kind {
        "webhook" => {
            let mut headers = Vec::new();
            match map.get("headers") {
                None | Some(Value::Null) => {}
                Some(Value::Mapping(h)) => {
                    for (k, v) in h {
                        headers.push((key_text(k), key_text(v)));
                    }
                }
                Some(_) => return Err(r.err(&with(at, "headers"), "`headers` must be a mapping")),
            }
            HookKind::Webhook {
                urls: urls("urls")?,
                recovery_urls: urls("recovery-urls")?,
                headers,
            }
        }
        "wechat" | "slack" => {
            let (text_template, recovery_text_template) = templates()?;
            let webhooks = urls("webhooks")?;
            if kind == "wechat" {
                HookKind::Wechat {
                    text_template,
                    recovery_text_template,
                    webhooks,
                }
            } else {
                HookKind::Slack {
                    text_template,
                    recovery_text_template,
                    webhooks,
                }
            }
        }
        "welink" => {
            let (text_template, recovery_text_template) = templates()?;
            HookKind::WeLink {
                text_template,
                recovery_text_template,
                webhooks: read_welink(r, map, at)?,
            }
        }
        "discord" => {
            let (text_template, recovery_text_template) = templates()?;
            HookKind::Discord {
                text_template,
                recovery_text_template,
                webhooks: read_discord(r, map, at)?,
            }
        }
        "pagerduty" => {
            let (text_template, recovery_text_template) = templates()?;
            let events_api_url = r
                .string(map, "events-api-url", at)?
                .filter(|u| !u.is_empty())
                .unwrap_or_else(|| PAGERDUTY_EVENTS_API_URL.to_string());
            check_url(r, &events_api_url, &with(at, "events-api-url"))?;
            if !events_api_url.starts_with("https://") {
                // The integration key travels in the body, as OAP warns too.
                tracing::warn!(
                    url = %events_api_url,
                    "pagerduty events-api-url is not https: integration keys are sent in the clear"
                );
            }
            HookKind::PagerDuty {
                text_template,
                recovery_text_template,
                events_api_url,
                integration_keys: r.strings(map, "integration-keys", at)?,
            }
        }
        _ => {
            let (text_template, recovery_text_template) = templates()?;
            let webhooks = read_signed(r, map, at)?;
            if kind == "dingtalk" {
                HookKind::Dingtalk {
                    text_template,
                    recovery_text_template,
                    webhooks,
                }
            } else {
                HookKind::Feishu {
                    text_template,
                    recovery_text_template,
                    webhooks,
                }
            }
        }
    })
}
