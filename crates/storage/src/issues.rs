//! Error issues and source maps.
//!
//! An issue row is read, folded with each occurrence and written back in one batch together with
//! the occurrence's event row, its minute counter and (from the write-ahead log) the issues mark,
//! so a replay never counts an occurrence twice. Events are kept in a ring of
//! [`ISSUE_EVENTS_KEPT`] slots per issue (the latest occurrences); minute counters feed trends.
//! Issue and event rows are binary (postcard behind a tag byte, as log rows), about half their
//! JSON size and cheaper to fold on the ingest path; JSON rows written before still read. The
//! sled backend holds the issue rows of such batches in memory until the next persist
//! (`runs`), so a busy issue is stored once per persist, not once per batch.
use crate::applied::MarkKind;
use crate::model::{IssueOrder, IssueQuery, SourceMapRecord};
use crate::rows::{self, RowOp, RowStore};
use crate::Result;
use skylark_core::{Issue, IssueOccurrence};
use std::cmp::Reverse;
use std::collections::BTreeMap;

/// Issue rows: `I | issue id`.
pub(crate) const ISSUE: u8 = b'I';
/// Latest occurrences: `E | issue id | 0 | slot(4, BE)`.
pub(crate) const ISSUE_EVENT: u8 = b'E';
/// Occurrences per minute: `N | issue id | 0 | minute start(8, BE)`, value a count (8, BE).
pub(crate) const ISSUE_MINUTE: u8 = b'N';
/// Source maps: `M | service | 0 | version | 0 | file`, value the map as uploaded.
const SOURCE_MAP: u8 = b'M';
/// What is known about each map, same tail as [`SOURCE_MAP`]: `P | ...`, JSON.
const SOURCE_MAP_META: u8 = b'P';

/// Occurrences kept per issue (the latest ones).
pub const ISSUE_EVENTS_KEPT: u64 = 100;

/// Folds one occurrence into an issue (`None`: the first occurrence).
pub type IssueFold = dyn Fn(Option<Issue>, &IssueOccurrence) -> Issue + Send + Sync;

fn issue_key(id: &str) -> Vec<u8> {
    let mut key = vec![ISSUE];
    key.extend_from_slice(id.as_bytes());
    key
}

fn child_key(kind: u8, id: &str, tail: &[u8]) -> Vec<u8> {
    let mut key = vec![kind];
    key.extend_from_slice(id.as_bytes());
    key.push(0);
    key.extend_from_slice(tail);
    key
}

fn map_key(kind: u8, service: &str, version: &str, file: &str) -> Vec<u8> {
    let mut key = vec![kind];
    for (i, part) in [service, version, file].into_iter().enumerate() {
        if i > 0 {
            key.push(0);
        }
        key.extend_from_slice(part.as_bytes());
    }
    key
}

pub(crate) fn get_issue(store: &dyn RowStore, id: &str) -> Result<Option<Issue>> {
    let key = issue_key(id);
    match store.get(&key)? {
        Some(bytes) => Ok(Some(rows::decode_record(&key, &bytes)?)),
        None => Ok(None),
    }
}

/// Folds `occurrences` into their issues and stores everything in one batch (with the issues
/// mark when `seq` is given). The caller serialises calls.
pub(crate) fn record_occurrences(
    store: &dyn RowStore,
    seq: Option<u64>,
    occurrences: Vec<IssueOccurrence>,
    fold: &IssueFold,
) -> Result<()> {
    let mut issues: BTreeMap<String, Option<Issue>> = BTreeMap::new();
    let mut minutes: BTreeMap<Vec<u8>, u64> = BTreeMap::new();
    let mut ops: Vec<RowOp> = Vec::new();
    // Every issue and minute counter this batch reads, in one round trip.
    let mut wanted = Vec::new();
    for o in &occurrences {
        let minute = o.time_ms - o.time_ms.rem_euclid(60_000);
        wanted.push(issue_key(&o.fingerprint));
        wanted.push(child_key(
            ISSUE_MINUTE,
            &o.fingerprint,
            &minute.to_be_bytes(),
        ));
    }
    let pre = rows::Prefetch::new(store, wanted)?;
    for occurrence in occurrences {
        let id = occurrence.fingerprint.clone();
        if !issues.contains_key(&id) {
            let key = issue_key(&id);
            let issue: Option<Issue> = match pre.get(&key)? {
                Some(bytes) => Some(rows::decode_record(&key, &bytes)?),
                None => None,
            };
            issues.insert(id.clone(), issue);
        }
        let current = issues.get_mut(&id).and_then(Option::take);
        let issue = fold(current, &occurrence);
        let slot = (issue.count.saturating_sub(1) % ISSUE_EVENTS_KEPT) as u32;
        let minute = occurrence.time_ms - occurrence.time_ms.rem_euclid(60_000);
        let minute_key = child_key(ISSUE_MINUTE, &id, &minute.to_be_bytes());
        let count = match minutes.get(&minute_key) {
            Some(count) => *count,
            None => pre
                .get(&minute_key)?
                .and_then(|b| <[u8; 8]>::try_from(b.as_slice()).ok())
                .map(u64::from_be_bytes)
                .unwrap_or(0),
        };
        minutes.insert(minute_key, count + 1);
        ops.push((
            child_key(ISSUE_EVENT, &id, &slot.to_be_bytes()),
            Some(rows::encode_record(&occurrence)?),
        ));
        issues.insert(id, Some(issue));
    }
    for (id, issue) in issues {
        if let Some(issue) = issue {
            ops.push((issue_key(&id), Some(rows::encode_record(&issue)?)));
        }
    }
    for (key, count) in minutes {
        ops.push((key, Some(count.to_be_bytes().to_vec())));
    }
    if let Some(seq) = seq {
        ops.push(MarkKind::Issues.op(seq));
    }
    rows::apply_records(store, ops, seq.is_some())
}

