//! The key-value layer under the engine, and how rows are encoded in it.
use crate::{Error, Result};
use skylark_core::{Labels, Layer, MetricFunction, MetricState};
use std::collections::BTreeMap;

/// One change in a flush batch: `Some` writes the value, `None` removes the key.
pub type RowOp = (Vec<u8>, Option<Vec<u8>>);

/// Called with each `(key, value)` of a scan; an error stops the scan.
pub type RowVisitor<'a> = dyn FnMut(&[u8], &[u8]) -> Result<()> + 'a;

/// Called with each `(key, value)` of a range scan; `Ok(false)` stops the scan early.
pub type RangeVisitor<'a> = dyn FnMut(&[u8], &[u8]) -> Result<bool> + 'a;

/// An ordered byte-key store. The engine keeps all semantics; a backend only stores bytes.
///
/// Public so that another crate's backend can hold the record kinds it does not model itself
/// in a [`crate::KvStorage`] over its own key-value table.
pub trait RowStore: Send + Sync + 'static {
    /// The value under `key`.
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>>;

    /// Calls `visit` for every row whose key starts with `prefix`, in key order.
    fn scan_prefix(&self, prefix: &[u8], visit: &mut RowVisitor<'_>) -> Result<()>;

    /// Calls `visit` for every row in `[start, end)`, in key order (descending when `reverse`),
    /// until it returns `false`. An empty or inverted range visits nothing.
    fn scan_range(
        &self,
        start: &[u8],
        end: &[u8],
        reverse: bool,
        visit: &mut RangeVisitor<'_>,
    ) -> Result<()>;

    /// The values under `keys`, in their order. Backends with a round trip per call answer
    /// them all in one; the default asks one by one.
    fn get_many(&self, keys: &[Vec<u8>]) -> Result<Vec<Option<Vec<u8>>>> {
        keys.iter().map(|k| self.get(k)).collect()
    }

    /// Keys in `[start, end)`, in key order.
    fn keys_in_range(&self, start: &[u8], end: &[u8]) -> Result<Vec<Vec<u8>>>;

    /// Applies every op atomically (one sled `Batch`) and makes it durable.
    fn apply(&self, ops: Vec<RowOp>) -> Result<()>;

    /// Applies every op atomically, durable only with the next [`RowStore::apply`] or
    /// [`RowStore::sync`]: for the chunks of a flush, made durable once, after the last. A crash
    /// may lose such a batch, never a part of one, and never one that was synced after it.
    fn apply_unsynced(&self, ops: Vec<RowOp>) -> Result<()> {
        self.apply(ops)
    }

    /// Applies the ops one by one, in order, durable only with the next [`RowStore::apply`] or
    /// [`RowStore::sync`]. Not atomic as a whole: a crash keeps a prefix of them (and of what
    /// was applied before). For writes that are each complete on their own, such as a flush's
    /// metric rows, which carry the flush's mark in their value: sled applies a batch under a
    /// lock that holds every reader of the database off until it lands, and single writes take
    /// none. Backends without that cost may apply them atomically (the default).
    fn apply_each_unsynced(&self, ops: Vec<RowOp>) -> Result<()> {
        self.apply_unsynced(ops)
    }

    /// Makes every batch applied so far durable.
    fn sync(&self) -> Result<()> {
        Ok(())
    }

    /// Writes out, durably, what the store keeps in memory of its own (the open record run of
    /// the sled backend) with the marks that came with it. Called at the end of every flush,
    /// after the metric rows, so that everything up to the metrics mark is stored before the
    /// write-ahead log is cut back to it.
    fn seal(&self) -> Result<()> {
        Ok(())
    }
}

/// Reads of a batch fetched up front with one [`RowStore::get_many`]; other keys fall through
/// to the store. Only for read-fold-write steps that see no writes of their own until they
/// apply their batch.
pub(crate) struct Prefetch<'a> {
    store: &'a dyn RowStore,
    values: std::collections::HashMap<Vec<u8>, Option<Vec<u8>>>,
}

impl<'a> Prefetch<'a> {
    pub(crate) fn new(store: &'a dyn RowStore, mut keys: Vec<Vec<u8>>) -> Result<Self> {
        keys.sort();
        keys.dedup();
        let values = store.get_many(&keys)?;
        Ok(Prefetch {
            store,
            values: keys.into_iter().zip(values).collect(),
        })
    }

    pub(crate) fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        match self.values.get(key) {
            Some(value) => Ok(value.clone()),
            None => self.store.get(key),
        }
    }
}

