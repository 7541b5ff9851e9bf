//! `config/application.yml`: the settings, with `${ENV_NAME:default}` placeholders resolved from
//! the environment before parsing (OAP's convention).
use anyhow::{bail, Context, Result};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// The configuration shipped in the binary, used when no `--config` is given.
pub const EMBEDDED: &str = include_str!("../../../config/application.yml");

/// Every setting Skylark reads.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Listeners, TTLs and limits.
    pub core: CoreConfig,
    /// OTLP metrics rules.
    #[serde(rename = "receiver-otel")]
    pub receiver_otel: OtelConfig,
    /// Log rules.
    #[serde(rename = "log-analyzer")]
    pub log_analyzer: LogAnalyzerConfig,
    /// Storage backend.
    pub storage: StorageConfig,
    /// Alarm rules and hook delivery.
    pub alarm: AlarmConfig,
    /// GraphQL query limits.
    pub query: QueryConfig,
    /// The RUM intake (`/api/v2/rum`).
    #[serde(default)]
    pub rum: RumConfig,
    /// Error issues and source maps.
    #[serde(default)]
    pub issues: IssuesConfig,
}

/// `rum:` settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct RumConfig {
    /// Accepted `dd-api-key` client tokens, comma-separated `token` or `token:service`; empty
    /// accepts every request.
    pub client_tokens: String,
    /// `source:platform` pairs: which mini-program platform a RUM `source` is.
    pub platforms: String,
    /// Where traces Skylark does not hold are kept: a URL with `{traceId}`; empty for none.
    pub trace_link_template: String,
}

impl Default for RumConfig {
    fn default() -> Self {
        RumConfig {
            client_tokens: String::new(),
            platforms: "miniprogram:wechat,miniapp:wechat".to_owned(),
            trace_link_template: String::new(),
        }
    }
}

/// `issues:` settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct IssuesConfig {
    /// Top in-app frames a fingerprint is made of.
    pub fingerprint_frames: usize,
    /// Whether `setIssueStatus` may change issues.
    pub enable_update_issue_status: bool,
    /// Comma-separated extra prefixes stripped from frame files.
    pub strip_prefixes: String,
    /// Largest source map accepted, in bytes.
    pub source_map_max_bytes: usize,
    /// Most entries in an uploaded zip.
    pub source_map_zip_max_entries: usize,
    /// Most bytes an uploaded zip may unpack to.
    pub source_map_zip_max_bytes: usize,
    /// Decoded maps kept in memory, by map size (MiB).
    pub source_map_cache_mb: usize,
    /// Token `/api/sourcemaps` requires (`Authorization: Bearer ...`); empty: none.
    pub admin_token: String,
}

impl Default for IssuesConfig {
    fn default() -> Self {
        let limits = skylark_issues::SourceMapLimits::default();
        IssuesConfig {
            fingerprint_frames: 5,
            enable_update_issue_status: false,
            strip_prefixes: String::new(),
            source_map_max_bytes: limits.max_map_bytes,
            source_map_zip_max_entries: limits.max_zip_entries,
            source_map_zip_max_bytes: limits.max_zip_unpacked_bytes,
            source_map_cache_mb: 128,
            admin_token: String::new(),
        }
    }
}

impl RumConfig {
    /// The intake settings.
    pub fn intake(&self) -> skylark_receiver::RumIntakeConfig {
        skylark_receiver::RumIntakeConfig {
            client_tokens: skylark_receiver::ClientTokens::parse(&self.client_tokens),
        }
    }

    /// The source → platform mapping.
    pub fn platforms(&self) -> skylark_rum::PlatformMapping {
        skylark_rum::PlatformMapping::parse(&self.platforms)
    }

    /// The trace link template, `None` when unset; one without `{traceId}` is refused.
    pub fn trace_link_template(&self) -> anyhow::Result<Option<String>> {
        let template = self.trace_link_template.trim();
        if template.is_empty() {
            return Ok(None);
        }
        if !template.contains("{traceId}") {
            anyhow::bail!(
                "SW_TRACE_LINK_TEMPLATE {template:?} has no {{traceId}} to put the trace id in"
            );
        }
        Ok(Some(template.to_owned()))
    }
}

