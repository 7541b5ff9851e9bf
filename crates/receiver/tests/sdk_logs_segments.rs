//! Every captured SDK logs and segments body in shared/fixtures/sdk decodes with the content the
//! SDK put in it (sdk-signals §5, §7).
use std::path::{Path, PathBuf};

use skylark_core::segment::{SpanLayer, SpanType};
use skylark_core::LogBody;
use skylark_receiver::{decode_logs, decode_segments_json, DEFAULT_MAX_SPANS_PER_SEGMENT};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/fixtures/sdk");

fn fixtures(signal: &str) -> Option<Vec<PathBuf>> {
    let dir = Path::new(FIXTURES);
    let Ok(entries) = std::fs::read_dir(dir) else {
        eprintln!("skipping: fixture folder {} is absent", dir.display());
        return None;
    };
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.contains(signal))
        })
        .collect();
    files.sort();
    Some(files)
}

fn file_name(path: &Path) -> &str {
    path.file_name().unwrap().to_str().unwrap()
}

fn platform(name: &str) -> &'static str {
    if name.starts_with("wechat-") {
        "wechat"
    } else {
        assert!(name.starts_with("alipay-"), "{name}: unknown platform");
        "alipay"
    }
}

fn value<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

#[test]
fn every_logs_fixture_decodes_into_sdk_error_logs() {
    let Some(files) = fixtures("v1_logs") else {
        return;
    };
    assert!(files.len() >= 10, "only {} logs fixtures", files.len());
    let mut records = 0;
    for path in &files {
        let name = file_name(path);
        let platform = platform(name);
        let content_type = if name.ends_with(".bin") {
            "application/x-protobuf"
        } else {
            "application/json"
        };
        let body = std::fs::read(path).unwrap();
        let batch = decode_logs(content_type, &body).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(batch.rejected, 0, "{name}");
        assert!(!batch.logs.is_empty(), "{name}: no records");
        for log in &batch.logs {
            records += 1;
            assert!(
                log.service.starts_with("mini-program-sim-"),
                "{name}: service {}",
                log.service
            );
            assert_eq!(
                value(&log.source_attributes, "service.name"),
                Some(log.service.as_str())
            );
            assert_eq!(
                value(&log.source_attributes, "miniprogram.platform"),
                Some(platform),
                "{name}"
            );
            assert_eq!(
                value(&log.source_attributes, "telemetry.sdk.name"),
                Some("mini-program-monitor")
            );
            let instance = value(&log.source_attributes, "service.instance.id").unwrap_or("");
            assert_eq!(log.service_instance, instance, "{name}");
            if name.starts_with("alipay-noinstance") {
                assert_eq!(log.service_instance, "", "{name}");
            }
            assert_eq!(log.layer, "", "{name}: the SDK sets no service.layer");
            assert!(
                log.timestamp_ms > 1_700_000_000_000,
                "{name}: {}",
                log.timestamp_ms
            );
            let exception_type = value(&log.tags, "exception.type");
            assert!(
                exception_type.is_some_and(|t| !t.is_empty()),
                "{name}: exception.type {exception_type:?}"
            );
            assert!(
                value(&log.tags, "miniprogram.page.path").is_some(),
                "{name}"
            );
            let LogBody::Text(text) = &log.body else {
                panic!("{name}: body {:?}", log.body);
            };
            if exception_type == Some("pageNotFound") {
                assert!(text.starts_with("page not found: "), "{name}: {text}");
            }
        }
    }
    assert!(
        records > files.len(),
        "{records} records in {} files",
        files.len()
    );
}

#[test]
fn protobuf_logs_fixtures_equal_their_decoded_json() {
    let Some(files) = fixtures("v1_logs") else {
        return;
    };
    let mut pairs = 0;
    for path in files.iter().filter(|p| file_name(p).ends_with(".bin")) {
        let decoded = path.with_extension("decoded.json");
        let proto = decode_logs("application/x-protobuf", &std::fs::read(path).unwrap()).unwrap();
        let json = decode_logs("application/json", &std::fs::read(&decoded).unwrap()).unwrap();
        assert_eq!(proto, json, "{}", file_name(path));
        pairs += 1;
    }
    assert!(pairs > 0, "no protobuf logs fixture");
}

#[test]
fn every_segments_fixture_decodes_into_one_exit_span_per_segment() {
    let Some(files) = fixtures("v3_segments") else {
        return;
    };
    assert!(files.len() >= 10, "only {} segments fixtures", files.len());
    for path in &files {
        let name = file_name(path);
        let platform = platform(name);
        let component = if platform == "wechat" { 10002 } else { 10003 };
        let body = std::fs::read(path).unwrap();
        let batch = decode_segments_json(&body, DEFAULT_MAX_SPANS_PER_SEGMENT)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(batch.rejected.is_empty(), "{name}: {:?}", batch.rejected);
        assert!(!batch.segments.is_empty(), "{name}");
        for segment in &batch.segments {
            assert_eq!(segment.trace_id.len(), 36, "{name}: uuid trace id");
            assert_eq!(segment.segment_id.len(), 36, "{name}: uuid segment id");
            assert!(segment.service.starts_with("mini-program-sim-"), "{name}");
            if name.starts_with("alipay-noinstance") {
                assert_eq!(segment.service_instance, "-", "{name}");
            }
            let [span] = segment.spans.as_slice() else {
                panic!("{name}: {} spans", segment.spans.len());
            };
            assert_eq!(span.span_type, SpanType::Exit, "{name}");
            assert_eq!(span.span_layer, SpanLayer::Http, "{name}");
            assert_eq!((span.span_id, span.parent_span_id), (0, -1), "{name}");
            assert_eq!(span.component_id, component, "{name}");
            assert!(!span.peer.is_empty(), "{name}: empty peer");
            assert!(span.end_time_ms >= span.start_time_ms, "{name}");
            assert!(span.start_time_ms > 1_700_000_000_000, "{name}");
            assert!(
                span.operation_name.starts_with("pages/"),
                "{name}: {}",
                span.operation_name
            );
            assert!(value(&span.tags, "http.method").is_some(), "{name}");
            assert!(
                value(&span.tags, "url").is_some_and(|u| u.starts_with("http")),
                "{name}"
            );
            assert_eq!(
                value(&span.tags, "miniprogram.platform"),
                Some(platform),
                "{name}"
            );
            let failed = value(&span.tags, "error.message").is_some();
            assert!(
                failed || value(&span.tags, "http.status_code").is_some(),
                "{name}: neither status nor error"
            );
            if failed {
                assert!(span.is_error, "{name}: platform failure not an error");
            }
        }
    }
}
