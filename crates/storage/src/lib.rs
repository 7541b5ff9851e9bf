//! Skylark's storage: where metric rows, entities (and later logs and segments) are kept.
//!
//! Everything the rules produce goes through [`Storage`]; queries read through it too, so a second
//! backend (a distributed store) can be added without touching rules or queries. [`SledStorage`]
//! is the embedded default.
#![warn(missing_docs, unreachable_pub)]

mod error;
mod model;

pub use error::{Error, Result};
pub use model::{EndpointRecord, InstanceRecord, RetentionPolicy, ServiceRecord};

use skylark_core::traffic::Traffic;
use skylark_core::{
    EndpointId, InstanceId, Layer, MetricDefinition, MetricEmission, MetricValue, ServiceId,
    TimeBucket,
};

/// The storage contract. Implementations aggregate writes in memory and persist them in batches
/// on [`Storage::flush`]; reads see both persisted and not-yet-flushed data.
pub trait Storage: Send + Sync + 'static {
    /// Adds metric emissions to the in-memory aggregation (minute rows plus hour and day rollups).
    fn write_metrics(&self, emissions: Vec<MetricEmission>) -> Result<()>;

    /// Records that entities were seen now (service/instance/endpoint registration).
    fn write_traffic(&self, traffic: Vec<Traffic>, now_ms: i64) -> Result<()>;

    /// Persists everything aggregated so far (one batch), merging with stored rows.
    fn flush(&self) -> Result<()>;

    /// Values of `metric` for entity `entity_id` in each of `buckets` (all of one step), `None`
    /// where no row exists.
    fn read_metric(
        &self,
        metric: &MetricDefinition,
        entity_id: &str,
        buckets: &[TimeBucket],
    ) -> Result<Vec<Option<MetricValue>>>;

    /// Entity ids that have at least one row of `metric` in `buckets` (for top-n style queries).
    fn metric_entities(
        &self,
        metric: &MetricDefinition,
        buckets: &[TimeBucket],
    ) -> Result<Vec<String>>;

    /// Services, optionally only those seen in `layer`.
    fn list_services(&self, layer: Option<Layer>) -> Result<Vec<ServiceRecord>>;

    /// One service by id.
    fn get_service(&self, id: &ServiceId) -> Result<Option<ServiceRecord>>;

    /// Instances of a service last seen at or after `since_ms`.
    fn list_instances(&self, service: &ServiceId, since_ms: i64) -> Result<Vec<InstanceRecord>>;

    /// One instance by id.
    fn get_instance(&self, id: &InstanceId) -> Result<Option<InstanceRecord>>;

    /// Endpoints of a service whose name contains `keyword` (all when `None` or empty), at most
    /// `limit`, sorted by name.
    fn find_endpoints(
        &self,
        service: &ServiceId,
        keyword: Option<&str>,
        limit: usize,
    ) -> Result<Vec<EndpointRecord>>;

    /// One endpoint by id.
    fn get_endpoint(&self, id: &EndpointId) -> Result<Option<EndpointRecord>>;

    /// Removes metric rows older than the retention policy allows, as of `now_ms`; returns how
    /// many rows were removed.
    fn remove_expired(&self, policy: &RetentionPolicy, now_ms: i64) -> Result<u64>;
}
