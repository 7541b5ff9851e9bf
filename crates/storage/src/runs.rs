//! Record runs: the rows of logs and segments, written once, outside sled.
//!
//! sled logs every value it stores and rewrites it again whenever it consolidates a page, so a
//! record stored there was written several times over, besides the write-ahead log's copy,
//! and its I/O threads cost more CPU than the rules. Here the rows of the record keyspaces
//! (`LOG`, `SEGMENT`, `SEGMENT_BODY`, `RUM`) gather in memory (the open run, readable at once) and are
//! sealed into an immutable file of sorted rows (lz4 blocks, CRC-32): at the end of every
//! storage flush, and early once the open run holds [`OPEN_RUN_MAX_BYTES`]. The file is
//! fsynced before its meta row and the log, segment and RUM marks go to sled in one batch, so a mark
//! never covers a record that is not on disk; after a crash the write-ahead log replays what
//! the open run held. The indexes (trace ids, tags, RUM services, sessions, users) and RUM
//! sessions stay in sled: small rows.
//!
//! Retention raises a per-kind floor: rows at or below it are not read any more, and a run
//! whose rows all lie below it is deleted whole. Record rows that earlier formats stored in sled
//! are read (and expired) there as before.
//!
//! Error issue rows (issue, event ring, minute counters) are buffered the same way but sealed
//! into sled, with the issues mark: an issue hit a thousand times between two flushes is
//! written once, not a thousand times. Their deletions are buffered too, as tombstones.
use crate::applied::MarkKind;
use crate::issues::{ISSUE, ISSUE_EVENT, ISSUE_MINUTE};
use crate::keys::{LOG, RUM, SEGMENT, SEGMENT_BODY};
use crate::rows::RowOp;
use crate::{Error, Result};
use parking_lot::{Mutex, RwLock};
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// The open run is sealed early once its rows take this many bytes, so memory stays bounded
/// between flushes whatever the load.
pub(crate) const OPEN_RUN_MAX_BYTES: usize = 8 << 20;

/// The keyspaces whose rows live in runs.
const RUN_KINDS: [u8; 4] = [LOG, SEGMENT, SEGMENT_BODY, RUM];

/// The keyspaces buffered in memory until the next seal, then stored in sled.
const BUFFERED_KINDS: [u8; 3] = [ISSUE, ISSUE_EVENT, ISSUE_MINUTE];

/// `k | run id (8, BE)` → the run's first and last key (postcard).
const RUN_META: u8 = b'k';

/// `K | kind` → the highest key of `kind` retention removed.
const RUN_FLOOR: u8 = b'K';

/// A run file starts with this, then the CRC-32 of the rest, then the lz4 block.
const RUN_MAGIC: &[u8; 8] = b"SKYRUN01";

/// Largest run file read back (a sealed run is at most [`OPEN_RUN_MAX_BYTES`] plus one
/// request's rows; anything far larger is not one of ours).
const RUN_FILE_MAX_BYTES: u64 = 1 << 30;

/// Sorted rows.
type Rows = Vec<(Vec<u8>, Vec<u8>)>;

/// A run's meta row: key and value.
type MetaRow = (Vec<u8>, Vec<u8>);

/// Whether `key` is a row of a record keyspace kept in runs.
pub(crate) fn is_run_key(key: &[u8]) -> bool {
    key.first().is_some_and(|k| RUN_KINDS.contains(k))
}

/// Whether `key` is a row buffered until the next seal.
fn is_buffered_key(key: &[u8]) -> bool {
    key.first().is_some_and(|k| BUFFERED_KINDS.contains(k))
}

/// Whether rows under `key` may be held here rather than (or besides) sled.
pub(crate) fn is_held_key(key: &[u8]) -> bool {
    is_run_key(key) || is_buffered_key(key)
}

/// Whether `[start, end)` may hold rows held here.
pub(crate) fn touches_held(start: &[u8], end: &[u8]) -> bool {
    RUN_KINDS
        .iter()
        .chain(&BUFFERED_KINDS)
        .any(|&k| start < [k + 1].as_slice() && end > [k].as_slice())
}

/// A row held here: its value, or `None` where a buffered deletion hides the sled row.
pub(crate) type HeldRow = (Vec<u8>, Option<Vec<u8>>);

/// The first and last key of each keyspace in a run: a run holds logs and segments of one
/// stretch of time, and a lookup must not open every run whose keyspaces merely enclose it.
#[derive(serde::Serialize, serde::Deserialize)]
struct RunMeta {
    ranges: Vec<(Vec<u8>, Vec<u8>)>,
    /// Bytes of keys and values (before compression).
    bytes: u64,
}

