//! Byte layout of every row in the single row tree.
//!
//! One tree holds everything so that a flush is one atomic `Batch`. The first byte says what a
//! row is; metric keys then carry the step and the big-endian bucket so that "everything older
//! than X" is one contiguous key range per step.
use skylark_core::{Step, TimeBucket};

/// Metric rows: `n | step | bucket(8, BE) | metric name id(4, BE) | entity id's id(4, BE)`, the
/// ids from the [`NAME`] dictionary: 18 bytes, where spelled-out names took ~85.
pub(crate) const METRIC: u8 = b'n';
/// Metric rows of formats 1–3: `m | step | bucket(8, BE) | len(metric)(2, BE) | metric | entity
/// id`. Rewritten as [`METRIC`] rows when such a folder is opened.
pub(crate) const LEGACY_METRIC: u8 = b'm';
/// The dictionary of metric keys: `d | name` → its id (4, BE). Names are metric names and entity
/// ids, in one numbering; an id is never reused or removed.
pub(crate) const NAME: u8 = b'd';
/// Service rows: `s | service id | 0 | layer(4, BE)`.
pub(crate) const SERVICE: u8 = b's';
/// Instance rows: `i | instance id`.
pub(crate) const INSTANCE: u8 = b'i';
/// Endpoint rows: `e | endpoint id`.
pub(crate) const ENDPOINT: u8 = b'e';

/// Log rows: `l | timestamp(8, ordered) | log id(16)`.
pub(crate) const LOG: u8 = b'l';
/// Logs by trace: `L | len(trace id)(2, BE) | trace id | timestamp(8) | log id(16)`, no value.
pub(crate) const LOG_BY_TRACE: u8 = b'L';
/// Segment rows without their spans: `g | start(8, ordered) | segment id`.
pub(crate) const SEGMENT: u8 = b'g';
/// The segments themselves, under the same tail as their [`SEGMENT`] row: `b | start | segment id`.
pub(crate) const SEGMENT_BODY: u8 = b'b';
/// Segments by trace: `G | len(trace id)(2, BE) | trace id | start(8) | segment id`, no value.
pub(crate) const SEGMENT_BY_TRACE: u8 = b'G';
/// Tag autocomplete: `t | record kind | day(8, ordered) | len(key)(2, BE) | key | value`, no value.
pub(crate) const TAG: u8 = b't';

/// UI templates: `u | template id`. Never expired.
pub(crate) const TEMPLATE: u8 = b'u';

/// Alarm records: `a | start time(8, ordered) | uuid`. Expire with the other records.
pub(crate) const ALARM: u8 = b'a';
/// Alarm evaluation state: `A | rule name | 0 | entity key`. Never expired (the evaluator
/// removes what it no longer tracks).
pub(crate) const ALARM_STATE: u8 = b'A';

/// RUM events: `r | time(8, ordered) | event id`.
pub(crate) const RUM: u8 = b'r';
/// RUM indexes: `R | index kind | len(value)(2, BE) | value | time(8) | event id`, no value.
pub(crate) const RUM_INDEX: u8 = b'R';
/// `x | session id` → a RUM session summary.
pub(crate) const RUM_SESSION: u8 = b'x';
/// `X | start time | session id` → empty: sessions by start.
pub(crate) const RUM_SESSION_BY_START: u8 = b'X';

/// Rollup watermarks: `o | step` → the first minute (bucket value, 8, BE) whose hour (or day)
/// row is not yet built; rows of every earlier hour (day) are complete.
pub(crate) const ROLLUP: u8 = b'o';

/// The data folder's format: `F` → format number (4, BE). Absent in folders written before
/// formats were numbered (format 1: JSON metric rows).
pub(crate) const FORMAT: u8 = b'F';

/// The UTC day (since the epoch) of a row whose key carries its record's time: RUM events and
/// their index rows, alarm records and their autocomplete rows. A backend may keep these rows
/// partitioned by day and expire a whole day at once; every other row gives `None`.
pub fn timed_row_day(key: &[u8]) -> Option<i64> {
    let time_at = match key {
        [RUM | ALARM, ..] => 1,
        [RUM_INDEX, _, len_hi, len_lo, ..] => {
            4 + usize::from(u16::from_be_bytes([*len_hi, *len_lo]))
        }
        // Autocomplete rows hold the day itself.
        [TAG, ALARM, ..] => return record_time(key, 2),
        _ => return None,
    };
    record_time(key, time_at).map(day_of)
}

