//! Byte layout of every row in the single row tree.
//!
//! One tree holds everything so that a flush is one atomic `Batch`. The first byte says what a
//! row is; metric keys then carry the step and the big-endian bucket so that "everything older
//! than X" is one contiguous key range per step.
use skylark_core::{Step, TimeBucket};

/// Metric rows: `m | step | bucket(8, BE) | len(metric)(2, BE) | metric | entity id`.
pub(crate) const METRIC: u8 = b'm';
/// Service rows: `s | service id | 0 | layer(4, BE)`.
pub(crate) const SERVICE: u8 = b's';
/// Instance rows: `i | instance id`.
pub(crate) const INSTANCE: u8 = b'i';
/// Endpoint rows: `e | endpoint id`.
pub(crate) const ENDPOINT: u8 = b'e';

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

/// `m | step | bucket | len | metric`: every entity of `metric` in `bucket`.
pub(crate) fn metric_prefix(metric: &str, bucket: TimeBucket) -> Option<Vec<u8>> {
    let len = u16::try_from(metric.len()).ok()?;
    let mut key = metric_bucket_start(bucket)?;
    key.extend_from_slice(&len.to_be_bytes());
    key.extend_from_slice(metric.as_bytes());
    Some(key)
}

/// The full key of one metric row. `None` for second buckets and absurdly long metric names,
/// which are never stored.
pub(crate) fn metric_key(metric: &str, entity_id: &str, bucket: TimeBucket) -> Option<Vec<u8>> {
    let mut key = metric_prefix(metric, bucket)?;
    key.extend_from_slice(entity_id.as_bytes());
    Some(key)
}

/// The entity id of a metric key that starts with `prefix` (from [`metric_prefix`]).
pub(crate) fn entity_of(key: &[u8], prefix: &[u8]) -> Option<String> {
    let rest = key.strip_prefix(prefix)?;
    String::from_utf8(rest.to_vec()).ok()
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

#[cfg(test)]
mod tests {
    use super::*;

    fn minute(value: i64) -> TimeBucket {
        TimeBucket {
            step: Step::Minute,
            value,
        }
    }

    #[test]
    fn keys_sort_by_bucket_first() {
        let a = metric_key("zzz", "e", minute(202601010000)).unwrap();
        let b = metric_key("aaa", "e", minute(202601010001)).unwrap();
        assert!(a < b);
        let start = metric_bucket_start(minute(202601010001)).unwrap();
        assert!(a < start && start <= b);
    }

    #[test]
    fn metric_prefix_does_not_match_longer_metric_names() {
        let p = metric_prefix("cpm", minute(1)).unwrap();
        let other = metric_key("cpm_x", "e", minute(1)).unwrap();
        assert!(!other.starts_with(&p));
        let own = metric_key("cpm", "e1", minute(1)).unwrap();
        assert_eq!(entity_of(&own, &p).as_deref(), Some("e1"));
    }

    #[test]
    fn second_buckets_have_no_metric_key() {
        let b = TimeBucket {
            step: Step::Second,
            value: 1,
        };
        assert!(metric_key("m", "e", b).is_none());
    }
}
