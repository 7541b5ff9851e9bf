//! booster-ui support: the shipped dashboards and menu load, every MQE expression in them parses
//! and names a real mini-program metric, and the menu/template GraphQL fields behave as OAP's.

mod common;

use async_graphql::{Request, Variables};
use serde_json::{json, Value};
use skylark_core::traffic::{ServiceTraffic, Traffic};
use skylark_core::{
    Labels, Layer, MeterEntity, MeterValue, MetricEmission, Scope, Step, TimeBucket,
};
use skylark_query::mqe::{parse_expression, Expr, MetricRef};
use skylark_query::{
    schema_with_ui, template_expressions, QueryContext, SkylarkSchema, UiContext, UiTemplates,
};
use skylark_storage::{MemStorage, Storage};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The metrics the shipped mini-program rules produce: oap-semantics §7's 32, plus calls and
/// successful calls at each scope (for the success rate).
const CATALOG: &[&str] = &[
    "meter_wechat_mp_request_count",
    "meter_wechat_mp_request_success_count",
    "meter_wechat_mp_endpoint_request_count",
    "meter_wechat_mp_endpoint_request_success_count",
    "meter_wechat_mp_instance_request_count",
    "meter_wechat_mp_instance_request_success_count",
    "meter_alipay_mp_request_count",
    "meter_alipay_mp_request_success_count",
    "meter_alipay_mp_endpoint_request_count",
    "meter_alipay_mp_endpoint_request_success_count",
    "meter_alipay_mp_instance_request_count",
    "meter_alipay_mp_instance_request_success_count",
    "meter_wechat_mp_app_launch_duration",
    "meter_wechat_mp_first_render_duration",
    "meter_wechat_mp_route_duration",
    "meter_wechat_mp_script_duration",
    "meter_wechat_mp_package_load_duration",
    "meter_wechat_mp_request_cpm",
    "meter_wechat_mp_request_duration_percentile",
    "meter_wechat_mp_endpoint_app_launch_duration",
    "meter_wechat_mp_endpoint_first_render_duration",
    "meter_wechat_mp_endpoint_request_cpm",
    "meter_wechat_mp_endpoint_request_duration_percentile",
    "meter_wechat_mp_instance_app_launch_duration",
    "meter_wechat_mp_instance_first_render_duration",
    "meter_wechat_mp_instance_route_duration",
    "meter_wechat_mp_instance_script_duration",
    "meter_wechat_mp_instance_package_load_duration",
    "meter_wechat_mp_instance_request_cpm",
    "meter_wechat_mp_instance_request_duration_percentile",
    "meter_wechat_mp_error_count",
    "meter_alipay_mp_app_launch_duration",
    "meter_alipay_mp_first_render_duration",
    "meter_alipay_mp_request_cpm",
    "meter_alipay_mp_request_duration_percentile",
    "meter_alipay_mp_endpoint_app_launch_duration",
    "meter_alipay_mp_endpoint_first_render_duration",
    "meter_alipay_mp_endpoint_request_cpm",
    "meter_alipay_mp_endpoint_request_duration_percentile",
    "meter_alipay_mp_instance_app_launch_duration",
    "meter_alipay_mp_instance_first_render_duration",
    "meter_alipay_mp_instance_request_cpm",
    "meter_alipay_mp_instance_request_duration_percentile",
    "meter_alipay_mp_error_count",
];

/// The relation metrics traced requests produce, which the topology widgets read.
const RELATION_METRICS: &[&str] = &[
    "service_relation_client_cpm",
    "service_relation_client_resp_time",
    "service_relation_client_call_sla",
];

const WECHAT_SVC: &str = "mini-program-sim-wechat";

fn our_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../ui-templates")
}

fn upstream_dir() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/reference/skywalking/ui-templates");
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!("skipping upstream templates: {} is absent", dir.display());
        None
    }
}

fn metric_names(expr: &Expr, out: &mut BTreeSet<String>) {
    let mut metric = |m: &MetricRef| {
        out.insert(m.name.clone());
    };
    match expr {
        Expr::Metric(m) | Expr::Trend(_, m, _) | Expr::Baseline(m, _) => metric(m),
        Expr::Scalar { .. } => {}
        Expr::Paren(e)
        | Expr::Aggregation(_, e)
        | Expr::Math(_, e)
        | Expr::Round(e, _)
        | Expr::Relabels(e, _, _)
        | Expr::AggregateLabels(e, _, _)
        | Expr::SortValues(e, _, _, _)
        | Expr::SortLabelValues(e, _, _) => metric_names(e, out),
        Expr::Binary { left, right, .. } => {
            metric_names(left, out);
            metric_names(right, out);
        }
        Expr::Logical(_, es) => es.iter().for_each(|e| metric_names(e, out)),
        Expr::TopN(t) => metric(&t.metric),
        Expr::TopNOf(ts, _, _) => ts.iter().for_each(|t| metric(&t.metric)),
    }
}

