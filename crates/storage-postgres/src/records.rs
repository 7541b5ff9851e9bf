//! Logs and segments in day-partitioned tables, and their tag autocomplete rows.
//!
//! Exact filters (entity ids, trace, time, duration, state) run in SQL; tag and keyword filters
//! run here on rows read in key order in batches, with the sled backend's exact semantics.
use crate::error::{Error, Result};
use skylark_core::{EndpointId, InstanceId, LogRecord, SegmentRecord, ServiceId};
use skylark_storage::{
    indexable_tag, truncate_log, LogQuery, Page, StoredLog, TraceOrder, TraceQuery, TraceState,
};
use std::collections::BTreeSet;
use tokio_postgres::types::ToSql;

pub(crate) const DAY_MS: i64 = 86_400_000;
/// Rows read per round trip when filtering here.
const BATCH: i64 = 500;

pub(crate) fn day_of(ms: i64) -> i32 {
    i32::try_from(ms.div_euclid(DAY_MS)).unwrap_or(if ms < 0 { i32::MIN } else { i32::MAX })
}

/// A log id unique across nodes and restarts without a system call per log: a random
/// per-process prefix and a counter, 32 hex digits like the UUIDs ids were before.
fn next_log_id() -> String {
    static PREFIX: std::sync::LazyLock<u64> =
        std::sync::LazyLock::new(|| uuid::Uuid::new_v4().as_u64_pair().0);
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{:016x}{n:016x}", *PREFIX)
}

fn set(value: Option<&str>) -> Option<&str> {
    value.filter(|s| !s.is_empty())
}

/// A batch of logs or segments, ready to insert into the table of the same name (also the name
/// of their write-ahead-log mark).
pub(crate) enum RecordRows {
    Logs(LogRows),
    Segments(SegmentRows),
}

impl RecordRows {
    pub(crate) fn table(&self) -> &'static str {
        match self {
            RecordRows::Logs(_) => "logs",
            RecordRows::Segments(_) => "segments",
        }
    }

    pub(crate) fn writing(&self) -> &'static str {
        match self {
            RecordRows::Logs(_) => "writing logs",
            RecordRows::Segments(_) => "writing segments",
        }
    }

    pub(crate) fn committing(&self) -> &'static str {
        match self {
            RecordRows::Logs(_) => "committing logs",
            RecordRows::Segments(_) => "committing segments",
        }
    }

    /// The UTC days the batch's rows fall in.
    pub(crate) fn days(&self) -> &BTreeSet<i32> {
        match self {
            RecordRows::Logs(rows) => &rows.days,
            RecordRows::Segments(rows) => &rows.days,
        }
    }

    pub(crate) async fn insert(&self, tx: &deadpool_postgres::Transaction<'_>) -> Result<()> {
        match self {
            RecordRows::Logs(rows) => rows.insert(tx).await,
            RecordRows::Segments(rows) => rows.insert(tx).await,
        }
    }
}

/// Columns of the logs to insert, one vector per column (`UNNEST`).
#[derive(Default)]
pub(crate) struct LogRows {
    service_id: Vec<String>,
    day: Vec<i32>,
    ts: Vec<i64>,
    id: Vec<String>,
    instance_id: Vec<Option<String>>,
    endpoint_id: Vec<Option<String>>,
    trace_id: Vec<Option<String>>,
    segment_id: Vec<Option<String>>,
    span_id: Vec<Option<i32>>,
    body: Vec<Vec<u8>>,
    pub(crate) days: BTreeSet<i32>,
    tags: BTreeSet<(i32, String, String)>,
}

