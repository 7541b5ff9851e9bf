//! Counter windows behind `increase`, `rate` and `irate` (OAP's `CounterWindow`).
//!
//! Unlike OAP's, these windows are evicted: a series not seen for [`idle_limit_ms`] of its range
//! is dropped, so label churn (a new page path or request id per sample) cannot grow the state
//! forever. Eviction is judged by the server's clock and swept at most once per
//! [`SWEEP_INTERVAL_MS`], so its cost is one pass over the map per interval, never per sample.
use skylark_core::Labels;
use std::collections::HashMap;

/// How often, at most, the windows are swept for idle series.
pub(crate) const SWEEP_INTERVAL_MS: i64 = 60_000;

/// Slack beyond a series' own range before it counts as idle, so a client that flushes a little
/// late still finds its previous point.
pub(crate) const IDLE_SLACK_MS: i64 = 5 * 60_000;

/// How long a series with this range may go unseen before it is evicted: twice its range (the
/// nearest-point rule can still pick a point up to two ranges back) plus [`IDLE_SLACK_MS`].
/// `irate` windows have no range (0): they keep just the slack.
pub(crate) fn idle_limit_ms(range_ms: i64) -> i64 {
    range_ms
        .max(0)
        .saturating_mul(2)
        .saturating_add(IDLE_SLACK_MS)
}

/// The points of one `increase`/`rate` series.
#[derive(Debug)]
struct Window {
    points: Vec<(i64, f64)>,
    range_ms: i64,
    /// Server clock at the last sample.
    touched_ms: i64,
}

/// The last point of one `irate` series.
#[derive(Debug)]
struct Previous {
    point: (i64, f64),
    /// Server clock at the last sample.
    touched_ms: i64,
}

/// Past (timestamp, value) points per (metric, labels); lives as long as its rule set.
#[derive(Debug, Default)]
pub(crate) struct CounterWindows {
    windows: HashMap<(String, Labels), Window>,
    previous: HashMap<(String, Labels), Previous>,
    /// The server clock as of the last [`CounterWindows::tick`].
    clock_ms: i64,
    /// When the last sweep ran (server clock).
    swept_ms: i64,
}

impl CounterWindows {
    /// Advances the server clock to `now_ms` and, at most once per [`SWEEP_INTERVAL_MS`], evicts
    /// series idle longer than [`idle_limit_ms`] of their range. Call once per evaluated batch.
    pub(crate) fn tick(&mut self, now_ms: i64) {
        self.clock_ms = self.clock_ms.max(now_ms);
        if self.clock_ms.saturating_sub(self.swept_ms) < SWEEP_INTERVAL_MS {
            return;
        }
        self.swept_ms = self.clock_ms;
        let now = self.clock_ms;
        let idle = |touched: i64, range: i64| now.saturating_sub(touched) > idle_limit_ms(range);
        self.windows.retain(|_, w| !idle(w.touched_ms, w.range_ms));
        self.previous.retain(|_, p| !idle(p.touched_ms, 0));
        // Label churn can leave the tables mostly empty; give the memory back too.
        if self.windows.capacity() > 4 * self.windows.len().max(16) {
            self.windows.shrink_to_fit();
        }
        if self.previous.capacity() > 4 * self.previous.len().max(16) {
            self.previous.shrink_to_fit();
        }
    }