/// Whether a scan starting at `start` reads rows [`timed_row_day`] places (all of one kind:
/// no scan of the engine crosses from one kind of row into another).
pub fn is_timed_range(start: &[u8]) -> bool {
    matches!(start, [RUM | RUM_INDEX | ALARM, ..] | [TAG, ALARM, ..])
}

/// Milliseconds per (UTC) day, the granularity of the tag autocomplete rows.
pub(crate) const DAY_MS: i64 = 86_400_000;

/// The steps metric rows are kept at, finest first.
pub(crate) const METRIC_STEPS: [Step; 3] = [Step::Minute, Step::Hour, Step::Day];

fn step_byte(step: Step) -> Option<u8> {
    match step {
        Step::Second => None,
        Step::Minute => Some(1),
        Step::Hour => Some(2),
        Step::Day => Some(3),
    }
}

/// Flipping the sign bit makes big-endian byte order match numeric order for negatives too.
fn ordered_i64(v: i64) -> [u8; 8] {
    ((v as u64) ^ (1 << 63)).to_be_bytes()
}

fn from_ordered_i64(bytes: [u8; 8]) -> i64 {
    (u64::from_be_bytes(bytes) ^ (1 << 63)) as i64
}

fn ordered_i32(v: i32) -> [u8; 4] {
    ((v as u32) ^ (1 << 31)).to_be_bytes()
}

/// `m | step`: every metric row of one step. `None` for steps metrics are not kept at.
pub(crate) fn metric_step_prefix(step: Step) -> Option<Vec<u8>> {
    Some(vec![METRIC, step_byte(step)?])
}

/// `m | step | bucket`: the first key of `bucket`; every key before it is an older bucket.
pub(crate) fn metric_bucket_start(bucket: TimeBucket) -> Option<Vec<u8>> {
    let mut key = metric_step_prefix(bucket.step)?;
    key.extend_from_slice(&ordered_i64(bucket.value));
    Some(key)
}

/// The number a metric name or entity id stands for in metric keys (see [`NAME`]).
pub(crate) type NameId = u32;

/// Length of a full metric key.
pub(crate) const METRIC_KEY_LEN: usize = 18;

/// `n | step | bucket | metric`: every entity of `metric` in `bucket`.
pub(crate) fn metric_prefix(metric: NameId, bucket: TimeBucket) -> Option<Vec<u8>> {
    let mut key = metric_bucket_start(bucket)?;
    key.extend_from_slice(&metric.to_be_bytes());
    Some(key)
}

/// The full key of one metric row. `None` for second buckets, which are never stored.
pub(crate) fn metric_key(metric: NameId, entity: NameId, bucket: TimeBucket) -> Option<Vec<u8>> {
    let mut key = Vec::with_capacity(METRIC_KEY_LEN);
    write_metric_key(&mut key, metric, entity, bucket)?;
    Some(key)
}

/// Writes [`metric_key`] into `key` (cleared first), reusing its buffer; `None` (and `key` left
/// unspecified) when the row is never stored.
pub(crate) fn write_metric_key(
    key: &mut Vec<u8>,
    metric: NameId,
    entity: NameId,
    bucket: TimeBucket,
) -> Option<()> {
    let step = step_byte(bucket.step)?;
    key.clear();
    key.extend_from_slice(&[METRIC, step]);
    key.extend_from_slice(&ordered_i64(bucket.value));
    key.extend_from_slice(&metric.to_be_bytes());
    key.extend_from_slice(&entity.to_be_bytes());
    Some(())
}

/// The key of the rollup watermark of `step` (hour or day).
pub(crate) fn rollup_key(step: Step) -> Option<Vec<u8>> {
    Some(vec![ROLLUP, step_byte(step)?])
}

/// The bucket number of a metric key.
pub(crate) fn metric_bucket_of(key: &[u8]) -> Option<i64> {
    let bytes = key.get(2..10)?;
    Some(from_ordered_i64(<[u8; 8]>::try_from(bytes).ok()?))
}

