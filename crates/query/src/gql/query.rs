//! Root resolvers: bootstrap, metadata and metrics (MQE).

use super::alarm::AlarmQueryRoot;
use super::logs::LogQueryRoot;
use super::rum::RumQueryRoot;
use super::topology::TopologyQueryRoot;
use super::traces::TraceQueryRoot;
use super::types::*;
use super::ui::{UiMutation, UiQuery};
use crate::mqe;
use crate::{Error, QueryContext, QueryDuration};
use async_graphql::{Context, MergedObject, Object, Result, ID};
use skylark_core::{EndpointId, InstanceId, Layer, MetricFunction, Scope, ServiceId};
use skylark_storage::{InstanceRecord, ServiceRecord};

pub(crate) fn qctx<'a>(ctx: &Context<'a>) -> Result<&'a QueryContext> {
    ctx.data::<QueryContext>()
}

/// Empty strings from clients mean "not given".
pub(crate) fn given(s: Option<String>) -> Option<String> {
    s.filter(|s| !s.is_empty())
}

pub(crate) fn duration(d: &DurationInput) -> std::result::Result<QueryDuration, Error> {
    QueryDuration::parse(&d.start, &d.end, d.step.into())
}

pub(crate) fn service_object(r: ServiceRecord) -> ServiceObject {
    let (group, short_name) = match r.name.split_once("::") {
        Some((g, s)) => (g.to_string(), s.to_string()),
        None => (String::new(), r.name.clone()),
    };
    let normal = r.id.as_str().rsplit_once('.').map(|(_, n)| n == "1");
    ServiceObject {
        id: ID(r.id.into_string()),
        name: r.name,
        group,
        short_name,
        layers: r.layers.iter().map(|l| l.name().to_string()).collect(),
        normal,
    }
}

fn instance_object(r: InstanceRecord) -> ServiceInstanceObject {
    let id = r.id.into_string();
    ServiceInstanceObject {
        id: ID(id.clone()),
        name: r.name,
        attributes: Vec::new(),
        language: LanguageEnum::Unknown,
        instance_uuid: id,
    }
}

/// `+0800` style offset of the server's local time zone (Java `ZZZZZZ` without colon).
pub(crate) fn timezone_text(offset_seconds: i32) -> String {
    let sign = if offset_seconds < 0 { '-' } else { '+' };
    let abs = offset_seconds.unsigned_abs();
    format!("{sign}{:02}{:02}", abs / 3600, abs % 3600 / 60)
}

fn metrics_type(f: MetricFunction) -> MetricsTypeEnum {
    match f {
        MetricFunction::AvgHistogram | MetricFunction::SumHistogram => MetricsTypeEnum::Heatmap,
        f if f.is_labeled() => MetricsTypeEnum::LabeledValue,
        _ => MetricsTypeEnum::RegularValue,
    }
}

fn catalog_name(scope: Scope) -> &'static str {
    match scope {
        Scope::All => "ALL",
        Scope::Service => "SERVICE",
        Scope::ServiceInstance => "SERVICE_INSTANCE",
        Scope::Endpoint => "ENDPOINT",
        Scope::Process => "PROCESS",
        Scope::ServiceRelation => "SERVICE_RELATION",
        Scope::ServiceInstanceRelation => "SERVICE_INSTANCE_RELATION",
        Scope::EndpointRelation => "ENDPOINT_RELATION",
        Scope::ProcessRelation => "PROCESS_RELATION",
    }
}

/// `version`, health, time, TTL and capability probes.
#[derive(Default)]
pub struct BootstrapQuery;

#[Object]
impl BootstrapQuery {
    /// OAP version text (`10.3.0` style; swctl parses `major.minor`).
    async fn version(&self, ctx: &Context<'_>) -> Result<Option<String>> {
        Ok(Some(qctx(ctx)?.version.clone()))
    }

    /// Health of the query side: 0 is healthy.
    async fn check_health(&self) -> HealthStatus {
        HealthStatus {
            score: 0,
            details: None,
        }
    }

    /// Server time zone and clock, used by UIs to build durations.
    async fn get_time_info(&self) -> Option<TimeInfo> {
        let now = chrono::Local::now();
        Some(TimeInfo {
            timezone: Some(timezone_text(now.offset().local_minus_utc())),
            current_timestamp: Some(Long(now.timestamp_millis())),
        })
    }

    /// Record TTLs in days (no cold stage).
    #[graphql(name = "getRecordsTTL")]
    async fn get_records_ttl(&self, ctx: &Context<'_>) -> Result<Option<RecordsTtl>> {
        let d = qctx(ctx)?.records_ttl_days as i32;
        Ok(Some(RecordsTtl {
            normal: d,
            trace: d,
            zipkin_trace: d,
            log: d,
            browser_error_log: d,
            cold_normal: -1,
            cold_trace: -1,
            cold_zipkin_trace: -1,
            cold_log: -1,
            cold_browser_error_log: -1,
        }))
    }

