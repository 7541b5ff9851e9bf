//! The shared engine's ordered key-value rows in table `kv`, for the record kinds this backend
//! does not model in tables of their own (alarms, RUM events and sessions, issues, source maps,
//! UI templates). Write-ahead-log marks the engine writes (`w | kind`) go to this node's rows of
//! `applied_marks` instead, in the same transaction, so nodes never overwrite each other's marks.
use crate::db::Db;
use crate::error::Error;
use skylark_storage::{RangeVisitor, RowOp, RowStore, RowVisitor, MARK_KEY_PREFIX};
use std::collections::HashMap;
use std::sync::Arc;

/// Rows fetched per round trip of a scan.
const SCAN_BATCH: i64 = 500;

pub(crate) struct PgRows {
    pub(crate) db: Arc<Db>,
    pub(crate) node: String,
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
        let rows = self.db.run(move |pool| async move {
            let client = pool.get().await.map_err(Error::pool("scanning kv"))?;
            let sql = if reverse {
                "SELECT k, v FROM kv WHERE k >= $1 AND ($2::bytea IS NULL OR k < $2)
                   AND ($3::bytea IS NULL OR k < $3) ORDER BY k DESC LIMIT $4"
            } else {
                "SELECT k, v FROM kv WHERE k >= $1 AND ($2::bytea IS NULL OR k < $2)
                   AND ($3::bytea IS NULL OR k > $3) ORDER BY k LIMIT $4"
            };
            let rows =
                crate::storage::query_cached(&client, sql, &[&start, &end, &after, &SCAN_BATCH])
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
            let rows =
                crate::storage::query_cached(&client, "SELECT v FROM kv WHERE k = $1", &[&key])
                    .await
                    .map_err(Error::db("reading kv"))?;
            Ok(rows.first().map(|r| r.get::<_, Vec<u8>>(0)))
        })?;
        Ok(found)
    }

    fn get_many(&self, keys: &[Vec<u8>]) -> skylark_storage::Result<Vec<Option<Vec<u8>>>> {
        if keys.iter().any(|k| mark_kind(k).is_some()) {
            return keys.iter().map(|k| self.get(k)).collect();
        }
        let wanted = keys.to_vec();
        let found: HashMap<Vec<u8>, Vec<u8>> = self.db.run(move |pool| async move {
            let client = pool.get().await.map_err(Error::pool("reading kv"))?;
            let rows = crate::storage::query_cached(
                &client,
                "SELECT k, v FROM kv WHERE k = ANY($1)",
                &[&wanted],
            )
            .await
            .map_err(Error::db("reading kv"))?;
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
        let mut marks: Vec<(String, i64)> = Vec::new();
        for (k, v) in last {
            match (mark_kind(&k), v) {
                (Some(kind), Some(v)) => {
                    let seq = <[u8; 8]>::try_from(v.as_slice())
                        .map(u64::from_be_bytes)
                        .map_err(|_| skylark_storage::Error::CorruptMark(kind.clone()))?;
                    marks.push((kind, seq as i64));
                }
                (Some(_), None) => {}
                (None, Some(v)) => {
                    put_k.push(k);
                    put_v.push(v);
                }
                (None, None) => delete.push(k),
            }
        }
        let node = self.node.clone();
        // Batches carrying a write-ahead-log mark (RUM events, issues) are covered by the
        // log like logs and segments; the rest (templates, alarms, source maps) are written
        // outside it and must be durable when the call returns.
        let relaxed = !marks.is_empty();
        self.db.run(move |pool| async move {
            let mut client = pool.get().await.map_err(Error::pool("writing kv"))?;
            let tx = client
                .transaction()
                .await
                .map_err(Error::db("writing kv"))?;
            if relaxed {
                crate::storage::relaxed_commit(&tx).await?;
            }
            if !delete.is_empty() {
                crate::storage::exec_cached(&tx, "DELETE FROM kv WHERE k = ANY($1)", &[&delete])
                    .await
                    .map_err(Error::db("deleting kv rows"))?;
            }
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
            for (kind, seq) in marks {
                crate::storage::store_mark(&tx, &node, &kind, seq).await?;
            }
            tx.commit().await.map_err(Error::db("committing kv rows"))?;
            Ok(())
        })?;
        Ok(())
    }
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