/// The bucket of a metric key of either layout (both begin `kind | step | bucket`).
pub(crate) fn metric_bucket(key: &[u8]) -> Option<TimeBucket> {
    let step = match key.get(1)? {
        1 => Step::Minute,
        2 => Step::Hour,
        3 => Step::Day,
        _ => return None,
    };
    Some(TimeBucket {
        step,
        value: metric_bucket_of(key)?,
    })
}

/// The metric and entity ids of a full metric key.
pub(crate) fn split_metric_key(key: &[u8]) -> Option<(NameId, NameId)> {
    if key.len() != METRIC_KEY_LEN || key.first() != Some(&METRIC) {
        return None;
    }
    let metric = NameId::from_be_bytes(key.get(10..14)?.try_into().ok()?);
    let entity = NameId::from_be_bytes(key.get(14..18)?.try_into().ok()?);
    Some((metric, entity))
}

/// A metric row key of formats 1–3 ([`LEGACY_METRIC`]), taken apart.
pub(crate) struct LegacyMetricKey<'a> {
    /// The row's bucket.
    pub(crate) bucket: TimeBucket,
    /// The metric name.
    pub(crate) metric: &'a str,
    /// The entity id.
    pub(crate) entity: &'a str,
}

/// Parses a [`LEGACY_METRIC`] key; `None` for anything else.
pub(crate) fn split_legacy_metric_key(key: &[u8]) -> Option<LegacyMetricKey<'_>> {
    let bucket = metric_bucket(key)?;
    let rest = key.strip_prefix(&[LEGACY_METRIC])?;
    let (len, rest) = rest.get(9..)?.split_first_chunk::<2>()?;
    let len = usize::from(u16::from_be_bytes(*len));
    if rest.len() < len {
        return None;
    }
    let (metric, entity) = rest.split_at(len);
    Some(LegacyMetricKey {
        bucket,
        metric: std::str::from_utf8(metric).ok()?,
        entity: std::str::from_utf8(entity).ok()?,
    })
}

/// A metric row key as formats 1–3 wrote it: what migration tests start from.
#[cfg(test)]
pub(crate) fn legacy_metric_key(metric: &str, entity: &str, bucket: TimeBucket) -> Vec<u8> {
    let mut key = vec![LEGACY_METRIC, step_byte(bucket.step).unwrap()];
    key.extend_from_slice(&ordered_i64(bucket.value));
    key.extend_from_slice(&(metric.len() as u16).to_be_bytes());
    key.extend_from_slice(metric.as_bytes());
    key.extend_from_slice(entity.as_bytes());
    key
}

/// The key of the dictionary row of `name`.
pub(crate) fn name_key(name: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(1 + name.len());
    key.push(NAME);
    key.extend_from_slice(name.as_bytes());
    key
}

/// `s | service id | 0`: every layer row of one service.
pub(crate) fn service_prefix(service_id: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(service_id.len() + 2);
    key.push(SERVICE);
    key.extend_from_slice(service_id.as_bytes());
    key.push(0);
    key
}

/// The key of the row saying that service `service_id` was seen in `layer`.
pub(crate) fn service_key(service_id: &str, layer: i32) -> Vec<u8> {
    let mut key = service_prefix(service_id);
    key.extend_from_slice(&ordered_i32(layer));
    key
}

/// The key of an instance or endpoint row (`kind` is [`INSTANCE`] or [`ENDPOINT`]).
pub(crate) fn child_key(kind: u8, id: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(id.len() + 1);
    key.push(kind);
    key.extend_from_slice(id.as_bytes());
    key
}

/// The first key a record of `kind` at `time_ms` can have.
pub(crate) fn record_time_start(kind: u8, time_ms: i64) -> Vec<u8> {
    let mut key = Vec::with_capacity(9);
    key.push(kind);
    key.extend_from_slice(&ordered_i64(time_ms));
    key
}

/// `time(8) | suffix`: what follows the kind byte in a record key and ends its trace index key.
pub(crate) fn record_tail(time_ms: i64, suffix: &[u8]) -> Vec<u8> {
    let mut tail = Vec::with_capacity(8 + suffix.len());
    tail.extend_from_slice(&ordered_i64(time_ms));
    tail.extend_from_slice(suffix);
    tail
}

/// `kind | tail`.
pub(crate) fn record_key(kind: u8, tail: &[u8]) -> Vec<u8> {
    let mut key = Vec::with_capacity(1 + tail.len());
    key.push(kind);
    key.extend_from_slice(tail);
    key
}

