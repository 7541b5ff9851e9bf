//! The in-memory mirror of every registered entity.
//!
//! Rules report traffic on every evaluation, so the mirror absorbs it and only marks a row dirty
//! (to be written by the next flush) when the entity is new or its `last_ping` moved by at least
//! a minute. Reads are answered from the mirror, so they are exact even between writes.
use crate::keys::{self, ENDPOINT, INSTANCE};
use crate::model::{EndpointRecord, InstanceRecord, ServiceRecord};
use crate::rows::{self, RowOp, RowStore, StoredService};
use crate::Result;
use skylark_core::traffic::Traffic;
use skylark_core::{Layer, ServiceId};
use std::collections::{BTreeMap, BTreeSet};

/// How far `last_ping` must advance before the stored row is rewritten (OAP pings per minute).
const PING_WRITE_INTERVAL_MS: i64 = 60_000;

/// An instance or endpoint record.
pub(crate) trait ChildRecord:
    Clone + serde::Serialize + serde::de::DeserializeOwned
{
    fn last_ping_ms(&self) -> i64;
    fn set_last_ping_ms(&mut self, ms: i64);
    fn service_id(&self) -> &ServiceId;
}

impl ChildRecord for InstanceRecord {
    fn last_ping_ms(&self) -> i64 {
        self.last_ping_ms
    }
    fn set_last_ping_ms(&mut self, ms: i64) {
        self.last_ping_ms = ms;
    }
    fn service_id(&self) -> &ServiceId {
        &self.service_id
    }
}

impl ChildRecord for EndpointRecord {
    fn last_ping_ms(&self) -> i64 {
        self.last_ping_ms
    }
    fn set_last_ping_ms(&mut self, ms: i64) {
        self.last_ping_ms = ms;
    }
    fn service_id(&self) -> &ServiceId {
        &self.service_id
    }
}

struct Child<R> {
    record: R,
    /// The ping last handed to a flush (or loaded from disk).
    written_ping_ms: i64,
}

/// The records of one kind, keyed by id (`serviceId_b64name`, so a service's children are one
/// contiguous range).
pub(crate) struct Children<R> {
    kind: u8,
    rows: BTreeMap<String, Child<R>>,
    dirty: BTreeSet<String>,
}

impl<R: ChildRecord> Children<R> {
    fn new(kind: u8) -> Self {
        Children {
            kind,
            rows: BTreeMap::new(),
            dirty: BTreeSet::new(),
        }
    }

    fn load(&mut self, store: &dyn RowStore) -> Result<()> {
        let rows = &mut self.rows;
        store.scan_prefix(&[self.kind], &mut |key, value| {
            let record: R = rows::decode(key, value)?;
            let id = String::from_utf8_lossy(&key[1..]).into_owned();
            rows.insert(
                id,
                Child {
                    written_ping_ms: record.last_ping_ms(),
                    record,
                },
            );
            Ok(())
        })
    }

    fn seen(&mut self, id: String, now_ms: i64, make: impl FnOnce() -> R) {
        match self.rows.get_mut(&id) {
            Some(child) => {
                if now_ms > child.record.last_ping_ms() {
                    child.record.set_last_ping_ms(now_ms);
                }
                if now_ms - child.written_ping_ms >= PING_WRITE_INTERVAL_MS {
                    child.written_ping_ms = now_ms;
                    self.dirty.insert(id);
                }
            }
            None => {
                let mut record = make();
                record.set_last_ping_ms(now_ms);
                self.rows.insert(
                    id.clone(),
                    Child {
                        record,
                        written_ping_ms: now_ms,
                    },
                );
                self.dirty.insert(id);
            }
        }
    }

    fn get(&self, id: &str) -> Option<R> {
        self.rows.get(id).map(|c| c.record.clone())
    }

