//! Skylark's metrics about itself: every self-metric name (so names cannot drift, style.md
//! "Self-metrics") and [`Telemetry`], a small registry of counters, gauges and duration
//! histograms rendered as Prometheus text.
//!
//! Label values are `&'static str`, so a label set can only come from a bounded list written in
//! the code (protocols, signals, status codes), never from data such as service names.
//!
//! Any component may report into the registry it is handed: receivers count requests, the
//! server times flushes, and a write-ahead log can time its appends under
//! [`WAL_APPEND_DURATION_SECONDS`].
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Requests handled by a receiver, `{protocol, signal, status}`; status is `ok` or an
/// [`ErrorCode`](crate::ErrorCode) name.
pub const RECEIVER_REQUESTS_TOTAL: &str = "skylark_receiver_requests_total";
/// Items (samples, log records, segments) of handled requests, `{signal, outcome}` with outcome
/// `accepted` or `rejected`.
pub const RECEIVER_ITEMS_TOTAL: &str = "skylark_receiver_items_total";
/// Items refused one by one while the rest of their request was kept, `{signal, reason}` with
/// reason a [`RejectReason`](crate::RejectReason) label (`future_timestamp`, `non_finite_value`,
/// `value_overflow`, ...). Each is also in [`RECEIVER_ITEMS_TOTAL`] as `rejected`.
pub const RECEIVER_REJECTED_ITEMS_TOTAL: &str = "skylark_receiver_rejected_items_total";
/// Requests refused because the server was saturated, `{reason}`: `inflight` (too many requests
/// at once) or `memory` (aggregation over its memory budget).
pub const RECEIVER_BUSY_REJECTIONS_TOTAL: &str = "skylark_receiver_busy_rejections_total";
/// Requests being ingested now.
pub const RECEIVER_INFLIGHT_REQUESTS: &str = "skylark_receiver_inflight_requests";
/// The most requests ingested at once before new ones get 503/UNAVAILABLE.
pub const RECEIVER_INFLIGHT_REQUESTS_LIMIT: &str = "skylark_receiver_inflight_requests_limit";
/// Metric rows aggregated in memory and waiting for the next flush (the ingest queue depth).
pub const STORAGE_PENDING_ROWS: &str = "skylark_storage_pending_rows";
/// Estimated memory of the metric rows waiting to be persisted (pending and in flight), bytes.
pub const STORAGE_PENDING_BYTES: &str = "skylark_storage_pending_bytes";
/// Pending bytes beyond which ingestion answers busy (`SW_CORE_MAX_MEMORY_MB`).
pub const STORAGE_PENDING_BYTES_LIMIT: &str = "skylark_storage_pending_bytes_limit";
/// How long persisting the aggregated rows took.
pub const STORAGE_FLUSH_DURATION_SECONDS: &str = "skylark_storage_flush_duration_seconds";
/// Flushes, `{trigger, outcome}`: trigger `period` or `pressure`, outcome `ok` or `error`.
pub const STORAGE_FLUSHES_TOTAL: &str = "skylark_storage_flushes_total";
/// Bytes the storage folder takes on disk.
pub const STORAGE_DISK_BYTES: &str = "skylark_storage_disk_bytes";
/// Known entities, `{kind}`: `service`, `instance` or `endpoint`.
pub const STORAGE_ENTITIES: &str = "skylark_storage_entities";
/// How long a retention sweep took.
pub const STORAGE_RETENTION_SWEEP_DURATION_SECONDS: &str =
    "skylark_storage_retention_sweep_duration_seconds";
/// Rows (metric rows, entities, logs, segments) removed by retention.
pub const STORAGE_RETENTION_REMOVED_ROWS_TOTAL: &str =
    "skylark_storage_retention_removed_rows_total";