/// A sealed run: its key ranges and file; its rows are read from the file when needed.
struct Run {
    id: u64,
    ranges: Vec<(Vec<u8>, Vec<u8>)>,
    bytes: u64,
    path: PathBuf,
}

impl Run {
    fn may_hold(&self, key: &[u8]) -> bool {
        self.ranges
            .iter()
            .any(|(first, last)| first.as_slice() <= key && key <= last.as_slice())
    }

    fn overlaps(&self, start: &[u8], end: &[u8]) -> bool {
        self.ranges
            .iter()
            .any(|(first, last)| first.as_slice() < end && last.as_slice() >= start)
    }
}

/// The first and last key of each keyspace of sorted `rows`.
fn ranges_of(rows: &Rows) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut ranges: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    for (key, _) in rows {
        match ranges.last_mut() {
            Some((first, last)) if first.first() == key.first() => *last = key.clone(),
            _ => ranges.push((key.clone(), key.clone())),
        }
    }
    ranges
}

/// Small runs merged into one once this many have gathered (see [`RecordRuns::compact`]).
const COMPACT_AFTER_RUNS: usize = 16;

/// Decoded runs kept for the next lookups, up to this many bytes of rows: a trace or a page
/// of logs reads the same few runs many times over.
const RUN_CACHE_BYTES: usize = 16 << 20;

#[derive(Default)]
struct Open {
    rows: BTreeMap<Vec<u8>, Vec<u8>>,
    /// Buffered sled rows (`None`: deleted).
    buffered: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    bytes: usize,
    /// The highest log, segment, RUM and issue marks of the batches whose rows are here.
    marks: BTreeMap<Vec<u8>, u64>,
}

/// What a seal is writing, readable until it is stored.
struct Sealing {
    rows: Rows,
    buffered: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
}

#[derive(Default)]
struct State {
    open: Open,
    /// The rows being sealed, still readable until their run is in `runs`.
    sealing: Option<Arc<Sealing>>,
    runs: Vec<Arc<Run>>,
    floors: HashMap<u8, Vec<u8>>,
}

impl State {
    fn below_floor(&self, key: &[u8]) -> bool {
        below_floor(&self.floors, key)
    }
}

/// Whether retention removed `key` (it lies at or below its keyspace's floor).
fn below_floor(floors: &HashMap<u8, Vec<u8>>, key: &[u8]) -> bool {
    key.first()
        .and_then(|k| floors.get(k))
        .is_some_and(|floor| key <= floor.as_slice())
}

/// The record runs of one data folder.
pub(crate) struct RecordRuns {
    dir: PathBuf,
    state: RwLock<State>,
    /// One seal at a time: the flush's and an early one from the write path.
    seal_lock: Mutex<()>,
    next_id: AtomicU64,
    /// Recently read runs, newest first.
    cache: Mutex<std::collections::VecDeque<(u64, Arc<Rows>)>>,
    /// Files of runs retention emptied, deleted after the next sled flush.
    expired: Mutex<Vec<PathBuf>>,
    /// The keys of the marks held with the open run ([`held_marks`]).
    marks: [Vec<u8>; 4],
}

/// What [`RecordRuns::divert`] left for sled.
pub(crate) struct Diverted {
    /// The ops that still go to sled.
    pub(crate) ops: Vec<RowOp>,
    /// Whether the open run has grown past [`OPEN_RUN_MAX_BYTES`].
    pub(crate) seal_now: bool,
}

fn corrupt(path: &Path, reason: impl Into<String>) -> Error {
    Error::CorruptRun(format!("{} is corrupt: {}", path.display(), reason.into()))
}

fn io(path: &Path, error: std::io::Error) -> Error {
    Error::RunIo {
        path: path.display().to_string(),
        source: error,
    }
}

fn meta_key(id: u64) -> Vec<u8> {
    let mut key = vec![RUN_META];
    key.extend_from_slice(&id.to_be_bytes());
    key
}

fn held_marks() -> [Vec<u8>; 4] {
    [
        MarkKind::Logs.key(),
        MarkKind::Segments.key(),
        MarkKind::Rum.key(),
        MarkKind::Issues.key(),
    ]
}

