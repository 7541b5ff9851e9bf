//! Bad rule files are rejected with `file:line:col: problem`.
use skylark_mal::{check_file, parse_expression, RuleSet};

fn err(yaml: &str) -> String {
    RuleSet::from_sources(&[("bad.yaml", yaml)])
        .unwrap_err()
        .to_string()
}

#[test]
fn yaml_syntax_error_is_located() {
    let e = err("metricPrefix: t\nmetricsRules:\n  - name: a\n    exp: [unclosed\n");
    assert!(e.starts_with("bad.yaml:"), "{e}");
    let line: usize = e.split(':').nth(1).unwrap().parse().unwrap();
    assert!(line >= 4, "{e}");
}

#[test]
fn unknown_function_points_at_its_name() {
    let e = err("metricPrefix: t\nmetricsRules:\n  - name: a\n    exp: m.summ(['x']).service(['x'], Layer.GENERAL)\n");
    // `summ` starts at column 12 of line 4.
    assert_eq!(e, "bad.yaml:4:12: unknown function 'summ'");
}

#[test]
fn wrong_arity_is_reported() {
    let e = err("metricPrefix: t\nmetricsRules:\n  - name: a\n    exp: m.sum(['x'], ['y']).service(['x'], Layer.GENERAL)\n");
    assert!(
        e.starts_with("bad.yaml:4:12: function 'sum' takes 0 or 1 argument(s), got 2"),
        "{e}"
    );
}

#[test]
fn missing_metric_prefix_is_an_error() {
    let e =
        err("metricsRules:\n  - name: a\n    exp: m.sum(['x']).service(['x'], Layer.GENERAL)\n");
    assert!(
        e.starts_with("bad.yaml:1:1: metricPrefix is required"),
        "{e}"
    );
    let e = err("metricPrefix:\nmetricsRules: []\n");
    assert!(e.contains("metricPrefix is required"), "{e}");
}

#[test]
fn missing_scope_is_an_error_at_the_expression() {
    let e = err("metricPrefix: t\nmetricsRules:\n  - name: a\n    exp: m.sum(['x'])\n");
    assert_eq!(
        e,
        "bad.yaml:4:10: rule 'a': one of service(), instance() or endpoint() should be invoked"
    );
}

#[test]
fn syntax_error_in_block_scalar_maps_to_the_file_line() {
    let e = err("metricPrefix: t\nmetricsRules:\n  - name: a\n    exp: >\n      m.sum(['x'])\n      .service(['x'], Layer.GENERAL))\n");
    assert!(e.starts_with("bad.yaml:6:37: unexpected ')'"), "{e}");
}

#[test]
fn errors_in_exp_suffix_point_into_the_suffix() {
    let e = err("metricPrefix: t\nexpSuffix: servce(['x'], Layer.GENERAL)\nmetricsRules:\n  - name: a\n    exp: m.sum(['x'])\n");
    assert_eq!(e, "bad.yaml:2:12: unknown function 'servce'");
}

#[test]
fn check_file_reports_unreadable_and_bad_files() {
    let dir = std::env::temp_dir().join(format!("skylark-mal-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("r.yaml");
    std::fs::write(&path, "metricPrefix: t\nmetricsRules:\n  - name: a\n    exp: m.sum(['x']).service(['x'], Layer.GENERAL).nope()\n").unwrap();
    let d = check_file(&path).unwrap_err();
    assert_eq!((d.line, d.column), (4, 53));
    assert!(d.to_string().ends_with(": unknown function 'nope'"), "{d}");
    std::fs::write(&path, "metricPrefix: t\nmetricsRules:\n  - name: a\n    exp: m.sum(['x']).service(['x'], Layer.GENERAL)\n").unwrap();
    assert!(check_file(&path).is_ok());
    let _ = std::fs::remove_dir_all(&dir);
    assert!(check_file(&dir.join("missing.yaml")).is_err());
}

#[test]
fn parse_expression_reports_line_and_column() {
    let e = parse_expression("a.sum(['x'])\n  .tag({ tags -> tags.x = })").unwrap_err();
    assert_eq!((e.line, e.column), (2, 27));
    assert!(parse_expression("a.tag({ tags -> tags.x == 'y' ? 1 : 2 }).sum(['x'])").is_ok());
}
