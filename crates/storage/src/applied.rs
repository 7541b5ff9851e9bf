//! Write-ahead-log sequence marks: which log entries' effects are already persisted, stored in
//! the same atomic batch as the data they cover, so a replay after a crash re-applies exactly
//! the entries whose effects were lost.
use crate::rows::{RowOp, RowStore};
use crate::{Error, Result};
use std::sync::atomic::{AtomicU64, Ordering};

/// Mark rows: `w | signal name` (`metrics`, `logs`, `segments`, `rum`, `issues`), value the
/// sequence number (8, BE). Public so that a [`crate::RowStore`] shared by several nodes can keep
/// each node's marks apart.
pub const MARK_KEY_PREFIX: u8 = b'w';
const MARK: u8 = MARK_KEY_PREFIX;

/// The persisted marks: every write-ahead-log entry with a sequence number at or below a mark has
/// its effects of that kind stored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AppliedSeqs {
    /// Metric rows and entity traffic (persisted by [`crate::Storage::flush`]).
    pub metrics: u64,
    /// Log records.
    pub logs: u64,
    /// Segment records.
    pub segments: u64,
    /// RUM event records.
    pub rum: u64,
    /// Error issue updates (counts, events, minute counters).
    pub issues: u64,
}

/// Which mark a write advances.
#[derive(Debug, Clone, Copy)]
pub(crate) enum MarkKind {
    Metrics,
    /// The mark of the last metrics flush that began storing rows: above `Metrics` while a flush
    /// is under way (or was cut short), so rows up to it may already hold entries above `Metrics`.
    MetricsStarted,
    Logs,
    Segments,
    Rum,
    Issues,
}

impl MarkKind {
    pub(crate) fn key(self) -> Vec<u8> {
        let name: &[u8] = match self {
            MarkKind::Metrics => b"metrics",
            MarkKind::MetricsStarted => b"metrics-started",
            MarkKind::Logs => b"logs",
            MarkKind::Segments => b"segments",
            MarkKind::Rum => b"rum",
            MarkKind::Issues => b"issues",
        };
        let mut key = vec![MARK];
        key.extend_from_slice(name);
        key
    }

    /// The op that stores `seq` as this mark.
    pub(crate) fn op(self, seq: u64) -> RowOp {
        (self.key(), Some(seq.to_be_bytes().to_vec()))
    }

    /// The stored mark, 0 when none was ever stored.
    pub(crate) fn read(self, store: &dyn RowStore) -> Result<u64> {
        let key = self.key();
        match store.get(&key)? {
            None => Ok(0),
            Some(bytes) => match <[u8; 8]>::try_from(bytes.as_slice()) {
                Ok(b) => Ok(u64::from_be_bytes(b)),
                Err(_) => Err(Error::CorruptMark(
                    String::from_utf8_lossy(&key).into_owned(),
                )),
            },
        }
    }
}

/// Reads every stored mark.
pub(crate) fn read_applied(store: &dyn RowStore) -> Result<AppliedSeqs> {
    Ok(AppliedSeqs {
        metrics: MarkKind::Metrics.read(store)?,
        logs: MarkKind::Logs.read(store)?,
        segments: MarkKind::Segments.read(store)?,
        rum: MarkKind::Rum.read(store)?,
        issues: MarkKind::Issues.read(store)?,
    })
}

/// The metrics mark as it moves: set with the aggregation it covers, taken by a flush together
/// with the rows, stored with them.
pub(crate) struct MetricsMark {
    /// The highest sequence number whose emissions are in the aggregation (pending or stored).
    /// Written and read only while the engine's `pending` lock is held, so it always matches the
    /// rows a flush takes.
    aggregated: AtomicU64,
    /// The mark last stored.
    stored: AtomicU64,
    /// Entries up to this may already be in some stored rows though the stored mark is below
    /// them (a chunked flush was cut short by a crash): a replay checks each row's own mark.
    /// 0 when the last flush finished.
    recovery_horizon: u64,
}

impl MetricsMark {
    /// Starts from the stored mark.
    pub(crate) fn load(store: &dyn RowStore) -> Result<Self> {
        let stored = MarkKind::Metrics.read(store)?;
        let started = MarkKind::MetricsStarted.read(store)?;
        Ok(MetricsMark {
            aggregated: AtomicU64::new(stored),
            stored: AtomicU64::new(stored),
            recovery_horizon: if started > stored { started } else { 0 },
        })
    }

    /// See `recovery_horizon`: entries at or below it need the per-row check.
    pub(crate) fn recovery_horizon(&self) -> u64 {
        self.recovery_horizon
    }

    /// Records that emissions up to `seq` were aggregated; the caller holds the `pending` lock.
    pub(crate) fn advance(&self, seq: u64) {
        self.aggregated.fetch_max(seq, Ordering::Relaxed);
    }

    /// The mark matching the rows just taken from `pending`; the caller holds the `pending` lock.
    pub(crate) fn take(&self) -> u64 {
        self.aggregated.load(Ordering::Relaxed)
    }

    /// The op storing `taken`, if it moved since the last stored one.
    pub(crate) fn op(&self, taken: u64) -> Option<RowOp> {
        (taken > self.stored.load(Ordering::Relaxed)).then(|| MarkKind::Metrics.op(taken))
    }

    /// Notes that the flush holding `taken` is stored.
    pub(crate) fn stored(&self, taken: u64) {
        self.stored.fetch_max(taken, Ordering::Relaxed);
    }
}
