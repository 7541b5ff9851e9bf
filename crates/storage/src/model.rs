use skylark_core::{EndpointId, InstanceId, Layer, ServiceId};

/// A registered service with every layer it was seen in.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ServiceRecord {
    /// `b64(name).1`.
    pub id: ServiceId,
    /// The service name.
    pub name: String,
    /// Layers, ascending by value.
    pub layers: Vec<Layer>,
}

/// A registered instance.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct InstanceRecord {
    /// `serviceId_b64(name)`.
    pub id: InstanceId,
    /// Instance name.
    pub name: String,
    /// Owning service.
    pub service_id: ServiceId,
    /// Last time (epoch ms) it was seen.
    pub last_ping_ms: i64,
}

/// A registered endpoint.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct EndpointRecord {
    /// `serviceId_b64(name)`.
    pub id: EndpointId,
    /// Endpoint name.
    pub name: String,
    /// Owning service.
    pub service_id: ServiceId,
    /// Last time (epoch ms) it was seen.
    pub last_ping_ms: i64,
}

/// How long rows are kept, in days (OAP's `metricsDataTTL`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionPolicy {
    /// Metric rows (minute, hour and day), in days.
    pub metrics_days: u32,
    /// Records (logs, segments), in days.
    pub records_days: u32,
}

impl Default for RetentionPolicy {
    fn default() -> Self {
        RetentionPolicy {
            metrics_days: 7,
            records_days: 3,
        }
    }
}
