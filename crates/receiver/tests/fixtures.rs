//! Every captured SDK metrics body in shared/fixtures/sdk decodes into sensible samples.
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use skylark_core::{MetricBatch, SampleFamilies};
use skylark_receiver::decode_metrics;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/fixtures/sdk");

/// Metrics only the WeChat SDK produces (sdk-signals §4).
const WECHAT_ONLY: [&str; 4] = [
    "miniprogram_first_paint_time",
    "miniprogram_route_duration",
    "miniprogram_script_duration",
    "miniprogram_package_load_duration",
];

fn metric_fixtures() -> Option<Vec<PathBuf>> {
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
                .is_some_and(|n| n.contains("v1_metrics"))
        })
        .collect();
    files.sort();
    Some(files)
}

fn content_type_for(name: &str) -> &'static str {
    if name.ends_with(".bin") {
        "application/x-protobuf"
    } else {
        assert!(name.ends_with(".json"), "unexpected fixture {name}");
        "application/json"
    }
}

fn check_batch(name: &str, batch: &MetricBatch) -> usize {
    let platform = if name.starts_with("wechat-") {
        "wechat"
    } else {
        assert!(name.starts_with("alipay-"), "{name}: unknown platform");
        "alipay"
    };
    assert!(!batch.resources.is_empty(), "{name}: no resources");
    assert_eq!(batch.skipped_points, 0, "{name}: SDK points were skipped");
    let mut samples = 0;
    for families in &batch.resources {
        for (family, sf) in families {
            assert!(!sf.samples.is_empty(), "{name}: empty family {family}");
            assert!(
                family.starts_with("miniprogram_"),
                "{name}: family {family}"
            );
            assert!(!family.contains('.'), "{name}: unescaped family {family}");
            if platform == "alipay" {
                assert!(!WECHAT_ONLY.contains(&family.as_str()), "{name}: {family}");
            }
            for sample in &sf.samples {
                samples += 1;
                assert_eq!(&*sample.name, family.as_str());
                let service = sample.labels.get("service_name");
                assert!(
                    service.is_some_and(|s| s.starts_with("mini-program-sim-")),
                    "{name}: service_name {service:?}"
                );
                assert_eq!(sample.labels.get("job_name"), service);
                assert_eq!(
                    sample.labels.get("miniprogram_platform"),
                    Some(platform),
                    "{name}"
                );
                assert!(sample.labels.keys().all(|k| !k.contains('.')), "{name}");
                assert!(sample.value.is_finite() && sample.value >= 0.0, "{name}");
                // Captures are from 2026–2027; ms, not ns or s.
                assert!(
                    (1_700_000_000_000..2_000_000_000_000).contains(&sample.timestamp_ms),
                    "{name}: timestamp {}",
                    sample.timestamp_ms
                );
            }
        }
        check_histogram(name, families);
    }
    assert!(samples > 0, "{name}: no samples");
    samples
}

fn check_histogram(name: &str, families: &SampleFamilies) {
    let Some(buckets) = families.get("miniprogram_request_duration") else {
        return;
    };
    let counts = &families["miniprogram_request_duration_count"];
    assert!(
        families.contains_key("miniprogram_request_duration_sum"),
        "{name}: histogram without _sum"
    );
    // The SDK sends 10 bounds → 11 buckets per point.
    assert_eq!(buckets.samples.len(), 11 * counts.samples.len(), "{name}");
    let mut per_le: HashMap<&str, usize> = HashMap::new();
    for sample in &buckets.samples {
        let le = sample.labels.get("le");
        *per_le.entry(le.unwrap_or("<missing>")).or_default() += 1;
    }
    for le in ["10.0", "25.0", "2500.0", "10000.0", "Infinity"] {
        assert_eq!(
            per_le.get(le),
            Some(&counts.samples.len()),
            "{name}: le={le}"
        );
    }
    assert!(
        !per_le.contains_key("<missing>"),
        "{name}: bucket without le"
    );
    // Per-bucket counts of all points add up to the points' counts.
    let bucket_total: f64 = buckets.samples.iter().map(|s| s.value).sum();
    let count_total: f64 = counts.samples.iter().map(|s| s.value).sum();
    assert_eq!(bucket_total, count_total, "{name}");
    for sample in &counts.samples {
        assert!(sample.labels.contains_key("http_request_method"), "{name}");
        assert!(
            sample.labels.contains_key("miniprogram_page_path"),
            "{name}"
        );
    }
}

#[test]
fn every_sdk_metrics_fixture_decodes_into_sensible_samples() {
    let Some(files) = metric_fixtures() else {
        return;
    };
    assert!(!files.is_empty(), "no *v1_metrics* fixtures in {FIXTURES}");
    let (mut protobuf, mut json, mut histograms) = (0, 0, 0);
    for path in &files {
        let name = path.file_name().unwrap().to_str().unwrap();
        let body = std::fs::read(path).unwrap();
        let content_type = content_type_for(name);
        let batch = decode_metrics(content_type, &body).unwrap_or_else(|e| panic!("{name}: {e}"));
        check_batch(name, &batch);
        if content_type == "application/json" {
            json += 1;
        } else {
            protobuf += 1;
        }
        if batch
            .resources
            .iter()
            .any(|r| r.contains_key("miniprogram_request_duration"))
        {
            histograms += 1;
        }
    }
    eprintln!("decoded {protobuf} protobuf and {json} JSON metrics fixtures");
    assert!(protobuf > 0 && json > 0);
    assert!(histograms > 0, "no fixture carried the request histogram");
}

#[test]
fn protobuf_fixtures_convert_like_their_decoded_json() {
    let Some(files) = metric_fixtures() else {
        return;
    };
    let mut compared = 0;
    for bin in files
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "bin"))
    {
        let decoded = bin.with_extension("decoded.json");
        if !decoded.exists() {
            continue;
        }
        let from_proto =
            decode_metrics("application/x-protobuf", &std::fs::read(bin).unwrap()).unwrap();
        let from_json =
            decode_metrics("application/json", &std::fs::read(&decoded).unwrap()).unwrap();
        assert_eq!(
            from_proto.resources,
            from_json.resources,
            "{}",
            bin.display()
        );
        compared += 1;
    }
    assert!(compared > 0, "no .bin/.decoded.json pairs found");
}