/// New entity or label values past a cardinality cap, `{kind, action}`: kind `instance`,
/// `endpoint` or `label`; action `fold` or `reject`.
pub const CARDINALITY_OVERFLOWS_TOTAL: &str = "skylark_cardinality_overflows_total";
/// How long one write-ahead-log append took (reported by the WAL, when there is one).
pub const WAL_APPEND_DURATION_SECONDS: &str = "skylark_wal_append_duration_seconds";
/// Bytes the write-ahead log takes on disk (reported by the WAL, when there is one).
pub const WAL_DISK_BYTES: &str = "skylark_wal_disk_bytes";
/// Alarm hook attempts that failed, by hook type and reason (`timeout`, `status`, `connect`,
/// `queue_full`, `stopped`, `template`).
pub const ALARM_HOOK_FAILURES_TOTAL: &str = "skylark_alarm_hook_failures_total";
/// Alarm hook deliveries by hook type and final outcome (`ok`, `failed`, `dropped`).
pub const ALARM_HOOK_DELIVERIES_TOTAL: &str = "skylark_alarm_hook_deliveries_total";
/// Alarm messages produced, by kind (`firing`, `recovery`).
pub const ALARM_MESSAGES_TOTAL: &str = "skylark_alarm_messages_total";

/// RUM intake requests answered 202 without being applied again because their `dd-request-id`
/// was already accepted within the last hour.
pub const RUM_DUPLICATE_REQUESTS_TOTAL: &str = "skylark_rum_duplicate_requests_total";

/// What a self-metric measures and how it is exposed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    /// Only ever grows.
    Counter,
    /// Goes up and down.
    Gauge,
    /// A distribution of durations in seconds.
    Histogram,
}

impl MetricKind {
    fn as_str(self) -> &'static str {
        match self {
            MetricKind::Counter => "counter",
            MetricKind::Gauge => "gauge",
            MetricKind::Histogram => "histogram",
        }
    }
}

/// Every self-metric: name, kind and the help line the exposition shows.
pub const METRICS: &[(&str, MetricKind, &str)] = &[
    (
        RECEIVER_REQUESTS_TOTAL,
        MetricKind::Counter,
        "Requests handled by the receivers, by protocol, signal and status.",
    ),
    (
        RECEIVER_ITEMS_TOTAL,
        MetricKind::Counter,
        "Samples, log records and segments received, by signal and outcome.",
    ),
    (
        RECEIVER_REJECTED_ITEMS_TOTAL,
        MetricKind::Counter,
        "Items refused while the rest of their request was kept, by signal and reason.",
    ),
    (
        RECEIVER_BUSY_REJECTIONS_TOTAL,
        MetricKind::Counter,
        "Requests refused with 503/UNAVAILABLE because the server was saturated, by reason.",
    ),
    (
        RECEIVER_INFLIGHT_REQUESTS,
        MetricKind::Gauge,
        "Requests being ingested now.",
    ),
    (
        RECEIVER_INFLIGHT_REQUESTS_LIMIT,
        MetricKind::Gauge,
        "Most requests ingested at once.",
    ),
    (
        STORAGE_PENDING_ROWS,
        MetricKind::Gauge,
        "Metric rows aggregated in memory, waiting for the next flush.",
    ),
    (
        STORAGE_PENDING_BYTES,
        MetricKind::Gauge,
        "Estimated memory of the metric rows waiting to be persisted, in bytes.",
    ),
    (
        STORAGE_PENDING_BYTES_LIMIT,
        MetricKind::Gauge,
        "Pending bytes beyond which ingestion answers busy.",
    ),
    (
        STORAGE_FLUSH_DURATION_SECONDS,
        MetricKind::Histogram,
        "Time to persist the aggregated metric rows.",
    ),
    (
        STORAGE_FLUSHES_TOTAL,
        MetricKind::Counter,
        "Flushes of the aggregated metric rows, by trigger and outcome.",
    ),
    (
        STORAGE_DISK_BYTES,
        MetricKind::Gauge,
        "Bytes the storage folder takes on disk.",
    ),
    (
        STORAGE_ENTITIES,
        MetricKind::Gauge,
        "Known services, instances and endpoints.",
    ),
    (
        STORAGE_RETENTION_SWEEP_DURATION_SECONDS,
        MetricKind::Histogram,
        "Time a retention sweep took.",
    ),
    (
        STORAGE_RETENTION_REMOVED_ROWS_TOTAL,
        MetricKind::Counter,
        "Metric rows, entities, logs and segments removed by retention.",
    ),
    (
        CARDINALITY_OVERFLOWS_TOTAL,
        MetricKind::Counter,
        "New instances, endpoints or label values past their cap, by kind and action.",
    ),
    (
        WAL_APPEND_DURATION_SECONDS,
        MetricKind::Histogram,
        "Time one write-ahead-log append took.",
    ),
    (
        WAL_DISK_BYTES,
        MetricKind::Gauge,
        "Bytes the write-ahead log takes on disk.",
    ),
    (
        ALARM_HOOK_FAILURES_TOTAL,
        MetricKind::Counter,
        "Alarm hook attempts that failed, by hook type and reason.",
    ),
    (
        ALARM_HOOK_DELIVERIES_TOTAL,
        MetricKind::Counter,
        "Alarm hook deliveries, by hook type and final outcome.",
    ),
    (
        RUM_DUPLICATE_REQUESTS_TOTAL,
        MetricKind::Counter,
        "RUM requests whose dd-request-id was already accepted, answered 202 and not applied again.",
    ),
    (
        ALARM_MESSAGES_TOTAL,
        MetricKind::Counter,
        "Alarm messages produced, by kind (firing, recovery).",
    ),
];

