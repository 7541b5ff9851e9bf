//! Inputs the `lal_parser` fuzz target (fuzz/) found to crash, kept so they stay fixed.
use skylark_lal::parse;

/// A number followed by a multi-byte letter (`0Ѓ`) is an invalid number; quoting it in the
/// error sliced the text in the middle of that letter and panicked.
#[test]
fn number_followed_by_a_multibyte_letter_is_an_invalid_number() {
    let found = "filtze() > 0\u{403}| 0\u{603}| tag(\"x\") =~ /a.*/)?.nested?.a?.s*/) { lay \"erGENERAL\" }}\n  }\n}\n";
    let e = parse(found).unwrap_err();
    assert_eq!(e.code, "LAL104");
    assert_eq!(e.message, "invalid number `0\u{403}`");

    let e = parse("filter { if (1\u{e9} > 0) { abort {} } }").unwrap_err();
    assert_eq!(e.message, "invalid number `1\u{e9}`");
    let e = parse("filter { rateLimit 12\u{4e2d} } }").unwrap_err();
    assert_eq!(e.code, "LAL104");
}
