//! LAL behaviour beyond the mini-program rule: abort, parsers, samplers, errors.
use std::path::PathBuf;

use skylark_core::{Layer, LogBody, LogData};
use skylark_lal::{check_file, Error, LalEngine, LalOutput};

const NOW: i64 = 1_700_000_000_000;

fn engine(files: &[&str]) -> LalEngine {
    LalEngine::from_sources(
        files
            .iter()
            .enumerate()
            .map(|(i, text)| (PathBuf::from(format!("rules{i}.yaml")), text.to_string())),
    )
    .unwrap()
}

fn rule(layer: &str, dsl: &str) -> String {
    let body: String = dsl.lines().map(|l| format!("      {l}\n")).collect();
    format!("rules:\n  - name: r\n    layer: {layer}\n    dsl: |\n{body}")
}

const DEFAULT: &str = "rules:\n  - name: default\n    layer: GENERAL\n    dsl: |\n      filter {\n        sink {}\n      }\n";

fn data(layer: &str, body: LogBody, tags: &[(&str, &str)]) -> LogData {
    LogData {
        service: "svc".into(),
        layer: layer.into(),
        timestamp_ms: NOW,
        body,
        tags: tags
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..Default::default()
    }
}

#[test]
fn abort_skips_extractor_metrics_and_sink() {
    let e = engine(&[
        &rule(
            "auto",
            r#"filter {
  if (tag("keep") != "yes") {
    abort {}
  }
  extractor {
    layer "GENERAL"
    tag 'seen': "1"
    metrics {
      name "m"
      value 1
    }
  }
  sink {}
}"#,
        ),
        DEFAULT,
    ]);
    let kept = e.process_at(data("", LogBody::Text("a".into()), &[("keep", "yes")]), NOW);
    assert_eq!(kept.samples.len(), 1);
    assert_eq!(kept.records.len(), 1);
    assert_eq!(kept.records[0].tags.last().unwrap().0, "seen");

    let aborted = e.process_at(data("", LogBody::Text("a".into()), &[("keep", "no")]), NOW);
    assert!(aborted.samples.is_empty(), "metrics skipped after abort");
    assert_eq!(aborted.records.len(), 1, "GENERAL fallback stored it");
    assert!(
        aborted.records[0].tags.iter().all(|(k, _)| k != "seen"),
        "extractor skipped after abort"
    );
}

#[test]
fn metrics_are_emitted_even_if_a_later_abort_hands_the_log_back() {
    let e = engine(&[
        &rule(
            "auto",
            "filter {\n  extractor {\n    metrics {\n      name \"early\"\n      value 2\n    }\n  }\n  abort {}\n}",
        ),
        DEFAULT,
    ]);
    let out = e.process_at(data("", LogBody::None, &[]), NOW);
    assert_eq!(out.samples.len(), 1);
    assert_eq!(out.samples[0]["early"].samples[0].value, 2.0);
    assert_eq!(out.records[0].layer, Layer::GENERAL);
}

#[test]
fn auto_rule_without_layer_drops_at_sink() {
    let e = engine(&[&rule("auto", "filter {\n  sink {}\n}"), DEFAULT]);
    let out = e.process_at(data("", LogBody::Text("x".into()), &[]), NOW);
    assert_eq!(
        out,
        LalOutput::default(),
        "claimed, so no GENERAL fallback, yet not stored"
    );
}

#[test]
fn text_regexp_parser_feeds_parsed_and_timestamp_format() {
    let e = engine(&[&rule(
        "NGINX",
        r#"filter {
  text {
    regexp $/(?<time>\d{4}/\d{2}/\d{2} \d{2}:\d{2}:\d{2}) \[(?<level>.+)].*/$
  }
  extractor {
    tag level: parsed.level
    timestamp parsed.time as String, "yyyy/MM/dd HH:mm:ss"
  }
  sink {}
}"#,
    )]);
    let out = e.process_at(
        data(
            "NGINX",
            LogBody::Text("2021/09/01 10:00:01 [error] 7#7: open() failed".into()),
            &[],
        ),
        NOW,
    );
    assert_eq!(out.records.len(), 1);
    assert_eq!(out.records[0].layer, Layer(22));
    assert_eq!(out.records[0].timestamp_ms, 1_630_490_401_000);
    assert_eq!(
        out.records[0].tags,
        vec![("level".to_string(), "error".to_string())]
    );

    // No match: the parser aborts by default, so nothing is stored.
    let out = e.process_at(data("NGINX", LogBody::Text("garbage".into()), &[]), NOW);
    assert!(out.records.is_empty());
}

