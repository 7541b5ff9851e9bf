//! RUM event records. Each event is one row under its time and id (a view's id and start are
//! the same in every version, so a newer version replaces the row in place), with index rows by
//! service, session, view, user, anonymous id and trace (low 64 bits).
use crate::keys::{self, RUM, RUM_INDEX, RUM_SESSION, RUM_SESSION_BY_START};
use crate::model::{RumPage, RumQuery, SessionPage, SessionQuery};
use crate::rows::{self, RowOp, RowStore};
use crate::Result;
use skylark_core::{RumEvent, RumEventType, RumSession};
use std::collections::{HashMap, HashSet};

/// Deletions applied per batch while expiring.
const EXPIRY_BATCH_OPS: usize = 10_000;

/// Session index keys read per scan.
const SESSION_SCAN_CHUNK: usize = 512;

/// Matches counted beyond the page at most, so `total` of a huge window stays cheap; the
/// answer's total is then a lower bound.
pub const RUM_TOTAL_MAX: u64 = 10_000;

/// Index kinds (second key byte).
const BY_SERVICE: u8 = b's';
const BY_SESSION: u8 = b'e';
const BY_VIEW: u8 = b'v';
const BY_USER: u8 = b'u';
const BY_ANONYMOUS: u8 = b'a';
const BY_TRACE: u8 = b't';

/// The part of a trace id indexed and matched: its low 64 bits (16 hex digits), because a
/// backend may have continued a Datadog 64-bit trace with a full 128-bit id.
fn trace_key(trace_id: &str) -> Option<String> {
    skylark_core::rum::normalize_trace_id(trace_id).map(|hex| hex[16..].to_owned())
}

fn index_prefix(kind: u8, value: &str) -> Option<Vec<u8>> {
    let len = u16::try_from(value.len()).ok()?;
    let mut key = Vec::with_capacity(4 + value.len());
    key.extend_from_slice(&[RUM_INDEX, kind]);
    key.extend_from_slice(&len.to_be_bytes());
    key.extend_from_slice(value.as_bytes());
    Some(key)
}

fn index_key(kind: u8, value: &str, tail: &[u8]) -> Option<Vec<u8>> {
    let mut key = index_prefix(kind, value)?;
    key.extend_from_slice(tail);
    Some(key)
}

/// Every index row of `event`, under `tail` (its record key without the kind byte).
fn index_keys(event: &RumEvent, tail: &[u8]) -> Vec<Vec<u8>> {
    let trace = trace_key(&event.trace_id);
    let entries = [
        (BY_SERVICE, Some(event.service.as_str())),
        (BY_SESSION, Some(event.session_id.as_str())),
        (BY_VIEW, Some(event.view.id.as_str())),
        (BY_USER, Some(event.user.id.as_str())),
        (BY_ANONYMOUS, Some(event.user.anonymous_id.as_str())),
        (BY_TRACE, trace.as_deref()),
    ];
    entries
        .into_iter()
        .filter_map(|(kind, value)| {
            let value = value.filter(|v| !v.is_empty())?;
            index_key(kind, value, tail)
        })
        .collect()
}

fn tail_of(event: &RumEvent) -> Vec<u8> {
    keys::record_tail(event.time_ms, event.id.as_bytes())
}

