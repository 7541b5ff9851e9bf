use chrono::{
    DateTime, Datelike, Local, LocalResult, NaiveDate, NaiveDateTime, TimeZone, Timelike,
};
use std::cell::Cell;
use std::fmt;

/// Granularity of a time bucket, as in OAP's `Step` / `DownSampling`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum Step {
    /// `yyyyMMddHHmmss`: records (logs, segments).
    Second,
    /// `yyyyMMddHHmm`: metric rows.
    Minute,
    /// `yyyyMMddHH`: hour rollups.
    Hour,
    /// `yyyyMMdd`: day rollups.
    Day,
}

impl Step {
    /// Minutes covered by one bucket of this step (0 for seconds).
    pub fn minutes(self) -> i64 {
        match self {
            Step::Second => 0,
            Step::Minute => 1,
            Step::Hour => 60,
            Step::Day => 1440,
        }
    }

    /// The GraphQL enum name (`MINUTE`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Step::Second => "SECOND",
            Step::Minute => "MINUTE",
            Step::Hour => "HOUR",
            Step::Day => "DAY",
        }
    }
}

/// Why a time value could not be turned into a bucket.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimeError {
    /// The text does not have the format the step requires.
    #[error("time '{text}' does not match the {step:?} format '{format}'")]
    Format {
        /// The text given.
        text: String,
        /// The step it was read for.
        step: Step,
        /// The expected format.
        format: &'static str,
    },
    /// The value is outside the range a calendar date can hold.
    #[error("time {0} is out of range")]
    OutOfRange(i64),
}

/// A time bucket in the server's time zone, e.g. minute `202611291205`.
///
/// Buckets are numbers so that `minute / 100` is the hour and `hour / 100` the day, as in OAP.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct TimeBucket {
    /// The granularity.
    pub step: Step,
    /// The bucket number (`yyyyMMddHHmm` for minutes).
    pub value: i64,
}

fn local_from_ms(ms: i64) -> Result<DateTime<Local>, TimeError> {
    match Local.timestamp_millis_opt(ms) {
        LocalResult::Single(t) => Ok(t),
        LocalResult::Ambiguous(t, _) => Ok(t),
        LocalResult::None => Err(TimeError::OutOfRange(ms)),
    }
}

thread_local! {
    /// The last local minute looked up: its first epoch millisecond and `yyyyMMddHHmm`. Every
    /// sample of a request falls in one or two minutes, and the time-zone lookup costs more
    /// than the rest of turning a sample into a bucket.
    static LAST_MINUTE: Cell<Option<(i64, i64)>> = const { Cell::new(None) };
}

/// `(yyyyMMddHHmm, second)` of the instant in the server's time zone. A remembered minute is
/// reused for instants within 60 s of its start: zone offsets change on whole minutes.
fn local_minute(ms: i64) -> Result<(i64, i64), TimeError> {
    if let Some((start, minute)) = LAST_MINUTE.get() {
        if let Some(offset) = ms.checked_sub(start).filter(|d| (0..60_000).contains(d)) {
            return Ok((minute, offset / 1000));
        }
    }
    let t = local_from_ms(ms)?;
    let day = t.year() as i64 * 10_000 + t.month() as i64 * 100 + t.day() as i64;
    let minute = (day * 100 + t.hour() as i64) * 100 + t.minute() as i64;
    let into_minute = t.second() as i64 * 1000 + t.timestamp_subsec_millis() as i64;
    LAST_MINUTE.set(Some((ms - into_minute, minute)));
    Ok((minute, t.second() as i64))
}

fn local_to_ms(naive: NaiveDateTime) -> i64 {
    match Local.from_local_datetime(&naive) {
        LocalResult::Single(t) => t.timestamp_millis(),
        LocalResult::Ambiguous(t, _) => t.timestamp_millis(),
        // A gap (DST jump): treat the wall time as UTC-offset-free; the bucket still orders right.
        LocalResult::None => naive.and_utc().timestamp_millis(),
    }
}