/// `MetricState` as stored: JSON objects cannot have label maps as keys, so tables become lists.
/// The binary format numbers variants by position: append new ones, never reorder.
#[derive(serde::Serialize, serde::Deserialize)]
enum StoredState {
    Avg {
        summation: i64,
        count: i64,
    },
    Sum(i64),
    Latest(i64),
    Max(i64),
    Min(i64),
    AvgTable(Vec<(Labels, i64, i64)>),
    Table(Vec<(Labels, i64)>),
    /// A [`StoredState::Table`] whose every label set is just `le` = a bound (a histogram): the
    /// bounds as numbers, 3–4 bytes a bucket where the label text took ~11 (format 5).
    Buckets(Vec<(i64, i64)>),
    /// The same for a [`StoredState::AvgTable`].
    AvgBuckets(Vec<(i64, i64, i64)>),
}

/// The histogram bound a label set names, when `le` = a bound is all it holds, written as
/// [`skylark_core::bound_text`] writes it (so that decoding gives the same labels back).
fn bound_of(labels: &Labels) -> Option<i64> {
    let [(key, value)] = labels.pairs() else {
        return None;
    };
    if key.as_ref() != skylark_core::LE {
        return None;
    }
    let bound: i64 = value.as_ref().parse().ok()?;
    (bound.to_string() == value.as_ref()).then_some(bound)
}

fn bound_labels(bound: i64) -> Labels {
    skylark_core::labels_with_le(&Labels::new(), bound)
}

#[derive(serde::Serialize, serde::Deserialize)]
struct StoredMetricRow {
    /// Kept so a row stays readable by hand and a redefinition can be spotted.
    function: MetricFunction,
    state: StoredState,
    /// The metrics mark of the flush that last wrote the row: the row holds every emission of
    /// write-ahead-log entries up to it. Flushes land in chunks, so this, not the global mark,
    /// tells a reader or a replay whether an entry is already in the row. Rows written before
    /// chunked flushes have none (0): they were stored whole, with the global mark.
    #[serde(default)]
    through: u64,
}

/// A decoded metric row.
#[derive(Debug)]
pub(crate) struct MetricRow {
    pub(crate) function: MetricFunction,
    /// See `StoredMetricRow::through`.
    pub(crate) through: u64,
    pub(crate) state: MetricState,
}

impl From<&MetricState> for StoredState {
    fn from(state: &MetricState) -> Self {
        match state {
            MetricState::Avg { summation, count } => StoredState::Avg {
                summation: *summation,
                count: *count,
            },
            MetricState::Sum(v) => StoredState::Sum(*v),
            MetricState::Latest(v) => StoredState::Latest(*v),
            MetricState::Max(v) => StoredState::Max(*v),
            MetricState::Min(v) => StoredState::Min(*v),
            MetricState::AvgTable(t) => match t
                .iter()
                .map(|(k, (s, c))| Some((bound_of(k)?, *s, *c)))
                .collect::<Option<Vec<_>>>()
            {
                Some(buckets) if !buckets.is_empty() => StoredState::AvgBuckets(buckets),
                _ => {
                    StoredState::AvgTable(t.iter().map(|(k, (s, c))| (k.clone(), *s, *c)).collect())
                }
            },
            MetricState::Table(t) => match t
                .iter()
                .map(|(k, v)| Some((bound_of(k)?, *v)))
                .collect::<Option<Vec<_>>>()
            {
                Some(buckets) if !buckets.is_empty() => StoredState::Buckets(buckets),
                _ => StoredState::Table(t.iter().map(|(k, v)| (k.clone(), *v)).collect()),
            },
        }
    }
}

impl From<StoredState> for MetricState {
    fn from(state: StoredState) -> Self {
        match state {
            StoredState::Avg { summation, count } => MetricState::Avg { summation, count },
            StoredState::Sum(v) => MetricState::Sum(v),
            StoredState::Latest(v) => MetricState::Latest(v),
            StoredState::Max(v) => MetricState::Max(v),
            StoredState::Min(v) => MetricState::Min(v),
            StoredState::AvgTable(t) => MetricState::AvgTable(
                t.into_iter()
                    .map(|(k, s, c)| (k, (s, c)))
                    .collect::<BTreeMap<_, _>>(),
            ),
            StoredState::Table(t) => MetricState::Table(t.into_iter().collect()),
            StoredState::Buckets(b) => MetricState::Table(
                b.into_iter()
                    .map(|(bound, v)| (bound_labels(bound), v))
                    .collect(),
            ),
            StoredState::AvgBuckets(b) => MetricState::AvgTable(
                b.into_iter()
                    .map(|(bound, s, c)| (bound_labels(bound), (s, c)))
                    .collect(),
            ),
        }
    }
}

