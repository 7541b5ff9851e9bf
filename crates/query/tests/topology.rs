//! Topology from client-side relation metrics, and MQE over those relations (the UI's topology
//! side panels), over the real in-memory storage.

use async_graphql::{Request, Variables};
use serde_json::{json, Value};
use skylark_core::traffic::{InstanceTraffic, ServiceTraffic, Traffic};
use skylark_core::{
    InstanceId, Layer, MeterEntity, MeterValue, MetricCatalog, MetricDefinition, MetricEmission,
    MetricFunction, Scope, Segment, SegmentRecord, ServiceId, Span, SpanLayer, SpanType, Step,
    TimeBucket,
};
use skylark_query::{QueryContext, SkylarkSchema};
use skylark_storage::{MemStorage, Storage};
use std::sync::Arc;

const WECHAT: &str = "mini-program-sim-wechat";
const ALIPAY: &str = "mini-program-sim-alipay";
const PEER: &str = "api.example.com";

const TOPOLOGY: &str = "query ($d: Duration!, $layer: String) { t: getGlobalTopology(duration: $d, layer: $layer) { nodes { id name type isReal layers } calls { id source sourceComponents target targetComponents detectPoints } debuggingTrace { traceId } } }";

fn minute(hhmm: &str) -> TimeBucket {
    TimeBucket::parse(&format!("2026-05-01 {hhmm}"), Step::Minute).unwrap()
}

fn duration() -> Value {
    json!({"start": "2026-05-01 1200", "end": "2026-05-01 1230", "step": "MINUTE", "coldStage": false})
}

fn sid(name: &str) -> String {
    ServiceId::new(name, true).into_string()
}

/// The relation metrics the write path registers (cpm and resp_time are enough here).
fn catalog() -> MetricCatalog {
    let catalog = MetricCatalog::new();
    for (prefix, scope) in [
        ("service_relation_client", Scope::ServiceRelation),
        (
            "service_instance_relation_client",
            Scope::ServiceInstanceRelation,
        ),
    ] {
        for (suffix, function) in [
            ("cpm", MetricFunction::SumPerMin),
            ("resp_time", MetricFunction::Avg),
        ] {
            catalog
                .register(MetricDefinition {
                    name: format!("{prefix}_{suffix}"),
                    scope,
                    function,
                    percentile_ranks: Vec::new(),
                })
                .unwrap();
        }
    }
    catalog
}

/// Emissions for one exit call, as the pipeline derives them from a span.
fn call(
    catalog: &MetricCatalog,
    source: &str,
    instance: &str,
    peer: &str,
    at: TimeBucket,
    latency: i64,
) -> Vec<MetricEmission> {
    let service = MeterEntity {
        service_name: source.into(),
        dest_service_name: peer.into(),
        ..MeterEntity::new(Scope::ServiceRelation, Layer::GENERAL)
    };
    let inst = MeterEntity {
        service_name: source.into(),
        instance_name: instance.into(),
        dest_service_name: peer.into(),
        dest_instance_name: peer.into(),
        ..MeterEntity::new(Scope::ServiceInstanceRelation, Layer::GENERAL)
    };
    let mut out = Vec::new();
    for (entity, prefix) in [
        (service, "service_relation_client"),
        (inst, "service_instance_relation_client"),
    ] {
        for (suffix, value) in [("cpm", 1), ("resp_time", latency)] {
            out.push(MetricEmission {
                metric: catalog.get(&format!("{prefix}_{suffix}")).unwrap().into(),
                entity: entity.clone(),
                minute: at,
                value: MeterValue::Single(value),
            });
        }
    }
    out
}

fn exit_segment(service: &str, peer: &str, at: TimeBucket, component: i32) -> SegmentRecord {
    let start = at.start_epoch_ms().unwrap() + 5_000;
    SegmentRecord::from_segment(&Segment {
        trace_id: format!("{service}-trace"),
        segment_id: format!("{service}-seg"),
        service: service.into(),
        service_instance: "sim".into(),
        spans: vec![Span {
            span_id: 0,
            parent_span_id: -1,
            start_time_ms: start,
            end_time_ms: start + 120,
            operation_name: "pages/index/index".into(),
            peer: peer.into(),
            span_type: SpanType::Exit,
            span_layer: SpanLayer::Http,
            component_id: component,
            ..Span::default()
        }],
        is_size_limited: false,
    })
    .unwrap()
}

