//! Hour and day rows built once, when their bucket has closed, instead of at every persist.
//!
//! Every persist used to read, combine and rewrite the hour and the day row of each metric and
//! entity it touched, so each minute's data was written three times over and a day row a few
//! thousand times a day, and sled kept the old versions until it cleaned them. Now, while an
//! hour is open, an emission goes to its minute row only, and a query reads the open hour as the
//! combination of its minute rows (an open day as that of its hours). The first persist after
//! an hour has closed (its end plus [`SEAL_GRACE`] behind the clock) builds the hour's rows from
//! its minute rows, once, and stores the watermark with its last batch; a closed day is built
//! from its hour rows the same way. An emission for an hour already closed (late data) adds to
//! the hour row directly, as every emission did before.
//!
//! Building a bucket overwrites its rows with what its finer rows hold, so building it again
//! after a crash cut it short gives the same rows, never double counts.
use crate::keys::{self, NameId};
use crate::rows::{self, RowOp, RowStore};
use crate::Result;
use skylark_core::{MetricFunction, MetricState, Step, TimeBucket};
use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};

/// How long after its end an hour (and a day) still takes emissions into its finer rows only.
/// Any value is correct (later data adds to the built row); this keeps such late writes rare.
pub(crate) const SEAL_GRACE_MS: i64 = 5 * 60_000;

/// The steps whose rows are built from finer ones, with that finer step and how many finer
/// buckets one holds (bucket numbers are wall-clock digits: `hour * 100 + minute`).
const ROLLUPS: [(Step, Step, i64); 2] =
    [(Step::Hour, Step::Minute, 60), (Step::Day, Step::Hour, 24)];

fn index(step: Step) -> Option<usize> {
    ROLLUPS.iter().position(|(s, _, _)| *s == step)
}

/// The minute an emission's bucket counts in: a second's minute, or the first minute of a
/// coarser bucket (emissions are per minute; this keeps every row built from minutes).
pub(crate) fn as_minute(bucket: TimeBucket) -> TimeBucket {
    let value = match bucket.step {
        Step::Second => bucket.value / 100,
        Step::Minute => bucket.value,
        Step::Hour => bucket.value * 100,
        Step::Day => bucket.value * 10_000,
    };
    TimeBucket {
        step: Step::Minute,
        value,
    }
}

/// The `count` buckets of step `finer` that make up `bucket` (bucket numbers are wall-clock
/// digits: `hour * 100 + minute`).
fn finer_buckets(bucket: TimeBucket, finer: Step, count: i64) -> impl Iterator<Item = TimeBucket> {
    (0..count).map(move |n| TimeBucket {
        step: finer,
        value: bucket.value * 100 + n,
    })
}

/// Where building stands, per rollup step, as bucket numbers of that step.
pub(crate) struct Watermarks {
    /// The first bucket still open: emissions for it go to finer rows only. Moved under the
    /// engine's pending lock, so an emission sees one value for the whole aggregation.
    open_from: [AtomicI64; 2],
    /// The first bucket whose rows are not built: reads of earlier buckets use their rows.
    built_before: [AtomicI64; 2],
    /// The latest minute any metric row was written for: later minutes hold no rows, so an
    /// open hour or day is read only up to it (not 60 minutes of every hour still to come).
    latest_minute: AtomicI64,
}

impl Watermarks {
    /// Loads the stored watermarks. A folder without them (new, or written before rollups were
    /// built at close) starts at the buckets holding `now_ms`: every earlier hour and day row is
    /// complete there. The start is stored at once, so hours that close while the server is
    /// down are still built when it comes back.
    pub(crate) fn load(store: &dyn RowStore, now_ms: i64) -> Result<Watermarks> {
        let mut values = [0i64; 2];
        let mut ops: Vec<RowOp> = Vec::new();
        for (i, (step, _, _)) in ROLLUPS.iter().enumerate() {
            let Some(key) = keys::rollup_key(*step) else {
                continue;
            };
            values[i] = match store
                .get(&key)?
                .and_then(|b| <[u8; 8]>::try_from(b.as_slice()).ok())
            {
                Some(bytes) => i64::from_be_bytes(bytes),
                None => {
                    let start = TimeBucket::from_epoch_ms(now_ms, *step)
                        .map_err(|_| crate::Error::InvalidClock(now_ms))?
                        .value;
                    ops.push((key, Some(start.to_be_bytes().to_vec())));
                    start
                }
            };
        }
        if !ops.is_empty() {
            store.apply(ops)?;
        }
        // The last minute row in key order is the latest minute (keys are bucket-major).
        let mut latest_minute = i64::MIN;
        if let Some(start) = keys::metric_step_prefix(Step::Minute) {
            let mut end = start.clone();
            end[1] += 1;
            store.scan_range(&start, &end, true, &mut |key, _| {
                latest_minute = keys::metric_bucket_of(key).unwrap_or(i64::MIN);
                Ok(false)
            })?;
        }
        Ok(Watermarks {
            open_from: values.map(AtomicI64::new),
            built_before: values.map(AtomicI64::new),
            latest_minute: AtomicI64::new(latest_minute),
        })
    }