impl RecordRuns {
    /// Opens the runs of `dir` that `tree` lists, deleting files a seal cut short left behind.
    pub(crate) fn open(dir: PathBuf, tree: &sled::Tree) -> Result<RecordRuns> {
        std::fs::create_dir_all(&dir).map_err(|e| io(&dir, e))?;
        let mut state = State::default();
        let mut next_id = 1;
        for row in tree.scan_prefix([RUN_META]) {
            let (key, value) = row?;
            let id = key
                .get(1..9)
                .and_then(|b| <[u8; 8]>::try_from(b).ok())
                .map(u64::from_be_bytes)
                .ok_or_else(|| corrupt(&dir, "a run meta row has no run id"))?;
            let meta: RunMeta = postcard::from_bytes(&value).map_err(|e| Error::CorruptRow {
                key: format!("run meta {id}"),
                source: e,
            })?;
            state.runs.push(Arc::new(Run {
                id,
                ranges: meta.ranges,
                bytes: meta.bytes,
                path: run_path(&dir, id),
            }));
            next_id = next_id.max(id + 1);
        }
        for row in tree.scan_prefix([RUN_FLOOR]) {
            let (key, value) = row?;
            if let Some(&kind) = key.get(1) {
                state.floors.insert(kind, value.to_vec());
            }
        }
        // A run whose file is gone had expired: retention deletes a file only after sled has
        // flushed its removal, but a crash can still lose a floor raised just before.
        let (present, missing): (Vec<_>, Vec<_>) =
            state.runs.drain(..).partition(|run| run.path.exists());
        state.runs = present;
        for run in missing {
            tracing::warn!(path = %run.path.display(), "a listed record run file is missing; its rows are gone");
            tree.remove(meta_key(run.id))?;
        }
        let listed: std::collections::HashSet<PathBuf> =
            state.runs.iter().map(|r| r.path.clone()).collect();
        for entry in std::fs::read_dir(&dir).map_err(|e| io(&dir, e))? {
            let path = entry.map_err(|e| io(&dir, e))?.path();
            if !listed.contains(&path) {
                tracing::info!(path = %path.display(), "deleting a run file no seal completed");
                std::fs::remove_file(&path).map_err(|e| io(&path, e))?;
            }
        }
        Ok(RecordRuns {
            dir,
            state: RwLock::new(state),
            seal_lock: Mutex::new(()),
            next_id: AtomicU64::new(next_id),
            cache: Mutex::new(std::collections::VecDeque::new()),
            expired: Mutex::new(Vec::new()),
            marks: held_marks(),
        })
    }

    /// Takes the record and buffered rows and their marks out of `ops` into the open run;
    /// deletions of record rows raise the retention floor (and still reach sled, which may hold
    /// rows of earlier formats).
    pub(crate) fn divert(&self, ops: Vec<RowOp>) -> Diverted {
        let mut rest = Vec::with_capacity(ops.len());
        let mut state = self.state.write();
        let mut removed: HashMap<u8, Vec<u8>> = HashMap::new();
        for (key, value) in ops {
            if is_buffered_key(&key) {
                let (key_len, new_len) = (key.len(), value.as_ref().map_or(0, Vec::len));
                let open = &mut state.open;
                match open.buffered.insert(key, value) {
                    Some(old) => {
                        open.bytes =
                            (open.bytes + new_len).saturating_sub(old.map_or(0, |v| v.len()))
                    }
                    None => open.bytes += key_len + new_len,
                }
                continue;
            }
            if is_run_key(&key) {
                match value {
                    Some(value) => {
                        if !state.below_floor(&key) {
                            state.open.bytes += key.len() + value.len();
                            if let Some(old) = state.open.rows.insert(key, value) {
                                state.open.bytes = state.open.bytes.saturating_sub(old.len());
                            }
                        }
                    }
                    None => {
                        if let Some(old) = state.open.rows.remove(&key) {
                            state.open.bytes =
                                state.open.bytes.saturating_sub(key.len() + old.len());
                        }
                        let kind = key[0];
                        let highest = removed.entry(kind).or_default();
                        if key > *highest {
                            *highest = key.clone();
                        }
                        rest.push((key, None));
                    }
                }
            } else if let Some(value) = value.as_ref().filter(|_| self.marks.contains(&key)) {
                let seq = <[u8; 8]>::try_from(value.as_slice())
                    .map(u64::from_be_bytes)
                    .unwrap_or(0);
                let mark = state.open.marks.entry(key).or_default();
                *mark = (*mark).max(seq);
            } else {
                rest.push((key, value));
            }
        }
        let mut raised = false;
        for (kind, highest) in removed {
            if state
                .floors
                .get(&kind)
                .is_some_and(|floor| *floor >= highest)
            {
                continue;
            }
            rest.push((vec![RUN_FLOOR, kind], Some(highest.clone())));
            state.floors.insert(kind, highest);
            raised = true;
        }
        if raised {
            let (gone, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut state.runs)
                .into_iter()
                .partition(|run| run.ranges.iter().all(|(_, last)| state.below_floor(last)));
            state.runs = kept;
            let mut expired = self.expired.lock();
            for run in gone {
                rest.push((meta_key(run.id), None));
                expired.push(run.path.clone());
            }
        }
        Diverted {
            ops: rest,
            seal_now: state.open.bytes >= OPEN_RUN_MAX_BYTES,
        }
    }

