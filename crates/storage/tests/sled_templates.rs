//! UI templates written to sled are there after reopening.
use skylark_storage::{SledConfig, SledStorage, Storage};
use std::path::Path;

/// Without sled's background flusher, whose thread can still hold the lock right after a drop.
fn open(dir: &Path) -> SledStorage {
    let mut config = SledConfig::new(dir.join("db"));
    config.flush_every_ms = None;
    SledStorage::open(config).unwrap()
}

#[test]
fn templates_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(dir.path());
        store
            .put_template("added", r#"{"name":"A"}"#, false)
            .unwrap();
        store.put_template("gone", r#"{"name":"G"}"#, true).unwrap();
    }
    let store = open(dir.path());
    let listed = store.list_templates().unwrap();
    let rows: Vec<(&str, &str, bool)> = listed
        .iter()
        .map(|t| (t.id.as_str(), t.configuration.as_str(), t.disabled))
        .collect();
    assert_eq!(
        rows,
        vec![
            ("added", r#"{"name":"A"}"#, false),
            ("gone", r#"{"name":"G"}"#, true)
        ]
    );
}