impl IssuesConfig {
    /// How error logs are grouped and maps are bounded.
    pub fn grouper(&self) -> skylark_issues::GrouperSettings {
        skylark_issues::GrouperSettings {
            frames_considered: self.fingerprint_frames,
            strip_prefixes: self
                .strip_prefixes
                .split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(str::to_string)
                .collect(),
            limits: skylark_issues::SourceMapLimits {
                max_map_bytes: self.source_map_max_bytes,
                max_zip_entries: self.source_map_zip_max_entries,
                max_zip_unpacked_bytes: self.source_map_zip_max_bytes,
            },
            map_cache_bytes: self.source_map_cache_mb.saturating_mul(1024 * 1024),
            // A map another node stored is seen once both the catalog and the memo renew.
            memo_ttl: crate::issues::MAP_CATALOG_TTL,
        }
    }
}

/// `alarm:` settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AlarmConfig {
    /// The rules file (OAP's `alarm-settings.yml` format).
    pub settings_path: PathBuf,
    /// One hook call's timeout, in ms.
    pub hook_timeout_ms: u64,
    /// Attempts per hook call, the first included.
    pub hook_max_attempts: u32,
    /// Hook calls waiting at most; more are dropped and counted.
    pub hook_queue_size: usize,
    /// How often, in ms, the evaluator looks at the clock for a minute to check. Each minute is
    /// still checked once; a small value only matters to tests that move the clock themselves.
    pub check_interval_ms: u64,
}

impl AlarmConfig {
    /// How hook calls are made.
    pub fn delivery(&self) -> skylark_alarm::DeliveryConfig {
        skylark_alarm::DeliveryConfig {
            queue_capacity: self.hook_queue_size.max(1),
            timeout: std::time::Duration::from_millis(self.hook_timeout_ms.max(1)),
            max_attempts: self.hook_max_attempts.max(1),
            ..Default::default()
        }
    }
}

/// `query:` settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueryConfig {
    /// `query.graphql:` settings.
    pub graphql: GraphqlConfig,
}

/// `query.graphql:` settings: what one GraphQL request may cost.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct GraphqlConfig {
    /// Largest request body in bytes (413 beyond).
    pub max_body_bytes: usize,
    /// Most fields one request selects, aliases counted and fragments expanded (OAP's name).
    pub max_query_complexity: usize,
    /// Deepest nesting of selections.
    pub max_depth: usize,
    /// Largest `paging.pageSize`.
    pub max_page_size: usize,
    /// How long a request may take, in ms, waiting for a query thread included.
    pub timeout_ms: u64,
    /// Threads that run queries (apart from ingestion); also the most queries run at once.
    pub threads: usize,
}

impl GraphqlConfig {
    /// The limits as the query crate takes them.
    pub fn limits(&self) -> skylark_query::QueryLimits {
        skylark_query::QueryLimits {
            max_body_bytes: self.max_body_bytes,
            max_complexity: self.max_query_complexity,
            max_depth: self.max_depth,
            max_page_size: self.max_page_size,
            timeout: std::time::Duration::from_millis(self.timeout_ms),
            threads: self.threads,
        }
    }
}

/// `log-analyzer:` settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LogAnalyzerConfig {
    /// Comma-separated LAL rule names.
    pub lal_files: String,
    /// Folder of the LAL rules.
    pub lal_path: PathBuf,
    /// Comma-separated log-MAL rule names.
    pub mal_files: String,
    /// Folder of the log-MAL rules.
    pub mal_path: PathBuf,
}

