//! Inputs the `mal_parser` fuzz target (fuzz/) found to crash, kept so they stay fixed.
use skylark_mal::{parse_expression, RuleSet};

/// The error loading `yaml` as `bad.yaml` gives; it must not load.
fn load_error(yaml: &str) -> String {
    RuleSet::from_sources(&[("bad.yaml", yaml)])
        .expect_err("a rule file with a stray character must not load")
        .to_string()
}

/// The lexer looked two and three bytes ahead for operators by slicing the text, which panicked
/// when those bytes ended inside a multi-byte character (`)ڌ`).
#[test]
fn operator_lookahead_into_a_multibyte_character_is_an_error_not_a_panic() {
    let found =
        "(x  - xx.tagEqual('vc', 'a')\u{68c}u*10  1 2 -) /- xx.tagEqual('vc', 'a').sum(['svc'])";
    let e = parse_expression(found).unwrap_err();
    assert_eq!((e.line, e.column), (1, 29), "{e:?}");

    for text in [")\u{e9}", "a-\u{e9}", "a=\u{20ac}", "a==\u{1f600}"] {
        let e = parse_expression(text).unwrap_err();
        assert_eq!(e.line, 1, "{text}: {e:?}");
    }
    // Non-ASCII inside strings is still fine next to operators.
    assert!(parse_expression("m.tagEqual('k', '\u{e9}')+m").is_ok());
}

#[test]
fn multibyte_after_an_operator_in_a_rule_file_is_reported_with_its_place() {
    let yaml = "metricPrefix: t\nmetricsRules:\n  - name: a\n    exp: m.sum(['x']))\u{68c}\n";
    let e = load_error(yaml);
    assert!(e.starts_with("bad.yaml:4:"), "{e}");
}

/// Locating an error in the raw file skipped whitespace one byte at a time and stopped inside a
/// no-break space (U+00A0, two bytes), then sliced there.
#[test]
fn multibyte_whitespace_before_an_error_is_reported_with_its_place() {
    let yaml = "metricPrefix: fuzz\nmetricsRules:\n- name: fuzzed\n  exp: m]\u{a0}\u{541}\n";
    let e = load_error(yaml);
    assert!(e.starts_with("bad.yaml:4:"), "{e}");
}