#[test]
fn json_parser_and_abort_on_failure() {
    let dsl = |abort: bool| {
        format!(
            r#"filter {{
  json {{
    abortOnFailure {abort}
  }}
  extractor {{
    service parsed.svc as String
    tag 'code': parsed.resp?.code
    if (parsed.resp?.code as Integer >= 500) {{
      tag 'severe': "true"
    }}
  }}
  sink {{}}
}}"#
        )
    };
    let e = engine(&[&rule("GENERAL", &dsl(true))]);
    let out = e.process_at(
        data(
            "GENERAL",
            LogBody::Json(r#"{"svc":"orders","resp":{"code":503}}"#.into()),
            &[],
        ),
        NOW,
    );
    let r = &out.records[0];
    assert_eq!(r.service, "orders");
    assert_eq!(
        r.tags,
        vec![
            ("code".to_string(), "503".to_string()),
            ("severe".to_string(), "true".to_string())
        ]
    );
    // Traffic follows the metadata service, not the extracted one.
    assert_eq!(
        out.traffic,
        vec![skylark_core::traffic::Traffic::Service(
            skylark_core::traffic::ServiceTraffic {
                name: "svc".into(),
                layer: Layer::GENERAL
            }
        )]
    );

    let bad = data("GENERAL", LogBody::Text("not json".into()), &[]);
    assert!(e.process_at(bad.clone(), NOW).records.is_empty());
    let lenient = engine(&[&rule("GENERAL", &dsl(false))]);
    let out = lenient.process_at(bad, NOW);
    assert_eq!(out.records.len(), 1);
    assert_eq!(
        out.records[0].service, "svc",
        "null service keeps the metadata's"
    );
}

#[test]
fn rate_limit_sampler_per_id_per_minute() {
    let e = engine(&[&rule(
        "GENERAL",
        r#"filter {
  sink {
    sampler {
      rateLimit("${log.service}:${tag("code")}") {
        rpm 2
      }
    }
  }
}"#,
    )]);
    let log = |code: &str| data("GENERAL", LogBody::Text("x".into()), &[("code", code)]);
    let stored = |now: i64, code: &str| e.process_at(log(code), now).records.len();
    assert_eq!(stored(NOW, "500"), 1);
    assert_eq!(stored(NOW + 1, "500"), 1);
    assert_eq!(stored(NOW + 2, "500"), 0, "third in the minute is dropped");
    assert_eq!(stored(NOW + 3, "404"), 1, "other ids have their own budget");
    assert_eq!(stored(NOW + 60_000, "500"), 1, "next minute resets");
}

#[test]
fn possibility_enforcer_and_dropper() {
    let run = |sink: &str| {
        let e = engine(&[&rule(
            "GENERAL",
            &format!("filter {{\n  sink {{\n{sink}\n  }}\n}}"),
        )]);
        e.process_at(data("GENERAL", LogBody::None, &[]), NOW)
            .records
            .len()
    };
    assert_eq!(run("sampler {\n possibility(0)\n}"), 0);
    assert_eq!(run("sampler {\n possibility(100)\n}"), 1);
    assert_eq!(run("dropper {}"), 0);
    assert_eq!(run("sampler {\n possibility(0)\n}\nenforcer {}"), 1);
}

#[test]
fn no_sink_means_nothing_is_stored() {
    let e = engine(&[&rule(
        "GENERAL",
        "filter {\n  extractor {\n    tag 'a': \"b\"\n  }\n}",
    )]);
    assert!(e
        .process_at(data("GENERAL", LogBody::None, &[]), NOW)
        .records
        .is_empty());
}