    /// Metric TTLs in days (no cold stage).
    #[graphql(name = "getMetricsTTL")]
    async fn get_metrics_ttl(&self, ctx: &Context<'_>) -> Result<Option<MetricsTtl>> {
        let d = qctx(ctx)?.metrics_ttl_days as i32;
        Ok(Some(MetricsTtl {
            metadata: d,
            minute: d,
            hour: d,
            day: d,
            cold_minute: -1,
            cold_hour: -1,
            cold_day: -1,
        }))
    }

    /// Layer hierarchy levels; none are defined.
    async fn list_layer_levels(&self) -> Vec<LayerLevel> {
        Vec::new()
    }
}

/// Services, instances and endpoints.
#[derive(Default)]
pub struct MetadataQuery;

#[Object]
impl MetadataQuery {
    /// Layers that have at least one service.
    async fn list_layers(&self, ctx: &Context<'_>) -> Result<Vec<String>> {
        let services = qctx(ctx)?
            .storage
            .list_services(None)
            .map_err(Error::from)?;
        let mut layers: Vec<Layer> = services.iter().flat_map(|s| s.layers.clone()).collect();
        layers.sort();
        layers.dedup();
        let mut names: Vec<String> = layers.into_iter().map(|l| l.name().to_string()).collect();
        names.sort();
        Ok(names)
    }

    /// Services of a layer (all when the layer is null or empty).
    async fn list_services(
        &self,
        ctx: &Context<'_>,
        layer: Option<String>,
    ) -> Result<Vec<ServiceObject>> {
        let layer = match given(layer) {
            None => None,
            Some(name) => match Layer::from_name(&name) {
                Some(l) => Some(l),
                None => return Ok(Vec::new()),
            },
        };
        let services = qctx(ctx)?
            .storage
            .list_services(layer)
            .map_err(Error::from)?;
        Ok(services.into_iter().map(service_object).collect())
    }

    /// One service by id.
    async fn get_service(
        &self,
        ctx: &Context<'_>,
        service_id: String,
    ) -> Result<Option<ServiceObject>> {
        let found = qctx(ctx)?
            .storage
            .get_service(&ServiceId::from_raw(service_id))
            .map_err(Error::from)?;
        Ok(found.map(service_object))
    }

    /// A normal service by name (id `BASE64(name).1`).
    async fn find_service(
        &self,
        ctx: &Context<'_>,
        service_name: String,
    ) -> Result<Option<ServiceObject>> {
        if service_name.is_empty() {
            return Ok(None);
        }
        let found = qctx(ctx)?
            .storage
            .get_service(&ServiceId::new(&service_name, true))
            .map_err(Error::from)?;
        Ok(found.map(service_object))
    }

    /// Every service, optionally of one group (legacy metadata.graphqls field).
    async fn get_all_services(
        &self,
        ctx: &Context<'_>,
        duration: DurationInput,
        group: Option<String>,
    ) -> Result<Vec<ServiceObject>> {
        self::duration(&duration)?;
        let services = qctx(ctx)?
            .storage
            .list_services(None)
            .map_err(Error::from)?;
        let group = given(group);
        Ok(services
            .into_iter()
            .map(service_object)
            .filter(|s| group.as_ref().is_none_or(|g| &s.group == g))
            .collect())
    }

    /// Instances of a service seen since the duration's start.
    async fn list_instances(
        &self,
        ctx: &Context<'_>,
        duration: DurationInput,
        service_id: ID,
    ) -> Result<Vec<ServiceInstanceObject>> {
        let d = self::duration(&duration)?;
        if service_id.is_empty() {
            return Ok(Vec::new());
        }
        let list = qctx(ctx)?
            .storage
            .list_instances(&ServiceId::from_raw(service_id.0), d.start_ms())
            .map_err(Error::from)?;
        Ok(list.into_iter().map(instance_object).collect())
    }

    /// One instance by id.
    async fn get_instance(
        &self,
        ctx: &Context<'_>,
        instance_id: String,
    ) -> Result<Option<ServiceInstanceObject>> {
        let found = qctx(ctx)?
            .storage
            .get_instance(&InstanceId::from_raw(instance_id))
            .map_err(Error::from)?;
        Ok(found.map(instance_object))
    }

