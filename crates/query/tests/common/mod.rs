//! An in-memory fake of `skylark_storage::Storage` for query tests.
#![allow(dead_code)]

use skylark_core::traffic::Traffic;
use skylark_core::{
    EndpointId, InstanceId, Labels, Layer, MetricCatalog, MetricDefinition, MetricEmission,
    MetricFunction, MetricValue, Scope, ServiceId, Step, TimeBucket,
};
use skylark_query::{QueryContext, SkylarkSchema};
use skylark_storage::{EndpointRecord, InstanceRecord, RetentionPolicy, ServiceRecord, Storage};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

#[derive(Default)]
pub struct FakeStorage {
    pub rows: Mutex<HashMap<(String, String, i64), MetricValue>>,
    pub services: Mutex<Vec<ServiceRecord>>,
    pub instances: Mutex<Vec<InstanceRecord>>,
    pub endpoints: Mutex<Vec<EndpointRecord>>,
    pub fail_reads: bool,
}

impl FakeStorage {
    pub fn put(&self, metric: &str, entity_id: &str, minute: i64, v: MetricValue) {
        self.rows
            .lock()
            .unwrap()
            .insert((metric.to_string(), entity_id.to_string(), minute), v);
    }

    pub fn add_service(&self, name: &str, layers: &[Layer]) {
        self.services.lock().unwrap().push(ServiceRecord {
            id: ServiceId::new(name, true),
            name: name.to_string(),
            layers: layers.to_vec(),
        });
    }

    pub fn add_instance(&self, service: &str, name: &str, last_ping_ms: i64) {
        let sid = ServiceId::new(service, true);
        self.instances.lock().unwrap().push(InstanceRecord {
            id: InstanceId::new(&sid, name),
            name: name.to_string(),
            service_id: sid,
            last_ping_ms,
        });
    }

    pub fn add_endpoint(&self, service: &str, name: &str, last_ping_ms: i64) {
        let sid = ServiceId::new(service, true);
        self.endpoints.lock().unwrap().push(EndpointRecord {
            id: EndpointId::new(&sid, name),
            name: name.to_string(),
            service_id: sid,
            last_ping_ms,
        });
    }
}

fn io_error() -> skylark_storage::Error {
    skylark_storage::Error::Encode(serde_json::Error::io(std::io::Error::other("fake")))
}

impl Storage for FakeStorage {
    fn write_metrics(&self, _: Vec<MetricEmission>) -> skylark_storage::Result<()> {
        Ok(())
    }
    fn write_traffic(&self, _: Vec<Traffic>, _: i64) -> skylark_storage::Result<()> {
        Ok(())
    }
    fn flush(&self) -> skylark_storage::Result<()> {
        Ok(())
    }
    fn read_metric(
        &self,
        metric: &MetricDefinition,
        entity_id: &str,
        buckets: &[TimeBucket],
    ) -> skylark_storage::Result<Vec<Option<MetricValue>>> {
        if self.fail_reads {
            return Err(io_error());
        }
        let rows = self.rows.lock().unwrap();
        Ok(buckets
            .iter()
            .map(|b| {
                rows.get(&(metric.name.clone(), entity_id.to_string(), b.value))
                    .cloned()
            })
            .collect())
    }
    fn metric_entities(
        &self,
        metric: &MetricDefinition,
        buckets: &[TimeBucket],
    ) -> skylark_storage::Result<Vec<String>> {
        let rows = self.rows.lock().unwrap();
        let mut ids: Vec<String> = rows
            .keys()
            .filter(|(m, _, b)| *m == metric.name && buckets.iter().any(|x| x.value == *b))
            .map(|(_, e, _)| e.clone())
            .collect();
        ids.sort();
        ids.dedup();
        Ok(ids)
    }
    fn list_services(&self, layer: Option<Layer>) -> skylark_storage::Result<Vec<ServiceRecord>> {
        Ok(self
            .services
            .lock()
            .unwrap()
            .iter()
            .filter(|s| layer.is_none_or(|l| s.layers.contains(&l)))
            .cloned()
            .collect())
    }
    fn get_service(&self, id: &ServiceId) -> skylark_storage::Result<Option<ServiceRecord>> {
        Ok(self
            .services
            .lock()
            .unwrap()
            .iter()
            .find(|s| &s.id == id)
            .cloned())
    }
    fn list_instances(
        &self,
        service: &ServiceId,
        since_ms: i64,
    ) -> skylark_storage::Result<Vec<InstanceRecord>> {
        Ok(self
            .instances
            .lock()
            .unwrap()
            .iter()
            .filter(|i| &i.service_id == service && i.last_ping_ms >= since_ms)
            .cloned()
            .collect())
    }
    fn get_instance(&self, id: &InstanceId) -> skylark_storage::Result<Option<InstanceRecord>> {
        Ok(self
            .instances
            .lock()
            .unwrap()
            .iter()
            .find(|i| &i.id == id)
            .cloned())
    }
    fn find_endpoints(
        &self,
        service: &ServiceId,
        keyword: Option<&str>,
        limit: usize,
    ) -> skylark_storage::Result<Vec<EndpointRecord>> {
        let mut v: Vec<EndpointRecord> = self
            .endpoints
            .lock()
            .unwrap()
            .iter()
            .filter(|e| &e.service_id == service)
            .filter(|e| keyword.is_none_or(|k| k.is_empty() || e.name.contains(k)))
            .cloned()
            .collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v.truncate(limit);
        Ok(v)
    }
    fn get_endpoint(&self, id: &EndpointId) -> skylark_storage::Result<Option<EndpointRecord>> {
        Ok(self
            .endpoints
            .lock()
            .unwrap()
            .iter()
            .find(|e| &e.id == id)
            .cloned())
    }
    fn remove_expired(&self, _: &RetentionPolicy, _: i64) -> skylark_storage::Result<u64> {
        Ok(0)
    }
    fn write_logs(&self, _: Vec<skylark_core::LogRecord>) -> skylark_storage::Result<()> {
        Ok(())
    }
    fn query_logs(
        &self,
        _: &skylark_storage::LogQuery,
    ) -> skylark_storage::Result<Vec<skylark_storage::StoredLog>> {
        Ok(Vec::new())
    }
    fn log_tag_keys(&self, _: i64, _: i64) -> skylark_storage::Result<Vec<String>> {
        Ok(Vec::new())
    }
    fn log_tag_values(&self, _: &str, _: i64, _: i64) -> skylark_storage::Result<Vec<String>> {
        Ok(Vec::new())
    }
    fn write_segments(&self, _: Vec<skylark_core::SegmentRecord>) -> skylark_storage::Result<()> {
        Ok(())
    }
    fn query_segments(
        &self,
        _: &skylark_storage::TraceQuery,
    ) -> skylark_storage::Result<Vec<skylark_core::SegmentRecord>> {
        Ok(Vec::new())
    }
    fn get_trace(&self, _: &str) -> skylark_storage::Result<Vec<skylark_core::SegmentRecord>> {
        Ok(Vec::new())
    }
    fn trace_tag_keys(&self, _: i64, _: i64) -> skylark_storage::Result<Vec<String>> {
        Ok(Vec::new())
    }
    fn trace_tag_values(&self, _: &str, _: i64, _: i64) -> skylark_storage::Result<Vec<String>> {
        Ok(Vec::new())
    }
}