    /// Deletes the files of the runs retention emptied. Only once sled has flushed the batch
    /// that removed their meta rows: before that, a crash would bring the rows back.
    pub(crate) fn delete_expired(&self) {
        let expired = std::mem::take(&mut *self.expired.lock());
        Self::delete_files(&expired);
    }

    /// Deletes `paths`, logging what cannot be deleted.
    pub(crate) fn delete_files(paths: &[PathBuf]) {
        for path in paths {
            if let Err(error) = std::fs::remove_file(path) {
                tracing::warn!(path = %path.display(), %error, "cannot delete an expired run");
            }
        }
    }

    /// Seals the open run: writes and fsyncs its file, then stores its meta row, the buffered
    /// rows and the marks that came with them in one sled batch. Not durable until sled is
    /// flushed.
    pub(crate) fn seal(&self, tree: &sled::Tree) -> Result<()> {
        let _sealing = self.seal_lock.lock();
        let (sealing, marks) = {
            let mut state = self.state.write();
            let open = std::mem::take(&mut state.open);
            let sealing = Arc::new(Sealing {
                rows: open.rows.into_iter().collect(),
                buffered: open.buffered,
            });
            if !sealing.rows.is_empty() || !sealing.buffered.is_empty() {
                state.sealing = Some(sealing.clone());
            }
            (sealing, open.marks)
        };
        if sealing.rows.is_empty() && sealing.buffered.is_empty() && marks.is_empty() {
            return Ok(());
        }
        let result = self.write_run(tree, &sealing, &marks);
        let mut state = self.state.write();
        state.sealing = None;
        match result {
            Ok(Some(run)) => {
                state.runs.push(Arc::new(run));
                Ok(())
            }
            Ok(None) => Ok(()),
            Err(error) => {
                // Kept for the next seal; rows written meanwhile are newer and win.
                let open = &mut state.open;
                for (key, value) in &sealing.rows {
                    if !open.rows.contains_key(key) {
                        open.bytes += key.len() + value.len();
                        open.rows.insert(key.clone(), value.clone());
                    }
                }
                for (key, value) in &sealing.buffered {
                    if !open.buffered.contains_key(key) {
                        open.bytes += key.len() + value.as_ref().map_or(0, Vec::len);
                        open.buffered.insert(key.clone(), value.clone());
                    }
                }
                for (key, seq) in marks {
                    let mark = open.marks.entry(key).or_default();
                    *mark = (*mark).max(seq);
                }
                Err(error)
            }
        }
    }

    fn write_run(
        &self,
        tree: &sled::Tree,
        sealing: &Sealing,
        marks: &BTreeMap<Vec<u8>, u64>,
    ) -> Result<Option<Run>> {
        let mut batch = sled::Batch::default();
        let mut run = None;
        let rows = &sealing.rows;
        if !rows.is_empty() {
            let (new_run, (key, value)) = self.write_run_file(rows)?;
            batch.insert(key, value);
            run = Some(new_run);
        }
        for (key, value) in &sealing.buffered {
            match value {
                Some(value) => batch.insert(key.as_slice(), value.as_slice()),
                None => batch.remove(key.as_slice()),
            }
        }
        for (key, seq) in marks {
            batch.insert(key.as_slice(), &seq.to_be_bytes());
        }
        tree.apply_batch(batch)?;
        Ok(run)
    }

