//! Entity registrations: a rule saw this service/instance/endpoint in this minute.
use crate::{EndpointId, InstanceId, Layer, ServiceId};

/// A service seen in a layer (one row per (service, layer), as OAP's `ServiceTraffic`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct ServiceTraffic {
    /// Service name.
    pub name: String,
    /// Layer it was seen in.
    pub layer: Layer,
}

impl ServiceTraffic {
    /// The exposed id (`b64(name).1`).
    pub fn id(&self) -> ServiceId {
        ServiceId::new(&self.name, true)
    }
}

/// An instance seen for a service (OAP's `InstanceTraffic`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct InstanceTraffic {
    /// Service name.
    pub service_name: String,
    /// Instance name.
    pub name: String,
    /// Layer of the rule that saw it.
    pub layer: Layer,
}

impl InstanceTraffic {
    /// The instance id.
    pub fn id(&self) -> InstanceId {
        InstanceId::new(&ServiceId::new(&self.service_name, true), &self.name)
    }
}

/// An endpoint seen for a service (OAP's `EndpointTraffic`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct EndpointTraffic {
    /// Service name.
    pub service_name: String,
    /// Endpoint name.
    pub name: String,
    /// Layer of the rule that saw it.
    pub layer: Layer,
}

impl EndpointTraffic {
    /// The endpoint id.
    pub fn id(&self) -> EndpointId {
        EndpointId::new(&ServiceId::new(&self.service_name, true), &self.name)
    }
}

/// Any registration, as produced by rules.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Traffic {
    /// A service.
    Service(ServiceTraffic),
    /// An instance.
    Instance(InstanceTraffic),
    /// An endpoint.
    Endpoint(EndpointTraffic),
}