impl LogRows {
    pub(crate) fn new(logs: Vec<LogRecord>) -> Result<Self> {
        let mut rows = LogRows::default();
        for mut record in logs {
            truncate_log(&mut record);
            let service_id = ServiceId::new(&record.service, true);
            let day = day_of(record.timestamp_ms);
            for (k, v) in &record.tags {
                if indexable_tag(k, v) {
                    rows.tags.insert((day, k.clone(), v.clone()));
                }
            }
            let log = StoredLog {
                id: next_log_id(),
                instance_id: (!record.service_instance.is_empty())
                    .then(|| InstanceId::new(&service_id, &record.service_instance)),
                endpoint_id: (!record.endpoint.is_empty())
                    .then(|| EndpointId::new(&service_id, &record.endpoint)),
                service_id,
                record,
            };
            rows.days.insert(day);
            rows.service_id.push(log.service_id.as_str().to_string());
            rows.day.push(day);
            rows.ts.push(log.record.timestamp_ms);
            rows.id.push(log.id.clone());
            rows.instance_id
                .push(log.instance_id.as_ref().map(|i| i.as_str().to_string()));
            rows.endpoint_id
                .push(log.endpoint_id.as_ref().map(|i| i.as_str().to_string()));
            rows.trace_id
                .push(set(log.record.trace_id.as_deref()).map(str::to_string));
            rows.segment_id
                .push(set(log.record.segment_id.as_deref()).map(str::to_string));
            rows.span_id.push(log.record.span_id);
            rows.body
                .push(serde_json::to_vec(&log).map_err(Error::codec("logs"))?);
        }
        Ok(rows)
    }

    pub(crate) async fn insert(&self, tx: &deadpool_postgres::Transaction<'_>) -> Result<()> {
        if self.id.is_empty() {
            return Ok(());
        }
        let rows = async {
            crate::storage::exec_cached(
                tx,
                "INSERT INTO logs (service_id, day, ts, id, instance_id, endpoint_id, trace_id,
                                   segment_id, span_id, body)
                 SELECT * FROM UNNEST($1::text[], $2::int[], $3::bigint[], $4::text[], $5::text[],
                                      $6::text[], $7::text[], $8::text[], $9::int[], $10::bytea[])",
                &[
                    &self.service_id,
                    &self.day,
                    &self.ts,
                    &self.id,
                    &self.instance_id,
                    &self.endpoint_id,
                    &self.trace_id,
                    &self.segment_id,
                    &self.span_id,
                    &self.body,
                ],
            )
            .await
            .map_err(Error::db("inserting logs"))
        };
        // Sent together (pipelined on the connection).
        futures_util::try_join!(rows, insert_tags(tx, b'l', &self.tags))?;
        Ok(())
    }
}

async fn insert_tags(
    tx: &deadpool_postgres::Transaction<'_>,
    kind: u8,
    tags: &BTreeSet<(i32, String, String)>,
) -> Result<()> {
    if tags.is_empty() {
        return Ok(());
    }
    let kind = kind as i8;
    let days: Vec<i32> = tags.iter().map(|t| t.0).collect();
    let keys: Vec<&str> = tags.iter().map(|t| t.1.as_str()).collect();
    let values: Vec<&str> = tags.iter().map(|t| t.2.as_str()).collect();
    crate::storage::exec_cached(
        tx,
        "INSERT INTO record_tags (kind, day, key, value)
         SELECT $1, * FROM UNNEST($2::int[], $3::text[], $4::text[]) ON CONFLICT DO NOTHING",
        &[&kind, &days, &keys, &values],
    )
    .await
    .map_err(Error::db("inserting tags"))?;
    Ok(())
}

/// Columns of the segments to insert.
#[derive(Default)]
pub(crate) struct SegmentRows {
    service_id: Vec<String>,
    day: Vec<i32>,
    start_ms: Vec<i64>,
    segment_id: Vec<String>,
    trace_id: Vec<String>,
    instance_id: Vec<String>,
    endpoint_id: Vec<String>,
    latency_ms: Vec<i64>,
    is_error: Vec<bool>,
    body: Vec<Vec<u8>>,
    pub(crate) days: BTreeSet<i32>,
    tags: BTreeSet<(i32, String, String)>,
}