    /// Writes `rows` (sorted, not empty) to a new run file; returns the run and its meta row.
    fn write_run_file(&self, rows: &Rows) -> Result<(Run, MetaRow)> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let path = run_path(&self.dir, id);
        write_file(&self.dir, &path, &encode_rows(rows))?;
        let meta = RunMeta {
            ranges: ranges_of(rows),
            bytes: rows.iter().map(|(k, v)| (k.len() + v.len()) as u64).sum(),
        };
        let value = postcard::to_allocvec(&meta).map_err(Error::EncodeRow)?;
        let run = Run {
            id,
            ranges: meta.ranges,
            bytes: meta.bytes,
            path,
        };
        Ok((run, (meta_key(id), value)))
    }

    /// Merges the newest small runs into one once [`COMPACT_AFTER_RUNS`] of them have
    /// gathered, so that a steady trickle of records (a run per persist) does not leave tens
    /// of thousands of files to open. The merged run is fsynced before one sled batch swaps the
    /// meta rows; returns the files to delete once sled has flushed that batch (a crash before
    /// that leaves the old runs listed and the new file unlisted, deleted at the next open).
    pub(crate) fn compact(&self, tree: &sled::Tree) -> Result<Vec<PathBuf>> {
        let _sealing = self.seal_lock.lock();
        let (chosen, floors) = {
            let state = self.state.read();
            let mut chosen: Vec<Arc<Run>> = Vec::new();
            let mut total = 0u64;
            for run in state.runs.iter().rev() {
                total += run.bytes;
                if total > OPEN_RUN_MAX_BYTES as u64 {
                    break;
                }
                chosen.push(run.clone());
            }
            chosen.reverse();
            (chosen, state.floors.clone())
        };
        if chosen.len() < COMPACT_AFTER_RUNS {
            return Ok(Vec::new());
        }
        let mut merged: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
        // Oldest first: a newer version of a row (a RUM view) wins.
        for run in &chosen {
            merged.extend(read_run(&run.path)?);
        }
        let rows: Rows = merged
            .into_iter()
            .filter(|(k, _)| !below_floor(&floors, k))
            .collect();
        let mut batch = sled::Batch::default();
        for run in &chosen {
            batch.remove(meta_key(run.id));
        }
        let mut merged_run = None;
        if !rows.is_empty() {
            let (run, (key, value)) = self.write_run_file(&rows)?;
            batch.insert(key, value);
            merged_run = Some(Arc::new(run));
        }
        tree.apply_batch(batch)?;
        let ids: std::collections::HashSet<u64> = chosen.iter().map(|r| r.id).collect();
        let mut state = self.state.write();
        state.runs.retain(|run| !ids.contains(&run.id));
        // Newer than every run it replaces, and no run was sealed meanwhile.
        state.runs.extend(merged_run);
        drop(state);
        self.cache.lock().retain(|(id, _)| !ids.contains(id));
        tracing::debug!(runs = chosen.len(), rows = rows.len(), "record runs merged");
        Ok(chosen.iter().map(|r| r.path.clone()).collect())
    }

    /// The row under `key` if it is held here: `Some(None)` when a buffered deletion hides
    /// it, `None` when sled has the answer.
    pub(crate) fn get(&self, key: &[u8]) -> Result<Option<Option<Vec<u8>>>> {
        let candidates = {
            let state = self.state.read();
            if state.below_floor(key) {
                return Ok(Some(None));
            }
            if let Some(value) = state.open.rows.get(key) {
                return Ok(Some(Some(value.clone())));
            }
            if let Some(value) = state.open.buffered.get(key) {
                return Ok(Some(value.clone()));
            }
            if let Some(sealing) = &state.sealing {
                if let Ok(at) = sealing
                    .rows
                    .binary_search_by(|(k, _)| k.as_slice().cmp(key))
                {
                    return Ok(Some(Some(sealing.rows[at].1.clone())));
                }
                if let Some(value) = sealing.buffered.get(key) {
                    return Ok(Some(value.clone()));
                }
            }
            state
                .runs
                .iter()
                .rev()
                .filter(|run| run.may_hold(key))
                .cloned()
                .collect::<Vec<_>>()
        };
        for run in candidates {
            let rows = self.rows_of(&run)?;
            if let Ok(at) = rows.binary_search_by(|(k, _)| k.as_slice().cmp(key)) {
                return Ok(Some(Some(rows[at].1.clone())));
            }
        }
        Ok(None)
    }

    /// Every row held here in `[start, end)`, in key order (a key in several places: the
    /// newest).
    pub(crate) fn range(&self, start: &[u8], end: &[u8]) -> Result<Vec<HeldRow>> {
        let bounds = (
            std::ops::Bound::Included(start),
            std::ops::Bound::Excluded(end),
        );
        let (open, buffered, sealing, runs) = {
            let state = self.state.read();
            let open: Rows = state
                .open
                .rows
                .range::<[u8], _>(bounds)
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            let buffered: Vec<HeldRow> = state
                .open
                .buffered
                .range::<[u8], _>(bounds)
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            let runs: Vec<Arc<Run>> = state
                .runs
                .iter()
                .filter(|run| run.overlaps(start, end))
                .cloned()
                .collect();
            (open, buffered, state.sealing.clone(), runs)
        };
        // Oldest first, so that newer sources overwrite.
        let mut merged: BTreeMap<Vec<u8>, Option<Vec<u8>>> = BTreeMap::new();
        let in_range = |k: &[u8]| k >= start && k < end;
        for run in &runs {
            let rows = self.rows_of(run)?;
            let from = rows.partition_point(|(k, _)| k.as_slice() < start);
            for (k, v) in rows[from..].iter().take_while(|(k, _)| in_range(k)) {
                merged.insert(k.clone(), Some(v.clone()));
            }
        }
        if let Some(sealing) = sealing {
            for (k, v) in sealing.rows.iter().filter(|(k, _)| in_range(k)) {
                merged.insert(k.clone(), Some(v.clone()));
            }
            for (k, v) in sealing.buffered.range::<[u8], _>(bounds) {
                merged.insert(k.clone(), v.clone());
            }
        }
        merged.extend(open.into_iter().map(|(k, v)| (k, Some(v))));
        merged.extend(buffered);
        let state = self.state.read();
        Ok(merged
            .into_iter()
            .filter(|(k, _)| !state.below_floor(k))
            .collect())
    }
}