/// Every expression of every template in `dir`, with the template id.
fn all_expressions(dir: &Path) -> Vec<(String, String)> {
    let loaded = UiTemplates::load(dir).unwrap();
    let mut out = Vec::new();
    for t in loaded.templates() {
        let config: Value = serde_json::from_str(&t.configuration).unwrap();
        for e in template_expressions(&config) {
            out.push((t.id.clone(), e));
        }
    }
    out
}

fn check_expressions_use_catalog_metrics(dir: &Path) -> BTreeSet<String> {
    assert_eq!(CATALOG.len(), 44);
    let exprs = all_expressions(dir);
    assert!(
        !exprs.is_empty(),
        "no expressions found in {}",
        dir.display()
    );
    let mut used = BTreeSet::new();
    for (id, text) in &exprs {
        let parsed =
            parse_expression(text).unwrap_or_else(|e| panic!("{id}: `{text}` does not parse: {e}"));
        let mut names = BTreeSet::new();
        metric_names(&parsed, &mut names);
        assert!(!names.is_empty(), "{id}: `{text}` reads no metric");
        for name in names {
            if RELATION_METRICS.contains(&name.as_str()) {
                used.insert(name);
                continue;
            }
            assert!(
                CATALOG.contains(&name.as_str()),
                "{id}: `{text}` uses {name}, which no mini-program rule produces"
            );
            // A WeChat dashboard must not plot Alipay metrics and the other way round.
            let platform = if id.starts_with("WeChat") {
                "wechat"
            } else {
                "alipay"
            };
            assert!(
                name.starts_with(&format!("meter_{platform}_mp_")),
                "{id}: `{text}` uses {name}"
            );
            used.insert(name);
        }
    }
    used
}

#[test]
fn our_templates_load_with_one_dashboard_per_layer_and_entity() {
    let loaded = UiTemplates::load(&our_dir()).unwrap();
    let mut keys: Vec<(String, String, String, bool)> = loaded
        .templates()
        .iter()
        .map(|t| (t.id.clone(), t.layer.clone(), t.entity.clone(), t.is_root))
        .collect();
    keys.sort();
    let expected: Vec<(String, String, String, bool)> = [
        (
            "Alipay-Mini-Program-Endpoint",
            "ALIPAY_MINI_PROGRAM",
            "Endpoint",
            false,
        ),
        (
            "Alipay-Mini-Program-Instance",
            "ALIPAY_MINI_PROGRAM",
            "ServiceInstance",
            false,
        ),
        (
            "Alipay-Mini-Program-Root",
            "ALIPAY_MINI_PROGRAM",
            "All",
            true,
        ),
        (
            "Alipay-Mini-Program-Service",
            "ALIPAY_MINI_PROGRAM",
            "Service",
            false,
        ),
        (
            "WeChat-Mini-Program-Endpoint",
            "WECHAT_MINI_PROGRAM",
            "Endpoint",
            false,
        ),
        (
            "WeChat-Mini-Program-Instance",
            "WECHAT_MINI_PROGRAM",
            "ServiceInstance",
            false,
        ),
        (
            "WeChat-Mini-Program-Root",
            "WECHAT_MINI_PROGRAM",
            "All",
            true,
        ),
        (
            "WeChat-Mini-Program-Service",
            "WECHAT_MINI_PROGRAM",
            "Service",
            false,
        ),
    ]
    .iter()
    .map(|(a, b, c, d)| (a.to_string(), b.to_string(), c.to_string(), *d))
    .collect();
    assert_eq!(keys, expected);
    // booster opens the drill-down dashboards by name, so list widgets must name existing ones.
    for t in loaded.templates() {
        assert_eq!(t.name, t.id, "booster keys dashboards by name");
        for part in t.configuration.split("\"dashboardName\":\"").skip(1) {
            let name = &part[..part.find('"').unwrap()];
            assert!(
                loaded.get(name).is_some(),
                "{}: links to unknown {name}",
                t.id
            );
        }
    }
    let menu = loaded.menu();
    assert_eq!(menu.len(), 1);
    assert_eq!(menu[0].title, "Mobile");
    let leaves: Vec<(&str, Option<&str>)> = menu[0]
        .menus
        .iter()
        .map(|m| (m.title.as_str(), m.layer.as_deref()))
        .collect();
    assert_eq!(
        leaves,
        vec![
            ("WeChat Mini Program", Some("WECHAT_MINI_PROGRAM")),
            ("Alipay Mini Program", Some("ALIPAY_MINI_PROGRAM")),
        ]
    );
}

