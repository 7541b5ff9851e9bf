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
}

impl Db {
    pub(crate) fn new(config: &crate::PostgresConfig) -> Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("skylark-postgres")
            .enable_all()
            .build()
            .map_err(Error::Runtime)?;
        let manager = Manager::from_config(
            config.driver_config(),
            tokio_postgres::NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(config.pool_size)
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .build()
            .map_err(Error::BuildPool)?;
        Ok(Db {
            runtime: Some(runtime),
            pool,
        })
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

impl Drop for Db {
    fn drop(&mut self) {
        // Dropping a runtime blocks, which panics inside another runtime's async context.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}
