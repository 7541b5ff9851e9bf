//! MQE evaluation against [`Storage`], following OAP's `MQEVisitor` semantics.

use super::ast::*;
use super::model::*;
use super::parser::parse_expression;
use skylark_core::{
    split_child_id, EndpointId, InstanceId, Labels, MetricCatalog, MetricDefinition, MetricValue,
    Scope, ServiceId, Step, TimeBucket,
};
use skylark_storage::Storage;
use std::cell::Cell;
use std::collections::{BTreeMap, HashMap};

const IO_ERROR: &str = "Internal IO exception, query metrics error.";

/// How much work one evaluation may do. The expression and its arguments come from the client,
/// so without these a short expression could ask for millions of storage reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MqeLimits {
    /// Most metric points (entities × time buckets, summed over every read of the expression)
    /// one evaluation may read; past it the evaluation stops with an error.
    pub max_points: usize,
    /// Largest `N` of `increase(metric, N)` / `rate(metric, N)`, in steps of the query. Each
    /// step of the range is one more bucket read before the window.
    pub max_trend_range: usize,
}

impl MqeLimits {
    /// Default of [`MqeLimits::max_points`]: a 500-bucket window over 200 entities.
    pub const DEFAULT_MAX_POINTS: usize = 100_000;
    /// Default of [`MqeLimits::max_trend_range`]: one day of minutes.
    pub const DEFAULT_MAX_TREND_RANGE: usize = 1_440;
}

impl Default for MqeLimits {
    fn default() -> Self {
        MqeLimits {
            max_points: Self::DEFAULT_MAX_POINTS,
            max_trend_range: Self::DEFAULT_MAX_TREND_RANGE,
        }
    }
}

/// Everything an evaluation reads: storage, the metric catalog, the entity and the buckets of
/// the query duration (all of one step, in time order), and the limits on its work.
pub struct MqeContext<'a> {
    /// Where metric rows are read.
    pub storage: &'a dyn Storage,
    /// Metric scopes and functions.
    pub catalog: &'a MetricCatalog,
    /// The `entity` argument.
    pub entity: &'a MqeEntity,
    /// The query's buckets.
    pub buckets: &'a [TimeBucket],
    /// Bounds on the work of one evaluation.
    pub limits: MqeLimits,
}

/// One evaluation: the context plus the points read so far, checked against the limits.
struct Evaluator<'c, 'a> {
    ctx: &'c MqeContext<'a>,
    points: Cell<usize>,
}

/// A failed step: the message, and the result to report with it when OAP keeps the type
/// (relabels/aggregate_labels on wrong input).
struct Failure {
    message: String,
    partial: Option<ExpressionOutcome>,
}

type Eval = Result<ExpressionOutcome, Failure>;

type LabelPairs = Vec<(String, String)>;

fn fail(message: impl Into<String>) -> Failure {
    Failure {
        message: message.into(),
        partial: None,
    }
}

/// Parses and evaluates `expression`. Every problem (syntax, unknown metric, bad shapes, IO)
/// is reported in the outcome's `error`, never as a Rust error, as OAP does.
pub fn execute(ctx: &MqeContext<'_>, expression: &str) -> ExpressionOutcome {
    let expr = match parse_expression(expression) {
        Ok(e) => e,
        Err(e) => return ExpressionOutcome::error(e.to_string()),
    };
    let evaluator = Evaluator {
        ctx,
        points: Cell::new(0),
    };
    match evaluator.eval(&expr) {
        Ok(r) => r,
        Err(f) => match f.partial {
            Some(mut r) => {
                r.error = Some(f.message);
                r
            }
            None => ExpressionOutcome::error(f.message),
        },
    }
}

fn non_empty(s: &Option<String>) -> Option<&str> {
    s.as_deref().filter(|s| !s.is_empty())
}

fn bucket_ids(buckets: &[TimeBucket]) -> Vec<Option<String>> {
    buckets
        .iter()
        .map(|b| b.start_epoch_ms().ok().map(|ms| ms.to_string()))
        .collect()
}

fn step_millis(step: Step) -> i64 {
    match step {
        Step::Second => 1_000,
        Step::Minute => 60_000,
        Step::Hour => 3_600_000,
        Step::Day => 86_400_000,
    }
}