/// `core:` settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CoreConfig {
    /// REST listener (OTLP/HTTP, segments, GraphQL).
    pub rest: Listen,
    /// gRPC listener.
    pub grpc: Listen,
    /// Metric TTL in days.
    #[serde(rename = "metricsDataTTL")]
    pub metrics_data_ttl: u32,
    /// Record TTL in days.
    #[serde(rename = "recordDataTTL")]
    pub record_data_ttl: u32,
    /// Persist period in ms.
    pub persistent_period_ms: u64,
    /// Largest accepted body in bytes.
    pub max_body_bytes: usize,
    /// Version reported over GraphQL.
    pub version: String,
    /// Folder of the dashboard templates and `menu.yaml`.
    pub ui_templates_path: PathBuf,
    /// Whether template mutations are allowed.
    #[serde(rename = "enableUpdateUITemplate")]
    pub enable_update_ui_template: bool,
    /// Admin listener: Prometheus self-metrics at `GET /metrics`.
    pub admin: Listen,
    /// Most requests ingested at once; more are answered 503 / `UNAVAILABLE`.
    pub max_inflight_requests: usize,
    /// Memory budget (MiB) of metric rows aggregated between flushes: over half of it a flush
    /// starts early, over all of it ingestion answers busy.
    pub max_memory_mb: u64,
    /// How often expired data is removed, in ms.
    pub retention_sweep_ms: u64,
    /// Log lines: `text` (human-readable) or `json`.
    pub log_format: String,
    /// Caps on instances, endpoints and label values.
    pub cardinality: CardinalityConfig,
    /// When a request is acknowledged: `sync` (once in the write-ahead log on disk) or `relaxed`.
    pub durability: crate::durable::Durability,
    /// How often the write-ahead log is fsynced in `relaxed` mode, in ms.
    pub wal_flush_ms: u64,
    /// Folder of the write-ahead log; empty means `wal/` inside the storage folder.
    #[serde(default)]
    pub wal_path: Option<PathBuf>,
    /// Bounds on the work of one MQE evaluation.
    pub mqe: MqeConfig,
}

/// `core.mqe:` settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MqeConfig {
    /// Most metric points (entities × time buckets) one `execExpression` may read.
    pub max_points: usize,
    /// Largest `N` of `increase(metric, N)` / `rate(metric, N)`, in steps.
    pub max_trend_range: usize,
}

impl MqeConfig {
    /// Zero would refuse every expression, which is never what an operator means.
    fn check(&self) -> Result<()> {
        if self.max_points == 0 || self.max_trend_range == 0 {
            bail!("core.mqe limits (SW_QUERY_MQE_MAX_POINTS, SW_QUERY_MQE_MAX_TREND_RANGE) must be positive");
        }
        Ok(())
    }

    /// The limits as the evaluator takes them.
    pub fn limits(&self) -> skylark_query::mqe::MqeLimits {
        skylark_query::mqe::MqeLimits {
            max_points: self.max_points,
            max_trend_range: self.max_trend_range,
        }
    }
}

/// `core.cardinality:` settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CardinalityConfig {
    /// Distinct instances per service.
    pub max_instances_per_service: usize,
    /// Distinct endpoints per service.
    pub max_endpoints_per_service: usize,
    /// Distinct values of each label of each metric.
    pub max_label_values_per_metric: usize,
    /// `fold` (into `_other`) or `reject`.
    pub overflow: String,
}

impl CardinalityConfig {
    /// The caps as the guard takes them (the overflow word was checked on load).
    pub fn limits(&self) -> crate::guards::CardinalityLimits {
        crate::guards::CardinalityLimits {
            max_instances_per_service: self.max_instances_per_service,
            max_endpoints_per_service: self.max_endpoints_per_service,
            max_label_values_per_metric: self.max_label_values_per_metric,
            overflow: crate::guards::Overflow::parse(&self.overflow)
                .unwrap_or(crate::guards::Overflow::Fold),
        }
    }
}

/// A host and port to listen on.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Listen {
    /// Interface address.
    pub host: String,
    /// Port (0 picks a free one).
    pub port: u16,
}

/// `receiver-otel:` settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct OtelConfig {
    /// Comma-separated rule names (`miniprogram/*`).
    pub enabled_otel_metrics_rules: String,
    /// Folder the names are relative to.
    pub rules_path: PathBuf,
}

/// `storage:` settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    /// Backend name: `sled` (embedded, default) or `postgresql`.
    pub selector: String,
    /// sled settings (its folder also holds the write-ahead log by default).
    pub sled: SledSettings,
    /// PostgreSQL settings, used when `selector` is `postgresql`.
    pub postgresql: PostgresqlSettings,
}

/// `storage.postgresql:` settings, named as OAP's JDBC storage names them.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PostgresqlSettings {
    /// `jdbc:postgresql://host[:port]/database` (`SW_JDBC_URL`).
    pub jdbc_url: String,
    /// `SW_DATA_SOURCE_USER`.
    pub user: String,
    /// `SW_DATA_SOURCE_PASSWORD`; empty for none.
    #[serde(default)]
    pub password: Option<String>,
    /// Connections one node keeps open at most (`SW_DATA_SOURCE_MAXIMUM_POOL_SIZE`).
    pub maximum_pool_size: usize,
    /// This node's name for its write-ahead-log marks (`SW_NODE_ID`); empty means
    /// `<host name>:<absolute WAL folder>`, which is unique per WAL and stable across restarts.
    #[serde(default)]
    pub node_id: Option<String>,
}

