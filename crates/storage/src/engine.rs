//! The storage semantics shared by every backend: in-memory aggregation of metric rows, the
//! traffic mirror, batched read-combine-write flushes, records and retention.
use crate::alarms;
use crate::applied::{self, AppliedSeqs, MarkKind, MetricsMark};
use crate::issues;
use crate::keys::{self, NameId, DAY_MS, METRIC_STEPS};
use crate::model::{
    AlarmQuery, AlarmRecord, EndpointRecord, InstanceRecord, LogQuery, RetentionPolicy,
    ServiceRecord, StoredLog, TemplateRecord, TraceQuery,
};
use crate::model::{IssueQuery, SourceMapRecord};
use crate::names::Names;
use crate::records::{self, LogIds};
use crate::rollups::{as_minute, Watermarks};
use crate::rows::{self, RowOp, RowStore};
use crate::templates;
use crate::traffic::{TakenTraffic, TrafficCache};
use crate::Result;
use parking_lot::{Mutex, RwLock};
use skylark_core::traffic::Traffic;
use skylark_core::{
    EndpointId, InstanceId, Issue, IssueOccurrence, Layer, LogRecord, MetricDefinition,
    MetricEmission, MetricFunction, MetricState, MetricValue, SegmentRecord, ServiceId, Step,
    TimeBucket,
};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A not-yet-stored metric row.
#[derive(Clone)]
struct PendingRow {
    function: MetricFunction,
    state: MetricState,
}

/// Pending rows keyed by their storage key. Hashed, not sorted: every emission looks up three
/// rows (minute, hour, day) whose keys share long prefixes, which a sorted map compares byte by
/// byte; the prefix scans of queries and retention are rare and walk the few thousand rows.
type Rows = foldhash::HashMap<Vec<u8>, PendingRow>;

/// Memory of one pending row apart from its key bytes and table entries: the map slot (key
/// `Vec` header, `PendingRow`), hash-table control bytes and load factor, the key's allocation
/// rounding.
const ROW_OVERHEAD_BYTES: usize = 96;

/// Memory of one labeled-table entry: its B-tree slot and node share, and the label set it
/// keys (shared `Arc`s of shared text, counted once per row that holds them).
const TABLE_ENTRY_BYTES: usize = 104;

/// Estimated memory of a pending row under `key`.
fn row_bytes(key: &[u8], state: &MetricState) -> usize {
    ROW_OVERHEAD_BYTES + key.len() + state.table_len() * TABLE_ENTRY_BYTES
}

/// Estimated memory of every row of `rows`.
fn rows_bytes(rows: &Rows) -> usize {
    rows.iter().map(|(k, row)| row_bytes(k, &row.state)).sum()
}

/// Combines `state` into the row under `key`; returns how many bytes the row grew by.
fn merge_into(
    rows: &mut Rows,
    key: Vec<u8>,
    function: MetricFunction,
    state: &MetricState,
) -> usize {
    match rows.get_mut(&key) {
        Some(row) => {
            let before = row.state.table_len();
            row.state.combine(function, state);
            row.state.table_len().saturating_sub(before) * TABLE_ENTRY_BYTES
        }
        None => {
            let bytes = row_bytes(&key, state);
            rows.insert(
                key,
                PendingRow {
                    function,
                    state: state.clone(),
                },
            );
            bytes
        }
    }
}

/// Rows per chunk of a flush: a chunk's rows leave `in_flight` (and its memory) together once
/// they are all stored, and a read that catches a row in a chunk being stored reads it again
/// when the chunk has landed.
pub(crate) const FLUSH_CHUNK_ROWS: usize = 1024;

/// Deletions per batch while expiring metric rows, for the same reason.
const EXPIRY_CHUNK_ROWS: usize = 4096;

/// How far a flush has got in storing its in-flight rows, for readers that do not wait for it.
///
/// A flush stores its rows chunk by chunk, in key order, and removes a chunk's rows from
/// `in_flight` only after the store holds them. A reader that found a row in flight cannot
/// tell from the store alone whether the store already holds that row too (it would count it
/// twice); it can from this: if the row's chunk had not begun by the time its store read was
/// done, the store did not hold it. Chunks are numbered across flushes.
struct FlushProgress {
    /// Bumped whenever `in_flight` changes hands wholesale (taken from `pending`, put back):
    /// a read that spans a change starts over.
    generation: AtomicU64,
    /// How many chunks have begun being stored, ever.
    started: AtomicU64,
    /// The running flush's keys in chunk order; `None` until it has sorted them (no chunk of it
    /// has begun then).
    order: RwLock<Option<ChunkOrder>>,
}

/// A flush's keys, sorted, and the number of the chunk the first [`FLUSH_CHUNK_ROWS`] go in.
struct ChunkOrder {
    keys: Arc<Vec<Vec<u8>>>,
    first_chunk: u64,
}

impl FlushProgress {
    fn new() -> Self {
        FlushProgress {
            generation: AtomicU64::new(0),
            started: AtomicU64::new(0),
            order: RwLock::new(None),
        }
    }

    /// The number of the chunk `key` is stored in by the running flush, if it has sorted its
    /// keys and `key` is one of them.
    fn chunk_of(&self, key: &[u8]) -> Option<u64> {
        let order = self.order.read();
        let order = order.as_ref()?;
        let index = order
            .keys
            .binary_search_by(|k| k.as_slice().cmp(key))
            .ok()?;
        Some(order.first_chunk + (index / FLUSH_CHUNK_ROWS) as u64)
    }
}

/// How long a read waits for a chunk it caught being stored before it reports the persist as
/// stuck (a chunk lands in milliseconds).
const CHUNK_WAIT_LIMIT: Duration = Duration::from_secs(30);

/// Everything a backend-specific storage shares.
pub(crate) struct Engine<K: RowStore> {
    store: K,
    /// New metric rows since the last flush began.
    pending: Mutex<Rows>,
    /// `pending.len()` as of its last change, readable without the lock: every request asks
    /// (backpressure) while the applier holds the lock to aggregate.
    pending_len: AtomicUsize,
    /// Estimated memory of `pending`, kept with `pending_len`.
    pending_bytes: AtomicUsize,
    /// Estimated memory of `in_flight`, shrinking as its chunks land.
    in_flight_bytes: AtomicUsize,
    /// Rows a running flush took from `pending` and has not stored yet, visible to reads. A
    /// chunk's rows leave it once the chunk is stored; no lock is held while storing, and
    /// readers tell a row already stored from one not yet by [`FlushProgress`].
    /// Lock order: `in_flight` before `pending`.
    in_flight: RwLock<Rows>,
    /// Which in-flight chunk a running flush is storing (see [`Engine::read_rows`]).
    progress: FlushProgress,
    traffic: RwLock<TrafficCache>,
    /// Serialises flushes and retention, which both read-modify-write stored rows.
    flush_lock: Mutex<()>,
    /// Serialises RUM writes: each reads and rewrites the session summaries it touches.
    rum_lock: Mutex<()>,
    log_ids: LogIds,
    /// The write-ahead-log mark of the aggregated metrics.
    metrics_mark: MetricsMark,
    /// Serialises the read-fold-write of issue rows (ingest and status changes).
    issues_lock: Mutex<()>,
    /// Which hours and days are closed and built (see `rollups`).
    rollups: Watermarks,
    /// The ids metric keys use for metric names and entity ids.
    names: Names,
    /// Epoch milliseconds now: what closes hours and days.
    clock: fn() -> i64,
    /// The mark the last flush stored, [`FLUSH_FAILED`] after a failed one, [`NO_FLUSH_YET`]
    /// before any: what a rollup build may rely on.
    last_flush_stored: AtomicU64,
}

/// `last_flush_stored` after a failed flush.
const FLUSH_FAILED: u64 = u64::MAX;
/// `last_flush_stored` before the first flush of this process.
const NO_FLUSH_YET: u64 = u64::MAX - 1;

