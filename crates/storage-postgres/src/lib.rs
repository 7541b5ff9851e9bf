//! Skylark's PostgreSQL storage: several stateless Skylark nodes over one shared database.
//!
//! [`PostgresStorage`] implements [`skylark_storage::Storage`], so rules, the write-ahead log,
//! guards and queries run unchanged. Metric rows hold mergeable partial aggregates that every
//! node upserts with an additive merge; logs and segments live in tables partitioned by day, so
//! retention drops partitions; each node's write-ahead-log marks are stored in the same
//! transaction as the data they cover.
#![warn(missing_docs, unreachable_pub)]

mod config;
mod db;
mod deferred;
mod error;
mod kv;
mod metrics;
mod records;
mod schema;
mod storage;
mod traffic;

pub use config::PostgresConfig;
pub use error::Error;
pub use storage::PostgresStorage;
#[cfg(feature = "testing")]
mod testing;
#[cfg(feature = "testing")]
pub use testing::{TestDatabase, REQUIRE_ENV, URL_ENV, USER_ENV};