#[test]
fn service_dashboards_have_the_six_tabs() {
    let loaded = UiTemplates::load(&our_dir()).unwrap();
    for id in ["WeChat-Mini-Program-Service", "Alipay-Mini-Program-Service"] {
        let config: Value = serde_json::from_str(&loaded.get(id).unwrap().configuration).unwrap();
        let tab = &config["children"][0];
        assert_eq!(tab["type"], "Tab");
        let names: Vec<&str> = tab["children"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            ["Overview", "Instance", "Endpoint", "Topology", "Trace", "Log"],
            "{id}"
        );
        // The topology: the mini program and its API hosts, calls/min, latency and success
        // rate on the edges; below it the slowest and the failing hosts.
        let topology = &tab["children"][3]["children"];
        let map = &topology[0];
        assert_eq!(map["type"], "Topology", "{id}");
        assert_eq!(
            map["linkClientExpressions"],
            json!([
                "avg(service_relation_client_cpm)",
                "avg(service_relation_client_resp_time)",
                "avg(service_relation_client_call_sla)/100"
            ]),
            "{id}"
        );
        let units: Vec<&str> = map["linkClientMetricConfig"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["unit"].as_str().unwrap())
            .collect();
        assert_eq!(units, ["calls / min", "ms", "%"], "{id}");
        let lists: Vec<(&str, &str)> = topology
            .as_array()
            .unwrap()
            .iter()
            .skip(1)
            .map(|w| {
                assert_eq!(w["graph"]["type"], "TopList", "{id}");
                (
                    w["widget"]["title"].as_str().unwrap(),
                    w["expressions"][0].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            lists,
            [
                (
                    "Slowest API Hosts (ms)",
                    "top_n(service_relation_client_resp_time,10,des)"
                ),
                (
                    "Failing API Hosts (success rate, %)",
                    "top_n(service_relation_client_call_sla,10,asc)/100"
                ),
            ],
            "{id}"
        );
    }
}

#[test]
fn no_dashboard_calls_a_number_approximate() {
    let loaded = UiTemplates::load(&our_dir()).unwrap();
    for t in loaded.templates() {
        assert!(
            !t.configuration.to_lowercase().contains("approx"),
            "{}: the numbers are real now",
            t.id
        );
    }
}

#[test]
fn our_expressions_parse_and_use_only_catalog_metrics() {
    let used = check_expressions_use_catalog_metrics(&our_dir());
    // Every metric the rules produce is on some dashboard.
    let missing: Vec<&&str> = CATALOG.iter().filter(|m| !used.contains(**m)).collect();
    assert!(missing.is_empty(), "metrics on no dashboard: {missing:?}");
}

#[test]
fn our_dashboards_add_errors_success_rate_and_page_percentiles() {
    let exprs: Vec<String> = all_expressions(&our_dir())
        .into_iter()
        .map(|(_, e)| e)
        .collect();
    for p in ["wechat", "alipay"] {
        for wanted in [
            format!("meter_{p}_mp_error_count"),
            format!("avg(meter_{p}_mp_endpoint_request_duration_percentile{{p='50'}})"),
            format!("avg(meter_{p}_mp_endpoint_request_duration_percentile{{p='95'}})"),
            format!("relabels(meter_{p}_mp_endpoint_request_duration_percentile{{p='50,75,90,95,99'}},p='50,75,90,95,99',percentile='P50,P75,P90,P95,P99')"),
        ] {
            assert!(exprs.contains(&wanted), "missing {wanted}");
        }
        for scope in ["", "instance_", "endpoint_"] {
            let rate = format!(
                "meter_{p}_mp_{scope}request_success_count/meter_{p}_mp_{scope}request_count*100"
            );
            assert!(exprs.contains(&rate), "no {p} {scope}success rate");
        }
    }
}

#[test]
fn upstream_templates_load_and_use_only_catalog_metrics() {
    let Some(dir) = upstream_dir() else {
        return;
    };
    let loaded = UiTemplates::load(&dir).unwrap();
    assert_eq!(loaded.templates().len(), 8);
    let mobile = loaded
        .menu()
        .iter()
        .find(|m| m.title == "Mobile")
        .expect("upstream menu has a Mobile group");
    assert!(mobile
        .menus
        .iter()
        .any(|m| m.layer.as_deref() == Some("WECHAT_MINI_PROGRAM")));
    check_expressions_use_catalog_metrics(&dir);
}

#[test]
fn a_broken_template_file_is_rejected_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(our_dir().join("menu.yaml"), dir.path().join("menu.yaml")).unwrap();
    let nested = dir.path().join("custom");
    std::fs::create_dir(&nested).unwrap();
    let good = r#"[{"id":"ok","configuration":{"layer":"WECHAT_MINI_PROGRAM","entity":"All","name":"ok"}}]"#;
    std::fs::write(nested.join("a-good.json"), good).unwrap();
    std::fs::write(nested.join("b-broken.json"), "[\n  {\"id\": \"x\",,}\n]").unwrap();
    let err = UiTemplates::load(dir.path()).unwrap_err().to_string();
    assert!(
        err.contains("b-broken.json:2:14: invalid JSON"),
        "error names file and position: {err}"
    );

    std::fs::write(
        nested.join("b-broken.json"),
        r#"[{"id":"x","configuration":{"layer":"WECHAT_MINI_PROGRAM","name":"x"}}]"#,
    )
    .unwrap();
    let err = UiTemplates::load(dir.path()).unwrap_err().to_string();
    assert!(err.contains("b-broken.json"), "{err}");
    assert!(err.contains("missing configuration.entity"), "{err}");

    std::fs::write(nested.join("b-broken.json"), good).unwrap();
    let err = UiTemplates::load(dir.path()).unwrap_err().to_string();
    assert!(err.contains("template id ok is defined in both"), "{err}");

    std::fs::remove_file(nested.join("b-broken.json")).unwrap();
    std::fs::remove_file(dir.path().join("menu.yaml")).unwrap();
    let err = UiTemplates::load(dir.path()).unwrap_err().to_string();
    assert!(err.contains("menu.yaml"), "{err}");
}

// ---------------------------------------------------------------------------------------------
// GraphQL

fn schema_over(storage: Arc<MemStorage>, editing: bool) -> SkylarkSchema {
    let ctx = QueryContext {
        storage,
        catalog: Arc::new(common::mini_program_catalog()),
        version: "10.3.0".into(),
        metrics_ttl_days: 7,
        records_ttl_days: 3,
        mqe_limits: Default::default(),
    };
    let ui = UiContext {
        templates: Arc::new(UiTemplates::load(&our_dir()).unwrap()),
        ui_template_editing: editing,
        trace_link_template: None,
    };
    schema_with_ui(ctx, ui)
}

fn wechat_service(storage: &MemStorage) {
    storage
        .write_traffic(
            vec![Traffic::Service(ServiceTraffic {
                name: WECHAT_SVC.into(),
                layer: Layer::WECHAT_MINI_PROGRAM,
            })],
            1_000,
        )
        .unwrap();
}

/// Runs `doc` and returns the whole response as the client sees it (`data`, `errors`).
async fn run(schema: &SkylarkSchema, doc: &str, vars: Value) -> Value {
    let resp = schema
        .execute(Request::new(doc).variables(Variables::from_json(vars)))
        .await;
    serde_json::to_value(&resp).unwrap()
}

async fn data(schema: &SkylarkSchema, doc: &str, vars: Value) -> Value {
    let resp = run(schema, doc, vars).await;
    assert!(resp.get("errors").is_none(), "{resp}");
    resp["data"].clone()
}

const MENU: &str = "query menuItems {
    getMenuItems { title icon layer activate description documentLink i18nKey
      subItems { title icon layer activate description documentLink i18nKey subItems { title } } } }";

