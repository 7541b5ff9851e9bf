//! MQE values print like Java's `DecimalFormat` (≤3 decimals, HALF_EVEN, no trailing zeros).

use skylark_query::mqe::format_value;

#[test]
fn formats_like_java_decimal_format() {
    let table: &[(f64, &str)] = &[
        (12.0, "12"),
        (0.0, "0"),
        (-0.0, "-0"),
        (0.1, "0.1"),
        (2.0 / 3.0, "0.667"),
        (1234567.5, "1234567.5"),
        (-0.0004, "-0"),
        (1.0005, "1"),     // 1.000499999… in binary: rounds down
        (0.0005, "0.001"), // 0.000500000000000000010… rounds up
        (0.125, "0.125"),
        (0.0625, "0.062"), // exact tie → even
        (0.1875, "0.188"), // exact tie → even (up)
        (2.5, "2.5"),
        (999.9996, "1000"),
        (-1.5, "-1.5"),
        (100.0, "100"),
        (9223372036854775807.0, "9223372036854776000"),
        (1e20, "100000000000000000000"),
        (123456789.123, "123456789.123"),
        (f64::INFINITY, "∞"),
        (f64::NEG_INFINITY, "-∞"),
        (f64::NAN, "NaN"),
    ];
    for (v, want) in table {
        assert_eq!(format_value(*v), *want, "value {v:e}");
    }
}
