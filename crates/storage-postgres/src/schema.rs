//! Versioned schema migrations, applied at start-up in one transaction under an advisory lock,
//! so two nodes starting together apply each migration once.
//!
//! Every table's key already holds the column it would be distributed by on Citus (see the
//! README), so sharding needs no migration later.
use crate::error::{Error, Result};
use deadpool_postgres::Pool;
use parking_lot::Mutex;
use std::collections::HashSet;

/// `pg_advisory_xact_lock` key of schema changes ("skylark" in ASCII).
const MIGRATION_LOCK: i64 = 0x0073_6b79_6c61_726b;
/// `pg_advisory_xact_lock` key of partition creation.
pub(crate) const PARTITION_LOCK: i64 = MIGRATION_LOCK + 1;
/// `pg_advisory_lock` key of issue updates (each reads, folds and rewrites an issue's rows).
pub(crate) const ISSUE_LOCK: i64 = MIGRATION_LOCK + 2;
/// `pg_advisory_lock` key of RUM writes and expiry (each reads and rewrites session summaries).
pub(crate) const RUM_LOCK: i64 = MIGRATION_LOCK + 3;

/// Each migration once, in order; a shipped migration is never edited, only followed.
const MIGRATIONS: &[(i32, &str)] = &[(1, V1), (2, V2)];

const V1: &str = r#"
CREATE FUNCTION skylark_sat_add(a bigint, b bigint) RETURNS bigint
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT LEAST(GREATEST(a::numeric + b::numeric, -9223372036854775808),
                       9223372036854775807)::bigint $$;

-- One row per (metric, entity, bucket, cell): a cell is '' for a single state, else the labels
-- of one table entry. shape: 0 avg, 1 sum, 2 latest, 3 max, 4 min, 5 avg table, 6 table.
-- op, how a node's partial merges in: 0 add, 1 replace (latest), 2 greatest, 3 least.
CREATE TABLE metric_cells (
    entity text NOT NULL,
    metric text NOT NULL,
    step smallint NOT NULL,
    bucket bigint NOT NULL,
    cell text NOT NULL,
    shape smallint NOT NULL,
    op smallint NOT NULL,
    s bigint NOT NULL,
    c bigint NOT NULL,
    PRIMARY KEY (entity, metric, step, bucket, cell)
);
CREATE INDEX metric_cells_by_metric ON metric_cells (metric, step, bucket);
CREATE INDEX metric_cells_by_bucket ON metric_cells (step, bucket);

CREATE TABLE services (
    service_id text NOT NULL,
    layer integer NOT NULL,
    name text NOT NULL,
    PRIMARY KEY (service_id, layer)
);
CREATE TABLE instances (
    service_id text NOT NULL,
    id text NOT NULL,
    name text NOT NULL,
    last_ping_ms bigint NOT NULL,
    PRIMARY KEY (service_id, id)
);
CREATE INDEX instances_by_id ON instances (id);
CREATE TABLE endpoints (
    service_id text NOT NULL,
    id text NOT NULL,
    name text NOT NULL,
    last_ping_ms bigint NOT NULL,
    PRIMARY KEY (service_id, id)
);
CREATE INDEX endpoints_by_id ON endpoints (id);

-- Each node's write-ahead-log marks, written in the transaction of the data they cover.
CREATE TABLE applied_marks (
    node text NOT NULL,
    kind text NOT NULL,
    seq bigint NOT NULL,
    PRIMARY KEY (node, kind)
);

-- Records, partitioned by UTC day (days since the epoch): retention drops partitions.
CREATE TABLE logs (
    service_id text NOT NULL,
    day integer NOT NULL,
    ts bigint NOT NULL,
    id text NOT NULL,
    instance_id text,
    endpoint_id text,
    trace_id text,
    segment_id text,
    span_id integer,
    -- The stored log as JSON text (bytes: the database never looks inside).
    body bytea NOT NULL,
    PRIMARY KEY (service_id, day, ts, id)
) PARTITION BY RANGE (day);
CREATE INDEX logs_by_time ON logs (ts, id);
CREATE INDEX logs_by_trace ON logs (trace_id);

CREATE TABLE segments (
    service_id text NOT NULL,
    day integer NOT NULL,
    start_ms bigint NOT NULL,
    segment_id text NOT NULL,
    trace_id text NOT NULL,
    instance_id text NOT NULL,
    endpoint_id text NOT NULL,
    latency_ms bigint NOT NULL,
    is_error boolean NOT NULL,
    body bytea NOT NULL,
    PRIMARY KEY (service_id, day, start_ms, segment_id)
) PARTITION BY RANGE (day);
CREATE INDEX segments_by_time ON segments (start_ms, segment_id);
CREATE INDEX segments_by_trace ON segments (trace_id);