/// Stores `events` in one batch (with `mark`). A view replaces its stored row only when its
/// `document_version` is higher; any other event with the same time and id replaces its row.
/// Each event's session summary is updated in the same batch; an event whose row was already
/// stored (a re-sent view, a replayed batch) moves the session's times but counts nothing again,
/// so the summaries stay exact under write-ahead-log replay. The caller serialises writes.
pub(crate) fn write_rum_events(
    store: &dyn RowStore,
    events: Vec<RumEvent>,
    mark: Option<RowOp>,
) -> Result<()> {
    if events.is_empty() && mark.is_none() {
        return Ok(());
    }
    let mut ops: Vec<RowOp> = Vec::with_capacity(events.len() * 6);
    // Sessions touched by this batch, loaded once, with their start as stored.
    let mut sessions: HashMap<String, (Option<i64>, RumSession)> = HashMap::new();
    let mut written: HashSet<Vec<u8>> = HashSet::new();
    // Every row this batch reads, in one round trip.
    let mut wanted = Vec::new();
    for event in &events {
        if event.kind() == RumEventType::View || !event.session_id.is_empty() {
            wanted.push(keys::record_key(RUM, &tail_of(event)));
        }
        if !event.session_id.is_empty() {
            wanted.push(session_key(&event.session_id));
        }
    }
    let pre = rows::Prefetch::new(store, wanted)?;
    for event in events {
        let tail = tail_of(&event);
        let key = keys::record_key(RUM, &tail);
        // Only views and events of a session need to know whether they are stored already.
        let needs_stored = event.kind() == RumEventType::View || !event.session_id.is_empty();
        let stored = if written.contains(&key) || !needs_stored {
            None
        } else {
            pre.get(&key)?
        };
        let first_time = stored.is_none() && !written.contains(&key);
        if !event.session_id.is_empty() {
            let entry = match sessions.get_mut(&event.session_id) {
                Some(entry) => entry,
                None => {
                    let key = session_key(&event.session_id);
                    let loaded: Option<RumSession> = match pre.get(&key)? {
                        Some(bytes) => Some(rows::decode(&key, &bytes)?),
                        None => None,
                    };
                    let start = loaded.as_ref().map(|s| s.start_ms);
                    let session = loaded.unwrap_or_else(|| RumSession::new(&event));
                    sessions
                        .entry(event.session_id.clone())
                        .or_insert((start, session))
                }
            };
            entry.1.add(&event, first_time);
        }
        if event.kind() == RumEventType::View {
            if let Some(bytes) = &stored {
                let stored: RumEvent = rows::decode(&key, bytes)?;
                if stored.document_version.unwrap_or(0) >= event.document_version.unwrap_or(0) {
                    continue;
                }
            }
        }
        ops.extend(
            index_keys(&event, &tail)
                .into_iter()
                .map(|k| (k, Some(Vec::new()))),
        );
        written.insert(key.clone());
        ops.push((key, Some(rows::encode(&event)?)));
    }
    for (id, (stored_start, session)) in sessions {
        if stored_start != Some(session.start_ms) {
            if let Some(old) = stored_start {
                ops.push((session_start_key(old, &id), None));
            }
            ops.push((session_start_key(session.start_ms, &id), Some(Vec::new())));
        }
        ops.push((session_key(&id), Some(rows::encode(&session)?)));
    }
    let marked = mark.is_some();
    ops.extend(mark);
    if ops.is_empty() {
        return Ok(());
    }
    rows::apply_records(store, ops, marked)
}

fn session_key(id: &str) -> Vec<u8> {
    keys::record_key(RUM_SESSION, id.as_bytes())
}

fn session_start_key(start_ms: i64, id: &str) -> Vec<u8> {
    keys::record_key(
        RUM_SESSION_BY_START,
        &keys::record_tail(start_ms, id.as_bytes()),
    )
}

/// The summary of session `id`, if any event of it is stored.
pub(crate) fn stored_session(store: &dyn RowStore, id: &str) -> Result<Option<RumSession>> {
    let key = session_key(id);
    match store.get(&key)? {
        Some(bytes) => Ok(Some(rows::decode(&key, &bytes)?)),
        None => Ok(None),
    }
}

fn session_matches(q: &SessionQuery, s: &RumSession) -> bool {
    !(set(&q.service).is_some_and(|v| s.service != v)
        || set(&q.version).is_some_and(|v| !s.versions.iter().any(|x| x == v))
        || set(&q.user_id).is_some_and(|v| s.user_id != v && s.anonymous_id != v)
        || q.has_error.is_some_and(|e| e != (s.error_count > 0))
        || q.min_duration_ms.is_some_and(|d| s.duration_ms() < d))
}