/// Upper bounds (seconds) of the duration histogram buckets.
pub const DURATION_BUCKETS_SECONDS: [f64; 12] = [
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Label pairs of one series; values are static so they come from bounded sets.
pub type LabelPairs = Vec<(&'static str, &'static str)>;

/// A monotonically increasing count.
#[derive(Debug, Clone, Default)]
pub struct Counter(Arc<AtomicU64>);

impl Counter {
    /// Adds one.
    pub fn inc(&self) {
        self.add(1);
    }

    /// Adds `n`.
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    /// The current count.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A value that goes up and down.
#[derive(Debug, Clone, Default)]
pub struct Gauge(Arc<AtomicI64>);

impl Gauge {
    /// Sets the value.
    pub fn set(&self, v: i64) {
        self.0.store(v, Ordering::Relaxed);
    }

    /// Adds `n` (negative to subtract).
    pub fn add(&self, n: i64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    /// The current value.
    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

#[derive(Debug, Default)]
struct HistogramCells {
    /// Non-cumulative counts per bucket of [`DURATION_BUCKETS_SECONDS`], then `+Inf`.
    buckets: [AtomicU64; DURATION_BUCKETS_SECONDS.len() + 1],
    count: AtomicU64,
    sum_nanos: AtomicU64,
}

/// A distribution of durations (Prometheus histogram over [`DURATION_BUCKETS_SECONDS`]).
#[derive(Debug, Clone, Default)]
pub struct Histogram(Arc<HistogramCells>);

impl Histogram {
    /// Records one duration.
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let slot = DURATION_BUCKETS_SECONDS
            .iter()
            .position(|bound| secs <= *bound)
            .unwrap_or(DURATION_BUCKETS_SECONDS.len());
        self.0.buckets[slot].fetch_add(1, Ordering::Relaxed);
        self.0.count.fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.0.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    /// How many durations were recorded.
    pub fn count(&self) -> u64 {
        self.0.count.load(Ordering::Relaxed)
    }
}

#[derive(Debug, Clone)]
enum Series {
    Counter(Counter),
    Gauge(Gauge),
    Histogram(Histogram),
}

/// The registry of self-metrics. Handles it returns share its cells, so components may keep them
/// and update without touching the registry again.
#[derive(Debug, Default)]
pub struct Telemetry {
    series: Mutex<BTreeMap<(&'static str, LabelPairs), Series>>,
}

impl Telemetry {
    /// An empty registry.
    pub fn new() -> Self {
        Telemetry::default()
    }

    fn series(
        &self,
        name: &'static str,
        labels: &[(&'static str, &'static str)],
        make: fn() -> Series,
    ) -> Series {
        let mut labels = labels.to_vec();
        labels.sort_unstable();
        // A poisoned lock only means another thread panicked mid-insert; the map is still valid.
        let mut map = self
            .series
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        map.entry((name, labels)).or_insert_with(make).clone()
    }

    /// The counter `name{labels}`, created at zero on first use.
    pub fn counter(&self, name: &'static str, labels: &[(&'static str, &'static str)]) -> Counter {
        match self.series(name, labels, || Series::Counter(Counter::default())) {
            Series::Counter(c) => c,
            // A name registered as another kind: hand out a detached cell rather than panic.
            _ => Counter::default(),
        }
    }

    /// The gauge `name{labels}`, created at zero on first use.
    pub fn gauge(&self, name: &'static str, labels: &[(&'static str, &'static str)]) -> Gauge {
        match self.series(name, labels, || Series::Gauge(Gauge::default())) {
            Series::Gauge(g) => g,
            _ => Gauge::default(),
        }
    }

    /// The duration histogram `name{labels}`, created empty on first use.
    pub fn histogram(
        &self,
        name: &'static str,
        labels: &[(&'static str, &'static str)],
    ) -> Histogram {
        match self.series(name, labels, || Series::Histogram(Histogram::default())) {
            Series::Histogram(h) => h,
            _ => Histogram::default(),
        }
    }

    /// Every series in the Prometheus text exposition format (version 0.0.4), grouped by name
    /// with `# HELP` and `# TYPE` lines.
    pub fn render(&self) -> String {
        let snapshot: Vec<((&'static str, LabelPairs), Series)> = {
            let map = self
                .series
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            map.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
        };
        let mut out = String::new();
        let mut current = "";
        for ((name, labels), series) in snapshot {
            if name != current {
                current = name;
                let described = METRICS.iter().find(|(n, _, _)| *n == name);
                if let Some((_, kind, help)) = described {
                    let _ = writeln!(out, "# HELP {name} {help}");
                    let _ = writeln!(out, "# TYPE {name} {}", kind.as_str());
                }
            }
            match series {
                Series::Counter(c) => {
                    let _ = writeln!(out, "{name}{} {}", label_text(&labels, None), c.get());
                }
                Series::Gauge(g) => {
                    let _ = writeln!(out, "{name}{} {}", label_text(&labels, None), g.get());
                }
                Series::Histogram(h) => render_histogram(&mut out, name, &labels, &h),
            }
        }
        out
    }
}

fn render_histogram(out: &mut String, name: &str, labels: &LabelPairs, h: &Histogram) {
    let mut cumulative = 0u64;
    for (i, bound) in DURATION_BUCKETS_SECONDS.iter().enumerate() {
        cumulative += h.0.buckets[i].load(Ordering::Relaxed);
        let le = bound.to_string();
        let _ = writeln!(
            out,
            "{name}_bucket{} {cumulative}",
            label_text(labels, Some(&le))
        );
    }
    cumulative += h.0.buckets[DURATION_BUCKETS_SECONDS.len()].load(Ordering::Relaxed);
    let _ = writeln!(
        out,
        "{name}_bucket{} {cumulative}",
        label_text(labels, Some("+Inf"))
    );
    let sum = h.0.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
    let _ = writeln!(out, "{name}_sum{} {sum}", label_text(labels, None));
    let _ = writeln!(
        out,
        "{name}_count{} {}",
        label_text(labels, None),
        h.count()
    );
}

/// `{k="v",...}` (empty when there are no labels), with `le` last for histogram buckets.
fn label_text(labels: &LabelPairs, le: Option<&str>) -> String {
    let mut pairs: Vec<(&str, &str)> = labels.iter().map(|(k, v)| (*k, *v)).collect();
    if let Some(le) = le {
        pairs.push(("le", le));
    }
    if pairs.is_empty() {
        return String::new();
    }
    let body: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", escape_label_value(v)))
        .collect();
    format!("{{{}}}", body.join(","))
}

fn escape_label_value(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_follows_the_naming_convention_and_is_described_once() {
        for (i, (name, kind, help)) in METRICS.iter().enumerate() {
            assert!(name.starts_with("skylark_"), "{name}");
            assert!(
                name.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
                "{name}"
            );
            assert_eq!(
                *kind == MetricKind::Counter,
                name.ends_with("_total"),
                "{name}: counters and only counters end in _total"
            );
            if *kind == MetricKind::Histogram {
                assert!(name.ends_with("_seconds"), "{name}");
            }
            assert!(!help.is_empty());
            assert!(
                METRICS[i + 1..].iter().all(|(n, _, _)| n != name),
                "{name} listed twice"
            );
        }
    }

    #[test]
    fn handles_share_the_registered_cell() {
        let t = Telemetry::new();
        let labels = [
            ("protocol", "http"),
            ("signal", "metrics"),
            ("status", "ok"),
        ];
        t.counter(RECEIVER_REQUESTS_TOTAL, &labels).inc();
        // Label order does not matter.
        let mut reversed = labels;
        reversed.reverse();
        t.counter(RECEIVER_REQUESTS_TOTAL, &reversed).add(2);
        assert_eq!(t.counter(RECEIVER_REQUESTS_TOTAL, &labels).get(), 3);
        let g = t.gauge(RECEIVER_INFLIGHT_REQUESTS, &[]);
        g.add(5);
        g.add(-2);
        assert_eq!(t.gauge(RECEIVER_INFLIGHT_REQUESTS, &[]).get(), 3);
    }

    #[test]
    fn renders_prometheus_text() {
        let t = Telemetry::new();
        t.counter(
            RECEIVER_REQUESTS_TOTAL,
            &[("protocol", "grpc"), ("signal", "logs"), ("status", "ok")],
        )
        .add(7);
        t.gauge(STORAGE_DISK_BYTES, &[]).set(4096);
        let h = t.histogram(STORAGE_FLUSH_DURATION_SECONDS, &[]);
        h.observe(Duration::from_millis(3));
        h.observe(Duration::from_secs(30));
        let text = t.render();
        assert!(text.contains(
            "# TYPE skylark_receiver_requests_total counter\n\
             skylark_receiver_requests_total{protocol=\"grpc\",signal=\"logs\",status=\"ok\"} 7\n"
        ));
        assert!(text.contains("skylark_storage_disk_bytes 4096\n"), "{text}");
        assert!(text.contains("# TYPE skylark_storage_flush_duration_seconds histogram\n"));
        assert!(text.contains("skylark_storage_flush_duration_seconds_bucket{le=\"0.001\"} 0\n"));
        assert!(text.contains("skylark_storage_flush_duration_seconds_bucket{le=\"0.005\"} 1\n"));
        assert!(text.contains("skylark_storage_flush_duration_seconds_bucket{le=\"10\"} 1\n"));
        assert!(text.contains("skylark_storage_flush_duration_seconds_bucket{le=\"+Inf\"} 2\n"));
        assert!(text.contains("skylark_storage_flush_duration_seconds_sum 30.003\n"));
        assert!(text.contains("skylark_storage_flush_duration_seconds_count 2\n"));
        // One HELP/TYPE header per name.
        assert_eq!(text.matches("# TYPE skylark_storage_disk_bytes").count(), 1);
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(
            label_text(&vec![("k", "a\"b\\c\nd")], None),
            "{k=\"a\\\"b\\\\c\\nd\"}"
        );
    }
}
