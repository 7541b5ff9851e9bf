//! Limits that keep memory and storage bounded whatever agents send:
//!
//! - [`CardinalityGuard`] caps instances and endpoints per service and label values per metric
//!   on what the rules produced, before storage; past a cap a new value becomes
//!   [`OVERFLOW_VALUE`] (`fold`) or is dropped (`reject`). MAL and storage stay generic.
//! - [`MemoryBudget`] bounds the memory of the metric rows aggregated between persists (the
//!   storage's estimate in bytes, rows of a running persist included): over half the budget it
//!   asks the flusher for an early flush, over the whole budget receivers answer busy until
//!   persisting brings it back under.
use skylark_core::telemetry::{
    Counter, Gauge, Telemetry, CARDINALITY_OVERFLOWS_TOTAL, STORAGE_PENDING_BYTES,
    STORAGE_PENDING_BYTES_LIMIT, STORAGE_PENDING_ROWS,
};
use skylark_core::traffic::Traffic;
use skylark_core::{MeterValue, MetricEmission};
use skylark_receiver::{Backpressure, Overload};
use skylark_storage::Storage;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// The value every instance, endpoint or label value past its cap is folded into.
pub const OVERFLOW_VALUE: &str = "_other";

/// At most one overflow warning per kind in this period; the next one says how many were not
/// logged.
const WARNING_PERIOD: Duration = Duration::from_secs(60);

/// What happens to a value past its cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overflow {
    /// Replace it by [`OVERFLOW_VALUE`] (data is kept, under one shared name).
    Fold,
    /// Drop the emission or registration carrying it.
    Reject,
}

impl Overflow {
    /// `fold` or `reject`.
    pub fn parse(s: &str) -> Option<Overflow> {
        match s {
            "fold" => Some(Overflow::Fold),
            "reject" => Some(Overflow::Reject),
            _ => None,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Overflow::Fold => "fold",
            Overflow::Reject => "reject",
        }
    }
}

/// The caps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CardinalityLimits {
    /// Distinct instance names per service.
    pub max_instances_per_service: usize,
    /// Distinct endpoint names per service.
    pub max_endpoints_per_service: usize,
    /// Distinct values of each label key of each metric.
    pub max_label_values_per_metric: usize,
    /// What happens past a cap.
    pub overflow: Overflow,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Instance,
    Endpoint,
    Label,
}

impl Kind {
    const ALL: [Kind; 3] = [Kind::Instance, Kind::Endpoint, Kind::Label];

    fn as_str(self) -> &'static str {
        match self {
            Kind::Instance => "instance",
            Kind::Endpoint => "endpoint",
            Kind::Label => "label",
        }
    }
}

/// Rate limit of one kind's warning.
#[derive(Debug, Default)]
struct WarningGate {
    last: Option<Instant>,
    suppressed: u64,
}

impl WarningGate {
    /// `Some(suppressed since the last warning)` when a warning may be logged at `now`.
    fn admit(&mut self, now: Instant) -> Option<u64> {
        match self.last {
            Some(last) if now.duration_since(last) < WARNING_PERIOD => {
                self.suppressed += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.suppressed))
            }
        }
    }
}

/// Names seen so far: service → names, and metric → label key → values.
#[derive(Debug, Default)]
struct Seen {
    instances: HashMap<String, HashSet<String>>,
    endpoints: HashMap<String, HashSet<String>>,
    labels: HashMap<String, HashMap<String, HashSet<String>>>,
    warnings: [WarningGate; 3],
}

/// Admits `name` into `set` while it holds fewer than `cap`; known names and the overflow value
/// always pass.
fn admit(set: &mut HashSet<String>, name: &str, cap: usize) -> bool {
    if name.is_empty() || name == OVERFLOW_VALUE || set.contains(name) {
        return true;
    }
    if set.len() < cap {
        set.insert(name.to_owned());
        return true;
    }
    false
}

/// Applies [`CardinalityLimits`] to emissions and traffic (see the module docs).
pub struct CardinalityGuard {
    limits: CardinalityLimits,
    seen: Mutex<Seen>,
    overflows: [Counter; 3],
}

