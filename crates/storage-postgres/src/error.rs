/// A failure of the PostgreSQL backend.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `SW_JDBC_URL` is not `jdbc:postgresql://host[:port]/database`.
    #[error("invalid jdbc url {url}: {reason}")]
    BadUrl {
        /// The url as given.
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The database refused a statement or the connection broke.
    #[error("postgresql failed while {context}")]
    Db {
        /// What was being done.
        context: &'static str,
        /// The driver's error.
        #[source]
        source: tokio_postgres::Error,
    },
    /// No connection could be taken from the pool.
    #[error("no postgresql connection while {context}")]
    Pool {
        /// What was being done.
        context: &'static str,
        /// The pool's error.
        #[source]
        source: deadpool_postgres::PoolError,
    },
    /// The pool could not be built from the settings.
    #[error("postgresql pool could not be built")]
    BuildPool(#[source] deadpool_postgres::BuildError),
    /// The backend's own runtime could not start or has stopped.
    #[error("postgresql runtime unavailable")]
    Runtime(#[source] std::io::Error),
    /// A stored row could not be decoded or a row could not be encoded.
    #[error("row of {table} could not be (de)coded")]
    Codec {
        /// The table.
        table: &'static str,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// A write of the write-ahead log's records failed earlier on the writer thread; nothing
    /// after it is applied (its entries stay in the log for the replay at the next start).
    #[error("an earlier record write failed: {0}")]
    EarlierWrite(String),
    /// The shared storage engine (used for alarms, RUM, issues, source maps, templates) failed.
    #[error(transparent)]
    Storage(#[from] skylark_storage::Error),
}

impl Error {
    pub(crate) fn db(context: &'static str) -> impl FnOnce(tokio_postgres::Error) -> Error {
        move |source| Error::Db { context, source }
    }

    pub(crate) fn pool(
        context: &'static str,
    ) -> impl FnOnce(deadpool_postgres::PoolError) -> Error {
        move |source| Error::Pool { context, source }
    }

    pub(crate) fn codec(table: &'static str) -> impl FnOnce(serde_json::Error) -> Error {
        move |source| Error::Codec { table, source }
    }
}

impl From<Error> for skylark_storage::Error {
    fn from(error: Error) -> Self {
        match error {
            Error::Storage(inner) => inner,
            other => skylark_storage::Error::Backend {
                context: "postgresql".to_string(),
                source: Box::new(other),
            },
        }
    }
}

/// Results of this crate.
pub(crate) type Result<T> = std::result::Result<T, Error>;
