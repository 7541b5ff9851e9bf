//! The full storage semantics over any ordered key-value store.
use crate::engine::Engine;
use crate::rows::RowStore;
use crate::Result;

/// [`crate::Storage`] over a caller's [`RowStore`]: what [`crate::SledStorage`] and
/// [`crate::MemStorage`] do, for a store kept elsewhere (a backend in another crate uses it for
/// the record kinds it does not model in its own tables).
pub struct KvStorage<K: RowStore> {
    engine: Engine<K>,
}

impl<K: RowStore> KvStorage<K> {
    /// Storage over `store`, with the entity registry and marks loaded from it.
    pub fn open(store: K) -> Result<Self> {
        Ok(KvStorage {
            engine: Engine::new(store)?,
        })
    }
}

crate::delegate_storage!([K: crate::RowStore] KvStorage<K>);