-- Tag autocomplete of logs ('l') and segments ('g') per day.
CREATE TABLE record_tags (
    kind "char" NOT NULL,
    day integer NOT NULL,
    key text NOT NULL,
    value text NOT NULL,
    PRIMARY KEY (kind, day, key, value)
);

-- Alarms, RUM events and sessions, issues, source maps and UI templates: the shared engine's
-- ordered key-value rows.
CREATE TABLE kv (
    k bytea PRIMARY KEY,
    v bytea NOT NULL
);
"#;

/// The day-partitioned tables, each with the column that holds a row's time (`None`: none;
/// the shared engine deletes that day's expired rows itself).
pub(crate) const DAY_TABLES: [(&str, Option<&str>); 3] = [
    ("logs", Some("ts")),
    ("segments", Some("start_ms")),
    ("kv_by_day", None),
];

const V2: &str = r#"
-- The engine's rows whose key carries a time (RUM events and their index rows, alarm records
-- and their autocomplete rows), partitioned by UTC day like logs and segments, so retention
-- drops a day's partition instead of deleting its rows. `day` is derived from `k`.
CREATE TABLE kv_by_day (
    day integer NOT NULL,
    k bytea NOT NULL,
    v bytea NOT NULL,
    PRIMARY KEY (k, day)
) PARTITION BY RANGE (day);
"#;

/// Applies every migration the database lacks; returns the schema version.
pub(crate) async fn migrate(pool: Pool) -> Result<i32> {
    let mut client = pool.get().await.map_err(Error::pool("migrating"))?;
    let tx = client
        .transaction()
        .await
        .map_err(Error::db("starting the migration"))?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(Error::db("taking the migration lock"))?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS skylark_schema_version (
             version integer PRIMARY KEY,
             applied_at timestamptz NOT NULL DEFAULT now())",
    )
    .await
    .map_err(Error::db("creating the version table"))?;
    let row = tx
        .query_one(
            "SELECT COALESCE(MAX(version), 0) FROM skylark_schema_version",
            &[],
        )
        .await
        .map_err(Error::db("reading the schema version"))?;
    let mut version: i32 = row.get(0);
    for (number, sql) in MIGRATIONS {
        if *number <= version {
            continue;
        }
        tx.batch_execute(sql)
            .await
            .map_err(Error::db("applying a migration"))?;
        tx.execute(
            "INSERT INTO skylark_schema_version (version) VALUES ($1)",
            &[number],
        )
        .await
        .map_err(Error::db("recording a migration"))?;
        tracing::info!(version = number, "postgresql schema migrated");
        version = *number;
    }
    move_timed_rows(&tx).await?;
    tx.commit()
        .await
        .map_err(Error::db("committing the migration"))?;
    Ok(version)
}

/// Moves rows that schema version 1 kept in `kv` and version 2 keeps in `kv_by_day` (a no-op on
/// databases created at version 2 or later: the key ranges are empty).
async fn move_timed_rows(tx: &deadpool_postgres::Transaction<'_>) -> Result<()> {
    // The first keys of every timed kind and the first keys after them (see `timed_row_day`).
    const RANGES: [(&[u8], &[u8]); 4] = [(b"R", b"S"), (b"a", b"b"), (b"r", b"s"), (b"ta", b"tb")];
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&PARTITION_LOCK])
        .await
        .map_err(Error::db("taking the partition lock"))?;
    for (start, end) in RANGES {
        let rows = tx
            .query(
                "DELETE FROM kv WHERE k >= $1 AND k < $2 RETURNING k, v",
                &[&start, &end],
            )
            .await
            .map_err(Error::db("moving timed rows"))?;
        if rows.is_empty() {
            continue;
        }
        // Keys and values per day.
        type Columns = (Vec<Vec<u8>>, Vec<Vec<u8>>);
        let mut by_day: std::collections::BTreeMap<i32, Columns> = Default::default();
        for row in rows {
            let (k, v): (Vec<u8>, Vec<u8>) = (row.get(0), row.get(1));
            let Some(day) = skylark_storage::timed_row_day(&k).map(clamp_day) else {
                // Not a key the engine writes: keep it where it was.
                tx.execute("INSERT INTO kv (k, v) VALUES ($1, $2)", &[&k, &v])
                    .await
                    .map_err(Error::db("moving timed rows"))?;
                continue;
            };
            let entry = by_day.entry(day).or_default();
            entry.0.push(k);
            entry.1.push(v);
        }
        for (day, (keys, values)) in by_day {
            create_partition(tx, "kv_by_day", day).await?;
            tx.execute(
                "INSERT INTO kv_by_day (day, k, v) SELECT $1, * FROM UNNEST($2::bytea[], $3::bytea[])",
                &[&day, &keys, &values],
            )
            .await
            .map_err(Error::db("moving timed rows"))?;
        }
        tracing::info!(
            from = %String::from_utf8_lossy(start),
            "moved time-keyed rows into day partitions"
        );
    }
    Ok(())
}