/// The outcome for one name: kept as is, replaced by [`OVERFLOW_VALUE`], or dropped.
enum Verdict {
    Keep,
    Fold,
    Drop,
}

impl CardinalityGuard {
    /// A guard with nothing seen yet, counting overflows into `telemetry`.
    pub fn new(limits: CardinalityLimits, telemetry: &Telemetry) -> Self {
        let overflows = Kind::ALL.map(|kind| {
            telemetry.counter(
                CARDINALITY_OVERFLOWS_TOTAL,
                &[
                    ("kind", kind.as_str()),
                    ("action", limits.overflow.as_str()),
                ],
            )
        });
        CardinalityGuard {
            limits,
            seen: Mutex::new(Seen::default()),
            overflows,
        }
    }

    /// Counts the entities already stored towards the caps, so a restart does not reopen them.
    pub fn seed(&self, storage: &dyn Storage) -> skylark_storage::Result<()> {
        let mut seen = self.lock();
        for service in storage.list_services(None)? {
            let id = skylark_core::ServiceId::new(&service.name, true);
            let instances = seen.instances.entry(service.name.to_string()).or_default();
            for instance in storage.list_instances(&id, i64::MIN)? {
                instances.insert(instance.name);
            }
            let endpoints = seen.endpoints.entry(service.name.to_string()).or_default();
            for endpoint in storage.find_endpoints(&id, None, usize::MAX)? {
                endpoints.insert(endpoint.name);
            }
        }
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Seen> {
        // The sets stay valid if a holder panicked; at worst one name is missing.
        self.seen.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Folds or drops whatever passes a cap, in place.
    pub fn apply(&self, emissions: &mut Vec<MetricEmission>, traffic: &mut Vec<Traffic>) {
        let mut seen = self.lock();
        let seen = &mut *seen;
        let mut overflowed = [0u64; 3];
        let mut label_overflowed = 0u64;
        let mut judge = |seen: &mut Seen, kind: Kind, owner: &str, name: &str| -> Verdict {
            let (map, cap) = if kind == Kind::Instance {
                (&mut seen.instances, self.limits.max_instances_per_service)
            } else {
                (&mut seen.endpoints, self.limits.max_endpoints_per_service)
            };
            let set = match map.get_mut(owner) {
                Some(set) => set,
                None => map.entry(owner.to_owned()).or_default(),
            };
            if admit(set, name, cap) {
                return Verdict::Keep;
            }
            overflowed[kind as usize] += 1;
            match self.limits.overflow {
                Overflow::Fold => Verdict::Fold,
                Overflow::Reject => Verdict::Drop,
            }
        };

        traffic.retain_mut(|t| {
            let (kind, owner, name) = match t {
                Traffic::Service(_) => return true,
                Traffic::Instance(i) => (Kind::Instance, &i.service_name, &mut i.name),
                Traffic::Endpoint(e) => (Kind::Endpoint, &e.service_name, &mut e.name),
            };
            match judge(seen, kind, owner, name) {
                Verdict::Keep => true,
                Verdict::Fold => {
                    *name = OVERFLOW_VALUE.to_owned();
                    true
                }
                Verdict::Drop => false,
            }
        });

        emissions.retain_mut(|e| {
            let entity = &mut e.entity;
            let names = [
                (
                    Kind::Instance,
                    &entity.service_name,
                    &mut entity.instance_name,
                ),
                (
                    Kind::Endpoint,
                    &entity.service_name,
                    &mut entity.endpoint_name,
                ),
                (
                    Kind::Instance,
                    &entity.dest_service_name,
                    &mut entity.dest_instance_name,
                ),
                (
                    Kind::Endpoint,
                    &entity.dest_service_name,
                    &mut entity.dest_endpoint_name,
                ),
            ];
            for (kind, owner, name) in names {
                if name.is_empty() {
                    continue;
                }
                match judge(seen, kind, owner, name) {
                    Verdict::Keep => {}
                    Verdict::Fold => *name = OVERFLOW_VALUE.to_owned(),
                    Verdict::Drop => return false,
                }
            }
            let cap = self.limits.max_label_values_per_metric;
            let metric_labels = match seen.labels.get_mut(&e.metric.name) {
                Some(m) => m,
                None => seen.labels.entry(e.metric.name.clone()).or_default(),
            };
            let mut label_overflows = 0u64;
            let mut keep_labels = |labels: &mut skylark_core::Labels| -> bool {
                let mut keep = true;
                let mut folded = Vec::new();
                for (key, value) in labels.iter() {
                    let set = match metric_labels.get_mut(key) {
                        Some(set) => set,
                        None => metric_labels.entry(key.to_owned()).or_default(),
                    };
                    if admit(set, value, cap) {
                        continue;
                    }
                    label_overflows += 1;
                    match self.limits.overflow {
                        Overflow::Fold => folded.push(key.to_owned()),
                        Overflow::Reject => keep = false,
                    }
                }
                for key in folded {
                    labels.insert(key, OVERFLOW_VALUE);
                }
                keep
            };
            let keep = match &mut e.value {
                MeterValue::Single(_) => true,
                MeterValue::Labeled(entries) => {
                    entries.retain_mut(|(labels, _)| keep_labels(labels));
                    !entries.is_empty()
                }
                MeterValue::Histogram(groups) => {
                    groups.retain_mut(|g| keep_labels(&mut g.labels));
                    !groups.is_empty()
                }
            };
            label_overflowed += label_overflows;
            keep
        });
        overflowed[Kind::Label as usize] += label_overflowed;

        let now = Instant::now();
        for kind in Kind::ALL {
            let n = overflowed[kind as usize];
            if n == 0 {
                continue;
            }
            self.overflows[kind as usize].add(n);
            if let Some(suppressed) = seen.warnings[kind as usize].admit(now) {
                let cap = match kind {
                    Kind::Instance => self.limits.max_instances_per_service,
                    Kind::Endpoint => self.limits.max_endpoints_per_service,
                    Kind::Label => self.limits.max_label_values_per_metric,
                };
                tracing::warn!(
                    kind = kind.as_str(),
                    cap,
                    action = self.limits.overflow.as_str(),
                    overflowed = n,
                    earlier_unlogged = suppressed,
                    "cardinality cap reached; new values are {}",
                    match self.limits.overflow {
                        Overflow::Fold => "folded into _other",
                        Overflow::Reject => "dropped",
                    }
                );
            }
        }
    }
}

/// The bound on metric rows aggregated in memory (see the module docs).
pub struct MemoryBudget {
    storage: Arc<dyn Storage>,
    max_pending_bytes: usize,
    flush_requested: Notify,
    pending_rows: Gauge,
    pending_bytes: Gauge,
}

impl MemoryBudget {
    /// A budget of `max_memory_mb` MiB for the rows `storage` has not persisted yet.
    pub fn new(storage: Arc<dyn Storage>, max_memory_mb: u64, telemetry: Arc<Telemetry>) -> Self {
        let max_pending_bytes = usize::try_from(max_memory_mb.saturating_mul(1024 * 1024))
            .unwrap_or(usize::MAX)
            .max(1);
        telemetry
            .gauge(STORAGE_PENDING_BYTES_LIMIT, &[])
            .set(i64::try_from(max_pending_bytes).unwrap_or(i64::MAX));
        MemoryBudget {
            storage,
            max_pending_bytes,
            flush_requested: Notify::new(),
            pending_rows: telemetry.gauge(STORAGE_PENDING_ROWS, &[]),
            pending_bytes: telemetry.gauge(STORAGE_PENDING_BYTES, &[]),
        }
    }

    /// Pending bytes past which receivers answer busy.
    pub fn max_pending_bytes(&self) -> usize {
        self.max_pending_bytes
    }

    /// Resolves when an early flush was asked for.
    pub async fn flush_requested(&self) {
        self.flush_requested.notified().await
    }
}

impl Backpressure for MemoryBudget {
    fn overloaded(&self) -> Option<Overload> {
        let rows = self.storage.pending_rows();
        let pending = self.storage.pending_bytes();
        self.pending_rows
            .set(i64::try_from(rows).unwrap_or(i64::MAX));
        self.pending_bytes
            .set(i64::try_from(pending).unwrap_or(i64::MAX));
        if pending >= self.max_pending_bytes / 2 {
            self.flush_requested.notify_one();
        }
        (pending >= self.max_pending_bytes).then(|| Overload {
            reason: "memory",
            detail: format!(
                "{rows} metric rows (~{} MiB) are waiting to be persisted (limit {} MiB)",
                pending >> 20,
                self.max_pending_bytes >> 20
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use skylark_core::traffic::{EndpointTraffic, InstanceTraffic, ServiceTraffic};
    use skylark_core::{
        HistogramGroup, Labels, Layer, MeterEntity, MetricDefinition, MetricFunction, Scope, Step,
        TimeBucket,
    };

    fn limits(overflow: Overflow) -> CardinalityLimits {
        CardinalityLimits {
            max_instances_per_service: 2,
            max_endpoints_per_service: 1,
            max_label_values_per_metric: 2,
            overflow,
        }
    }

    fn instance_emission(service: &str, instance: &str) -> MetricEmission {
        MetricEmission {
            metric: MetricDefinition {
                name: "meter_instance_x".into(),
                scope: Scope::ServiceInstance,
                function: MetricFunction::Avg,
                percentile_ranks: Vec::new(),
            }
            .into(),
            entity: MeterEntity::instance(service, instance, Layer::GENERAL),
            minute: TimeBucket::from_epoch_ms(1_700_000_000_000, Step::Minute).unwrap(),
            value: MeterValue::Single(1),
        }
    }

    fn labeled_emission(values: &[&str]) -> MetricEmission {
        let entries = values
            .iter()
            .map(|v| {
                let mut labels = Labels::new();
                labels.insert("code", *v);
                (labels, 1)
            })
            .collect();
        MetricEmission {
            metric: MetricDefinition {
                name: "meter_labeled".into(),
                scope: Scope::Service,
                function: MetricFunction::SumLabeled,
                percentile_ranks: Vec::new(),
            }
            .into(),
            entity: MeterEntity::service("svc", Layer::GENERAL),
            minute: TimeBucket::from_epoch_ms(1_700_000_000_000, Step::Minute).unwrap(),
            value: MeterValue::Labeled(entries),
        }
    }

    fn instance_traffic(service: &str, name: &str) -> Traffic {
        Traffic::Instance(InstanceTraffic {
            service_name: service.into(),
            name: name.into(),
            layer: Layer::GENERAL,
        })
    }

    fn overflows(t: &Telemetry, kind: &'static str, action: &'static str) -> u64 {
        t.counter(
            CARDINALITY_OVERFLOWS_TOTAL,
            &[("kind", kind), ("action", action)],
        )
        .get()
    }

    #[test]
    fn instances_past_the_cap_fold_into_other_in_traffic_and_metrics_alike() {
        let t = Telemetry::new();
        let guard = CardinalityGuard::new(limits(Overflow::Fold), &t);
        let mut traffic = vec![
            Traffic::Service(ServiceTraffic {
                name: "svc".into(),
                layer: Layer::GENERAL,
            }),
            instance_traffic("svc", "a"),
            instance_traffic("svc", "b"),
            instance_traffic("svc", "c"),
            instance_traffic("other-svc", "c"),
        ];
        let mut emissions = vec![
            instance_emission("svc", "a"),
            instance_emission("svc", "c"),
            instance_emission("svc", "d"),
        ];
        guard.apply(&mut emissions, &mut traffic);
        let names: Vec<String> = traffic
            .iter()
            .filter_map(|t| match t {
                Traffic::Instance(i) => Some(format!("{}/{}", i.service_name, i.name)),
                _ => None,
            })
            .collect();
        assert_eq!(names, ["svc/a", "svc/b", "svc/_other", "other-svc/c"]);
        let instances: Vec<&str> = emissions
            .iter()
            .map(|e| e.entity.instance_name.as_str())
            .collect();
        assert_eq!(instances, ["a", "_other", "_other"]);
        assert_eq!(overflows(&t, "instance", "fold"), 3);
        // A known name stays admitted later on.
        let mut again = vec![instance_emission("svc", "b")];
        guard.apply(&mut again, &mut Vec::new());
        assert_eq!(again[0].entity.instance_name, "b");
    }

    #[test]
    fn reject_drops_what_passes_the_cap() {
        let t = Telemetry::new();
        let guard = CardinalityGuard::new(limits(Overflow::Reject), &t);
        let mut traffic = vec![
            Traffic::Endpoint(EndpointTraffic {
                service_name: "svc".into(),
                name: "/a".into(),
                layer: Layer::GENERAL,
            }),
            Traffic::Endpoint(EndpointTraffic {
                service_name: "svc".into(),
                name: "/b".into(),
                layer: Layer::GENERAL,
            }),
        ];
        let mut emissions = vec![labeled_emission(&["200", "404", "500"])];
        guard.apply(&mut emissions, &mut traffic);
        assert_eq!(traffic.len(), 1);
        let MeterValue::Labeled(entries) = &emissions[0].value else {
            panic!("labeled")
        };
        let codes: Vec<&str> = entries.iter().map(|(l, _)| &l["code"]).collect();
        assert_eq!(codes, ["200", "404"]);
        assert_eq!(overflows(&t, "endpoint", "reject"), 1);
        assert_eq!(overflows(&t, "label", "reject"), 1);
    }

    #[test]
    fn label_values_past_the_cap_fold_in_labeled_and_histogram_values() {
        let t = Telemetry::new();
        let guard = CardinalityGuard::new(limits(Overflow::Fold), &t);
        let mut histogram = labeled_emission(&[]);
        let mut group_labels = Labels::new();
        group_labels.insert("code", "503");
        histogram.value = MeterValue::Histogram(vec![HistogramGroup {
            labels: group_labels,
            buckets: vec![(10, 1)],
        }]);
        let mut emissions = vec![labeled_emission(&["200", "404", "500"]), histogram];
        guard.apply(&mut emissions, &mut Vec::new());
        let MeterValue::Labeled(entries) = &emissions[0].value else {
            panic!("labeled")
        };
        let codes: Vec<&str> = entries.iter().map(|(l, _)| &l["code"]).collect();
        assert_eq!(codes, ["200", "404", "_other"]);
        let MeterValue::Histogram(groups) = &emissions[1].value else {
            panic!("histogram")
        };
        assert_eq!(groups[0].labels.get("code"), Some("_other"));
        assert_eq!(overflows(&t, "label", "fold"), 2);
    }

    #[test]
    fn warnings_are_at_most_one_a_minute_per_kind_and_count_what_was_skipped() {
        let mut gate = WarningGate::default();
        let start = Instant::now();
        assert_eq!(gate.admit(start), Some(0));
        assert_eq!(gate.admit(start + Duration::from_secs(1)), None);
        assert_eq!(gate.admit(start + Duration::from_secs(59)), None);
        assert_eq!(gate.admit(start + Duration::from_secs(61)), Some(2));
        assert_eq!(gate.admit(start + Duration::from_secs(62)), None);
    }

    #[test]
    fn memory_budget_asks_for_a_flush_at_half_and_refuses_when_full() {
        let storage = Arc::new(skylark_storage::MemStorage::new());
        let t = Arc::new(Telemetry::new());
        let budget = MemoryBudget::new(storage.clone(), 1, t.clone());
        assert_eq!(budget.max_pending_bytes(), 1 << 20);
        assert!(budget.overloaded().is_none());
        // Minute, hour and day rows: 12,000 pending rows of ~115 bytes each.
        let emissions: Vec<MetricEmission> = (0..4000)
            .map(|i| instance_emission("svc", &format!("i{i}")))
            .collect();
        storage.write_metrics(emissions).unwrap();
        let overload = budget.overloaded().expect("over budget");
        assert_eq!(overload.reason, "memory");
        assert_eq!(t.gauge(STORAGE_PENDING_ROWS, &[]).get(), 12_000);
        let bytes = t.gauge(STORAGE_PENDING_BYTES, &[]).get();
        assert!((1 << 20..2 << 20).contains(&bytes), "{bytes} bytes");
        storage.flush().unwrap();
        assert!(budget.overloaded().is_none());
        assert_eq!(storage.pending_bytes(), 0);
    }
}
