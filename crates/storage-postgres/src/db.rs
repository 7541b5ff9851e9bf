//! The bridge from the synchronous storage trait to the async driver: a small runtime owned by
//! the backend runs every database call, and the caller's thread waits on a plain channel, so a
//! call from any thread (a WAL applier, `spawn_blocking`, a query thread, even a runtime worker)
//! never nests one runtime inside another.
use crate::error::{Error, Result};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use std::future::Future;

pub(crate) struct Db {
    runtime: Option<tokio::runtime::Runtime>,
    pool: Pool,
    /// Connections that only hold cluster-wide locks, apart from `pool` so that work done under
    /// a lock never waits for a connection a lock holder keeps.
    lock_pool: Pool,
}

/// Lock connections: enough for every kind of lock and the sweep to wait at once.
const LOCK_CONNECTIONS: usize = 4;

/// A pool of at most `size` connections to the configured database.
fn pool_of(config: &crate::PostgresConfig, size: usize) -> Result<Pool> {
    let manager = Manager::from_config(
        config.driver_config(),
        tokio_postgres::NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(size)
        .runtime(deadpool_postgres::Runtime::Tokio1)
        .build()
        .map_err(Error::BuildPool)
}

impl Db {
    pub(crate) fn new(config: &crate::PostgresConfig) -> Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("skylark-postgres")
            .enable_all()
            .build()
            .map_err(Error::Runtime)?;
        let pool = pool_of(config, config.pool_size)?;
        let lock_pool = pool_of(config, LOCK_CONNECTIONS)?;
        Ok(Db {
            runtime: Some(runtime),
            pool,
            lock_pool,
        })
    }

    /// Runs `work` on this thread while this node holds the cluster-wide advisory lock `key`, so
    /// read-modify-writes of rows several nodes share (issue counters, RUM session summaries)
    /// never lose another node's update. Within a node the callers already serialise, so each
    /// kind of lock waits on one lock connection at most.
    pub(crate) fn with_cluster_lock<T>(
        &self,
        key: i64,
        work: impl FnOnce() -> skylark_storage::Result<T>,
    ) -> skylark_storage::Result<T> {
        let lock_pool = self.lock_pool.clone();
        let client = self.run(move |_| async move {
            let client = lock_pool
                .get()
                .await
                .map_err(Error::pool("taking a cluster lock"))?;
            client
                .execute("SELECT pg_advisory_lock($1)", &[&key])
                .await
                .map_err(Error::db("taking a cluster lock"))?;
            Ok(client)
        })?;
        let held = HeldLock(Some(client));
        let result = work();
        held.release(self, key);
        result
    }

    /// Runs `work` on the backend's runtime and waits for its result on this thread.
    pub(crate) fn run<T, F, Fut>(&self, work: F) -> Result<T>
    where
        F: FnOnce(Pool) -> Fut,
        Fut: Future<Output = Result<T>> + Send + 'static,
        T: Send + 'static,
    {
        let Some(runtime) = &self.runtime else {
            return Err(Error::Runtime(std::io::Error::other("runtime stopped")));
        };
        let future = work(self.pool.clone());
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        runtime.spawn(async move {
            let _ = tx.send(future.await);
        });
        rx.recv()
            .map_err(|_| Error::Runtime(std::io::Error::other("database task was dropped")))?
    }
}

/// A lock connection holding an advisory lock. Dropped without [`HeldLock::release`] (a panic
/// in the work), its connection is closed, not pooled, which releases the lock.
struct HeldLock(Option<deadpool_postgres::Client>);

impl HeldLock {
    fn release(mut self, db: &Db, key: i64) {
        let Some(client) = self.0.take() else {
            return;
        };
        let unlocked = db.run(move |_| async move {
            match client
                .execute("SELECT pg_advisory_unlock($1)", &[&key])
                .await
            {
                Ok(_) => Ok(()),
                Err(error) => {
                    // Closing the session releases whatever it holds.
                    drop(deadpool_postgres::Object::take(client));
                    Err(Error::db("releasing a cluster lock")(error))
                }
            }
        });
        if let Err(error) = unlocked {
            tracing::warn!(%error, "cluster lock released by closing its connection");
        }
    }
}

impl Drop for HeldLock {
    fn drop(&mut self) {
        if let Some(client) = self.0.take() {
            drop(deadpool_postgres::Object::take(client));
        }
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        // Dropping a runtime blocks, which panics inside another runtime's async context.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}