/// The storage backends `storage.selector` may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorageKind {
    /// Embedded sled.
    Sled,
    /// A shared PostgreSQL database.
    Postgresql,
}

/// `storage.sled:` settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SledSettings {
    /// Data folder.
    pub path: PathBuf,
    /// Page cache in MiB.
    pub cache_capacity_mb: u64,
}

/// Replaces every `${NAME:default}` with the environment value of NAME, or the default.
fn substitute(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            bail!("unterminated ${{...}} placeholder")
        };
        let inner = &after[..end];
        let (name, default) = inner.split_once(':').unwrap_or((inner, ""));
        out.push_str(&env(name).unwrap_or_else(|| default.to_string()));
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

impl Config {
    /// The write-ahead log settings.
    pub fn durability(&self) -> crate::durable::DurabilitySettings {
        crate::durable::DurabilitySettings {
            mode: self.core.durability,
            wal_flush: std::time::Duration::from_millis(self.core.wal_flush_ms),
            wal_dir: crate::durable::wal_dir(
                self.core.wal_path.as_deref(),
                &self.storage.sled.path,
            ),
        }
    }

    /// The backend `storage.selector` names.
    pub fn storage_kind(&self) -> Result<StorageKind> {
        match self.storage.selector.as_str() {
            "sled" => Ok(StorageKind::Sled),
            "postgresql" => Ok(StorageKind::Postgresql),
            other => bail!(
                "storage.selector (SW_STORAGE) is '{other}'; it must be 'sled' or 'postgresql'"
            ),
        }
    }

    /// The PostgreSQL settings, with the node id defaulted from the host and WAL folder.
    pub fn postgres_config(&self) -> Result<skylark_storage_postgres::PostgresConfig> {
        let pg = &self.storage.postgresql;
        let node_id = match pg.node_id.as_deref().filter(|n| !n.is_empty()) {
            Some(id) => id.to_string(),
            None => {
                let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
                    .ok()
                    .or_else(|| std::env::var("HOSTNAME").ok())
                    .map(|h| h.trim().to_string())
                    .filter(|h| !h.is_empty())
                    .unwrap_or_else(|| "skylark".to_string());
                let wal = self.durability().wal_dir;
                let wal = std::path::absolute(&wal).unwrap_or(wal);
                format!("{host}:{}", wal.display())
            }
        };
        skylark_storage_postgres::PostgresConfig::from_jdbc_url(
            &pg.jdbc_url,
            &pg.user,
            pg.password.as_deref().unwrap_or_default(),
            pg.maximum_pool_size,
            &node_id,
        )
        .context(
            "storage.postgresql (SW_JDBC_URL, SW_DATA_SOURCE_USER, SW_DATA_SOURCE_PASSWORD, \
             SW_DATA_SOURCE_MAXIMUM_POOL_SIZE)",
        )
    }

    /// Reads the configuration from `path`, or the embedded default when `None`.
    pub fn load(path: Option<&Path>) -> Result<Config> {
        let (origin, text) = match path {
            Some(p) => (
                p.display().to_string(),
                std::fs::read_to_string(p)
                    .with_context(|| format!("cannot read config file {}", p.display()))?,
            ),
            None => (
                "embedded config/application.yml".to_string(),
                EMBEDDED.to_string(),
            ),
        };
        Config::parse(&origin, &text, &|name| std::env::var(name).ok())
    }