/// Canonical text of a label set, used to order series.
fn label_key(labels: &Labels) -> String {
    labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Splits a selector value on `,`, trimming and dropping empty parts.
fn selector_values(v: &str) -> Vec<&str> {
    v.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect()
}

/// Splits a relabels value list as OAP does: only when a comma appears after index 0.
fn relabel_values(v: &str) -> Vec<&str> {
    if v.is_empty() {
        Vec::new()
    } else if v.find(',').is_some_and(|i| i > 0) {
        v.split(',').collect()
    } else {
        vec![v]
    }
}

fn owner_of(scope: Scope, entity_id: &str) -> (String, Owner) {
    let service = |sid: &ServiceId| {
        let (name, normal) = sid.decode().unwrap_or_default();
        (name, normal)
    };
    match scope {
        Scope::Service => {
            let sid = ServiceId::from_raw(entity_id);
            let (name, normal) = service(&sid);
            let owner = Owner {
                scope: Some(scope),
                service_id: Some(entity_id.to_string()),
                service_name: Some(name.clone()),
                normal: Some(normal),
                ..Default::default()
            };
            (name, owner)
        }
        Scope::ServiceInstance | Scope::Endpoint => {
            let (sid, child) = split_child_id(entity_id)
                .unwrap_or_else(|| (ServiceId::from_raw(""), entity_id.to_string()));
            let (name, normal) = service(&sid);
            let mut owner = Owner {
                scope: Some(scope),
                service_id: Some(sid.into_string()),
                service_name: Some(name),
                normal: Some(normal),
                ..Default::default()
            };
            if scope == Scope::ServiceInstance {
                owner.service_instance_id = Some(entity_id.to_string());
                owner.service_instance_name = Some(child.clone());
            } else {
                owner.endpoint_id = Some(entity_id.to_string());
                owner.endpoint_name = Some(child.clone());
            }
            (child, owner)
        }
        // `<source service id>-<dest service id>`: service ids never contain `-` (Base64 + `.1`).
        // Named by the called service (a mini program's API host), owned by the caller.
        Scope::ServiceRelation => match entity_id.split_once('-') {
            Some((source, dest)) => {
                let (source_name, normal) = service(&ServiceId::from_raw(source));
                let (dest_name, _) = service(&ServiceId::from_raw(dest));
                let owner = Owner {
                    scope: Some(scope),
                    service_id: Some(source.to_string()),
                    service_name: Some(source_name),
                    normal: Some(normal),
                    ..Default::default()
                };
                (dest_name, owner)
            }
            None => (
                entity_id.to_string(),
                Owner {
                    scope: Some(scope),
                    ..Default::default()
                },
            ),
        },
        _ => (
            entity_id.to_string(),
            Owner {
                scope: Some(scope),
                ..Default::default()
            },
        ),
    }
}

fn present(values: &[MqeValue]) -> impl Iterator<Item = (&MqeValue, f64)> {
    values.iter().filter_map(|v| v.value.map(|x| (v, x)))
}

/// Sum starting at +0.0 (`Iterator::sum` starts at -0.0, which would print "-0").
fn total(nums: &[f64]) -> f64 {
    nums.iter().fold(0.0, |a, b| a + b)
}

fn aggregate_values(agg: Aggregation, values: &[MqeValue]) -> MqeValue {
    let nums: Vec<f64> = present(values).map(|(_, x)| x).collect();
    let pick = |better: fn(f64, f64) -> bool| {
        let mut best: Option<(&MqeValue, f64)> = None;
        for (v, x) in present(values) {
            if best.is_none_or(|(_, b)| better(x, b)) {
                best = Some((v, x));
            }
        }
        best.map(|(v, _)| v.clone()).unwrap_or_default()
    };
    match agg {
        Aggregation::Avg => MqeValue {
            value: (!nums.is_empty()).then(|| total(&nums) / nums.len() as f64),
            ..Default::default()
        },
        Aggregation::Sum => MqeValue {
            value: Some(total(&nums)),
            ..Default::default()
        },
        Aggregation::Count => MqeValue {
            value: Some(nums.len() as f64),
            ..Default::default()
        },
        Aggregation::Max => pick(|x, b| x > b),
        Aggregation::Min => pick(|x, b| x < b),
        Aggregation::Latest => present(values)
            .last()
            .map(|(v, _)| v.clone())
            .unwrap_or_default(),
    }
}

fn label_aggregate(func: LabelAggregation, nums: &[f64]) -> Option<f64> {
    if nums.is_empty() {
        return None;
    }
    Some(match func {
        LabelAggregation::Sum => total(nums),
        LabelAggregation::Avg => total(nums) / nums.len() as f64,
        LabelAggregation::Max => nums.iter().copied().fold(f64::MIN, f64::max),
        LabelAggregation::Min => nums.iter().copied().fold(f64::MAX, f64::min),
    })
}

fn apply_binary(op: BinaryOp, a: f64, b: f64) -> f64 {
    let truth = |c: bool| if c { 1.0 } else { 0.0 };
    match op {
        BinaryOp::Add => a + b,
        BinaryOp::Sub => a - b,
        BinaryOp::Mul => a * b,
        BinaryOp::Div => a / b,
        BinaryOp::Mod => a % b,
        BinaryOp::Eq => truth(a == b),
        BinaryOp::Neq => truth(a != b),
        BinaryOp::Lt => truth(a < b),
        BinaryOp::Lte => truth(a <= b),
        BinaryOp::Gt => truth(a > b),
        BinaryOp::Gte => truth(a >= b),
        BinaryOp::And => truth(a != 0.0 && b != 0.0),
        BinaryOp::Or => truth(a != 0.0 || b != 0.0),
    }
}

/// `BigDecimal.valueOf(v).setScale(n, HALF_UP)`, close enough in binary.
fn round_half_up(v: f64, digits: i64) -> f64 {
    let digits = digits.clamp(-300, 300) as i32;
    let m = 10f64.powi(digits);
    (v * m).round() / m
}

fn type_name(t: ResultType) -> &'static str {
    match t {
        ResultType::Unknown => "UNKNOWN",
        ResultType::SingleValue => "SINGLE_VALUE",
        ResultType::TimeSeriesValues => "TIME_SERIES_VALUES",
        ResultType::SortedList => "SORTED_LIST",
        ResultType::RecordList => "RECORD_LIST",
    }
}