    fn of_service(&self, service: &ServiceId) -> impl Iterator<Item = &R> + '_ {
        let prefix = format!("{}_", service.as_str());
        let service = service.clone();
        self.rows
            .range(prefix.clone()..)
            .take_while(move |(id, _)| id.starts_with(&prefix))
            .map(|(_, c)| &c.record)
            .filter(move |r| *r.service_id() == service)
    }

    fn take_dirty(&mut self, ops: &mut Vec<RowOp>) -> Result<Vec<String>> {
        let dirty = std::mem::take(&mut self.dirty);
        for id in &dirty {
            if let Some(child) = self.rows.get(id) {
                ops.push((
                    keys::child_key(self.kind, id),
                    Some(rows::encode(&child.record)?),
                ));
            }
        }
        Ok(dirty.into_iter().collect())
    }

    fn remove_older_than(&mut self, cutoff_ms: i64, ops: &mut Vec<RowOp>) {
        let expired: Vec<String> = self
            .rows
            .iter()
            .filter(|(_, c)| c.record.last_ping_ms() < cutoff_ms)
            .map(|(id, _)| id.clone())
            .collect();
        for id in expired {
            self.rows.remove(&id);
            self.dirty.remove(&id);
            ops.push((keys::child_key(self.kind, &id), None));
        }
    }
}

struct ServiceEntry {
    name: String,
    layers: BTreeSet<Layer>,
}

/// Every service, instance and endpoint seen, plus which rows still need writing.
pub(crate) struct TrafficCache {
    services: BTreeMap<ServiceId, ServiceEntry>,
    dirty_services: BTreeSet<(ServiceId, Layer)>,
    instances: Children<InstanceRecord>,
    endpoints: Children<EndpointRecord>,
}

/// Rows a flush took from the cache, to hand back if the flush fails.
pub(crate) struct TakenTraffic {
    services: Vec<(ServiceId, Layer)>,
    instances: Vec<String>,
    endpoints: Vec<String>,
}

impl TrafficCache {
    /// An empty cache.
    pub(crate) fn new() -> Self {
        TrafficCache {
            services: BTreeMap::new(),
            dirty_services: BTreeSet::new(),
            instances: Children::new(INSTANCE),
            endpoints: Children::new(ENDPOINT),
        }
    }

    /// A cache holding every entity in `store`.
    pub(crate) fn load(store: &dyn RowStore) -> Result<Self> {
        let mut cache = TrafficCache::new();
        let services = &mut cache.services;
        store.scan_prefix(&[keys::SERVICE], &mut |key, value| {
            let row: StoredService = rows::decode(key, value)?;
            // The id sits between the kind byte and the `0 | layer(4)` suffix.
            let id = key
                .get(1..key.len().saturating_sub(5))
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .unwrap_or_default();
            services
                .entry(ServiceId::from_raw(id))
                .or_insert_with(|| ServiceEntry {
                    name: row.name.clone(),
                    layers: BTreeSet::new(),
                })
                .layers
                .insert(row.layer);
            Ok(())
        })?;
        cache.instances.load(store)?;
        cache.endpoints.load(store)?;
        Ok(cache)
    }

    /// Records traffic seen at `now_ms`.
    pub(crate) fn record(&mut self, traffic: Vec<Traffic>, now_ms: i64) {
        for t in traffic {
            match t {
                Traffic::Service(s) => {
                    let id = s.id();
                    let entry = self
                        .services
                        .entry(id.clone())
                        .or_insert_with(|| ServiceEntry {
                            name: s.name.clone(),
                            layers: BTreeSet::new(),
                        });
                    if entry.layers.insert(s.layer) {
                        self.dirty_services.insert((id, s.layer));
                    }
                }
                Traffic::Instance(i) => {
                    let id = i.id();
                    self.instances
                        .seen(id.as_str().to_string(), now_ms, || InstanceRecord {
                            service_id: ServiceId::new(&i.service_name, true),
                            name: i.name,
                            id,
                            last_ping_ms: now_ms,
                        });
                }
                Traffic::Endpoint(e) => {
                    let id = e.id();
                    self.endpoints
                        .seen(id.as_str().to_string(), now_ms, || EndpointRecord {
                            service_id: ServiceId::new(&e.service_name, true),
                            name: e.name,
                            id,
                            last_ping_ms: now_ms,
                        });
                }
            }
        }
    }

    /// Appends writes for every dirty row to `ops` and clears the dirty marks.
    pub(crate) fn take_dirty(&mut self, ops: &mut Vec<RowOp>) -> Result<TakenTraffic> {
        let services: Vec<_> = std::mem::take(&mut self.dirty_services)
            .into_iter()
            .collect();
        for (id, layer) in &services {
            if let Some(entry) = self.services.get(id) {
                let row = StoredService {
                    name: entry.name.clone(),
                    layer: *layer,
                };
                ops.push((
                    keys::service_key(id.as_str(), layer.0),
                    Some(rows::encode(&row)?),
                ));
            }
        }
        Ok(TakenTraffic {
            services,
            instances: self.instances.take_dirty(ops)?,
            endpoints: self.endpoints.take_dirty(ops)?,
        })
    }

