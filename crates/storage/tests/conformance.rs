//! Runs the conformance suite against both backends.
use skylark_storage::{run_conformance_suite, MemStorage, SledConfig, SledStorage, Storage};
use tempfile::TempDir;

#[test]
fn memory_storage_conforms() {
    run_conformance_suite(&mut || Box::new(MemStorage::new()) as Box<dyn Storage>);
}

#[test]
fn sled_storage_conforms() {
    let mut dirs: Vec<TempDir> = Vec::new();
    run_conformance_suite(&mut || {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStorage::open(SledConfig::new(dir.path().join("db"))).unwrap();
        dirs.push(dir);
        Box::new(store) as Box<dyn Storage>
    });
}