fn corrupt(key: &[u8], source: serde_json::Error) -> Error {
    Error::Corrupt {
        key: String::from_utf8_lossy(key).into_owned(),
        source,
    }
}

/// The first byte of a metric row in the binary format (format 2). A format-1 row is a JSON
/// object, so it starts with `{`.
const BINARY_METRIC_ROW: u8 = 2;

/// Encodes a metric row written by the flush holding mark `through`: a tag byte, then the row in
/// postcard (varints: a scalar row is a few bytes, against ~60 as JSON).
pub(crate) fn encode_metric(
    function: MetricFunction,
    state: &MetricState,
    through: u64,
) -> Result<Vec<u8>> {
    let row = StoredMetricRow {
        function,
        state: state.into(),
        through,
    };
    postcard::to_extend(&row, vec![BINARY_METRIC_ROW]).map_err(Error::EncodeRow)
}

/// Decodes a metric row stored under `key`, in either format.
pub(crate) fn decode_metric(key: &[u8], bytes: &[u8]) -> Result<MetricRow> {
    let row: StoredMetricRow = match bytes.split_first() {
        Some((&BINARY_METRIC_ROW, rest)) => {
            postcard::from_bytes(rest).map_err(|source| Error::CorruptRow {
                key: String::from_utf8_lossy(key).into_owned(),
                source,
            })?
        }
        _ => serde_json::from_slice(bytes).map_err(|e| corrupt(key, e))?,
    };
    Ok(MetricRow {
        function: row.function,
        through: row.through,
        state: row.state.into(),
    })
}

/// Whether a stored metric row is still in format 1 (JSON).
pub(crate) fn is_json_metric(bytes: &[u8]) -> bool {
    bytes.first() != Some(&BINARY_METRIC_ROW)
}

/// A service-in-layer row.
#[derive(serde::Serialize, serde::Deserialize)]
pub(crate) struct StoredService {
    pub(crate) name: String,
    pub(crate) layer: Layer,
}

/// Encodes any row type with serde.
/// Applies a batch of the write-ahead log's records: `marked` (it carries the log's mark) is
/// applied without a sync of its own. The log keeps every entry past the metrics mark, and the
/// flush that moves that mark syncs after this batch (sled recovers its log as a prefix, so that
/// sync covers it); a crash before then replays the entry. Without a mark there is no such copy,
/// so the batch is synced now.
pub(crate) fn apply_records(store: &dyn RowStore, ops: Vec<RowOp>, marked: bool) -> Result<()> {
    if marked {
        store.apply_unsynced(ops)
    } else {
        store.apply(ops)
    }
}

pub(crate) fn encode<T: serde::Serialize>(row: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(row).map_err(Error::Encode)
}

/// The first byte of a record row (log, segment) in the binary format (format 2). Format-1
/// rows are JSON objects, so they start with `{`.
const BINARY_RECORD_ROW: u8 = 2;

/// Encodes a log or segment row: a tag byte, then postcard. Only for types whose serde shape
/// is positional (no skipped fields, no self-describing values): postcard has no field names.
pub(crate) fn encode_record<T: serde::Serialize>(row: &T) -> Result<Vec<u8>> {
    postcard::to_extend(row, vec![BINARY_RECORD_ROW]).map_err(Error::EncodeRow)
}

/// Whether a log or segment row is in the binary format.
pub(crate) fn is_binary_record(bytes: &[u8]) -> bool {
    bytes.first() == Some(&BINARY_RECORD_ROW)
}

/// Decodes a log or segment row in either format.
pub(crate) fn decode_record<T: serde::de::DeserializeOwned>(key: &[u8], bytes: &[u8]) -> Result<T> {
    match bytes.split_first() {
        Some((&BINARY_RECORD_ROW, rest)) => {
            postcard::from_bytes(rest).map_err(|source| Error::CorruptRow {
                key: String::from_utf8_lossy(key).into_owned(),
                source,
            })
        }
        _ => decode(key, bytes),
    }
}