impl TimeBucket {
    /// The bucket holding the instant `epoch_ms`, in the server's time zone.
    pub fn from_epoch_ms(epoch_ms: i64, step: Step) -> Result<TimeBucket, TimeError> {
        let (minute, second) = local_minute(epoch_ms)?;
        let value = match step {
            Step::Day => minute / 10_000,
            Step::Hour => minute / 100,
            Step::Minute => minute,
            Step::Second => minute * 100 + second,
        };
        Ok(TimeBucket { step, value })
    }

    /// The naive (server-local) start time of the bucket, if the number is a valid date.
    fn naive_start(self) -> Option<NaiveDateTime> {
        let (day, h, m, s) = match self.step {
            Step::Day => (self.value, 0, 0, 0),
            Step::Hour => (self.value / 100, self.value % 100, 0, 0),
            Step::Minute => (
                self.value / 10_000,
                self.value / 100 % 100,
                self.value % 100,
                0,
            ),
            Step::Second => (
                self.value / 1_000_000,
                self.value / 10_000 % 100,
                self.value / 100 % 100,
                self.value % 100,
            ),
        };
        let date = NaiveDate::from_ymd_opt(
            (day / 10_000) as i32,
            (day / 100 % 100) as u32,
            (day % 100) as u32,
        )?;
        date.and_hms_opt(h as u32, m as u32, s as u32)
    }

    /// Whether the number is a real calendar time for its step.
    pub fn is_valid(self) -> bool {
        self.naive_start().is_some()
    }

    /// Epoch milliseconds of the bucket's start (server time zone).
    pub fn start_epoch_ms(self) -> Result<i64, TimeError> {
        self.naive_start()
            .map(local_to_ms)
            .ok_or(TimeError::OutOfRange(self.value))
    }

    /// The bucket of a coarser step that holds this one (`minute → hour` is `/ 100`).
    pub fn to_step(self, step: Step) -> TimeBucket {
        let drop = |from: Step, to: Step| -> u32 {
            let rank = |s: Step| match s {
                Step::Second => 3,
                Step::Minute => 2,
                Step::Hour => 1,
                Step::Day => 0,
            };
            (rank(from) - rank(to).min(rank(from))) as u32
        };
        let n = drop(self.step, step);
        TimeBucket {
            step: if n == 0 { self.step } else { step },
            value: self.value / 100_i64.pow(n),
        }
    }

    /// The bucket right after this one.
    pub fn next(self) -> TimeBucket {
        let Some(start) = self.naive_start() else {
            return TimeBucket {
                step: self.step,
                value: self.value + 1,
            };
        };
        let next = match self.step {
            Step::Second => start + chrono::Duration::seconds(1),
            Step::Minute => start + chrono::Duration::minutes(1),
            Step::Hour => start + chrono::Duration::hours(1),
            Step::Day => start + chrono::Duration::days(1),
        };
        TimeBucket {
            step: self.step,
            value: naive_to_value(next, self.step),
        }
    }

    /// Every bucket from `self` to `end` inclusive, at most `limit` of them.
    pub fn range_to(self, end: TimeBucket, limit: usize) -> Vec<TimeBucket> {
        let mut out = Vec::new();
        let mut b = self;
        while b.value <= end.value && out.len() < limit {
            out.push(b);
            b = b.next();
        }
        out
    }

    /// Parses a query `Duration` string for `step`: `yyyy-MM-dd HHmm` for minutes, etc.
    pub fn parse(text: &str, step: Step) -> Result<TimeBucket, TimeError> {
        let format = match step {
            Step::Second => "yyyy-MM-dd HHmmss",
            Step::Minute => "yyyy-MM-dd HHmm",
            Step::Hour => "yyyy-MM-dd HH",
            Step::Day => "yyyy-MM-dd",
        };
        let err = || TimeError::Format {
            text: text.to_string(),
            step,
            format,
        };
        if text.len() != format.len() {
            return Err(err());
        }
        let digits: String = text.chars().filter(|c| *c != '-' && *c != ' ').collect();
        if !digits.chars().all(|c| c.is_ascii_digit()) {
            return Err(err());
        }
        let value: i64 = digits.parse().map_err(|_| err())?;
        let b = TimeBucket { step, value };
        if b.is_valid() {
            Ok(b)
        } else {
            Err(err())
        }
    }
}