impl RecordRuns {
    /// The rows of `run`, from the cache or its file.
    fn rows_of(&self, run: &Run) -> Result<Arc<Rows>> {
        if let Some((_, rows)) = self.cache.lock().iter().find(|(id, _)| *id == run.id) {
            return Ok(rows.clone());
        }
        let rows = Arc::new(read_run(&run.path)?);
        let mut cache = self.cache.lock();
        cache.push_front((run.id, rows.clone()));
        let mut bytes = 0;
        cache.retain(|(_, rows)| {
            bytes += rows.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>();
            bytes <= RUN_CACHE_BYTES
        });
        Ok(rows)
    }
}

fn run_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:016x}.run"))
}

/// `len (4, BE) | key | len (4, BE) | value`, row after row.
fn encode_rows(rows: &Rows) -> Vec<u8> {
    let mut raw = Vec::with_capacity(rows.iter().map(|(k, v)| 8 + k.len() + v.len()).sum());
    for (key, value) in rows {
        for part in [key, value] {
            raw.extend_from_slice(&(part.len() as u32).to_be_bytes());
            raw.extend_from_slice(part);
        }
    }
    let block = lz4_flex::compress_prepend_size(&raw);
    let mut file = Vec::with_capacity(12 + block.len());
    file.extend_from_slice(RUN_MAGIC);
    file.extend_from_slice(&crc32fast::hash(&block).to_be_bytes());
    file.extend_from_slice(&block);
    file
}

/// Writes `bytes` to a temporary file, fsyncs it, renames it to `path` and fsyncs `dir`.
fn write_file(dir: &Path, path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::File::create(&tmp).map_err(|e| io(&tmp, e))?;
    file.write_all(bytes).map_err(|e| io(&tmp, e))?;
    file.sync_data().map_err(|e| io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| io(path, e))?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io(dir, e))
}

fn read_run(path: &Path) -> Result<Rows> {
    let len = std::fs::metadata(path).map_err(|e| io(path, e))?.len();
    if len > RUN_FILE_MAX_BYTES {
        return Err(corrupt(path, format!("{len} bytes, larger than any run")));
    }
    let bytes = std::fs::read(path).map_err(|e| io(path, e))?;
    decode_rows(&bytes).map_err(|reason| corrupt(path, reason))
}