impl SegmentRows {
    pub(crate) fn new(segments: Vec<SegmentRecord>) -> Result<Self> {
        let mut rows = SegmentRows::default();
        // One statement may upsert a row once: the last copy of a (segment, start) wins.
        let mut seen = std::collections::HashMap::new();
        for (i, r) in segments.iter().enumerate() {
            seen.insert(
                (
                    r.service_id.as_str().to_string(),
                    r.start_time_ms,
                    r.segment_id.clone(),
                ),
                i,
            );
        }
        for (i, r) in segments.into_iter().enumerate() {
            let key = (
                r.service_id.as_str().to_string(),
                r.start_time_ms,
                r.segment_id.clone(),
            );
            if seen.get(&key) != Some(&i) {
                continue;
            }
            let day = day_of(r.start_time_ms);
            for (k, v) in &r.tags {
                if indexable_tag(k, v) {
                    rows.tags.insert((day, k.clone(), v.clone()));
                }
            }
            rows.days.insert(day);
            rows.service_id.push(key.0);
            rows.day.push(day);
            rows.start_ms.push(r.start_time_ms);
            rows.segment_id.push(r.segment_id.clone());
            rows.trace_id.push(r.trace_id.clone());
            rows.instance_id
                .push(r.service_instance_id.as_str().to_string());
            rows.endpoint_id.push(r.endpoint_id.as_str().to_string());
            rows.latency_ms.push(r.latency_ms);
            rows.is_error.push(r.is_error);
            rows.body
                .push(serde_json::to_vec(&r).map_err(Error::codec("segments"))?);
        }
        Ok(rows)
    }

    pub(crate) async fn insert(&self, tx: &deadpool_postgres::Transaction<'_>) -> Result<()> {
        if self.segment_id.is_empty() {
            return Ok(());
        }
        let rows = async {
            crate::storage::exec_cached(
                tx,
                "INSERT INTO segments (service_id, day, start_ms, segment_id, trace_id, instance_id,
                                       endpoint_id, latency_ms, is_error, body)
                 SELECT * FROM UNNEST($1::text[], $2::int[], $3::bigint[], $4::text[], $5::text[],
                                      $6::text[], $7::text[], $8::bigint[], $9::bool[], $10::bytea[])
                 ON CONFLICT (service_id, day, start_ms, segment_id) DO UPDATE SET
                     trace_id = EXCLUDED.trace_id, instance_id = EXCLUDED.instance_id,
                     endpoint_id = EXCLUDED.endpoint_id, latency_ms = EXCLUDED.latency_ms,
                     is_error = EXCLUDED.is_error, body = EXCLUDED.body",
                &[
                    &self.service_id,
                    &self.day,
                    &self.start_ms,
                    &self.segment_id,
                    &self.trace_id,
                    &self.instance_id,
                    &self.endpoint_id,
                    &self.latency_ms,
                    &self.is_error,
                    &self.body,
                ],
            )
            .await
            .map_err(Error::db("inserting segments"))
        };
        // Sent together (pipelined on the connection).
        futures_util::try_join!(rows, insert_tags(tx, b'g', &self.tags))?;
        Ok(())
    }
}

/// SQL conditions and their parameters.
#[derive(Default)]
struct Filter {
    conditions: Vec<String>,
    params: Vec<Box<dyn ToSql + Sync + Send>>,
}