impl Evaluator<'_, '_> {
    /// Evaluates `e`. Only this function recurses, once per tree level; the work of each node is
    /// done in [`Evaluator::leaf`] and [`apply_to_operand`] so that this repeated frame stays small.
    fn eval(&self, e: &Expr) -> Eval {
        match e {
            Expr::Paren(inner) => self.eval(inner),
            Expr::Binary {
                op, left, right, ..
            } => {
                let l = self.eval(left)?;
                let r = self.eval(right)?;
                binary(*op, l, r)
            }
            Expr::Aggregation(_, inner)
            | Expr::Math(_, inner)
            | Expr::Round(inner, _)
            | Expr::Relabels(inner, ..)
            | Expr::AggregateLabels(inner, ..)
            | Expr::SortValues(inner, ..)
            | Expr::SortLabelValues(inner, ..) => {
                let r = self.eval(inner)?;
                apply_to_operand(e, inner, r)
            }
            Expr::Logical(func, exprs) => self.logical(*func, exprs),
            _ => self.leaf(e),
        }
    }

    /// The expressions that read storage or give a constant, without sub-expressions.
    fn leaf(&self, e: &Expr) -> Eval {
        match e {
            Expr::Metric(m) => self.metric(m, self.ctx.buckets),
            Expr::Scalar { value, .. } => Ok(ExpressionOutcome::new(
                ResultType::SingleValue,
                vec![MqeSeries {
                    labels: Vec::new(),
                    values: vec![MqeValue {
                        value: Some(*value),
                        ..Default::default()
                    }],
                }],
                false,
            )),
            Expr::Trend(kind, metric, range) => self.trend(*kind, metric, *range),
            Expr::TopN(t) => self.top_n(t),
            Expr::TopNOf(list, n, order) => {
                let mut values = Vec::new();
                for t in list {
                    let r = self.top_n(t)?;
                    values.extend(r.results.into_iter().flat_map(|s| s.values));
                }
                sort_by_value(&mut values, *order);
                values.truncate((*n).max(0) as usize);
                Ok(ExpressionOutcome::new(
                    ResultType::SortedList,
                    vec![MqeSeries {
                        labels: Vec::new(),
                        values,
                    }],
                    false,
                ))
            }
            Expr::Baseline(..) => Err(fail("Unsupported operation: baseline is not supported.")),
            // Nodes with operands never get here: `eval` handles them.
            _ => Err(fail("Unsupported operation.")),
        }
    }

