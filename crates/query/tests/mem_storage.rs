//! End to end with the real in-memory storage: emissions and traffic written the way the rules
//! write them are what execExpression and listServices return.

mod common;

use async_graphql::{Request, Variables};
use common::mini_program_catalog;
use serde_json::json;
use skylark_core::traffic::{ServiceTraffic, Traffic};
use skylark_core::{
    HistogramGroup, Labels, Layer, MeterEntity, MeterValue, MetricEmission, Step, TimeBucket,
};
use skylark_query::QueryContext;
use skylark_storage::{MemStorage, Storage};
use std::sync::Arc;

#[tokio::test]
async fn rows_written_by_rules_are_queryable() {
    let catalog = Arc::new(mini_program_catalog());
    let storage = MemStorage::new();
    let svc = "mini-program-sim-wechat";
    let entity = MeterEntity::service(svc, Layer::WECHAT_MINI_PROGRAM);
    let minute = TimeBucket::parse("2026-05-01 1210", Step::Minute).unwrap();
    let launch = catalog.get("meter_wechat_mp_app_launch_duration").unwrap();
    let pct = catalog
        .get("meter_wechat_mp_request_duration_percentile")
        .unwrap();
    let emit = |metric, value| MetricEmission {
        metric: std::sync::Arc::new(metric),
        entity: entity.clone(),
        minute,
        value,
    };
    storage
        .write_metrics(vec![
            emit(launch.clone(), MeterValue::Single(100)),
            emit(launch, MeterValue::Single(51)),
            emit(
                pct,
                MeterValue::Histogram(vec![HistogramGroup {
                    labels: Labels::new(),
                    buckets: vec![(10, 1), (25, 1), (i64::MAX, 0)],
                }]),
            ),
        ])
        .unwrap();
    storage
        .write_traffic(
            vec![Traffic::Service(ServiceTraffic {
                name: svc.to_string(),
                layer: Layer::WECHAT_MINI_PROGRAM,
            })],
            minute.start_epoch_ms().unwrap(),
        )
        .unwrap();
    storage.flush().unwrap();

    let schema = skylark_query::schema(QueryContext {
        storage: Arc::new(storage),
        catalog,
        version: "10.3.0".into(),
        metrics_ttl_days: 7,
        records_ttl_days: 3,
        mqe_limits: Default::default(),
    });
    let doc = r#"query ($e: Entity!, $d: Duration!, $layer: String!) {
        svc: listServices(layer: $layer) { id layers }
        plain: execExpression(expression: "meter_wechat_mp_app_launch_duration", entity: $e, duration: $d) {
          type results { metric { labels { key value } } values { value } } error }
        pct: execExpression(expression: "relabels(meter_wechat_mp_request_duration_percentile{p='50,75'},p='50,75',percentile='P50,P75')", entity: $e, duration: $d) {
          results { metric { labels { key value } } values { value } } error }
      }"#;
    let vars = json!({
        "layer": "WECHAT_MINI_PROGRAM",
        "e": {"scope": "Service", "serviceName": svc, "normal": true, "serviceInstanceName": ""},
        "d": {"start": "2026-05-01 1200", "end": "2026-05-01 1230", "step": "MINUTE"}
    });
    let resp = schema
        .execute(Request::new(doc).variables(Variables::from_json(vars)))
        .await;
    assert!(resp.errors.is_empty(), "{:?}", resp.errors);
    let data = resp.data.into_json().unwrap();
    assert_eq!(
        data["svc"],
        json!([{"id": "bWluaS1wcm9ncmFtLXNpbS13ZWNoYXQ=.1", "layers": ["WECHAT_MINI_PROGRAM"]}])
    );
    assert_eq!(data["plain"]["error"], json!(null));
    // avg storage: (100 + 51) / 2 with integer division.
    assert_eq!(data["plain"]["results"][0]["values"][10]["value"], "75");
    assert_eq!(data["plain"]["results"][0]["metric"]["labels"], json!([]));
    let pct = &data["pct"]["results"];
    assert_eq!(
        pct[0]["metric"]["labels"],
        json!([{"key": "percentile", "value": "P50"}])
    );
    assert_eq!(pct[0]["values"][10]["value"], "10");
    assert_eq!(
        pct[1]["metric"]["labels"],
        json!([{"key": "percentile", "value": "P75"}])
    );
    assert_eq!(pct[1]["values"][10]["value"], "25");
}