fn schema() -> SkylarkSchema {
    let catalog = catalog();
    let storage = MemStorage::new();
    let mut emissions = Vec::new();
    for latency in [100, 200, 300] {
        emissions.extend(call(&catalog, WECHAT, "sim", PEER, minute("1210"), latency));
    }
    emissions.extend(call(
        &catalog,
        "backend",
        "pod-1",
        "db:3306",
        minute("1220"),
        5,
    ));
    // Outside the queried window.
    emissions.extend(call(
        &catalog,
        ALIPAY,
        "sim",
        "old.example.com",
        minute("0900"),
        5,
    ));
    storage.write_metrics(emissions).unwrap();
    let now = minute("1210").start_epoch_ms().unwrap();
    storage
        .write_traffic(
            vec![
                Traffic::Service(ServiceTraffic {
                    name: WECHAT.into(),
                    layer: Layer::WECHAT_MINI_PROGRAM,
                }),
                Traffic::Service(ServiceTraffic {
                    name: ALIPAY.into(),
                    layer: Layer::ALIPAY_MINI_PROGRAM,
                }),
                Traffic::Instance(InstanceTraffic {
                    service_name: WECHAT.into(),
                    name: "sim".into(),
                    layer: Layer::WECHAT_MINI_PROGRAM,
                }),
            ],
            now,
        )
        .unwrap();
    storage
        .write_segments(vec![exit_segment(WECHAT, PEER, minute("1210"), 10002)])
        .unwrap();
    storage.flush().unwrap();
    skylark_query::schema(QueryContext {
        storage: Arc::new(storage),
        catalog: Arc::new(catalog),
        version: "10.3.0".into(),
        metrics_ttl_days: 7,
        records_ttl_days: 3,
        mqe_limits: Default::default(),
    })
}

async fn run(schema: &SkylarkSchema, doc: &str, vars: Value) -> Value {
    let resp = schema
        .execute(Request::new(doc).variables(Variables::from_json(vars)))
        .await;
    assert!(resp.errors.is_empty(), "errors: {:?}", resp.errors);
    resp.data.into_json().unwrap()
}