/// Sessions started in the query's window matching it, newest start first, paged, with the
/// number of matches (at most [`RUM_TOTAL_MAX`] beyond the page).
pub(crate) fn query_sessions(store: &dyn RowStore, q: &SessionQuery) -> Result<SessionPage> {
    let mut page = SessionPage::default();
    let cap = (q.offset as u64)
        .saturating_add(q.limit as u64)
        .saturating_add(RUM_TOTAL_MAX);
    let (start, mut end) =
        keys::record_range(RUM_SESSION_BY_START, Some(q.start_ms), Some(q.end_ms));
    // Index keys are read a chunk at a time so no summary is read while a scan is open.
    loop {
        let mut chunk: Vec<Vec<u8>> = Vec::new();
        store.scan_range(&start, &end, true, &mut |key, _| {
            chunk.push(key.to_vec());
            Ok(chunk.len() < SESSION_SCAN_CHUNK)
        })?;
        for key in &chunk {
            let id = String::from_utf8_lossy(key.get(9..).unwrap_or_default()).into_owned();
            let Some(session) = stored_session(store, &id)?.filter(|s| session_matches(q, s))
            else {
                continue;
            };
            if page.total >= q.offset as u64 && page.sessions.len() < q.limit {
                page.sessions.push(session);
            }
            page.total += 1;
            if page.total >= cap {
                return Ok(page);
            }
        }
        match chunk.pop() {
            Some(last) if chunk.len() + 1 == SESSION_SCAN_CHUNK => end = last,
            _ => return Ok(page),
        }
    }
}

/// Deletes sessions whose last event is older than `cutoff_ms`; returns how many went.
fn remove_expired_sessions(store: &dyn RowStore, cutoff_ms: i64) -> Result<u64> {
    let (start, end) = keys::record_range(RUM_SESSION_BY_START, None, cutoff_ms.checked_sub(1));
    let mut started: Vec<(Vec<u8>, String)> = Vec::new();
    store.scan_range(&start, &end, false, &mut |key, _| {
        let id = String::from_utf8_lossy(key.get(9..).unwrap_or_default()).into_owned();
        started.push((key.to_vec(), id));
        Ok(started.len() < EXPIRY_BATCH_OPS)
    })?;
    let mut ops: Vec<RowOp> = Vec::new();
    for (index_key, id) in started {
        let ended = stored_session(store, &id)?.is_none_or(|s| s.end_ms < cutoff_ms);
        if ended {
            ops.push((index_key, None));
            ops.push((session_key(&id), None));
        }
    }
    let removed = (ops.len() / 2) as u64;
    if !ops.is_empty() {
        store.apply(ops)?;
    }
    Ok(removed)
}

/// The stored version of `view` (same id and start time).
pub(crate) fn stored_view(store: &dyn RowStore, view: &RumEvent) -> Result<Option<RumEvent>> {
    let key = keys::record_key(RUM, &tail_of(view));
    match store.get(&key)? {
        Some(bytes) => Ok(Some(rows::decode(&key, &bytes)?)),
        None => Ok(None),
    }
}

/// Whether any event of `session_id` is stored.
pub(crate) fn session_seen(store: &dyn RowStore, session_id: &str) -> Result<bool> {
    let Some(prefix) = index_prefix(BY_SESSION, session_id) else {
        return Ok(false);
    };
    let mut seen = false;
    store.scan_prefix(&prefix, &mut |_, _| {
        seen = true;
        Ok(())
    })?;
    Ok(seen)
}

fn set(v: &Option<String>) -> Option<&str> {
    v.as_deref().filter(|s| !s.is_empty())
}

fn matches(q: &RumQuery, e: &RumEvent) -> bool {
    if set(&q.service).is_some_and(|s| e.service != s)
        || set(&q.session_id).is_some_and(|s| e.session_id != s)
        || set(&q.view_id).is_some_and(|s| e.view.id != s)
        || set(&q.user_id).is_some_and(|s| e.user.id != s && e.user.anonymous_id != s)
        || q.start_ms.is_some_and(|s| e.time_ms < s)
        || q.end_ms.is_some_and(|t| e.time_ms > t)
    {
        return false;
    }
    if let Some(trace) = set(&q.trace_id) {
        if trace_key(trace).is_none() || trace_key(&e.trace_id) != trace_key(trace) {
            return false;
        }
    }
    q.types.is_empty() || q.types.contains(&e.kind())
}

