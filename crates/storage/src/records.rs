//! Records: logs and trace segments. Unlike metric rows they are never merged, so each request
//! is handed to the row store as one batch and is readable as soon as the write returns. The
//! sled backend keeps the record rows in runs of its own (`runs`), the indexes in sled.
use crate::keys::{self, LOG, LOG_BY_TRACE, SEGMENT, SEGMENT_BODY, SEGMENT_BY_TRACE, TAG};
use crate::model::{LogQuery, StoredLog, TraceOrder, TraceQuery, TraceState};
use crate::rows::{self, RowOp, RowStore};
use crate::Result;
use skylark_core::segment::{Segment, SEARCHABLE_TAG_MAX_CHARS};
use skylark_core::{EndpointId, InstanceId, LogRecord, SegmentRecord, ServiceId};
use std::collections::BTreeSet;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};

/// Log content beyond this many bytes is cut off before storage.
pub const LOG_CONTENT_MAX_BYTES: usize = 256 * 1024;
/// Log tags beyond this many are dropped before storage.
pub const LOG_TAGS_MAX: usize = 1_000;
/// The tag added to a log that was cut down to the limits above.
pub const LOG_TRUNCATED_TAG: (&str, &str) = ("truncated", "true");

/// Deletions applied per batch while expiring records, so a large backlog never builds one huge
/// batch in memory.
const EXPIRY_BATCH_OPS: usize = 10_000;

/// Unique 16-byte log ids: a random per-process half and a counter half, so ids never repeat
/// within a process and collide across restarts only with chance 2^-64.
pub(crate) struct LogIds {
    seed: u64,
    next: AtomicU64,
}

impl LogIds {
    pub(crate) fn new() -> Self {
        // RandomState is seeded from the OS per process; hashing the clock adds to that.
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        hasher.write_u128(now);
        LogIds {
            seed: hasher.finish(),
            next: AtomicU64::new(0),
        }
    }

    fn next(&self) -> [u8; 16] {
        let mut id = [0u8; 16];
        id[..8].copy_from_slice(&self.seed.to_be_bytes());
        id[8..].copy_from_slice(&self.next.fetch_add(1, Ordering::Relaxed).to_be_bytes());
        id
    }
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    out
}

/// Text-like filter values.
trait FilterText {
    fn text(&self) -> &str;
}

impl FilterText for String {
    fn text(&self) -> &str {
        self
    }
}

impl FilterText for ServiceId {
    fn text(&self) -> &str {
        self.as_str()
    }
}

impl FilterText for InstanceId {
    fn text(&self) -> &str {
        self.as_str()
    }
}

impl FilterText for EndpointId {
    fn text(&self) -> &str {
        self.as_str()
    }
}

/// `Some(s)` unless `s` is absent or empty (clients send `""` for "no filter").
fn set<S: FilterText>(value: &Option<S>) -> Option<&str> {
    value.as_ref().map(|s| s.text()).filter(|s| !s.is_empty())
}

/// Cuts `record` down to the storage limits, marking it when anything was cut (every backend
/// stores logs through this).
pub fn truncate_log(record: &mut LogRecord) {
    let mut truncated = false;
    if record.content.len() > LOG_CONTENT_MAX_BYTES {
        let mut end = LOG_CONTENT_MAX_BYTES;
        while !record.content.is_char_boundary(end) {
            end -= 1;
        }
        record.content.truncate(end);
        truncated = true;
    }
    if record.tags.len() > LOG_TAGS_MAX {
        record.tags.truncate(LOG_TAGS_MAX);
        truncated = true;
    }
    if truncated {
        tracing::warn!(
            service = %record.service,
            "oversized log truncated before storage"
        );
        let (key, value) = LOG_TRUNCATED_TAG;
        record.tags.push((key.to_string(), value.to_string()));
    }
}

/// Whether a tag is small enough for the autocomplete index (OAP's 256-character tag limit).
pub fn indexable_tag(key: &str, value: &str) -> bool {
    let value_chars = value.chars().count();
    value_chars <= SEARCHABLE_TAG_MAX_CHARS
        && key.chars().count() + 1 + value_chars <= SEARCHABLE_TAG_MAX_CHARS
}

