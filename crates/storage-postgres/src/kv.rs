//! The shared engine's ordered key-value rows, for the record kinds this backend does not model
//! in tables of their own (alarms, RUM events and sessions, issues, source maps, UI templates).
//! Rows whose key carries a time (RUM events and their indexes, alarm records and their
//! autocomplete rows: [`skylark_storage::timed_row_day`]) live in `kv_by_day`, partitioned by
//! day, so retention drops their partitions; the rest live in `kv`. Write-ahead-log marks the
//! engine writes (`w | kind`) go to this node's rows of `applied_marks` instead, in the same
//! transaction, so nodes never overwrite each other's marks.
use crate::db::Db;
use crate::error::Error;
use crate::schema::{self, KnownPartitions};
use skylark_storage::{
    is_timed_range, timed_row_day, RangeVisitor, RowOp, RowStore, RowVisitor, MARK_KEY_PREFIX,
};
use std::collections::HashMap;
use std::sync::Arc;

/// Rows fetched per round trip of a scan.
const SCAN_BATCH: i64 = 500;

pub(crate) struct PgRows {
    pub(crate) db: Arc<Db>,
    pub(crate) node: String,
    pub(crate) partitions: Arc<KnownPartitions>,
}

/// The `kv_by_day` partition day of `key`, `None` for rows of `kv`.
fn day_of_key(key: &[u8]) -> Option<i32> {
    timed_row_day(key).map(schema::clamp_day)
}

fn mark_kind(key: &[u8]) -> Option<String> {
    match key.split_first() {
        Some((&MARK_KEY_PREFIX, name)) => Some(String::from_utf8_lossy(name).into_owned()),
        _ => None,
    }
}

/// The first key after every key starting with `prefix`; `None` when there is none.
fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

impl PgRows {
    /// One batch of `[start, end)` after `after` (exclusive), in order.
    fn batch(
        &self,
        start: &[u8],
        end: Option<&[u8]>,
        after: Option<&[u8]>,
        reverse: bool,
    ) -> skylark_storage::Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let (start, end, after) = (
            start.to_vec(),
            end.map(<[u8]>::to_vec),
            after.map(<[u8]>::to_vec),
        );
        let timed = is_timed_range(&start);
        let rows = self.db.run(move |pool| async move {
            let client = pool.get().await.map_err(Error::pool("scanning kv"))?;
            let table = if timed { "kv_by_day" } else { "kv" };
            let (after_cmp, order) = if reverse { ("<", "DESC") } else { (">", "ASC") };
            let sql = format!(
                "SELECT k, v FROM {table} WHERE k >= $1 AND ($2::bytea IS NULL OR k < $2)
                   AND ($3::bytea IS NULL OR k {after_cmp} $3) ORDER BY k {order} LIMIT $4"
            );
            let rows =
                crate::storage::query_cached(&client, &sql, &[&start, &end, &after, &SCAN_BATCH])
                    .await
                    .map_err(Error::db("scanning kv"))?;
            Ok(rows
                .into_iter()
                .map(|r| (r.get::<_, Vec<u8>>(0), r.get::<_, Vec<u8>>(1)))
                .collect::<Vec<_>>())
        })?;
        Ok(rows)
    }

    fn scan(
        &self,
        start: &[u8],
        end: Option<&[u8]>,
        reverse: bool,
        visit: &mut RangeVisitor<'_>,
    ) -> skylark_storage::Result<()> {
        if end.is_some_and(|e| start >= e) {
            return Ok(());
        }
        let mut after: Option<Vec<u8>> = None;
        loop {
            let rows = self.batch(start, end, after.as_deref(), reverse)?;
            let full = rows.len() as i64 == SCAN_BATCH;
            for (k, v) in &rows {
                if !visit(k, v)? {
                    return Ok(());
                }
            }
            match rows.into_iter().last() {
                Some((k, _)) if full => after = Some(k),
                _ => return Ok(()),
            }
        }
    }
}