impl Filter {
    fn add<T: ToSql + Sync + Send + 'static>(&mut self, column_op: &str, value: T) {
        self.params.push(Box::new(value));
        self.conditions
            .push(format!("{column_op} ${}", self.params.len()));
    }

    /// The service, instance and endpoint id filters both record queries take; an absent or
    /// empty id (clients send `""` for "unset") filters nothing.
    fn add_entities(
        &mut self,
        service_id: Option<&str>,
        instance_id: Option<&str>,
        endpoint_id: Option<&str>,
    ) {
        for (column_op, id) in [
            ("service_id =", service_id),
            ("instance_id =", instance_id),
            ("endpoint_id =", endpoint_id),
        ] {
            if let Some(id) = set(id) {
                self.add(column_op, id.to_string());
            }
        }
    }

    /// `start_ms <= column <= end_ms` where given, and the same bounds on `day`, so that only
    /// the day partitions in range are read.
    fn add_time_range(&mut self, column: &str, start_ms: Option<i64>, end_ms: Option<i64>) {
        if let Some(v) = start_ms {
            self.add(&format!("{column} >="), v);
            self.add("day >=", day_of(v));
        }
        if let Some(v) = end_ms {
            self.add(&format!("{column} <="), v);
            self.add("day <=", day_of(v));
        }
    }

    fn sql(&self) -> String {
        if self.conditions.is_empty() {
            "TRUE".to_string()
        } else {
            self.conditions.join(" AND ")
        }
    }

    fn refs(&self) -> Vec<&(dyn ToSql + Sync)> {
        self.params
            .iter()
            .map(|p| p.as_ref() as &(dyn ToSql + Sync))
            .collect()
    }
}

pub(crate) async fn query_logs(
    client: &deadpool_postgres::Client,
    q: LogQuery,
) -> Result<Vec<StoredLog>> {
    let mut page = Page::new(q.offset, q.limit);
    if q.limit == 0 {
        return Ok(page.into_items());
    }
    let mut f = Filter::default();
    f.add_entities(
        q.service_id.as_ref().map(|s| s.as_str()),
        q.instance_id.as_ref().map(|s| s.as_str()),
        q.endpoint_id.as_ref().map(|s| s.as_str()),
    );
    if let Some(v) = set(q.trace_id.as_deref()) {
        f.add("trace_id =", v.to_string());
    }
    if let Some(v) = set(q.segment_id.as_deref()) {
        f.add("segment_id =", v.to_string());
    }
    if let Some(v) = q.span_id {
        f.add("span_id =", v);
    }
    f.add_time_range("ts", q.start_ms, q.end_ms);
    let (cmp, dir) = if q.order_desc {
        ("<", "DESC")
    } else {
        (">", "ASC")
    };
    let mut after: Option<(i64, String)> = None;
    loop {
        let mut sql = format!("SELECT ts, id, body FROM logs WHERE {}", f.sql());
        let mut params = f.refs();
        let keyset;
        if let Some(a) = &after {
            keyset = (a.0, a.1.clone());
            params.push(&keyset.0);
            params.push(&keyset.1);
            sql.push_str(&format!(
                " AND (ts, id) {cmp} (${}, ${})",
                params.len() - 1,
                params.len()
            ));
        }
        sql.push_str(&format!(" ORDER BY ts {dir}, id {dir} LIMIT {BATCH}"));
        let rows = client
            .query(&sql, &params)
            .await
            .map_err(Error::db("querying logs"))?;
        let full = rows.len() as i64 == BATCH;
        for row in &rows {
            let log: StoredLog =
                serde_json::from_slice(row.get::<_, &[u8]>(2)).map_err(Error::codec("logs"))?;
            after = Some((row.get(0), row.get(1)));
            if q.matches_tags_and_keywords(&log) && !page.offer(log) {
                return Ok(page.into_items());
            }
        }
        if !full {
            return Ok(page.into_items());
        }
    }
}