    /// Notes that a row of minute `minute` is being written. Call before the row is visible.
    pub(crate) fn saw_minute(&self, minute: i64) {
        self.latest_minute.fetch_max(minute, Ordering::Release);
    }

    /// Whether an emission in `minute` also goes to its row of `step` (the bucket has closed);
    /// minute rows always take it. Call under the pending lock.
    pub(crate) fn takes_directly(&self, minute: TimeBucket, step: Step) -> bool {
        match index(step) {
            Some(i) => minute.to_step(step).value < self.open_from[i].load(Ordering::Relaxed),
            None => true,
        }
    }

    /// Closes every hour (and day) that ended [`SEAL_GRACE_MS`] before `now_ms`. Call under the
    /// pending lock, in the step that takes the rows the next build reads.
    pub(crate) fn close_through(&self, now_ms: i64) {
        let Ok(open_hour) = TimeBucket::from_epoch_ms(now_ms - SEAL_GRACE_MS, Step::Hour) else {
            return;
        };
        // A day closes only with its last hour.
        let open = [open_hour.value, open_hour.value / 100];
        for (i, value) in open.into_iter().enumerate() {
            self.open_from[i].fetch_max(value, Ordering::Relaxed);
        }
    }

    /// The buckets whose rows make up `bucket`'s value: itself when built (or a minute), else
    /// its finer buckets, each expanded the same way.
    pub(crate) fn parts(&self, bucket: TimeBucket, out: &mut Vec<TimeBucket>) {
        let Some(i) = index(bucket.step) else {
            out.push(bucket);
            return;
        };
        if bucket.value < self.built_before[i].load(Ordering::Acquire) {
            out.push(bucket);
            return;
        }
        let (_, finer, count) = ROLLUPS[i];
        let latest = self.latest_minute.load(Ordering::Acquire);
        for part in finer_buckets(bucket, finer, count) {
            if as_minute(part).value > latest {
                break;
            }
            self.parts(part, out);
        }
    }

    /// Builds the rows of every closed bucket not built yet, hours first, each bucket's rows
    /// stored with `through` as their mark and the watermark in the bucket's last batch.
    /// The caller holds the flush lock and has stored every row taken before the buckets closed.
    pub(crate) fn build_closed(
        &self,
        store: &dyn RowStore,
        through: u64,
        chunk_rows: usize,
    ) -> Result<usize> {
        let mut built = 0;
        for (i, (step, finer, count)) in ROLLUPS.iter().enumerate() {
            loop {
                let next = self.built_before[i].load(Ordering::Acquire);
                let open = self.open_from[i].load(Ordering::Relaxed);
                // A day is built from hour rows: only once each of its hours is.
                let ready = match step {
                    Step::Day => next < self.built_before[0].load(Ordering::Acquire) / 100,
                    _ => true,
                };
                if next >= open || !ready {
                    break;
                }
                let bucket = TimeBucket {
                    step: *step,
                    value: next,
                };
                let after = bucket.next().value;
                built += build_bucket(store, bucket, *finer, *count, through, chunk_rows, after)?;
                self.built_before[i].store(after, Ordering::Release);
            }
        }
        Ok(built)
    }
}

/// Writes the rows of `bucket` (one per metric and entity), each the combination of its `count`
/// finer rows, in batches of `chunk_rows`; the last batch moves the watermark to `after`.
fn build_bucket(
    store: &dyn RowStore,
    bucket: TimeBucket,
    finer: Step,
    count: i64,
    through: u64,
    chunk_rows: usize,
    after: i64,
) -> Result<usize> {
    let parts: Vec<TimeBucket> = finer_buckets(bucket, finer, count).collect();
    // Metric by metric, so only one metric's entities are held at a time.
    let mut metrics: std::collections::BTreeSet<NameId> = Default::default();
    for part in &parts {
        metrics.extend(metrics_in(store, *part)?);
    }
    let mut ops: Vec<RowOp> = Vec::new();
    let mut rows_built = 0;
    for metric in metrics {
        let mut combined: HashMap<Vec<u8>, (MetricFunction, MetricState)> = HashMap::new();
        for part in &parts {
            let Some(prefix) = keys::metric_prefix(metric, *part) else {
                continue;
            };
            store.scan_prefix(&prefix, &mut |key, value| {
                let row = rows::decode_metric(key, value)?;
                let entity = key.get(prefix.len()..).unwrap_or_default();
                match combined.get_mut(entity) {
                    Some((function, state)) => state.combine(*function, &row.state),
                    None => {
                        combined.insert(entity.to_vec(), (row.function, row.state));
                    }
                }
                Ok(())
            })?;
        }
        let Some(prefix) = keys::metric_prefix(metric, bucket) else {
            continue;
        };
        for (entity, (function, state)) in combined {
            let mut key = prefix.clone();
            key.extend_from_slice(&entity);
            ops.push((key, Some(rows::encode_metric(function, &state, through)?)));
            rows_built += 1;
            if ops.len() >= chunk_rows {
                // Each row is whole on its own (a rebuild overwrites it with the same value).
                store.apply_each_unsynced(std::mem::take(&mut ops))?;
            }
        }
    }
    if let Some(key) = keys::rollup_key(bucket.step) {
        ops.push((key, Some(after.to_be_bytes().to_vec())));
    }
    store.apply(ops)?;
    tracing::debug!(bucket = bucket.value, step = ?bucket.step, rows = rows_built, "rollup rows built");
    Ok(rows_built)
}