    fn service_id(&self) -> Option<ServiceId> {
        Some(ServiceId::new(
            non_empty(&self.ctx.entity.service_name)?,
            self.ctx.entity.normal?,
        ))
    }

    fn dest_service_id(&self) -> Option<ServiceId> {
        Some(ServiceId::new(
            non_empty(&self.ctx.entity.dest_service_name)?,
            self.ctx.entity.dest_normal?,
        ))
    }

    /// The storage entity id for the metric's scope, `None` if the entity lacks a needed name.
    fn entity_id(&self, scope: Scope) -> Option<String> {
        let e = self.ctx.entity;
        Some(match scope {
            Scope::All => String::new(),
            Scope::Service => self.service_id()?.into_string(),
            Scope::ServiceInstance => {
                InstanceId::new(&self.service_id()?, non_empty(&e.service_instance_name)?)
                    .into_string()
            }
            Scope::Endpoint => {
                EndpointId::new(&self.service_id()?, non_empty(&e.endpoint_name)?).into_string()
            }
            Scope::ServiceRelation => format!("{}-{}", self.service_id()?, self.dest_service_id()?),
            Scope::ServiceInstanceRelation => format!(
                "{}-{}",
                InstanceId::new(&self.service_id()?, non_empty(&e.service_instance_name)?),
                InstanceId::new(
                    &self.dest_service_id()?,
                    non_empty(&e.dest_service_instance_name)?
                )
            ),
            Scope::EndpointRelation => format!(
                "{}-{}",
                EndpointId::new(&self.service_id()?, non_empty(&e.endpoint_name)?),
                EndpointId::new(&self.dest_service_id()?, non_empty(&e.dest_endpoint_name)?)
            ),
            // Process ids are hashes of agent-reported data Skylark does not have.
            Scope::Process | Scope::ProcessRelation => return None,
        })
    }

    /// Counts `points` more metric points against [`MqeLimits::max_points`], before they are read.
    fn charge(&self, points: usize) -> Result<(), Failure> {
        let total = self.points.get().saturating_add(points);
        let max = self.ctx.limits.max_points;
        if total > max {
            return Err(fail(format!(
                "The expression reads more than {max} metric points (entities × time buckets); narrow the duration or the expression."
            )));
        }
        self.points.set(total);
        Ok(())
    }

    fn definition(&self, name: &str) -> Result<MetricDefinition, Failure> {
        self.ctx
            .catalog
            .get(name)
            .ok_or_else(|| fail(format!("Metric: [{name}] does not exist.")))
    }

    fn read(
        &self,
        def: &MetricDefinition,
        entity_id: &str,
        buckets: &[TimeBucket],
    ) -> Result<Vec<Option<MetricValue>>, Failure> {
        self.charge(buckets.len())?;
        self.ctx
            .storage
            .read_metric(def, entity_id, buckets)
            .map_err(|e| {
                tracing::warn!(metric = %def.name, error = %e, "metric read failed");
                fail(IO_ERROR)
            })
    }

    fn metric(&self, m: &MetricRef, buckets: &[TimeBucket]) -> Eval {
        let def = self.definition(&m.name)?;
        let labeled = def.function.is_labeled();
        let Some(entity_id) = self.entity_id(def.scope) else {
            let kind = if labeled {
                ResultType::TimeSeriesValues
            } else {
                ResultType::Unknown
            };
            return Ok(ExpressionOutcome::new(kind, Vec::new(), labeled));
        };
        let rows = self.read(&def, &entity_id, buckets)?;
        let ids = bucket_ids(buckets);
        if !labeled {
            let values = rows
                .iter()
                .zip(ids)
                .map(|(row, id)| MqeValue {
                    id,
                    value: match row {
                        Some(MetricValue::Single(v)) => Some(*v as f64),
                        Some(MetricValue::Labeled(l)) => {
                            Some(l.iter().map(|(_, v)| *v as f64).fold(0.0, |a, b| a + b))
                        }
                        None => None,
                    },
                    ..Default::default()
                })
                .collect();
            return Ok(ExpressionOutcome::new(
                ResultType::TimeSeriesValues,
                vec![MqeSeries {
                    labels: Vec::new(),
                    values,
                }],
                false,
            ));
        }
        // Every label combination seen in the window, with its value per bucket.
        let mut combos: BTreeMap<String, (Labels, Vec<Option<f64>>)> = BTreeMap::new();
        for (i, row) in rows.iter().enumerate() {
            let entries: Vec<(Labels, i64)> = match row {
                Some(MetricValue::Labeled(l)) => l.clone(),
                Some(MetricValue::Single(v)) => vec![(Labels::new(), *v)],
                None => continue,
            };
            for (labels, v) in entries {
                let slot = combos
                    .entry(label_key(&labels))
                    .or_insert_with(|| (labels, vec![None; rows.len()]));
                slot.1[i] = Some(v as f64);
            }
        }
        if let Some(selector) = m.labels.as_ref().filter(|s| !s.is_empty()) {
            let mut by_key: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
            for l in selector {
                by_key
                    .entry(l.name.as_str())
                    .or_default()
                    .extend(selector_values(&l.value));
            }
            combos.retain(|_, (labels, _)| {
                by_key
                    .iter()
                    .all(|(k, allowed)| labels.get(k).is_some_and(|v| allowed.contains(&v)))
            });
        }
        let results = combos
            .into_values()
            .map(|(labels, vals)| MqeSeries {
                labels: labels
                    .iter()
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .collect(),
                values: vals
                    .into_iter()
                    .zip(ids.iter().cloned())
                    .map(|(value, id)| MqeValue {
                        id,
                        value,
                        ..Default::default()
                    })
                    .collect(),
            })
            .collect();
        Ok(ExpressionOutcome::new(
            ResultType::TimeSeriesValues,
            results,
            true,
        ))
    }