pub(crate) async fn query_segments(
    client: &deadpool_postgres::Client,
    q: TraceQuery,
) -> Result<Vec<SegmentRecord>> {
    let mut page = Page::new(q.offset, q.limit);
    if q.limit == 0 {
        return Ok(page.into_items());
    }
    let mut f = Filter::default();
    f.add_entities(
        q.service_id.as_ref().map(|s| s.as_str()),
        q.instance_id.as_ref().map(|s| s.as_str()),
        q.endpoint_id.as_ref().map(|s| s.as_str()),
    );
    if let Some(v) = set(q.trace_id.as_deref()) {
        f.add("trace_id =", v.to_string());
    }
    f.add_time_range("start_ms", q.start_ms, q.end_ms);
    if let Some(v) = q.min_duration {
        f.add("latency_ms >=", v);
    }
    if let Some(v) = q.max_duration {
        f.add("latency_ms <=", v);
    }
    match q.state {
        TraceState::All => {}
        TraceState::Success => f.conditions.push("NOT is_error".into()),
        TraceState::Error => f.conditions.push("is_error".into()),
    }
    // Latest first; by duration, ties latest first (the sled key order, descending).
    let by_duration = q.order == TraceOrder::ByDuration;
    let mut after: Option<(i64, i64, String)> = None;
    loop {
        let mut sql = format!(
            "SELECT latency_ms, start_ms, segment_id, body FROM segments WHERE {}",
            f.sql()
        );
        let mut params = f.refs();
        let keyset;
        if let Some(a) = &after {
            keyset = a.clone();
            params.push(&keyset.1);
            params.push(&keyset.2);
            let n = params.len();
            if by_duration {
                params.push(&keyset.0);
                sql.push_str(&format!(
                    " AND (latency_ms, start_ms, segment_id) < (${}, ${}, ${})",
                    n + 1,
                    n - 1,
                    n
                ));
            } else {
                sql.push_str(&format!(" AND (start_ms, segment_id) < (${}, ${n})", n - 1));
            }
        }
        if by_duration {
            sql.push_str(" ORDER BY latency_ms DESC, start_ms DESC, segment_id DESC");
        } else {
            sql.push_str(" ORDER BY start_ms DESC, segment_id DESC");
        }
        sql.push_str(&format!(" LIMIT {BATCH}"));
        let rows = client
            .query(&sql, &params)
            .await
            .map_err(Error::db("querying segments"))?;
        let full = rows.len() as i64 == BATCH;
        for row in &rows {
            after = Some((row.get(0), row.get(1), row.get(2)));
            let record: SegmentRecord =
                serde_json::from_slice(row.get::<_, &[u8]>(3)).map_err(Error::codec("segments"))?;
            if q.matches_tags(&record) && !page.offer(record) {
                return Ok(page.into_items());
            }
        }
        if !full {
            return Ok(page.into_items());
        }
    }
}

pub(crate) async fn get_trace(
    client: &deadpool_postgres::Client,
    trace_id: String,
) -> Result<Vec<SegmentRecord>> {
    if trace_id.is_empty() {
        return Ok(Vec::new());
    }
    let rows = client
        .query(
            "SELECT body FROM segments WHERE trace_id = $1 ORDER BY start_ms, segment_id",
            &[&trace_id],
        )
        .await
        .map_err(Error::db("reading a trace"))?;
    rows.iter()
        .map(|r| serde_json::from_slice(r.get::<_, &[u8]>(0)).map_err(Error::codec("segments")))
        .collect()
}

pub(crate) async fn tag_autocomplete(
    client: &deadpool_postgres::Client,
    kind: u8,
    key: Option<String>,
    start_ms: i64,
    end_ms: i64,
) -> Result<Vec<String>> {
    let kind = kind as i8;
    let (first, last) = (day_of(start_ms), day_of(end_ms));
    let rows = match &key {
        None => client
            .query(
                "SELECT DISTINCT key FROM record_tags WHERE kind = $1 AND day BETWEEN $2 AND $3",
                &[&kind, &first, &last],
            )
            .await,
        Some(key) => {
            client
                .query(
                    "SELECT DISTINCT value FROM record_tags
                  WHERE kind = $1 AND day BETWEEN $2 AND $3 AND key = $4",
                    &[&kind, &first, &last, key],
                )
                .await
        }
    }
    .map_err(Error::db("reading tags"))?;
    // Byte order, as the sled backend sorts (the database's collation may differ).
    let out: BTreeSet<String> = rows.iter().map(|r| r.get(0)).collect();
    Ok(out.into_iter().collect())
}
