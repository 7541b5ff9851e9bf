use crate::{EndpointId, InstanceId, Labels, Layer, ServiceId, Step, TimeBucket};
use std::collections::{BTreeMap, HashMap};
use std::sync::RwLock;

/// What kind of entity a metric is about (OAP's scope ids in the doc comments).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum Scope {
    /// Everything (1 row, no entity); used by a few global metrics.
    All,
    /// A service (scope id 1).
    Service,
    /// A service instance (2).
    ServiceInstance,
    /// An endpoint of a service (3).
    Endpoint,
    /// A process (rarely used by MAL).
    Process,
    /// A service → service relation (4).
    ServiceRelation,
    /// An instance → instance relation (5).
    ServiceInstanceRelation,
    /// An endpoint → endpoint relation (6).
    EndpointRelation,
    /// A process → process relation.
    ProcessRelation,
}

impl Scope {
    /// The GraphQL `Scope` enum name.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::All => "All",
            Scope::Service => "Service",
            Scope::ServiceInstance => "ServiceInstance",
            Scope::Endpoint => "Endpoint",
            Scope::Process => "Process",
            Scope::ServiceRelation => "ServiceRelation",
            Scope::ServiceInstanceRelation => "ServiceInstanceRelation",
            Scope::EndpointRelation => "EndpointRelation",
            Scope::ProcessRelation => "ProcessRelation",
        }
    }
}

/// The entity a metric value belongs to, with names (ids are derived, as in OAP's `MeterEntity`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct MeterEntity {
    /// The entity kind.
    pub scope: Scope,
    /// The layer the rule put the entity in.
    pub layer: Layer,
    /// Service name (source service for relations).
    pub service_name: String,
    /// Instance name (instance scope; source instance for instance relations).
    pub instance_name: String,
    /// Endpoint name (endpoint scope).
    pub endpoint_name: String,
    /// Process name (process scope).
    pub process_name: String,
    /// Destination service name (relations).
    pub dest_service_name: String,
    /// Destination instance name (instance relations).
    pub dest_instance_name: String,
    /// Destination endpoint name (endpoint relations).
    pub dest_endpoint_name: String,
    /// Destination process name (process relations).
    pub dest_process_name: String,
}

impl MeterEntity {
    /// An entity of `scope` in `layer` with every name empty.
    pub fn new(scope: Scope, layer: Layer) -> Self {
        MeterEntity {
            scope,
            layer,
            service_name: String::new(),
            instance_name: String::new(),
            endpoint_name: String::new(),
            process_name: String::new(),
            dest_service_name: String::new(),
            dest_instance_name: String::new(),
            dest_endpoint_name: String::new(),
            dest_process_name: String::new(),
        }
    }

    /// A service entity.
    pub fn service(name: impl Into<String>, layer: Layer) -> Self {
        MeterEntity {
            service_name: name.into(),
            ..MeterEntity::new(Scope::Service, layer)
        }
    }

    /// An instance entity.
    pub fn instance(service: impl Into<String>, instance: impl Into<String>, layer: Layer) -> Self {
        MeterEntity {
            service_name: service.into(),
            instance_name: instance.into(),
            ..MeterEntity::new(Scope::ServiceInstance, layer)
        }
    }

    /// An endpoint entity.
    pub fn endpoint(service: impl Into<String>, endpoint: impl Into<String>, layer: Layer) -> Self {
        MeterEntity {
            service_name: service.into(),
            endpoint_name: endpoint.into(),
            ..MeterEntity::new(Scope::Endpoint, layer)
        }
    }

    /// The id of the (source) service. MAL and LAL always use normal services.
    pub fn service_id(&self) -> ServiceId {
        ServiceId::new(&self.service_name, true)
    }

    /// The storage entity id OAP uses for this entity's metric rows.
    pub fn id(&self) -> String {
        // The scopes of nearly every metric value are written straight into one string.
        let child = match self.scope {
            Scope::All => return String::new(),
            Scope::Service => "",
            Scope::ServiceInstance => &self.instance_name,
            Scope::Endpoint => &self.endpoint_name,
            _ => return self.relation_or_process_id(),
        };
        let mut id =
            String::with_capacity(crate::id::id_capacity(self.service_name.len(), child.len()));
        crate::id::push_service_id(&mut id, &self.service_name, true);
        match self.scope {
            Scope::ServiceInstance => crate::id::push_instance_part(&mut id, child),
            Scope::Endpoint => crate::id::push_endpoint_part(&mut id, child),
            _ => {}
        }
        id
    }

