//! Topology (topology.graphqls): service and instance maps built from the client-side relation
//! metrics that exit spans produce. Endpoint and process topologies are answered empty.

use super::query::{duration, given, qctx};
use super::types::*;
use crate::{Error, QueryContext, QueryDuration};
use async_graphql::{Context, Enum, Object, Result, SimpleObject, ID};
use skylark_core::{
    component_name, InstanceId, Layer, MetricDefinition, MetricFunction, Scope, ServiceId, SpanType,
};
use skylark_storage::{ServiceRecord, TraceQuery};
use std::collections::{HashMap, HashSet};

/// The metric whose rows say "this service called that one" in a bucket.
pub const SERVICE_RELATION_METRIC: &str = "service_relation_client_cpm";
/// The metric whose rows say "this instance called that one" in a bucket.
pub const INSTANCE_RELATION_METRIC: &str = "service_instance_relation_client_cpm";

/// Segments read to learn which component each edge used (node `type`, `sourceComponents`);
/// edges not seen in these keep no component.
const COMPONENT_SCAN_SEGMENTS: usize = 1000;

/// `enum DetectPoint`.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
#[graphql(name = "DetectPoint")]
pub enum DetectPointEnum {
    /// `CLIENT`
    Client,
    /// `SERVER`
    Server,
    /// `PROXY`
    Proxy,
}

/// `type Node`: a service in the map.
#[derive(SimpleObject, Debug, Clone)]
#[graphql(name = "Node")]
pub struct NodeObject {
    /// Service id.
    pub id: ID,
    /// Service name (decoded from the id).
    pub name: String,
    /// The technology, for conjectured peers the component that called them.
    #[graphql(name = "type")]
    pub kind: Option<String>,
    /// The service is registered (a peer only seen as a call target is not).
    pub is_real: bool,
    /// Layers of a registered service.
    pub layers: Vec<String>,
}

/// `type Call`: an edge.
#[derive(SimpleObject, Debug, Clone)]
#[graphql(name = "Call")]
pub struct CallObject {
    /// Source node id.
    pub source: ID,
    /// Components seen at the source side.
    pub source_components: Vec<ID>,
    /// Target node id.
    pub target: ID,
    /// Components seen at the target side.
    pub target_components: Vec<ID>,
    /// Relation id, `source-target`.
    pub id: ID,
    /// Where the call was observed.
    pub detect_points: Vec<DetectPointEnum>,
}

/// `type Topology`.
#[derive(SimpleObject, Debug, Clone, Default)]
#[graphql(name = "Topology")]
pub struct TopologyObject {
    /// Services.
    pub nodes: Vec<NodeObject>,
    /// Calls between them.
    pub calls: Vec<CallObject>,
    /// Always null.
    pub debugging_trace: Option<DebuggingTrace>,
}

/// `type ServiceInstanceNode`.
#[derive(SimpleObject, Debug, Clone)]
pub struct ServiceInstanceNode {
    /// Instance id.
    pub id: ID,
    /// Instance name.
    pub name: String,
    /// Service id.
    pub service_id: ID,
    /// Service name.
    pub service_name: String,
    /// Always null.
    #[graphql(name = "type")]
    pub kind: Option<String>,
    /// The instance is registered.
    pub is_real: bool,
}

/// `type ServiceInstanceTopology`.
#[derive(SimpleObject, Debug, Clone, Default)]
pub struct ServiceInstanceTopology {
    /// Instances.
    pub nodes: Vec<ServiceInstanceNode>,
    /// Calls between them.
    pub calls: Vec<CallObject>,
    /// Always null.
    pub debugging_trace: Option<DebuggingTrace>,
}

/// `type EndpointNode`.
#[derive(SimpleObject, Debug, Clone)]
pub struct EndpointNode {
    /// Endpoint id.
    pub id: ID,
    /// Endpoint name.
    pub name: String,
    /// Service id.
    pub service_id: ID,
    /// Service name.
    pub service_name: String,
    /// Always null.
    #[graphql(name = "type")]
    pub kind: Option<String>,
    /// The endpoint is registered.
    pub is_real: bool,
}

/// `type EndpointTopology` (always empty: mini-program segments carry no endpoint relations).
#[derive(SimpleObject, Debug, Clone, Default)]
pub struct EndpointTopology {
    /// Endpoints.
    pub nodes: Vec<EndpointNode>,
    /// Calls between them.
    pub calls: Vec<CallObject>,
    /// Always null.
    pub debugging_trace: Option<DebuggingTrace>,
}

