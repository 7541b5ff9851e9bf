//! [`PostgresStorage`]: the `Storage` implementation.
use crate::db::Db;
use crate::deferred::{Lane, Lanes};
use crate::error::{Error, Result};
use crate::kv::PgRows;
use crate::metrics::{self, PendingRow, RowKey, Rows, METRIC_STEPS};
use crate::records::{self, LogRows, RecordRows, SegmentRows, DAY_MS};
use crate::schema::{self, KnownPartitions};
use crate::traffic::{DirtyTraffic, LocalTraffic};
use crate::PostgresConfig;
use parking_lot::{Mutex, RwLock};
use skylark_core::traffic::Traffic;
use skylark_core::{
    EndpointId, InstanceId, Issue, IssueOccurrence, Layer, LogRecord, MetricDefinition,
    MetricEmission, MetricValue, SegmentRecord, ServiceId, Step, TimeBucket,
};
use skylark_storage::{
    AlarmQuery, AlarmRecord, AppliedSeqs, EndpointRecord, InstanceRecord, IssueFold, IssueQuery,
    KvStorage, LogQuery, RetentionPolicy, RumPage, RumQuery, ServiceRecord, SessionPage,
    SessionQuery, SourceMapRecord, Storage, StoredLog, TemplateRecord, TraceQuery,
};
use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

type StorageResult<T> = skylark_storage::Result<T>;

/// Storage in a PostgreSQL database shared by any number of Skylark nodes.
///
/// Each node aggregates metric rows in memory between flushes like the sled backend, then
/// upserts them as partial aggregates merged additively with what other nodes stored; logs and
/// segments are written through; queries read the database (plus this node's unflushed rows),
/// so every node answers for all.
pub struct PostgresStorage {
    db: Arc<Db>,
    node: String,
    pending: Mutex<Rows>,
    pending_len: AtomicUsize,
    /// Rows a running flush took; readers hold this lock across their database read so a row is
    /// never counted both stored and in flight.
    in_flight: RwLock<Rows>,
    traffic: Mutex<LocalTraffic>,
    flush_lock: Mutex<()>,
    /// Highest write-ahead-log entry aggregated into `pending` (changed under its lock).
    metrics_aggregated: AtomicU64,
    metrics_stored: AtomicU64,
    partitions: Arc<KnownPartitions>,
    kv: Arc<KvStorage<PgRows>>,
    sink: RecordSink,
    /// Applies the write-ahead log's record batches (logs, segments, RUM events) in order
    /// while the log thread goes on; see [`crate::deferred`].
    deferred: Lanes,
}

/// Stores `seq` as `node`'s mark of `kind`, never moving it back.
pub(crate) async fn store_mark(
    tx: &deadpool_postgres::Transaction<'_>,
    node: &str,
    kind: &str,
    seq: i64,
) -> Result<()> {
    exec_cached(
        tx,
        "INSERT INTO applied_marks (node, kind, seq) VALUES ($1, $2, $3)
         ON CONFLICT (node, kind) DO UPDATE SET seq = GREATEST(applied_marks.seq, EXCLUDED.seq)",
        &[&node, &kind, &seq],
    )
    .await
    .map_err(Error::db("storing a mark"))?;
    Ok(())
}

/// Commits `tx` without waiting for the database's own WAL flush. Sound because Skylark's
/// write-ahead log already holds the data, and it is only cut back through the metrics mark,
/// which a flush commits synchronously after these records: PostgreSQL's WAL is sequential, so
/// that commit makes every earlier one durable first. A database crash can thus lose only
/// commits whose entries Skylark still has in its log; their marks roll back with them.
pub(crate) async fn relaxed_commit(tx: &deadpool_postgres::Transaction<'_>) -> Result<()> {
    tx.batch_execute("SET LOCAL synchronous_commit = off")
        .await
        .map_err(Error::db("relaxing the commit"))
}