/// Replaces issue `id` with `change(issue)`; `None` when there is no such issue. The caller
/// serialises calls with [`record_occurrences`].
pub(crate) fn update_issue(
    store: &dyn RowStore,
    id: &str,
    change: &mut dyn FnMut(Issue) -> Issue,
) -> Result<Option<Issue>> {
    let Some(issue) = get_issue(store, id)? else {
        return Ok(None);
    };
    let issue = change(issue);
    store.apply(vec![(issue_key(id), Some(rows::encode_record(&issue)?))])?;
    Ok(Some(issue))
}

fn matches(q: &IssueQuery, issue: &Issue) -> bool {
    if q.service.as_deref().is_some_and(|s| s != issue.service) {
        return false;
    }
    if q.status.is_some_and(|s| s != issue.status) {
        return false;
    }
    if let Some(version) = q.version.as_deref() {
        if !issue.versions.iter().any(|v| v.version == version) {
            return false;
        }
    }
    if let Some(keyword) = q.keyword.as_deref().filter(|k| !k.is_empty()) {
        let keyword = keyword.to_lowercase();
        if !issue.title.to_lowercase().contains(&keyword)
            && !issue.culprit.to_lowercase().contains(&keyword)
        {
            return false;
        }
    }
    issue.last_seen_ms >= q.start_ms && issue.first_seen_ms <= q.end_ms
}

/// Issues matching `q`, sorted and paged, and how many matched in all.
pub(crate) fn query_issues(store: &dyn RowStore, q: &IssueQuery) -> Result<(Vec<Issue>, usize)> {
    let mut found = Vec::new();
    store.scan_prefix(&[ISSUE], &mut |key, value| {
        let issue: Issue = rows::decode_record(key, value)?;
        if matches(q, &issue) {
            found.push(issue);
        }
        Ok(())
    })?;
    match q.order {
        IssueOrder::LastSeen => found.sort_by_key(|i| Reverse(i.last_seen_ms)),
        IssueOrder::FirstSeen => found.sort_by_key(|i| Reverse(i.first_seen_ms)),
        IssueOrder::Count => found.sort_by_key(|i| Reverse(i.count)),
    }
    let total = found.len();
    let page = found.into_iter().skip(q.offset).take(q.limit).collect();
    Ok((page, total))
}

/// The kept occurrences of issue `id`, latest first, paged.
pub(crate) fn issue_events(
    store: &dyn RowStore,
    id: &str,
    offset: usize,
    limit: usize,
) -> Result<Vec<IssueOccurrence>> {
    let mut events: Vec<IssueOccurrence> = Vec::new();
    store.scan_prefix(&child_key(ISSUE_EVENT, id, &[]), &mut |key, value| {
        events.push(rows::decode_record(key, value)?);
        Ok(())
    })?;
    events.sort_by_key(|e| Reverse(e.time_ms));
    Ok(events.into_iter().skip(offset).take(limit).collect())
}

/// `(minute start, occurrences)` of issue `id` in `[start_ms, end_ms]`, minutes without any left
/// out.
pub(crate) fn issue_minutes(
    store: &dyn RowStore,
    id: &str,
    start_ms: i64,
    end_ms: i64,
) -> Result<Vec<(i64, u64)>> {
    let start = start_ms - start_ms.rem_euclid(60_000);
    let from = child_key(ISSUE_MINUTE, id, &start.max(0).to_be_bytes());
    let to = child_key(
        ISSUE_MINUTE,
        id,
        &end_ms.saturating_add(1).max(0).to_be_bytes(),
    );
    let mut out = Vec::new();
    store.scan_range(&from, &to, false, &mut |key, value| {
        let minute = key
            .len()
            .checked_sub(8)
            .and_then(|i| <[u8; 8]>::try_from(&key[i..]).ok())
            .map(i64::from_be_bytes);
        let count = <[u8; 8]>::try_from(value).ok().map(u64::from_be_bytes);
        if let (Some(minute), Some(count)) = (minute, count) {
            out.push((minute, count));
        }
        Ok(true)
    })?;
    Ok(out)
}

