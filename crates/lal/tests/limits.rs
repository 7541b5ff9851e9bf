//! Scripts that nest too deeply are refused with `file:line:col` instead of overflowing the
//! stack of start-up or `check-rules`; arithmetic on values from logs never panics.
use std::path::PathBuf;

use skylark_core::{LogBody, LogData};
use skylark_lal::{LalEngine, MAX_HEIGHT, MAX_NESTING};

const NOW: i64 = 1_700_000_000_000;

fn on_worker_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(f)
        .expect("spawn")
        .join()
        .expect("the parser must not crash the thread")
}

fn rule_file(dsl: &str) -> String {
    let body: String = dsl.lines().map(|l| format!("      {l}\n")).collect();
    format!("rules:\n  - name: r\n    layer: GENERAL\n    dsl: |\n{body}")
}

fn load(dsl: String) -> Result<LalEngine, String> {
    on_worker_stack(move || {
        LalEngine::from_sources([(PathBuf::from("deep.yaml"), rule_file(&dsl))])
            .map_err(|e| e.to_string())
    })
}

fn tags_of(engine: &LalEngine, tags: &[(&str, &str)]) -> Vec<(String, String)> {
    let log = LogData {
        service: "svc".into(),
        timestamp_ms: NOW,
        body: LogBody::Text("x".into()),
        tags: tags
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..Default::default()
    };
    let out = engine.process_at(log, NOW);
    out.records
        .first()
        .map(|r| r.tags.clone())
        .unwrap_or_default()
}

#[test]
fn deep_scripts_are_located_errors() {
    let nesting = format!("nests deeper than {MAX_NESTING} levels");
    let height = format!("nests deeper than {MAX_HEIGHT} levels");
    let blocks = format!(
        "{}sink {{}}\n{}",
        "filter {\n".repeat(5000),
        "}\n".repeat(5000)
    );
    let parens = format!(
        "filter {{\n  if ({}tag(\"a\"){} == \"x\") {{\n    abort {{}}\n  }}\n  sink {{}}\n}}",
        "(".repeat(5000),
        ")".repeat(5000)
    );
    let negations = format!(
        "filter {{\n  if ({}true) {{\n    abort {{}}\n  }}\n  sink {{}}\n}}",
        "!".repeat(5000)
    );
    let chain = format!(
        "filter {{\n  extractor {{\n    tag 'a': parsed{}\n  }}\n  sink {{}}\n}}",
        ".b".repeat(5000)
    );
    let sum = format!(
        "filter {{\n  extractor {{\n    tag 'a': {}\n  }}\n  sink {{}}\n}}",
        vec!["1"; 5000].join(" + ")
    );
    let interpolations = format!(
        "filter {{\n  extractor {{\n    tag 'a': {}x{}\n  }}\n  sink {{}}\n}}",
        "\"${".repeat(500),
        "}\"".repeat(500)
    );
    for (dsl, message) in [
        (blocks, nesting.as_str()),
        (parens, nesting.as_str()),
        (negations, nesting.as_str()),
        (chain, height.as_str()),
        (sum, height.as_str()),
        (
            interpolations,
            "string interpolations nest deeper than 16 levels",
        ),
    ] {
        let e = load(dsl).expect_err("must not load");
        assert!(e.starts_with("deep.yaml:"), "{e}");
        assert!(e.contains(message), "{e}");
    }
}

#[test]
fn the_deepest_accepted_script_runs_on_a_worker_stack() {
    // Nested `if`s up to just under the height limit, each testing a parenthesised condition.
    let levels = MAX_HEIGHT / 2 - 5;
    let dsl = format!(
        "filter {{\n{}  extractor {{\n    tag 'deep': \"yes\"\n  }}\n{}  sink {{}}\n}}",
        "if ((tag(\"a\") == \"1\")) {\n".repeat(levels),
        "}\n".repeat(levels)
    );
    let tags = on_worker_stack(move || {
        let engine = LalEngine::from_sources([(PathBuf::from("ok.yaml"), rule_file(&dsl))])
            .unwrap_or_else(|e| panic!("{e}"));
        tags_of(&engine, &[("a", "1")])
    });
    assert!(
        tags.contains(&("deep".to_string(), "yes".to_string())),
        "{tags:?}"
    );
}

#[test]
fn long_min_arithmetic_from_a_log_does_not_panic() {
    let min = i64::MIN.to_string();
    let dsl = "filter {\n  extractor {\n    tag 'rem': (tag(\"v\") as Long) % -1\n    tag 'div': (tag(\"v\") as Long) / -1\n    tag 'neg': -(tag(\"v\") as Long)\n  }\n  sink {}\n}";
    let engine = load(dsl.to_string()).unwrap();
    let tags = tags_of(&engine, &[("v", &min)]);
    let get = |k: &str| {
        tags.iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
    };
    // Java: Long.MIN_VALUE % -1 == 0; the exact quotient 2^63 is not a long, so it is a double.
    assert_eq!(get("rem").as_deref(), Some("0"), "{tags:?}");
    assert_eq!(
        get("div").as_deref(),
        Some("9223372036854776000"),
        "{tags:?}"
    );
    // Negation overflows: the value is null and the tag is left out, as before.
    assert_eq!(get("neg"), None, "{tags:?}");
}