/// `execute` with the statement prepared once per connection (a plain `execute` of text
/// prepares it anew: one more round trip each time).
pub(crate) async fn exec_cached(
    tx: &deadpool_postgres::Transaction<'_>,
    sql: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> std::result::Result<u64, tokio_postgres::Error> {
    let statement = tx.prepare_cached(sql).await?;
    tx.execute(&statement, params).await
}

/// `query` with the statement prepared once per connection.
pub(crate) async fn query_cached(
    client: &deadpool_postgres::Client,
    sql: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> std::result::Result<Vec<tokio_postgres::Row>, tokio_postgres::Error> {
    let statement = client.prepare_cached(sql).await?;
    client.query(&statement, params).await
}

fn seq_param(seq: u64) -> i64 {
    i64::try_from(seq).unwrap_or(i64::MAX)
}

/// What writing logs and segments needs, cloned into the record writer's jobs.
#[derive(Clone)]
struct RecordSink {
    db: Arc<Db>,
    node: String,
    partitions: Arc<KnownPartitions>,
}

impl RecordSink {
    fn write_logs_with_mark(&self, seq: Option<u64>, logs: Vec<LogRecord>) -> Result<()> {
        if logs.is_empty() && seq.is_none() {
            return Ok(());
        }
        self.write_with_mark(seq, RecordRows::Logs(LogRows::new(logs)?))
    }

    fn write_segments_with_mark(
        &self,
        seq: Option<u64>,
        segments: Vec<SegmentRecord>,
    ) -> Result<()> {
        if segments.is_empty() && seq.is_none() {
            return Ok(());
        }
        self.write_with_mark(seq, RecordRows::Segments(SegmentRows::new(segments)?))
    }

    /// Inserts `rows` and stores `seq` as the mark of their kind, in one transaction.
    fn write_with_mark(&self, seq: Option<u64>, rows: RecordRows) -> Result<()> {
        let table = rows.table();
        let missing = self.partitions.missing(table, rows.days().iter().copied());
        let node = self.node.clone();
        let created = missing.clone();
        self.db.run(move |pool| async move {
            let mut client = pool.get().await.map_err(Error::pool(rows.writing()))?;
            schema::ensure_partitions(&mut client, table, &missing).await?;
            let tx = client
                .transaction()
                .await
                .map_err(Error::db(rows.writing()))?;
            // Sent together (pipelined on the connection), run in this order.
            let mark = async {
                match seq {
                    Some(seq) => store_mark(&tx, &node, table, seq_param(seq)).await,
                    None => Ok(()),
                }
            };
            futures_util::try_join!(relaxed_commit(&tx), rows.insert(&tx), mark)?;
            tx.commit().await.map_err(Error::db(rows.committing()))?;
            Ok(())
        })?;
        self.partitions.created(table, &created);
        Ok(())
    }
}

impl PostgresStorage {
    /// Connects, creates or migrates the schema (safe when several nodes start at once) and
    /// loads this node's write-ahead-log marks.
    pub fn connect(config: &PostgresConfig) -> std::result::Result<Self, Error> {
        let db = Arc::new(Db::new(config)?);
        let version = db.run(schema::migrate)?;
        let node = config.node_id.clone();
        let partitions = Arc::new(KnownPartitions::default());
        let kv = Arc::new(KvStorage::open(PgRows {
            db: db.clone(),
            node: node.clone(),
            partitions: partitions.clone(),
        })?);
        let sink = RecordSink {
            db: db.clone(),
            node: node.clone(),
            partitions: partitions.clone(),
        };
        let storage = PostgresStorage {
            db,
            node,
            pending: Mutex::new(Rows::default()),
            pending_len: AtomicUsize::new(0),
            in_flight: RwLock::new(Rows::default()),
            traffic: Mutex::new(LocalTraffic::default()),
            flush_lock: Mutex::new(()),
            metrics_aggregated: AtomicU64::new(0),
            metrics_stored: AtomicU64::new(0),
            partitions,
            kv,
            sink,
            deferred: Lanes::start()?,
        };
        let metrics_mark = storage.read_marks()?.metrics;
        storage
            .metrics_aggregated
            .store(metrics_mark, Ordering::Relaxed);
        storage
            .metrics_stored
            .store(metrics_mark, Ordering::Relaxed);
        tracing::info!(
            host = %config.host,
            database = %config.database,
            node = %config.node_id,
            schema_version = version,
            "postgresql storage opened"
        );
        Ok(storage)
    }

    /// The UTC days (since the epoch) that have a partition of `logs`, `segments` or
    /// `kv_by_day` (RUM events, alarm records), ascending; for operators checking retention,
    /// and its tests.
    pub fn day_partitions(&self, table: &str) -> std::result::Result<Vec<i32>, Error> {
        let Some(&(table, _)) = schema::DAY_TABLES.iter().find(|(t, _)| *t == table) else {
            return Ok(Vec::new());
        };
        self.db.run(move |pool| async move {
            let client = pool
                .get()
                .await
                .map_err(Error::pool("listing partitions"))?;
            Ok(schema::partitions(&**client, table)
                .await?
                .into_iter()
                .map(|(day, _)| day)
                .collect())
        })
    }

    fn read_marks(&self) -> Result<AppliedSeqs> {
        let node = self.node.clone();
        self.db.run(move |pool| async move {
            let client = pool.get().await.map_err(Error::pool("reading marks"))?;
            let rows = client
                .query(
                    "SELECT kind, seq FROM applied_marks WHERE node = $1",
                    &[&node],
                )
                .await
                .map_err(Error::db("reading marks"))?;
            let mut marks = AppliedSeqs::default();
            for row in rows {
                let kind: String = row.get(0);
                let seq = row.get::<_, i64>(1).max(0) as u64;
                match kind.as_str() {
                    "metrics" => marks.metrics = seq,
                    "logs" => marks.logs = seq,
                    "segments" => marks.segments = seq,
                    "rum" => marks.rum = seq,
                    "issues" => marks.issues = seq,
                    _ => {}
                }
            }
            Ok(marks)
        })
    }

    fn flush_metrics(&self) -> Result<()> {
        let _flushing = self.flush_lock.lock();
        let (mark, dirty) = {
            let mut in_flight = self.in_flight.write();
            let mut pending = self.pending.lock();
            std::mem::swap(&mut *in_flight, &mut *pending);
            self.pending_len.store(pending.len(), Ordering::Relaxed);
            let mark = self.metrics_aggregated.load(Ordering::Relaxed);
            // Taken after the swap: a writer records traffic before the emissions it marks.
            let dirty = std::mem::take(&mut self.traffic.lock().dirty);
            (mark, dirty)
        };
        let mark = (mark > self.metrics_stored.load(Ordering::Relaxed)).then_some(mark);
        // Every record batch up to `mark` was queued before `mark` was read: committed first,
        // they are stored before the mark that lets the write-ahead log be cut through them.
        let result = self
            .deferred
            .drain_all()
            .and_then(|()| self.store_in_flight(mark, &dirty));
        match &result {
            Ok(()) => {
                if let Some(mark) = mark {
                    self.metrics_stored.fetch_max(mark, Ordering::Relaxed);
                }
            }
            Err(error) => {
                tracing::error!(%error, "storage flush failed, rows kept in memory for the next one");
                let mut in_flight = self.in_flight.write();
                let mut pending = self.pending.lock();
                let newer = std::mem::take(&mut *pending);
                let mut restored = std::mem::take(&mut *in_flight);
                for (key, row) in newer {
                    metrics::merge(&mut restored, key, row.function, &row.state);
                }
                *pending = restored;
                self.pending_len.store(pending.len(), Ordering::Relaxed);
                self.traffic.lock().dirty.restore(dirty);
            }
        }
        result
    }

    /// Upserts the in-flight rows, `dirty` traffic and the metrics mark in one transaction.
    fn store_in_flight(&self, mark: Option<u64>, dirty: &DirtyTraffic) -> Result<()> {
        let mut cells = Vec::new();
        {
            let in_flight = self.in_flight.read();
            if in_flight.is_empty() && dirty.is_empty() && mark.is_none() {
                return Ok(());
            }
            for (key, row) in in_flight.iter() {
                for cell in metrics::cells(row.function, &row.state)? {
                    cells.push((
                        key.entity.clone(),
                        key.metric.clone(),
                        metrics::step_code(key.step),
                        key.bucket,
                        cell,
                    ));
                }
            }
        }
        // One order on every node, so concurrent upserts lock rows in the same order.
        cells.sort_by(|a, b| (&a.0, &a.1, a.2, a.3, &a.4 .0).cmp(&(&b.0, &b.1, b.2, b.3, &b.4 .0)));
        let mut cols = CellColumns::default();
        for (entity, metric, step, bucket, (cell, shape, op, s, c)) in cells {
            cols.entity.push(entity);
            cols.metric.push(metric);
            cols.step.push(step);
            cols.bucket.push(bucket);
            cols.cell.push(cell);
            cols.shape.push(shape);
            cols.op.push(op);
            cols.s.push(s);
            cols.c.push(c);
        }
        let services: Vec<(String, i32, String)> = dirty
            .services
            .iter()
            .map(|((id, layer), name)| (id.clone(), *layer, name.clone()))
            .collect();
        let instances: Vec<InstanceRecord> = dirty.instances.values().cloned().collect();
        let endpoints: Vec<EndpointRecord> = dirty.endpoints.values().cloned().collect();
        let node = self.node.clone();
        // Readers wait while the batch lands, so none sees a row both stored and in flight.
        let mut in_flight = self.in_flight.write();
        self.db.run(move |pool| async move {
            let mut client = pool.get().await.map_err(Error::pool("flushing metrics"))?;
            let tx = client
                .transaction()
                .await
                .map_err(Error::db("flushing metrics"))?;
            if !cols.entity.is_empty() {
                exec_cached(
                    &tx,
                    "INSERT INTO metric_cells AS t
                         (entity, metric, step, bucket, cell, shape, op, s, c)
                     SELECT * FROM UNNEST($1::text[], $2::text[], $3::int2[], $4::int8[],
                                          $5::text[], $6::int2[], $7::int2[], $8::int8[],
                                          $9::int8[])
                     ON CONFLICT (entity, metric, step, bucket, cell) DO UPDATE SET
                         s = CASE EXCLUDED.op
                               WHEN 1 THEN EXCLUDED.s
                               WHEN 2 THEN GREATEST(t.s, EXCLUDED.s)
                               WHEN 3 THEN LEAST(t.s, EXCLUDED.s)
                               ELSE skylark_sat_add(t.s, EXCLUDED.s) END,
                         c = skylark_sat_add(t.c, EXCLUDED.c),
                         shape = EXCLUDED.shape, op = EXCLUDED.op",
                    &[
                        &cols.entity,
                        &cols.metric,
                        &cols.step,
                        &cols.bucket,
                        &cols.cell,
                        &cols.shape,
                        &cols.op,
                        &cols.s,
                        &cols.c,
                    ],
                )
                .await
                .map_err(Error::db("upserting metric rows"))?;
            }
            upsert_traffic(&tx, &services, &instances, &endpoints).await?;
            if let Some(mark) = mark {
                store_mark(&tx, &node, "metrics", seq_param(mark)).await?;
            }
            tx.commit()
                .await
                .map_err(Error::db("committing metric rows"))?;
            Ok(())
        })?;
        in_flight.clear();
        Ok(())
    }

    fn read_metric_rows(
        &self,
        metric: &MetricDefinition,
        entity_id: &str,
        buckets: &[TimeBucket],
    ) -> Result<Vec<Option<MetricValue>>> {
        if buckets.is_empty() {
            return Ok(Vec::new());
        }
        let steps: Vec<i16> = buckets.iter().map(|b| metrics::step_code(b.step)).collect();
        let values: Vec<i64> = buckets.iter().map(|b| b.value).collect();
        let (name, entity) = (metric.name.clone(), entity_id.to_string());
        let in_flight = self.in_flight.read();
        let rows = self.db.run(move |pool| async move {
            let client = pool.get().await.map_err(Error::pool("reading metrics"))?;
            query_cached(
                &client,
                "SELECT step, bucket, cell, shape, s, c FROM metric_cells
                      WHERE entity = $1 AND metric = $2
                        AND (step, bucket) IN (SELECT * FROM UNNEST($3::int2[], $4::int8[]))
                      ORDER BY step, bucket, cell",
                &[&entity, &name, &steps, &values],
            )
            .await
            .map_err(Error::db("reading metrics"))
        })?;
        let mut by_bucket: std::collections::HashMap<(i16, i64), Vec<metrics::StoredCell>> =
            std::collections::HashMap::new();
        for row in rows {
            by_bucket
                .entry((row.get(0), row.get(1)))
                .or_default()
                .push((row.get(2), row.get(3), row.get(4), row.get(5)));
        }
        let pending = self.pending.lock();
        let mut out = Vec::with_capacity(buckets.len());
        for bucket in buckets {
            let step = bucket.step;
            let stored = match by_bucket.get(&(metrics::step_code(step), bucket.value)) {
                Some(cells) => metrics::state_of(cells)?,
                None => None,
            };
            let key = RowKey {
                metric: metric.name.clone(),
                entity: entity_id.to_string(),
                step,
                bucket: bucket.value,
            };
            let newer: [Option<PendingRow>; 2] =
                [in_flight.get(&key).cloned(), pending.get(&key).cloned()];
            out.push(metrics::value_of(metric, *bucket, stored, &newer));
        }
        Ok(out)
    }

    fn entities_of(
        &self,
        metric: &MetricDefinition,
        buckets: &[TimeBucket],
    ) -> Result<Vec<String>> {
        let mut entities = BTreeSet::new();
        let in_flight = self.in_flight.read();
        for step in METRIC_STEPS {
            let values: Vec<i64> = buckets
                .iter()
                .filter(|b| b.step == step)
                .map(|b| b.value)
                .collect();
            if values.is_empty() {
                continue;
            }
            let name = metric.name.clone();
            let wanted = values.clone();
            let found = self.db.run(move |pool| async move {
                let client = pool.get().await.map_err(Error::pool("listing entities"))?;
                let rows = client
                    .query(
                        "SELECT DISTINCT entity FROM metric_cells
                          WHERE metric = $1 AND step = $2 AND bucket = ANY($3)",
                        &[&name, &metrics::step_code(step), &wanted],
                    )
                    .await
                    .map_err(Error::db("listing entities"))?;
                Ok(rows
                    .iter()
                    .map(|r| r.get::<_, String>(0))
                    .collect::<Vec<_>>())
            })?;
            entities.extend(found);
            let pending = self.pending.lock();
            for rows in [&*in_flight, &*pending] {
                entities.extend(
                    rows.keys()
                        .filter(|k| {
                            k.metric == metric.name && k.step == step && values.contains(&k.bucket)
                        })
                        .map(|k| k.entity.clone()),
                );
            }
        }
        Ok(entities.into_iter().collect())
    }

    fn services(&self, layer: Option<Layer>, id: Option<&ServiceId>) -> Result<Vec<ServiceRecord>> {
        let (layer_code, id_text) = (layer.map(|l| l.0), id.map(|i| i.as_str().to_string()));
        let rows = self.db.run(move |pool| async move {
            let client = pool.get().await.map_err(Error::pool("listing services"))?;
            client
                .query(
                    "SELECT service_id, MIN(name), array_agg(layer ORDER BY layer) FROM services
                      WHERE ($1::text IS NULL OR service_id = $1)
                      GROUP BY service_id
                     HAVING $2::int IS NULL OR $2 = ANY(array_agg(layer))",
                    &[&id_text, &layer_code],
                )
                .await
                .map_err(Error::db("listing services"))
        })?;
        let mut out: Vec<ServiceRecord> = rows
            .iter()
            .map(|r| ServiceRecord {
                id: ServiceId::from_raw(r.get::<_, String>(0)),
                name: r.get(1),
                layers: r.get::<_, Vec<i32>>(2).into_iter().map(Layer).collect(),
            })
            .collect();
        let traffic = self.traffic.lock();
        match id {
            Some(id) => {
                let mut mine = Vec::new();
                traffic.overlay_services(&mut mine, None);
                for s in mine.into_iter().filter(|s| &s.id == id) {
                    match out.first_mut() {
                        Some(o) => {
                            for l in s.layers {
                                if !o.layers.contains(&l) {
                                    o.layers.push(l);
                                }
                            }
                            o.layers.sort();
                        }
                        None => out.push(s),
                    }
                }
            }
            None => traffic.overlay_services(&mut out, layer),
        }
        out.sort_by(|a, b| a.name.cmp(&b.name).then_with(|| a.id.cmp(&b.id)));
        Ok(out)
    }

    /// The stored instances or endpoints (`R`) matching `service` and `id`, merged with the
    /// pings this node has not persisted yet, seen since `since_ms`, by name then id.
    fn children<R: ChildRecord>(
        &self,
        service: Option<&ServiceId>,
        id: Option<&str>,
        since_ms: i64,
    ) -> Result<Vec<R>> {
        let (service_filter, id_filter) = (
            service.map(|s| s.as_str().to_string()),
            id.map(str::to_string),
        );
        let sql = format!(
            "SELECT id, name, service_id, last_ping_ms FROM {}
              WHERE ($1::text IS NULL OR service_id = $1) AND ($2::text IS NULL OR id = $2)",
            R::TABLE
        );
        let mut out: Vec<R> = self.db.run(move |pool| async move {
            let client = pool.get().await.map_err(Error::pool("listing entities"))?;
            let rows = client
                .query(&sql, &[&service_filter, &id_filter])
                .await
                .map_err(Error::db("listing entities"))?;
            Ok(rows
                .iter()
                .map(|r| R::new(r.get(0), r.get(1), r.get(2), r.get(3)))
                .collect::<Vec<_>>())
        })?;
        let traffic = self.traffic.lock();
        for o in out.iter_mut() {
            if let Some(latest) = traffic.latest_ping(R::KIND, o.id()) {
                o.ping(latest);
            }
        }
        let mut at: HashMap<String, usize> = out
            .iter()
            .enumerate()
            .map(|(i, o)| (o.id().to_string(), i))
            .collect();
        for r in R::dirty(&traffic.dirty) {
            if service.is_some_and(|s| s != r.service_id())
                || id.is_some_and(|i| i != r.id())
                || r.last_ping_ms() < since_ms
            {
                continue;
            }
            match at.get(r.id()) {
                Some(&i) => out[i].ping(r.last_ping_ms()),
                None => {
                    at.insert(r.id().to_string(), out.len());
                    out.push(r.clone());
                }
            }
        }
        // After the overlay: this node may have seen an entity later than the database says.
        out.retain(|r| r.last_ping_ms() >= since_ms);
        out.sort_by(|a, b| a.name().cmp(b.name()).then_with(|| a.id().cmp(b.id())));
        Ok(out)
    }

    fn remove_expired_here(&self, policy: &RetentionPolicy, now_ms: i64) -> Result<u64> {
        let _flushing = self.flush_lock.lock();
        let records_cutoff =
            now_ms.saturating_sub(i64::from(policy.records_days).saturating_mul(DAY_MS));
        let metrics_cutoff =
            now_ms.saturating_sub(i64::from(policy.metrics_days).saturating_mul(DAY_MS));
        let cutoff_minute = match TimeBucket::from_epoch_ms(metrics_cutoff, Step::Minute) {
            Ok(b) => Some(b),
            Err(error) => {
                tracing::warn!(%error, metrics_cutoff, "retention cutoff is not a valid time, no metrics removed");
                None
            }
        };
        let bucket_cutoffs: Vec<(i16, i64)> = cutoff_minute
            .map(|m| {
                METRIC_STEPS
                    .iter()
                    .map(|s| (metrics::step_code(*s), m.to_step(*s).value))
                    .collect()
            })
            .unwrap_or_default();
        if let Some(minute) = cutoff_minute {
            let mut pending = self.pending.lock();
            pending.retain(|k, _| k.bucket >= minute.to_step(k.step).value);
            self.pending_len.store(pending.len(), Ordering::Relaxed);
        }
        let entity_cutoff = metrics_cutoff;
        let (removed, dropped) = self.db.run(move |pool| async move {
            let mut client = pool.get().await.map_err(Error::pool("removing expired data"))?;
            let mut removed = 0u64;
            let mut dropped = Vec::new();
            let cutoff_day = records::day_of(records_cutoff);
            // Under the partition lock: another node's sweep or partition creation waits.
            let tx = client
                .transaction()
                .await
                .map_err(Error::db("removing expired records"))?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&schema::PARTITION_LOCK])
                .await
                .map_err(Error::db("taking the partition lock"))?;
            for (table, time) in schema::DAY_TABLES {
                for (day, name) in schema::partitions(&*tx, table).await? {
                    if day < cutoff_day {
                        // A whole day past the TTL: its partition goes, no row is deleted.
                        let count: i64 = tx
                            .query_one(&format!("SELECT count(*) FROM {name}"), &[])
                            .await
                            .map_err(Error::db("counting an expired partition"))?
                            .get(0);
                        tx
                            .batch_execute(&format!("DROP TABLE IF EXISTS {name}"))
                            .await
                            .map_err(Error::db("dropping an expired partition"))?;
                        tracing::info!(partition = %name, rows = count, "expired day partition dropped");
                        removed += count.max(0) as u64;
                        dropped.push((table, day));
                    } else if let (true, Some(time)) = (day == cutoff_day, time) {
                        // The day the cutoff falls in keeps its younger rows (in `kv_by_day`
                        // the shared engine removes the older ones).
                        removed += tx
                            .execute(
                                &format!("DELETE FROM {name} WHERE {time} < $1"),
                                &[&records_cutoff],
                            )
                            .await
                            .map_err(Error::db("removing expired records"))?;
                    }
                }
            }
            tx.commit()
                .await
                .map_err(Error::db("committing expired partitions"))?;
            client
                .execute("DELETE FROM record_tags WHERE day < $1", &[&cutoff_day])
                .await
                .map_err(Error::db("removing expired tags"))?;
            for (step, bucket) in bucket_cutoffs {
                removed += client
                    .execute(
                        "DELETE FROM metric_cells WHERE step = $1 AND bucket < $2",
                        &[&step, &bucket],
                    )
                    .await
                    .map_err(Error::db("removing expired metric rows"))?;
            }
            for table in ["instances", "endpoints"] {
                removed += client
                    .execute(
                        &format!("DELETE FROM {table} WHERE last_ping_ms < $1"),
                        &[&entity_cutoff],
                    )
                    .await
                    .map_err(Error::db("removing expired entities"))?;
            }
            Ok((removed, dropped))
        })?;
        self.partitions.dropped(&dropped);
        self.traffic.lock().forget_older_than(entity_cutoff);
        Ok(removed)
    }
}

