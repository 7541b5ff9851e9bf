//! Entity traffic: what this node saw since its last flush, upserted with the metric rows.
//!
//! Rules report traffic on every evaluation; a row is only rewritten when it is new to this
//! node or its ping moved by a minute, as in the sled backend.
use skylark_core::traffic::Traffic;
use skylark_core::{Layer, ServiceId};
use skylark_storage::{EndpointRecord, InstanceRecord, ServiceRecord};
use std::collections::{BTreeMap, BTreeSet, HashMap};

const PING_WRITE_INTERVAL_MS: i64 = 60_000;
/// Kinds of child entities, which share one id format.
pub(crate) const INSTANCE: u8 = b'i';
pub(crate) const ENDPOINT: u8 = b'e';

/// Rows waiting for the next flush.
#[derive(Default, Clone)]
pub(crate) struct DirtyTraffic {
    pub(crate) services: BTreeMap<(String, i32), String>,
    pub(crate) instances: BTreeMap<String, InstanceRecord>,
    pub(crate) endpoints: BTreeMap<String, EndpointRecord>,
}

impl DirtyTraffic {
    pub(crate) fn is_empty(&self) -> bool {
        self.services.is_empty() && self.instances.is_empty() && self.endpoints.is_empty()
    }

    /// Puts back rows a failed flush took, under anything newer.
    pub(crate) fn restore(&mut self, older: DirtyTraffic) {
        for (k, v) in older.services {
            self.services.entry(k).or_insert(v);
        }
        for (k, v) in older.instances {
            self.instances.entry(k).or_insert(v);
        }
        for (k, v) in older.endpoints {
            self.endpoints.entry(k).or_insert(v);
        }
    }
}

/// This node's view of the traffic it wrote.
#[derive(Default)]
pub(crate) struct LocalTraffic {
    written_services: BTreeSet<(String, i32)>,
    /// Per ([`INSTANCE`] or [`ENDPOINT`], id) (the two share an id format): (ping last handed
    /// to a flush, latest ping seen here).
    written_pings: HashMap<(u8, String), (i64, i64)>,
    pub(crate) dirty: DirtyTraffic,
}

impl LocalTraffic {
    pub(crate) fn record(&mut self, traffic: Vec<Traffic>, now_ms: i64) {
        for t in traffic {
            match t {
                Traffic::Service(s) => {
                    let key = (s.id().as_str().to_string(), s.layer.0);
                    if self.written_services.insert(key.clone()) {
                        self.dirty.services.insert(key, s.name);
                    }
                }
                Traffic::Instance(i) => {
                    let id = i.id();
                    if self.due(INSTANCE, id.as_str(), now_ms) {
                        self.dirty.instances.insert(
                            id.as_str().to_string(),
                            InstanceRecord {
                                service_id: ServiceId::new(&i.service_name, true),
                                name: i.name,
                                id,
                                last_ping_ms: now_ms,
                            },
                        );
                    }
                }
                Traffic::Endpoint(e) => {
                    let id = e.id();
                    if self.due(ENDPOINT, id.as_str(), now_ms) {
                        self.dirty.endpoints.insert(
                            id.as_str().to_string(),
                            EndpointRecord {
                                service_id: ServiceId::new(&e.service_name, true),
                                name: e.name,
                                id,
                                last_ping_ms: now_ms,
                            },
                        );
                    }
                }
            }
        }
    }

    fn due(&mut self, kind: u8, id: &str, now_ms: i64) -> bool {
        match self.written_pings.get_mut(&(kind, id.to_string())) {
            Some((written, latest)) => {
                *latest = now_ms.max(*latest);
                if now_ms - *written < PING_WRITE_INTERVAL_MS {
                    return false;
                }
                *written = now_ms.max(*written);
                true
            }
            None => {
                self.written_pings
                    .insert((kind, id.to_string()), (now_ms, now_ms));
                true
            }
        }
    }

    /// The latest ping this node saw of an instance or endpoint (exact between writes).
    pub(crate) fn latest_ping(&self, kind: u8, id: &str) -> Option<i64> {
        self.written_pings
            .get(&(kind, id.to_string()))
            .map(|(_, latest)| *latest)
    }

    /// Forgets what retention removed, so it is written again when seen again.
    pub(crate) fn forget_older_than(&mut self, cutoff_ms: i64) {
        self.written_pings
            .retain(|_, (_, latest)| *latest >= cutoff_ms);
    }

    /// Services not yet stored, merged into `stored` (read-your-writes on this node).
    pub(crate) fn overlay_services(&self, stored: &mut Vec<ServiceRecord>, layer: Option<Layer>) {
        for ((id, layer_code), name) in &self.dirty.services {
            let layer_value = Layer(*layer_code);
            match stored.iter_mut().find(|s| s.id.as_str() == id) {
                Some(s) if !s.layers.contains(&layer_value) => {
                    s.layers.push(layer_value);
                    s.layers.sort();
                }
                Some(_) => {}
                None if layer.is_none_or(|l| l == layer_value) => stored.push(ServiceRecord {
                    id: ServiceId::from_raw(id.clone()),
                    name: name.clone(),
                    layers: vec![layer_value],
                }),
                None => {}
            }
        }
    }
}
