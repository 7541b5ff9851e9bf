//! `getAlarm`, `queryAlarms` and the alarm tag autocompletes as booster-ui, swctl and Horizon
//! send them, over alarm records in the real in-memory storage.

use async_graphql::{Request, Variables};
use serde_json::{json, Value};
use skylark_core::{InstanceId, Layer, MetricCatalog, Scope, ServiceId, Step, TimeBucket};
use skylark_query::{QueryContext, SkylarkSchema, MAX_ALARM_PAGE_SIZE};
use skylark_storage::{AlarmRecord, MemStorage, Storage};
use std::sync::Arc;

const WECHAT: &str = "mini-program-sim-wechat";
const ALIPAY: &str = "mini-program-sim-alipay";

/// booster-ui's `queryAlarms` operation (src/graphql/fragments/alarm.ts).
const BOOSTER: &str = "query queryAlarms($keyword: String, $scope: Scope, $duration:Duration!, $tags:[AlarmTag], $paging: Pagination!) {
    getAlarm(keyword: $keyword, scope: $scope, duration: $duration, paging: $paging, tags: $tags) {
      items: msgs {
        key: id
        message
        startTime
        recoveryTime
        scope
        name
        tags { key value }
        events { uuid source { service serviceInstance endpoint } name type message parameters { key value } startTime endTime }
        snapshot {
          expression
          metrics {
            name
            results {
              metric { labels { key value } }
              values {
                id
                owner { scope serviceID serviceName normal serviceInstanceID serviceInstanceName endpointID endpointName }
                value
                traceID
              }
            }
          }
        }
      }
    }}";

/// `swctl alarm ls` (assets/graphqls/alarm/alarms.graphql).
const SWCTL_LS: &str = "query ($duration: Duration!, $scope: Scope, $keyword: String, $paging: Pagination!, $tags: [AlarmTag]) {
    result: getAlarm(duration: $duration, scope: $scope, keyword: $keyword, paging: $paging, tags: $tags) {
        msgs {
            startTime scope id message
            tags { key, value }
            events { name source { service serviceInstance endpoint } startTime endTime message parameters { key value } uuid layer }
        }
    }
}";

/// `swctl alarm autocomplete-keys` / `autocomplete-values`.
const SWCTL_KEYS: &str =
    "query ($duration: Duration!) { result: queryAlarmTagAutocompleteKeys(duration: $duration) }";
const SWCTL_VALUES: &str = "query ($tagKey: String!, $duration: Duration!) { result: queryAlarmTagAutocompleteValues(tagKey: $tagKey, duration: $duration) }";

/// Horizon's alarm page (OAP 11 path).
const HORIZON_QUERY_ALARMS: &str = "query HorizonQueryAlarms($condition: AlarmQueryCondition!) {
    queryAlarms(condition: $condition) {
      msgs {
        id startTime recoveryTime scope name message
        tags { key value }
        snapshot { expression metrics { name results { metric { labels { key value } } values { id value traceID } } } }
      }
    }
  }";

/// Epoch ms of `hhmm` on 2026-05-01 plus `seconds`, in the server's time zone.
fn at(hhmm: &str, seconds: i64) -> i64 {
    TimeBucket::parse(&format!("2026-05-01 {hhmm}"), Step::Minute)
        .unwrap()
        .start_epoch_ms()
        .unwrap()
        + seconds * 1000
}

const SNAPSHOT: &str = r#"[{"metric":{"labels":[]},"values":[{"id":"202605011209","doubleValue":0.0,"isEmptyValue":true},{"id":"202605011210","doubleValue":1438.0,"isEmptyValue":false}]}]"#;