    /// Parses configuration text, resolving placeholders with `env`.
    pub fn parse(origin: &str, text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Config> {
        let resolved = substitute(text, env).with_context(|| format!("in {origin}"))?;
        let config: Config = serde_yaml::from_str(&resolved).map_err(|e| {
            anyhow::anyhow!("invalid setting in {origin}: {e} (values come from the environment variables named in the file)")
        })?;
        config
            .validate()
            .with_context(|| format!("invalid setting in {origin}"))?;
        Ok(config)
    }

    fn validate(&self) -> Result<()> {
        self.storage_kind()?;
        if self.storage_kind()? == StorageKind::Postgresql {
            self.postgres_config()?;
        }
        if self.core.metrics_data_ttl == 0 {
            bail!("core.metricsDataTTL (SW_CORE_METRICS_DATA_TTL) must be at least 1 day");
        }
        if self.core.record_data_ttl == 0 {
            bail!("core.recordDataTTL (SW_CORE_RECORD_DATA_TTL) must be at least 1 day");
        }
        if self.core.persistent_period_ms == 0 {
            bail!("core.persistentPeriodMs (SW_CORE_PERSISTENT_PERIOD_MS) must be positive");
        }
        if self.core.max_body_bytes == 0 {
            bail!("core.maxBodyBytes (SW_CORE_MAX_BODY_BYTES) must be positive");
        }
        let core = &self.core;
        if core.wal_flush_ms == 0 {
            bail!("core.walFlushMs (SW_CORE_WAL_FLUSH_MS) must be positive");
        }
        if core.max_inflight_requests == 0 {
            bail!("core.maxInflightRequests (SW_CORE_MAX_INFLIGHT_REQUESTS) must be positive");
        }
        if core.max_memory_mb == 0 {
            bail!("core.maxMemoryMb (SW_CORE_MAX_MEMORY_MB) must be positive");
        }
        if core.retention_sweep_ms == 0 {
            bail!("core.retentionSweepMs (SW_CORE_RETENTION_SWEEP_MS) must be positive");
        }
        if !matches!(core.log_format.as_str(), "text" | "json") {
            bail!(
                "core.logFormat (SKYLARK_LOG_FORMAT) is '{}'; expected text or json",
                core.log_format
            );
        }
        let caps = &core.cardinality;
        if crate::guards::Overflow::parse(&caps.overflow).is_none() {
            bail!(
                "core.cardinality.overflow (SW_CORE_CARDINALITY_OVERFLOW) is '{}'; expected fold or reject",
                caps.overflow
            );
        }
        if caps.max_instances_per_service == 0
            || caps.max_endpoints_per_service == 0
            || caps.max_label_values_per_metric == 0
        {
            bail!("core.cardinality caps (SW_CORE_MAX_INSTANCES_PER_SERVICE, SW_CORE_MAX_ENDPOINTS_PER_SERVICE, SW_CORE_MAX_LABEL_VALUES_PER_METRIC) must be positive");
        }
        core.mqe.check()?;
        let graphql = &self.query.graphql;
        for (value, name) in [
            (
                graphql.max_body_bytes,
                "query.graphql.maxBodyBytes (SW_QUERY_MAX_BODY_BYTES)",
            ),
            (
                graphql.max_query_complexity,
                "query.graphql.maxQueryComplexity (SW_QUERY_MAX_QUERY_COMPLEXITY)",
            ),
            (
                graphql.max_depth,
                "query.graphql.maxDepth (SW_QUERY_MAX_DEPTH)",
            ),
            (
                graphql.max_page_size,
                "query.graphql.maxPageSize (SW_QUERY_MAX_PAGE_SIZE)",
            ),
            (
                graphql.timeout_ms as usize,
                "query.graphql.timeoutMs (SW_QUERY_TIMEOUT_MS)",
            ),
            (graphql.threads, "query.graphql.threads (SW_QUERY_THREADS)"),
        ] {
            if value == 0 {
                bail!("{name} must be positive");
            }
        }
        let issues = &self.issues;
        if issues.fingerprint_frames == 0 || issues.fingerprint_frames > 50 {
            bail!("issues.fingerprintFrames (SW_ISSUES_FINGERPRINT_FRAMES) must be 1 to 50");
        }
        if issues.source_map_max_bytes == 0
            || issues.source_map_zip_max_entries == 0
            || issues.source_map_zip_max_bytes == 0
        {
            bail!("issues source map limits (SW_SOURCEMAP_MAX_BYTES, SW_SOURCEMAP_ZIP_MAX_ENTRIES, SW_SOURCEMAP_ZIP_MAX_BYTES) must be positive");
        }
        let v = &self.core.version;
        let mut parts = v.split('.');
        let numeric = |p: Option<&str>| {
            p.map(|s| !s.is_empty() && s.chars().take_while(|c| c.is_ascii_digit()).count() > 0)
        };
        if numeric(parts.next()) != Some(true) || numeric(parts.next()) != Some(true) {
            bail!("core.version (SW_CORE_VERSION) '{v}' must start with <major>.<minor> (swctl parses it)");
        }
        Ok(())
    }

    /// The MAL rule files the enabled rule names select, in order. Unknown names are errors.
    pub fn otel_rule_files(&self) -> Result<Vec<PathBuf>> {
        resolve_rule_files(
            &self.receiver_otel.rules_path,
            &self.receiver_otel.enabled_otel_metrics_rules,
        )
    }

    /// The LAL rule files, in order.
    pub fn lal_files(&self) -> Result<Vec<PathBuf>> {
        resolve_rule_files(&self.log_analyzer.lal_path, &self.log_analyzer.lal_files)
    }

    /// The log-MAL rule files, in order.
    pub fn log_mal_files(&self) -> Result<Vec<PathBuf>> {
        resolve_rule_files(&self.log_analyzer.mal_path, &self.log_analyzer.mal_files)
    }
}

/// Resolves comma-separated rule names (`miniprogram/*`, `vm`) to files under `root`.
pub fn resolve_rule_files(root: &Path, names: &str) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for name in names.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let is_rule = |p: &Path| p.extension().is_some_and(|e| e == "yaml" || e == "yml");
        if let Some(dir) = name.strip_suffix("/*") {
            let folder = root.join(dir);
            let entries = std::fs::read_dir(&folder).with_context(|| {
                format!(
                    "rule name '{name}': cannot read folder {}",
                    folder.display()
                )
            })?;
            let mut found: Vec<PathBuf> = entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| is_rule(p))
                .collect();
            if found.is_empty() {
                bail!(
                    "rule name '{name}' matches no .yaml/.yml file in {}",
                    folder.display()
                );
            }
            found.sort();
            files.extend(found);
        } else {
            let candidates = [
                root.join(format!("{name}.yaml")),
                root.join(format!("{name}.yml")),
            ];
            match candidates.iter().find(|p| p.is_file()) {
                Some(p) => files.push(p.clone()),
                None => bail!(
                    "unknown rule name '{name}': no file {}",
                    candidates[0].display()
                ),
            }
        }
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn rum_settings_come_from_the_environment() {
        let c = Config::parse(
            "test",
            EMBEDDED,
            &env_of(&[
                ("SW_RUM_CLIENT_TOKENS", "pub-a,pub-b:shop"),
                ("SW_RUM_PLATFORMS", "miniprogram:alipay"),
                (
                    "SW_TRACE_LINK_TEMPLATE",
                    "https://jaeger.example/trace/{traceId}",
                ),
            ]),
        )
        .unwrap();
        assert_eq!(
            c.rum.trace_link_template().unwrap().as_deref(),
            Some("https://jaeger.example/trace/{traceId}")
        );
        let bad = Config::parse(
            "test",
            EMBEDDED,
            &env_of(&[("SW_TRACE_LINK_TEMPLATE", "https://jaeger.example/trace/")]),
        )
        .unwrap();
        let error = bad.rum.trace_link_template().unwrap_err().to_string();
        assert!(error.contains("{traceId}"), "{error}");
        let tokens = c.rum.intake().client_tokens;
        assert_eq!(
            tokens.find("pub-b").unwrap().service.as_deref(),
            Some("shop")
        );
        assert!(tokens.find("pub-c").is_none());
        assert_eq!(c.rum.platforms().platform("miniprogram"), "alipay");
    }

    #[test]
    fn shipped_config_loads_with_oap_defaults() {
        let c = Config::parse("test", EMBEDDED, &env_of(&[])).unwrap();
        assert_eq!(c.core.rest.port, 12800);
        assert_eq!(c.core.grpc.port, 11800);
        assert_eq!(c.core.rest.host, "0.0.0.0");
        assert_eq!(
            c.receiver_otel.enabled_otel_metrics_rules,
            "miniprogram/*,rum/*"
        );
        assert!(c.rum.intake().client_tokens.accepts_all());
        assert_eq!(c.rum.platforms().platform("miniapp"), "wechat");
        assert_eq!(c.rum.trace_link_template().unwrap(), None);
        assert_eq!(c.storage.sled.path, PathBuf::from("./data"));
        assert_eq!(c.storage_kind().unwrap(), StorageKind::Sled);
        assert_eq!(c.storage.postgresql.maximum_pool_size, 8);
        assert_eq!(c.core.metrics_data_ttl, 7);
        assert_eq!(c.log_analyzer.lal_files, "miniprogram,default");
        assert_eq!(
            c.log_analyzer.mal_files,
            "miniprogram-wechat,miniprogram-alipay"
        );
        assert_eq!(c.core.record_data_ttl, 3);
        assert_eq!(c.core.admin.host, "127.0.0.1");
        assert_eq!(c.core.admin.port, 17128);
        assert_eq!(c.core.max_inflight_requests, 32);
        assert_eq!(c.core.max_memory_mb, 256);
        assert_eq!(c.core.retention_sweep_ms, 600_000);
        assert_eq!(c.core.log_format, "text");
        assert_eq!(
            c.core.cardinality.limits(),
            crate::guards::CardinalityLimits {
                max_instances_per_service: 1000,
                max_endpoints_per_service: 2000,
                max_label_values_per_metric: 1000,
                overflow: crate::guards::Overflow::Fold,
            }
        );
    }

    #[test]
    fn durability_defaults_to_sync_with_the_log_beside_the_data() {
        let c = Config::parse("test", EMBEDDED, &env_of(&[])).unwrap();
        let d = c.durability();
        assert_eq!(d.mode, crate::durable::Durability::Sync);
        assert_eq!(d.wal_dir, PathBuf::from("./data/wal"));
        let c = Config::parse(
            "test",
            EMBEDDED,
            &env_of(&[
                ("SW_CORE_DURABILITY", "relaxed"),
                ("SW_CORE_WAL_FLUSH_MS", "50"),
                ("SW_CORE_WAL_PATH", "/tmp/skylark-wal"),
            ]),
        )
        .unwrap();
        let d = c.durability();
        assert_eq!(d.mode, crate::durable::Durability::Relaxed);
        assert_eq!(d.wal_flush, std::time::Duration::from_millis(50));
        assert_eq!(d.wal_dir, PathBuf::from("/tmp/skylark-wal"));
        let err = Config::parse("test", EMBEDDED, &env_of(&[("SW_CORE_DURABILITY", "fast")]))
            .unwrap_err();
        assert!(format!("{err:#}").contains("durability"), "{err:#}");
        let err =
            Config::parse("test", EMBEDDED, &env_of(&[("SW_CORE_WAL_FLUSH_MS", "0")])).unwrap_err();
        assert!(
            format!("{err:#}").contains("SW_CORE_WAL_FLUSH_MS"),
            "{err:#}"
        );
    }

    #[test]
    fn limits_are_checked_on_load() {
        let err = Config::parse(
            "test",
            EMBEDDED,
            &env_of(&[("SW_CORE_CARDINALITY_OVERFLOW", "drop")]),
        )
        .unwrap_err();
        assert!(
            format!("{err:#}").contains("SW_CORE_CARDINALITY_OVERFLOW"),
            "{err:#}"
        );
        let err = Config::parse(
            "test",
            EMBEDDED,
            &env_of(&[("SW_CORE_MAX_INFLIGHT_REQUESTS", "0")]),
        )
        .unwrap_err();
        assert!(
            format!("{err:#}").contains("SW_CORE_MAX_INFLIGHT_REQUESTS"),
            "{err:#}"
        );
        let err =
            Config::parse("test", EMBEDDED, &env_of(&[("SKYLARK_LOG_FORMAT", "xml")])).unwrap_err();
        assert!(format!("{err:#}").contains("SKYLARK_LOG_FORMAT"), "{err:#}");
        let c = Config::parse(
            "test",
            EMBEDDED,
            &env_of(&[
                ("SW_CORE_CARDINALITY_OVERFLOW", "reject"),
                ("SW_CORE_RETENTION_SWEEP_MS", "250"),
                ("SW_ADMIN_PORT", "0"),
            ]),
        )
        .unwrap();
        assert_eq!(
            c.core.cardinality.limits().overflow,
            crate::guards::Overflow::Reject
        );
        assert_eq!(c.core.retention_sweep_ms, 250);
        assert_eq!(c.core.admin.port, 0);
    }

    #[test]
    fn query_limits_default_and_are_checked() {
        let c = Config::parse("test", EMBEDDED, &env_of(&[])).unwrap();
        assert_eq!(
            c.query.graphql.limits(),
            skylark_query::QueryLimits::default()
        );
        let c = Config::parse(
            "test",
            EMBEDDED,
            &env_of(&[
                ("SW_QUERY_MAX_BODY_BYTES", "2048"),
                ("SW_QUERY_MAX_QUERY_COMPLEXITY", "50"),
                ("SW_QUERY_MAX_DEPTH", "5"),
                ("SW_QUERY_MAX_PAGE_SIZE", "30"),
                ("SW_QUERY_TIMEOUT_MS", "1500"),
                ("SW_QUERY_THREADS", "3"),
            ]),
        )
        .unwrap();
        assert_eq!(
            c.query.graphql.limits(),
            skylark_query::QueryLimits {
                max_body_bytes: 2048,
                max_complexity: 50,
                max_depth: 5,
                max_page_size: 30,
                timeout: std::time::Duration::from_millis(1500),
                threads: 3,
            }
        );
        for name in [
            "SW_QUERY_TIMEOUT_MS",
            "SW_QUERY_THREADS",
            "SW_QUERY_MAX_BODY_BYTES",
        ] {
            let err = Config::parse("test", EMBEDDED, &|k: &str| (k == name).then(|| "0".into()))
                .unwrap_err();
            assert!(format!("{err:#}").contains(name), "{err:#}");
        }
    }

    #[test]
    fn environment_overrides_settings() {
        let c = Config::parse(
            "test",
            EMBEDDED,
            &env_of(&[
                ("SW_CORE_REST_PORT", "9999"),
                ("SW_STORAGE_SLED_PATH", "/tmp/x"),
            ]),
        )
        .unwrap();
        assert_eq!(c.core.rest.port, 9999);
        assert_eq!(c.storage.sled.path, PathBuf::from("/tmp/x"));
    }

    #[test]
    fn bad_values_name_the_setting() {
        let err =
            Config::parse("test", EMBEDDED, &env_of(&[("SW_CORE_REST_PORT", "http")])).unwrap_err();
        assert!(format!("{err:#}").contains("core.rest.port"), "{err:#}");
        let err = Config::parse("test", EMBEDDED, &env_of(&[("SW_STORAGE", "mysql")])).unwrap_err();
        assert!(format!("{err:#}").contains("SW_STORAGE"), "{err:#}");
        let err =
            Config::parse("test", EMBEDDED, &env_of(&[("SW_CORE_VERSION", "latest")])).unwrap_err();
        assert!(format!("{err:#}").contains("SW_CORE_VERSION"), "{err:#}");
    }

    #[test]
    fn unknown_rule_names_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("mp")).unwrap();
        std::fs::write(dir.path().join("mp/a.yaml"), "x").unwrap();
        std::fs::write(dir.path().join("b.yml"), "x").unwrap();
        let files = resolve_rule_files(dir.path(), "mp/*, b").unwrap();
        assert_eq!(files.len(), 2);
        let err = resolve_rule_files(dir.path(), "nope").unwrap_err();
        assert!(err.to_string().contains("unknown rule name 'nope'"));
        assert!(resolve_rule_files(dir.path(), "empty/*").is_err());
    }

    #[test]
    fn mqe_limits_default_to_the_query_crate_defaults_and_are_settable() {
        let c = Config::parse("test", EMBEDDED, &env_of(&[])).unwrap();
        assert_eq!(
            c.core.mqe.limits(),
            skylark_query::mqe::MqeLimits::default()
        );
        let c = Config::parse(
            "test",
            EMBEDDED,
            &env_of(&[
                ("SW_QUERY_MQE_MAX_POINTS", "5000"),
                ("SW_QUERY_MQE_MAX_TREND_RANGE", "60"),
            ]),
        )
        .unwrap();
        assert_eq!(
            c.core.mqe.limits(),
            skylark_query::mqe::MqeLimits {
                max_points: 5000,
                max_trend_range: 60,
            }
        );
        let err = Config::parse(
            "test",
            EMBEDDED,
            &env_of(&[("SW_QUERY_MQE_MAX_POINTS", "0")]),
        )
        .unwrap_err();
        assert!(
            format!("{err:#}").contains("SW_QUERY_MQE_MAX_POINTS"),
            "{err:#}"
        );
    }
}
