//! LAL nesting: a wrapper repeated N times (N up to 8,191, from the first two bytes) around a
//! core inside a rule's script, so deep blocks, conditions, chains and interpolations are reached
//! within libFuzzer's default input size. Loading must give an engine or a `file:line:col`
//! error, and a loaded rule must process a log, never crash.
#![no_main]

use std::path::PathBuf;

use libfuzzer_sys::fuzz_target;
use skylark_core::{LogBody, LogData};
use skylark_lal::LalEngine;

/// (opening, closing, core): the core completes a script or an expression.
const WRAPPERS: &[(&str, &str, &str)] = &[
    ("filter { ", " }", "sink {}"),
    ("if (tag(\"a\") == \"1\") { ", " }", "abort {}"),
    ("(", ")", "tag(\"a\")"),
    ("!", "", "true"),
    ("", ".b", "parsed"),
    ("1 + ", "", "1"),
    ("\"${", "}\"", "x"),
    ("x ? ", " : y", "z"),
    ("", "[0]", "parsed"),
];

fuzz_target!(|data: &[u8]| {
    if data.len() < 3 {
        return;
    }
    let n = usize::from(u16::from_le_bytes([data[0], data[1]]) & 0x1fff);
    let rest = String::from_utf8_lossy(&data[3..]);
    let choice = usize::from(data[2]) % (WRAPPERS.len() + 1);
    let (open, close, core) = match WRAPPERS.get(choice) {
        Some((o, c, k)) => (o.to_string(), c.to_string(), k.to_string()),
        None => {
            let (o, c) = rest.split_once('|').unwrap_or((&rest, ""));
            (o.to_string(), c.to_string(), "x".to_string())
        }
    };
    let core = if choice < WRAPPERS.len() && !rest.is_empty() {
        rest.to_string()
    } else {
        core
    };
    let nested = format!("{}{core}{}", open.repeat(n), close.repeat(n));
    // Statement wrappers form the script; expression wrappers sit in a condition and a tag.
    let dsl = if choice < 2 {
        format!("filter {{\n{nested}\nsink {{}}\n}}")
    } else {
        format!(
            "filter {{\nif ({nested}) {{\nabort {{}}\n}}\nextractor {{\ntag 't': {nested}\n}}\nsink {{}}\n}}"
        )
    };
    let body: String = dsl.lines().map(|l| format!("      {l}\n")).collect();
    let yaml = format!("rules:\n  - name: r\n    layer: GENERAL\n    dsl: |\n{body}");
    let Ok(engine) = LalEngine::from_sources([(PathBuf::from("fuzz.yaml"), yaml)]) else {
        return;
    };
    let log = LogData {
        service: "svc".to_owned(),
        timestamp_ms: 1_767_225_600_000,
        body: LogBody::Json(r#"{"b":{"b":[1]}}"#.to_owned()),
        tags: vec![("a".to_owned(), "1".to_owned())],
        ..Default::default()
    };
    let _ = engine.process_at(log, 1_767_225_600_000);
});