/// The catalog's definition of a relation metric, or the one the write path registers when the
/// catalog lacks it (a server started without segment support still answers, with no edges).
fn relation_definition(q: &QueryContext, name: &str, scope: Scope) -> MetricDefinition {
    q.catalog.get(name).unwrap_or_else(|| MetricDefinition {
        name: name.to_string(),
        scope,
        function: MetricFunction::SumPerMin,
        percentile_ranks: Vec::new(),
    })
}

/// Relation ids of `metric` with rows in the duration, split into `(source, dest)`. Entity ids
/// are base64 parts joined by `-`, a character base64 never produces.
fn relation_pairs(
    q: &QueryContext,
    metric: &str,
    scope: Scope,
    d: &QueryDuration,
) -> std::result::Result<Vec<(String, String)>, Error> {
    let def = relation_definition(q, metric, scope);
    let ids = q.storage.metric_entities(&def, &d.buckets)?;
    Ok(ids
        .into_iter()
        .filter_map(|id| {
            let (src, dst) = id.split_once('-')?;
            Some((src.to_string(), dst.to_string()))
        })
        .collect())
}

/// The window a metric duration covers, for reading the segments behind its buckets.
fn duration_window(d: &QueryDuration) -> Option<(i64, i64)> {
    let start = d.buckets.first()?.start_epoch_ms().ok()?;
    let end = d.buckets.last()?.next().start_epoch_ms().ok()? - 1;
    Some((start, end))
}

/// Component id per `(source service id, dest service id)` from the exit spans of recent
/// segments in the duration.
fn edge_components(
    q: &QueryContext,
    d: &QueryDuration,
) -> std::result::Result<HashMap<(String, String), i32>, Error> {
    let mut found = HashMap::new();
    let Some((start_ms, end_ms)) = duration_window(d) else {
        return Ok(found);
    };
    let segments = q.storage.query_segments(&TraceQuery {
        start_ms: Some(start_ms),
        end_ms: Some(end_ms),
        limit: COMPONENT_SCAN_SEGMENTS,
        ..TraceQuery::default()
    })?;
    for record in segments {
        for span in &record.segment.spans {
            if span.span_type != SpanType::Exit || span.peer.is_empty() {
                continue;
            }
            let dest = ServiceId::new(&span.peer, true).into_string();
            found
                .entry((record.service_id.as_str().to_string(), dest))
                .or_insert(span.component_id);
        }
    }
    Ok(found)
}

fn service_name_of(id: &str, record: Option<&ServiceRecord>) -> String {
    match record {
        Some(r) => r.name.clone(),
        None => ServiceId::from_raw(id)
            .decode()
            .map(|(name, _)| name)
            .unwrap_or_else(|| id.to_string()),
    }
}

/// Builds the service map of the relations with rows in `d`, keeping the edges for which
/// `keep(source, dest)` holds.
fn service_topology(
    q: &QueryContext,
    d: &QueryDuration,
    keep: impl Fn(&str, &str) -> bool,
) -> std::result::Result<TopologyObject, Error> {
    let pairs: Vec<(String, String)> =
        relation_pairs(q, SERVICE_RELATION_METRIC, Scope::ServiceRelation, d)?
            .into_iter()
            .filter(|(s, t)| keep(s, t))
            .collect();
    if pairs.is_empty() {
        return Ok(TopologyObject::default());
    }
    let components = edge_components(q, d)?;
    let mut registered: HashMap<String, Option<ServiceRecord>> = HashMap::new();
    let mut nodes: Vec<NodeObject> = Vec::new();
    let mut node_index: HashMap<String, usize> = HashMap::new();
    let mut calls = Vec::new();
    for (source, target) in pairs {
        let component = components
            .get(&(source.clone(), target.clone()))
            .map(|&c| component_name(c).map_or_else(|| c.to_string(), str::to_string));
        for (id, is_target) in [(&source, false), (&target, true)] {
            if !registered.contains_key(id) {
                let record = q.storage.get_service(&ServiceId::from_raw(id.as_str()))?;
                registered.insert(id.clone(), record);
            }
            let record = registered.get(id).and_then(Option::as_ref);
            let idx = *node_index.entry(id.clone()).or_insert_with(|| {
                nodes.push(NodeObject {
                    id: ID(id.clone()),
                    name: service_name_of(id, record),
                    kind: None,
                    is_real: record.is_some(),
                    layers: record
                        .map(|r| r.layers.iter().map(|l| l.name().to_string()).collect())
                        .unwrap_or_default(),
                });
                nodes.len() - 1
            });
            // A conjectured peer is typed by the component that called it, as OAP does.
            let node = &mut nodes[idx];
            if is_target && !node.is_real && node.kind.is_none() {
                node.kind = component.clone();
            }
        }
        calls.push(CallObject {
            id: ID(format!("{source}-{target}")),
            source: ID(source),
            source_components: component.into_iter().map(ID).collect(),
            target: ID(target),
            target_components: Vec::new(),
            detect_points: vec![DetectPointEnum::Client],
        });
    }
    Ok(TopologyObject {
        nodes,
        calls,
        debugging_trace: None,
    })
}

