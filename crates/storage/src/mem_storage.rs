//! An in-memory backend with the same semantics as [`crate::SledStorage`].
use crate::engine::Engine;
use crate::rows::{RangeVisitor, RowOp, RowStore, RowVisitor};
use crate::Result;
use parking_lot::RwLock;
use std::collections::BTreeMap;

/// Rows in an ordered map; also the engine tests' store.
#[derive(Default)]
pub(crate) struct MemRows {
    pub(crate) rows: RwLock<BTreeMap<Vec<u8>, Vec<u8>>>,
}

impl RowStore for MemRows {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.rows.read().get(key).cloned())
    }

    fn scan_prefix(&self, prefix: &[u8], visit: &mut RowVisitor<'_>) -> Result<()> {
        let rows = self.rows.read();
        for (key, value) in rows.range(prefix.to_vec()..) {
            if !key.starts_with(prefix) {
                break;
            }
            visit(key, value)?;
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
        // BTreeMap::range panics on an inverted range.
        if start >= end {
            return Ok(());
        }
        let rows = self.rows.read();
        let range = rows.range(start.to_vec()..end.to_vec());
        if reverse {
            for (key, value) in range.rev() {
                if !visit(key, value)? {
                    break;
                }
            }
        } else {
            for (key, value) in range {
                if !visit(key, value)? {
                    break;
                }
            }
        }
        Ok(())
    }

    fn keys_in_range(&self, start: &[u8], end: &[u8]) -> Result<Vec<Vec<u8>>> {
        if start >= end {
            return Ok(Vec::new());
        }
        Ok(self
            .rows
            .read()
            .range(start.to_vec()..end.to_vec())
            .map(|(k, _)| k.clone())
            .collect())
    }

    fn apply(&self, ops: Vec<RowOp>) -> Result<()> {
        let mut rows = self.rows.write();
        for (key, value) in ops {
            match value {
                Some(value) => rows.insert(key, value),
                None => rows.remove(&key),
            };
        }
        Ok(())
    }
}

/// Storage kept in memory only (lost on drop); for tests and throw-away runs.
pub struct MemStorage {
    engine: Engine<MemRows>,
}

impl MemStorage {
    /// An empty store.
    pub fn new() -> Self {
        MemStorage {
            engine: match Engine::new(MemRows::default()) {
                Ok(engine) => engine,
                // Loading from an empty map reads no rows, so it cannot fail.
                Err(error) => unreachable!("empty memory store failed to load: {error}"),
            },
        }
    }
}

impl Default for MemStorage {
    fn default() -> Self {
        MemStorage::new()
    }
}

crate::delegate_storage!(MemStorage);