const TEMPLATES: &str = "query templates { getAllTemplates { id, configuration, } }";

#[tokio::test]
async fn menu_activates_layers_that_have_services() {
    let storage = Arc::new(MemStorage::new());
    let schema = schema_over(storage.clone(), false);
    let d = data(&schema, MENU, json!({})).await;
    let mobile = &d["getMenuItems"][0];
    assert_eq!(mobile["title"], "Mobile");
    assert_eq!(mobile["icon"], "mobile");
    assert_eq!(mobile["layer"], "");
    assert_eq!(mobile["activate"], false, "no services yet");

    wechat_service(&storage);
    let d = data(&schema, MENU, json!({})).await;
    let mobile = &d["getMenuItems"][0];
    assert_eq!(
        mobile["activate"], true,
        "a group is active when a child is"
    );
    let subs = mobile["subItems"].as_array().unwrap();
    assert_eq!(subs.len(), 2);
    assert_eq!(subs[0]["title"], "WeChat Mini Program");
    assert_eq!(subs[0]["layer"], "WECHAT_MINI_PROGRAM");
    assert_eq!(subs[0]["activate"], true);
    assert_eq!(subs[0]["subItems"], json!([]));
    assert_eq!(subs[0]["i18nKey"], "mobile_wechat_mini_program");
    assert!(subs[0]["documentLink"]
        .as_str()
        .unwrap()
        .starts_with("https://"));
    assert_eq!(subs[1]["layer"], "ALIPAY_MINI_PROGRAM");
    assert_eq!(subs[1]["activate"], false);
}