#[derive(Default)]
struct CellColumns {
    entity: Vec<String>,
    metric: Vec<String>,
    step: Vec<i16>,
    bucket: Vec<i64>,
    cell: Vec<String>,
    shape: Vec<i16>,
    op: Vec<i16>,
    s: Vec<i64>,
    c: Vec<i64>,
}

async fn upsert_traffic(
    tx: &deadpool_postgres::Transaction<'_>,
    services: &[(String, i32, String)],
    instances: &[InstanceRecord],
    endpoints: &[EndpointRecord],
) -> Result<()> {
    if !services.is_empty() {
        let ids: Vec<&str> = services.iter().map(|s| s.0.as_str()).collect();
        let layers: Vec<i32> = services.iter().map(|s| s.1).collect();
        let names: Vec<&str> = services.iter().map(|s| s.2.as_str()).collect();
        exec_cached(
            tx,
            "INSERT INTO services (service_id, layer, name)
             SELECT * FROM UNNEST($1::text[], $2::int[], $3::text[]) ON CONFLICT DO NOTHING",
            &[&ids, &layers, &names],
        )
        .await
        .map_err(Error::db("upserting services"))?;
    }
    for (table, rows) in [
        (
            "instances",
            instances
                .iter()
                .map(|r| {
                    (
                        r.service_id.as_str(),
                        r.id.as_str(),
                        r.name.as_str(),
                        r.last_ping_ms,
                    )
                })
                .collect::<Vec<_>>(),
        ),
        (
            "endpoints",
            endpoints
                .iter()
                .map(|r| {
                    (
                        r.service_id.as_str(),
                        r.id.as_str(),
                        r.name.as_str(),
                        r.last_ping_ms,
                    )
                })
                .collect::<Vec<_>>(),
        ),
    ] {
        if rows.is_empty() {
            continue;
        }
        let services: Vec<&str> = rows.iter().map(|r| r.0).collect();
        let ids: Vec<&str> = rows.iter().map(|r| r.1).collect();
        let names: Vec<&str> = rows.iter().map(|r| r.2).collect();
        let pings: Vec<i64> = rows.iter().map(|r| r.3).collect();
        exec_cached(
            tx,
            &format!(
                "INSERT INTO {table} AS t (service_id, id, name, last_ping_ms)
                 SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::int8[])
                 ON CONFLICT (service_id, id) DO UPDATE
                     SET last_ping_ms = GREATEST(t.last_ping_ms, EXCLUDED.last_ping_ms)"
            ),
            &[&services, &ids, &names, &pings],
        )
        .await
        .map_err(Error::db("upserting entities"))?;
    }
    Ok(())
}

