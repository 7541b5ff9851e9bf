//! LAL: the input is parsed and compiled as a script, then loaded inside a rule file
//! (`layer: auto`) and, when that loads, run on fixed logs (text and JSON bodies) shaped like the
//! mini-program SDK's error logs. Nothing may panic.
#![no_main]

use std::path::PathBuf;

use libfuzzer_sys::fuzz_target;
use serde_yaml::{Mapping, Value};
use skylark_core::{LogBody, LogData};
use skylark_lal::{compile, parse, CompileOptions, LalEngine};

const NOW_MS: i64 = 1_767_225_600_000;

fn rule_file(dsl: &str) -> Option<String> {
    let mut rule = Mapping::new();
    rule.insert("name".into(), "fuzzed".into());
    rule.insert("layer".into(), "auto".into());
    rule.insert("dsl".into(), dsl.into());
    let mut file = Mapping::new();
    file.insert("rules".into(), Value::Sequence(vec![Value::Mapping(rule)]));
    serde_yaml::to_string(&Value::Mapping(file)).ok()
}

fn log(body: LogBody) -> LogData {
    let pairs = |items: &[(&str, &str)]| -> Vec<(String, String)> {
        items
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    };
    LogData {
        service: "svc".to_owned(),
        service_instance: "inst".to_owned(),
        endpoint: String::new(),
        layer: String::new(),
        timestamp_ms: NOW_MS,
        body,
        tags: pairs(&[
            ("exception.type", "TypeError"),
            ("exception.stacktrace", "at a (app.js:1:2)"),
            ("miniprogram.page.path", "pages/index"),
            ("http.response.status_code", "500"),
        ]),
        source_attributes: pairs(&[
            ("service.name", "svc"),
            ("miniprogram.platform", "wechat"),
            ("service.instance.id", "inst"),
        ]),
        trace_id: Some("t1".to_owned()),
        segment_id: Some("s1".to_owned()),
        span_id: Some(0),
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(script) = parse(text) {
        let _ = compile(&script, &CompileOptions::default());
        let slow_sql = CompileOptions {
            output_type: Some("SlowSQL".to_owned()),
            extra_layers: vec!["CUSTOM".to_owned()],
        };
        let _ = compile(&script, &slow_sql);
    }
    let Some(yaml) = rule_file(text) else {
        return;
    };
    let Ok(engine) = LalEngine::from_sources([(PathBuf::from("fuzz.yaml"), yaml)]) else {
        return;
    };
    for body in [
        LogBody::Text("GET /api/user failed: 500 after 123 ms".to_owned()),
        LogBody::Json(r#"{"level":"ERROR","code":500,"msg":"x","nested":{"a":[1,2]}}"#.to_owned()),
        LogBody::None,
    ] {
        let _ = engine.process_at(log(body), NOW_MS);
    }
});