    /// Marks rows dirty again after a failed flush.
    pub(crate) fn restore_dirty(&mut self, taken: TakenTraffic) {
        self.dirty_services.extend(taken.services);
        self.instances.dirty.extend(taken.instances);
        self.endpoints.dirty.extend(taken.endpoints);
    }

    /// Drops instances and endpoints last seen before `cutoff_ms`; appends their deletions.
    pub(crate) fn remove_older_than(&mut self, cutoff_ms: i64, ops: &mut Vec<RowOp>) {
        self.instances.remove_older_than(cutoff_ms, ops);
        self.endpoints.remove_older_than(cutoff_ms, ops);
    }

    fn service_record(id: &ServiceId, entry: &ServiceEntry) -> ServiceRecord {
        ServiceRecord {
            id: id.clone(),
            name: entry.name.clone(),
            layers: entry.layers.iter().copied().collect(),
        }
    }

    /// Services (of `layer` if given), sorted by name.
    pub(crate) fn services(&self, layer: Option<Layer>) -> Vec<ServiceRecord> {
        let mut out: Vec<ServiceRecord> = self
            .services
            .iter()
            .filter(|(_, e)| layer.is_none_or(|l| e.layers.contains(&l)))
            .map(|(id, e)| Self::service_record(id, e))
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name).then_with(|| a.id.cmp(&b.id)));
        out
    }

    /// One service.
    pub(crate) fn service(&self, id: &ServiceId) -> Option<ServiceRecord> {
        self.services.get(id).map(|e| Self::service_record(id, e))
    }

    /// Instances of `service` seen at or after `since_ms`, sorted by name.
    pub(crate) fn instances(&self, service: &ServiceId, since_ms: i64) -> Vec<InstanceRecord> {
        let mut out: Vec<InstanceRecord> = self
            .instances
            .of_service(service)
            .filter(|r| r.last_ping_ms >= since_ms)
            .cloned()
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// One instance.
    pub(crate) fn instance(&self, id: &str) -> Option<InstanceRecord> {
        self.instances.get(id)
    }

    /// Endpoints of `service` whose name contains `keyword`, sorted by name, at most `limit`.
    pub(crate) fn endpoints(
        &self,
        service: &ServiceId,
        keyword: Option<&str>,
        limit: usize,
    ) -> Vec<EndpointRecord> {
        let keyword = keyword.unwrap_or("");
        let mut out: Vec<EndpointRecord> = self
            .endpoints
            .of_service(service)
            .filter(|r| r.name.contains(keyword))
            .cloned()
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out.truncate(limit);
        out
    }

    /// One endpoint.
    pub(crate) fn endpoint(&self, id: &str) -> Option<EndpointRecord> {
        self.endpoints.get(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use skylark_core::traffic::InstanceTraffic;

    fn instance(name: &str) -> Traffic {
        Traffic::Instance(InstanceTraffic {
            service_name: "svc".into(),
            name: name.into(),
            layer: Layer::WECHAT_MINI_PROGRAM,
        })
    }

    #[test]
    fn pings_within_a_minute_are_not_rewritten() {
        let mut cache = TrafficCache::new();
        let mut ops = Vec::new();
        cache.record(vec![instance("a")], 1_000);
        cache.take_dirty(&mut ops).unwrap();
        assert_eq!(ops.len(), 1, "a new instance is written");

        ops.clear();
        cache.record(vec![instance("a")], 50_000);
        cache.take_dirty(&mut ops).unwrap();
        assert!(ops.is_empty(), "a ping 49 s later is only kept in memory");
        let svc = ServiceId::new("svc", true);
        assert_eq!(cache.instances(&svc, 0)[0].last_ping_ms, 50_000);

        cache.record(vec![instance("a")], 61_000);
        cache.take_dirty(&mut ops).unwrap();
        assert_eq!(
            ops.len(),
            1,
            "a ping a minute after the last write is written"
        );
    }
}