pub fn def(name: &str, scope: Scope, function: MetricFunction) -> MetricDefinition {
    MetricDefinition {
        name: name.to_string(),
        scope,
        function,
        percentile_ranks: if matches!(
            function,
            MetricFunction::AvgHistogramPercentile | MetricFunction::SumHistogramPercentile
        ) {
            vec![50, 75, 90, 95, 99]
        } else {
            Vec::new()
        },
    }
}

/// The catalog of the 32 mini-program metrics (oap-semantics §7), built from names.
pub fn mini_program_catalog() -> MetricCatalog {
    let catalog = MetricCatalog::new();
    for platform in ["wechat", "alipay"] {
        let mut names = vec![
            "app_launch_duration",
            "first_render_duration",
            "request_cpm",
            "request_count",
            "request_success_count",
            "request_duration_percentile",
            "error_count",
        ];
        if platform == "wechat" {
            names.extend(["route_duration", "script_duration", "package_load_duration"]);
        }
        for n in &names {
            // As the shipped rules store them (otel-rules/miniprogram).
            let function = if n.ends_with("percentile") {
                MetricFunction::SumHistogramPercentile
            } else if *n == "error_count" {
                MetricFunction::SumLabeled
            } else if *n == "request_cpm" {
                MetricFunction::SumPerMin
            } else if n.ends_with("_count") {
                MetricFunction::Sum
            } else {
                MetricFunction::Avg
            };
            catalog
                .register(def(
                    &format!("meter_{platform}_mp_{n}"),
                    Scope::Service,
                    function,
                ))
                .unwrap();
            if *n == "error_count" {
                continue;
            }
            catalog
                .register(def(
                    &format!("meter_{platform}_mp_instance_{n}"),
                    Scope::ServiceInstance,
                    function,
                ))
                .unwrap();
            if [
                "app_launch_duration",
                "first_render_duration",
                "request_cpm",
                "request_count",
                "request_success_count",
                "request_duration_percentile",
            ]
            .contains(n)
            {
                catalog
                    .register(def(
                        &format!("meter_{platform}_mp_endpoint_{n}"),
                        Scope::Endpoint,
                        function,
                    ))
                    .unwrap();
            }
        }
    }
    // What traced requests add (the server registers these for segments).
    for (name, function) in [
        ("service_relation_client_cpm", MetricFunction::SumPerMin),
        ("service_relation_client_resp_time", MetricFunction::Avg),
        ("service_relation_client_call_sla", MetricFunction::Percent),
    ] {
        catalog
            .register(def(name, Scope::ServiceRelation, function))
            .unwrap();
    }
    catalog
}

pub fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

pub fn minute(text: &str) -> TimeBucket {
    TimeBucket::parse(text, Step::Minute).unwrap()
}

pub fn context(storage: Arc<FakeStorage>) -> QueryContext {
    QueryContext {
        storage,
        catalog: Arc::new(mini_program_catalog()),
        version: "10.3.0".to_string(),
        metrics_ttl_days: 7,
        records_ttl_days: 3,
        mqe_limits: Default::default(),
    }
}

pub fn schema(storage: Arc<FakeStorage>) -> SkylarkSchema {
    skylark_query::schema(context(storage))
}