fn naive_to_value(t: NaiveDateTime, step: Step) -> i64 {
    let day = t.year() as i64 * 10_000 + t.month() as i64 * 100 + t.day() as i64;
    match step {
        Step::Day => day,
        Step::Hour => day * 100 + t.hour() as i64,
        Step::Minute => (day * 100 + t.hour() as i64) * 100 + t.minute() as i64,
        Step::Second => {
            ((day * 100 + t.hour() as i64) * 100 + t.minute() as i64) * 100 + t.second() as i64
        }
    }
}

impl fmt::Display for TimeBucket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_roll_up_by_division() {
        let m = TimeBucket {
            step: Step::Minute,
            value: 202611291205,
        };
        assert_eq!(
            m.to_step(Step::Hour),
            TimeBucket {
                step: Step::Hour,
                value: 2026112912
            }
        );
        assert_eq!(
            m.to_step(Step::Day),
            TimeBucket {
                step: Step::Day,
                value: 20261129
            }
        );
        assert_eq!(m.to_step(Step::Minute), m);
    }

    #[test]
    fn next_crosses_hour_and_day() {
        let m = TimeBucket {
            step: Step::Minute,
            value: 202612312359,
        };
        assert_eq!(m.next().value, 202701010000);
        let r = TimeBucket::parse("2026-11-29 1258", Step::Minute)
            .unwrap()
            .range_to(
                TimeBucket::parse("2026-11-29 1302", Step::Minute).unwrap(),
                500,
            );
        assert_eq!(
            r.iter().map(|b| b.value % 10_000).collect::<Vec<_>>(),
            vec![1258, 1259, 1300, 1301, 1302]
        );
    }

    #[test]
    fn parse_rejects_wrong_format() {
        assert!(TimeBucket::parse("2026-11-29 12", Step::Minute).is_err());
        assert!(TimeBucket::parse("2026-13-29 1200", Step::Minute).is_err());
        assert_eq!(
            TimeBucket::parse("2026-11-29", Step::Day).unwrap().value,
            20261129
        );
    }

    #[test]
    fn epoch_round_trip() {
        let ms = 1_795_000_000_000;
        let b = TimeBucket::from_epoch_ms(ms, Step::Minute).unwrap();
        let start = b.start_epoch_ms().unwrap();
        assert!(start <= ms && ms - start < 60_000);
    }

    #[test]
    fn remembered_minute_gives_what_the_time_zone_gives() {
        // Instants a few seconds apart around minute, hour and day edges, forwards and back,
        // so the remembered minute is reused, left and re-entered.
        let base = 1_795_000_000_000 - 1_795_000_000_000 % 86_400_000;
        let mut instants: Vec<i64> = (-130..130).map(|i| base + i * 999).collect();
        instants.extend(instants.clone().iter().rev());
        instants.extend([-61_001, -60_000, -1, 0, 59_999, 60_000]);
        for ms in instants {
            let t = local_from_ms(ms).unwrap();
            let day = t.year() as i64 * 10_000 + t.month() as i64 * 100 + t.day() as i64;
            let minute = (day * 100 + t.hour() as i64) * 100 + t.minute() as i64;
            let bucket = |step| TimeBucket::from_epoch_ms(ms, step).unwrap().value;
            assert_eq!(bucket(Step::Minute), minute, "{ms}");
            assert_eq!(
                bucket(Step::Second),
                minute * 100 + t.second() as i64,
                "{ms}"
            );
            assert_eq!(bucket(Step::Hour), minute / 100, "{ms}");
            assert_eq!(bucket(Step::Day), day, "{ms}");
        }
    }
}