    /// [`MeterEntity::id`] of the other scopes.
    fn relation_or_process_id(&self) -> String {
        let svc = self.service_id();
        match self.scope {
            Scope::Process => format!(
                "{}_{}",
                InstanceId::new(&svc, &self.instance_name),
                crate::base64_encode(&self.process_name)
            ),
            Scope::ServiceRelation => {
                format!("{}-{}", svc, ServiceId::new(&self.dest_service_name, true))
            }
            Scope::ServiceInstanceRelation => format!(
                "{}-{}",
                InstanceId::new(&svc, &self.instance_name),
                InstanceId::new(
                    &ServiceId::new(&self.dest_service_name, true),
                    &self.dest_instance_name
                )
            ),
            Scope::EndpointRelation => format!(
                "{}-{}",
                EndpointId::new(&svc, &self.endpoint_name),
                EndpointId::new(
                    &ServiceId::new(&self.dest_service_name, true),
                    &self.dest_endpoint_name
                )
            ),
            Scope::ProcessRelation => format!("{}-{}", self.process_name, self.dest_process_name),
            Scope::All | Scope::Service | Scope::ServiceInstance | Scope::Endpoint => self.id(),
        }
    }
}

/// OAP's metric storage functions (`avg`, `sumLabeled`, `avgHistogramPercentile`, ...): how
/// values arriving for one (entity, bucket) combine, and what a query reads back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum MetricFunction {
    /// Integer mean with a floor of 1 for positive sums.
    Avg,
    /// Sum.
    Sum,
    /// Sum divided by the minutes in the bucket.
    SumPerMin,
    /// The last value written.
    Latest,
    /// Maximum.
    Max,
    /// Minimum.
    Min,
    /// `Avg` per label set.
    AvgLabeled,
    /// `Sum` per label set.
    SumLabeled,
    /// `SumPerMin` per label set.
    SumPerMinLabeled,
    /// `Latest` per label set.
    LatestLabeled,
    /// `Max` per label set.
    MaxLabeled,
    /// `Min` per label set.
    MinLabeled,
    /// Bucket counts averaged over emissions (a heatmap).
    AvgHistogram,
    /// Bucket counts summed (a heatmap).
    SumHistogram,
    /// `AvgHistogram` read back as percentiles (bucket upper bounds).
    AvgHistogramPercentile,
    /// Share of emissions that were 1 (successes), in 1/100 of a percent (OAP's `percent`,
    /// behind `*_sla`): `matched * 10000 / total`.
    Percent,
    /// `SumHistogram` read back as percentiles.
    SumHistogramPercentile,
}

impl MetricFunction {
    /// OAP's name for the function (`avgHistogramPercentile`).
    pub fn name(self) -> &'static str {
        match self {
            MetricFunction::Avg => "avg",
            MetricFunction::Sum => "sum",
            MetricFunction::SumPerMin => "sumPerMin",
            MetricFunction::Latest => "latest",
            MetricFunction::Max => "max",
            MetricFunction::Min => "min",
            MetricFunction::AvgLabeled => "avgLabeled",
            MetricFunction::SumLabeled => "sumLabeled",
            MetricFunction::SumPerMinLabeled => "sumPerMinLabeled",
            MetricFunction::LatestLabeled => "latestLabeled",
            MetricFunction::MaxLabeled => "maxLabeled",
            MetricFunction::MinLabeled => "minLabeled",
            MetricFunction::AvgHistogram => "avgHistogram",
            MetricFunction::SumHistogram => "sumHistogram",
            MetricFunction::AvgHistogramPercentile => "avgHistogramPercentile",
            MetricFunction::Percent => "percent",
            MetricFunction::SumHistogramPercentile => "sumHistogramPercentile",
        }
    }

    /// Whether query results of this function carry labels.
    pub fn is_labeled(self) -> bool {
        !matches!(
            self,
            MetricFunction::Avg
                | MetricFunction::Sum
                | MetricFunction::SumPerMin
                | MetricFunction::Latest
                | MetricFunction::Max
                | MetricFunction::Min
                | MetricFunction::Percent
        )
    }
}