    fn trend(&self, kind: Trend, m: &MetricRef, range: i64) -> Eval {
        if range <= 0 {
            return Err(fail("The trend range must be > 0."));
        }
        let max = self.ctx.limits.max_trend_range;
        let steps = usize::try_from(range)
            .ok()
            .filter(|r| *r <= max)
            .ok_or_else(|| fail(format!("The trend range must be <= {max}.")))?;
        let (Some(first), Some(last)) = (self.ctx.buckets.first(), self.ctx.buckets.last()) else {
            return self.metric(m, self.ctx.buckets);
        };
        let step = first.step;
        let out_of_range = || fail("The trend range is out of the time range.");
        let range_ms = range
            .checked_mul(step_millis(step))
            .ok_or_else(out_of_range)?;
        let start = first
            .start_epoch_ms()
            .ok()
            .and_then(|ms| ms.checked_sub(range_ms))
            .and_then(|ms| TimeBucket::from_epoch_ms(ms, step).ok())
            .ok_or_else(out_of_range)?;
        // At most `max_trend_range` buckets more than the window; the read charges them.
        let extended = start.range_to(*last, self.ctx.buckets.len().saturating_add(steps));
        let offset = extended.len().saturating_sub(self.ctx.buckets.len());
        let mut r = self.metric(m, &extended)?;
        if r.kind != ResultType::TimeSeriesValues {
            return Ok(r);
        }
        let seconds = (range_ms / 1000) as f64;
        for s in &mut r.results {
            let old = std::mem::take(&mut s.values);
            s.values = (offset..old.len())
                .map(|i| {
                    let before = i.checked_sub(steps).and_then(|j| old[j].value);
                    let value = match (old[i].value, before) {
                        (Some(now), Some(before)) => {
                            let inc = now - before;
                            Some(match kind {
                                Trend::Increase => inc,
                                Trend::Rate => inc / seconds,
                            })
                        }
                        _ => None,
                    };
                    MqeValue {
                        id: old[i].id.clone(),
                        value,
                        ..Default::default()
                    }
                })
                .collect();
        }
        Ok(r)
    }

    fn logical(&self, func: LogicalFunction, exprs: &[Expr]) -> Eval {
        let has_value = |r: &ExpressionOutcome| {
            r.results
                .iter()
                .any(|s| s.values.iter().any(|v| v.value.is_some()))
        };
        match func {
            LogicalFunction::IsPresent => {
                let mut any = false;
                for e in exprs {
                    any |= has_value(&self.eval(e)?);
                }
                Ok(ExpressionOutcome::new(
                    ResultType::SingleValue,
                    vec![MqeSeries {
                        labels: Vec::new(),
                        values: vec![MqeValue {
                            value: Some(if any { 1.0 } else { 0.0 }),
                            ..Default::default()
                        }],
                    }],
                    false,
                ))
            }
            LogicalFunction::ViewAsSeq => {
                let mut last = ExpressionOutcome::new(ResultType::Unknown, Vec::new(), false);
                for e in exprs {
                    let r = self.eval(e)?;
                    if has_value(&r) {
                        return Ok(r);
                    }
                    last = r;
                }
                Ok(last)
            }
        }
    }