/// One page of a filtered scan: stops offering items once `limit` are kept after skipping
/// `offset`.
pub struct Page<T> {
    offset: usize,
    limit: usize,
    skipped: usize,
    items: Vec<T>,
}

impl<T> Page<T> {
    /// An empty page of `limit` items after the first `offset`.
    pub fn new(offset: usize, limit: usize) -> Self {
        Page {
            offset,
            limit,
            skipped: 0,
            items: Vec::new(),
        }
    }

    /// Whether the page holds `limit` items.
    pub fn full(&self) -> bool {
        self.items.len() >= self.limit
    }

    /// Takes `item` if it falls in the page; `false` once nothing more is wanted.
    pub fn offer(&mut self, item: T) -> bool {
        if self.full() {
            return false;
        }
        if self.skipped < self.offset {
            self.skipped += 1;
        } else {
            self.items.push(item);
        }
        !self.full()
    }

    /// The items kept.
    pub fn into_items(self) -> Vec<T> {
        self.items
    }
}

fn page_of<T>(items: Vec<T>, offset: usize, limit: usize) -> Vec<T> {
    items.into_iter().skip(offset).take(limit).collect()
}

/// Stores `logs` in one batch, with `mark` (a write-ahead-log mark) in the same batch.
pub(crate) fn write_logs(
    store: &dyn RowStore,
    ids: &LogIds,
    logs: Vec<LogRecord>,
    mark: Option<RowOp>,
) -> Result<()> {
    if logs.is_empty() {
        return Ok(());
    }
    let mut ops: Vec<RowOp> = Vec::with_capacity(logs.len() * 2);
    let mut tags: BTreeSet<Vec<u8>> = BTreeSet::new();
    for mut record in logs {
        truncate_log(&mut record);
        let id = ids.next();
        let tail = keys::record_tail(record.timestamp_ms, &id);
        let service_id = ServiceId::new(&record.service, true);
        let day = keys::day_of(record.timestamp_ms);
        for (key, value) in &record.tags {
            if indexable_tag(key, value) {
                tags.extend(keys::tag_key(LOG, day, key, value));
            }
        }
        if let Some(trace_id) = set(&record.trace_id) {
            match keys::trace_index_key(LOG_BY_TRACE, trace_id, &tail) {
                Some(key) => ops.push((key, Some(Vec::new()))),
                None => tracing::warn!("trace id too long to index, log not findable by trace"),
            }
        }
        let log = StoredLog {
            id: hex(&id),
            instance_id: (!record.service_instance.is_empty())
                .then(|| InstanceId::new(&service_id, &record.service_instance)),
            endpoint_id: (!record.endpoint.is_empty())
                .then(|| EndpointId::new(&service_id, &record.endpoint)),
            service_id,
            record,
        };
        ops.push((
            keys::record_key(LOG, &tail),
            Some(rows::encode_record(&log)?),
        ));
    }
    ops.extend(tags.into_iter().map(|k| (k, Some(Vec::new()))));
    let marked = mark.is_some();
    ops.extend(mark);
    rows::apply_records(store, ops, marked)
}

fn log_matches(q: &LogQuery, log: &StoredLog) -> bool {
    let r = &log.record;
    if set(&q.service_id).is_some_and(|id| log.service_id.as_str() != id)
        || set(&q.instance_id).is_some_and(|id| set(&log.instance_id) != Some(id))
        || set(&q.endpoint_id).is_some_and(|id| set(&log.endpoint_id) != Some(id))
        || set(&q.trace_id).is_some_and(|id| set(&r.trace_id) != Some(id))
        || set(&q.segment_id).is_some_and(|id| set(&r.segment_id) != Some(id))
        || q.span_id.is_some_and(|id| r.span_id != Some(id))
        || q.start_ms.is_some_and(|s| r.timestamp_ms < s)
        || q.end_ms.is_some_and(|e| r.timestamp_ms > e)
    {
        return false;
    }
    q.matches_tags_and_keywords(log)
}