fn services_topology(
    q: &QueryContext,
    d: &QueryDuration,
    ids: HashSet<String>,
) -> std::result::Result<TopologyObject, Error> {
    if ids.is_empty() {
        return Ok(TopologyObject::default());
    }
    service_topology(q, d, |s, t| ids.contains(s) || ids.contains(t))
}

fn instance_topology(
    q: &QueryContext,
    d: &QueryDuration,
    client: &str,
    server: &str,
) -> std::result::Result<ServiceInstanceTopology, Error> {
    let service_of = |id: &str| InstanceId::from_raw(id).decode();
    let mut nodes: Vec<ServiceInstanceNode> = Vec::new();
    let mut seen = HashSet::new();
    let mut calls = Vec::new();
    let pairs = relation_pairs(
        q,
        INSTANCE_RELATION_METRIC,
        Scope::ServiceInstanceRelation,
        d,
    )?;
    for (source, target) in pairs {
        let (Some((src_svc, src_name)), Some((dst_svc, dst_name))) =
            (service_of(&source), service_of(&target))
        else {
            continue;
        };
        let forward = src_svc.as_str() == client && dst_svc.as_str() == server;
        let backward = src_svc.as_str() == server && dst_svc.as_str() == client;
        if !(forward || backward) {
            continue;
        }
        for (id, svc, name) in [
            (&source, &src_svc, &src_name),
            (&target, &dst_svc, &dst_name),
        ] {
            if !seen.insert(id.clone()) {
                continue;
            }
            let is_real = q
                .storage
                .get_instance(&InstanceId::from_raw(id.as_str()))?
                .is_some();
            let record = q.storage.get_service(svc)?;
            nodes.push(ServiceInstanceNode {
                id: ID(id.clone()),
                name: name.clone(),
                service_id: ID(svc.as_str().to_string()),
                service_name: service_name_of(svc.as_str(), record.as_ref()),
                kind: None,
                is_real,
            });
        }
        calls.push(CallObject {
            id: ID(format!("{source}-{target}")),
            source: ID(source),
            source_components: Vec::new(),
            target: ID(target),
            target_components: Vec::new(),
            detect_points: vec![DetectPointEnum::Client],
        });
    }
    Ok(ServiceInstanceTopology {
        nodes,
        calls,
        debugging_trace: None,
    })
}

/// Topology root fields.
#[derive(Default)]
pub struct TopologyQueryRoot;

#[Object]
impl TopologyQueryRoot {
    /// Every service relation in the duration; with a layer, those touching its services.
    async fn get_global_topology(
        &self,
        ctx: &Context<'_>,
        duration: DurationInput,
        layer: Option<String>,
        debug: Option<bool>,
    ) -> Result<Option<TopologyObject>> {
        let _ = debug;
        let q = qctx(ctx)?;
        let d = self::duration(&duration)?;
        let topology = match given(layer) {
            None => service_topology(q, &d, |_, _| true)?,
            Some(name) => match Layer::from_name(&name) {
                None => TopologyObject::default(),
                Some(layer) => {
                    let ids = q
                        .storage
                        .list_services(Some(layer))
                        .map_err(Error::from)?
                        .into_iter()
                        .map(|s| s.id.into_string())
                        .collect();
                    services_topology(q, &d, ids)?
                }
            },
        };
        Ok(Some(topology))
    }

