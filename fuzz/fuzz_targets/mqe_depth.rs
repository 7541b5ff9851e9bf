//! MQE nesting: builds an expression from a wrapper repeated N times (N up to 8,191, from the
//! first two bytes) around a core, with the rest of the input as wrapper and core text, so deep
//! inputs are reached within libFuzzer's default input size. Parsing, printing and evaluating
//! must give a result or an error, never a crash.
#![no_main]

use libfuzzer_sys::fuzz_target;
use skylark_core::{MetricCatalog, MetricDefinition, MetricFunction, Scope, Step, TimeBucket};
use skylark_query::mqe;
use skylark_storage::MemStorage;

const WRAPPERS: &[(&str, &str)] = &[
    ("(", ")"),
    ("abs(", ")"),
    ("avg(", ")"),
    ("round(", ",2)"),
    ("m+", ""),
    ("1*", ""),
    ("relabels(", ",p='1',q='2')"),
    ("view_as_seq(m,", ")"),
    ("sort_values(", ",3,des,avg)"),
];

fuzz_target!(|data: &[u8]| {
    if data.len() < 3 {
        return;
    }
    let n = usize::from(u16::from_le_bytes([data[0], data[1]]) & 0x1fff);
    let rest = String::from_utf8_lossy(&data[3..]);
    let (open, close) = match WRAPPERS.get(usize::from(data[2]) % (WRAPPERS.len() + 1)) {
        Some(w) => (w.0.to_string(), w.1.to_string()),
        // Free-form: the rest is split into an opening and a closing text at the first `|`.
        None => {
            let (o, c) = rest.split_once('|').unwrap_or((&rest, ""));
            (o.to_string(), c.to_string())
        }
    };
    let free_form = usize::from(data[2]) % (WRAPPERS.len() + 1) == WRAPPERS.len();
    let core = if free_form || rest.is_empty() {
        "m".to_string()
    } else {
        rest.to_string()
    };
    let text = format!("{}{core}{}", open.repeat(n), close.repeat(n));
    if let Ok(e) = mqe::parse(&text) {
        let printed = e.to_string();
        assert!(
            mqe::parse_expression(&printed).is_ok(),
            "printed text parses: {printed}"
        );
    }
    let storage = MemStorage::new();
    let catalog = MetricCatalog::default();
    let _ = catalog.register(MetricDefinition {
        name: "m".to_string(),
        scope: Scope::Service,
        function: MetricFunction::Avg,
        percentile_ranks: Vec::new(),
    });
    let entity = mqe::MqeEntity::service("svc");
    let start = TimeBucket::from_epoch_ms(1_767_225_600_000, Step::Minute).expect("bucket");
    let buckets = start.range_to(start, 1);
    let ctx = mqe::MqeContext {
        storage: &storage,
        catalog: &catalog,
        entity: &entity,
        buckets: &buckets,
        limits: mqe::MqeLimits::default(),
    };
    let _ = mqe::execute(&ctx, &text);
});