impl Drop for PostgresStorage {
    fn drop(&mut self) {
        // Queued record batches are written before the last flush moves the metrics mark.
        self.deferred.stop();
        // Closing must not lose the last seconds of aggregation.
        if let Err(error) = self.flush_metrics() {
            tracing::error!(%error, "final storage flush failed");
        }
    }
}

impl Storage for PostgresStorage {
    fn write_metrics(&self, emissions: Vec<MetricEmission>) -> StorageResult<()> {
        let mut pending = self.pending.lock();
        metrics::aggregate(&mut pending, emissions);
        self.pending_len.store(pending.len(), Ordering::Relaxed);
        Ok(())
    }

    fn write_metrics_through(&self, seq: u64, emissions: Vec<MetricEmission>) -> StorageResult<()> {
        let mut pending = self.pending.lock();
        metrics::aggregate(&mut pending, emissions);
        self.pending_len.store(pending.len(), Ordering::Relaxed);
        self.metrics_aggregated.fetch_max(seq, Ordering::Relaxed);
        Ok(())
    }

    fn write_traffic(&self, traffic: Vec<Traffic>, now_ms: i64) -> StorageResult<()> {
        self.traffic.lock().record(traffic, now_ms);
        Ok(())
    }

    fn flush(&self) -> StorageResult<()> {
        Ok(self.flush_metrics()?)
    }