/// The system clock in epoch milliseconds.
fn system_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl<K: RowStore> Engine<K> {
    /// An engine over `store`, with the traffic mirror loaded from it.
    pub(crate) fn new(store: K) -> Result<Self> {
        Self::with_clock(store, system_ms)
    }

    /// An engine whose hours and days close by `clock` (epoch milliseconds).
    pub(crate) fn with_clock(store: K, clock: fn() -> i64) -> Result<Self> {
        // The two long reads of an open, side by side: each scans rows of its own (a migration
        // rewrites metric rows and names, never entity rows).
        let (names, traffic) = std::thread::scope(|scope| {
            let traffic = scope.spawn(|| TrafficCache::load(&store));
            let names = migrate_format(&store);
            let traffic = traffic
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            (names, traffic)
        });
        let (names, traffic) = (names?, traffic?);
        let rollups = Watermarks::load(&store, clock())?;
        let metrics_mark = MetricsMark::load(&store)?;
        Ok(Engine {
            store,
            pending: Mutex::new(Rows::default()),
            pending_len: AtomicUsize::new(0),
            pending_bytes: AtomicUsize::new(0),
            in_flight_bytes: AtomicUsize::new(0),
            in_flight: RwLock::new(Rows::default()),
            progress: FlushProgress::new(),
            traffic: RwLock::new(traffic),
            flush_lock: Mutex::new(()),
            rum_lock: Mutex::new(()),
            log_ids: LogIds::new(),
            metrics_mark,
            issues_lock: Mutex::new(()),
            rollups,
            names,
            clock,
            last_flush_stored: AtomicU64::new(NO_FLUSH_YET),
        })
    }

    /// Aggregates `emissions` and marks every log entry up to `seq` as aggregated, under one
    /// lock so a flush takes either both or neither.
    pub(crate) fn write_metrics_through(
        &self,
        seq: u64,
        emissions: Vec<MetricEmission>,
    ) -> Result<()> {
        let mut pending = self.pending.lock();
        if seq <= self.metrics_mark.recovery_horizon() {
            // A replay of an entry a cut-short flush may have stored in some rows already.
            self.aggregate(&mut pending, emissions, |key| {
                Ok(match self.store.get(key)? {
                    Some(bytes) => rows::decode_metric(key, &bytes)?.through < seq,
                    None => true,
                })
            })?;
        } else {
            self.aggregate(&mut pending, emissions, |_| Ok(true))?;
        }
        self.pending_len.store(pending.len(), Ordering::Relaxed);
        self.metrics_mark.advance(seq);
        Ok(())
    }

    pub(crate) fn write_logs_through(&self, seq: u64, logs: Vec<LogRecord>) -> Result<()> {
        records::write_logs(
            &self.store,
            &self.log_ids,
            logs,
            Some(MarkKind::Logs.op(seq)),
        )
    }

    pub(crate) fn write_segments_through(
        &self,
        seq: u64,
        segments: Vec<SegmentRecord>,
    ) -> Result<()> {
        records::write_segments(&self.store, segments, Some(MarkKind::Segments.op(seq)))
    }

    pub(crate) fn write_rum_events(&self, events: Vec<skylark_core::RumEvent>) -> Result<()> {
        let _writing = self.rum_lock.lock();
        crate::rum::write_rum_events(&self.store, events, None)
    }

    pub(crate) fn write_rum_events_through(
        &self,
        seq: u64,
        events: Vec<skylark_core::RumEvent>,
    ) -> Result<()> {
        let _writing = self.rum_lock.lock();
        crate::rum::write_rum_events(&self.store, events, Some(MarkKind::Rum.op(seq)))
    }

    pub(crate) fn query_rum_events(&self, query: &crate::RumQuery) -> Result<crate::RumPage> {
        crate::rum::query_rum_events(&self.store, query)
    }

    pub(crate) fn stored_rum_view(
        &self,
        view: &skylark_core::RumEvent,
    ) -> Result<Option<skylark_core::RumEvent>> {
        crate::rum::stored_view(&self.store, view)
    }

    pub(crate) fn rum_session(&self, id: &str) -> Result<Option<skylark_core::RumSession>> {
        crate::rum::stored_session(&self.store, id)
    }

    pub(crate) fn query_rum_sessions(
        &self,
        query: &crate::SessionQuery,
    ) -> Result<crate::SessionPage> {
        crate::rum::query_sessions(&self.store, query)
    }

    pub(crate) fn rum_session_seen(&self, session_id: &str) -> Result<bool> {
        crate::rum::session_seen(&self.store, session_id)
    }

    pub(crate) fn record_issue_occurrences(
        &self,
        seq: Option<u64>,
        occurrences: Vec<IssueOccurrence>,
        fold: &issues::IssueFold,
    ) -> Result<()> {
        let _guard = self.issues_lock.lock();
        issues::record_occurrences(&self.store, seq, occurrences, fold)
    }

    pub(crate) fn update_issue(
        &self,
        id: &str,
        change: &mut dyn FnMut(Issue) -> Issue,
    ) -> Result<Option<Issue>> {
        let _guard = self.issues_lock.lock();
        issues::update_issue(&self.store, id, change)
    }

    pub(crate) fn get_issue(&self, id: &str) -> Result<Option<Issue>> {
        issues::get_issue(&self.store, id)
    }

    pub(crate) fn query_issues(&self, query: &IssueQuery) -> Result<(Vec<Issue>, usize)> {
        issues::query_issues(&self.store, query)
    }

    pub(crate) fn issue_events(
        &self,
        id: &str,
        offset: usize,
        limit: usize,
    ) -> Result<Vec<IssueOccurrence>> {
        issues::issue_events(&self.store, id, offset, limit)
    }

    pub(crate) fn issue_minutes(
        &self,
        id: &str,
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<(i64, u64)>> {
        issues::issue_minutes(&self.store, id, start_ms, end_ms)
    }

    pub(crate) fn put_source_map(&self, record: &SourceMapRecord, map: &[u8]) -> Result<()> {
        issues::put_source_map(&self.store, record, map)
    }

    pub(crate) fn source_map(
        &self,
        service: &str,
        version: &str,
        file: &str,
    ) -> Result<Option<Vec<u8>>> {
        issues::source_map(&self.store, service, version, file)
    }

    pub(crate) fn list_source_maps(&self, service: Option<&str>) -> Result<Vec<SourceMapRecord>> {
        issues::list_source_maps(&self.store, service)
    }

    pub(crate) fn delete_source_map(
        &self,
        service: &str,
        version: &str,
        file: &str,
    ) -> Result<bool> {
        issues::delete_source_map(&self.store, service, version, file)
    }

    pub(crate) fn applied_seqs(&self) -> Result<AppliedSeqs> {
        applied::read_applied(&self.store)
    }

    pub(crate) fn write_metrics(&self, emissions: Vec<MetricEmission>) -> Result<()> {
        let mut pending = self.pending.lock();
        self.aggregate(&mut pending, emissions, |_| Ok(true))?;
        self.pending_len.store(pending.len(), Ordering::Relaxed);
        Ok(())
    }

    /// Combines `emissions` into their minute, hour and day rows, each row only when `wanted`
    /// says so for its key.
    fn aggregate(
        &self,
        pending: &mut Rows,
        emissions: Vec<MetricEmission>,
        mut wanted: impl FnMut(&[u8]) -> Result<bool>,
    ) -> Result<()> {
        let mut key = Vec::new();
        let mut grown = 0usize;
        if let Some(latest) = emissions.iter().map(|e| as_minute(e.minute).value).max() {
            self.rollups.saw_minute(latest);
        }
        // Consecutive emissions mostly share their metric: look its id up once per run.
        let mut last_metric: Option<(&str, NameId)> = None;
        for emission in &emissions {
            let function = emission.metric.function;
            let state = MetricState::from_emission(function, &emission.value);
            let name = emission.metric.name.as_str();
            let metric_id = match last_metric {
                Some((last, id)) if last == name => Some(id),
                _ => self.names.id_or_new(name),
            };
            let (Some(metric_id), Some(entity)) =
                (metric_id, self.names.id_or_new(&emission.entity.id()))
            else {
                tracing::warn!(metric = %name, "metric key dictionary full, emission dropped");
                continue;
            };
            last_metric = Some((name, metric_id));
            let base = as_minute(emission.minute);
            // Hour and day rows take the raw state of each emission (not minute values), so
            // their averages are Σ/count over every emission, as OAP's toHour/toDay. While the
            // hour (day) is open, its row is built later from the minute rows instead.
            for step in METRIC_STEPS
                .into_iter()
                .filter(|s| *s == Step::Minute || self.rollups.takes_directly(base, *s))
            {
                let bucket = base.to_step(step);
                match keys::write_metric_key(&mut key, metric_id, entity, bucket) {
                    Some(()) if !wanted(&key)? => {}
                    // Most rows are already pending: combine without allocating a key.
                    Some(()) => match pending.get_mut(key.as_slice()) {
                        Some(row) => {
                            let before = row.state.table_len();
                            row.state.combine(function, &state);
                            grown +=
                                row.state.table_len().saturating_sub(before) * TABLE_ENTRY_BYTES;
                        }
                        None => grown += merge_into(pending, key.clone(), function, &state),
                    },
                    // Emissions are per minute or coarser: every step here is stored.
                    None => {}
                }
            }
        }
        self.pending_bytes.fetch_add(grown, Ordering::Relaxed);
        Ok(())
    }

    pub(crate) fn write_traffic(&self, traffic: Vec<Traffic>, now_ms: i64) -> Result<()> {
        self.traffic.write().record(traffic, now_ms);
        Ok(())
    }

    pub(crate) fn pending_rows(&self) -> usize {
        self.pending_len.load(Ordering::Relaxed)
    }

    pub(crate) fn pending_bytes(&self) -> usize {
        self.pending_bytes.load(Ordering::Relaxed) + self.in_flight_bytes.load(Ordering::Relaxed)
    }

    /// Stores every pending row in chunks of [`FLUSH_CHUNK_ROWS`], each row with the flush's
    /// mark, and the mark itself (with the entity traffic) in the last chunk.
    ///
    /// A chunk is atomic but the flush is not: after a crash between chunks the stored mark is
    /// below what some rows hold. The "started" mark, stored with the first chunk, tells the
    /// next start to replay the entries up to it row by row (`write_metrics_through`), adding
    /// an entry only to rows whose own mark is below it, so nothing counts twice.
    pub(crate) fn flush(&self) -> Result<()> {
        let _flushing = self.flush_lock.lock();
        let started = Instant::now();
        let mark = {
            let mut in_flight = self.in_flight.write();
            let mut pending = self.pending.lock();
            std::mem::swap(&mut *in_flight, &mut *pending);
            self.progress.generation.fetch_add(1, Ordering::SeqCst);
            *self.progress.order.write() = None;
            // Emissions from here on go to the rows of hours that close now directly; those
            // taken before are stored below, then the closed hours are built from them.
            self.rollups.close_through((self.clock)());
            self.pending_len.store(pending.len(), Ordering::Relaxed);
            let bytes = self.pending_bytes.swap(0, Ordering::Relaxed);
            self.in_flight_bytes.store(bytes, Ordering::Relaxed);
            self.metrics_mark.take()
        };
        let mut keys: Vec<Vec<u8>> = self.in_flight.read().keys().cloned().collect();
        // Key order: a chunk touches neighbouring tree leaves.
        keys.sort_unstable();
        let keys = Arc::new(keys);
        let first_chunk = self.progress.started.load(Ordering::SeqCst);
        // Published before any chunk begins: readers find each row's chunk in it.
        *self.progress.order.write() = Some(ChunkOrder {
            keys: keys.clone(),
            first_chunk,
        });
        let result = self.write_in_flight(&keys, first_chunk, mark);
        let stored = match result {
            Ok(()) => {
                self.metrics_mark.stored(mark);
                self.last_flush_stored.store(mark, Ordering::Release);
                tracing::debug!(
                    rows = keys.len(),
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "storage flushed"
                );
                Ok(())
            }
            Err((taken, error)) => {
                self.last_flush_stored
                    .store(FLUSH_FAILED, Ordering::Release);
                tracing::error!(%error, "storage flush failed, rows kept in memory for the next one");
                self.restore_in_flight();
                if let Some(taken) = taken {
                    self.traffic.write().restore_dirty(taken);
                }
                Err(error)
            }
        };
        stored?;
        // Every record of an entry up to `mark` was handed to the store before that entry's
        // emissions, so once this returns, everything up to the metrics mark is stored.
        self.store.seal()
    }

    /// Reads, combines and writes the in-flight rows under `keys`, chunk by chunk, each row
    /// leaving `in_flight` as its chunk lands; the last chunk also stores `mark`. The names
    /// handed out and the traffic changed since the last flush go first, in chunks of their
    /// own: a first flush at 1,000 services has 25,000 new names, and one batch of them held
    /// every reader off for a third of a second. On failure, hands back the traffic it took.
    fn write_in_flight(
        &self,
        keys: &[Vec<u8>],
        first_chunk: u64,
        mark: u64,
    ) -> std::result::Result<(), (Option<TakenTraffic>, crate::Error)> {
        // Names before any row that uses them: a row stored without its names could not be
        // read. Names stored without their rows are harmless (an id is never reused).
        let (names, count) = self.names.unstored();
        self.store_in_chunks(names).map_err(|error| (None, error))?;
        self.names.stored_up_to(count);
        // Traffic dirtied by any entry up to `mark` was dirty when the flush began, so it is
        // all stored before the mark is.
        let mut traffic = Vec::new();
        let taken = self
            .traffic
            .write()
            .take_dirty(&mut traffic)
            .map_err(|error| (None, error))?;
        self.store_in_chunks(traffic)
            .and_then(|()| self.write_rows(keys, first_chunk, mark))
            // Durable once, with no lock held: readers already see the rows, and only the
            // mark's durability matters to the write-ahead log, which is cut back after this.
            .and_then(|()| self.store.sync())
            .map_err(|error| (Some(taken), error))
    }

    /// The in-flight rows of [`Engine::write_in_flight`], chunk by chunk, with the
    /// "started" mark in the first chunk and `mark` itself in the last.
    fn write_rows(&self, keys: &[Vec<u8>], first_chunk: u64, mark: u64) -> Result<()> {
        let chunks: Vec<&[Vec<u8>]> = if keys.is_empty() {
            vec![&[]]
        } else {
            keys.chunks(FLUSH_CHUNK_ROWS).collect()
        };
        let last = chunks.len() - 1;
        for (index, chunk) in chunks.into_iter().enumerate() {
            let mut ops: Vec<RowOp> = Vec::with_capacity(chunk.len() + 2);
            if index == 0 && !chunk.is_empty() {
                ops.push(MarkKind::MetricsStarted.op(mark));
            }
            {
                let in_flight = self.in_flight.read();
                for key in chunk {
                    let Some(row) = in_flight.get(key) else {
                        continue;
                    };
                    let state = match self.store.get(key)? {
                        Some(bytes) => {
                            let mut stored = rows::decode_metric(key, &bytes)?.state;
                            stored.combine(row.function, &row.state);
                            stored
                        }
                        None => row.state.clone(),
                    };
                    let value = rows::encode_metric(row.function, &state, mark)?;
                    ops.push((key.clone(), Some(value)));
                }
            }
            if index == last {
                ops.extend(self.metrics_mark.op(mark));
            }
            if ops.is_empty() {
                continue;
            }
            // From here until its rows leave `in_flight`, a reader of them cannot know whether
            // the store holds them yet, and reads again once they have left.
            self.progress
                .started
                .store(first_chunk + index as u64 + 1, Ordering::SeqCst);
            // Row by row: each row is whole on its own (it carries the flush's mark), and a sled
            // batch would hold every query off until the chunk landed (up to a third of a
            // second on a busy host).
            self.store.apply_each_unsynced(ops)?;
            let mut in_flight = self.in_flight.write();
            let mut freed = 0;
            for key in chunk {
                if let Some(row) = in_flight.remove(key) {
                    freed += row_bytes(key, &row.state);
                }
            }
            // Estimates of rows that grew while pending can exceed the sum: never wrap.
            let left = self
                .in_flight_bytes
                .load(Ordering::Relaxed)
                .saturating_sub(freed);
            self.in_flight_bytes.store(left, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Stores `ops` in chunks of [`FLUSH_CHUNK_ROWS`], row by row (see
    /// [`RowStore::apply_each_unsynced`]).
    fn store_in_chunks(&self, ops: Vec<RowOp>) -> Result<()> {
        let mut ops = ops.into_iter();
        loop {
            let chunk: Vec<RowOp> = ops.by_ref().take(FLUSH_CHUNK_ROWS).collect();
            if chunk.is_empty() {
                return Ok(());
            }
            self.store.apply_each_unsynced(chunk)?;
        }
    }

    /// Builds the rows of the hours and days that have closed (see `rollups`). Only after a
    /// flush that stored everything: rows taken before an hour closed must all be stored, and a
    /// failed flush puts some back in memory without their hour's share.
    pub(crate) fn build_rollups(&self) -> Result<usize> {
        let _flushing = self.flush_lock.lock();
        let mark = self.last_flush_stored.load(Ordering::Acquire);
        if mark == FLUSH_FAILED || mark == NO_FLUSH_YET {
            return Ok(0);
        }
        let started = Instant::now();
        let built = self
            .rollups
            .build_closed(&self.store, mark, FLUSH_CHUNK_ROWS)?;
        if built > 0 {
            tracing::info!(
                rows = built,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "hour and day rows built"
            );
        }
        Ok(built)
    }

    /// Puts the rows still in flight (those of chunks that did not land) back in front of
    /// anything written since the flush began.
    fn restore_in_flight(&self) {
        let mut in_flight = self.in_flight.write();
        let mut pending = self.pending.lock();
        self.progress.generation.fetch_add(1, Ordering::SeqCst);
        *self.progress.order.write() = None;
        let newer = std::mem::take(&mut *pending);
        let mut restored = std::mem::take(&mut *in_flight);
        for (key, row) in newer {
            merge_into(&mut restored, key, row.function, &row.state);
        }
        *pending = restored;
        self.pending_len.store(pending.len(), Ordering::Relaxed);
        self.pending_bytes
            .store(rows_bytes(&pending), Ordering::Relaxed);
        self.in_flight_bytes.store(0, Ordering::Relaxed);
    }

    pub(crate) fn read_metric(
        &self,
        metric: &MetricDefinition,
        entity_id: &str,
        buckets: &[TimeBucket],
    ) -> Result<Vec<Option<MetricValue>>> {
        let function = metric.function;
        let (Some(metric_id), Some(entity)) =
            (self.names.id(&metric.name), self.names.id(entity_id))
        else {
            // Never written: an id is handed out before the first row that uses it.
            return Ok(buckets.iter().map(|_| None).collect());
        };
        // Every key of every bucket first, so that memory is looked at once for all of them.
        let mut keys = Vec::new();
        let mut spans = Vec::with_capacity(buckets.len());
        let mut parts = Vec::new();
        for bucket in buckets {
            parts.clear();
            self.rollups.parts(*bucket, &mut parts);
            let first = keys.len();
            keys.extend(
                parts
                    .iter()
                    .filter_map(|part| keys::metric_key(metric_id, entity, *part)),
            );
            spans.push(first..keys.len());
        }
        let mut rows = self.read_rows(&keys)?;
        let mut out = Vec::with_capacity(buckets.len());
        for (bucket, span) in buckets.iter().zip(spans) {
            let mut state: Option<MetricState> = None;
            for row in rows[span].iter_mut().flat_map(std::mem::take) {
                match &mut state {
                    Some(s) => s.combine(row.function, &row.state),
                    None => state = Some(row.state),
                }
            }
            out.push(state.map(|s| s.value(function, &metric.percentile_ranks, bucket.step)));
        }
        Ok(out)
    }

    /// The parts of the rows under `keys`, in their order, each counted once: stored, in
    /// flight, pending. Memory is looked at once for all the keys (the applier holds `pending`
    /// while it aggregates) and the store read with one `get_many`.
    ///
    /// No lock is held while the store is read, so a persist storing a chunk never holds a
    /// query off. A row caught in flight while its chunk was being stored may or may not be in
    /// the store read already; then the read starts over once the chunk has left `in_flight`.
    fn read_rows(&self, keys: &[Vec<u8>]) -> Result<Vec<Vec<PendingRow>>> {
        let began = Instant::now();
        loop {
            let (generation, memory) = {
                let in_flight = self.in_flight.read();
                let pending = self.pending.lock();
                let memory: Vec<_> = keys
                    .iter()
                    .map(|key| (in_flight.get(key).cloned(), pending.get(key).cloned()))
                    .collect();
                (self.progress.generation.load(Ordering::SeqCst), memory)
            };
            let stored = self.store.get_many(keys)?;
            let started = self.progress.started.load(Ordering::SeqCst);
            if self.progress.generation.load(Ordering::SeqCst) != generation {
                continue;
            }
            // Rows still in flight are in a chunk that had not begun when the store was read,
            // unless that chunk is among those begun since.
            let caught = keys.iter().zip(&memory).any(|(key, (in_flight, _))| {
                in_flight.is_some()
                    && self
                        .progress
                        .chunk_of(key)
                        .is_some_and(|chunk| chunk < started)
            });
            if caught {
                if began.elapsed() > CHUNK_WAIT_LIMIT {
                    return Err(crate::Error::PersistStuck(CHUNK_WAIT_LIMIT));
                }
                std::thread::sleep(Duration::from_micros(100));
                continue;
            }
            return keys
                .iter()
                .zip(memory)
                .zip(stored)
                .map(|((key, (in_flight, pending)), stored)| {
                    Self::row_parts(key, stored, in_flight, pending)
                })
                .collect();
        }
    }

    /// A row's stored part (if any), then its in-flight and pending parts.
    fn row_parts(
        key: &[u8],
        stored: Option<Vec<u8>>,
        in_flight: Option<PendingRow>,
        pending: Option<PendingRow>,
    ) -> Result<Vec<PendingRow>> {
        let mut parts = Vec::with_capacity(3);
        if let Some(bytes) = stored {
            let row = rows::decode_metric(key, &bytes)?;
            parts.push(PendingRow {
                function: row.function,
                state: row.state,
            });
        }
        parts.extend(in_flight);
        parts.extend(pending);
        Ok(parts)
    }

    pub(crate) fn metric_entities(
        &self,
        metric: &MetricDefinition,
        buckets: &[TimeBucket],
    ) -> Result<Vec<String>> {
        let Some(metric_id) = self.names.id(&metric.name) else {
            return Ok(Vec::new());
        };
        let mut ids = BTreeSet::new();
        let mut parts = Vec::new();
        for bucket in buckets {
            self.rollups.parts(*bucket, &mut parts);
        }
        parts.sort_unstable();
        parts.dedup();
        let prefixes: Vec<Vec<u8>> = parts
            .iter()
            .filter_map(|bucket| keys::metric_prefix(metric_id, *bucket))
            .collect();
        let entity_of = |key: &[u8]| keys::split_metric_key(key).map(|(_, entity)| entity);
        // Memory first, then the store with no lock held: a row that leaves memory meanwhile
        // has been stored before it left, so the store scan finds it.
        // One pass over each map for all prefixes (they are all as long): with a hundred
        // thousand rows in memory, a pass per prefix held the applier and every query off
        // `pending` for most of a second whenever the alarm rules were checked.
        {
            let wanted: std::collections::HashSet<&[u8]> =
                prefixes.iter().map(|p| p.as_slice()).collect();
            let prefix_len = prefixes.first().map_or(0, |p| p.len());
            debug_assert!(prefixes.iter().all(|p| p.len() == prefix_len));
            let mut visit = |key: &[u8]| {
                if key.get(..prefix_len).is_some_and(|p| wanted.contains(p)) {
                    ids.extend(entity_of(key));
                }
            };
            let in_flight = self.in_flight.read();
            let pending = self.pending.lock();
            in_flight.keys().for_each(|key| visit(key));
            pending.keys().for_each(|key| visit(key));
        }
        for prefix in &prefixes {
            self.store.scan_prefix(prefix, &mut |key, _| {
                ids.extend(entity_of(key));
                Ok(())
            })?;
        }
        let mut entities: Vec<String> = ids
            .into_iter()
            .filter_map(|id| self.names.name(id))
            .map(|name| name.to_string())
            .collect();
        entities.sort_unstable();
        Ok(entities)
    }

    pub(crate) fn list_services(&self, layer: Option<Layer>) -> Result<Vec<ServiceRecord>> {
        Ok(self.traffic.read().services(layer))
    }

    pub(crate) fn get_service(&self, id: &ServiceId) -> Result<Option<ServiceRecord>> {
        Ok(self.traffic.read().service(id))
    }

    pub(crate) fn list_instances(
        &self,
        service: &ServiceId,
        since_ms: i64,
    ) -> Result<Vec<InstanceRecord>> {
        Ok(self.traffic.read().instances(service, since_ms))
    }

    pub(crate) fn get_instance(&self, id: &InstanceId) -> Result<Option<InstanceRecord>> {
        Ok(self.traffic.read().instance(id.as_str()))
    }

    pub(crate) fn find_endpoints(
        &self,
        service: &ServiceId,
        keyword: Option<&str>,
        limit: usize,
    ) -> Result<Vec<EndpointRecord>> {
        Ok(self.traffic.read().endpoints(service, keyword, limit))
    }

    pub(crate) fn get_endpoint(&self, id: &EndpointId) -> Result<Option<EndpointRecord>> {
        Ok(self.traffic.read().endpoint(id.as_str()))
    }

    pub(crate) fn write_logs(&self, logs: Vec<LogRecord>) -> Result<()> {
        records::write_logs(&self.store, &self.log_ids, logs, None)
    }

    pub(crate) fn query_logs(&self, query: &LogQuery) -> Result<Vec<StoredLog>> {
        records::query_logs(&self.store, query)
    }

    pub(crate) fn log_tag_keys(&self, start_ms: i64, end_ms: i64) -> Result<Vec<String>> {
        records::tag_autocomplete(&self.store, keys::LOG, None, start_ms, end_ms)
    }

    pub(crate) fn log_tag_values(
        &self,
        key: &str,
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<String>> {
        records::tag_autocomplete(&self.store, keys::LOG, Some(key), start_ms, end_ms)
    }

    pub(crate) fn write_segments(&self, segments: Vec<SegmentRecord>) -> Result<()> {
        records::write_segments(&self.store, segments, None)
    }

    pub(crate) fn query_segments(&self, query: &TraceQuery) -> Result<Vec<SegmentRecord>> {
        records::query_segments(&self.store, query)
    }

    pub(crate) fn get_trace(&self, trace_id: &str) -> Result<Vec<SegmentRecord>> {
        records::get_trace(&self.store, trace_id)
    }

    pub(crate) fn trace_tag_keys(&self, start_ms: i64, end_ms: i64) -> Result<Vec<String>> {
        records::tag_autocomplete(&self.store, keys::SEGMENT, None, start_ms, end_ms)
    }

    pub(crate) fn trace_tag_values(
        &self,
        key: &str,
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<String>> {
        records::tag_autocomplete(&self.store, keys::SEGMENT, Some(key), start_ms, end_ms)
    }

    pub(crate) fn put_template(&self, id: &str, configuration: &str, disabled: bool) -> Result<()> {
        templates::put_template(&self.store, id, configuration, disabled)
    }

    pub(crate) fn get_template(&self, id: &str) -> Result<Option<TemplateRecord>> {
        templates::get_template(&self.store, id)
    }

    pub(crate) fn list_templates(&self) -> Result<Vec<TemplateRecord>> {
        templates::list_templates(&self.store)
    }

    pub(crate) fn write_alarm_records(&self, records: Vec<AlarmRecord>) -> Result<()> {
        alarms::write_alarm_records(&self.store, records)
    }

    pub(crate) fn query_alarms(&self, query: &AlarmQuery) -> Result<Vec<AlarmRecord>> {
        alarms::query_alarms(&self.store, query)
    }

    pub(crate) fn alarm_tag_keys(&self, start_ms: i64, end_ms: i64) -> Result<Vec<String>> {
        records::tag_autocomplete(&self.store, keys::ALARM, None, start_ms, end_ms)
    }

    pub(crate) fn alarm_tag_values(
        &self,
        key: &str,
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<String>> {
        records::tag_autocomplete(&self.store, keys::ALARM, Some(key), start_ms, end_ms)
    }

    pub(crate) fn put_alarm_states(
        &self,
        states: Vec<(String, String, Option<String>)>,
    ) -> Result<()> {
        alarms::put_alarm_states(&self.store, states)
    }

    pub(crate) fn alarm_states(&self) -> Result<Vec<(String, String, String)>> {
        alarms::alarm_states(&self.store)
    }

    pub(crate) fn remove_expired(&self, policy: &RetentionPolicy, now_ms: i64) -> Result<u64> {
        let _flushing = self.flush_lock.lock();
        let records_cutoff_ms =
            now_ms.saturating_sub(i64::from(policy.records_days).saturating_mul(DAY_MS));
        let records = records::remove_expired(&self.store, records_cutoff_ms)?
            + alarms::remove_expired_alarms(&self.store, records_cutoff_ms)?
            + {
                let _writing = self.rum_lock.lock();
                crate::rum::remove_expired_rum(&self.store, records_cutoff_ms)?
            };
        let metrics = self.remove_expired_metrics(policy, now_ms)?;
        tracing::info!(records, records_cutoff_ms, "expired records removed");
        Ok(records + metrics)
    }

    /// Metric rows and entities older than `metrics_days`; the caller holds `flush_lock`.
    fn remove_expired_metrics(&self, policy: &RetentionPolicy, now_ms: i64) -> Result<u64> {
        let cutoff_ms =
            now_ms.saturating_sub(i64::from(policy.metrics_days).saturating_mul(DAY_MS));
        let cutoff_minute = match TimeBucket::from_epoch_ms(cutoff_ms, Step::Minute) {
            Ok(b) => b,
            Err(error) => {
                tracing::warn!(%error, cutoff_ms, "retention cutoff is not a valid time, no metrics removed");
                return Ok(0);
            }
        };
        let mut doomed: BTreeSet<Vec<u8>> = BTreeSet::new();
        let mut ranges = Vec::new();
        for step in METRIC_STEPS {
            // A bucket is expired when it lies wholly before the cutoff's bucket of its step.
            let (Some(start), Some(end)) = (
                keys::metric_step_prefix(step),
                keys::metric_bucket_start(cutoff_minute.to_step(step)),
            ) else {
                continue;
            };
            doomed.extend(self.store.keys_in_range(&start, &end)?);
            ranges.push((start, end));
        }
        {
            // Nothing is in flight: flushes hold `flush_lock` too.
            let mut pending = self.pending.lock();
            for (start, end) in &ranges {
                let expired: Vec<Vec<u8>> = pending
                    .keys()
                    .filter(|k| *k >= start && *k < end)
                    .cloned()
                    .collect();
                for key in expired {
                    pending.remove(&key);
                    doomed.insert(key);
                }
            }
            self.pending_len.store(pending.len(), Ordering::Relaxed);
            self.pending_bytes
                .store(rows_bytes(&pending), Ordering::Relaxed);
        }
        let mut ops: Vec<RowOp> = doomed.into_iter().map(|k| (k, None)).collect();
        let metric_rows = ops.len();
        self.traffic.write().remove_older_than(cutoff_ms, &mut ops);
        let removed = ops.len() as u64;
        // Deleting is idempotent: chunks keep each batch short without any mark.
        while !ops.is_empty() {
            let rest = ops.split_off(ops.len().saturating_sub(EXPIRY_CHUNK_ROWS));
            self.store.apply(rest)?;
        }
        tracing::info!(
            metric_rows,
            entities = removed - metric_rows as u64,
            cutoff = cutoff_minute.value,
            "expired data removed"
        );
        Ok(removed)
    }
}

/// The storage format this build writes: 2 = binary metric rows carrying their persist's mark;
/// 3 = hour and day rows built when their bucket closes (an older build would read an open
/// hour's missing row as no data); 4 = metric keys name their metric and entity by dictionary id;
/// 5 = histogram tables stored as numbers (`rows::StoredState::Buckets`), which a format-4 build
/// cannot decode; 6 = log, segment and RUM event rows in record runs outside sled (`runs`), which a
/// format-5 build would not see. Format 4 → 5 → 6 rewrites nothing: record rows already in sled
/// are read there until they expire.
pub(crate) const CURRENT_FORMAT: u32 = 6;

/// Rows rewritten per batch while migrating.
const MIGRATION_CHUNK_ROWS: usize = 4096;

/// Brings a data folder to [`CURRENT_FORMAT`] before anything reads it, or refuses a newer one;
/// returns the metric key dictionary.
///
/// Formats 1–3 spelled the metric name and entity id out in every metric key (format 1 also
/// stored the rows as JSON): each such row is rewritten under its dictionary key, in batches
/// that add the row's new form, its names and the removal of the old row at once. A migration
/// cut short is simply carried on at the next start: what is left is exactly the old rows.
/// Format 2 → 3 rewrote nothing: its hour and day rows are complete, and the rollup watermarks
/// start at the hour and day the folder is first opened in.
fn migrate_format(store: &dyn RowStore) -> Result<Names> {
    let found = match store.get(&[keys::FORMAT])? {
        Some(bytes) => {
            let bytes =
                <[u8; 4]>::try_from(bytes.as_slice()).map_err(|_| crate::Error::CorruptFormat)?;
            u32::from_be_bytes(bytes)
        }
        None => 1,
    };
    if found > CURRENT_FORMAT {
        return Err(crate::Error::NewerFormat {
            found,
            supported: CURRENT_FORMAT,
        });
    }
    let names = Names::load(store)?;
    if found == CURRENT_FORMAT {
        return Ok(names);
    }
    let started = Instant::now();
    let mut migrated = 0usize;
    let (from, end) = (vec![keys::LEGACY_METRIC], vec![keys::LEGACY_METRIC + 1]);
    loop {
        let mut ops: Vec<RowOp> = Vec::new();
        let mut rows_in_batch = 0;
        store.scan_range(&from, &end, false, &mut |key, value| {
            let legacy =
                keys::split_legacy_metric_key(key).ok_or_else(|| crate::Error::CorruptName {
                    key: String::from_utf8_lossy(key).into_owned(),
                    reason: "not a metric key of formats 1 to 3".to_string(),
                })?;
            let value = if rows::is_json_metric(value) {
                let row = rows::decode_metric(key, value)?;
                rows::encode_metric(row.function, &row.state, row.through)?
            } else {
                value.to_vec()
            };
            let new_key = names
                .id_or_new(legacy.metric)
                .zip(names.id_or_new(legacy.entity))
                .and_then(|(metric, entity)| keys::metric_key(metric, entity, legacy.bucket));
            if let Some(new_key) = new_key {
                ops.push((new_key, Some(value)));
            }
            ops.push((key.to_vec(), None));
            rows_in_batch += 1;
            Ok(rows_in_batch < MIGRATION_CHUNK_ROWS)
        })?;
        if rows_in_batch == 0 {
            break;
        }
        migrated += rows_in_batch;
        // The batch's names first, in the same atomic batch as the rows that use them.
        let (mut batch, count) = names.unstored();
        batch.append(&mut ops);
        store.apply(batch)?;
        names.stored_up_to(count);
    }
    store.apply(vec![(
        vec![keys::FORMAT],
        Some(CURRENT_FORMAT.to_be_bytes().to_vec()),
    )])?;
    if migrated > 0 {
        tracing::info!(
            from = found,
            to = CURRENT_FORMAT,
            metric_rows = migrated,
            names = names.len(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "data folder migrated"
        );
    }
    Ok(names)
}

impl<K: RowStore> Drop for Engine<K> {
    fn drop(&mut self) {
        // Closing must not lose the last few seconds of aggregation.
        if let Err(error) = self.flush() {
            tracing::error!(%error, "final storage flush failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mem_storage::MemRows;
    use crate::rows::{RangeVisitor, RowVisitor};
    use skylark_core::{Layer, MeterEntity, MeterValue, MetricState, Scope};
    use std::collections::BTreeMap;
    use std::sync::atomic::AtomicUsize;
    use std::sync::Arc;

    /// Rows shared between engines (one "data folder" across a crash), failing every write once
    /// `writes_left` runs out, as a process killed between two batches would.
    #[derive(Clone)]
    struct SharedRows {
        inner: Arc<MemRows>,
        writes_left: Arc<AtomicUsize>,
        gate: Arc<Gate>,
    }

    /// Holds writes back while closed, counting those waiting: a chunk caught mid-write.
    #[derive(Default)]
    struct Gate {
        closed: parking_lot::Mutex<bool>,
        opened: parking_lot::Condvar,
        waiting: AtomicUsize,
    }

    impl Gate {
        fn close(&self) {
            *self.closed.lock() = true;
        }

        fn open(&self) {
            *self.closed.lock() = false;
            self.opened.notify_all();
        }

        fn pass(&self) {
            let mut closed = self.closed.lock();
            if *closed {
                self.waiting.fetch_add(1, Ordering::SeqCst);
                while *closed {
                    self.opened.wait(&mut closed);
                }
                self.waiting.fetch_sub(1, Ordering::SeqCst);
            }
        }

        fn wait_for_a_write(&self) {
            let deadline = Instant::now() + Duration::from_secs(10);
            while self.waiting.load(Ordering::SeqCst) == 0 {
                assert!(Instant::now() < deadline, "no write reached the gate");
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }

    impl SharedRows {
        fn new() -> Self {
            SharedRows {
                inner: Arc::default(),
                writes_left: Arc::new(AtomicUsize::new(usize::MAX)),
                gate: Arc::default(),
            }
        }

        fn rows(&self) -> &parking_lot::RwLock<BTreeMap<Vec<u8>, Vec<u8>>> {
            &self.inner.rows
        }

        fn metric_rows(&self) -> usize {
            self.rows()
                .read()
                .keys()
                .filter(|k| k.first() == Some(&keys::METRIC))
                .count()
        }

        /// Rewrites the folder as formats 1–3 laid it out: metric keys spelling out the metric
        /// name and entity id, no dictionary; values turned by `value` and the format row set
        /// to `format` (`None`: no format row, as format 1).
        fn to_legacy_layout(&self, format: Option<u32>, value: impl Fn(&[u8], &[u8]) -> Vec<u8>) {
            let mut stored = self.rows().write();
            let names: BTreeMap<NameId, String> = stored
                .iter()
                .filter(|(k, _)| k.first() == Some(&keys::NAME))
                .map(|(k, v)| {
                    let id = NameId::from_be_bytes(v.as_slice().try_into().unwrap());
                    (id, String::from_utf8(k[1..].to_vec()).unwrap())
                })
                .collect();
            let old = std::mem::take(&mut *stored);
            for (key, row) in old {
                match key.first().copied() {
                    Some(keys::NAME) | Some(keys::FORMAT) => {}
                    Some(keys::METRIC) => {
                        let (metric, entity) = keys::split_metric_key(&key).unwrap();
                        let bucket = keys::metric_bucket(&key).unwrap();
                        let legacy =
                            keys::legacy_metric_key(&names[&metric], &names[&entity], bucket);
                        let row = value(&key, &row);
                        stored.insert(legacy, row);
                    }
                    _ => {
                        stored.insert(key, row);
                    }
                }
            }
            if let Some(format) = format {
                stored.insert(vec![keys::FORMAT], format.to_be_bytes().to_vec());
            }
        }

        fn legacy_rows(&self) -> usize {
            self.rows()
                .read()
                .keys()
                .filter(|k| k.first() == Some(&keys::LEGACY_METRIC))
                .count()
        }
    }

    impl RowStore for SharedRows {
        fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
            self.inner.get(key)
        }

        fn scan_prefix(&self, prefix: &[u8], visit: &mut RowVisitor<'_>) -> Result<()> {
            self.inner.scan_prefix(prefix, visit)
        }

        fn scan_range(
            &self,
            start: &[u8],
            end: &[u8],
            reverse: bool,
            visit: &mut RangeVisitor<'_>,
        ) -> Result<()> {
            self.inner.scan_range(start, end, reverse, visit)
        }

        fn keys_in_range(&self, start: &[u8], end: &[u8]) -> Result<Vec<Vec<u8>>> {
            self.inner.keys_in_range(start, end)
        }

        fn apply(&self, ops: Vec<RowOp>) -> Result<()> {
            self.gate.pass();
            let left = self.writes_left.load(Ordering::SeqCst);
            if left == 0 {
                return Err(crate::Error::Unsupported(
                    "writes after the simulated crash",
                ));
            }
            self.writes_left.store(left - 1, Ordering::SeqCst);
            self.inner.apply(ops)
        }
    }

    const MINUTE: i64 = 202612061005;

    /// Two days after [`MINUTE`]: its hour and day are long closed, so its emissions go to
    /// minute, hour and day rows alike.
    fn two_days_later() -> i64 {
        TimeBucket {
            step: Step::Minute,
            value: 202612081005,
        }
        .start_epoch_ms()
        .unwrap()
    }

    fn engine_after(rows: SharedRows) -> Result<Engine<SharedRows>> {
        Engine::with_clock(rows, two_days_later)
    }

    fn metric() -> Arc<MetricDefinition> {
        Arc::new(MetricDefinition {
            name: "meter_wechat_mp_app_launch_duration".to_string(),
            scope: Scope::Service,
            function: MetricFunction::Avg,
            percentile_ranks: Vec::new(),
        })
    }

    /// One emission per service for `services` services: with its hour and day rows, three
    /// rows each, so a flush of them spans several chunks.
    fn entry(services: usize, value: i64) -> Vec<MetricEmission> {
        (0..services)
            .map(|i| MetricEmission {
                metric: metric(),
                entity: MeterEntity::service(format!("mp-{i:05}"), Layer::WECHAT_MINI_PROGRAM),
                minute: TimeBucket {
                    step: Step::Minute,
                    value: MINUTE,
                },
                value: MeterValue::Single(value),
            })
            .collect()
    }

    /// [`MINUTE`] and its hour and day.
    fn minute_hour_day() -> [TimeBucket; 3] {
        let minute = TimeBucket {
            step: Step::Minute,
            value: MINUTE,
        };
        [
            minute,
            minute.to_step(Step::Hour),
            minute.to_step(Step::Day),
        ]
    }

    /// Every stored (minute, hour, day) value of every service.
    fn values(engine: &Engine<SharedRows>, services: usize) -> Vec<Option<MetricValue>> {
        let buckets = minute_hour_day();
        let metric = metric();
        (0..services)
            .flat_map(|i| {
                let entity = MeterEntity::service(format!("mp-{i:05}"), Layer::WECHAT_MINI_PROGRAM);
                engine.read_metric(&metric, &entity.id(), &buckets).unwrap()
            })
            .collect()
    }

    const SERVICES: usize = 2000;
    /// The chunks a first flush stores the names of [`SERVICES`] services and the metric in,
    /// before any row.
    const NAME_CHUNKS: usize = (SERVICES + 1).div_ceil(FLUSH_CHUNK_ROWS);

    #[test]
    fn a_flush_spans_chunks_and_reads_the_same_as_one_batch() {
        let rows = SharedRows::new();
        let engine = engine_after(rows.clone()).unwrap();
        engine
            .write_metrics_through(1, entry(SERVICES, 100))
            .unwrap();
        engine
            .write_metrics_through(2, entry(SERVICES, 300))
            .unwrap();
        let before = values(&engine, SERVICES);
        let writes_before = rows.writes_left.load(Ordering::SeqCst);
        engine.flush().unwrap();
        let batches = writes_before - rows.writes_left.load(Ordering::SeqCst);
        assert_eq!(
            batches,
            NAME_CHUNKS + (3 * SERVICES).div_ceil(FLUSH_CHUNK_ROWS)
        );
        assert_eq!(values(&engine, SERVICES), before);
        assert!(before.iter().all(|v| *v == Some(MetricValue::Single(200))));
        assert_eq!(engine.applied_seqs().unwrap().metrics, 2);
    }

    #[test]
    fn a_flush_cut_short_between_chunks_counts_nothing_twice_after_replay() {
        let entries = [(1, entry(SERVICES, 100)), (2, entry(SERVICES, 300))];
        let reference = engine_after(SharedRows::new()).unwrap();
        for (seq, emissions) in entries.clone() {
            reference.write_metrics_through(seq, emissions).unwrap();
        }
        reference.flush().unwrap();
        // A third entry arrives after the flush began: it was never stored.
        reference
            .write_metrics_through(3, entry(10, 1_000))
            .unwrap();
        reference.flush().unwrap();

        let rows = SharedRows::new();
        let crashed = engine_after(rows.clone()).unwrap();
        for (seq, emissions) in entries.clone() {
            crashed.write_metrics_through(seq, emissions).unwrap();
        }
        // The names and two chunks of rows land, then the process dies.
        rows.writes_left.store(NAME_CHUNKS + 2, Ordering::SeqCst);
        assert!(crashed.flush().is_err());
        // No final flush: a killed process runs no destructor.
        std::mem::forget(crashed);
        assert_eq!(rows.metric_rows(), 2 * FLUSH_CHUNK_ROWS);

        rows.writes_left.store(usize::MAX, Ordering::SeqCst);
        let restarted = engine_after(rows.clone()).unwrap();
        let from = restarted.applied_seqs().unwrap().metrics;
        assert_eq!(from, 0, "the mark is stored with the last chunk only");
        for (seq, emissions) in entries.into_iter().filter(|(seq, _)| *seq > from) {
            restarted.write_metrics_through(seq, emissions).unwrap();
        }
        restarted
            .write_metrics_through(3, entry(10, 1_000))
            .unwrap();
        restarted.flush().unwrap();
        let (got, want) = (values(&restarted, SERVICES), values(&reference, SERVICES));
        let wrong = got.iter().zip(&want).filter(|(g, w)| g != w).count();
        assert_eq!(
            wrong,
            0,
            "{wrong} of {} values differ, e.g. {:?} vs {:?}",
            got.len(),
            got.iter().zip(&want).find(|(g, w)| g != w),
            want.first()
        );
        assert_eq!(restarted.applied_seqs().unwrap().metrics, 3);
    }

    #[test]
    fn a_format_1_folder_is_migrated_at_start_and_reads_the_same() {
        // Written as format 1 did: JSON rows under spelled-out keys, no format row.
        let rows = SharedRows::new();
        let expected = {
            let legacy = engine_after(rows.clone()).unwrap();
            legacy.write_metrics(entry(3_000, 120)).unwrap();
            legacy.flush().unwrap();
            values(&legacy, 3_000)
        };
        rows.to_legacy_layout(None, |key, value| {
            let row = rows::decode_metric(key, value).unwrap();
            let state = match row.state {
                MetricState::Avg { summation, count } => {
                    format!(r#"{{"Avg":{{"summation":{summation},"count":{count}}}}}"#)
                }
                other => panic!("unexpected state {other:?}"),
            };
            format!(r#"{{"function":"Avg","state":{state}}}"#).into_bytes()
        });
        assert_eq!(rows.legacy_rows(), 9_000);
        assert!(rows
            .rows()
            .read()
            .values()
            .any(|v| v.first() == Some(&b'{')));

        let migrated = engine_after(rows.clone()).unwrap();
        assert_eq!(values(&migrated, 3_000), expected);
        assert_eq!(rows.legacy_rows(), 0);
        let stored = rows.rows().read();
        let metric_rows: Vec<(&Vec<u8>, &Vec<u8>)> = stored
            .iter()
            .filter(|(k, _)| k.first() == Some(&keys::METRIC))
            .collect();
        assert_eq!(metric_rows.len(), 9_000);
        assert!(metric_rows
            .iter()
            .all(|(k, v)| k.len() == keys::METRIC_KEY_LEN && !rows::is_json_metric(v)));
        assert_eq!(
            stored.get(&vec![keys::FORMAT]),
            Some(&CURRENT_FORMAT.to_be_bytes().to_vec())
        );
    }

    #[test]
    fn a_format_3_folder_is_migrated_to_dictionary_keys_even_when_cut_short() {
        // Format 3: binary rows under spelled-out keys, built hours and watermarks.
        set_now(202612060950);
        let rows = SharedRows::new();
        {
            let old = clocked(&rows);
            write_at(&old, 1, 202612060905, 100);
            old.write_metrics(entry(3_000, 120)).unwrap();
            write_at(&old, 2, 202612061005, 300);
            set_now(202612061110);
            persist(&old);
        }
        let engine = clocked(&rows);
        let expected = (
            values(&engine, 3_000),
            hour_and_day(&engine, 2026120609),
            hour_and_day(&engine, 2026120610),
        );
        drop(engine);
        // Hours 9 and 10 of `mp-0`, hour 10 of the 3,000 others.
        assert_eq!(rows_of_step(&rows, Step::Hour), 3_002);
        let rows_before = rows.metric_rows();
        rows.to_legacy_layout(Some(3), |_, value| value.to_vec());
        assert_eq!(rows.legacy_rows(), rows_before);

        // The first start dies after one batch: some rows old, some new.
        assert!(rows_before > MIGRATION_CHUNK_ROWS);
        rows.writes_left.store(1, Ordering::SeqCst);
        assert!(Engine::with_clock(rows.clone(), test_clock).is_err());
        assert_eq!(rows.metric_rows(), MIGRATION_CHUNK_ROWS);
        assert_eq!(rows.legacy_rows(), rows_before - MIGRATION_CHUNK_ROWS);

        rows.writes_left.store(usize::MAX, Ordering::SeqCst);
        let engine = clocked(&rows);
        assert_eq!(rows.legacy_rows(), 0);
        assert_eq!(rows.metric_rows(), rows_before);
        assert_eq!(
            (
                values(&engine, 3_000),
                hour_and_day(&engine, 2026120609),
                hour_and_day(&engine, 2026120610),
            ),
            expected
        );
        assert_eq!(
            expected.1,
            vec![
                Some(MetricValue::Single(100)),
                Some(MetricValue::Single(200))
            ]
        );
        // Built hours stay built, and late data still lands in them.
        write_at(&engine, 3, 202612061006, 500);
        persist(&engine);
        assert_eq!(
            hour_and_day(&engine, 2026120610)[0],
            Some(MetricValue::Single(400))
        );
        assert_eq!(rows_of_step(&rows, Step::Hour), 3_002);
    }

    #[test]
    fn a_format_4_folder_is_taken_over_as_it_is() {
        let rows = SharedRows::new();
        let expected = {
            let old = engine_after(rows.clone()).unwrap();
            old.write_metrics(entry(100, 120)).unwrap();
            old.flush().unwrap();
            values(&old, 100)
        };
        rows.rows()
            .write()
            .insert(vec![keys::FORMAT], 4u32.to_be_bytes().to_vec());
        let before = rows.rows().read().len();
        let engine = engine_after(rows.clone()).unwrap();
        assert_eq!(values(&engine, 100), expected);
        assert_eq!(rows.rows().read().len(), before);
        assert_eq!(
            rows.rows().read().get(&vec![keys::FORMAT]),
            Some(&CURRENT_FORMAT.to_be_bytes().to_vec())
        );
    }

    #[test]
    fn a_folder_from_a_newer_skylark_is_refused_untouched() {
        let rows = SharedRows::new();
        rows.rows()
            .write()
            .insert(vec![keys::FORMAT], 7u32.to_be_bytes().to_vec());
        let error = engine_after(rows.clone()).err().unwrap();
        assert_eq!(
            error.to_string(),
            "the data folder is in storage format 7, newer than this Skylark reads (format 6): \
             run the Skylark that wrote it, or start from an empty folder"
        );
        assert_eq!(rows.rows().read().len(), 1);
    }

    #[test]
    fn a_failed_chunk_keeps_its_rows_for_the_next_flush() {
        let rows = SharedRows::new();
        let engine = engine_after(rows.clone()).unwrap();
        engine
            .write_metrics_through(1, entry(SERVICES, 100))
            .unwrap();
        let expected = values(&engine, SERVICES);
        rows.writes_left.store(1, Ordering::SeqCst);
        assert!(engine.flush().is_err());
        // Nothing is lost or doubled while the store is down, nor once it is back.
        assert_eq!(values(&engine, SERVICES), expected);
        rows.writes_left.store(usize::MAX, Ordering::SeqCst);
        engine.flush().unwrap();
        assert_eq!(values(&engine, SERVICES), expected);
        assert_eq!(engine.pending_rows(), 0);
    }

    /// [`metric`] summed instead of averaged.
    fn sum_metric() -> Arc<MetricDefinition> {
        Arc::new(MetricDefinition {
            function: MetricFunction::Sum,
            ..(*metric()).clone()
        })
    }

    /// One `Sum` emission of `value` per service, for `services` services.
    fn sums(services: usize, value: i64) -> Vec<MetricEmission> {
        let metric = sum_metric();
        entry(services, value)
            .into_iter()
            .map(|e| MetricEmission {
                metric: metric.clone(),
                ..e
            })
            .collect()
    }

    #[test]
    fn reads_during_a_flush_wait_for_no_chunk_and_count_every_row_once() {
        let rows = SharedRows::new();
        let engine = Arc::new(engine_after(rows.clone()).unwrap());
        engine
            .write_metrics_through(1, sums(SERVICES, 100))
            .unwrap();
        engine.flush().unwrap();
        engine.write_metrics_through(2, sums(SERVICES, 10)).unwrap();
        let sum = sum_metric();
        let buckets = minute_hour_day();
        let service =
            |i: usize| MeterEntity::service(format!("mp-{i:05}"), Layer::WECHAT_MINI_PROGRAM).id();
        let read = {
            let (engine, sum) = (engine.clone(), sum.clone());
            move |id: String| {
                let (tx, rx) = std::sync::mpsc::channel();
                let (engine, sum) = (engine.clone(), sum.clone());
                std::thread::spawn(move || {
                    let _ = tx.send(engine.read_metric(&sum, &id, &buckets).unwrap());
                });
                rx
            }
        };
        let expected = vec![Some(MetricValue::Single(110)); 3];

        // The flush's first chunk is held mid-write.
        rows.gate.close();
        let flushing = {
            let engine = engine.clone();
            std::thread::spawn(move || engine.flush())
        };
        rows.gate.wait_for_a_write();
        let in_first_chunk = |i: usize| {
            let (metric_id, entity) = (
                engine.names.id(&sum.name).unwrap(),
                engine.names.id(&service(i)).unwrap(),
            );
            buckets.iter().any(|b| {
                let key = keys::metric_key(metric_id, entity, *b).unwrap();
                engine.progress.chunk_of(&key)
                    == Some(engine.progress.started.load(Ordering::SeqCst) - 1)
            })
        };
        let held = (0..SERVICES).find(|i| in_first_chunk(*i)).unwrap();
        let free = (0..SERVICES).find(|i| !in_first_chunk(*i)).unwrap();
        // A row of another chunk is read at once, in flight and counted once.
        let answer = read(service(free))
            .recv_timeout(Duration::from_secs(10))
            .expect("a read waited for a chunk it is not in");
        assert_eq!(answer, expected);
        // A row of the chunk being written waits for it, then counts once.
        let waiting = read(service(held));
        assert!(waiting.recv_timeout(Duration::from_millis(50)).is_err());
        rows.gate.open();
        assert_eq!(
            waiting.recv_timeout(Duration::from_secs(10)).unwrap(),
            expected
        );
        flushing.join().unwrap().unwrap();
        for i in (0..SERVICES).step_by(97) {
            assert_eq!(read(service(i)).recv().unwrap(), expected);
        }
    }

    thread_local! {
        /// The clock of the rollup tests, per test thread.
        static NOW: std::cell::Cell<i64> = const { std::cell::Cell::new(0) };
    }

    fn test_clock() -> i64 {
        NOW.get()
    }

    /// Sets the test clock to local minute `minute` (`yyyyMMddHHmm`).
    fn set_now(minute: i64) {
        NOW.set(
            TimeBucket {
                step: Step::Minute,
                value: minute,
            }
            .start_epoch_ms()
            .unwrap(),
        );
    }

    /// One emission of `value` for service `mp-0` in `minute`.
    fn at(minute: i64, value: i64) -> Vec<MetricEmission> {
        vec![MetricEmission {
            metric: metric(),
            entity: MeterEntity::service("mp-0", Layer::WECHAT_MINI_PROGRAM),
            minute: TimeBucket {
                step: Step::Minute,
                value: minute,
            },
            value: MeterValue::Single(value),
        }]
    }

    /// The hour and day values of `mp-0` for hour `hour` (`yyyyMMddHH`).
    fn hour_and_day(engine: &Engine<SharedRows>, hour: i64) -> Vec<Option<MetricValue>> {
        let id = MeterEntity::service("mp-0", Layer::WECHAT_MINI_PROGRAM).id();
        let buckets = [
            TimeBucket {
                step: Step::Hour,
                value: hour,
            },
            TimeBucket {
                step: Step::Day,
                value: hour / 100,
            },
        ];
        engine.read_metric(&metric(), &id, &buckets).unwrap()
    }

    /// An engine over `rows` on the test clock.
    fn clocked(rows: &SharedRows) -> Engine<SharedRows> {
        Engine::with_clock(rows.clone(), test_clock).unwrap()
    }

    /// Write-ahead-log entry `seq`: one emission of `value` for `mp-0` in `minute`.
    fn write_at(engine: &Engine<SharedRows>, seq: u64, minute: i64, value: i64) {
        engine
            .write_metrics_through(seq, at(minute, value))
            .unwrap();
    }

    /// What the periodic persist does: flush, then build what has closed.
    fn persist(engine: &Engine<SharedRows>) {
        engine.flush().unwrap();
        engine.build_rollups().unwrap();
    }

    fn rows_of_step(rows: &SharedRows, step: Step) -> usize {
        let prefix = keys::metric_step_prefix(step).unwrap();
        rows.rows()
            .read()
            .keys()
            .filter(|k| k.starts_with(&prefix))
            .count()
    }

    #[test]
    fn an_open_hour_is_read_from_its_minutes_and_built_once_when_it_closes() {
        set_now(202612061040);
        let rows = SharedRows::new();
        let engine = clocked(&rows);
        write_at(&engine, 1, 202612061005, 100);
        write_at(&engine, 2, 202612061030, 300);
        persist(&engine);
        // Open: only minute rows are written, and the hour and day read as their average.
        assert_eq!(rows_of_step(&rows, Step::Minute), 2);
        assert_eq!(rows_of_step(&rows, Step::Hour), 0);
        assert_eq!(rows_of_step(&rows, Step::Day), 0);
        let open = hour_and_day(&engine, 2026120610);
        assert_eq!(open, vec![Some(MetricValue::Single(200)); 2]);

        // Past 11:05 the hour has closed: the next persist builds its row from the minutes.
        set_now(202612061106);
        write_at(&engine, 3, 202612061101, 600);
        persist(&engine);
        assert_eq!(rows_of_step(&rows, Step::Hour), 1);
        assert_eq!(
            hour_and_day(&engine, 2026120610),
            vec![
                Some(MetricValue::Single(200)),
                Some(MetricValue::Single(333))
            ]
        );
        assert_eq!(
            hour_and_day(&engine, 2026120611),
            vec![
                Some(MetricValue::Single(600)),
                Some(MetricValue::Single(333))
            ]
        );

        // A late emission for the closed hour adds to its row, and to the open day's value.
        write_at(&engine, 4, 202612061059, 800);
        let late = vec![
            Some(MetricValue::Single(400)),
            Some(MetricValue::Single(450)),
        ];
        assert_eq!(hour_and_day(&engine, 2026120610), late);
        persist(&engine);
        assert_eq!(hour_and_day(&engine, 2026120610), late);
        assert_eq!(rows_of_step(&rows, Step::Day), 0);

        // The next day, the day's row is built from its hour rows.
        set_now(202612070006);
        persist(&engine);
        assert_eq!(rows_of_step(&rows, Step::Day), 1);
        assert_eq!(hour_and_day(&engine, 2026120610), late);
        assert_eq!(engine.applied_seqs().unwrap().metrics, 4);
    }

    #[test]
    fn hours_that_close_while_the_server_is_down_are_built_at_its_first_persist() {
        set_now(202612061040);
        let rows = SharedRows::new();
        {
            let engine = clocked(&rows);
            write_at(&engine, 1, 202612061005, 100);
            write_at(&engine, 2, 202612061130, 300);
        }
        assert_eq!(rows_of_step(&rows, Step::Hour), 0);
        set_now(202612061406);
        let engine = clocked(&rows);
        persist(&engine);
        // Hours 10 and 11 were built (12 and 13 had no minutes).
        assert_eq!(rows_of_step(&rows, Step::Hour), 2);
        assert_eq!(
            hour_and_day(&engine, 2026120611),
            vec![
                Some(MetricValue::Single(300)),
                Some(MetricValue::Single(200))
            ]
        );
    }

    #[test]
    fn a_build_cut_short_is_done_again_and_counts_nothing_twice() {
        set_now(202612061040);
        let rows = SharedRows::new();
        let engine = clocked(&rows);
        let services = 3 * FLUSH_CHUNK_ROWS;
        let emissions: Vec<MetricEmission> = (0..services)
            .map(|i| MetricEmission {
                metric: metric(),
                entity: MeterEntity::service(format!("mp-{i:05}"), Layer::WECHAT_MINI_PROGRAM),
                minute: TimeBucket {
                    step: Step::Minute,
                    value: 202612061005,
                },
                value: MeterValue::Single(100 + i as i64),
            })
            .collect();
        engine.write_metrics_through(1, emissions).unwrap();
        persist(&engine);
        set_now(202612061106);
        // The minute rows are stored: this persist writes its mark, then the build's batches,
        // the second of which fails as a crash would leave it.
        rows.writes_left.store(2, Ordering::SeqCst);
        engine.flush().unwrap();
        assert!(engine.build_rollups().is_err());
        drop(engine);
        rows.writes_left.store(usize::MAX, Ordering::SeqCst);
        assert!(rows_of_step(&rows, Step::Hour) > 0);

        let restarted = clocked(&rows);
        persist(&restarted);
        assert_eq!(rows_of_step(&rows, Step::Hour), services);
        let hour = [TimeBucket {
            step: Step::Hour,
            value: 2026120610,
        }];
        for i in [0, FLUSH_CHUNK_ROWS + 7, services - 1] {
            let id = MeterEntity::service(format!("mp-{i:05}"), Layer::WECHAT_MINI_PROGRAM).id();
            assert_eq!(
                restarted.read_metric(&metric(), &id, &hour).unwrap(),
                vec![Some(MetricValue::Single(100 + i as i64))]
            );
        }
    }

    #[test]
    fn a_format_2_folder_keeps_its_hour_rows_and_builds_the_hours_that_close_after() {
        // Format 2 wrote minute, hour and day rows at every persist and had no watermarks.
        let rows = SharedRows::new();
        {
            let old = engine_after(rows.clone()).unwrap();
            write_at(&old, 1, 202612060905, 100);
            write_at(&old, 2, 202612061005, 300);
        }
        rows.rows()
            .write()
            .retain(|k, _| k.first() != Some(&keys::ROLLUP));
        assert_eq!(rows_of_step(&rows, Step::Hour), 2);
        let rows_before = rows.metric_rows();
        rows.to_legacy_layout(Some(2), |_, value| value.to_vec());
        assert_eq!(rows.legacy_rows(), rows_before);

        // Opened during hour 10: hour 9 is read from its row, hour 10 from its minutes.
        set_now(202612061040);
        let engine = clocked(&rows);
        assert_eq!(
            rows.rows().read().get(&vec![keys::FORMAT]),
            Some(&CURRENT_FORMAT.to_be_bytes().to_vec())
        );
        write_at(&engine, 3, 202612061006, 500);
        persist(&engine);
        assert_eq!(
            hour_and_day(&engine, 2026120609),
            vec![
                Some(MetricValue::Single(100)),
                Some(MetricValue::Single(300))
            ]
        );
        let ten = vec![
            Some(MetricValue::Single(400)),
            Some(MetricValue::Single(300)),
        ];
        assert_eq!(hour_and_day(&engine, 2026120610), ten);
        set_now(202612061106);
        persist(&engine);
        assert_eq!(hour_and_day(&engine, 2026120610), ten);
    }

    #[test]
    fn nothing_is_built_after_a_failed_flush_until_one_stores_everything() {
        set_now(202612061040);
        let rows = SharedRows::new();
        let engine = clocked(&rows);
        write_at(&engine, 1, 202612061005, 100);
        set_now(202612061106);
        // The flush that closes hour 10 fails: its minute row goes back to memory.
        rows.writes_left.store(0, Ordering::SeqCst);
        assert!(engine.flush().is_err());
        rows.writes_left.store(usize::MAX, Ordering::SeqCst);
        assert_eq!(engine.build_rollups().unwrap(), 0);
        assert_eq!(rows_of_step(&rows, Step::Hour), 0);
        // Once a flush has stored it, the hour is built with it.
        persist(&engine);
        assert_eq!(rows_of_step(&rows, Step::Hour), 1);
        assert_eq!(
            hour_and_day(&engine, 2026120610),
            vec![Some(MetricValue::Single(100)); 2]
        );
    }
}
