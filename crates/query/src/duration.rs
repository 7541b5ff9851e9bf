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