#[tokio::test]
async fn all_templates_are_json_text_keyed_like_booster_expects() {
    let schema = schema_over(Arc::new(MemStorage::new()), false);
    let d = data(&schema, TEMPLATES, json!({})).await;
    let list = d["getAllTemplates"].as_array().unwrap();
    assert_eq!(list.len(), 8);
    for t in list {
        let id = t["id"].as_str().unwrap();
        let config: Value = serde_json::from_str(t["configuration"].as_str().unwrap())
            .unwrap_or_else(|e| panic!("{id}: configuration is not JSON text: {e}"));
        assert_eq!(config["name"], id);
        let layer = if id.starts_with("WeChat") {
            "WECHAT_MINI_PROGRAM"
        } else {
            "ALIPAY_MINI_PROGRAM"
        };
        assert_eq!(config["layer"], layer);
        let entity = match id.rsplit('-').next().unwrap() {
            "Root" => "All",
            "Service" => "Service",
            "Instance" => "ServiceInstance",
            "Endpoint" => "Endpoint",
            other => panic!("unexpected template {other}"),
        };
        assert_eq!(config["entity"], entity, "{id}");
        assert_eq!(config["isRoot"], entity == "All", "{id}");
    }
    let one = data(
        &schema,
        "query ($id: String!) { getTemplate(id: $id) { id configuration } missing: getTemplate(id: \"nope\") { id } }",
        json!({"id": "WeChat-Mini-Program-Root"}),
    )
    .await;
    assert_eq!(one["getTemplate"]["id"], "WeChat-Mini-Program-Root");
    assert_eq!(one["missing"], Value::Null);
}

const ADD: &str = "mutation ($setting: NewDashboardSetting!) { addTemplate(setting: $setting) { id status message } }";
const CHANGE: &str = "mutation ($setting: DashboardSetting!) { changeTemplate(setting: $setting) { id status message } }";
const DISABLE: &str = "mutation ($id: String!) { disableTemplate(id: $id) { id status message } }";

fn config(name: &str) -> String {
    json!({"layer": "WECHAT_MINI_PROGRAM", "entity": "Service", "name": name, "isRoot": false, "children": []})
        .to_string()
}

fn configuration_of(list: &Value, id: &str) -> Option<Value> {
    list.as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == id)
        .map(|t| serde_json::from_str(t["configuration"].as_str().unwrap()).unwrap())
}

#[tokio::test]
async fn templates_round_trip_when_editing_is_enabled() {
    let storage = Arc::new(MemStorage::new());
    let schema = schema_over(storage.clone(), true);

    let added = data(
        &schema,
        ADD,
        json!({"setting": {"configuration": config("Mine")}}),
    )
    .await;
    let status = &added["addTemplate"];
    assert_eq!(status["status"], true, "{status}");
    let id = status["id"].as_str().unwrap().to_string();
    assert_eq!(id.len(), 36, "a UUID: {id}");
    let list = data(&schema, TEMPLATES, json!({})).await["getAllTemplates"].clone();
    assert_eq!(list.as_array().unwrap().len(), 9);
    assert_eq!(configuration_of(&list, &id).unwrap()["name"], "Mine");

    let changed = data(
        &schema,
        CHANGE,
        json!({"setting": {"id": id, "configuration": config("Renamed")}}),
    )
    .await;
    assert_eq!(
        changed["changeTemplate"],
        json!({"id": id, "status": true, "message": null})
    );
    // A shipped dashboard can be changed too; the change overrides the file.
    let shipped = data(
        &schema,
        CHANGE,
        json!({"setting": {"id": "WeChat-Mini-Program-Service", "configuration": config("WeChat-Mini-Program-Service")}}),
    )
    .await;
    assert_eq!(shipped["changeTemplate"]["status"], true);
    let list = data(&schema, TEMPLATES, json!({})).await["getAllTemplates"].clone();
    assert_eq!(configuration_of(&list, &id).unwrap()["name"], "Renamed");
    assert_eq!(
        configuration_of(&list, "WeChat-Mini-Program-Service").unwrap()["children"],
        json!([])
    );

    let disabled = data(&schema, DISABLE, json!({"id": "WeChat-Mini-Program-Root"})).await;
    assert_eq!(disabled["disableTemplate"]["status"], true);
    let list = data(&schema, TEMPLATES, json!({})).await["getAllTemplates"].clone();
    assert!(configuration_of(&list, "WeChat-Mini-Program-Root").is_none());
    assert_eq!(list.as_array().unwrap().len(), 8);
    assert!(
        storage
            .get_template("WeChat-Mini-Program-Root")
            .unwrap()
            .unwrap()
            .disabled
    );

    let unknown = data(&schema, DISABLE, json!({"id": "nope"})).await;
    assert_eq!(unknown["disableTemplate"]["status"], false);
    assert_eq!(
        unknown["disableTemplate"]["message"],
        "no template with id nope"
    );
    let unknown = data(
        &schema,
        CHANGE,
        json!({"setting": {"id": "nope", "configuration": config("x")}}),
    )
    .await;
    assert_eq!(unknown["changeTemplate"]["status"], false);

    let bad = data(
        &schema,
        ADD,
        json!({"setting": {"configuration": "{\"layer\": "}}),
    )
    .await;
    assert_eq!(bad["addTemplate"]["status"], false);
    assert!(bad["addTemplate"]["message"]
        .as_str()
        .unwrap()
        .contains("not valid JSON"));
    let bad = data(
        &schema,
        ADD,
        json!({"setting": {"configuration": "{\"layer\": \"X\"}"}}),
    )
    .await;
    assert_eq!(
        bad["addTemplate"]["message"],
        "missing configuration.entity"
    );
}