    /// Endpoints of a service whose name contains `keyword`, at most `limit`.
    async fn find_endpoint(
        &self,
        ctx: &Context<'_>,
        keyword: Option<String>,
        service_id: ID,
        limit: i32,
        duration: Option<DurationInput>,
    ) -> Result<Vec<EndpointObject>> {
        let since = match &duration {
            Some(d) => Some(self::duration(d)?.start_ms()),
            None => None,
        };
        let limit = limit.max(0) as usize;
        if service_id.is_empty() || limit == 0 {
            return Ok(Vec::new());
        }
        let keyword = given(keyword);
        // With a duration, filter on last ping first and cut to `limit` afterwards.
        let fetch = if since.is_some() { usize::MAX } else { limit };
        let list = qctx(ctx)?
            .storage
            .find_endpoints(
                &ServiceId::from_raw(service_id.0),
                keyword.as_deref(),
                fetch,
            )
            .map_err(Error::from)?;
        Ok(list
            .into_iter()
            .filter(|e| since.is_none_or(|s| e.last_ping_ms >= s))
            .take(limit)
            .map(|e| EndpointObject {
                id: ID(e.id.into_string()),
                name: e.name,
            })
            .collect())
    }

    /// One endpoint with its service.
    async fn get_endpoint_info(
        &self,
        ctx: &Context<'_>,
        endpoint_id: ID,
    ) -> Result<Option<EndpointInfo>> {
        let found = qctx(ctx)?
            .storage
            .get_endpoint(&EndpointId::from_raw(endpoint_id.0))
            .map_err(Error::from)?;
        Ok(found.map(|e| {
            let service_name = e
                .service_id
                .decode()
                .map(|(name, _)| name)
                .unwrap_or_default();
            EndpointInfo {
                id: ID(e.id.into_string()),
                name: e.name,
                service_id: ID(e.service_id.into_string()),
                service_name,
            }
        }))
    }
}

/// MQE and metric metadata.
#[derive(Default)]
pub struct MetricsQuery;

#[Object]
impl MetricsQuery {
    /// The value type of a metric (`UNKNOWN` if no rule defines it).
    async fn type_of_metrics(&self, ctx: &Context<'_>, name: String) -> Result<MetricsTypeEnum> {
        Ok(qctx(ctx)?
            .catalog
            .get(&name)
            .map(|d| metrics_type(d.function))
            .unwrap_or(MetricsTypeEnum::Unknown))
    }

    /// Every metric, optionally those whose whole name matches `regex`.
    async fn list_metrics(
        &self,
        ctx: &Context<'_>,
        regex: Option<String>,
    ) -> Result<Vec<MetricDefinitionObject>> {
        let pattern = match given(regex) {
            Some(r) => Some(regex::Regex::new(&format!("^(?:{r})$")).map_err(Error::Regex)?),
            None => None,
        };
        Ok(qctx(ctx)?
            .catalog
            .all()
            .into_iter()
            .filter(|d| pattern.as_ref().is_none_or(|p| p.is_match(&d.name)))
            .map(|d| MetricDefinitionObject {
                kind: metrics_type(d.function),
                catalog: Some(catalog_name(d.scope).to_string()),
                name: d.name,
            })
            .collect())
    }

    /// Evaluates an MQE expression. MQE problems are reported in `error` (HTTP 200); only a bad
    /// duration is a GraphQL error, as in OAP.
    async fn exec_expression(
        &self,
        ctx: &Context<'_>,
        expression: String,
        entity: EntityInput,
        duration: DurationInput,
        debug: Option<bool>,
        #[graphql(name = "dumpDBRsp")] dump_db_rsp: Option<bool>,
    ) -> Result<ExpressionResult> {
        let _ = (debug, dump_db_rsp);
        let q = qctx(ctx)?;
        let d = self::duration(&duration)?;
        let entity: mqe::MqeEntity = entity.into();
        let mctx = mqe::MqeContext {
            storage: q.storage.as_ref(),
            catalog: q.catalog.as_ref(),
            entity: &entity,
            buckets: &d.buckets,
            limits: q.mqe_limits,
        };
        Ok(mqe::execute(&mctx, &expression).into())
    }
}

/// The root `Query` type.
#[derive(MergedObject, Default)]
pub struct Query(
    BootstrapQuery,
    MetadataQuery,
    MetricsQuery,
    LogQueryRoot,
    TraceQueryRoot,
    TopologyQueryRoot,
    UiQuery,
    AlarmQueryRoot,
    RumQueryRoot,
    super::issues::IssueQueryRoot,
);

/// The root `Mutation` type: `version` (common.graphqls) and the UI template mutations.
#[derive(MergedObject, Default)]
pub struct Mutation(VersionMutation, UiMutation, super::issues::IssueMutation);

/// `Mutation.version`.
#[derive(Default)]
pub struct VersionMutation;

#[Object]
impl VersionMutation {
    /// OAP version text.
    async fn version(&self, ctx: &Context<'_>) -> Result<Option<String>> {
        Ok(Some(qctx(ctx)?.version.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::timezone_text;

    #[test]
    fn timezone_is_java_zzzzzz_without_colon() {
        assert_eq!(timezone_text(8 * 3600), "+0800");
        assert_eq!(timezone_text(0), "+0000");
        assert_eq!(timezone_text(-(3 * 3600 + 1800)), "-0330");
    }
}