    fn top_n(&self, t: &TopN) -> Eval {
        let def = self.definition(&t.metric.name)?;
        if t.n <= 0 {
            return Err(fail("TopN value must be > 0."));
        }
        if def.function.is_labeled() {
            return Err(fail(format!(
                "Metric: [{}] is labeled value, does not support top_n query.",
                def.name
            )));
        }
        if let Some(a) = t.attributes.first() {
            // OAP's attr0..attr5 are entity attributes its storage keeps beside each metric row;
            // Skylark keeps none, so a filter can only be refused, not silently dropped.
            return Err(fail(format!(
                "Unsupported operation: top_n attribute filter attr{} is not supported, Skylark keeps no entity attributes.",
                a.index
            )));
        }
        let mut entities = self
            .ctx
            .storage
            .metric_entities(&def, self.ctx.buckets)
            .map_err(|e| {
                tracing::warn!(metric = %def.name, error = %e, "metric entity listing failed");
                fail(IO_ERROR)
            })?;
        // With a service given, rank only its own instances, endpoints or outgoing calls.
        let separator = match def.scope {
            Scope::ServiceInstance | Scope::Endpoint => Some('_'),
            Scope::ServiceRelation => Some('-'),
            _ => None,
        };
        if let (Some(separator), Some(name)) = (separator, non_empty(&self.ctx.entity.service_name))
        {
            let prefix = format!(
                "{}{separator}",
                ServiceId::new(name, self.ctx.entity.normal.unwrap_or(true))
            );
            entities.retain(|id| id.starts_with(&prefix));
        }
        // Refused as a whole before the first read rather than part-way through.
        let whole = entities.len().saturating_mul(self.ctx.buckets.len());
        self.charge(whole)?;
        self.points.set(self.points.get() - whole);
        let mut values = Vec::new();
        for id in entities {
            let rows = self.read(&def, &id, self.ctx.buckets)?;
            let nums: Vec<f64> = rows
                .iter()
                .filter_map(|r| match r {
                    Some(MetricValue::Single(v)) => Some(*v as f64),
                    _ => None,
                })
                .collect();
            if nums.is_empty() {
                continue;
            }
            let (name, owner) = owner_of(def.scope, &id);
            values.push(MqeValue {
                id: Some(name),
                value: Some(total(&nums) / nums.len() as f64),
                trace_id: None,
                owner: Some(owner),
            });
        }
        sort_by_value(&mut values, t.order);
        values.truncate(t.n as usize);
        Ok(ExpressionOutcome::new(
            ResultType::SortedList,
            vec![MqeSeries {
                labels: Vec::new(),
                values,
            }],
            false,
        ))
    }
}

/// The function of a one-operand node `e` applied to its operand's result `r`.
fn apply_to_operand(e: &Expr, inner: &Expr, mut r: ExpressionOutcome) -> Eval {
    match e {
        Expr::Aggregation(agg, _) => {
            if *agg == Aggregation::Latest && r.kind != ResultType::TimeSeriesValues {
                return Err(fail("LATEST can only be used in time series result."));
            }
            for s in &mut r.results {
                s.values = vec![aggregate_values(*agg, &s.values)];
            }
            r.kind = ResultType::SingleValue;
            Ok(r)
        }
        Expr::Math(func, _) => {
            map_values(&mut r, |x| match func {
                MathFunction::Abs => x.abs(),
                MathFunction::Ceil => x.ceil(),
                MathFunction::Floor => x.floor(),
                MathFunction::Ln => x.ln(),
                MathFunction::Log2 => x.log2(),
                MathFunction::Log10 => x.log10(),
            });
            Ok(r)
        }
        Expr::Round(_, digits) => {
            map_values(&mut r, |x| round_half_up(x, *digits));
            Ok(r)
        }
        Expr::Relabels(_, src, dst) => relabels(r, inner, src, dst),
        Expr::AggregateLabels(_, func, names) => aggregate_labels(r, inner, *func, names),
        Expr::SortValues(_, limit, order, agg) => {
            let agg = agg.unwrap_or(Aggregation::Avg);
            let mut keyed: Vec<(Option<f64>, MqeSeries)> = r
                .results
                .drain(..)
                .map(|s| (aggregate_values(agg, &s.values).value, s))
                .collect();
            keyed.sort_by(|(a, _), (b, _)| compare_optional(*a, *b, *order));
            keyed.truncate((*limit).max(0) as usize);
            r.results = keyed.into_iter().map(|(_, s)| s).collect();
            Ok(r)
        }
        Expr::SortLabelValues(_, order, names) => {
            let key = |s: &MqeSeries| -> Vec<String> {
                names
                    .iter()
                    .map(|n| {
                        s.labels
                            .iter()
                            .find(|(k, _)| k == n)
                            .map(|(_, v)| v.clone())
                            .unwrap_or_default()
                    })
                    .collect()
            };
            r.results.sort_by(|a, b| {
                let o = key(a).cmp(&key(b));
                if *order == Order::Des {
                    o.reverse()
                } else {
                    o
                }
            });
            Ok(r)
        }
        _ => Ok(r),
    }
}

