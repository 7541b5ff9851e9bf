//! GraphQL: the input (up to a NUL byte) is executed as a document against the query schema
//! over an empty `MemStorage`, with the rule-derived metric catalog and the shipped UI templates;
//! what follows the NUL, if any, is the variables JSON. Every document must give a response
//! (data and/or errors), never a panic, within a small timeout.
#![no_main]

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_graphql::{Request, Variables};
use libfuzzer_sys::fuzz_target;
use skylark_core::MetricCatalog;
use skylark_mal::RuleSet;
use skylark_query::{schema_with_ui, QueryContext, SkylarkSchema, UiContext, UiTemplates};
use skylark_storage::MemStorage;

const TIMEOUT: Duration = Duration::from_secs(2);

/// Our own rule files, read in place so the catalog matches what the server registers.
const RULE_FILES: [(&str, &str); 6] = [
    (
        "wechat-mini-program.yaml",
        include_str!("../../otel-rules/miniprogram/wechat-mini-program.yaml"),
    ),
    (
        "wechat-mini-program-instance.yaml",
        include_str!("../../otel-rules/miniprogram/wechat-mini-program-instance.yaml"),
    ),
    (
        "alipay-mini-program.yaml",
        include_str!("../../otel-rules/miniprogram/alipay-mini-program.yaml"),
    ),
    (
        "alipay-mini-program-instance.yaml",
        include_str!("../../otel-rules/miniprogram/alipay-mini-program-instance.yaml"),
    ),
    (
        "miniprogram-wechat.yaml",
        include_str!("../../config/log-mal-rules/miniprogram-wechat.yaml"),
    ),
    (
        "miniprogram-alipay.yaml",
        include_str!("../../config/log-mal-rules/miniprogram-alipay.yaml"),
    ),
];

struct Harness {
    runtime: tokio::runtime::Runtime,
    schema: SkylarkSchema,
}

fn harness() -> &'static Harness {
    static HARNESS: OnceLock<Harness> = OnceLock::new();
    HARNESS.get_or_init(|| {
        let catalog = MetricCatalog::new();
        for (name, text) in RULE_FILES {
            let rules = RuleSet::from_sources(&[(name, text)])
                .unwrap_or_else(|e| panic!("shipped rule file {name} does not load: {e}"));
            for def in rules.definitions() {
                // The same metric may be defined by two files; the first registration wins.
                let _ = catalog.register(def);
            }
        }
        let templates_dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../ui-templates");
        let templates = UiTemplates::load(std::path::Path::new(templates_dir))
            .unwrap_or_else(|e| panic!("shipped UI templates do not load: {e}"));
        let schema = schema_with_ui(
            QueryContext {
                storage: Arc::new(MemStorage::new()),
                catalog: Arc::new(catalog),
                version: "10.3.0".to_owned(),
                metrics_ttl_days: 7,
                records_ttl_days: 3,
                mqe_limits: Default::default(),
            },
            UiContext {
                templates: Arc::new(templates),
                ui_template_editing: false,
                trace_link_template: None,
            },
        );
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap_or_else(|e| panic!("cannot build the runtime: {e}"));
        Harness { runtime, schema }
    })
}

fuzz_target!(|data: &[u8]| {
    let (document, variables) = match data.iter().position(|&b| b == 0) {
        Some(nul) => (&data[..nul], Some(&data[nul + 1..])),
        None => (data, None),
    };
    let Ok(document) = std::str::from_utf8(document) else {
        return;
    };
    let mut request = Request::new(document);
    if let Some(json) = variables.and_then(|v| serde_json::from_slice(v).ok()) {
        request = request.variables(Variables::from_json(json));
    }
    let harness = harness();
    let response = harness
        .runtime
        .block_on(async { tokio::time::timeout(TIMEOUT, harness.schema.execute(request)).await });
    if let Ok(response) = response {
        assert!(
            serde_json::to_string(&response).is_ok(),
            "every response serializes"
        );
    }
});