/// Keys of the records of `record_kind` indexed under `trace_id`, oldest first.
fn keys_of_trace(
    store: &dyn RowStore,
    index_kind: u8,
    record_kind: u8,
    trace_id: &str,
) -> Result<Vec<Vec<u8>>> {
    let Some(prefix) = keys::trace_index_prefix(index_kind, trace_id) else {
        return Ok(Vec::new());
    };
    let mut found = Vec::new();
    store.scan_prefix(&prefix, &mut |key, _| {
        if let Some(tail) = key.get(prefix.len()..) {
            found.push(keys::record_key(record_kind, tail));
        }
        Ok(())
    })?;
    Ok(found)
}

fn in_window(record_key: &[u8], start_ms: Option<i64>, end_ms: Option<i64>) -> bool {
    keys::record_time(record_key, 1)
        .is_some_and(|t| start_ms.is_none_or(|s| t >= s) && end_ms.is_none_or(|e| t <= e))
}

pub(crate) fn query_logs(store: &dyn RowStore, q: &LogQuery) -> Result<Vec<StoredLog>> {
    let mut page = Page::new(q.offset, q.limit);
    if page.full() {
        return Ok(Vec::new());
    }
    if let Some(trace_id) = set(&q.trace_id) {
        let mut found = keys_of_trace(store, LOG_BY_TRACE, LOG, trace_id)?;
        // The key carries the time, so rows outside the window are never read.
        found.retain(|key| in_window(key, q.start_ms, q.end_ms));
        if q.order_desc {
            found.reverse();
        }
        for key in found {
            let Some(bytes) = store.get(&key)? else {
                continue;
            };
            let log: StoredLog = rows::decode_record(&key, &bytes)?;
            if log_matches(q, &log) && !page.offer(log) {
                break;
            }
        }
    } else {
        let (start, end) = keys::record_range(LOG, q.start_ms, q.end_ms);
        store.scan_range(&start, &end, q.order_desc, &mut |key, value| {
            let log: StoredLog = rows::decode_record(key, value)?;
            Ok(!log_matches(q, &log) || page.offer(log))
        })?;
    }
    Ok(page.items)
}

/// Distinct tag keys (when `key` is `None`) or values of `key` seen on records of `record_kind`
/// in the UTC days overlapping `[start_ms, end_ms]`, sorted.
pub(crate) fn tag_autocomplete(
    store: &dyn RowStore,
    record_kind: u8,
    key: Option<&str>,
    start_ms: i64,
    end_ms: i64,
) -> Result<Vec<String>> {
    let first = keys::day_of(start_ms);
    let last = keys::day_of(end_ms);
    let start = keys::tag_day_start(record_kind, first);
    let end = match last.checked_add(1) {
        Some(next) => keys::tag_day_start(record_kind, next),
        None => vec![TAG, record_kind.saturating_add(1)],
    };
    let mut out = BTreeSet::new();
    store.scan_range(&start, &end, false, &mut |row, _| {
        if let Some((k, v)) = keys::tag_of(row) {
            match key {
                None => {
                    out.insert(k);
                }
                Some(wanted) if wanted == k => {
                    out.insert(v);
                }
                Some(_) => {}
            }
        }
        Ok(true)
    })?;
    Ok(out.into_iter().collect())
}