fn compare_optional(a: Option<f64>, b: Option<f64>, order: Order) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    match (a, b) {
        (Some(a), Some(b)) => {
            let o = a.partial_cmp(&b).unwrap_or(Ordering::Equal);
            if order == Order::Des {
                o.reverse()
            } else {
                o
            }
        }
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    }
}

fn sort_by_value(values: &mut [MqeValue], order: Order) {
    values.sort_by(|a, b| compare_optional(a.value, b.value, order));
}

fn map_values(r: &mut ExpressionOutcome, f: impl Fn(f64) -> f64) {
    for s in &mut r.results {
        for v in &mut s.values {
            v.value = v.value.map(&f);
        }
    }
}

fn not_labeled(inner: &Expr, r: ExpressionOutcome) -> Failure {
    Failure {
        message: format!("The result of expression [{inner}] is not a labeled result."),
        partial: Some(r),
    }
}

fn relabels(mut r: ExpressionOutcome, inner: &Expr, src: &Label, dst: &Label) -> Eval {
    if !r.labeled {
        return Err(not_labeled(inner, r));
    }
    let from = relabel_values(&src.value);
    let to = relabel_values(&dst.value);
    if from.len() != to.len() {
        return Err(Failure {
            message: format!(
                "Target label [{}]: the number of relabel values is not equal to the number of replace label.",
                src.name
            ),
            partial: Some(r),
        });
    }
    for s in &mut r.results {
        for (k, v) in &mut s.labels {
            if *k != src.name {
                continue;
            }
            if let Some(i) = from.iter().position(|f| f == v) {
                *k = dst.name.clone();
                *v = to[i].to_string();
            }
        }
    }
    Ok(r)
}

fn aggregate_labels(
    mut r: ExpressionOutcome,
    inner: &Expr,
    func: LabelAggregation,
    names: &[String],
) -> Eval {
    if !r.labeled {
        return Err(not_labeled(inner, r));
    }
    // (group labels, member series), in order of first appearance.
    let mut groups: Vec<(LabelPairs, Vec<MqeSeries>)> = Vec::new();
    let mut group_of: HashMap<LabelPairs, usize> = HashMap::new();
    for s in r.results.drain(..) {
        let key: Vec<(String, String)> = names
            .iter()
            .filter_map(|n| s.labels.iter().find(|(k, _)| k == n).cloned())
            .collect();
        match group_of.get(&key) {
            Some(i) => groups[*i].1.push(s),
            None => {
                group_of.insert(key.clone(), groups.len());
                groups.push((key, vec![s]));
            }
        }
    }
    r.results = groups
        .into_iter()
        .map(|(labels, members)| {
            let len = members.iter().map(|s| s.values.len()).max().unwrap_or(0);
            let values = (0..len)
                .map(|i| {
                    let nums: Vec<f64> = members
                        .iter()
                        .filter_map(|s| s.values.get(i).and_then(|v| v.value))
                        .collect();
                    MqeValue {
                        id: members
                            .iter()
                            .find_map(|s| s.values.get(i).and_then(|v| v.id.clone())),
                        value: label_aggregate(func, &nums),
                        ..Default::default()
                    }
                })
                .collect();
            MqeSeries { labels, values }
        })
        .collect();
    r.labeled = !names.is_empty();
    Ok(r)
}

