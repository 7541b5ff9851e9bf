//! Every upstream MAL file must compile.
use std::path::{Path, PathBuf};

const RULES_ALL: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/reference/skywalking/rules-all"
);

fn yaml_files(dir: &Path, recursive: bool, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = entries.flatten().map(|e| e.path()).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            if recursive {
                yaml_files(&p, true, out);
            }
        } else if matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")) {
            out.push(p);
        }
    }
}

#[test]
fn every_upstream_mal_file_compiles() {
    let root = Path::new(RULES_ALL);
    if !root.is_dir() {
        eprintln!("skipping: {} is absent", root.display());
        return;
    }
    let mut files = Vec::new();
    yaml_files(&root.join("otel-rules"), true, &mut files);
    for d in [
        "meter-analyzer-config",
        "log-mal-rules",
        "envoy-metrics-rules",
        "telegraf-rules",
    ] {
        yaml_files(&root.join(d), false, &mut files);
    }
    assert!(
        files.len() > 80,
        "expected the whole corpus, found {}",
        files.len()
    );
    let failures: Vec<String> = files
        .iter()
        .filter_map(|f| skylark_mal::check_file(f).err().map(|d| d.to_string()))
        .collect();
    assert!(
        failures.is_empty(),
        "{} files failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // Loading all of them as one set also works (no conflicting redefinitions).
    let set = skylark_mal::RuleSet::load(&files).unwrap();
    assert!(set.definitions().len() > 1000);
}
