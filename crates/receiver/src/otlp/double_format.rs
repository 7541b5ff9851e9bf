//! Java's `Double.toString`, because OAP renders attribute doubles, histogram bounds (`le`) and
//! summary quantiles with it and MAL rules match on those strings (`le = "10.0"`).
use skylark_core::LabelText;

/// Formats `value` the way Java's `Double.toString(double)` does: `1.0`, `0.001`, `1234567.0`,
/// `1.0E7`, `1.0E-4`, `-2.5E10`, `NaN`, `Infinity`, `-Infinity`, `-0.0`.
///
/// Digits are the shortest ones that round-trip, which is what Java produces since JDK 19
/// (older JDKs occasionally printed one superfluous digit, e.g. `2.0E-3` cases; we do not
/// reproduce that bug).
pub fn java_double_to_string(value: f64) -> String {
    if value.is_nan() {
        return "NaN".to_owned();
    }
    if value.is_infinite() {
        return if value > 0.0 { "Infinity" } else { "-Infinity" }.to_owned();
    }
    if value == 0.0 {
        return if value.is_sign_negative() {
            "-0.0"
        } else {
            "0.0"
        }
        .to_owned();
    }
    // Rust's `{:e}` gives the shortest round-trip digits as `d.ddde<exp>`; only the layout
    // differs from Java. Java renders at least two digits and, when the shortest form has one,
    // takes the two-digit decimal closest to the exact value (`4.9E-324`, not `5.0E-324`);
    // `{:.1e}` rounds the exact value to two digits.
    let mut scientific = format!("{:e}", value.abs());
    if !scientific.contains('.') {
        scientific = format!("{:.1e}", value.abs());
    }
    let (mantissa, exponent) = match scientific.split_once('e') {
        Some(parts) => parts,
        None => return value.to_string(),
    };
    let exponent: i32 = match exponent.parse() {
        Ok(e) => e,
        Err(_) => return value.to_string(),
    };
    let mut digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    // Only the two-digit rounding above can leave a trailing zero; layouts re-add ".0" as needed.
    while digits.len() > 1 && digits.ends_with('0') {
        digits.pop();
    }
    let sign = if value < 0.0 { "-" } else { "" };

    // Java switches to computerized scientific notation outside [10^-3, 10^7).
    if (-3..7).contains(&exponent) {
        if exponent >= 0 {
            let int_len = exponent as usize + 1;
            let (int_part, frac_part) = if digits.len() > int_len {
                (digits[..int_len].to_owned(), digits[int_len..].to_owned())
            } else {
                let mut int_part = digits.clone();
                int_part.extend(std::iter::repeat_n('0', int_len - digits.len()));
                (int_part, "0".to_owned())
            };
            format!("{sign}{int_part}.{frac_part}")
        } else {
            let zeros = "0".repeat((-exponent - 1) as usize);
            format!("{sign}0.{zeros}{digits}")
        }
    } else {
        let (first, rest) = digits.split_at(1);
        let rest = if rest.is_empty() { "0" } else { rest };
        format!("{sign}{first}.{rest}E{exponent}")
    }
}

/// [`java_double_to_string`] as shared label text, for histogram bounds (`le`) and summary
/// quantiles. Every point of a histogram names the same few bounds, request after request, so
/// each is formatted once per thread and then shared by every label set that names it; the cache
/// is bounded so that odd bounds from a client cannot grow it forever.
pub(crate) fn java_double_text(value: f64) -> LabelText {
    const MAX_CACHED: usize = 4096;
    thread_local! {
        static TEXTS: std::cell::RefCell<foldhash::HashMap<u64, LabelText>> = Default::default();
    }
    // Keyed by the bits, not the value: 0.0 and -0.0 print differently.
    let bits = value.to_bits();
    TEXTS.with(|texts| {
        let mut texts = texts.borrow_mut();
        if let Some(text) = texts.get(&bits) {
            return text.clone();
        }
        let text = LabelText::from(java_double_to_string(value));
        if texts.len() < MAX_CACHED {
            texts.insert(bits, text.clone());
        }
        text
    })
}

#[cfg(test)]
mod tests {
    use super::java_double_to_string as j;

    #[test]
    fn formats_like_java_double_to_string() {
        let cases: &[(f64, &str)] = &[
            (1.0, "1.0"),
            (10.0, "10.0"),
            (2500.0, "2500.0"),
            (0.5, "0.5"),
            (0.99, "0.99"),
            (0.001, "0.001"),
            (0.0001, "1.0E-4"),
            (1.5e-5, "1.5E-5"),
            (123.456, "123.456"),
            (1234567.0, "1234567.0"),
            (9999999.0, "9999999.0"),
            (1.0e7, "1.0E7"),
            (12345678.0, "1.2345678E7"),
            (1.0e10, "1.0E10"),
            (-2.5e10, "-2.5E10"),
            (-10.0, "-10.0"),
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (f64::NAN, "NaN"),
            (f64::INFINITY, "Infinity"),
            (f64::NEG_INFINITY, "-Infinity"),
            (0.1 + 0.2, "0.30000000000000004"),
            (f64::MAX, "1.7976931348623157E308"),
            (f64::MIN_POSITIVE, "2.2250738585072014E-308"),
            (4.9e-324, "4.9E-324"),
            (100.0, "100.0"),
            (1.0e-323, "9.9E-324"),
            (2.0e23, "2.0E23"),
            (1.7e12, "1.7E12"),
        ];
        for (value, expected) in cases {
            assert_eq!(j(*value), *expected, "formatting {value:?}");
        }
    }

    #[test]
    fn shared_texts_are_the_java_texts_past_the_cache() {
        // More distinct values than the per-thread cache keeps, each asked twice, plus the
        // values whose bits differ but whose texts may not (signed zeros, NaNs).
        let mut values: Vec<f64> = (0..5_000).map(|i| f64::from(i) * 2.5).collect();
        values.extend([-0.0, 0.0, f64::NAN, -f64::NAN, f64::INFINITY, 1.0e-323]);
        for round in 0..2 {
            for value in &values {
                assert_eq!(
                    &*super::java_double_text(*value),
                    j(*value),
                    "{value:?}, round {round}"
                );
            }
        }
    }
}
