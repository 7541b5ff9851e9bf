//! `skylark check-rules` and start-up validation, against the real binary.
mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;

fn skylark() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_skylark"));
    c.current_dir(repo_root());
    c
}

fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            yaml_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "yaml" || x == "yml") {
            out.push(p);
        }
    }
}

#[test]
fn check_rules_passes_every_upstream_rule_file() {
    let Some(reference) = reference_dir() else {
        return;
    };
    let mut files = Vec::new();
    for dir in [
        "otel-rules",
        "meter-analyzer-config",
        "log-mal-rules",
        "envoy-metrics-rules",
        "telegraf-rules",
        "lal",
    ] {
        yaml_files(&reference.join("rules-all").join(dir), &mut files);
    }
    assert!(
        files.len() >= 90,
        "expected the whole corpus, found {}",
        files.len()
    );
    let out = skylark()
        .arg("check-rules")
        .args(&files)
        .output()
        .expect("run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert_eq!(
        stdout.lines().filter(|l| l.starts_with("OK ")).count(),
        files.len(),
        "{stdout}"
    );
}

#[test]
fn check_rules_passes_the_shipped_rules() {
    let root = repo_root();
    let mut files = Vec::new();
    for dir in ["otel-rules", "config/lal", "config/log-mal-rules"] {
        yaml_files(&root.join(dir), &mut files);
    }
    assert!(files.len() >= 8);
    let out = skylark()
        .arg("check-rules")
        .args(&files)
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn check_rules_reports_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "metricPrefix: meter_x\nmetricsRules:\n  - name: a\n    exp: m.sum(['a').service(['a'], Layer.GENERAL)\n").unwrap();
    let good = repo_root().join("otel-rules/miniprogram/wechat-mini-program.yaml");
    let out = skylark()
        .arg("check-rules")
        .arg(&good)
        .arg(&bad)
        .output()
        .expect("run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    assert!(
        stdout.contains(&format!("OK {}", good.display())),
        "{stdout}"
    );
    let line = stdout
        .lines()
        .find(|l| l.starts_with(&bad.display().to_string()))
        .unwrap_or_default();
    assert!(
        line.starts_with(&format!("{}:4:", bad.display())),
        "{stdout}"
    );
}

#[test]
fn bad_configuration_stops_start_up_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let run = |env: &[(&str, String)]| {
        let mut c = skylark();
        c.env("SW_STORAGE_SLED_PATH", dir.path().join("db"))
            .env("SW_CORE_REST_PORT", "0")
            .env("SW_CORE_GRPC_PORT", "0");
        for (k, v) in env {
            c.env(k, v);
        }
        let out = c.output().expect("run");
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).to_string()
    };
    let err = run(&[("SW_CORE_REST_PORT", "not-a-port".into())]);
    assert!(err.contains("core.rest.port"), "{err}");
    let err = run(&[(
        "SW_OTEL_RECEIVER_ENABLED_OTEL_METRICS_RULES",
        "miniprogram/*,nope".into(),
    )]);
    assert!(err.contains("unknown rule name 'nope'"), "{err}");

    let rules = dir.path().join("rules");
    std::fs::create_dir_all(rules.join("mp")).unwrap();
    std::fs::write(rules.join("mp/broken.yaml"), "metricPrefix: x\nmetricsRules:\n  - name: a\n    exp: m.nosuch().service(['a'], Layer.GENERAL)\n").unwrap();
    let err = run(&[
        ("SW_OTEL_RULES_PATH", rules.display().to_string()),
        ("SW_OTEL_RECEIVER_ENABLED_OTEL_METRICS_RULES", "mp/*".into()),
    ]);
    assert!(err.contains("broken.yaml:4:"), "{err}");
}

#[test]
fn bad_alarm_settings_stop_start_up_naming_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let settings = dir.path().join("alarm-settings.yml");
    let run = |text: &str| {
        std::fs::write(&settings, text).unwrap();
        let out = skylark()
            .env("SW_STORAGE_SLED_PATH", dir.path().join("db"))
            .env("SW_CORE_REST_PORT", "0")
            .env("SW_CORE_GRPC_PORT", "0")
            .env("SW_ADMIN_PORT", "0")
            .env("SW_ALARM_SETTINGS", &settings)
            .output()
            .expect("run");
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).to_string()
    };
    let file = settings.display().to_string();
    let err = run("rules:\n  a_rule:\n    expression: sum(meter_wechat_mp_request_cpm < ) >= 1\n");
    assert!(
        err.contains(&format!("{file}:3: rule `a_rule`: expression")),
        "{err}"
    );
    let err = run("rules:\n  a_rule:\n    expression: sum(meter_wechat_mp_nope < 1) >= 1\n");
    assert!(
        err.contains(&format!(
            "{file}:3: rule `a_rule`: metric `meter_wechat_mp_nope` does not exist"
        )),
        "{err}"
    );
    let err = run("rules:\n  a_rule:\n    expression: sum(meter_wechat_mp_request_cpm < 1) >= 1\n    hooks: [webhook.nope]\n");
    assert!(
        err.contains(&format!(
            "{file}:4: rule `a_rule`: hook `webhook.nope` is not defined"
        )),
        "{err}"
    );
}
