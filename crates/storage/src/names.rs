//! The dictionary behind metric keys: every metric name and entity id a metric row refers to,
//! numbered once, so that a row's key is 18 bytes instead of both names spelled out (the names
//! were four fifths of a minute row, and sled writes a row's key several times over).
//!
//! Ids are handed out in order as emissions are aggregated, and stored as `d | name` → id rows
//! ([`keys::NAME`]) in the first batch of the next flush, ahead of every row that uses them: a
//! row that survives a crash always finds its names (sled recovers its log as a prefix).
use crate::keys::{self, NameId};
use crate::rows::{RowOp, RowStore};
use crate::{Error, Result};
use parking_lot::RwLock;
use std::sync::Arc;

/// Metric names and entity ids and the ids that stand for them.
pub(crate) struct Names {
    inner: RwLock<Dictionary>,
}

#[derive(Default)]
struct Dictionary {
    ids: foldhash::HashMap<Arc<str>, NameId>,
    /// The name of each id (`None` only where a folder lost an id row: never written so).
    names: Vec<Option<Arc<str>>>,
    /// Ids below this are stored.
    stored: usize,
}

impl Names {
    /// The dictionary stored in `store`.
    pub(crate) fn load(store: &dyn RowStore) -> Result<Names> {
        let mut dictionary = Dictionary::default();
        store.scan_prefix(&[keys::NAME], &mut |key, value| {
            let name = std::str::from_utf8(&key[1..]).map_err(|_| Error::CorruptName {
                key: String::from_utf8_lossy(key).into_owned(),
                reason: "the name is not UTF-8".to_string(),
            })?;
            let id = <[u8; 4]>::try_from(value)
                .map(NameId::from_be_bytes)
                .map_err(|_| Error::CorruptName {
                    key: String::from_utf8_lossy(key).into_owned(),
                    reason: format!("an id of {} bytes", value.len()),
                })?;
            let name: Arc<str> = Arc::from(name);
            let slot = id as usize;
            if dictionary.names.len() <= slot {
                dictionary.names.resize(slot + 1, None);
            }
            dictionary.names[slot] = Some(name.clone());
            dictionary.ids.insert(name, id);
            Ok(())
        })?;
        dictionary.stored = dictionary.names.len();
        Ok(Names {
            inner: RwLock::new(dictionary),
        })
    }

    /// The id of `name`, if it has one.
    pub(crate) fn id(&self, name: &str) -> Option<NameId> {
        self.inner.read().ids.get(name).copied()
    }

    /// The id of `name`, handing out the next one if it has none. `None` once every id is
    /// taken (4 billion names).
    pub(crate) fn id_or_new(&self, name: &str) -> Option<NameId> {
        if let Some(id) = self.id(name) {
            return Some(id);
        }
        let mut dictionary = self.inner.write();
        if let Some(id) = dictionary.ids.get(name) {
            return Some(*id);
        }
        let id = NameId::try_from(dictionary.names.len()).ok()?;
        let name: Arc<str> = Arc::from(name);
        dictionary.names.push(Some(name.clone()));
        dictionary.ids.insert(name, id);
        Some(id)
    }

    /// The name `id` stands for.
    pub(crate) fn name(&self, id: NameId) -> Option<Arc<str>> {
        self.inner.read().names.get(id as usize).cloned().flatten()
    }

    /// The rows of the ids not stored yet, and the count to pass to [`Names::stored_up_to`]
    /// once they are.
    pub(crate) fn unstored(&self) -> (Vec<RowOp>, usize) {
        let dictionary = self.inner.read();
        let ops = dictionary.names[dictionary.stored..]
            .iter()
            .enumerate()
            .filter_map(|(offset, name)| {
                let id = (dictionary.stored + offset) as NameId;
                let name = name.as_ref()?;
                Some((keys::name_key(name), Some(id.to_be_bytes().to_vec())))
            })
            .collect();
        (ops, dictionary.names.len())
    }

    /// Notes that the ids below `count` are stored.
    pub(crate) fn stored_up_to(&self, count: usize) {
        let mut dictionary = self.inner.write();
        dictionary.stored = dictionary.stored.max(count);
    }

    /// How many names the dictionary holds.
    pub(crate) fn len(&self) -> usize {
        self.inner.read().names.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mem_storage::MemRows;

    #[test]
    fn ids_are_handed_out_once_and_read_back_after_a_reload() {
        let store = MemRows::default();
        let names = Names::load(&store).unwrap();
        let cpm = names.id_or_new("cpm").unwrap();
        let svc = names.id_or_new("svc.1").unwrap();
        assert_ne!(cpm, svc);
        assert_eq!(names.id_or_new("cpm"), Some(cpm));
        assert_eq!(names.id("other"), None);
        // Nothing is stored until asked.
        assert_eq!(Names::load(&store).unwrap().len(), 0);
        let (ops, count) = names.unstored();
        assert_eq!((ops.len(), count), (2, 2));
        store.apply(ops).unwrap();
        names.stored_up_to(count);
        assert!(names.unstored().0.is_empty());
        let reloaded = Names::load(&store).unwrap();
        assert_eq!(reloaded.id("cpm"), Some(cpm));
        assert_eq!(reloaded.name(svc).as_deref(), Some("svc.1"));
        // New ids continue after the stored ones.
        let next = reloaded.id_or_new("svc.2").unwrap();
        assert!(next > cpm && next > svc);
    }

    #[test]
    fn a_damaged_dictionary_row_is_an_error_not_a_wrong_name() {
        let store = MemRows::default();
        store
            .apply(vec![(keys::name_key("cpm"), Some(vec![0, 1]))])
            .unwrap();
        let error = Names::load(&store).err().unwrap();
        assert!(error.to_string().contains("an id of 2 bytes"), "{error}");
    }
}