/// A metric a rule declares: its storage name, scope and function.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MetricDefinition {
    /// Storage/query name, e.g. `meter_wechat_mp_app_launch_duration`.
    pub name: String,
    /// Entity kind of its rows.
    pub scope: Scope,
    /// How values combine.
    pub function: MetricFunction,
    /// Percentile ranks for `*HistogramPercentile` (e.g. `[50, 75, 90, 95, 99]`).
    pub percentile_ranks: Vec<u32>,
}

/// The registry of every metric the loaded rules define; the query side reads scopes from it.
#[derive(Debug, Default)]
pub struct MetricCatalog {
    metrics: RwLock<HashMap<String, MetricDefinition>>,
}

impl MetricCatalog {
    /// An empty catalog.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `def`; fails if the name is already registered with another scope or function.
    pub fn register(&self, def: MetricDefinition) -> Result<(), String> {
        let mut map = self.metrics.write().unwrap_or_else(|e| e.into_inner());
        if let Some(existing) = map.get(&def.name) {
            if existing.scope != def.scope || existing.function != def.function {
                return Err(format!(
                    "metric {} is already defined as {:?}/{} and cannot be redefined as {:?}/{}",
                    def.name,
                    existing.scope,
                    existing.function.name(),
                    def.scope,
                    def.function.name()
                ));
            }
            return Ok(());
        }
        map.insert(def.name.clone(), def);
        Ok(())
    }

    /// The definition of `name`, if any rule defines it.
    pub fn get(&self, name: &str) -> Option<MetricDefinition> {
        self.metrics
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
    }

    /// Every definition, sorted by name.
    pub fn all(&self) -> Vec<MetricDefinition> {
        let mut v: Vec<_> = self
            .metrics
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }
}

/// One histogram group: the non-`le` labels and the per-bucket counts keyed by upper bound.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HistogramGroup {
    /// Labels other than `le`.
    pub labels: Labels,
    /// `(upper bound, count)`, ascending by bound; `+Inf` is `i64::MAX`.
    pub buckets: Vec<(i64, i64)>,
}

/// A value a rule emitted for one entity (already coerced to longs, OAP §2.7).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum MeterValue {
    /// One number.
    Single(i64),
    /// One number per label set.
    Labeled(Vec<(Labels, i64)>),
    /// Bucket counts per label group.
    Histogram(Vec<HistogramGroup>),
}

/// One emission: a value of a metric for an entity in a minute.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MetricEmission {
    /// The metric's definition, shared by every emission of its rule.
    pub metric: std::sync::Arc<MetricDefinition>,
    /// The entity.
    pub entity: MeterEntity,
    /// The minute bucket of the sample's timestamp.
    pub minute: TimeBucket,
    /// The value.
    pub value: MeterValue,
}

/// Converts a sample value to the long OAP stores: `≤0 → 0`, `(0,1) → 1`, else rounded half-up.
pub fn to_long(v: f64) -> i64 {
    if v.is_nan() || v <= 0.0 {
        0
    } else if v < 1.0 {
        1
    } else if v >= i64::MAX as f64 {
        i64::MAX
    } else {
        v.round() as i64
    }
}

/// A value read back from storage: what a query sees for one (metric, entity, bucket).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum MetricValue {
    /// A plain value.
    Single(i64),
    /// Values per label set (percentiles carry `p`).
    Labeled(Vec<(Labels, i64)>),
}

/// The mergeable state of one metric row (OAP's `Metrics` object fields).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum MetricState {
    /// `avg`: running sum and count.
    Avg {
        /// Σ values.
        summation: i64,
        /// Number of values.
        count: i64,
    },
    /// `sum` / `sumPerMin`.
    Sum(i64),
    /// `latest`.
    Latest(i64),
    /// `max`.
    Max(i64),
    /// `min`.
    Min(i64),
    /// `avgLabeled` and `avgHistogram*`: per key (labels, bucket) a sum and count.
    AvgTable(BTreeMap<Labels, (i64, i64)>),
    /// `sumLabeled`, `sumPerMinLabeled`, `latestLabeled`, `maxLabeled`, `minLabeled`, `sumHistogram*`.
    Table(BTreeMap<Labels, i64>),
}