#[tokio::test]
async fn template_changes_are_refused_when_editing_is_disabled() {
    let storage = Arc::new(MemStorage::new());
    let schema = schema_over(storage.clone(), false);
    for (doc, vars, field, id) in [
        (
            ADD,
            json!({"setting": {"configuration": config("Mine")}}),
            "addTemplate",
            "",
        ),
        (
            CHANGE,
            json!({"setting": {"id": "WeChat-Mini-Program-Root", "configuration": config("x")}}),
            "changeTemplate",
            "WeChat-Mini-Program-Root",
        ),
        (
            DISABLE,
            json!({"id": "WeChat-Mini-Program-Root"}),
            "disableTemplate",
            "WeChat-Mini-Program-Root",
        ),
    ] {
        let d = data(&schema, doc, vars).await;
        let status = &d[field];
        assert_eq!(status["status"], false, "{field}");
        assert_eq!(status["id"], id);
        assert!(
            status["message"]
                .as_str()
                .unwrap()
                .contains("SW_ENABLE_UPDATE_UI_TEMPLATE"),
            "{status}"
        );
    }
    assert_eq!(storage.list_templates().unwrap(), vec![]);
    let list = data(&schema, TEMPLATES, json!({})).await["getAllTemplates"].clone();
    assert_eq!(list.as_array().unwrap().len(), 8);
}