fn call_ids(topology: &Value) -> Vec<String> {
    topology["calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn global_topology_has_an_edge_from_the_mini_program_to_its_peer() {
    let schema = schema();
    let data = run(&schema, TOPOLOGY, json!({"d": duration()})).await;
    let t = &data["t"];
    let wechat_edge = format!("{}-{}", sid(WECHAT), sid(PEER));
    let backend_edge = format!("{}-{}", sid("backend"), sid("db:3306"));
    let mut ids = call_ids(t);
    ids.sort();
    let mut expected = vec![wechat_edge.clone(), backend_edge];
    expected.sort();
    assert_eq!(ids, expected, "the 09:00 alipay edge is outside the window");

    let call = t["calls"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == wechat_edge.as_str())
        .unwrap();
    assert_eq!(
        call,
        &json!({"id": wechat_edge, "source": sid(WECHAT), "sourceComponents": ["WeChat-MiniProgram"],
                "target": sid(PEER), "targetComponents": [], "detectPoints": ["CLIENT"]})
    );
    let node = |id: String| {
        t["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["id"] == id.as_str())
            .cloned()
            .unwrap()
    };
    assert_eq!(
        node(sid(WECHAT)),
        json!({"id": sid(WECHAT), "name": WECHAT, "type": null, "isReal": true, "layers": ["WECHAT_MINI_PROGRAM"]})
    );
    assert_eq!(
        node(sid(PEER)),
        json!({"id": sid(PEER), "name": PEER, "type": "WeChat-MiniProgram", "isReal": false, "layers": []})
    );
    // No segment told us the backend's component.
    assert_eq!(node(sid("db:3306"))["type"], Value::Null);
    assert_eq!(t["nodes"].as_array().unwrap().len(), 4);
    assert_eq!(t["debuggingTrace"], Value::Null);
}

#[tokio::test]
async fn layer_and_service_filters_keep_edges_touching_the_services() {
    let schema = schema();
    let data = run(
        &schema,
        TOPOLOGY,
        json!({"d": duration(), "layer": "WECHAT_MINI_PROGRAM"}),
    )
    .await;
    assert_eq!(
        call_ids(&data["t"]),
        vec![format!("{}-{}", sid(WECHAT), sid(PEER))]
    );
    let data = run(&schema, TOPOLOGY, json!({"d": duration(), "layer": "NOPE"})).await;
    assert_eq!(data["t"]["calls"], json!([]));

    let q = "query ($ids: [ID!]!, $id: ID!, $d: Duration!) {
        many: getServicesTopology(serviceIds: $ids, duration: $d) { calls { id } nodes { id } }
        one: getServiceTopology(serviceId: $id, duration: $d) { calls { id } }
        byName: getServiceTopologyByName(service: {serviceName: \"backend\"}, duration: $d) { calls { id } } }";
    let data = run(
        &schema,
        q,
        json!({"ids": [sid(WECHAT), sid(ALIPAY)], "id": sid("db:3306"), "d": duration()}),
    )
    .await;
    assert_eq!(
        call_ids(&data["many"]),
        vec![format!("{}-{}", sid(WECHAT), sid(PEER))]
    );
    assert_eq!(data["many"]["nodes"].as_array().unwrap().len(), 2);
    let backend_edge = vec![format!("{}-{}", sid("backend"), sid("db:3306"))];
    assert_eq!(call_ids(&data["one"]), backend_edge);
    assert_eq!(call_ids(&data["byName"]), backend_edge);
}

#[tokio::test]
async fn mqe_reads_relation_metrics_for_the_side_panels() {
    let schema = schema();
    let q = "query ($d: Duration!, $e: Entity!, $i: Entity!) {
        cpm: execExpression(expression: \"service_relation_client_cpm\", entity: $e, duration: $d) { type error results { values { id value } } }
        avg: execExpression(expression: \"avg(service_relation_client_resp_time)\", entity: $e, duration: $d) { type error results { values { value } } }
        inst: execExpression(expression: \"sum(service_instance_relation_client_cpm)\", entity: $i, duration: $d) { type error results { values { value } } } }";
    // booster-ui's topology panel entity: no scope, normal/destNormal true.
    let e =
        json!({"serviceName": WECHAT, "normal": true, "destServiceName": PEER, "destNormal": true});
    let i = json!({"serviceName": WECHAT, "normal": true, "serviceInstanceName": "sim",
                   "destServiceName": PEER, "destNormal": true, "destServiceInstanceName": PEER});
    let data = run(&schema, q, json!({"d": duration(), "e": e, "i": i})).await;
    let cpm = &data["cpm"];
    assert_eq!(cpm["type"], "TIME_SERIES_VALUES");
    assert_eq!(cpm["error"], Value::Null);
    let values = cpm["results"][0]["values"].as_array().unwrap();
    assert_eq!(values.len(), 31);
    let at_1210 = minute("1210").start_epoch_ms().unwrap().to_string();
    let point = values.iter().find(|v| v["id"] == at_1210.as_str()).unwrap();
    assert_eq!(point["value"], "3");
    assert_eq!(
        values.iter().filter(|v| v["value"] != Value::Null).count(),
        1
    );
    assert_eq!(data["avg"]["results"][0]["values"][0]["value"], "200");
    assert_eq!(data["inst"]["results"][0]["values"][0]["value"], "3");
}

#[tokio::test]
async fn instance_topology_links_the_instances_of_two_services() {
    let schema = schema();
    let q = "query ($c: ID!, $s: ID!, $d: Duration!) {
        t: getServiceInstanceTopology(clientServiceId: $c, serverServiceId: $s, duration: $d) {
            nodes { id name serviceId serviceName type isReal } calls { id source target detectPoints } }
        reversed: getServiceInstanceTopology(clientServiceId: $s, serverServiceId: $c, duration: $d) { calls { id } }
        other: getServiceInstanceTopology(clientServiceId: $c, serverServiceId: \"eA==.1\", duration: $d) { calls { id } } }";
    let data = run(
        &schema,
        q,
        json!({"c": sid(WECHAT), "s": sid(PEER), "d": duration()}),
    )
    .await;
    let sim = InstanceId::new(&ServiceId::new(WECHAT, true), "sim").into_string();
    let peer = InstanceId::new(&ServiceId::new(PEER, true), PEER).into_string();
    let relation = format!("{sim}-{peer}");
    assert_eq!(
        data["t"]["calls"],
        json!([{"id": relation, "source": sim, "target": peer, "detectPoints": ["CLIENT"]}])
    );
    assert_eq!(
        data["t"]["nodes"],
        json!([
            {"id": sim, "name": "sim", "serviceId": sid(WECHAT), "serviceName": WECHAT, "type": null, "isReal": true},
            {"id": peer, "name": PEER, "serviceId": sid(PEER), "serviceName": PEER, "type": null, "isReal": false}
        ])
    );
    assert_eq!(call_ids(&data["reversed"]), vec![relation]);
    assert_eq!(data["other"]["calls"], json!([]));
}

#[tokio::test]
async fn endpoint_dependencies_are_empty() {
    let schema = schema();
    let q = "query ($id: ID!, $d: Duration!) { e: getEndpointDependencies(endpointId: $id, duration: $d) { nodes { id } calls { id } } }";
    let data = run(&schema, q, json!({"id": "x", "d": duration()})).await;
    assert_eq!(data["e"], json!({"nodes": [], "calls": []}));
}