fn decode_rows(bytes: &[u8]) -> std::result::Result<Rows, String> {
    let (magic, rest) = bytes.split_at_checked(8).ok_or("shorter than its header")?;
    if magic != RUN_MAGIC {
        return Err("not a run file".into());
    }
    let (crc, block) = rest.split_at_checked(4).ok_or("shorter than its header")?;
    let crc = u32::from_be_bytes(crc.try_into().map_err(|_| "no checksum")?);
    if crc32fast::hash(block) != crc {
        return Err("checksum mismatch".into());
    }
    let raw = lz4_flex::decompress_size_prepended(block).map_err(|e| e.to_string())?;
    let mut rows = Vec::new();
    let mut at = 0;
    let part = |at: &mut usize| -> std::result::Result<Vec<u8>, String> {
        let len = raw
            .get(*at..*at + 4)
            .and_then(|b| <[u8; 4]>::try_from(b).ok())
            .map(u32::from_be_bytes)
            .ok_or("a row is cut short")? as usize;
        let value = raw
            .get(*at + 4..*at + 4 + len)
            .ok_or("a row is cut short")?
            .to_vec();
        *at += 4 + len;
        Ok(value)
    };
    while at < raw.len() {
        let key = part(&mut at)?;
        let value = part(&mut at)?;
        rows.push((key, value));
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(dir: &Path) -> (sled::Db, sled::Tree) {
        let db = sled::Config::new().path(dir.join("db")).open().unwrap();
        let tree = db.open_tree("rows").unwrap();
        (db, tree)
    }

    fn log_key(n: u8) -> Vec<u8> {
        vec![LOG, 0, 0, 0, 0, 0, 0, 0, n]
    }

    #[test]
    fn rows_round_trip_and_damage_is_reported() {
        let rows: Rows = vec![(b"a".to_vec(), b"1".to_vec()), (b"b".to_vec(), vec![])];
        let file = encode_rows(&rows);
        assert_eq!(decode_rows(&file).unwrap(), rows);
        let mut bad = file.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert_eq!(decode_rows(&bad).unwrap_err(), "checksum mismatch");
        assert_eq!(decode_rows(b"SKY").unwrap_err(), "shorter than its header");
    }

    #[test]
    fn sealed_rows_and_marks_survive_a_reopen_and_open_rows_are_read_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let runs_dir = dir.path().join("records");
        let (db, tree) = tree(dir.path());
        let runs = RecordRuns::open(runs_dir.clone(), &tree).unwrap();
        let diverted = runs.divert(vec![
            (log_key(2), Some(b"two".to_vec())),
            (log_key(1), Some(b"one".to_vec())),
            (b"Lindex".to_vec(), Some(Vec::new())),
            MarkKind::Logs.op(7),
        ]);
        assert_eq!(diverted.ops, vec![(b"Lindex".to_vec(), Some(Vec::new()))]);
        assert_eq!(runs.get(&log_key(1)).unwrap(), Some(Some(b"one".to_vec())));
        // The mark waits for the seal.
        assert_eq!(tree.get(MarkKind::Logs.key()).unwrap(), None);
        runs.seal(&tree).unwrap();
        assert_eq!(
            tree.get(MarkKind::Logs.key()).unwrap().unwrap().as_ref(),
            7u64.to_be_bytes()
        );
        runs.divert(vec![(log_key(3), Some(b"three".to_vec()))]);
        let all = runs.range(&[LOG], &[LOG + 1]).unwrap();
        assert_eq!(
            all.iter()
                .map(|(_, v)| v.as_deref().unwrap())
                .collect::<Vec<_>>(),
            [b"one".as_slice(), b"two", b"three"]
        );
        // A file no seal finished is removed at the next open; the unsealed row is gone
        // (the write-ahead log replays it).
        std::fs::write(runs_dir.join("00000000000000ff.run"), b"partial").unwrap();
        drop(runs);
        let runs = RecordRuns::open(runs_dir.clone(), &tree).unwrap();
        assert!(!runs_dir.join("00000000000000ff.run").exists());
        assert_eq!(runs.get(&log_key(2)).unwrap(), Some(Some(b"two".to_vec())));
        assert_eq!(runs.get(&log_key(3)).unwrap(), None);
        drop(db);
    }

    #[test]
    fn retention_hides_rows_at_once_and_deletes_emptied_runs() {
        let dir = tempfile::tempdir().unwrap();
        let (_db, tree) = tree(dir.path());
        let runs = RecordRuns::open(dir.path().join("records"), &tree).unwrap();
        runs.divert(vec![(log_key(1), Some(b"one".to_vec()))]);
        runs.seal(&tree).unwrap();
        runs.divert(vec![(log_key(5), Some(b"five".to_vec()))]);
        runs.seal(&tree).unwrap();
        let files = |dir: &Path| std::fs::read_dir(dir).unwrap().count();
        let diverted = runs.divert(vec![(log_key(1), None)]);
        for (key, value) in diverted.ops {
            match value {
                Some(v) => tree.insert(key, v).unwrap(),
                None => tree.remove(key).unwrap(),
            };
        }
        assert_eq!(files(&dir.path().join("records")), 2);
        runs.delete_expired();
        assert_eq!(files(&dir.path().join("records")), 1);
        assert_eq!(runs.get(&log_key(1)).unwrap(), Some(None));
        assert_eq!(runs.range(&[LOG], &[LOG + 1]).unwrap().len(), 1);
        // Late rows below the floor are not taken.
        runs.divert(vec![(log_key(0), Some(b"late".to_vec()))]);
        assert_eq!(runs.get(&log_key(0)).unwrap(), Some(None));
        let runs = RecordRuns::open(dir.path().join("records"), &tree).unwrap();
        assert_eq!(runs.get(&log_key(1)).unwrap(), Some(None));
        assert_eq!(runs.get(&log_key(5)).unwrap(), Some(Some(b"five".to_vec())));
        // A listed file that is gone (its removal was lost in a crash) is dropped, not an error.
        drop(runs);
        for entry in std::fs::read_dir(dir.path().join("records")).unwrap() {
            std::fs::remove_file(entry.unwrap().path()).unwrap();
        }
        let runs = RecordRuns::open(dir.path().join("records"), &tree).unwrap();
        assert_eq!(runs.get(&log_key(5)).unwrap(), None);
        assert_eq!(tree.scan_prefix([RUN_META]).count(), 0);
    }

    #[test]
    fn issue_rows_are_buffered_until_the_seal_then_stored_in_sled_once() {
        let dir = tempfile::tempdir().unwrap();
        let (_db, tree) = tree(dir.path());
        let runs = RecordRuns::open(dir.path().join("records"), &tree).unwrap();
        let issue = vec![ISSUE, b'x'];
        tree.insert(vec![ISSUE, b'y'], b"old".to_vec()).unwrap();
        for count in 1..=3u8 {
            let diverted = runs.divert(vec![
                (issue.clone(), Some(vec![count])),
                MarkKind::Issues.op(u64::from(count)),
            ]);
            assert!(diverted.ops.is_empty());
        }
        let deleted = runs.divert(vec![(vec![ISSUE, b'y'], None)]);
        assert!(deleted.ops.is_empty());
        assert_eq!(runs.get(&issue).unwrap(), Some(Some(vec![3])));
        assert_eq!(runs.get(&[ISSUE, b'y']).unwrap(), Some(None));
        assert_eq!(tree.get(&issue).unwrap(), None);
        runs.seal(&tree).unwrap();
        assert_eq!(tree.get(&issue).unwrap().unwrap().as_ref(), [3]);
        assert_eq!(tree.get([ISSUE, b'y']).unwrap(), None);
        assert_eq!(
            tree.get(MarkKind::Issues.key()).unwrap().unwrap().as_ref(),
            3u64.to_be_bytes()
        );
        assert_eq!(runs.get(&issue).unwrap(), None);
    }

    #[test]
    fn small_runs_are_merged_into_one_and_the_old_files_go() {
        let dir = tempfile::tempdir().unwrap();
        let runs_dir = dir.path().join("records");
        let (db, tree) = tree(dir.path());
        let runs = RecordRuns::open(runs_dir.clone(), &tree).unwrap();
        let count = COMPACT_AFTER_RUNS as u8;
        for n in 0..count {
            runs.divert(vec![(log_key(n), Some(vec![n]))]);
            // A newer version of the first row, in a later run, wins the merge.
            if n == 3 {
                runs.divert(vec![(log_key(0), Some(b"newer".to_vec()))]);
            }
            runs.seal(&tree).unwrap();
            if n + 1 < count {
                assert!(runs.compact(&tree).unwrap().is_empty());
            }
        }
        let files = |dir: &Path| std::fs::read_dir(dir).unwrap().count();
        assert_eq!(files(&runs_dir), usize::from(count));
        let merged = runs.compact(&tree).unwrap();
        assert_eq!(merged.len(), usize::from(count));
        db.flush().unwrap();
        RecordRuns::delete_files(&merged);
        assert_eq!(files(&runs_dir), 1);
        let all = runs.range(&[LOG], &[LOG + 1]).unwrap();
        assert_eq!(all.len(), usize::from(count));
        assert_eq!(all[0].1.as_deref(), Some(b"newer".as_slice()));
        let reopened = RecordRuns::open(runs_dir.clone(), &tree).unwrap();
        assert_eq!(reopened.range(&[LOG], &[LOG + 1]).unwrap(), all);
        assert_eq!(files(&runs_dir), 1);
    }
}