    fn pending_rows(&self) -> usize {
        self.pending_len.load(Ordering::Relaxed)
    }

    fn read_metric(
        &self,
        metric: &MetricDefinition,
        entity_id: &str,
        buckets: &[TimeBucket],
    ) -> StorageResult<Vec<Option<MetricValue>>> {
        Ok(self.read_metric_rows(metric, entity_id, buckets)?)
    }

    fn metric_entities(
        &self,
        metric: &MetricDefinition,
        buckets: &[TimeBucket],
    ) -> StorageResult<Vec<String>> {
        Ok(self.entities_of(metric, buckets)?)
    }

    fn list_services(&self, layer: Option<Layer>) -> StorageResult<Vec<ServiceRecord>> {
        Ok(self.services(layer, None)?)
    }

    fn get_service(&self, id: &ServiceId) -> StorageResult<Option<ServiceRecord>> {
        Ok(self.services(None, Some(id))?.into_iter().next())
    }

    fn list_instances(
        &self,
        service: &ServiceId,
        since_ms: i64,
    ) -> StorageResult<Vec<InstanceRecord>> {
        Ok(self.children::<InstanceRecord>(Some(service), None, since_ms)?)
    }

    fn get_instance(&self, id: &InstanceId) -> StorageResult<Option<InstanceRecord>> {
        Ok(self
            .children::<InstanceRecord>(None, Some(id.as_str()), i64::MIN)?
            .into_iter()
            .next())
    }

