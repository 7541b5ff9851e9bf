//! The mini-program error-log rule (§3.3/§3.4): the project's rule files must behave exactly as
//! upstream's on the same logs, and both must match the spec.
use std::path::{Path, PathBuf};

use skylark_core::traffic::{InstanceTraffic, ServiceTraffic, Traffic};
use skylark_core::{ContentType, Layer, LogBody, LogData, Sample};
use skylark_lal::{LalEngine, LalOutput};

const NOW: i64 = 1_700_000_123_456;
const TS: i64 = 1_700_000_000_000;

fn ours() -> LalEngine {
    let dir = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../config/lal"));
    LalEngine::load(&[dir.join("miniprogram.yaml"), dir.join("default.yaml")]).unwrap()
}

fn upstream() -> Option<LalEngine> {
    let dir = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/reference/skywalking/rules-all/lal"
    ));
    if !dir.is_dir() {
        eprintln!("skipping upstream comparison: {} is absent", dir.display());
        return None;
    }
    Some(LalEngine::load(&[dir.join("miniprogram.yaml"), dir.join("default.yaml")]).unwrap())
}

fn kv(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn log(platform: Option<&str>, instance: &str, tags: &[(&str, &str)], body: &str) -> LogData {
    let mut resource = vec![("service.name", "mp-shop")];
    if let Some(p) = platform {
        resource.push(("miniprogram.platform", p));
    }
    if !instance.is_empty() {
        resource.push(("service.instance.id", instance));
    }
    LogData {
        service: "mp-shop".into(),
        service_instance: instance.into(),
        timestamp_ms: TS,
        body: LogBody::Text(body.into()),
        tags: kv(tags),
        source_attributes: kv(&resource),
        ..Default::default()
    }
}

fn wechat_js_error() -> LogData {
    log(
        Some("wechat"),
        "v1.2.0",
        &[
            ("exception.type", "js"),
            ("exception.stacktrace", "at onLoad (pages/index.js:3)"),
            ("miniprogram.page.path", "pages/index/index"),
        ],
        "TypeError: x is undefined",
    )
}

fn alipay_ajax_error() -> LogData {
    log(
        Some("alipay"),
        "",
        &[
            ("exception.type", "ajax"),
            ("http.request.method", "GET"),
            ("http.response.status_code", "500"),
            ("server.address", "api.example.com"),
            ("miniprogram.page.path", "pages/cart/cart"),
        ],
        "GET https://api.example.com/cart?id=1 failed: 500",
    )
}

/// Runs both rule sets, asserts they agree, and returns the output.
fn run(data: LogData) -> LalOutput {
    let mine = ours().process_at(data.clone(), NOW);
    if let Some(up) = upstream() {
        assert_eq!(
            mine,
            up.process_at(data, NOW),
            "project rules differ from upstream"
        );
    }
    mine
}

fn sample(platform: &str, exception_type: &str) -> Sample {
    Sample {
        name: "miniprogram_error_count".into(),
        labels: [
            ("service_name", "mp-shop"),
            ("exception_type", exception_type),
            ("miniprogram_platform", platform),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect(),
        value: 1.0,
        timestamp_ms: TS,
    }
}

#[test]
fn wechat_js_error_is_claimed_with_instance_and_page() {
    let out = run(wechat_js_error());
    assert_eq!(out.records.len(), 1);
    let r = &out.records[0];
    assert_eq!(r.layer, Layer::WECHAT_MINI_PROGRAM);
    assert_eq!(r.service, "mp-shop");
    assert_eq!(r.service_instance, "v1.2.0");
    assert_eq!(r.endpoint, "pages/index/index");
    assert_eq!(r.timestamp_ms, TS);
    assert_eq!(r.trace_id, None);
    assert_eq!(r.content_type, ContentType::Text);
    assert_eq!(r.content, "TypeError: x is undefined");
    assert_eq!(
        r.tags,
        kv(&[
            ("exception.type", "js"),
            ("exception.stacktrace", "at onLoad (pages/index.js:3)"),
            ("miniprogram.page.path", "pages/index/index"),
            ("platform", "wechat"),
        ]),
        "the extractor's copies of attributes are not stored a second time"
    );
    assert_eq!(
        out.traffic,
        vec![
            Traffic::Service(ServiceTraffic {
                name: "mp-shop".into(),
                layer: Layer::WECHAT_MINI_PROGRAM
            }),
            Traffic::Instance(InstanceTraffic {
                service_name: "mp-shop".into(),
                name: "v1.2.0".into(),
                layer: Layer::WECHAT_MINI_PROGRAM
            }),
        ]
    );
    assert_eq!(out.samples.len(), 1);
    let family = &out.samples[0]["miniprogram_error_count"];
    assert_eq!(family.samples, vec![sample("wechat", "js")]);
}

#[test]
fn alipay_ajax_error_without_instance() {
    let out = run(alipay_ajax_error());
    assert_eq!(out.records.len(), 1);
    let r = &out.records[0];
    assert_eq!(r.layer, Layer::ALIPAY_MINI_PROGRAM);
    assert_eq!(r.service_instance, "");
    assert_eq!(r.endpoint, "pages/cart/cart");
    // Original five attributes, then the extractor's non-empty tags that are new pairs (no
    // stacktrace here; exception.type and server.address are already there).
    assert_eq!(
        r.tags[5..].to_vec(),
        kv(&[
            ("platform", "alipay"),
            ("http.method", "GET"),
            ("http.status", "500"),
        ])
    );
    for key in ["exception.type", "server.address"] {
        assert_eq!(
            r.tags.iter().filter(|(k, _)| k == key).count(),
            1,
            "{key} is stored once"
        );
    }
    // No service.instance.id → service traffic only.
    assert_eq!(
        out.traffic,
        vec![Traffic::Service(ServiceTraffic {
            name: "mp-shop".into(),
            layer: Layer::ALIPAY_MINI_PROGRAM
        })]
    );
    assert_eq!(
        out.samples[0]["miniprogram_error_count"].samples,
        vec![sample("alipay", "ajax")]
    );
}

#[test]
fn log_without_platform_falls_back_to_general() {
    let data = log(None, "dev-1", &[("exception.type", "js")], "boom");
    let out = run(data);
    assert_eq!(out.records.len(), 1);
    let r = &out.records[0];
    assert_eq!(r.layer, Layer::GENERAL);
    assert_eq!(r.tags, kv(&[("exception.type", "js")]), "stored as-is");
    assert_eq!(r.service_instance, "dev-1");
    assert!(out.samples.is_empty());
    assert_eq!(
        out.traffic[0],
        Traffic::Service(ServiceTraffic {
            name: "mp-shop".into(),
            layer: Layer::GENERAL
        })
    );
}

#[test]
fn empty_exception_type_falls_back_to_general() {
    let data = log(
        Some("wechat"),
        "",
        &[("exception.type", ""), ("miniprogram.page.path", "p")],
        "x",
    );
    let out = run(data);
    assert_eq!(out.records.len(), 1);
    assert_eq!(out.records[0].layer, Layer::GENERAL);
    assert_eq!(
        out.records[0].endpoint, "",
        "fallback does not read the page path"
    );
    assert!(out.samples.is_empty());
    assert_eq!(out.traffic.len(), 1);
}

#[test]
fn service_layer_set_bypasses_auto_rules() {
    let mut data = wechat_js_error();
    data.layer = "GENERAL".into();
    let out = run(data);
    assert_eq!(out.records.len(), 1);
    assert_eq!(out.records[0].layer, Layer::GENERAL);
    assert!(out.samples.is_empty(), "the mini-program rule did not run");

    let mut data = wechat_js_error();
    data.layer = "NO_SUCH_LAYER".into();
    assert_eq!(run(data), LalOutput::default(), "unknown layer is dropped");

    let mut data = wechat_js_error();
    data.layer = "MESH".into();
    assert_eq!(run(data), LalOutput::default(), "no MESH rules loaded");
}

#[test]
fn zero_timestamp_uses_receive_time() {
    let mut data = wechat_js_error();
    data.timestamp_ms = 0;
    let out = run(data);
    assert_eq!(out.records[0].timestamp_ms, NOW);
    assert_eq!(
        out.samples[0]["miniprogram_error_count"].samples[0].timestamp_ms,
        NOW
    );
}

#[test]
fn other_platform_value_is_not_claimed() {
    let data = log(Some("baidu"), "", &[("exception.type", "js")], "x");
    let out = run(data);
    assert_eq!(out.records[0].layer, Layer::GENERAL);
    assert!(out.samples.is_empty());
}
