//! `timestamp x, "yyyy/MM/dd HH:mm:ss"`: the subset of Java's `SimpleDateFormat` patterns
//! that log formats use (`y M d H m s S`, quoted and plain literals), read as UTC.

/// Epoch milliseconds of `text` read with `pattern`, or `None` if it does not match.
pub(crate) fn parse_with_pattern(text: &str, pattern: &str) -> Option<i64> {
    let (mut year, mut month, mut day) = (1970i64, 1i64, 1i64);
    let (mut hour, mut minute, mut second, mut milli) = (0i64, 0i64, 0i64, 0i64);
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut i, mut j) = (0usize, 0usize);
    while i < p.len() {
        let c = p[i];
        if c == '\'' {
            i += 1;
            while i < p.len() && p[i] != '\'' {
                if t.get(j) != Some(&p[i]) {
                    return None;
                }
                i += 1;
                j += 1;
            }
            i += 1;
            continue;
        }
        if !c.is_ascii_alphabetic() {
            if t.get(j) != Some(&c) {
                return None;
            }
            i += 1;
            j += 1;
            continue;
        }
        let mut run = 0;
        while i < p.len() && p[i] == c {
            run += 1;
            i += 1;
        }
        // A field followed directly by another field has a fixed width; otherwise read all digits.
        let next_is_field = p
            .get(i)
            .is_some_and(|n| n.is_ascii_alphabetic() && *n != '\'');
        let start = j;
        while j < t.len() && t[j].is_ascii_digit() && (!next_is_field || j - start < run) {
            j += 1;
        }
        if j == start {
            return None;
        }
        // Nine digits fit every field and keep the arithmetic below far from overflow.
        if j - start > 9 {
            return None;
        }
        let n: i64 = t[start..j].iter().collect::<String>().parse().ok()?;
        match c {
            'y' => year = if run == 2 { 2000 + n } else { n },
            'M' => month = n,
            'd' => day = n,
            'H' | 'k' => hour = n,
            'm' => minute = n,
            's' => second = n,
            'S' => milli = n,
            _ => return None,
        }
    }
    if j != t.len() || !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    let days = days_from_civil(year, month, day);
    let hours = days.checked_mul(24)?.checked_add(hour)?;
    let minutes = hours.checked_mul(60)?.checked_add(minute)?;
    let seconds = minutes.checked_mul(60)?.checked_add(second)?;
    seconds.checked_mul(1000)?.checked_add(milli)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nginx_error_log_time() {
        assert_eq!(
            parse_with_pattern("2021/09/01 10:00:01", "yyyy/MM/dd HH:mm:ss"),
            Some(1_630_490_401_000)
        );
        assert_eq!(
            parse_with_pattern("20240229T235959.123", "yyyyMMdd'T'HHmmss.SSS"),
            Some(1_709_251_199_123)
        );
        assert_eq!(parse_with_pattern("2021-09-01", "yyyy/MM/dd"), None);
    }

    #[test]
    fn huge_fields_are_no_match_instead_of_an_overflow() {
        // Each of these overflowed i64 (a panic in debug builds, a wrapped time in release).
        let nines = "9".repeat(18);
        assert_eq!(
            parse_with_pattern(&format!("{nines}/01/01"), "yyyy/MM/dd"),
            None
        );
        assert_eq!(
            parse_with_pattern(&format!("2021/01/01 {nines}"), "yyyy/MM/dd HH"),
            None
        );
        assert_eq!(
            parse_with_pattern(
                &format!("2021/01/01 00:00:00.{nines}"),
                "yyyy/MM/dd HH:mm:ss.SSS"
            ),
            None
        );
        assert_eq!(
            parse_with_pattern("9223372036854775807/01/01", "yyyy/MM/dd"),
            None
        );
        // Nine-digit fields parse, and a time past i64 milliseconds is no match.
        assert_eq!(parse_with_pattern("999999999/12/31", "yyyy/MM/dd"), None);
        assert_eq!(
            parse_with_pattern("10000/01/01 000000100", "yyyy/MM/dd HH"),
            Some(253_402_300_800_000 + 100 * 3_600_000)
        );
    }
}
