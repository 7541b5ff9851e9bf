//! MAL: the input is parsed as an expression, then compiled inside a rule file twice (as a
//! rule's `exp` and as the file's `filter`), and a rule set that compiles is evaluated on a
//! small fixed batch shaped like the mini-program SDK's metrics. Nothing may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_yaml::{Mapping, Value};
use skylark_core::{Sample, SampleFamilies};
use skylark_mal::{EvalContext, RuleSet, TimeUnit};

const NOW_MS: i64 = 1_767_225_600_000;
const FIXED_EXP: &str = "miniprogram_request_duration_count.sum(['service_name']).service(['service_name'], Layer.GENERAL)";

fn rule_file(exp: &str, filter: Option<&str>) -> Option<String> {
    let mut rule = Mapping::new();
    rule.insert("name".into(), "fuzzed".into());
    rule.insert("exp".into(), exp.into());
    let mut file = Mapping::new();
    file.insert("metricPrefix".into(), "fuzz".into());
    if let Some(filter) = filter {
        file.insert("filter".into(), filter.into());
    }
    file.insert(
        "metricsRules".into(),
        Value::Sequence(vec![Value::Mapping(rule)]),
    );
    serde_yaml::to_string(&Value::Mapping(file)).ok()
}

fn sample(name: &str, labels: &[(&str, &str)], value: f64) -> Sample {
    Sample {
        name: name.into(),
        labels: labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        value,
        timestamp_ms: NOW_MS,
    }
}

fn families() -> SampleFamilies {
    let base = [
        ("service_name", "svc"),
        ("service_instance_id", "inst"),
        ("miniprogram_platform", "wechat"),
        ("miniprogram_page_path", "pages/index"),
    ];
    let mut samples = vec![
        sample("miniprogram_app_launch_duration", &base, 120.0),
        sample("miniprogram_request_duration_count", &base, 3.0),
        sample("miniprogram_request_duration_sum", &base, 450.0),
        sample("x", &[("svc", "a"), ("k", "v")], -2.5),
        sample("x", &[("svc", "b")], 0.0),
    ];
    for (le, count) in [("50", 1.0), ("100", 2.0), ("500", 3.0), ("Infinity", 3.0)] {
        let mut labels = base.to_vec();
        labels.push(("le", le));
        samples.push(sample("miniprogram_request_duration", &labels, count));
    }
    let mut out = SampleFamilies::default();
    for s in samples {
        out.entry(s.name.to_string()).or_default().samples.push(s);
    }
    out
}

fn compile_and_run(yaml: &str) {
    let Ok(rules) = RuleSet::from_sources(&[("fuzz.yaml", yaml)]) else {
        return;
    };
    let ctx = EvalContext {
        default_histogram_unit: TimeUnit::Seconds,
        now_ms: NOW_MS,
    };
    let _ = rules.definitions();
    let _ = rules.evaluate(&families(), &ctx);
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(e) = skylark_mal::parse_expression(text) {
        assert!(e.line >= 1, "parse errors carry a 1-based line: {e:?}");
    }
    if let Some(yaml) = rule_file(text, None) {
        compile_and_run(&yaml);
    }
    if let Some(yaml) = rule_file(FIXED_EXP, Some(text)) {
        compile_and_run(&yaml);
    }
});
