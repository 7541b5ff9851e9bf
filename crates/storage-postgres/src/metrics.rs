//! Metric rows: aggregated in memory per node between flushes, then upserted as mergeable
//! partial aggregates, one row per table entry ("cell"), merged with `op`.
use crate::error::{Error, Result};
use skylark_core::{
    Labels, MetricDefinition, MetricEmission, MetricFunction, MetricState, MetricValue, Step,
    TimeBucket,
};
use std::collections::{BTreeMap, HashMap};

/// The steps metric rows are kept at, finest first.
pub(crate) const METRIC_STEPS: [Step; 3] = [Step::Minute, Step::Hour, Step::Day];

pub(crate) fn step_code(step: Step) -> i16 {
    match step {
        Step::Second => 0,
        Step::Minute => 1,
        Step::Hour => 2,
        Step::Day => 3,
    }
}

/// Identifies one metric row.
#[derive(Clone, PartialEq, Eq, Hash)]
pub(crate) struct RowKey {
    pub(crate) metric: String,
    pub(crate) entity: String,
    pub(crate) step: Step,
    pub(crate) bucket: i64,
}

#[derive(Clone)]
pub(crate) struct PendingRow {
    pub(crate) function: MetricFunction,
    pub(crate) state: MetricState,
}

pub(crate) type Rows = HashMap<RowKey, PendingRow>;

/// Adds emissions to `rows` at minute, hour and day, as the sled engine does.
pub(crate) fn aggregate(rows: &mut Rows, emissions: Vec<MetricEmission>) {
    for emission in emissions {
        let function = emission.metric.function;
        let state = MetricState::from_emission(function, &emission.value);
        let entity = emission.entity.id();
        let base = if emission.minute.step == Step::Second {
            emission.minute.to_step(Step::Minute)
        } else {
            emission.minute
        };
        for step in METRIC_STEPS.into_iter().filter(|s| *s >= base.step) {
            let key = RowKey {
                metric: emission.metric.name.clone(),
                entity: entity.clone(),
                step,
                bucket: base.to_step(step).value,
            };
            merge(rows, key, function, &state);
        }
    }
}

pub(crate) fn merge(rows: &mut Rows, key: RowKey, function: MetricFunction, state: &MetricState) {
    match rows.get_mut(&key) {
        Some(row) => row.state.combine(function, state),
        None => {
            rows.insert(
                key,
                PendingRow {
                    function,
                    state: state.clone(),
                },
            );
        }
    }
}

/// How a stored cell absorbs another node's partial.
fn op_of(function: MetricFunction) -> i16 {
    use MetricFunction as F;
    match function {
        F::Latest | F::LatestLabeled => 1,
        F::Max | F::MaxLabeled => 2,
        F::Min | F::MinLabeled => 3,
        _ => 0,
    }
}

/// One stored cell: `(cell, shape, op, s, c)`.
pub(crate) type Cell = (String, i16, i16, i64, i64);

fn labels_text(labels: &Labels) -> Result<String> {
    serde_json::to_string(labels).map_err(Error::codec("metric_cells"))
}

/// The cells of a state.
pub(crate) fn cells(function: MetricFunction, state: &MetricState) -> Result<Vec<Cell>> {
    let op = op_of(function);
    Ok(match state {
        MetricState::Avg { summation, count } => vec![(String::new(), 0, op, *summation, *count)],
        MetricState::Sum(v) => vec![(String::new(), 1, op, *v, 0)],
        MetricState::Latest(v) => vec![(String::new(), 2, op, *v, 0)],
        MetricState::Max(v) => vec![(String::new(), 3, op, *v, 0)],
        MetricState::Min(v) => vec![(String::new(), 4, op, *v, 0)],
        MetricState::AvgTable(t) => {
            let mut out = Vec::with_capacity(t.len());
            for (labels, (s, c)) in t {
                out.push((labels_text(labels)?, 5, op, *s, *c));
            }
            out
        }
        MetricState::Table(t) => {
            let mut out = Vec::with_capacity(t.len());
            for (labels, v) in t {
                out.push((labels_text(labels)?, 6, op, *v, 0));
            }
            out
        }
    })
}

/// A cell as read back: `(cell, shape, s, c)`.
pub(crate) type StoredCell = (String, i16, i64, i64);

/// Rebuilds a state from its stored cells (all of one row).
pub(crate) fn state_of(cells: &[StoredCell]) -> Result<Option<MetricState>> {
    let Some((_, shape, s, c)) = cells.first() else {
        return Ok(None);
    };
    let labels = |text: &str| -> Result<Labels> {
        serde_json::from_str(text).map_err(Error::codec("metric_cells"))
    };
    Ok(Some(match shape {
        0 => MetricState::Avg {
            summation: *s,
            count: *c,
        },
        1 => MetricState::Sum(*s),
        2 => MetricState::Latest(*s),
        3 => MetricState::Max(*s),
        4 => MetricState::Min(*s),
        5 => {
            let mut t = BTreeMap::new();
            for (cell, _, s, c) in cells {
                t.insert(labels(cell)?, (*s, *c));
            }
            MetricState::AvgTable(t)
        }
        _ => {
            let mut t = BTreeMap::new();
            for (cell, _, s, _) in cells {
                t.insert(labels(cell)?, *s);
            }
            MetricState::Table(t)
        }
    }))
}

/// The value of `stored` combined with this node's not-yet-stored rows.
pub(crate) fn value_of(
    metric: &MetricDefinition,
    bucket: TimeBucket,
    stored: Option<MetricState>,
    newer: &[Option<PendingRow>],
) -> Option<MetricValue> {
    let mut state = stored;
    for row in newer.iter().flatten() {
        match &mut state {
            Some(s) => s.combine(row.function, &row.state),
            None => state = Some(row.state.clone()),
        }
    }
    state.map(|s| s.value(metric.function, &metric.percentile_ranks, bucket.step))
}