fn combine_points(
    op: BinaryOp,
    left: &[MqeValue],
    right: &[MqeValue],
    left_kind: ResultType,
    right_kind: ResultType,
) -> Result<Vec<MqeValue>, Failure> {
    let scalar = |vals: &[MqeValue]| vals.first().and_then(|v| v.value);
    let apply = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) => Some(apply_binary(op, a, b)),
        _ => None,
    };
    use ResultType::*;
    Ok(match (left_kind, right_kind) {
        (SingleValue, SingleValue) => vec![MqeValue {
            value: apply(scalar(left), scalar(right)),
            ..Default::default()
        }],
        (_, SingleValue) => {
            let s = scalar(right);
            left.iter()
                .map(|v| MqeValue {
                    value: apply(v.value, s),
                    ..v.clone()
                })
                .collect()
        }
        (SingleValue, _) => {
            let s = scalar(left);
            right
                .iter()
                .map(|v| MqeValue {
                    value: apply(s, v.value),
                    ..v.clone()
                })
                .collect()
        }
        (TimeSeriesValues, TimeSeriesValues) => {
            if left.len() != right.len() {
                return Err(fail(
                    "Unsupported binary operation: the size of time series values is not equal.",
                ));
            }
            left.iter()
                .zip(right)
                .map(|(a, b)| MqeValue {
                    value: apply(a.value, b.value),
                    ..a.clone()
                })
                .collect()
        }
        (l, r) => {
            return Err(fail(format!(
                "Unsupported binary operation: {} {} {}.",
                type_name(l),
                op.symbol(),
                type_name(r)
            )))
        }
    })
}

fn binary(op: BinaryOp, l: ExpressionOutcome, r: ExpressionOutcome) -> Eval {
    use ResultType::*;
    let is_list = |t: ResultType| matches!(t, SortedList | RecordList);
    if l.kind == Unknown || r.kind == Unknown {
        // An invalid entity read yields an empty UNKNOWN result; keep it empty.
        return Ok(ExpressionOutcome::new(Unknown, Vec::new(), false));
    }
    if (is_list(l.kind) && r.kind != SingleValue) || (is_list(r.kind) && l.kind != SingleValue) {
        return Err(fail(format!(
            "Unsupported operation: {} {} {}.",
            type_name(l.kind),
            op.symbol(),
            type_name(r.kind)
        )));
    }
    let kind = if is_list(l.kind) {
        l.kind
    } else if is_list(r.kind) {
        r.kind
    } else if l.kind == TimeSeriesValues || r.kind == TimeSeriesValues {
        TimeSeriesValues
    } else {
        SingleValue
    };
    let empty = MqeSeries::default();
    let mut results = Vec::new();
    match (l.labeled, r.labeled) {
        (true, true) => {
            // Right series by label set, the first of equal sets winning as a scan would.
            let mut by_labels: HashMap<LabelPairs, &MqeSeries> = HashMap::new();
            for rs in &r.results {
                let mut k = rs.labels.clone();
                k.sort();
                by_labels.entry(k).or_insert(rs);
            }
            for ls in &l.results {
                let mut key = ls.labels.clone();
                key.sort();
                let matched = by_labels.get(&key).copied();
                let values = match matched {
                    Some(rs) => combine_points(op, &ls.values, &rs.values, l.kind, r.kind)?,
                    None => ls
                        .values
                        .iter()
                        .map(|v| MqeValue {
                            value: None,
                            ..v.clone()
                        })
                        .collect(),
                };
                results.push(MqeSeries {
                    labels: ls.labels.clone(),
                    values,
                });
            }
        }
        (true, false) => {
            let rs = r.results.first().unwrap_or(&empty);
            for ls in &l.results {
                results.push(MqeSeries {
                    labels: ls.labels.clone(),
                    values: combine_points(op, &ls.values, &rs.values, l.kind, r.kind)?,
                });
            }
        }
        (false, true) => {
            let ls = l.results.first().unwrap_or(&empty);
            for rs in &r.results {
                results.push(MqeSeries {
                    labels: rs.labels.clone(),
                    values: combine_points(op, &ls.values, &rs.values, l.kind, r.kind)?,
                });
            }
        }
        (false, false) => {
            if let (Some(ls), Some(rs)) = (l.results.first(), r.results.first()) {
                results.push(MqeSeries {
                    labels: Vec::new(),
                    values: combine_points(op, &ls.values, &rs.values, l.kind, r.kind)?,
                });
            }
        }
    }
    Ok(ExpressionOutcome::new(
        kind,
        results,
        l.labeled || r.labeled,
    ))
}