/// The label histogram buckets are keyed by: their upper bound.
pub const LE: &str = "le";

fn labels_with(labels: &Labels, key: &str, value: String) -> Labels {
    let mut l = labels.clone();
    l.insert(key, value);
    l
}

/// `labels` plus `le` = the bucket bound `le`.
pub fn labels_with_le(labels: &Labels, le: i64) -> Labels {
    // Every histogram emission names the same few bounds, one label set per bucket: the key and
    // the bound texts are shared rather than formatted and allocated per bucket.
    thread_local! {
        static LE_TEXT: crate::LabelText = crate::LabelText::from(LE);
    }
    let value = crate::labels::bound_text(le);
    let mut l = labels.clone();
    LE_TEXT.with(|key| l.insert(key.clone(), value));
    l
}

/// Merges table `b` into `a` with `merge`; keys only `b` has are copied. Both are sorted, so one
/// walk pairs equal keys (rows mostly combine the label sets they already hold) and a key is
/// cloned only when it is new.
fn merge_tables<V: Copy>(
    a: &mut BTreeMap<Labels, V>,
    b: &BTreeMap<Labels, V>,
    merge: impl Fn(&mut V, &V),
) {
    let mut new = Vec::new();
    let mut mine = a.iter_mut().peekable();
    for (k, v) in b {
        loop {
            match mine.peek().map(|(mk, _)| (*mk).cmp(k)) {
                Some(std::cmp::Ordering::Less) => {
                    mine.next();
                }
                Some(std::cmp::Ordering::Equal) => {
                    if let Some((_, e)) = mine.next() {
                        merge(e, v);
                    }
                    break;
                }
                _ => {
                    new.push((k, v));
                    break;
                }
            }
        }
    }
    for (k, v) in new {
        a.insert(k.clone(), *v);
    }
}

impl MetricState {
    /// The state after the first emission of `value` under `function`.
    pub fn from_emission(function: MetricFunction, value: &MeterValue) -> MetricState {
        use MetricFunction as F;
        let single = |v: &MeterValue| match v {
            MeterValue::Single(x) => *x,
            MeterValue::Labeled(l) => l.first().map(|(_, x)| *x).unwrap_or(0),
            MeterValue::Histogram(_) => 0,
        };
        let table = |v: &MeterValue| -> Vec<(Labels, i64)> {
            match v {
                MeterValue::Single(x) => vec![(Labels::new(), *x)],
                MeterValue::Labeled(l) => l.clone(),
                MeterValue::Histogram(groups) => groups
                    .iter()
                    .flat_map(|g| {
                        g.buckets
                            .iter()
                            .map(move |(le, c)| (labels_with_le(&g.labels, *le), *c))
                    })
                    .collect(),
            }
        };
        match function {
            F::Avg => MetricState::Avg {
                summation: single(value),
                count: 1,
            },
            F::Percent => MetricState::Avg {
                summation: i64::from(single(value) > 0),
                count: 1,
            },
            F::Sum | F::SumPerMin => MetricState::Sum(single(value)),
            F::Latest => MetricState::Latest(single(value)),
            F::Max => MetricState::Max(single(value)),
            F::Min => MetricState::Min(single(value)),
            F::AvgLabeled | F::AvgHistogram | F::AvgHistogramPercentile => {
                let mut m = BTreeMap::new();
                for (k, v) in table(value) {
                    let e = m.entry(k).or_insert((0_i64, 0_i64));
                    e.0 = e.0.saturating_add(v);
                    e.1 = e.1.saturating_add(1);
                }
                MetricState::AvgTable(m)
            }
            F::SumLabeled | F::SumPerMinLabeled | F::SumHistogram | F::SumHistogramPercentile => {
                let mut m = BTreeMap::new();
                for (k, v) in table(value) {
                    let e = m.entry(k).or_insert(0_i64);
                    *e = e.saturating_add(v);
                }
                MetricState::Table(m)
            }
            F::LatestLabeled | F::MaxLabeled | F::MinLabeled => {
                let mut m = BTreeMap::new();
                for (k, v) in table(value) {
                    m.insert(k, v);
                }
                MetricState::Table(m)
            }
        }
    }