/// Stores `segments` in one batch, with `mark` (a write-ahead-log mark) in the same batch.
pub(crate) fn write_segments(
    store: &dyn RowStore,
    segments: Vec<SegmentRecord>,
    mark: Option<RowOp>,
) -> Result<()> {
    if segments.is_empty() {
        return Ok(());
    }
    let mut ops: Vec<RowOp> = Vec::with_capacity(segments.len() * 3);
    let mut tags: BTreeSet<Vec<u8>> = BTreeSet::new();
    for mut record in segments {
        let tail = keys::record_tail(record.start_time_ms, record.segment_id.as_bytes());
        let day = keys::day_of(record.start_time_ms);
        for (key, value) in &record.tags {
            if indexable_tag(key, value) {
                tags.extend(keys::tag_key(SEGMENT, day, key, value));
            }
        }
        if !record.trace_id.is_empty() {
            match keys::trace_index_key(SEGMENT_BY_TRACE, &record.trace_id, &tail) {
                Some(key) => ops.push((key, Some(Vec::new()))),
                None => {
                    tracing::warn!("trace id too long to index, segment not findable by trace")
                }
            }
        }
        // Spans live in their own row so that filtering reads only the small part.
        let body = std::mem::take(&mut record.segment);
        ops.push((
            keys::record_key(SEGMENT_BODY, &tail),
            Some(rows::encode_record(&body)?),
        ));
        ops.push((
            keys::record_key(SEGMENT, &tail),
            Some(rows::encode_record(&record)?),
        ));
    }
    ops.extend(tags.into_iter().map(|k| (k, Some(Vec::new()))));
    let marked = mark.is_some();
    ops.extend(mark);
    rows::apply_records(store, ops, marked)
}

fn segment_matches(q: &TraceQuery, r: &SegmentRecord) -> bool {
    if set(&q.service_id).is_some_and(|id| r.service_id.as_str() != id)
        || set(&q.instance_id).is_some_and(|id| r.service_instance_id.as_str() != id)
        || set(&q.endpoint_id).is_some_and(|id| r.endpoint_id.as_str() != id)
        || set(&q.trace_id).is_some_and(|id| r.trace_id != id)
        || q.start_ms.is_some_and(|s| r.start_time_ms < s)
        || q.end_ms.is_some_and(|e| r.start_time_ms > e)
        || q.min_duration.is_some_and(|d| r.latency_ms < d)
        || q.max_duration.is_some_and(|d| r.latency_ms > d)
    {
        return false;
    }
    let state = match q.state {
        TraceState::All => true,
        TraceState::Success => !r.is_error,
        TraceState::Error => r.is_error,
    };
    state && q.matches_tags(r)
}

/// Latest first, then by key so equal times have a stable order.
fn by_duration(a: &(Vec<u8>, SegmentRecord), b: &(Vec<u8>, SegmentRecord)) -> std::cmp::Ordering {
    b.1.latency_ms
        .cmp(&a.1.latency_ms)
        .then_with(|| b.0.cmp(&a.0))
}

/// Puts each record's segment back from its body row.
fn with_bodies(
    store: &dyn RowStore,
    found: Vec<(Vec<u8>, SegmentRecord)>,
) -> Result<Vec<SegmentRecord>> {
    let mut out = Vec::with_capacity(found.len());
    for (key, mut record) in found {
        let body_key = keys::record_key(SEGMENT_BODY, key.get(1..).unwrap_or_default());
        match store.get(&body_key)? {
            Some(bytes) => record.segment = rows::decode_record::<Segment>(&body_key, &bytes)?,
            None => tracing::warn!(segment = %record.segment_id, "segment body missing"),
        }
        out.push(record);
    }
    Ok(out)
}

/// Segment rows (without bodies) of `trace_id` starting in the window, earliest first.
fn segments_of_trace(
    store: &dyn RowStore,
    trace_id: &str,
    start_ms: Option<i64>,
    end_ms: Option<i64>,
) -> Result<Vec<(Vec<u8>, SegmentRecord)>> {
    let mut out = Vec::new();
    for key in keys_of_trace(store, SEGMENT_BY_TRACE, SEGMENT, trace_id)? {
        if !in_window(&key, start_ms, end_ms) {
            continue;
        }
        if let Some(bytes) = store.get(&key)? {
            let record: SegmentRecord = rows::decode_record(&key, &bytes)?;
            out.push((key, record));
        }
    }
    Ok(out)
}

