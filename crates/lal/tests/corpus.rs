//! Every upstream LAL file, and the project's own, must load and check.
use std::path::{Path, PathBuf};

use skylark_lal::{check_file, LalEngine};

fn upstream_dir() -> PathBuf {
    Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/reference/skywalking/rules-all/lal"
    ))
    .to_path_buf()
}

#[test]
fn every_upstream_lal_file_checks() {
    let dir = upstream_dir();
    if !dir.is_dir() {
        eprintln!("skipping: {} is absent", dir.display());
        return;
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")))
        .collect();
    files.sort();
    assert!(files.len() >= 10, "corpus unexpectedly small: {files:?}");
    let failures: Vec<String> = files
        .iter()
        .filter_map(|f| check_file(f).err().map(|d| d.to_string()))
        .collect();
    assert!(failures.is_empty(), "failures:\n{}", failures.join("\n"));
    // The whole corpus also loads as one engine, as OAP loads its lalFiles list.
    let engine = LalEngine::load(&files).unwrap();
    assert!(engine.rule_count() >= 14);
}

#[test]
fn project_rule_files_check() {
    let dir = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../config/lal"));
    for name in ["miniprogram.yaml", "default.yaml"] {
        check_file(dir.join(name)).unwrap();
    }
}

fn log(layer: &str, body: &str, tags: &[(&str, &str)]) -> skylark_core::LogData {
    skylark_core::LogData {
        service: "gw".into(),
        layer: layer.into(),
        timestamp_ms: 1_700_000_000_000,
        body: skylark_core::LogBody::Text(body.into()),
        tags: tags
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..Default::default()
    }
}

#[test]
fn upstream_envoy_ai_gateway_rule_keeps_costly_or_failed_requests() {
    let dir = upstream_dir();
    if !dir.is_dir() {
        eprintln!("skipping: {} is absent", dir.display());
        return;
    }
    let engine = LalEngine::load(&[dir.join("envoy-ai-gateway.yaml")]).unwrap();
    let run = |tags: &[(&str, &str)]| engine.process_at(log("ENVOY_AI_GATEWAY", "", tags), 0);
    let llm = |code: &str, input: &str, output: &str| {
        run(&[
            ("gen_ai.request.model", "gpt"),
            ("response_code", code),
            ("gen_ai.usage.input_tokens", input),
            ("gen_ai.usage.output_tokens", output),
        ])
    };
    let costly = llm("200", "6000", "5000");
    assert_eq!(costly.records.len(), 1);
    assert_eq!(
        costly.records[0].tags.last().unwrap(),
        &("ai_route_type".to_string(), "llm".to_string())
    );
    assert!(
        llm("200", "10", "10").records.is_empty(),
        "cheap success aborted"
    );
    assert_eq!(llm("503", "10", "10").records.len(), 1, "errors kept");
    let mcp = run(&[("mcp.method.name", "tools/call"), ("response_code", "404")]);
    assert_eq!(mcp.records.len(), 1);
    assert_eq!(mcp.records[0].tags.last().unwrap().1, "mcp");
}

#[test]
fn upstream_nginx_rules_parse_access_and_error_logs() {
    let dir = upstream_dir();
    if !dir.is_dir() {
        eprintln!("skipping: {} is absent", dir.display());
        return;
    }
    let engine = LalEngine::load(&[dir.join("nginx.yaml")]).unwrap();
    let access = engine.process_at(
        log(
            "NGINX",
            r#"10.0.0.1 - - [01/Sep/2021:10:00:01 +0000] "GET /index HTTP/1.1" 404 153 "-" "curl""#,
            &[("LOG_KIND", "NGINX_ACCESS_LOG")],
        ),
        0,
    );
    assert_eq!(access.records.len(), 1);
    assert_eq!(
        access.records[0].tags.last().unwrap(),
        &("http.status_code".to_string(), "404".to_string())
    );
    let error = engine.process_at(
        log(
            "NGINX",
            "2021/09/01 10:00:01 [error] 7#7: *1 open() failed",
            &[("LOG_KIND", "NGINX_ERROR_LOG")],
        ),
        0,
    );
    assert_eq!(error.records[0].timestamp_ms, 1_630_490_401_000);
    let sample = &error.samples[0]["nginx_error_log_count"].samples[0];
    assert_eq!(sample.labels.get("level"), Some("error"));
    assert_eq!(sample.labels.get("service"), Some("gw"));
    assert_eq!(
        sample.timestamp_ms, 1_700_000_000_000,
        "log.timestamp is the metadata's"
    );
}