/// The metrics with rows in `bucket`, one seek each: after a metric's first row, the scan
/// jumps to the next metric id.
fn metrics_in(store: &dyn RowStore, bucket: TimeBucket) -> Result<Vec<NameId>> {
    let (Some(mut from), Some(end)) = (
        keys::metric_bucket_start(bucket),
        keys::metric_bucket_start(TimeBucket {
            step: bucket.step,
            value: bucket.value + 1,
        }),
    ) else {
        return Ok(Vec::new());
    };
    let mut metrics = Vec::new();
    loop {
        let mut found: Option<NameId> = None;
        store.scan_range(&from, &end, false, &mut |key, _| {
            found = keys::split_metric_key(key).map(|(metric, _)| metric);
            Ok(false)
        })?;
        let Some(metric) = found else {
            return Ok(metrics);
        };
        metrics.push(metric);
        let Some(next) = metric
            .checked_add(1)
            .and_then(|next| keys::metric_prefix(next, bucket))
        else {
            return Ok(metrics);
        };
        from = next;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mem_storage::MemRows;

    #[test]
    fn every_metric_of_a_bucket_is_found_with_a_seek_per_metric() {
        let store = MemRows::default();
        let minute = TimeBucket {
            step: Step::Minute,
            value: 202612061005,
        };
        let mut ops = Vec::new();
        // Ids far apart, and entity ids at both ends of their range.
        for metric in [3, 0, 70_000, u32::MAX] {
            for entity in [0, 5, u32::MAX] {
                let key = keys::metric_key(metric, entity, minute).unwrap();
                ops.push((key, Some(vec![1])));
            }
        }
        // The next minute's rows are not this minute's.
        let next = TimeBucket {
            step: Step::Minute,
            value: 202612061006,
        };
        ops.push((keys::metric_key(9, 1, next).unwrap(), Some(vec![1])));
        store.apply(ops).unwrap();
        assert_eq!(
            metrics_in(&store, minute).unwrap(),
            [0, 3, 70_000, u32::MAX]
        );
    }

    fn watermarks(built_hour: i64, built_day: i64, latest_minute: i64) -> Watermarks {
        Watermarks {
            open_from: [AtomicI64::new(built_hour), AtomicI64::new(built_day)],
            built_before: [AtomicI64::new(built_hour), AtomicI64::new(built_day)],
            latest_minute: AtomicI64::new(latest_minute),
        }
    }

    #[test]
    fn an_open_day_is_read_from_built_hours_and_the_minutes_up_to_the_latest() {
        // Hours before 10 are built; rows exist up to 10:47.
        let marks = watermarks(2026120610, 20261206, 202612061047);
        let mut parts = Vec::new();
        marks.parts(
            TimeBucket {
                step: Step::Day,
                value: 20261206,
            },
            &mut parts,
        );
        assert_eq!(parts.len(), 10 + 48);
        assert_eq!(
            parts[9],
            TimeBucket {
                step: Step::Hour,
                value: 2026120609
            }
        );
        assert_eq!(
            parts[10],
            TimeBucket {
                step: Step::Minute,
                value: 202612061000
            }
        );
        assert_eq!(
            parts.last(),
            Some(&TimeBucket {
                step: Step::Minute,
                value: 202612061047
            })
        );
        // A row for a later minute widens what is read.
        marks.saw_minute(202612061105);
        parts.clear();
        marks.parts(
            TimeBucket {
                step: Step::Hour,
                value: 2026120611,
            },
            &mut parts,
        );
        assert_eq!(parts.len(), 6);
    }

    #[test]
    fn the_latest_minute_is_found_in_the_stored_rows() {
        let store = MemRows::default();
        let key = |value| {
            let minute = TimeBucket {
                step: Step::Minute,
                value,
            };
            keys::metric_key(1, 2, minute).unwrap()
        };
        store
            .apply(vec![
                (key(202612061005), Some(vec![1])),
                (key(202612061130), Some(vec![1])),
            ])
            .unwrap();
        let marks = Watermarks::load(&store, 0).unwrap();
        assert_eq!(marks.latest_minute.load(Ordering::Relaxed), 202612061130);
    }
}