pub(crate) fn query_segments(store: &dyn RowStore, q: &TraceQuery) -> Result<Vec<SegmentRecord>> {
    if q.limit == 0 {
        return Ok(Vec::new());
    }
    let found = if let Some(trace_id) = set(&q.trace_id) {
        let mut found: Vec<_> = segments_of_trace(store, trace_id, q.start_ms, q.end_ms)?
            .into_iter()
            .filter(|(_, r)| segment_matches(q, r))
            .collect();
        match q.order {
            TraceOrder::ByStartTime => found.reverse(),
            TraceOrder::ByDuration => found.sort_by(by_duration),
        }
        page_of(found, q.offset, q.limit)
    } else {
        let (start, end) = keys::record_range(SEGMENT, q.start_ms, q.end_ms);
        match q.order {
            TraceOrder::ByStartTime => {
                let mut page = Page::new(q.offset, q.limit);
                store.scan_range(&start, &end, true, &mut |key, value| {
                    let record: SegmentRecord = rows::decode_record(key, value)?;
                    Ok(!segment_matches(q, &record) || page.offer((key.to_vec(), record)))
                })?;
                page.items
            }
            TraceOrder::ByDuration => {
                // Only the best offset+limit can make the page, so the rest is dropped as the
                // scan goes instead of holding every match of the window.
                let keep = q.offset.saturating_add(q.limit);
                let mut best: Vec<(Vec<u8>, SegmentRecord)> = Vec::new();
                store.scan_range(&start, &end, false, &mut |key, value| {
                    let record: SegmentRecord = rows::decode_record(key, value)?;
                    if segment_matches(q, &record) {
                        best.push((key.to_vec(), record));
                        if best.len() >= keep.saturating_mul(2).max(1_024) {
                            best.sort_by(by_duration);
                            best.truncate(keep);
                        }
                    }
                    Ok(true)
                })?;
                best.sort_by(by_duration);
                page_of(best, q.offset, q.limit)
            }
        }
    };
    with_bodies(store, found)
}

pub(crate) fn get_trace(store: &dyn RowStore, trace_id: &str) -> Result<Vec<SegmentRecord>> {
    if trace_id.is_empty() {
        return Ok(Vec::new());
    }
    let found = segments_of_trace(store, trace_id, None, None)?;
    with_bodies(store, found)
}

/// Just the trace id of a stored log, without copying its content.
#[derive(serde::Deserialize)]
struct LogTraceOf {
    record: TraceOf,
}

/// Just the trace id of a stored log record or segment row.
#[derive(serde::Deserialize)]
struct TraceOf {
    trace_id: Option<String>,
}

/// Applies `ops` once enough have gathered (or whenever `force`).
fn apply_some(store: &dyn RowStore, ops: &mut Vec<RowOp>, force: bool) -> Result<()> {
    if !ops.is_empty() && (force || ops.len() >= EXPIRY_BATCH_OPS) {
        store.apply(std::mem::take(ops))?;
    }
    Ok(())
}