    fn find_endpoints(
        &self,
        service: &ServiceId,
        keyword: Option<&str>,
        limit: usize,
    ) -> StorageResult<Vec<EndpointRecord>> {
        let keyword = keyword.filter(|k| !k.is_empty());
        Ok(self
            .children::<EndpointRecord>(Some(service), None, i64::MIN)?
            .into_iter()
            .filter(|e| keyword.is_none_or(|k| e.name.contains(k)))
            .take(limit)
            .collect())
    }

    fn get_endpoint(&self, id: &EndpointId) -> StorageResult<Option<EndpointRecord>> {
        Ok(self
            .children::<EndpointRecord>(None, Some(id.as_str()), i64::MIN)?
            .into_iter()
            .next())
    }

    fn write_logs(&self, logs: Vec<LogRecord>) -> StorageResult<()> {
        Ok(self.sink.write_logs_with_mark(None, logs)?)
    }

    fn write_logs_through(&self, seq: u64, logs: Vec<LogRecord>) -> StorageResult<()> {
        let sink = self.sink.clone();
        Ok(self.deferred.submit(
            Lane::Logs,
            Box::new(move || Ok(sink.write_logs_with_mark(Some(seq), logs)?)),
        )?)
    }

    fn query_logs(&self, query: &LogQuery) -> StorageResult<Vec<StoredLog>> {
        self.deferred.drain(Lane::Logs)?;
        let query = query.clone();
        Ok(self.db.run(move |pool| async move {
            let client = pool.get().await.map_err(Error::pool("querying logs"))?;
            records::query_logs(&client, query).await
        })?)
    }