pub(crate) fn put_source_map(
    store: &dyn RowStore,
    record: &SourceMapRecord,
    map: &[u8],
) -> Result<()> {
    let (s, v, f) = (&record.service, &record.version, &record.file);
    store.apply(vec![
        (map_key(SOURCE_MAP, s, v, f), Some(map.to_vec())),
        (
            map_key(SOURCE_MAP_META, s, v, f),
            Some(rows::encode(record)?),
        ),
    ])
}

pub(crate) fn source_map(
    store: &dyn RowStore,
    service: &str,
    version: &str,
    file: &str,
) -> Result<Option<Vec<u8>>> {
    store.get(&map_key(SOURCE_MAP, service, version, file))
}

/// Stored maps (of `service` when given), newest upload first.
pub(crate) fn list_source_maps(
    store: &dyn RowStore,
    service: Option<&str>,
) -> Result<Vec<SourceMapRecord>> {
    let prefix = match service {
        Some(service) => {
            let mut p = vec![SOURCE_MAP_META];
            p.extend_from_slice(service.as_bytes());
            p.push(0);
            p
        }
        None => vec![SOURCE_MAP_META],
    };
    let mut out: Vec<SourceMapRecord> = Vec::new();
    store.scan_prefix(&prefix, &mut |key, value| {
        out.push(rows::decode(key, value)?);
        Ok(())
    })?;
    out.sort_by_key(|m| Reverse(m.uploaded_ms));
    Ok(out)
}

/// Removes a map; whether there was one.
pub(crate) fn delete_source_map(
    store: &dyn RowStore,
    service: &str,
    version: &str,
    file: &str,
) -> Result<bool> {
    let meta = map_key(SOURCE_MAP_META, service, version, file);
    if store.get(&meta)?.is_none() {
        return Ok(false);
    }
    store.apply(vec![
        (map_key(SOURCE_MAP, service, version, file), None),
        (meta, None),
    ])?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mem_storage::MemRows;
    use skylark_core::Layer;

    fn occurrence(time_ms: i64, message: &str) -> IssueOccurrence {
        IssueOccurrence {
            fingerprint: "f1".into(),
            service: "shop".into(),
            layer: Layer::WECHAT_MINI_PROGRAM,
            kind: "js".into(),
            error_type: "TypeError".into(),
            title: "TypeError: boom".into(),
            culprit: String::new(),
            time_ms,
            version: "1.0.0".into(),
            page: "pages/a".into(),
            message: message.into(),
            stack: "at onLoad (pages/a.js:1:2)".into(),
            session_id: None,
            user_id: Some("u1".into()),
            trace_id: None,
        }
    }

    fn count(issue: Option<Issue>, o: &IssueOccurrence) -> Issue {
        let mut issue = issue.unwrap_or_else(|| Issue::new(o));
        issue.count += 1;
        issue.last_seen_ms = o.time_ms;
        issue
    }

    #[test]
    fn json_issue_rows_from_before_fold_on_and_new_rows_are_binary() {
        let store = MemRows::default();
        // As written before: JSON issue and event rows.
        let first = occurrence(60_000, "first");
        let issue = count(None, &first);
        store
            .apply(vec![
                (issue_key("f1"), Some(rows::encode(&issue).unwrap())),
                (
                    child_key(ISSUE_EVENT, "f1", &0u32.to_be_bytes()),
                    Some(rows::encode(&first).unwrap()),
                ),
            ])
            .unwrap();
        let second = occurrence(120_000, "second");
        record_occurrences(&store, Some(7), vec![second.clone()], &count).unwrap();

        let stored = get_issue(&store, "f1").unwrap().unwrap();
        assert_eq!((stored.count, stored.last_seen_ms), (2, 120_000));
        assert_eq!(
            issue_events(&store, "f1", 0, 10).unwrap(),
            vec![second.clone(), first]
        );
        let rows = store.rows.read();
        let new_event = &rows[&child_key(ISSUE_EVENT, "f1", &1u32.to_be_bytes())];
        assert!(rows::is_binary_record(new_event));
        assert!(rows::is_binary_record(&rows[&issue_key("f1")]));
        let json = rows::encode(&second).unwrap();
        assert!(
            new_event.len() < json.len(),
            "{} >= {}",
            new_event.len(),
            json.len()
        );
    }
}
