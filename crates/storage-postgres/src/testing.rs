//! Fresh databases for tests.
use crate::db::Db;
use crate::error::{Error, Result};
use crate::PostgresConfig;

/// Set to `1` (as CI does) to fail tests instead of skipping them when PostgreSQL is unreachable.
pub const REQUIRE_ENV: &str = "SKYLARK_REQUIRE_POSTGRES";
/// The server tests use, OAP's JDBC form; default `jdbc:postgresql://127.0.0.1:5432/postgres`.
pub const URL_ENV: &str = "SKYLARK_TEST_POSTGRES_URL";
/// The user tests connect as; default `postgres`.
pub const USER_ENV: &str = "SKYLARK_TEST_POSTGRES_USER";

/// A database created for one test (`skylark_test_<random>`), dropped when this is dropped.
pub struct TestDatabase {
    admin: PostgresConfig,
    name: String,
}

impl TestDatabase {
    /// Creates a new empty database; `None` (with a message on stderr) when no server answers,
    /// unless `SKYLARK_REQUIRE_POSTGRES=1`, which makes that a panic.
    pub fn create() -> Option<TestDatabase> {
        let url = std::env::var(URL_ENV)
            .unwrap_or_else(|_| "jdbc:postgresql://127.0.0.1:5432/postgres".to_string());
        let user = std::env::var(USER_ENV).unwrap_or_else(|_| "postgres".to_string());
        match TestDatabase::create_on(&url, &user) {
            Ok(db) => Some(db),
            Err(error) => {
                if std::env::var(REQUIRE_ENV).is_ok_and(|v| v == "1") {
                    panic!("PostgreSQL is required ({REQUIRE_ENV}=1) but unreachable at {url}: {error}");
                }
                eprintln!(
                    "SKIPPED: PostgreSQL is not reachable at {url} ({error}); set {URL_ENV} to run \
                     the PostgreSQL tests"
                );
                None
            }
        }
    }

    /// Creates a new empty database on the server `url` (OAP's JDBC form, any existing
    /// database) names, connecting as `user`.
    pub fn create_on(url: &str, user: &str) -> Result<TestDatabase> {
        let admin = PostgresConfig::from_jdbc_url(url, user, "", 1, "test-admin")?;
        let name = format!("skylark_test_{}", uuid::Uuid::new_v4().simple());
        admin_exec(&admin, format!("CREATE DATABASE {name}"))?;
        Ok(TestDatabase { admin, name })
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Settings for a node `node_id` on this database.
    pub fn config(&self, node_id: &str) -> PostgresConfig {
        PostgresConfig {
            database: self.name.clone(),
            pool_size: 4,
            node_id: node_id.to_string(),
            ..self.admin.clone()
        }
    }

    /// `jdbc:postgresql://host:port/name`, for `SW_JDBC_URL`.
    pub fn jdbc_url(&self) -> String {
        format!(
            "jdbc:postgresql://{}:{}/{}",
            self.admin.host, self.admin.port, self.name
        )
    }

    /// The user to connect as.
    pub fn user(&self) -> &str {
        &self.admin.user
    }

    /// Runs `sql` (statements separated by `;`) in this database: for tests that lay out what
    /// an earlier schema left behind.
    pub fn execute(&self, sql: &str) -> Result<()> {
        admin_exec(&self.config("test-admin"), sql.to_string())
    }

    /// The first column of the first row of `sql`, a `bigint`.
    pub fn count(&self, sql: &str) -> Result<i64> {
        let db = Db::new(&self.config("test-admin"))?;
        let sql = sql.to_string();
        db.run(move |pool| async move {
            let client = pool.get().await.map_err(Error::pool("counting in tests"))?;
            let row = client
                .query_one(&sql, &[])
                .await
                .map_err(Error::db("counting in tests"))?;
            Ok(row.get(0))
        })
    }
}

fn admin_exec(admin: &PostgresConfig, sql: String) -> Result<()> {
    let db = Db::new(admin)?;
    db.run(move |pool| async move {
        let client = pool
            .get()
            .await
            .map_err(Error::pool("administering tests"))?;
        client
            .batch_execute(&sql)
            .await
            .map_err(Error::db("administering tests"))
    })
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        if let Err(error) = admin_exec(&self.admin, sql) {
            eprintln!("test database {} not dropped: {error}", self.name);
        }
    }
}