    /// Merges `other` (a newer state of the same row) into `self`, as OAP's `combine`.
    pub fn combine(&mut self, function: MetricFunction, other: &MetricState) {
        use MetricState as S;
        match (self, other) {
            (
                S::Avg { summation, count },
                S::Avg {
                    summation: s,
                    count: c,
                },
            ) => {
                *summation = summation.saturating_add(*s);
                *count = count.saturating_add(*c);
            }
            (S::Sum(a), S::Sum(b)) => *a = a.saturating_add(*b),
            (S::Latest(a), S::Latest(b)) => *a = *b,
            (S::Max(a), S::Max(b)) => *a = (*a).max(*b),
            (S::Min(a), S::Min(b)) => *a = (*a).min(*b),
            (S::AvgTable(a), S::AvgTable(b)) => merge_tables(a, b, |e, (s, c)| {
                e.0 = e.0.saturating_add(*s);
                e.1 = e.1.saturating_add(*c);
            }),
            // A new key starts from the value itself under every function (0 + v for sums).
            (S::Table(a), S::Table(b)) => merge_tables(a, b, |e, v| match function {
                MetricFunction::LatestLabeled => *e = *v,
                MetricFunction::MaxLabeled => *e = (*e).max(*v),
                MetricFunction::MinLabeled => *e = (*e).min(*v),
                _ => *e = e.saturating_add(*v),
            }),
            // States of different shapes never meet for one row: the catalog forbids redefinition.
            (me, other) => *me = other.clone(),
        }
    }

    /// Entries of a labeled table (0 for a single value): what memory estimates count.
    pub fn table_len(&self) -> usize {
        match self {
            MetricState::AvgTable(t) => t.len(),
            MetricState::Table(t) => t.len(),
            _ => 0,
        }
    }

    /// The value a query reads from this state, for a bucket of `step`.
    pub fn value(&self, function: MetricFunction, ranks: &[u32], step: Step) -> MetricValue {
        use MetricFunction as F;
        let avg = |s: i64, c: i64| {
            if c == 0 {
                0
            } else {
                let v = s / c;
                if v == 0 && s > 0 {
                    1
                } else {
                    v
                }
            }
        };
        let per_min = |v: i64| v / step.minutes().max(1);
        match self {
            MetricState::Avg { summation, count } if function == F::Percent => {
                MetricValue::Single(if *count == 0 {
                    0
                } else {
                    summation.saturating_mul(10_000) / count
                })
            }
            MetricState::Avg { summation, count } => MetricValue::Single(avg(*summation, *count)),
            MetricState::Sum(v) if function == F::SumPerMin => MetricValue::Single(per_min(*v)),
            MetricState::Sum(v)
            | MetricState::Latest(v)
            | MetricState::Max(v)
            | MetricState::Min(v) => MetricValue::Single(*v),
            MetricState::AvgTable(t) => {
                let table: BTreeMap<Labels, i64> = t
                    .iter()
                    .map(|(k, (s, c))| (k.clone(), avg(*s, *c)))
                    .collect();
                if function == F::AvgHistogramPercentile {
                    MetricValue::Labeled(percentiles(&table, ranks))
                } else {
                    MetricValue::Labeled(table.into_iter().collect())
                }
            }
            MetricState::Table(t) => match function {
                F::SumHistogramPercentile => MetricValue::Labeled(percentiles(t, ranks)),
                F::SumPerMinLabeled => {
                    MetricValue::Labeled(t.iter().map(|(k, v)| (k.clone(), per_min(*v))).collect())
                }
                _ => MetricValue::Labeled(t.iter().map(|(k, v)| (k.clone(), *v)).collect()),
            },
        }
    }
}

/// The bound the `+Inf` bucket is keyed by (MAL turns `le="+Inf"` into the largest long).
const OVERFLOW_BOUND: i64 = i64::MAX;