#[tokio::test]
async fn alarm_and_bootstrap_probes_answer_with_data() {
    let schema = schema_over(Arc::new(MemStorage::new()), false);
    // Horizon's badge query, plus booster/horizon bootstrap fields; explicit nulls accepted.
    let doc = "query ($duration: Duration!, $paging: Pagination!, $scope: Scope, $keyword: String, $tags: [AlarmTag]) {
        getAlarm(duration: $duration, paging: $paging, scope: $scope, keyword: $keyword, tags: $tags) { msgs { id startTime recoveryTime } }
        keys: queryAlarmTagAutocompleteKeys(duration: $duration)
        listLayerLevels { layer level }
        hasQueryTracesV2Support
        metrics: getMetricsTTL { metadata minute }
        records: getRecordsTTL { normal coldNormal }
        getInstance(instanceId: \"nope\") { id }
        getEndpointInfo(endpointId: \"nope\") { id }
      }";
    let vars = json!({
        "duration": {"start": "2026-11-29 044919", "end": "2026-11-29 051919", "step": "SECOND"},
        "paging": {"pageNum": 1, "pageSize": 201},
        "scope": null, "keyword": null, "tags": null
    });
    let d = data(&schema, doc, vars).await;
    assert_eq!(d["getAlarm"], json!({"msgs": []}));
    assert_eq!(d["keys"], json!([]));
    assert_eq!(d["listLayerLevels"], json!([]));
    assert_eq!(d["hasQueryTracesV2Support"], false);
    assert_eq!(d["metrics"], json!({"metadata": 7, "minute": 7}));
    assert_eq!(d["records"], json!({"normal": 3, "coldNormal": -1}));
    assert_eq!(d["getInstance"], Value::Null);
    assert_eq!(d["getEndpointInfo"], Value::Null);
}

#[tokio::test]
async fn every_reply_carries_a_data_object() {
    let schema = schema_over(Arc::new(MemStorage::new()), false);
    // A field error on a nullable root field: the other fields still answer.
    let resp = run(
        &schema,
        "query ($d: Duration!) { hasQueryTracesV2Support getAlarm(duration: $d, paging: {pageSize: 1}) { msgs { id } } }",
        json!({"d": {"start": "garbage", "end": "x", "step": "MINUTE"}}),
    )
    .await;
    assert!(resp["data"].is_object(), "{resp}");
    assert_eq!(resp["data"]["hasQueryTracesV2Support"], false);
}

// ---------------------------------------------------------------------------------------------
// The added expressions evaluate to what their titles promise.

fn minute(text: &str) -> TimeBucket {
    TimeBucket::parse(text, Step::Minute).unwrap()
}

#[tokio::test]
async fn error_and_success_rate_expressions_evaluate() {
    let catalog = common::mini_program_catalog();
    let storage = Arc::new(MemStorage::new());
    let entity = MeterEntity::service(WECHAT_SVC, Layer::WECHAT_MINI_PROGRAM);
    let emit = |metric: &str, at: &str, value| MetricEmission {
        metric: catalog.get(metric).unwrap().into(),
        entity: entity.clone(),
        minute: minute(at),
        value,
    };
    let errors = |pairs: &[(&str, i64)]| {
        MeterValue::Labeled(
            pairs
                .iter()
                .map(|(t, n)| {
                    let mut l = Labels::new();
                    l.insert("exception_type", t.to_string());
                    (l, *n)
                })
                .collect(),
        )
    };
    storage
        .write_metrics(vec![
            emit(
                "meter_wechat_mp_request_count",
                "2026-05-01 1200",
                MeterValue::Single(40),
            ),
            emit(
                "meter_wechat_mp_request_success_count",
                "2026-05-01 1200",
                MeterValue::Single(36),
            ),
            emit(
                "meter_wechat_mp_request_count",
                "2026-05-01 1201",
                MeterValue::Single(20),
            ),
            // Every call of 12:01 succeeded; the rules still write the 0-or-more row.
            emit(
                "meter_wechat_mp_request_success_count",
                "2026-05-01 1201",
                MeterValue::Single(20),
            ),
            emit(
                "meter_wechat_mp_error_count",
                "2026-05-01 1200",
                errors(&[("ajax", 4), ("js", 1)]),
            ),
            emit(
                "meter_wechat_mp_error_count",
                "2026-05-01 1201",
                errors(&[("js", 2)]),
            ),
        ])
        .unwrap();
    wechat_service(&storage);
    let schema = schema_over(storage, false);
    let loaded = UiTemplates::load(&our_dir()).unwrap();
    let service: Value = serde_json::from_str(
        &loaded
            .get("WeChat-Mini-Program-Service")
            .unwrap()
            .configuration,
    )
    .unwrap();
    let overview = &service["children"][0]["children"][0]["children"];
    let expr_of = |title: &str| -> String {
        overview
            .as_array()
            .unwrap()
            .iter()
            .find(|w| w["widget"]["title"].as_str().unwrap().starts_with(title))
            .unwrap_or_else(|| panic!("no widget {title}"))["expressions"][0]
            .as_str()
            .unwrap()
            .to_string()
    };
    let doc = "query ($e: Entity!, $d: Duration!, $a: String!, $b: String!, $c: String!) {
        a: execExpression(expression: $a, entity: $e, duration: $d) { type results { metric { labels { key value } } values { value } } error }
        b: execExpression(expression: $b, entity: $e, duration: $d) { type results { metric { labels { key value } } values { value } } error }
        c: execExpression(expression: $c, entity: $e, duration: $d) { type results { metric { labels { key value } } values { value } } error }
      }";
    let vars = json!({
        "e": {"serviceName": WECHAT_SVC, "normal": true},
        "d": {"start": "2026-05-01 1200", "end": "2026-05-01 1201", "step": "MINUTE"},
        "a": expr_of("Errors by Type"),
        "b": expr_of("Failed Requests"),
        "c": expr_of("Request Success Rate"),
    });
    let d = data(&schema, doc, vars).await;
    let values = |key: &str, series: usize| -> Vec<Value> {
        d[key]["results"][series]["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["value"].clone())
            .collect()
    };
    assert_eq!(d["a"]["error"], Value::Null, "{}", d["a"]);
    assert_eq!(
        d["a"]["results"][0]["metric"]["labels"],
        json!([{"key": "exception_type", "value": "ajax"}])
    );
    assert_eq!(values("a", 0), vec![json!("4"), Value::Null]);
    assert_eq!(values("a", 1), vec![json!("1"), json!("2")]);
    assert_eq!(d["b"]["error"], Value::Null, "{}", d["b"]);
    assert_eq!(values("b", 0), vec![json!("4"), Value::Null]);
    // 36 of 40 calls succeeded at 12:00; all 20 at 12:01 (100, not a gap).
    assert_eq!(d["c"]["error"], Value::Null, "{}", d["c"]);
    assert_eq!(values("c", 0), vec![json!("90"), json!("100")]);

    // No calls at all: no point rather than a made-up 100.
    let vars = json!({
        "e": {"serviceName": WECHAT_SVC, "normal": true},
        "d": {"start": "2026-05-01 1201", "end": "2026-05-01 1202", "step": "MINUTE"},
        "a": expr_of("Request Success Rate"),
        "b": expr_of("Request Success Rate"),
        "c": expr_of("Request Success Rate"),
    });
    let d = data(&schema, doc, vars).await;
    assert_eq!(d["c"]["error"], Value::Null, "{}", d["c"]);
    let rate: Vec<Value> = d["c"]["results"][0]["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["value"].clone())
        .collect();
    assert_eq!(rate, vec![json!("100"), Value::Null]);
}

#[tokio::test]
async fn topology_tab_expressions_evaluate() {
    let catalog = common::mini_program_catalog();
    let storage = Arc::new(MemStorage::new());
    let edge = |host: &str| {
        let mut e = MeterEntity::new(Scope::ServiceRelation, Layer::GENERAL);
        e.service_name = WECHAT_SVC.into();
        e.dest_service_name = host.into();
        e
    };
    let emit = |metric: &str, host: &str, value| MetricEmission {
        metric: catalog.get(metric).unwrap().into(),
        entity: edge(host),
        minute: minute("2026-05-01 1200"),
        value: MeterValue::Single(value),
    };
    let mut emissions = Vec::new();
    // api.example.com: 3 calls, 100 and 300 and 200 ms, all fine. slow.example.com: 2 calls,
    // 2000 and 4000 ms, one failed.
    for (host, ms, ok) in [
        ("api.example.com", 100, 1),
        ("api.example.com", 300, 1),
        ("api.example.com", 200, 1),
        ("slow.example.com", 2000, 1),
        ("slow.example.com", 4000, 0),
    ] {
        emissions.push(emit("service_relation_client_cpm", host, 1));
        emissions.push(emit("service_relation_client_resp_time", host, ms));
        emissions.push(emit("service_relation_client_call_sla", host, ok));
    }
    storage.write_metrics(emissions).unwrap();
    wechat_service(&storage);
    let schema = schema_over(storage, false);
    let loaded = UiTemplates::load(&our_dir()).unwrap();
    let service: Value = serde_json::from_str(
        &loaded
            .get("WeChat-Mini-Program-Service")
            .unwrap()
            .configuration,
    )
    .unwrap();
    let topology = &service["children"][0]["children"][3]["children"];
    let doc = "query ($e: Entity!, $d: Duration!, $x: String!) {
        r: execExpression(expression: $x, entity: $e, duration: $d) { type error results { values { id value } } } }";
    let d = json!({"start": "2026-05-01 1200", "end": "2026-05-01 1201", "step": "MINUTE"});
    let service_entity = json!({"serviceName": WECHAT_SVC, "normal": true});
    let list = |r: &Value| -> Vec<(String, String)> {
        r["r"]["results"][0]["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| {
                (
                    v["id"].as_str().unwrap().to_string(),
                    v["value"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    let slowest = topology[1]["expressions"][0].as_str().unwrap();
    let r = data(
        &schema,
        doc,
        json!({"e": service_entity, "d": d, "x": slowest}),
    )
    .await;
    assert_eq!(r["r"]["error"], Value::Null, "{r}");
    assert_eq!(
        list(&r),
        [
            ("slow.example.com".to_string(), "3000".to_string()),
            ("api.example.com".to_string(), "200".to_string())
        ]
    );
    let failing = topology[2]["expressions"][0].as_str().unwrap();
    let r = data(
        &schema,
        doc,
        json!({"e": service_entity, "d": d, "x": failing}),
    )
    .await;
    assert_eq!(r["r"]["error"], Value::Null, "{r}");
    assert_eq!(
        list(&r),
        [
            ("slow.example.com".to_string(), "50".to_string()),
            ("api.example.com".to_string(), "100".to_string())
        ]
    );
    // The edge values booster-ui shows on mini program → slow.example.com.
    let relation = json!({"scope": "ServiceRelation", "serviceName": WECHAT_SVC, "normal": true,
                          "destServiceName": "slow.example.com", "destNormal": true});
    let mut edge_values = Vec::new();
    for e in topology[0]["linkClientExpressions"].as_array().unwrap() {
        let r = data(&schema, doc, json!({"e": relation, "d": d, "x": e})).await;
        assert_eq!(r["r"]["error"], Value::Null, "{e}: {r}");
        edge_values.push(r["r"]["results"][0]["values"][0]["value"].clone());
    }
    assert_eq!(edge_values, [json!("2"), json!("3000"), json!("50")]);
}

#[tokio::test]
async fn a_malformed_document_still_gets_a_data_key() {
    let schema = schema_over(Arc::new(MemStorage::new()), false);
    let resp = run(&schema, "query { noSuchField }", json!({})).await;
    assert_eq!(resp["data"], json!({}), "{resp}");
    assert!(resp["errors"][0]["message"]
        .as_str()
        .unwrap()
        .contains("noSuchField"));
}