fn load_error(yaml: &str) -> String {
    let dir = std::env::temp_dir().join(format!("skylark-lal-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("bad-{}.yaml", yaml.len()));
    std::fs::write(&path, yaml).unwrap();
    let from_check = check_file(&path).unwrap_err().to_string();
    let from_load = match LalEngine::load(&[&path]) {
        Err(Error::Invalid(d)) => d.to_string(),
        other => panic!("expected a diagnostic, got {other:?}"),
    };
    assert_eq!(from_check, from_load);
    std::fs::remove_file(&path).unwrap();
    from_check
        .split_once(".yaml:")
        .map(|(_, rest)| rest.to_string())
        .unwrap()
}

#[test]
fn bad_files_report_file_line_and_column() {
    // Syntax error inside the DSL block: line 7 of the file, column of the `)`.
    let msg = load_error(
        "# header\nrules:\n  - name: broken\n    layer: GENERAL\n    dsl: |\n      filter {\n        if (tag(\"a\") == ) {\n          abort {}\n        }\n      }\n",
    );
    assert!(msg.starts_with("7:25: "), "{msg}");
    assert!(msg.contains("rule `broken`"), "{msg}");

    // Unknown statement in the extractor.
    let msg = load_error(
        "rules:\n  - name: r\n    layer: GENERAL\n    dsl: |\n      filter {\n        extractor {\n          servise \"x\"\n        }\n      }\n",
    );
    assert!(msg.starts_with("7:11: "), "{msg}");
    assert!(
        msg.contains("unknown extractor statement `servise`"),
        "{msg}"
    );

    // Unknown layer on the rule.
    let msg = load_error("rules:\n  - name: r\n    layer: NOPE\n    dsl: |\n      filter {}\n");
    assert!(msg.starts_with("3:12: "), "{msg}");

    // Unknown layer literal in the script.
    let msg = load_error(
        "rules:\n  - name: r\n    layer: auto\n    dsl: |\n      filter {\n        extractor {\n          layer \"WECHAT\"\n        }\n      }\n",
    );
    assert!(msg.starts_with("7:17: "), "{msg}");

    // YAML shape error.
    let msg = load_error("rules:\n  - name: r\n    layer: GENERAL\n    dls: x\n");
    assert!(msg.contains("invalid rule file"), "{msg}");
    assert!(msg.starts_with("4:5: "), "{msg}");
    assert!(!msg.contains("at line"), "{msg}");

    // Invalid regexp.
    let msg = load_error(
        "rules:\n  - name: r\n    layer: GENERAL\n    dsl: |\n      filter {\n        text {\n          regexp \"(unclosed\"\n        }\n      }\n",
    );
    assert!(msg.starts_with("7:18: "), "{msg}");
    assert!(msg.contains("invalid regexp"), "{msg}");
}

#[test]
fn missing_file_is_a_read_error() {
    let err = LalEngine::load(&["/nonexistent/lal.yaml"]).unwrap_err();
    assert!(matches!(err, Error::Read { .. }));
    assert!(err.to_string().contains("/nonexistent/lal.yaml"));
}

#[test]
fn duplicate_auto_rule_names_are_rejected() {
    let r = rule("auto", "filter {\n  abort {}\n}");
    let err = LalEngine::from_sources([
        (PathBuf::from("a.yaml"), r.clone()),
        (PathBuf::from("b.yaml"), r),
    ])
    .unwrap_err();
    let text = err.to_string();
    assert!(text.starts_with("b.yaml:2:"), "{text}");
    assert!(text.contains("duplicate"), "{text}");
}

#[test]
fn engine_can_be_shared_across_threads() {
    fn shared<T: Send + Sync>(_: &T) {}
    let e = engine(&[DEFAULT]);
    shared(&e);
    let out = std::thread::scope(|s| {
        s.spawn(|| e.process_at(data("", LogBody::Text("t".into()), &[]), NOW))
            .join()
            .unwrap()
    });
    assert_eq!(out.records[0].layer, Layer::GENERAL);
}