/// The index the query narrows best, with its value.
fn best_index(q: &RumQuery) -> Option<(u8, String)> {
    let set = |v: &Option<String>| v.clone().filter(|s| !s.is_empty());
    if let Some(trace) = set(&q.trace_id) {
        // An id that is no trace id matches nothing; the empty key finds nothing.
        return Some((BY_TRACE, trace_key(&trace).unwrap_or_default()));
    }
    set(&q.view_id)
        .map(|v| (BY_VIEW, v))
        .or_else(|| set(&q.session_id).map(|v| (BY_SESSION, v)))
        .or_else(|| set(&q.service).map(|v| (BY_SERVICE, v)))
}

/// Events matching `query`, newest first (oldest first when `order_desc` is false), paged, with
/// the number of matches (at most [`RUM_TOTAL_MAX`] beyond the page).
pub(crate) fn query_rum_events(store: &dyn RowStore, q: &RumQuery) -> Result<RumPage> {
    let mut page = RumPage::default();
    let cap = (q.offset as u64)
        .saturating_add(q.limit as u64)
        .saturating_add(RUM_TOTAL_MAX);
    let offer = |event: RumEvent, page: &mut RumPage| -> bool {
        if !matches(q, &event) {
            return true;
        }
        if page.total >= q.offset as u64 && page.events.len() < q.limit {
            page.events.push(event);
        }
        page.total += 1;
        page.total < cap
    };
    if let Some((kind, value)) = best_index(q) {
        let mut found: Vec<Vec<u8>> = Vec::new();
        if let Some(prefix) = index_prefix(kind, &value) {
            let mut start = prefix.clone();
            start.extend_from_slice(&keys::record_tail(q.start_ms.unwrap_or(i64::MIN), &[]));
            let mut end = prefix.clone();
            match q.end_ms.and_then(|e| e.checked_add(1)) {
                Some(after) => end.extend_from_slice(&keys::record_tail(after, &[])),
                None => end.extend_from_slice(&[0xff; 9]),
            }
            store.scan_range(&start, &end, q.order_desc, &mut |key, _| {
                if let Some(tail) = key.get(prefix.len()..) {
                    found.push(keys::record_key(RUM, tail));
                }
                Ok((found.len() as u64) < cap)
            })?;
        }
        for key in found {
            let Some(bytes) = store.get(&key)? else {
                continue;
            };
            let event: RumEvent = rows::decode(&key, &bytes)?;
            if !offer(event, &mut page) {
                break;
            }
        }
    } else {
        let (start, end) = keys::record_range(RUM, q.start_ms, q.end_ms);
        store.scan_range(&start, &end, q.order_desc, &mut |key, value| {
            let event: RumEvent = rows::decode(key, value)?;
            Ok(offer(event, &mut page))
        })?;
    }
    Ok(page)
}

/// Deletes events older than `cutoff_ms` with their index rows; returns how many went.
pub(crate) fn remove_expired_rum(store: &dyn RowStore, cutoff_ms: i64) -> Result<u64> {
    let (start, end) = keys::record_range(RUM, None, cutoff_ms.checked_sub(1));
    let mut doomed: Vec<(Vec<u8>, RumEvent)> = Vec::new();
    store.scan_range(&start, &end, false, &mut |key, value| {
        doomed.push((key.to_vec(), rows::decode(key, value)?));
        Ok(doomed.len() < EXPIRY_BATCH_OPS)
    })?;
    let mut removed = 0u64;
    let mut ops: Vec<RowOp> = Vec::new();
    for (key, event) in doomed {
        let tail = key.get(1..).unwrap_or_default();
        ops.extend(index_keys(&event, tail).into_iter().map(|k| (k, None)));
        ops.push((key, None));
        removed += 1;
    }
    if !ops.is_empty() {
        store.apply(ops)?;
    }
    // A backlog larger than one batch is finished by the next sweeps.
    Ok(removed + remove_expired_sessions(store, cutoff_ms)?)
}