    /// The relations of one service.
    async fn get_service_topology(
        &self,
        ctx: &Context<'_>,
        service_id: ID,
        duration: DurationInput,
        debug: Option<bool>,
    ) -> Result<Option<TopologyObject>> {
        let _ = debug;
        let d = self::duration(&duration)?;
        let ids = given(Some(service_id.0)).into_iter().collect();
        Ok(Some(services_topology(qctx(ctx)?, &d, ids)?))
    }

    /// The relations of one service given by name.
    async fn get_service_topology_by_name(
        &self,
        ctx: &Context<'_>,
        service: ServiceCondition,
        duration: DurationInput,
        debug: Option<bool>,
    ) -> Result<Option<TopologyObject>> {
        let _ = debug;
        let d = self::duration(&duration)?;
        let id = condition_service_id(&service.service_name, service.layer.as_deref());
        let ids = HashSet::from([id.into_string()]);
        Ok(Some(services_topology(qctx(ctx)?, &d, ids)?))
    }

    /// The relations touching any of the services.
    async fn get_services_topology(
        &self,
        ctx: &Context<'_>,
        service_ids: Vec<ID>,
        duration: DurationInput,
        debug: Option<bool>,
    ) -> Result<Option<TopologyObject>> {
        let _ = debug;
        let d = self::duration(&duration)?;
        let ids = service_ids
            .into_iter()
            .map(|i| i.0)
            .filter(|i| !i.is_empty())
            .collect();
        Ok(Some(services_topology(qctx(ctx)?, &d, ids)?))
    }

    /// The relations touching any of the services given by name.
    async fn get_services_topology_by_names(
        &self,
        ctx: &Context<'_>,
        services: Vec<ServiceCondition>,
        duration: DurationInput,
        debug: Option<bool>,
    ) -> Result<Option<TopologyObject>> {
        let _ = debug;
        let d = self::duration(&duration)?;
        let ids = services
            .iter()
            .map(|s| condition_service_id(&s.service_name, s.layer.as_deref()).into_string())
            .collect();
        Ok(Some(services_topology(qctx(ctx)?, &d, ids)?))
    }

    /// Instance relations between a client and a server service (either direction).
    async fn get_service_instance_topology(
        &self,
        ctx: &Context<'_>,
        client_service_id: ID,
        server_service_id: ID,
        duration: DurationInput,
        debug: Option<bool>,
    ) -> Result<Option<ServiceInstanceTopology>> {
        let _ = debug;
        let d = self::duration(&duration)?;
        Ok(Some(instance_topology(
            qctx(ctx)?,
            &d,
            &client_service_id,
            &server_service_id,
        )?))
    }

    /// As `getServiceInstanceTopology`, with the services given by name.
    async fn get_service_instance_topology_by_name(
        &self,
        ctx: &Context<'_>,
        client_service: ServiceCondition,
        server_service: ServiceCondition,
        duration: DurationInput,
        debug: Option<bool>,
    ) -> Result<Option<ServiceInstanceTopology>> {
        let _ = debug;
        let d = self::duration(&duration)?;
        let client = condition_service_id(
            &client_service.service_name,
            client_service.layer.as_deref(),
        );
        let server = condition_service_id(
            &server_service.service_name,
            server_service.layer.as_deref(),
        );
        Ok(Some(instance_topology(
            qctx(ctx)?,
            &d,
            client.as_str(),
            server.as_str(),
        )?))
    }

    /// Endpoint map (empty: no endpoint relations are derived).
    async fn get_endpoint_topology(
        &self,
        endpoint_id: ID,
        duration: DurationInput,
    ) -> Result<Option<TopologyObject>> {
        let _ = endpoint_id;
        self::duration(&duration)?;
        Ok(Some(TopologyObject::default()))
    }

    /// Endpoint dependencies (empty: no endpoint relations are derived).
    async fn get_endpoint_dependencies(
        &self,
        endpoint_id: ID,
        duration: DurationInput,
        debug: Option<bool>,
    ) -> Result<Option<EndpointTopology>> {
        let _ = (endpoint_id, debug);
        self::duration(&duration)?;
        Ok(Some(EndpointTopology::default()))
    }

    /// As `getEndpointDependencies`, by name (empty).
    async fn get_endpoint_dependencies_by_name(
        &self,
        endpoint: EndpointCondition,
        duration: DurationInput,
        debug: Option<bool>,
    ) -> Result<Option<EndpointTopology>> {
        let _ = (endpoint, debug);
        self::duration(&duration)?;
        Ok(Some(EndpointTopology::default()))
    }
}