    fn log_tag_keys(&self, start_ms: i64, end_ms: i64) -> StorageResult<Vec<String>> {
        self.tags(b'l', None, start_ms, end_ms)
    }

    fn log_tag_values(&self, key: &str, start_ms: i64, end_ms: i64) -> StorageResult<Vec<String>> {
        self.tags(b'l', Some(key), start_ms, end_ms)
    }

    fn write_segments(&self, segments: Vec<SegmentRecord>) -> StorageResult<()> {
        Ok(self.sink.write_segments_with_mark(None, segments)?)
    }

    fn write_segments_through(&self, seq: u64, segments: Vec<SegmentRecord>) -> StorageResult<()> {
        let sink = self.sink.clone();
        Ok(self.deferred.submit(
            Lane::Segments,
            Box::new(move || Ok(sink.write_segments_with_mark(Some(seq), segments)?)),
        )?)
    }

    fn query_segments(&self, query: &TraceQuery) -> StorageResult<Vec<SegmentRecord>> {
        self.deferred.drain(Lane::Segments)?;
        let query = query.clone();
        Ok(self.db.run(move |pool| async move {
            let client = pool.get().await.map_err(Error::pool("querying segments"))?;
            records::query_segments(&client, query).await
        })?)
    }

    fn get_trace(&self, trace_id: &str) -> StorageResult<Vec<SegmentRecord>> {
        self.deferred.drain(Lane::Segments)?;
        let trace_id = trace_id.to_string();
        Ok(self.db.run(move |pool| async move {
            let client = pool.get().await.map_err(Error::pool("reading a trace"))?;
            records::get_trace(&client, trace_id).await
        })?)
    }

    fn trace_tag_keys(&self, start_ms: i64, end_ms: i64) -> StorageResult<Vec<String>> {
        self.tags(b'g', None, start_ms, end_ms)
    }

    fn trace_tag_values(
        &self,
        key: &str,
        start_ms: i64,
        end_ms: i64,
    ) -> StorageResult<Vec<String>> {
        self.tags(b'g', Some(key), start_ms, end_ms)
    }

    fn remove_expired(&self, policy: &RetentionPolicy, now_ms: i64) -> StorageResult<u64> {
        let here = self.remove_expired_here(policy, now_ms)?;
        // The engine's sweep reads session summaries before deleting them.
        let engine = self
            .db
            .with_cluster_lock(schema::RUM_LOCK, || self.kv.remove_expired(policy, now_ms))?;
        Ok(here + engine)
    }

    fn applied_seqs(&self) -> StorageResult<AppliedSeqs> {
        self.deferred.drain_all()?;
        Ok(self.read_marks()?)
    }

    // Everything below lives in the shared engine's rows (tables `kv` and `kv_by_day`). Its
    // read-modify-writes of shared rows run under cluster-wide locks.