/// `[start, end)` covering every record of `kind` whose time lies in `[start_ms, end_ms]`
/// (unbounded where `None`).
pub(crate) fn record_range(
    kind: u8,
    start_ms: Option<i64>,
    end_ms: Option<i64>,
) -> (Vec<u8>, Vec<u8>) {
    let start = record_time_start(kind, start_ms.unwrap_or(i64::MIN));
    let end = match end_ms.and_then(|e| e.checked_add(1)) {
        Some(after) => record_time_start(kind, after),
        // Every key of this kind sorts before the next kind byte.
        None => vec![kind.saturating_add(1)],
    };
    (start, end)
}

/// The time of a record key (or of a record key's tail when `kind_len` is 0).
pub(crate) fn record_time(key: &[u8], kind_len: usize) -> Option<i64> {
    let bytes: [u8; 8] = key.get(kind_len..kind_len + 8)?.try_into().ok()?;
    Some(from_ordered_i64(bytes))
}

/// `kind | len | trace id`: every index entry of one trace. `None` for trace ids too long to index.
pub(crate) fn trace_index_prefix(kind: u8, trace_id: &str) -> Option<Vec<u8>> {
    let len = u16::try_from(trace_id.len()).ok()?;
    let mut key = Vec::with_capacity(3 + trace_id.len());
    key.push(kind);
    key.extend_from_slice(&len.to_be_bytes());
    key.extend_from_slice(trace_id.as_bytes());
    Some(key)
}

/// The index entry pointing at the record with `tail`.
pub(crate) fn trace_index_key(kind: u8, trace_id: &str, tail: &[u8]) -> Option<Vec<u8>> {
    let mut key = trace_index_prefix(kind, trace_id)?;
    key.extend_from_slice(tail);
    Some(key)
}

/// `t | record kind | day`: the first autocomplete row of `day`.
pub(crate) fn tag_day_start(record_kind: u8, day: i64) -> Vec<u8> {
    let mut key = Vec::with_capacity(10);
    key.push(TAG);
    key.push(record_kind);
    key.extend_from_slice(&ordered_i64(day));
    key
}

/// The autocomplete row saying tag `key=value` was seen on a record of `record_kind` in `day`.
pub(crate) fn tag_key(record_kind: u8, day: i64, key: &str, value: &str) -> Option<Vec<u8>> {
    let len = u16::try_from(key.len()).ok()?;
    let mut row = tag_day_start(record_kind, day);
    row.extend_from_slice(&len.to_be_bytes());
    row.extend_from_slice(key.as_bytes());
    row.extend_from_slice(value.as_bytes());
    Some(row)
}

/// The `(key, value)` of an autocomplete row.
pub(crate) fn tag_of(row: &[u8]) -> Option<(String, String)> {
    let rest = row.get(10..)?;
    let len = usize::from(u16::from_be_bytes(rest.get(..2)?.try_into().ok()?));
    let key = rest.get(2..2 + len)?;
    let value = rest.get(2 + len..)?;
    Some((
        String::from_utf8(key.to_vec()).ok()?,
        String::from_utf8(value.to_vec()).ok()?,
    ))
}

/// The key of the UI template `id`.
pub(crate) fn template_key(id: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(id.len() + 1);
    key.push(TEMPLATE);
    key.extend_from_slice(id.as_bytes());
    key
}

