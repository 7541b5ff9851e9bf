//! The embedded default backend.
use crate::engine::Engine;
use crate::rows::{RangeVisitor, RowOp, RowStore, RowVisitor};
use crate::runs::{self, HeldRow, RecordRuns};
use crate::Result;
use std::cmp::Ordering;
use std::path::PathBuf;

/// The folder inside the database folder that holds the record runs.
const RUNS_FOLDER: &str = "records";

/// Where and how [`SledStorage`] keeps its files.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SledConfig {
    /// Directory of the database (created if missing).
    pub path: PathBuf,
    /// Page cache size in bytes. sled's own default is 1 GiB; a small cache keeps idle memory low.
    #[serde(default = "SledConfig::default_cache_capacity_bytes")]
    pub cache_capacity_bytes: u64,
    /// How often sled fsyncs in the background, in ms; `None` only syncs on [`crate::Storage::flush`].
    #[serde(default = "SledConfig::default_flush_every_ms")]
    pub flush_every_ms: Option<u64>,
}

impl SledConfig {
    /// 16 MiB.
    pub const DEFAULT_CACHE_CAPACITY_BYTES: u64 = 16 * 1024 * 1024;

    fn default_cache_capacity_bytes() -> u64 {
        Self::DEFAULT_CACHE_CAPACITY_BYTES
    }

    fn default_flush_every_ms() -> Option<u64> {
        Some(500)
    }

    /// A config for `path` with the default cache (16 MiB) and background sync (500 ms).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        SledConfig {
            path: path.into(),
            cache_capacity_bytes: Self::default_cache_capacity_bytes(),
            flush_every_ms: Self::default_flush_every_ms(),
        }
    }
}

/// The single sled tree every row lives in (see `keys` for the layout), except the rows of
/// logs and segments, which go to record runs (`runs`).
struct SledRows {
    db: sled::Db,
    rows: sled::Tree,
    runs: RecordRuns,
}

impl SledRows {
    /// The sled rows of `[start, end)` merged with the run rows there (which win on equal keys).
    fn scan_merged(
        &self,
        start: &[u8],
        end: &[u8],
        reverse: bool,
        visit: &mut RangeVisitor<'_>,
    ) -> Result<()> {
        let runs = self.runs.range(start, end)?;
        let mut sled_rows = self.rows.range(start..end);
        let mut run_rows = runs.iter();
        let next_sled = |rows: &mut sled::Iter| -> Result<Option<(sled::IVec, sled::IVec)>> {
            let next = if reverse {
                rows.next_back()
            } else {
                rows.next()
            };
            Ok(next.transpose()?)
        };
        fn next_run<'a>(
            rows: &mut std::slice::Iter<'a, HeldRow>,
            reverse: bool,
        ) -> Option<&'a HeldRow> {
            if reverse {
                rows.next_back()
            } else {
                rows.next()
            }
        }
        let mut from_sled = next_sled(&mut sled_rows)?;
        let mut from_run = next_run(&mut run_rows, reverse);
        loop {
            let order = match (&from_sled, from_run) {
                (None, None) => return Ok(()),
                (None, Some(_)) => Ordering::Equal,
                (Some(_), None) => {
                    if reverse {
                        Ordering::Less
                    } else {
                        Ordering::Greater
                    }
                }
                (Some((sled_key, _)), Some((run_key, _))) => run_key.as_slice().cmp(sled_key),
            };
            if order == Ordering::Equal && from_sled.is_some() {
                // A held row is newer than a sled row under the same key.
                from_sled = next_sled(&mut sled_rows)?;
            }
            let take_run = order == Ordering::Equal || ((order == Ordering::Less) != reverse);
            let go_on = if take_run {
                let Some((key, value)) = from_run else {
                    return Ok(());
                };
                from_run = next_run(&mut run_rows, reverse);
                match value {
                    Some(value) => visit(key, value)?,
                    // Deleted, not yet sealed.
                    None => true,
                }
            } else {
                let Some((key, value)) = from_sled.take() else {
                    return Ok(());
                };
                from_sled = next_sled(&mut sled_rows)?;
                visit(&key, &value)?
            };
            if !go_on {
                return Ok(());
            }
        }
    }

    fn apply_to_sled(&self, ops: Vec<RowOp>) -> Result<()> {
        let mut batch = sled::Batch::default();
        for (key, value) in ops {
            match value {
                Some(value) => batch.insert(key, value),
                None => batch.remove(key),
            }
        }
        // sled recovers its log as a prefix: a later flush makes this batch durable too.
        self.rows.apply_batch(batch)?;
        Ok(())
    }
}