    fn put_template(&self, id: &str, configuration: &str, disabled: bool) -> StorageResult<()> {
        self.kv.put_template(id, configuration, disabled)
    }
    fn get_template(&self, id: &str) -> StorageResult<Option<TemplateRecord>> {
        self.kv.get_template(id)
    }
    fn list_templates(&self) -> StorageResult<Vec<TemplateRecord>> {
        self.kv.list_templates()
    }
    fn write_alarm_records(&self, records: Vec<AlarmRecord>) -> StorageResult<()> {
        self.kv.write_alarm_records(records)
    }
    fn query_alarms(&self, query: &AlarmQuery) -> StorageResult<Vec<AlarmRecord>> {
        self.kv.query_alarms(query)
    }
    fn alarm_tag_keys(&self, start_ms: i64, end_ms: i64) -> StorageResult<Vec<String>> {
        self.kv.alarm_tag_keys(start_ms, end_ms)
    }
    fn alarm_tag_values(
        &self,
        key: &str,
        start_ms: i64,
        end_ms: i64,
    ) -> StorageResult<Vec<String>> {
        self.kv.alarm_tag_values(key, start_ms, end_ms)
    }
    fn put_alarm_states(&self, states: Vec<(String, String, Option<String>)>) -> StorageResult<()> {
        self.kv.put_alarm_states(states)
    }
    fn alarm_states(&self) -> StorageResult<Vec<(String, String, String)>> {
        self.kv.alarm_states()
    }
    fn write_rum_events(&self, events: Vec<skylark_core::RumEvent>) -> StorageResult<()> {
        self.db
            .with_cluster_lock(schema::RUM_LOCK, || self.kv.write_rum_events(events))
    }
    fn write_rum_events_through(
        &self,
        seq: u64,
        events: Vec<skylark_core::RumEvent>,
    ) -> StorageResult<()> {
        let (db, kv) = (self.db.clone(), self.kv.clone());
        Ok(self.deferred.submit(
            Lane::Rum,
            Box::new(move || {
                db.with_cluster_lock(schema::RUM_LOCK, || {
                    kv.write_rum_events_through(seq, events)
                })
            }),
        )?)
    }
    fn query_rum_events(&self, query: &RumQuery) -> StorageResult<RumPage> {
        self.deferred.drain(Lane::Rum)?;
        self.kv.query_rum_events(query)
    }
    fn stored_rum_view(
        &self,
        view: &skylark_core::RumEvent,
    ) -> StorageResult<Option<skylark_core::RumEvent>> {
        self.kv.stored_rum_view(view)
    }
    fn rum_session(&self, id: &str) -> StorageResult<Option<skylark_core::RumSession>> {
        self.deferred.drain(Lane::Rum)?;
        self.kv.rum_session(id)
    }
    fn query_rum_sessions(&self, query: &SessionQuery) -> StorageResult<SessionPage> {
        self.deferred.drain(Lane::Rum)?;
        self.kv.query_rum_sessions(query)
    }
    fn rum_session_seen(&self, session_id: &str) -> StorageResult<bool> {
        self.kv.rum_session_seen(session_id)
    }
    fn record_issue_occurrences(
        &self,
        seq: Option<u64>,
        occurrences: Vec<IssueOccurrence>,
        fold: &'static IssueFold,
    ) -> StorageResult<()> {
        let (db, kv) = (self.db.clone(), self.kv.clone());
        let write = move || {
            db.with_cluster_lock(schema::ISSUE_LOCK, || {
                kv.record_issue_occurrences(seq, occurrences, fold)
            })
        };
        match seq {
            // From the write-ahead log: in order with its other batches.
            Some(_) => Ok(self.deferred.submit(Lane::Issues, Box::new(write))?),
            None => write(),
        }
    }
    fn update_issue(
        &self,
        id: &str,
        change: &mut dyn FnMut(Issue) -> Issue,
    ) -> StorageResult<Option<Issue>> {
        self.deferred.drain(Lane::Issues)?;
        self.db
            .with_cluster_lock(schema::ISSUE_LOCK, || self.kv.update_issue(id, change))
    }
    fn get_issue(&self, id: &str) -> StorageResult<Option<Issue>> {
        self.deferred.drain(Lane::Issues)?;
        self.kv.get_issue(id)
    }
    fn query_issues(&self, query: &IssueQuery) -> StorageResult<(Vec<Issue>, usize)> {
        self.deferred.drain(Lane::Issues)?;
        self.kv.query_issues(query)
    }
    fn issue_events(
        &self,
        id: &str,
        offset: usize,
        limit: usize,
    ) -> StorageResult<Vec<IssueOccurrence>> {
        self.deferred.drain(Lane::Issues)?;
        self.kv.issue_events(id, offset, limit)
    }
    fn issue_minutes(
        &self,
        id: &str,
        start_ms: i64,
        end_ms: i64,
    ) -> StorageResult<Vec<(i64, u64)>> {
        self.deferred.drain(Lane::Issues)?;
        self.kv.issue_minutes(id, start_ms, end_ms)
    }
    fn put_source_map(&self, record: &SourceMapRecord, map: &[u8]) -> StorageResult<()> {
        self.kv.put_source_map(record, map)
    }
    fn source_map(
        &self,
        service: &str,
        version: &str,
        file: &str,
    ) -> StorageResult<Option<Vec<u8>>> {
        self.kv.source_map(service, version, file)
    }
    fn list_source_maps(&self, service: Option<&str>) -> StorageResult<Vec<SourceMapRecord>> {
        self.kv.list_source_maps(service)
    }
    fn delete_source_map(&self, service: &str, version: &str, file: &str) -> StorageResult<bool> {
        self.kv.delete_source_map(service, version, file)
    }
}

impl PostgresStorage {
    fn tags(
        &self,
        kind: u8,
        key: Option<&str>,
        start_ms: i64,
        end_ms: i64,
    ) -> StorageResult<Vec<String>> {
        let key = key.map(str::to_string);
        Ok(self.db.run(move |pool| async move {
            let client = pool.get().await.map_err(Error::pool("reading tags"))?;
            records::tag_autocomplete(&client, kind, key, start_ms, end_ms).await
        })?)
    }
}

/// What instance and endpoint records share, for listing them with this node's pings.
trait ChildRecord: Clone + Send + 'static {
    /// Their table.
    const TABLE: &'static str;
    /// Their kind in the ping bookkeeping.
    const KIND: u8;
    fn new(id: String, name: String, service_id: String, last_ping_ms: i64) -> Self;
    /// This node's unpersisted ones.
    fn dirty(traffic: &DirtyTraffic) -> impl Iterator<Item = &Self>;
    fn id(&self) -> &str;
    fn name(&self) -> &str;
    fn service_id(&self) -> &ServiceId;
    fn last_ping_ms(&self) -> i64;
    /// Moves the last ping to `at_ms` if that is later.
    fn ping(&mut self, at_ms: i64);
}

macro_rules! child_record {
    ($record:ty, $id:ident, $table:literal, $kind:expr, $dirty:ident) => {
        impl ChildRecord for $record {
            const TABLE: &'static str = $table;
            const KIND: u8 = $kind;
            fn new(id: String, name: String, service_id: String, last_ping_ms: i64) -> Self {
                Self {
                    id: $id::from_raw(id),
                    name,
                    service_id: ServiceId::from_raw(service_id),
                    last_ping_ms,
                }
            }
            fn dirty(traffic: &DirtyTraffic) -> impl Iterator<Item = &Self> {
                traffic.$dirty.values()
            }
            fn id(&self) -> &str {
                self.id.as_str()
            }
            fn name(&self) -> &str {
                &self.name
            }
            fn service_id(&self) -> &ServiceId {
                &self.service_id
            }
            fn last_ping_ms(&self) -> i64 {
                self.last_ping_ms
            }
            fn ping(&mut self, at_ms: i64) {
                self.last_ping_ms = self.last_ping_ms.max(at_ms);
            }
        }
    };
}

child_record!(
    InstanceRecord,
    InstanceId,
    "instances",
    crate::traffic::INSTANCE,
    instances
);
child_record!(
    EndpointRecord,
    EndpointId,
    "endpoints",
    crate::traffic::ENDPOINT,
    endpoints
);