/// The UTC day number of `ms`.
pub(crate) fn day_of(ms: i64) -> i64 {
    ms.div_euclid(DAY_MS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timed_rows_carry_their_day() {
        let at = 3 * DAY_MS + 5;
        let tail = record_tail(at, b"event-1");
        assert_eq!(timed_row_day(&record_key(RUM, &tail)), Some(3));
        assert_eq!(timed_row_day(&record_key(ALARM, &tail)), Some(3));
        let mut index = vec![RUM_INDEX, b's', 0, 3];
        index.extend_from_slice(b"svc");
        index.extend_from_slice(&tail);
        assert_eq!(timed_row_day(&index), Some(3));
        let mut tag = tag_day_start(ALARM, -2);
        tag.extend_from_slice(b"\0\x01k");
        assert_eq!(timed_row_day(&tag), Some(-2));
        // Rows without a time, and cut-off keys, stay where they are.
        assert_eq!(timed_row_day(&tag_day_start(LOG, 3)), None);
        assert_eq!(timed_row_day(&child_key(INSTANCE, "i")), None);
        assert_eq!(timed_row_day(&[RUM_INDEX, b's', 0, 9, b'x']), None);
        assert!(is_timed_range(&[RUM_INDEX, b'e']) && !is_timed_range(&[TAG, LOG]));
    }

    fn minute(value: i64) -> TimeBucket {
        TimeBucket {
            step: Step::Minute,
            value,
        }
    }

    #[test]
    fn keys_sort_by_bucket_first() {
        let a = metric_key(u32::MAX, 9, minute(202601010000)).unwrap();
        let b = metric_key(0, 0, minute(202601010001)).unwrap();
        assert!(a < b);
        let start = metric_bucket_start(minute(202601010001)).unwrap();
        assert!(a < start && start <= b);
    }

    #[test]
    fn a_reused_key_buffer_holds_exactly_the_new_key() {
        let mut buf = Vec::new();
        write_metric_key(&mut buf, 70_000, 1, minute(7)).unwrap();
        write_metric_key(&mut buf, 3, 4, minute(8)).unwrap();
        assert_eq!(buf, metric_key(3, 4, minute(8)).unwrap());
        assert_eq!(buf.len(), METRIC_KEY_LEN);
        assert!(buf.starts_with(&metric_prefix(3, minute(8)).unwrap()));
    }

    #[test]
    fn a_metric_key_splits_into_its_metric_and_entity() {
        let key = metric_key(7, 300_000, minute(202601010000)).unwrap();
        assert_eq!(split_metric_key(&key), Some((7, 300_000)));
        assert!(split_metric_key(&key[..12]).is_none());
        assert_eq!(metric_bucket_of(&key), Some(202601010000));
        let p = metric_prefix(7, minute(202601010000)).unwrap();
        assert!(key.starts_with(&p));
        assert!(!metric_key(8, 300_000, minute(202601010000))
            .unwrap()
            .starts_with(&p));
    }

    #[test]
    fn a_legacy_key_parses_into_its_bucket_metric_and_entity() {
        let key = legacy_metric_key("cpm", "svc.1", minute(202601010000));
        let legacy = split_legacy_metric_key(&key).unwrap();
        assert_eq!((legacy.metric, legacy.entity), ("cpm", "svc.1"));
        let new = metric_key(1, 2, minute(202601010000)).unwrap();
        assert_eq!(legacy.bucket, minute(202601010000));
        assert_eq!(metric_bucket(&new), Some(legacy.bucket));
        assert!(split_legacy_metric_key(&key[..12]).is_none());
        assert!(split_legacy_metric_key(&new).is_none());
    }

    #[test]
    fn second_buckets_have_no_metric_key() {
        let b = TimeBucket {
            step: Step::Second,
            value: 1,
        };
        assert!(metric_key(1, 2, b).is_none());
    }

    #[test]
    fn record_keys_sort_by_time_including_negative_times() {
        let a = record_key(LOG, &record_tail(-5, b"zz"));
        let b = record_key(LOG, &record_tail(3, b"aa"));
        assert!(a < b);
        assert_eq!(record_time(&b, 1), Some(3));
        assert_eq!(record_time(&a, 1), Some(-5));
        let (start, end) = record_range(LOG, Some(3), Some(3));
        assert!(start <= b && b < end && a < start);
        let (_, open_end) = record_range(LOG, None, None);
        assert!(record_key(LOG, &record_tail(i64::MAX, &[0xff; 16])) < open_end);
    }

    #[test]
    fn trace_index_prefix_does_not_match_longer_trace_ids() {
        let p = trace_index_prefix(LOG_BY_TRACE, "t1").unwrap();
        let other = trace_index_key(LOG_BY_TRACE, "t10", &record_tail(1, b"x")).unwrap();
        assert!(!other.starts_with(&p));
    }

    #[test]
    fn tag_rows_round_trip() {
        let row = tag_key(LOG, 20_000, "http.method", "GET").unwrap();
        assert_eq!(
            tag_of(&row),
            Some(("http.method".to_string(), "GET".to_string()))
        );
        assert!(row.starts_with(&tag_day_start(LOG, 20_000)));
        assert!(row < tag_day_start(LOG, 20_001));
        assert_eq!(day_of(-1), -1);
    }
}
