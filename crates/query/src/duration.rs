use crate::{Error, Result};
use skylark_core::{Step, TimeBucket};

/// OAP refuses durations with more points than this.
pub const MAX_DURATION_POINTS: usize = 500;

/// A parsed query `Duration`: every bucket from start to end inclusive, in server time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryDuration {
    /// The step (granularity) the client chose.
    pub step: Step,
    /// Buckets in time order (at least one).
    pub buckets: Vec<TimeBucket>,
}

impl QueryDuration {
    /// Parses `start`/`end` in the step's format (`yyyy-MM-dd HHmm` for minutes, ...), in the
    /// server's time zone. More than 500 buckets, or an end before the start, is OAP's
    /// "can't exceed 500 minutes" error.
    pub fn parse(start: &str, end: &str, step: Step) -> Result<QueryDuration> {
        let start = TimeBucket::parse(start.trim(), step)?;
        let end = TimeBucket::parse(end.trim(), step)?;
        if end < start {
            return Err(Error::DurationTooLong);
        }
        let buckets = start.range_to(end, MAX_DURATION_POINTS + 1);
        if buckets.len() > MAX_DURATION_POINTS {
            return Err(Error::DurationTooLong);
        }
        Ok(QueryDuration { step, buckets })
    }

    /// Epoch ms of the first bucket's start.
    pub fn start_ms(&self) -> i64 {
        self.buckets
            .first()
            .and_then(|b| b.start_epoch_ms().ok())
            .unwrap_or(0)
    }
}

/// The epoch-ms window `[first bucket's start, last bucket's end]` a `Duration` covers for record
/// queries (logs, segments): a MINUTE end of `12:30` reaches `12:30:59.999`. Unlike metric
/// durations there is no 500-point limit, as in OAP (the UIs send 30-minute SECOND windows).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordWindow {
    /// Epoch ms of the start, inclusive.
    pub start_ms: i64,
    /// Epoch ms of the end, inclusive.
    pub end_ms: i64,
}

impl RecordWindow {
    /// Parses `start`/`end` in the step's format, in the server's time zone. An end before the
    /// start is kept as is (it matches nothing).
    pub fn parse(start: &str, end: &str, step: Step) -> Result<RecordWindow> {
        let start = TimeBucket::parse(start.trim(), step)?;
        let end = TimeBucket::parse(end.trim(), step)?;
        Ok(RecordWindow {
            start_ms: start.start_epoch_ms()?,
            end_ms: end.next().start_epoch_ms()? - 1,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_windows_end_at_the_last_bucket_end_without_a_point_limit() {
        let minute =
            RecordWindow::parse("2026-05-01 1200", "2026-05-01 1230", Step::Minute).unwrap();
        assert_eq!(minute.end_ms - minute.start_ms, 31 * 60_000 - 1);
        // 1,801 seconds would be far over the 500-point metric limit.
        let second =
            RecordWindow::parse("2026-05-01 120000", "2026-05-01 123000", Step::Second).unwrap();
        assert_eq!(second.start_ms, minute.start_ms);
        assert_eq!(second.end_ms, minute.start_ms + 1_801_000 - 1);
        assert!(RecordWindow::parse("2026-05-01 12", "2026-05-01 1230", Step::Minute).is_err());
    }
}
