//! Skylark's storage: where metric rows, entities (and later logs and segments) are kept.
//!
//! Everything the rules produce goes through [`Storage`]; queries read through it too, so a second
//! backend (a distributed store) can be added without touching rules or queries. [`SledStorage`]
//! is the embedded default.
#![warn(missing_docs, unreachable_pub)]

mod engine;
mod error;
mod keys;
mod mem_storage;
mod model;
mod rows;
mod sled_storage;
#[cfg(feature = "testsuite")]
mod testsuite;
mod traffic;

pub use error::{Error, Result};
pub use mem_storage::MemStorage;
pub use model::{EndpointRecord, InstanceRecord, RetentionPolicy, ServiceRecord};
pub use sled_storage::{SledConfig, SledStorage};
#[cfg(feature = "testsuite")]
pub use testsuite::{run_conformance_suite, ConformanceCheck, CONFORMANCE_CHECKS};

use skylark_core::traffic::Traffic;
use skylark_core::{
    EndpointId, InstanceId, Layer, MetricDefinition, MetricEmission, MetricValue, ServiceId,
    TimeBucket,
};

/// The storage contract. Implementations aggregate writes in memory and persist them in batches
/// on [`Storage::flush`]; reads see both persisted and not-yet-flushed data.
///
/// Metric rows are keyed by (metric name, entity id, bucket) and merged with OAP's storage
/// functions (`MetricState::combine`) within and across flushes. Nothing is persisted until
/// `flush` (implementations also flush when dropped), so the caller decides the persistence
/// period (OAP: 25 s).
pub trait Storage: Send + Sync + 'static {
    /// Adds metric emissions to the in-memory aggregation (minute rows plus hour and day rollups).
    fn write_metrics(&self, emissions: Vec<MetricEmission>) -> Result<()>;

    /// Records that entities were seen at `now_ms` (service/instance/endpoint registration).
    /// Instances and endpoints keep the latest ping; services keep every layer they were seen in.
    fn write_traffic(&self, traffic: Vec<Traffic>, now_ms: i64) -> Result<()>;

    /// Persists everything aggregated so far (one batch), merging with stored rows.
    fn flush(&self) -> Result<()>;

    /// Metric rows (minute, hour and day each count) waiting for the next flush; callers may
    /// flush early when this grows large.
    fn pending_rows(&self) -> usize {
        0
    }

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

    /// Removes metric rows (minute, hour and day) whose bucket lies wholly before
    /// `now_ms - metrics_days`, and instances/endpoints last seen before then (services are
    /// kept); returns how many rows and entities were removed.
    fn remove_expired(&self, policy: &RetentionPolicy, now_ms: i64) -> Result<u64>;
}

/// Implements [`Storage`] for a type with an `engine` field by forwarding every method.
macro_rules! delegate_storage {
    ($ty:ty) => {
        impl $crate::Storage for $ty {
            fn write_metrics(
                &self,
                emissions: Vec<skylark_core::MetricEmission>,
            ) -> $crate::Result<()> {
                self.engine.write_metrics(emissions)
            }
            fn write_traffic(
                &self,
                traffic: Vec<skylark_core::traffic::Traffic>,
                now_ms: i64,
            ) -> $crate::Result<()> {
                self.engine.write_traffic(traffic, now_ms)
            }
            fn flush(&self) -> $crate::Result<()> {
                self.engine.flush()
            }
            fn pending_rows(&self) -> usize {
                self.engine.pending_rows()
            }
            fn read_metric(
                &self,
                metric: &skylark_core::MetricDefinition,
                entity_id: &str,
                buckets: &[skylark_core::TimeBucket],
            ) -> $crate::Result<Vec<Option<skylark_core::MetricValue>>> {
                self.engine.read_metric(metric, entity_id, buckets)
            }
            fn metric_entities(
                &self,
                metric: &skylark_core::MetricDefinition,
                buckets: &[skylark_core::TimeBucket],
            ) -> $crate::Result<Vec<String>> {
                self.engine.metric_entities(metric, buckets)
            }
            fn list_services(
                &self,
                layer: Option<skylark_core::Layer>,
            ) -> $crate::Result<Vec<$crate::ServiceRecord>> {
                self.engine.list_services(layer)
            }
            fn get_service(
                &self,
                id: &skylark_core::ServiceId,
            ) -> $crate::Result<Option<$crate::ServiceRecord>> {
                self.engine.get_service(id)
            }
            fn list_instances(
                &self,
                service: &skylark_core::ServiceId,
                since_ms: i64,
            ) -> $crate::Result<Vec<$crate::InstanceRecord>> {
                self.engine.list_instances(service, since_ms)
            }
            fn get_instance(
                &self,
                id: &skylark_core::InstanceId,
            ) -> $crate::Result<Option<$crate::InstanceRecord>> {
                self.engine.get_instance(id)
            }
            fn find_endpoints(
                &self,
                service: &skylark_core::ServiceId,
                keyword: Option<&str>,
                limit: usize,
            ) -> $crate::Result<Vec<$crate::EndpointRecord>> {
                self.engine.find_endpoints(service, keyword, limit)
            }
            fn get_endpoint(
                &self,
                id: &skylark_core::EndpointId,
            ) -> $crate::Result<Option<$crate::EndpointRecord>> {
                self.engine.get_endpoint(id)
            }
            fn remove_expired(
                &self,
                policy: &$crate::RetentionPolicy,
                now_ms: i64,
            ) -> $crate::Result<u64> {
                self.engine.remove_expired(policy, now_ms)
            }
        }
    };
}
pub(crate) use delegate_storage;