impl RowStore for PgRows {
    fn get(&self, key: &[u8]) -> skylark_storage::Result<Option<Vec<u8>>> {
        let node = self.node.clone();
        let key = key.to_vec();
        let found = self.db.run(move |pool| async move {
            let client = pool.get().await.map_err(Error::pool("reading kv"))?;
            if let Some(kind) = mark_kind(&key) {
                let rows = crate::storage::query_cached(
                    &client,
                    "SELECT seq FROM applied_marks WHERE node = $1 AND kind = $2",
                    &[&node, &kind],
                )
                .await
                .map_err(Error::db("reading a mark"))?;
                return Ok(rows
                    .first()
                    .map(|r| (r.get::<_, i64>(0) as u64).to_be_bytes().to_vec()));
            }
            let rows = match day_of_key(&key) {
                Some(day) => {
                    crate::storage::query_cached(
                        &client,
                        "SELECT v FROM kv_by_day WHERE k = $1 AND day = $2",
                        &[&key, &day],
                    )
                    .await
                }
                None => {
                    crate::storage::query_cached(&client, "SELECT v FROM kv WHERE k = $1", &[&key])
                        .await
                }
            }
            .map_err(Error::db("reading kv"))?;
            Ok(rows.first().map(|r| r.get::<_, Vec<u8>>(0)))
        })?;
        Ok(found)
    }

    fn get_many(&self, keys: &[Vec<u8>]) -> skylark_storage::Result<Vec<Option<Vec<u8>>>> {
        if keys.iter().any(|k| mark_kind(k).is_some()) {
            return keys.iter().map(|k| self.get(k)).collect();
        }
        let (mut plain, mut timed, mut days) = (Vec::new(), Vec::new(), Vec::new());
        for key in keys {
            match day_of_key(key) {
                Some(day) => {
                    timed.push(key.clone());
                    days.push(day);
                }
                None => plain.push(key.clone()),
            }
        }
        days.sort_unstable();
        days.dedup();
        let found: HashMap<Vec<u8>, Vec<u8>> = self.db.run(move |pool| async move {
            let client = pool.get().await.map_err(Error::pool("reading kv"))?;
            let mut rows = Vec::new();
            if !plain.is_empty() {
                rows = crate::storage::query_cached(
                    &client,
                    "SELECT k, v FROM kv WHERE k = ANY($1)",
                    &[&plain],
                )
                .await
                .map_err(Error::db("reading kv"))?;
            }
            if !timed.is_empty() {
                // The days let PostgreSQL read only their partitions.
                rows.extend(
                    crate::storage::query_cached(
                        &client,
                        "SELECT k, v FROM kv_by_day WHERE k = ANY($1) AND day = ANY($2)",
                        &[&timed, &days],
                    )
                    .await
                    .map_err(Error::db("reading kv"))?,
                );
            }
            Ok(rows
                .into_iter()
                .map(|r| (r.get::<_, Vec<u8>>(0), r.get::<_, Vec<u8>>(1)))
                .collect())
        })?;
        Ok(keys.iter().map(|k| found.get(k).cloned()).collect())
    }

    fn scan_prefix(
        &self,
        prefix: &[u8],
        visit: &mut RowVisitor<'_>,
    ) -> skylark_storage::Result<()> {
        let end = prefix_end(prefix);
        self.scan(prefix, end.as_deref(), false, &mut |k, v| {
            visit(k, v)?;
            Ok(true)
        })
    }

    fn scan_range(
        &self,
        start: &[u8],
        end: &[u8],
        reverse: bool,
        visit: &mut RangeVisitor<'_>,
    ) -> skylark_storage::Result<()> {
        self.scan(start, Some(end), reverse, visit)
    }

    fn keys_in_range(&self, start: &[u8], end: &[u8]) -> skylark_storage::Result<Vec<Vec<u8>>> {
        let mut keys = Vec::new();
        self.scan(start, Some(end), false, &mut |k, _| {
            keys.push(k.to_vec());
            Ok(true)
        })?;
        Ok(keys)
    }