/// OAP's percentile over bucket counts: per non-`le` group, for each rank the upper bound of the
/// first bucket whose cumulative count reaches `round(total * p / 100)` (f32, half-up).
///
/// One deliberate difference from OAP: when that bucket is the overflow (`+Inf`) bucket, OAP
/// reports `Long.MAX_VALUE` (a 19-digit latency on its dashboards); this reports the upper bound
/// of the highest finite bucket instead, as Prometheus's `histogram_quantile` does (0 when the
/// group has no finite bucket). Counts add up saturating, never wrapping.
fn percentiles(table: &BTreeMap<Labels, i64>, ranks: &[u32]) -> Vec<(Labels, i64)> {
    let mut groups: BTreeMap<Labels, Vec<(i64, i64)>> = BTreeMap::new();
    for (labels, count) in table {
        let mut group = labels.clone();
        let Some(le) = group.remove(LE) else { continue };
        let bound = le.parse::<i64>().unwrap_or(i64::MAX);
        groups.entry(group).or_default().push((bound, *count));
    }
    let mut out = Vec::new();
    for (group, mut buckets) in groups {
        buckets.sort_by_key(|(b, _)| *b);
        let highest_finite = buckets
            .iter()
            .rev()
            .map(|(b, _)| *b)
            .find(|b| *b != OVERFLOW_BOUND)
            .unwrap_or(0);
        let total: i64 = buckets.iter().fold(0_i64, |t, (_, c)| t.saturating_add(*c));
        for p in ranks {
            let value = if total <= 0 {
                0
            } else {
                // Java: `Math.round(total * p * 1.0f / 100)`: a long product, then float
                // arithmetic; `round` is exact where `floor(x + 0.5)` in f32 is not above 2^23.
                let roof = (total.saturating_mul(i64::from(*p)) as f32 / 100.0_f32).round() as i64;
                let mut cumulative = 0_i64;
                let mut found = buckets.last().map(|(b, _)| *b).unwrap_or(0);
                for (bound, count) in &buckets {
                    cumulative = cumulative.saturating_add(*count);
                    if cumulative >= roof {
                        found = *bound;
                        break;
                    }
                }
                if found == OVERFLOW_BOUND {
                    highest_finite
                } else {
                    found
                }
            };
            out.push((labels_with(&group, "p", p.to_string()), value));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entity_ids_are_the_ids_of_their_parts() {
        let names = [
            String::new(),
            "mini-program-sim-wechat".to_string(),
            "页".repeat(60),
            "页".repeat(200),
            "x".repeat(69),
            "x".repeat(71),
            "p/".repeat(100),
        ];
        for service in &names {
            for child in &names {
                let entity = |scope| {
                    let mut e = MeterEntity::new(scope, Layer::WECHAT_MINI_PROGRAM);
                    e.service_name = service.clone();
                    e.instance_name = child.clone();
                    e.endpoint_name = child.clone();
                    e
                };
                let svc = ServiceId::new(service, true);
                assert_eq!(entity(Scope::Service).id(), svc.as_str());
                assert_eq!(
                    entity(Scope::ServiceInstance).id(),
                    InstanceId::new(&svc, child).as_str()
                );
                assert_eq!(
                    entity(Scope::Endpoint).id(),
                    EndpointId::new(&svc, child).as_str()
                );
            }
        }
        // Spelled out once, as OAP writes it: blank names become `_blank`.
        let mut e = MeterEntity::new(Scope::Endpoint, Layer::WECHAT_MINI_PROGRAM);
        e.service_name = "svc".into();
        assert_eq!(e.id(), "c3Zj.1_X2JsYW5r");
    }

    #[test]
    fn histogram_state_names_every_bound_past_the_shared_texts() {
        // More distinct bounds than the per-thread text cache keeps: each must still be its own.
        let buckets: Vec<(i64, i64)> = (0..5_000).map(|b| (b * 10, 1)).collect();
        let value = MeterValue::Histogram(vec![HistogramGroup {
            labels: Labels::from([("service", "a")]),
            buckets: buckets.clone(),
        }]);
        let MetricState::AvgTable(table) =
            MetricState::from_emission(MetricFunction::AvgHistogramPercentile, &value)
        else {
            panic!("a histogram percentile keeps a table");
        };
        assert_eq!(table.len(), buckets.len());
        for (bound, _) in buckets {
            let key = Labels::from([("le", bound.to_string().as_str()), ("service", "a")]);
            assert_eq!(table.get(&key), Some(&(1, 1)), "bound {bound}");
        }
    }

    #[test]
    fn to_long_follows_oap() {
        assert_eq!(to_long(-3.0), 0);
        assert_eq!(to_long(0.2), 1);
        assert_eq!(to_long(2.5), 3);
        assert_eq!(to_long(2.4), 2);
    }

    #[test]
    fn avg_uses_integer_division_with_floor_of_one() {
        let f = MetricFunction::Avg;
        let mut s = MetricState::from_emission(f, &MeterValue::Single(3));
        s.combine(f, &MetricState::from_emission(f, &MeterValue::Single(4)));
        assert_eq!(s.value(f, &[], Step::Minute), MetricValue::Single(3));
        let mut s = MetricState::from_emission(f, &MeterValue::Single(1));
        s.combine(f, &MetricState::from_emission(f, &MeterValue::Single(0)));
        s.combine(f, &MetricState::from_emission(f, &MeterValue::Single(0)));
        assert_eq!(s.value(f, &[], Step::Minute), MetricValue::Single(1));
    }

    #[test]
    fn percentile_is_bucket_upper_bound() {
        let f = MetricFunction::AvgHistogramPercentile;
        // counts: le10:1, le25:1 → total 2; p50 roof 1 → 10; p75 roof round(1.5)=2 → 25.
        let v = MeterValue::Histogram(vec![HistogramGroup {
            labels: Labels::new(),
            buckets: vec![(10, 1), (25, 1), (i64::MAX, 0)],
        }]);
        let s = MetricState::from_emission(f, &v);
        let MetricValue::Labeled(out) = s.value(f, &[50, 75], Step::Minute) else {
            panic!()
        };
        assert_eq!(
            out.iter().map(|(_, v)| *v).collect::<Vec<_>>(),
            vec![10, 25]
        );
        assert_eq!(out[0].0.get("p"), Some("50"));
    }

    #[test]
    fn huge_values_saturate_instead_of_wrapping() {
        // Java longs wrap: OAP stores a negative call count after two near-max exports. A wrapped
        // number is a wrong number, so sums stop at the largest long instead.
        for f in [MetricFunction::Sum, MetricFunction::SumPerMin] {
            let mut s = MetricState::from_emission(f, &MeterValue::Single(i64::MAX));
            s.combine(f, &MetricState::from_emission(f, &MeterValue::Single(1)));
            s.combine(
                f,
                &MetricState::from_emission(f, &MeterValue::Single(i64::MAX)),
            );
            assert_eq!(s.value(f, &[], Step::Minute), MetricValue::Single(i64::MAX));
        }
        let f = MetricFunction::Avg;
        let mut s = MetricState::from_emission(f, &MeterValue::Single(i64::MAX));
        s.combine(
            f,
            &MetricState::from_emission(f, &MeterValue::Single(i64::MAX)),
        );
        let MetricValue::Single(avg) = s.value(f, &[], Step::Minute) else {
            panic!()
        };
        assert!(avg > 0, "an average of positives is positive, got {avg}");
        let f = MetricFunction::SumLabeled;
        let big = MeterValue::Labeled(vec![(Labels::from([("k", "v")]), i64::MAX)]);
        let mut s = MetricState::from_emission(f, &big);
        s.combine(f, &MetricState::from_emission(f, &big));
        assert_eq!(
            s.value(f, &[], Step::Minute),
            MetricValue::Labeled(vec![(Labels::from([("k", "v")]), i64::MAX)])
        );

        let f = MetricFunction::SumHistogramPercentile;
        let v = MeterValue::Histogram(vec![HistogramGroup {
            labels: Labels::new(),
            buckets: vec![(10, i64::MAX), (i64::MAX, i64::MAX)],
        }]);
        let mut s = MetricState::from_emission(f, &v);
        s.combine(f, &MetricState::from_emission(f, &v));
        let MetricValue::Labeled(out) = s.value(f, &[50, 99], Step::Minute) else {
            panic!()
        };
        // Both buckets saturated: half of the (saturated) total is reached in the first one.
        assert_eq!(out.iter().map(|(_, v)| *v).collect::<Vec<_>>(), [10, 10]);
    }

    #[test]
    fn percentiles_in_the_overflow_bucket_report_the_highest_finite_bound() {
        let values = |buckets: Vec<(i64, i64)>, f: MetricFunction| {
            let v = MeterValue::Histogram(vec![HistogramGroup {
                labels: Labels::new(),
                buckets,
            }]);
            let MetricValue::Labeled(out) =
                MetricState::from_emission(f, &v).value(f, &[50, 95, 99], Step::Minute)
            else {
                panic!()
            };
            out.into_iter().map(|(_, v)| v).collect::<Vec<_>>()
        };
        for f in [
            MetricFunction::SumHistogramPercentile,
            MetricFunction::AvgHistogramPercentile,
        ] {
            // Everything above 10 s: OAP says Long.MAX_VALUE, Prometheus the highest bound.
            let all_over = vec![(100, 0), (10_000, 0), (i64::MAX, 7)];
            assert_eq!(values(all_over, f), [10_000, 10_000, 10_000], "{f:?}");
            // Only the tail overflows: lower ranks still find their own bucket.
            let tail = vec![(100, 90), (10_000, 5), (i64::MAX, 5)];
            assert_eq!(values(tail, f), [100, 10_000, 10_000], "{f:?}");
            // No finite bucket at all: nothing to bound the value by.
            assert_eq!(values(vec![(i64::MAX, 3)], f), [0, 0, 0], "{f:?}");
        }
    }

    #[test]
    fn percentile_roof_rounds_the_long_product() {
        // Total 16_777_217 is not an f32. Java multiplies as longs first (838_860_850 → f32
        // 838_860_864, / 100 → 8_388_609), so the first bucket's 8_388_608 does not reach the
        // roof; converting the total to f32 first would give roof 8_388_608 and bound 10.
        let f = MetricFunction::SumHistogramPercentile;
        let v = MeterValue::Histogram(vec![HistogramGroup {
            labels: Labels::new(),
            buckets: vec![(10, 8_388_608), (25, 8_388_609)],
        }]);
        let s = MetricState::from_emission(f, &v);
        let MetricValue::Labeled(out) = s.value(f, &[50], Step::Minute) else {
            panic!()
        };
        assert_eq!(out[0].1, 25);
    }

    #[test]
    fn percent_is_share_of_successes_in_basis_points() {
        let f = MetricFunction::Percent;
        let mut s = MetricState::from_emission(f, &MeterValue::Single(1));
        for v in [1, 0, 1] {
            s.combine(f, &MetricState::from_emission(f, &MeterValue::Single(v)));
        }
        assert_eq!(s.value(f, &[], Step::Minute), MetricValue::Single(7500));
    }

    #[test]
    fn sum_per_min_divides_by_bucket_minutes() {
        let f = MetricFunction::SumPerMin;
        let s = MetricState::from_emission(f, &MeterValue::Single(120));
        assert_eq!(s.value(f, &[], Step::Hour), MetricValue::Single(2));
    }

    #[test]
    fn labeled_combine_merges_known_keys_and_adds_new_ones() {
        let l = |v: &str| -> Labels { [("k".to_string(), v.to_string())].into_iter().collect() };
        let labeled = |pairs: &[(&str, i64)]| {
            MeterValue::Labeled(pairs.iter().map(|(k, v)| (l(k), *v)).collect())
        };
        // New keys before, between and after the known ones.
        let cases = [
            (
                MetricFunction::SumLabeled,
                [("0", 9), ("a", 7), ("ab", 1), ("b", 2), ("c", 5)],
            ),
            (
                MetricFunction::MaxLabeled,
                [("0", 9), ("a", 4), ("ab", 1), ("b", 2), ("c", 5)],
            ),
            (
                MetricFunction::MinLabeled,
                [("0", 9), ("a", 3), ("ab", 1), ("b", 2), ("c", 5)],
            ),
            (
                MetricFunction::LatestLabeled,
                [("0", 9), ("a", 3), ("ab", 1), ("b", 2), ("c", 5)],
            ),
            (
                MetricFunction::AvgLabeled,
                [("0", 9), ("a", 3), ("ab", 1), ("b", 2), ("c", 5)],
            ),
        ];
        for (f, want) in cases {
            let mut s = MetricState::from_emission(f, &labeled(&[("a", 4), ("b", 2)]));
            let newer = labeled(&[("0", 9), ("a", 3), ("ab", 1), ("c", 5)]);
            s.combine(f, &MetricState::from_emission(f, &newer));
            let want = MetricValue::Labeled(want.iter().map(|(k, v)| (l(k), *v)).collect());
            assert_eq!(s.value(f, &[], Step::Minute), want, "{f:?}");
        }
    }
}