/// A day number as a partition bound; days beyond `i32` (times the engine never keeps) clamp.
pub(crate) fn clamp_day(day: i64) -> i32 {
    i32::try_from(day).unwrap_or(if day < 0 { i32::MIN } else { i32::MAX - 1 })
}

/// Day partitions this node has seen exist, so a write asks the database only on a new day.
#[derive(Default)]
pub(crate) struct KnownPartitions(Mutex<HashSet<(&'static str, i32)>>);

impl KnownPartitions {
    /// The days of `table` among `days` not yet known to exist.
    pub(crate) fn missing(
        &self,
        table: &'static str,
        days: impl IntoIterator<Item = i32>,
    ) -> Vec<i32> {
        let known = self.0.lock();
        let mut missing: Vec<i32> = days
            .into_iter()
            .filter(|d| !known.contains(&(table, *d)))
            .collect();
        missing.sort_unstable();
        missing.dedup();
        missing
    }

    /// Records that these partitions exist now.
    pub(crate) fn created(&self, table: &'static str, days: &[i32]) {
        self.0.lock().extend(days.iter().map(|d| (table, *d)));
    }

    /// Records that these partitions were dropped.
    pub(crate) fn dropped(&self, gone: &[(&'static str, i32)]) {
        let mut known = self.0.lock();
        for key in gone {
            known.remove(key);
        }
    }
}

/// The partition of `table` holding UTC day `day`.
pub(crate) fn partition_name(table: &str, day: i32) -> String {
    if day < 0 {
        format!("{table}_dm{}", day.unsigned_abs())
    } else {
        format!("{table}_d{day}")
    }
}

/// The day a partition name stands for, `None` for names not made by [`partition_name`].
pub(crate) fn partition_day(table: &str, name: &str) -> Option<i32> {
    let rest = name.strip_prefix(table)?.strip_prefix("_d")?;
    match rest.strip_prefix('m') {
        Some(neg) => neg.parse::<i32>().ok().map(|d| -d),
        None => rest.parse().ok(),
    }
}

/// Creates the day partitions of `table` that are missing (the caller remembers which exist).
pub(crate) async fn ensure_partitions(
    client: &mut deadpool_postgres::Client,
    table: &'static str,
    days: &[i32],
) -> Result<()> {
    if days.is_empty() {
        return Ok(());
    }
    // One transaction under the partition lock, so two nodes never race on one name.
    let tx = client
        .transaction()
        .await
        .map_err(Error::db("creating day partitions"))?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&PARTITION_LOCK])
        .await
        .map_err(Error::db("taking the partition lock"))?;
    for day in days {
        create_partition(&tx, table, *day).await?;
    }
    tx.commit()
        .await
        .map_err(Error::db("committing day partitions"))?;
    Ok(())
}

async fn create_partition(
    tx: &deadpool_postgres::Transaction<'_>,
    table: &str,
    day: i32,
) -> Result<()> {
    tx.batch_execute(&format!(
        "CREATE TABLE IF NOT EXISTS {} PARTITION OF {table} FOR VALUES FROM ({day}) TO ({})",
        partition_name(table, day),
        i64::from(day) + 1
    ))
    .await
    .map_err(Error::db("creating day partitions"))
}

/// The day partitions of `table` that exist, by day.
pub(crate) async fn partitions(
    client: &impl tokio_postgres::GenericClient,
    table: &'static str,
) -> Result<Vec<(i32, String)>> {
    let rows = client
        .query(
            "SELECT c.relname::text FROM pg_inherits i
               JOIN pg_class c ON c.oid = i.inhrelid
               JOIN pg_class p ON p.oid = i.inhparent
              WHERE p.relname = $1 AND p.relnamespace = current_schema()::regnamespace",
            &[&table],
        )
        .await
        .map_err(Error::db("listing partitions"))?;
    let mut out: Vec<(i32, String)> = rows
        .iter()
        .filter_map(|r| {
            let name: String = r.get(0);
            partition_day(table, &name).map(|d| (d, name))
        })
        .collect();
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_names_round_trip() {
        for day in [0, 20_421, -3] {
            assert_eq!(
                partition_day("logs", &partition_name("logs", day)),
                Some(day)
            );
        }
        assert_eq!(partition_day("logs", "logs_default"), None);
    }
}