/// Deletes logs and segments (with their index and autocomplete rows) older than `cutoff_ms`;
/// returns how many logs and segments went.
pub(crate) fn remove_expired(store: &dyn RowStore, cutoff_ms: i64) -> Result<u64> {
    let mut removed = 0u64;
    for (kind, index_kind, body_kind) in [
        (LOG, LOG_BY_TRACE, None),
        (SEGMENT, SEGMENT_BY_TRACE, Some(SEGMENT_BODY)),
    ] {
        let (start, end) = keys::record_range(kind, None, cutoff_ms.checked_sub(1));
        // Collected first: a scan must not hold the store while deletions apply.
        let mut doomed: Vec<(Vec<u8>, Option<String>)> = Vec::new();
        store.scan_range(&start, &end, false, &mut |key, value| {
            // A JSON row (format 1) is read only as far as its trace id; a binary row is
            // positional, so it is read whole.
            let trace_id = match (kind == LOG, rows::is_binary_record(value)) {
                (true, true) => {
                    rows::decode_record::<StoredLog>(key, value)?
                        .record
                        .trace_id
                }
                (true, false) => rows::decode::<LogTraceOf>(key, value)?.record.trace_id,
                (false, true) => Some(rows::decode_record::<SegmentRecord>(key, value)?.trace_id),
                (false, false) => rows::decode::<TraceOf>(key, value)?.trace_id,
            };
            doomed.push((key.to_vec(), trace_id));
            Ok(true)
        })?;
        let mut ops: Vec<RowOp> = Vec::new();
        for (key, trace_id) in doomed {
            let tail = key.get(1..).unwrap_or_default();
            if let Some(index) = set(&trace_id)
                .and_then(|trace_id| keys::trace_index_key(index_kind, trace_id, tail))
            {
                ops.push((index, None));
            }
            if let Some(body_kind) = body_kind {
                ops.push((keys::record_key(body_kind, tail), None));
            }
            ops.push((key, None));
            removed += 1;
            apply_some(store, &mut ops, false)?;
        }
        let tags_end = keys::tag_day_start(kind, keys::day_of(cutoff_ms));
        let tags_start = keys::tag_day_start(kind, i64::MIN);
        for key in store.keys_in_range(&tags_start, &tags_end)? {
            ops.push((key, None));
            apply_some(store, &mut ops, false)?;
        }
        apply_some(store, &mut ops, true)?;
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use skylark_core::{ContentType, Layer};

    fn log(content: String, tags: usize) -> LogRecord {
        LogRecord {
            service: "s".into(),
            service_instance: String::new(),
            endpoint: String::new(),
            layer: Layer::GENERAL,
            timestamp_ms: 1,
            trace_id: None,
            segment_id: None,
            span_id: None,
            content_type: ContentType::Text,
            content,
            tags: (0..tags)
                .map(|i| (format!("k{i}"), "v".to_string()))
                .collect(),
        }
    }

    #[test]
    fn truncation_keeps_char_boundaries_and_marks_the_log() {
        // 'é' is 2 bytes, so the limit falls inside a character.
        let mut r = log(format!("a{}", "é".repeat(LOG_CONTENT_MAX_BYTES)), 2);
        truncate_log(&mut r);
        assert_eq!(r.content.len(), LOG_CONTENT_MAX_BYTES - 1);
        assert_eq!(r.tags.last().unwrap(), &("truncated".into(), "true".into()));

        let mut small = log("fine".into(), LOG_TAGS_MAX);
        truncate_log(&mut small);
        assert_eq!(
            small.tags.len(),
            LOG_TAGS_MAX,
            "at the limit nothing is cut"
        );
    }

    #[test]
    fn log_ids_are_unique_hex() {
        let ids = LogIds::new();
        let a = hex(&ids.next());
        let b = hex(&ids.next());
        assert_ne!(a, b);
        assert_eq!(a.len(), 32);
        assert!(a
            .bytes()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
    }

    #[test]
    fn log_rows_are_binary_and_format_1_json_rows_still_read() {
        let mut record = log("boom at pages/index".into(), 3);
        record.trace_id = Some("t1".into());
        record.span_id = Some(-1);
        let service_id = ServiceId::new(&record.service, true);
        let stored = StoredLog {
            id: "00ff".into(),
            instance_id: Some(InstanceId::new(&service_id, "i1")),
            endpoint_id: None,
            service_id,
            record,
        };
        let binary = rows::encode_record(&stored).unwrap();
        let json = rows::encode(&stored).unwrap();
        assert!(
            binary.len() * 2 < json.len(),
            "{} vs {}",
            binary.len(),
            json.len()
        );
        for bytes in [binary, json] {
            let back: StoredLog = rows::decode_record(b"l", &bytes).unwrap();
            assert_eq!(back.record, stored.record);
            assert_eq!(back.instance_id, stored.instance_id);
            assert_eq!(back.id, stored.id);
        }
    }

    #[test]
    fn page_skips_then_takes() {
        let mut page = Page::new(2, 2);
        let wanted: Vec<bool> = (0..5).map(|i| page.offer(i)).collect();
        assert_eq!(page.items, vec![2, 3]);
        assert_eq!(wanted, vec![true, true, true, false, false]);
    }
}
