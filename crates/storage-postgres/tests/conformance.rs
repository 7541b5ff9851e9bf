//! The storage conformance suite (the one sled and memory run) against PostgreSQL: each check on
//! a fresh database.
use skylark_storage::{run_conformance_suite, Storage};
use skylark_storage_postgres::{PostgresStorage, TestDatabase};

#[test]
fn postgres_storage_conforms() {
    if TestDatabase::create().is_none() {
        return;
    }
    let mut dbs: Vec<TestDatabase> = Vec::new();
    run_conformance_suite(&mut || {
        let db = TestDatabase::create().expect("postgresql went away");
        let store = PostgresStorage::connect(&db.config("node-a")).unwrap();
        dbs.push(db);
        Box::new(store) as Box<dyn Storage>
    });
}