    /// Series held (`increase`/`rate` windows plus `irate` points).
    pub(crate) fn len(&self) -> usize {
        self.windows.len() + self.previous.len()
    }

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
        let clock_ms = self.clock_ms;
        let window = self
            .windows
            .entry((name.to_string(), labels.clone()))
            .or_insert_with(|| Window {
                points: Vec::new(),
                range_ms,
                touched_ms: clock_ms,
            });
        window.touched_ms = clock_ms;
        // One series may be read with several ranges by different rules: keep the longest.
        window.range_ms = window.range_ms.max(range_ms);
        let window = &mut window.points;
        let at = window
            .iter()
            .position(|p| {
                (p.0, p.1).partial_cmp(&(now, value)) == Some(std::cmp::Ordering::Greater)
            })
            .unwrap_or(window.len());
        window.insert(at, (now, value));
        // Saturating: the range comes from a rule and the time from a client.
        let water = now.saturating_sub(range_ms);
        let mut peek = window[0];
        if peek.0 > water {
            return peek;
        }
        let mut result = peek;
        while peek.0 < water && window.len() > 1 {
            result = window.remove(0);
            peek = window[0];
        }
        if water.saturating_sub(result.0) <= peek.0.saturating_sub(water) {
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
        let current = Previous {
            point: (now, value),
            touched_ms: self.clock_ms,
        };
        match self.previous.insert(key, current) {
            Some(prev) => prev.point,
            None => (now, value),
        }
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

    fn labels(i: usize) -> Labels {
        Labels::from([("page", format!("pages/p{i}").as_str())])
    }

    #[test]
    fn idle_series_are_evicted_and_live_ones_keep_computing() {
        let minute = 60_000;
        let mut w = CounterWindows::default();
        let live = Labels::from([("page", "pages/live")]);
        let mut t = 1_700_000_000_000;
        w.tick(t);
        // The live series: a counter growing by 60 a minute, read with `increase("PT1M")`.
        assert_eq!(w.increase("m", &live, 0.0, minute, t), (t, 0.0));
        // Label churn: 10,000 series seen once each, through both kinds of window.
        for i in 0..10_000 {
            w.increase("m", &labels(i), 1.0, minute, t);
            w.previous("r", &labels(i), 1.0, t);
        }
        assert_eq!(w.len(), 20_001);
        // An hour of minutes: only the live series keeps reporting.
        for step in 1..=60 {
            t += minute;
            w.tick(t);
            let value = 60.0 * step as f64;
            let (t0, v0) = w.increase("m", &live, value, minute, t);
            assert_eq!((t - t0, value - v0), (minute, 60.0), "minute {step}");
        }
        assert_eq!(w.len(), 1, "only the live series is left");
        // A churned series that comes back starts over instead of using a stale point.
        assert_eq!(w.increase("m", &labels(7), 5.0, minute, t), (t, 5.0));
    }

    #[test]
    fn series_within_twice_their_range_are_kept() {
        let hour = 3_600_000;
        let mut w = CounterWindows::default();
        let l = Labels::new();
        let t = 1_700_000_000_000;
        w.tick(t);
        w.increase("m", &l, 10.0, hour, t);
        // Two hours later the nearest-point rule may still pick the old point: keep it.
        w.tick(t + 2 * hour);
        assert_eq!(w.len(), 1);
        assert_eq!(w.increase("m", &l, 30.0, hour, t + 2 * hour), (t, 10.0));
        w.tick(t + 5 * hour);
        assert_eq!(w.len(), 0);
    }

    #[test]
    fn sweeps_run_at_most_once_per_interval() {
        let mut w = CounterWindows::default();
        let t = 1_700_000_000_000;
        w.tick(t);
        w.previous("r", &Labels::new(), 1.0, t);
        // Exactly at the limit: not idle yet, but this tick sweeps.
        w.tick(t + idle_limit_ms(0));
        assert_eq!(w.len(), 1);
        // Idle now, but the last sweep was a millisecond ago: no scan runs.
        w.tick(t + idle_limit_ms(0) + 1);
        assert_eq!(
            w.len(),
            1,
            "a second sweep within the interval does not run"
        );
        w.tick(t + idle_limit_ms(0) + SWEEP_INTERVAL_MS);
        assert_eq!(w.len(), 0);
    }

    #[test]
    fn extreme_ranges_and_times_do_not_overflow() {
        let mut w = CounterWindows::default();
        let l = Labels::new();
        assert_eq!(
            w.increase("m", &l, 1.0, i64::MAX, i64::MIN),
            (i64::MIN, 1.0)
        );
        assert_eq!(
            w.increase("m", &l, 2.0, i64::MIN, i64::MAX),
            (i64::MAX, 2.0)
        );
        w.tick(i64::MAX);
        w.tick(i64::MIN);
        assert_eq!(w.len(), 1);
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
