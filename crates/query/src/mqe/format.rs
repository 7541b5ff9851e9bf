//! Number → text exactly as OAP prints MQE values (Java `new DecimalFormat()`, grouping off).

/// Formats `v` like Java's `DecimalFormat` with at most 3 fraction digits, `HALF_EVEN` rounding,
/// no trailing zeros, no grouping and no exponent: `12.0 → "12"`, `2/3 → "0.667"`,
/// `-0.0004 → "-0"`. Infinities print as `∞`/`-∞` and NaN as `NaN`, as Java does.
pub fn format_value(v: f64) -> String {
    if v.is_nan() {
        return "NaN".to_string();
    }
    let sign = if v.is_sign_negative() { "-" } else { "" };
    if v.is_infinite() {
        return format!("{sign}∞");
    }
    let a = v.abs();
    // Java takes the digits of the shortest repr (Double.toString); beyond 17 significant
    // digits it pads the integer part with zeros instead of printing the exact binary value.
    let sci = format!("{a:e}");
    if let Some((mantissa, exp)) = sci.split_once('e') {
        let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
        let exp: i64 = exp.parse().unwrap_or(0);
        if exp + 1 > digits.len() as i64 {
            let zeros = "0".repeat((exp + 1 - digits.len() as i64) as usize);
            return format!("{sign}{digits}{zeros}");
        }
    }
    // Otherwise HALF_EVEN on the exact decimal expansion equals Java's rounding of the
    // shortest repr (Java consults exactness to break ties), so round the exact digits.
    let exact = format!("{a:.1100}");
    let (int_part, frac_part) = exact.split_once('.').unwrap_or((exact.as_str(), ""));
    let mut digits: Vec<u8> = int_part
        .bytes()
        .chain(frac_part.bytes().take(3))
        .map(|b| b - b'0')
        .collect();
    let rest = frac_part.as_bytes().get(3..).unwrap_or(&[]);
    let round_up = match rest.first() {
        Some(b) if *b > b'5' => true,
        Some(b'5') => {
            if rest[1..].iter().any(|b| *b != b'0') {
                true
            } else {
                digits.last().is_some_and(|d| d % 2 == 1)
            }
        }
        _ => false,
    };
    if round_up {
        let mut i = digits.len();
        loop {
            if i == 0 {
                digits.insert(0, 1);
                break;
            }
            i -= 1;
            if digits[i] == 9 {
                digits[i] = 0;
            } else {
                digits[i] += 1;
                break;
            }
        }
    }
    let frac_len = 3.min(frac_part.len());
    let split = digits.len() - frac_len;
    let int_text: String = digits[..split].iter().map(|d| (b'0' + d) as char).collect();
    let int_text = int_text.trim_start_matches('0');
    let int_text = if int_text.is_empty() { "0" } else { int_text };
    let frac_text: String = digits[split..].iter().map(|d| (b'0' + d) as char).collect();
    let frac_text = frac_text.trim_end_matches('0');
    if frac_text.is_empty() {
        format!("{sign}{int_text}")
    } else {
        format!("{sign}{int_text}.{frac_text}")
    }
}
