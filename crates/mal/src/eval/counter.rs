//! Counter windows behind `increase`, `rate` and `irate` (OAP's `CounterWindow`).
use skylark_core::Labels;
use std::collections::HashMap;

/// Past (timestamp, value) points per (metric, labels); lives as long as its rule set.
#[derive(Debug, Default)]
pub(crate) struct CounterWindows {
    windows: HashMap<(String, Labels), Vec<(i64, f64)>>,
    previous: HashMap<(String, Labels), (i64, f64)>,
}

impl CounterWindows {
    /// Records `(now, value)` and returns the point `range_ms` back: the oldest point still in
    /// the window, or the evicted one if it is closer to the water level.
    pub(crate) fn increase(
        &mut self,
        name: &str,
        labels: &Labels,
        value: f64,
        range_ms: i64,
        now: i64,
    ) -> (i64, f64) {
        let window = self
            .windows
            .entry((name.to_string(), labels.clone()))
            .or_default();
        let at = window
            .iter()
            .position(|p| {
                (p.0, p.1).partial_cmp(&(now, value)) == Some(std::cmp::Ordering::Greater)
            })
            .unwrap_or(window.len());
        window.insert(at, (now, value));
        let water = now - range_ms;
        let mut peek = window[0];
        if peek.0 > water {
            return peek;
        }
        let mut result = peek;
        while peek.0 < water && window.len() > 1 {
            result = window.remove(0);
            peek = window[0];
        }
        if water - result.0 <= peek.0 - water {
            result
        } else {
            peek
        }
    }

    /// Records `(now, value)` and returns the point before it (itself the first time).
    pub(crate) fn previous(
        &mut self,
        name: &str,
        labels: &Labels,
        value: f64,
        now: i64,
    ) -> (i64, f64) {
        let key = (name.to_string(), labels.clone());
        let prev = self.previous.get(&key).copied().unwrap_or((now, value));
        self.previous.insert(key, (now, value));
        prev
    }
}

/// Milliseconds of an ISO-8601 duration such as `PT1M`, `PT30S`, `P1D`, `PT1H30M`.
pub(crate) fn parse_duration_ms(text: &str) -> Option<i64> {
    let upper = text.trim().to_ascii_uppercase();
    let rest = upper.strip_prefix('P')?;
    let (date, time) = match rest.split_once('T') {
        Some((d, t)) => (d, t),
        None => (rest, ""),
    };
    let mut total = 0f64;
    let mut any = false;
    for (part, units) in [
        (date, &[('W', 604_800_000.0), ('D', 86_400_000.0)][..]),
        (
            time,
            &[('H', 3_600_000.0), ('M', 60_000.0), ('S', 1000.0)][..],
        ),
    ] {
        let mut num = String::new();
        for c in part.chars() {
            if c.is_ascii_digit() || c == '.' || c == '-' {
                num.push(c);
                continue;
            }
            let factor = units.iter().find(|(u, _)| *u == c)?.1;
            total += num.parse::<f64>().ok()? * factor;
            num.clear();
            any = true;
        }
        if !num.is_empty() {
            return None;
        }
    }
    any.then_some(total as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration_ms("PT1M"), Some(60_000));
        assert_eq!(parse_duration_ms("PT1H30M"), Some(5_400_000));
        assert_eq!(parse_duration_ms("P1D"), Some(86_400_000));
        assert_eq!(parse_duration_ms("1M"), None);
    }

    #[test]
    fn increase_window_keeps_the_point_nearest_the_water_level() {
        let mut w = CounterWindows::default();
        let l = Labels::new();
        assert_eq!(w.increase("m", &l, 10.0, 60_000, 0), (0, 10.0));
        assert_eq!(w.increase("m", &l, 20.0, 60_000, 30_000), (0, 10.0));
        // Water level 30s: the 30s point is exactly on it.
        assert_eq!(w.increase("m", &l, 50.0, 60_000, 90_000), (30_000, 20.0));
    }
}