    fn apply(&self, ops: Vec<RowOp>) -> skylark_storage::Result<()> {
        // The last op of a key wins, as in a sled batch; one statement may touch a row once.
        let mut last: HashMap<Vec<u8>, Option<Vec<u8>>> = HashMap::with_capacity(ops.len());
        for (k, v) in ops {
            last.insert(k, v);
        }
        let mut put_k = Vec::new();
        let mut put_v = Vec::new();
        let mut delete = Vec::new();
        let mut timed = TimedOps::default();
        let mut marks: Vec<(String, i64)> = Vec::new();
        for (k, v) in last {
            match (mark_kind(&k), day_of_key(&k), v) {
                (Some(kind), _, Some(v)) => {
                    let seq = <[u8; 8]>::try_from(v.as_slice())
                        .map(u64::from_be_bytes)
                        .map_err(|_| skylark_storage::Error::CorruptMark(kind.clone()))?;
                    marks.push((kind, seq as i64));
                }
                (Some(_), _, None) => {}
                (None, Some(day), Some(v)) => {
                    timed.put_day.push(day);
                    timed.put_k.push(k);
                    timed.put_v.push(v);
                }
                (None, Some(day), None) => {
                    timed.delete_day.push(day);
                    timed.delete_k.push(k);
                }
                (None, None, Some(v)) => {
                    put_k.push(k);
                    put_v.push(v);
                }
                (None, None, None) => delete.push(k),
            }
        }
        let missing = self
            .partitions
            .missing("kv_by_day", timed.put_day.iter().copied());
        let created = missing.clone();
        let node = self.node.clone();
        // Batches carrying a write-ahead-log mark (RUM events, issues) are covered by the
        // log like logs and segments; the rest (templates, alarms, source maps) are written
        // outside it and must be durable when the call returns.
        let relaxed = !marks.is_empty();
        self.db.run(move |pool| async move {
            let mut client = pool.get().await.map_err(Error::pool("writing kv"))?;
            schema::ensure_partitions(&mut client, "kv_by_day", &missing).await?;
            let tx = client
                .transaction()
                .await
                .map_err(Error::db("writing kv"))?;
            // Every statement is sent at once (pipelined on the connection) and runs in this
            // order; they touch disjoint rows (one op per key, marks in their own table).
            let relax = async {
                match relaxed {
                    true => crate::storage::relaxed_commit(&tx).await,
                    false => Ok(()),
                }
            };
            let delete_plain = async {
                if !delete.is_empty() {
                    crate::storage::exec_cached(
                        &tx,
                        "DELETE FROM kv WHERE k = ANY($1)",
                        &[&delete],
                    )
                    .await
                    .map_err(Error::db("deleting kv rows"))?;
                }
                Ok(())
            };
            let put_plain = async {
                if !put_k.is_empty() {
                    crate::storage::exec_cached(
                        &tx,
                        "INSERT INTO kv (k, v) SELECT * FROM UNNEST($1::bytea[], $2::bytea[])
                         ON CONFLICT (k) DO UPDATE SET v = EXCLUDED.v",
                        &[&put_k, &put_v],
                    )
                    .await
                    .map_err(Error::db("writing kv rows"))?;
                }
                Ok(())
            };
            let delete_timed = async {
                if !timed.delete_k.is_empty() {
                    crate::storage::exec_cached(
                        &tx,
                        "DELETE FROM kv_by_day WHERE (k, day) IN
                           (SELECT * FROM UNNEST($1::bytea[], $2::integer[]))",
                        &[&timed.delete_k, &timed.delete_day],
                    )
                    .await
                    .map_err(Error::db("deleting kv rows"))?;
                }
                Ok(())
            };
            let put_timed = async {
                if !timed.put_k.is_empty() {
                    crate::storage::exec_cached(
                        &tx,
                        "INSERT INTO kv_by_day (day, k, v)
                         SELECT * FROM UNNEST($1::integer[], $2::bytea[], $3::bytea[])
                         ON CONFLICT (k, day) DO UPDATE SET v = EXCLUDED.v",
                        &[&timed.put_day, &timed.put_k, &timed.put_v],
                    )
                    .await
                    .map_err(Error::db("writing kv rows"))?;
                }
                Ok(())
            };
            let store_marks = async {
                for (kind, seq) in &marks {
                    crate::storage::store_mark(&tx, &node, kind, *seq).await?;
                }
                Ok::<(), Error>(())
            };
            futures_util::try_join!(
                relax,
                delete_plain,
                put_plain,
                delete_timed,
                put_timed,
                store_marks
            )?;
            tx.commit().await.map_err(Error::db("committing kv rows"))?;
            Ok(())
        })?;
        self.partitions.created("kv_by_day", &created);
        Ok(())
    }
}

/// Writes and deletions of `kv_by_day` rows, column by column.
#[derive(Default)]
struct TimedOps {
    put_day: Vec<i32>,
    put_k: Vec<Vec<u8>>,
    put_v: Vec<Vec<u8>>,
    delete_day: Vec<i32>,
    delete_k: Vec<Vec<u8>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_skips_every_key_with_the_prefix() {
        assert_eq!(prefix_end(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_end(&[b'a', 0xff]), Some(b"b".to_vec()));
        assert_eq!(prefix_end(&[0xff, 0xff]), None);
    }
}
