//! Alarm records (what fired, and when it recovered) and the alarm evaluator's per-entity state.
use crate::keys::{self, ALARM, ALARM_STATE, TAG};
use crate::model::{AlarmQuery, AlarmRecord};
use crate::rows::{self, RowOp, RowStore};
use crate::Result;
use std::collections::BTreeSet;

/// Alarm tags longer than this (`key=value`) are not offered for autocomplete.
const MAX_INDEXED_TAG_CHARS: usize = 256;

/// Stores each record under its start time and uuid; a record with the same start time and
/// uuid (its recovery) replaces the stored one.
pub(crate) fn write_alarm_records(store: &dyn RowStore, records: Vec<AlarmRecord>) -> Result<()> {
    if records.is_empty() {
        return Ok(());
    }
    let mut ops: Vec<RowOp> = Vec::with_capacity(records.len() * 2);
    let mut tags: BTreeSet<Vec<u8>> = BTreeSet::new();
    for record in records {
        let day = keys::day_of(record.start_time_ms);
        for (k, v) in &record.tags {
            if k.len() + v.len() < MAX_INDEXED_TAG_CHARS {
                tags.extend(keys::tag_key(ALARM, day, k, v));
            }
        }
        let key = keys::record_key(
            ALARM,
            &keys::record_tail(record.start_time_ms, record.uuid.as_bytes()),
        );
        ops.push((key, Some(rows::encode(&record)?)));
    }
    ops.extend(tags.into_iter().map(|k| (k, Some(Vec::new()))));
    store.apply(ops)
}

fn matches(q: &AlarmQuery, r: &AlarmRecord) -> bool {
    if q.scope.is_some_and(|s| s != r.scope) {
        return false;
    }
    if let Some(word) = q.keyword.as_deref().filter(|w| !w.is_empty()) {
        if !r.message.contains(word) {
            return false;
        }
    }
    for (key, value) in &q.tags {
        let found = r.tags.iter().any(|(k, v)| {
            k.trim() == key.trim() && value.as_deref().is_none_or(|want| v.trim() == want.trim())
        });
        if !found {
            return false;
        }
    }
    if !q.entities.is_empty()
        && !q.entities.iter().any(|e| match &e.id1 {
            // A relation: source and destination in order.
            Some(dest) => r.id0 == e.id0 && &r.id1 == dest,
            // Anything else: the entity on either side.
            None => r.id0 == e.id0 || r.id1 == e.id0,
        })
    {
        return false;
    }
    if !q.rule_names.is_empty() && !q.rule_names.contains(&r.rule_name) {
        return false;
    }
    if let Some(layer) = q.layer.as_deref().filter(|l| !l.is_empty()) {
        if r.layers.first().map(String::as_str) != Some(layer) {
            return false;
        }
    }
    true
}

/// Records started in the query window that pass every filter, newest first, paged.
pub(crate) fn query_alarms(store: &dyn RowStore, q: &AlarmQuery) -> Result<Vec<AlarmRecord>> {
    let (start, end) = keys::record_range(ALARM, q.start_ms, q.end_ms);
    let mut out = Vec::new();
    let mut skipped = 0usize;
    store.scan_range(&start, &end, true, &mut |key, value| {
        let record: AlarmRecord = rows::decode(key, value)?;
        if !matches(q, &record) {
            return Ok(true);
        }
        if skipped < q.offset {
            skipped += 1;
            return Ok(true);
        }
        out.push(record);
        Ok(out.len() < q.limit)
    })?;
    Ok(out)
}

/// Replaces (`Some`) or removes (`None`) the state of each `(rule, entity key)`, in one batch.
pub(crate) fn put_alarm_states(
    store: &dyn RowStore,
    states: Vec<(String, String, Option<String>)>,
) -> Result<()> {
    if states.is_empty() {
        return Ok(());
    }
    let ops = states
        .into_iter()
        .map(|(rule, entity, state)| (state_key(&rule, &entity), state.map(String::into_bytes)))
        .collect();
    store.apply(ops)
}

/// Every stored `(rule, entity key, state)`.
pub(crate) fn alarm_states(store: &dyn RowStore) -> Result<Vec<(String, String, String)>> {
    let mut out = Vec::new();
    store.scan_prefix(&[ALARM_STATE], &mut |key, value| {
        let rest = key.get(1..).unwrap_or_default();
        if let Some(split) = rest.iter().position(|b| *b == 0) {
            out.push((
                String::from_utf8_lossy(&rest[..split]).into_owned(),
                String::from_utf8_lossy(&rest[split + 1..]).into_owned(),
                String::from_utf8_lossy(value).into_owned(),
            ));
        }
        Ok(())
    })?;
    Ok(out)
}

fn state_key(rule: &str, entity: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(2 + rule.len() + entity.len());
    key.push(ALARM_STATE);
    // Rule names are YAML keys ending in `_rule`; a NUL cannot be typed into one.
    key.extend_from_slice(rule.replace('\0', "").as_bytes());
    key.push(0);
    key.extend_from_slice(entity.as_bytes());
    key
}

/// Deletes alarm records started before `cutoff_ms` and their autocomplete rows; returns how
/// many records went.
pub(crate) fn remove_expired_alarms(store: &dyn RowStore, cutoff_ms: i64) -> Result<u64> {
    let (start, end) = keys::record_range(ALARM, None, cutoff_ms.checked_sub(1));
    let mut ops = store
        .keys_in_range(&start, &end)?
        .into_iter()
        .map(|k| (k, None))
        .collect::<Vec<RowOp>>();
    let removed = ops.len() as u64;
    let tags_end = keys::tag_day_start(ALARM, keys::day_of(cutoff_ms));
    let tags_start = vec![TAG, ALARM];
    ops.extend(
        store
            .keys_in_range(&tags_start, &tags_end)?
            .into_iter()
            .map(|k| (k, None)),
    );
    if !ops.is_empty() {
        store.apply(ops)?;
    }
    Ok(removed)
}
