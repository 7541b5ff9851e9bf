//! MQE: any text must parse or give a `line:col` error, never panic; `parse` (whole input) is
//! stricter than `parse_expression` (OAP's prefix parse), never looser.
#![no_main]

use libfuzzer_sys::fuzz_target;
use skylark_query::mqe;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let prefix = mqe::parse_expression(text);
    let whole = mqe::parse(text);
    if let Ok(whole) = whole {
        assert_eq!(
            prefix.as_ref().ok(),
            Some(&whole),
            "a full parse is also a prefix parse"
        );
    }
    if let Err(e) = prefix {
        assert!(e.line >= 1, "lines are 1-based: {e}");
    }
});