impl RowStore for SledRows {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        if runs::is_held_key(key) {
            if let Some(held) = self.runs.get(key)? {
                return Ok(held);
            }
        }
        Ok(self.rows.get(key)?.map(|v| v.to_vec()))
    }

    fn scan_prefix(&self, prefix: &[u8], visit: &mut RowVisitor<'_>) -> Result<()> {
        if prefix.is_empty() || runs::is_held_key(prefix) {
            let end = prefix_end(prefix);
            return self.scan_merged(prefix, &end, false, &mut |key, value| {
                visit(key, value)?;
                Ok(true)
            });
        }
        for row in self.rows.scan_prefix(prefix) {
            let (key, value) = row?;
            visit(&key, &value)?;
        }
        Ok(())
    }

    fn scan_range(
        &self,
        start: &[u8],
        end: &[u8],
        reverse: bool,
        visit: &mut RangeVisitor<'_>,
    ) -> Result<()> {
        if start >= end {
            return Ok(());
        }
        if runs::touches_held(start, end) {
            return self.scan_merged(start, end, reverse, visit);
        }
        let range = self.rows.range(start..end);
        if reverse {
            for row in range.rev() {
                let (key, value) = row?;
                if !visit(&key, &value)? {
                    break;
                }
            }
        } else {
            for row in range {
                let (key, value) = row?;
                if !visit(&key, &value)? {
                    break;
                }
            }
        }
        Ok(())
    }

    fn keys_in_range(&self, start: &[u8], end: &[u8]) -> Result<Vec<Vec<u8>>> {
        let mut keys = Vec::new();
        self.scan_range(start, end, false, &mut |key, _| {
            keys.push(key.to_vec());
            Ok(true)
        })?;
        Ok(keys)
    }

    fn apply(&self, ops: Vec<RowOp>) -> Result<()> {
        // Records and issues written without a write-ahead log behind them must be on disk on
        // return.
        let records = ops.iter().any(|(key, _)| runs::is_held_key(key));
        self.apply_unsynced(ops)?;
        if records {
            self.runs.seal(&self.rows)?;
        }
        self.sync()
    }

    fn sync(&self) -> Result<()> {
        self.db.flush()?;
        self.runs.delete_expired();
        Ok(())
    }

    fn apply_unsynced(&self, ops: Vec<RowOp>) -> Result<()> {
        let diverted = self.runs.divert(ops);
        if !diverted.ops.is_empty() {
            self.apply_to_sled(diverted.ops)?;
        }
        if diverted.seal_now {
            self.runs.seal(&self.rows)?;
        }
        Ok(())
    }

    fn apply_each_unsynced(&self, ops: Vec<RowOp>) -> Result<()> {
        let diverted = self.runs.divert(ops);
        // sled recovers its log as a prefix, so these land in order across a crash too.
        for (key, value) in diverted.ops {
            match value {
                Some(value) => self.rows.insert(key, value)?,
                None => self.rows.remove(key)?,
            };
        }
        if diverted.seal_now {
            self.runs.seal(&self.rows)?;
        }
        Ok(())
    }

    fn seal(&self) -> Result<()> {
        self.runs.seal(&self.rows)?;
        // Merging runs only saves files; a failure leaves the runs as they were.
        let merged = self.runs.compact(&self.rows).unwrap_or_else(|error| {
            tracing::warn!(%error, "merging record runs failed; they stay as they are");
            Vec::new()
        });
        self.sync()?;
        RecordRuns::delete_files(&merged);
        Ok(())
    }
}

/// The first key after every key that starts with `prefix` (all 0xff: no end but the last).
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0xff; 64]
}

/// Storage in an embedded sled database: aggregation in memory, one atomic batch per flush.
pub struct SledStorage {
    engine: Engine<SledRows>,
}

/// How long `open` waits for another handle in this process to release the database lock.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

impl SledStorage {
    /// Opens (or creates) the database at `config.path` and loads the entity registry.
    pub fn open(config: SledConfig) -> Result<SledStorage> {
        let db = open_db(&config)?;
        let rows = db.open_tree("rows")?;
        let runs = RecordRuns::open(config.path.join(RUNS_FOLDER), &rows)?;
        tracing::info!(path = %config.path.display(), "storage opened");
        Ok(SledStorage {
            engine: Engine::new(SledRows { db, rows, runs })?,
        })
    }
}

impl SledStorage {
    /// Opens and closes the closed database at `config.path` once more. sled writes the
    /// snapshot it recovers from only while opening, and otherwise replays its whole log since
    /// the last open: after hours of writes, that replay is most of the next start (0.8 s of
    /// 1.1 s at 1,000 services after 30 minutes). Done at shutdown, the next start begins here.
    pub fn write_start_up_snapshot(config: &SledConfig) -> Result<()> {
        let db = open_db(config)?;
        db.flush()?;
        Ok(())
    }
}

/// Opens sled at `config.path`.
fn open_db(config: &SledConfig) -> Result<sled::Db> {
    let sled_config = sled::Config::new()
        .path(&config.path)
        .cache_capacity(config.cache_capacity_bytes)
        .flush_every_ms(config.flush_every_ms);
    // A just-dropped instance in this process releases sled's file lock only when its
    // background flusher thread finishes; wait briefly for it instead of failing a reopen.
    let deadline = std::time::Instant::now() + LOCK_WAIT;
    loop {
        match sled_config.open() {
            Err(sled::Error::Io(e))
                if e.kind() == std::io::ErrorKind::Other
                    && e.to_string().contains("could not acquire lock")
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            other => return Ok(other?),
        }
    }
}

crate::delegate_storage!(SledStorage);