/// Decodes a row of any type stored under `key`.
pub(crate) fn decode<T: serde::de::DeserializeOwned>(key: &[u8], bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| corrupt(key, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labeled_tables_round_trip() {
        let mut labels = Labels::new();
        labels.insert("le", "10");
        let mut t = BTreeMap::new();
        t.insert(labels, (7, 2));
        let state = MetricState::AvgTable(t);
        let bytes = encode_metric(MetricFunction::AvgHistogramPercentile, &state, 42).unwrap();
        let row = decode_metric(b"k", &bytes).unwrap();
        assert_eq!(row.state, state);
        assert_eq!(row.through, 42);
    }

    /// A histogram table as the rules build it: `le` = each bound, as `bound_text` writes it.
    fn histogram(bounds: &[i64]) -> BTreeMap<Labels, i64> {
        bounds
            .iter()
            .map(|b| {
                let mut labels = Labels::new();
                labels.insert("le", skylark_core::bound_text(*b));
                (labels, b / 10 + 1)
            })
            .collect()
    }

    #[test]
    fn histogram_tables_are_stored_as_numbers_and_read_back_the_same() {
        let bounds = [10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, i64::MAX];
        let table = MetricState::Table(histogram(&bounds));
        let bytes = encode_metric(MetricFunction::SumHistogramPercentile, &table, 7).unwrap();
        let MetricState::Table(t) = &table else {
            unreachable!()
        };
        let as_text = postcard::to_allocvec(&StoredState::Table(
            t.iter().map(|(k, v)| (k.clone(), *v)).collect(),
        ))
        .unwrap();
        assert!(
            bytes.len() * 3 < as_text.len() * 2,
            "{} bytes against {} as label text",
            bytes.len(),
            as_text.len()
        );
        assert_eq!(decode_metric(b"k", &bytes).unwrap().state, table);

        let avg = MetricState::AvgTable(
            histogram(&bounds)
                .into_iter()
                .map(|(k, v)| (k, (v * 3, v)))
                .collect(),
        );
        let bytes = encode_metric(MetricFunction::AvgHistogramPercentile, &avg, 7).unwrap();
        assert_eq!(decode_metric(b"k", &bytes).unwrap().state, avg);
    }

    #[test]
    fn other_tables_keep_their_label_text() {
        // More labels than `le`, a bound not written as `bound_text` writes it, another label.
        let mut extra = Labels::new();
        extra.insert("le", "10");
        extra.insert("status", "200");
        let mut padded = Labels::new();
        padded.insert("le", "010");
        let mut other = Labels::new();
        other.insert("code", "10");
        for labels in [extra, padded, other] {
            let mut t = histogram(&[25, 50]);
            t.insert(labels.clone(), 4);
            let state = MetricState::Table(t);
            let bytes = encode_metric(MetricFunction::SumLabeled, &state, 1).unwrap();
            let row = decode_metric(b"k", &bytes).unwrap();
            assert_eq!(row.state, state, "{labels:?}");
        }
    }

    #[test]
    fn a_binary_row_is_a_fraction_of_its_json() {
        let bytes = encode_metric(
            MetricFunction::Avg,
            &MetricState::Avg {
                summation: 12_345,
                count: 17,
            },
            1_000_000,
        )
        .unwrap();
        let json = br#"{"function":"Avg","state":{"Avg":{"summation":12345,"count":17}}}"#;
        assert!(bytes.len() * 5 < json.len(), "{} bytes", bytes.len());
        let row = decode_metric(b"k", &bytes).unwrap();
        assert_eq!(
            row.state,
            MetricState::Avg {
                summation: 12_345,
                count: 17
            }
        );
        assert_eq!(row.through, 1_000_000);
        assert!(!is_json_metric(&bytes));
        assert!(is_json_metric(json));
    }

    #[test]
    fn a_truncated_binary_row_is_reported_with_its_key() {
        let bytes = encode_metric(MetricFunction::Sum, &MetricState::Sum(1 << 40), 9).unwrap();
        let err = decode_metric(b"mykey", &bytes[..bytes.len() - 1]).unwrap_err();
        assert_eq!(err.to_string(), "stored row mykey is corrupt");
    }

    #[test]
    fn rows_stored_before_chunked_flushes_read_as_through_zero() {
        let row = decode_metric(b"k", br#"{"function":"Sum","state":{"Sum":7}}"#).unwrap();
        assert_eq!(row.state, MetricState::Sum(7));
        assert_eq!(row.through, 0);
    }

    #[test]
    fn garbage_is_reported_with_its_key() {
        let err = decode_metric(b"mykey", b"not json").unwrap_err();
        assert_eq!(err.to_string(), "stored row mykey is corrupt");
    }
}
