//! MAL nesting: a wrapper repeated N times (N up to 8,191, from the first two bytes) around a
//! core, inside a rule file's `exp:`, so deep expressions and closures are reached within
//! libFuzzer's default input size. Loading must give a rule set or a `file:line:col` error, and
//! a loaded rule must evaluate, never crash.
#![no_main]

use libfuzzer_sys::fuzz_target;
use skylark_core::{Sample, SampleFamilies};
use skylark_mal::{parse_expression, EvalContext, RuleSet, TimeUnit};

const WRAPPERS: &[(&str, &str)] = &[
    ("(", ")"),
    ("-", ""),
    ("!", ""),
    ("m + ", ""),
    ("", ".sum(['svc'])"),
    ("", " as Long"),
    ("[", "]"),
    ("a ? ", " : b"),
    ("m.tag({tags -> if (tags.svc == 'a') { ", " }})"),
    ("m.tag({tags -> { ", " }})"),
];

fuzz_target!(|data: &[u8]| {
    if data.len() < 3 {
        return;
    }
    let n = usize::from(u16::from_le_bytes([data[0], data[1]]) & 0x1fff);
    let rest = String::from_utf8_lossy(&data[3..]);
    let (open, close) = match WRAPPERS.get(usize::from(data[2]) % (WRAPPERS.len() + 1)) {
        Some(w) => (w.0.to_string(), w.1.to_string()),
        None => {
            let (o, c) = rest.split_once('|').unwrap_or((&rest, ""));
            (o.to_string(), c.to_string())
        }
    };
    let core = if rest.is_empty() || rest.contains('|') {
        "m"
    } else {
        &rest
    };
    let exp = format!("{}{core}{}", open.repeat(n), close.repeat(n));
    if let Err(e) = parse_expression(&exp) {
        assert!(e.line >= 1, "lines are 1-based: {e}");
    }
    let yaml = format!(
        "metricPrefix: f\nmetricsRules:\n  - name: d\n    exp: {}\n",
        serde_json::to_string(&format!(
            "({exp}).sum(['svc']).service(['svc'], Layer.GENERAL)"
        ))
        .unwrap_or_default()
    );
    let Ok(rules) = RuleSet::from_sources(&[("fuzz.yaml", &yaml)]) else {
        return;
    };
    let mut families = SampleFamilies::default();
    families
        .entry("m".to_string())
        .or_default()
        .samples
        .push(Sample {
            name: "m".into(),
            labels: [("svc", "a")].into_iter().collect(),
            value: 1.0,
            timestamp_ms: 1_767_225_600_000,
        });
    let ctx = EvalContext {
        default_histogram_unit: TimeUnit::Seconds,
        now_ms: 1_767_225_660_000,
    };
    let _ = rules.evaluate(&families, &ctx);
});