fn record(uuid: &str, service: &str, rule: &str, start: i64, tags: &[(&str, &str)]) -> AlarmRecord {
    let layer = if service == WECHAT {
        Layer::WECHAT_MINI_PROGRAM
    } else {
        Layer::ALIPAY_MINI_PROGRAM
    };
    AlarmRecord {
        uuid: uuid.into(),
        scope: Scope::Service,
        name: service.into(),
        id0: ServiceId::new(service, true).into_string(),
        id1: String::new(),
        rule_name: rule.into(),
        message: format!("{rule} fired for {service}"),
        tags: tags
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        layers: vec![layer.name().to_string()],
        start_time_ms: start,
        recovery_time_ms: None,
        expression: "sum(meter_wechat_mp_app_launch_duration > 1000) >= 1".into(),
        snapshot: vec![(
            "meter_wechat_mp_app_launch_duration".into(),
            SNAPSHOT.into(),
        )],
    }
}

fn schema() -> SkylarkSchema {
    let storage = MemStorage::new();
    let mut recovered = record(
        "a1",
        WECHAT,
        "launch_rule",
        at("1210", 20),
        &[("level", "WARNING"), ("receivers", "lisi")],
    );
    recovered.recovery_time_ms = Some(at("1214", 20));
    let mut instance = record(
        "a3",
        WECHAT,
        "instance_rule",
        at("1220", 20),
        &[("level", "WARNING")],
    );
    instance.scope = Scope::ServiceInstance;
    instance.id0 = InstanceId::new(&ServiceId::new(WECHAT, true), "sim-instance-1").into_string();
    instance.name = format!("sim-instance-1 of {WECHAT}");
    storage
        .write_alarm_records(vec![
            recovered,
            record(
                "a2",
                ALIPAY,
                "error_rule",
                at("1215", 20),
                &[("level", "CRITICAL"), ("receivers", "zhangsan")],
            ),
            instance,
            // Outside every window below.
            record(
                "a4",
                WECHAT,
                "launch_rule",
                at("1400", 20),
                &[("level", "INFO")],
            ),
        ])
        .unwrap();
    skylark_query::schema(QueryContext {
        storage: Arc::new(storage),
        catalog: Arc::new(MetricCatalog::new()),
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

fn duration() -> Value {
    json!({"start": "2026-05-01 1200", "end": "2026-05-01 1230", "step": "MINUTE"})
}

fn names(list: &Value, field: &str) -> Vec<String> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|m| m[field].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn booster_ui_alarm_page_lists_alarms_with_their_snapshot() {
    let schema = schema();
    let vars = json!({"duration": duration(), "paging": {"pageNum": 1, "pageSize": 20},
                      "keyword": "", "scope": null, "tags": []});
    let data = run(&schema, BOOSTER, vars).await;
    let items = &data["getAlarm"]["items"];
    // Latest start first; the 14:00 alarm is outside the window.
    assert_eq!(names(items, "message").len(), 3);
    assert_eq!(
        names(items, "name"),
        [
            format!("sim-instance-1 of {WECHAT}"),
            ALIPAY.to_string(),
            WECHAT.to_string()
        ]
    );
    let wechat = &items[2];
    assert_eq!(wechat["key"], ServiceId::new(WECHAT, true).into_string());
    assert_eq!(wechat["scope"], "Service");
    assert_eq!(wechat["startTime"], at("1210", 20));
    assert_eq!(wechat["recoveryTime"], at("1214", 20));
    assert_eq!(wechat["events"], json!([]));
    assert_eq!(
        wechat["tags"],
        json!([{"key": "level", "value": "WARNING"}, {"key": "receivers", "value": "lisi"}])
    );
    assert_eq!(
        wechat["snapshot"],
        json!({
            "expression": "sum(meter_wechat_mp_app_launch_duration > 1000) >= 1",
            "metrics": [{"name": "meter_wechat_mp_app_launch_duration", "results": [{
                "metric": {"labels": []},
                "values": [
                    {"id": "202605011209", "owner": null, "value": null, "traceID": null},
                    {"id": "202605011210", "owner": null, "value": "1438", "traceID": null}
                ]
            }]}]
        })
    );
    assert_eq!(items[0]["scope"], "ServiceInstance");
    assert_eq!(items[1]["recoveryTime"], Value::Null);
}

#[tokio::test]
async fn swctl_alarm_ls_filters_by_tags_scope_keyword_and_pages() {
    let schema = schema();
    let ls = |tags: Value, extra: Value| {
        let mut vars =
            json!({"duration": duration(), "paging": {"pageNum": 1, "pageSize": 15}, "tags": tags});
        for (k, v) in extra.as_object().unwrap() {
            vars[k] = v.clone();
        }
        vars
    };
    // `--tags level=WARNING,receivers=lisi`: every tag must match.
    let data = run(
        &schema,
        SWCTL_LS,
        ls(
            json!([{"key": "level", "value": "WARNING"}, {"key": "receivers", "value": "lisi"}]),
            json!({}),
        ),
    )
    .await;
    assert_eq!(
        names(&data["result"]["msgs"], "message"),
        ["launch_rule fired for mini-program-sim-wechat"]
    );
    assert_eq!(data["result"]["msgs"][0]["events"], json!([]));
    // A key without a value matches any value.
    let data = run(&schema, SWCTL_LS, ls(json!([{"key": "level"}]), json!({}))).await;
    assert_eq!(data["result"]["msgs"].as_array().unwrap().len(), 3);
    // Scope, keyword.
    let data = run(
        &schema,
        SWCTL_LS,
        ls(json!(null), json!({"scope": "ServiceInstance"})),
    )
    .await;
    assert_eq!(
        names(&data["result"]["msgs"], "message"),
        ["instance_rule fired for mini-program-sim-wechat"]
    );
    let data = run(
        &schema,
        SWCTL_LS,
        ls(
            json!(null),
            json!({"scope": "All", "keyword": "error_rule"}),
        ),
    )
    .await;
    assert_eq!(
        names(&data["result"]["msgs"], "message"),
        ["error_rule fired for mini-program-sim-alipay"]
    );
    // Page 2 of size 2 holds the oldest.
    let data = run(
        &schema,
        SWCTL_LS,
        json!({"duration": duration(), "paging": {"pageNum": 2, "pageSize": 2}}),
    )
    .await;
    assert_eq!(
        names(&data["result"]["msgs"], "message"),
        ["launch_rule fired for mini-program-sim-wechat"]
    );
}

#[tokio::test]
async fn swctl_autocomplete_lists_tag_keys_and_values_of_the_window() {
    let schema = schema();
    let data = run(&schema, SWCTL_KEYS, json!({"duration": duration()})).await;
    // The 14:00 alarm is on the same day, and autocomplete is kept per day, as OAP's.
    assert_eq!(data["result"], json!(["level", "receivers"]));
    let data = run(
        &schema,
        SWCTL_VALUES,
        json!({"tagKey": "level", "duration": duration()}),
    )
    .await;
    assert_eq!(data["result"], json!(["CRITICAL", "INFO", "WARNING"]));
}

#[tokio::test]
async fn query_alarms_filters_by_entity_rule_and_layer() {
    let schema = schema();
    let q = |extra: Value| {
        let mut c = json!({"duration": {"start": "2026-05-01 120000", "end": "2026-05-01 123000", "step": "SECOND"},
                           "paging": {"pageNum": 1, "pageSize": 50}});
        for (k, v) in extra.as_object().unwrap() {
            c[k] = v.clone();
        }
        json!({"condition": c})
    };
    // OAP e2e's entity filter: a service matches its own alarms, not its instances'.
    let data = run(
        &schema,
        HORIZON_QUERY_ALARMS,
        q(json!({"entities": [{"scope": "Service", "serviceName": WECHAT, "normal": true}]})),
    )
    .await;
    let msgs = &data["queryAlarms"]["msgs"];
    assert_eq!(names(msgs, "name"), [WECHAT]);
    assert_eq!(msgs[0]["scope"], "Service");
    assert_eq!(
        msgs[0]["snapshot"]["metrics"][0]["results"][0]["values"][1]["value"],
        "1438"
    );
    // Inferred instance scope.
    let data = run(
        &schema,
        HORIZON_QUERY_ALARMS,
        q(json!({"entities": [{"serviceName": WECHAT, "serviceInstanceName": "sim-instance-1"}]})),
    )
    .await;
    assert_eq!(
        names(&data["queryAlarms"]["msgs"], "scope"),
        ["ServiceInstance"]
    );
    // Any of several entities.
    let data = run(
        &schema,
        HORIZON_QUERY_ALARMS,
        q(json!({"entities": [{"serviceName": WECHAT}, {"serviceName": ALIPAY}]})),
    )
    .await;
    assert_eq!(
        names(&data["queryAlarms"]["msgs"], "name"),
        [ALIPAY, WECHAT]
    );
    let data = run(
        &schema,
        HORIZON_QUERY_ALARMS,
        q(json!({"ruleNames": ["error_rule", "nope"]})),
    )
    .await;
    assert_eq!(names(&data["queryAlarms"]["msgs"], "name"), [ALIPAY]);
    let data = run(
        &schema,
        HORIZON_QUERY_ALARMS,
        q(json!({"layer": "WECHAT_MINI_PROGRAM", "tags": [{"key": "receivers"}]})),
    )
    .await;
    assert_eq!(names(&data["queryAlarms"]["msgs"], "name"), [WECHAT]);
    let data = run(&schema, HORIZON_QUERY_ALARMS, q(json!({}))).await;
    assert_eq!(data["queryAlarms"]["msgs"].as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn bad_alarm_queries_are_errors_that_name_the_problem() {
    let schema = schema();
    // An entity without the names its scope needs would otherwise match every alarm.
    let resp = schema
        .execute(
            Request::new(HORIZON_QUERY_ALARMS).variables(Variables::from_json(json!({
                "condition": {"duration": duration(), "paging": {"pageSize": 5},
                              "entities": [{"scope": "Endpoint", "serviceName": WECHAT}]}
            }))),
        )
        .await;
    assert_eq!(resp.errors.len(), 1);
    assert!(
        resp.errors[0].message.contains("endpointName"),
        "{:?}",
        resp.errors
    );
    let resp = schema
        .execute(
            Request::new(SWCTL_LS).variables(Variables::from_json(json!({
                "duration": {"start": "yesterday", "end": "today", "step": "MINUTE"},
                "paging": {"pageSize": 5}
            }))),
        )
        .await;
    assert!(
        resp.errors[0].message.contains("invalid duration"),
        "{:?}",
        resp.errors
    );
}

#[tokio::test]
async fn a_huge_page_is_capped() {
    let storage = MemStorage::new();
    let records = (0..MAX_ALARM_PAGE_SIZE + 5)
        .map(|i| {
            record(
                &format!("u{i}"),
                WECHAT,
                "launch_rule",
                at("1210", 0) + i as i64,
                &[],
            )
        })
        .collect();
    storage.write_alarm_records(records).unwrap();
    let schema = skylark_query::schema(QueryContext {
        storage: Arc::new(storage),
        catalog: Arc::new(MetricCatalog::new()),
        version: "10.3.0".into(),
        metrics_ttl_days: 7,
        records_ttl_days: 3,
        mqe_limits: Default::default(),
    });
    let data = run(
        &schema,
        "query ($d: Duration!) { getAlarm(duration: $d, paging: {pageNum: 1, pageSize: 2147483647}) { msgs { id } } }",
        json!({"d": duration()}),
    )
    .await;
    assert_eq!(
        data["getAlarm"]["msgs"].as_array().unwrap().len(),
        MAX_ALARM_PAGE_SIZE
    );
}
