use skylark_core::traffic::Traffic;
use skylark_core::MetricEmission;

/// Java's `TimeUnit`, as used by `histogram(le, TimeUnit.X)` and the default bucket unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimeUnit {
    /// Nanoseconds (scale 0: rejected by `histogram`).
    Nanoseconds,
    /// Microseconds (scale 0: rejected by `histogram`).
    Microseconds,
    /// Milliseconds (scale 1).
    Milliseconds,
    /// Seconds (scale 1000), the OTLP default.
    Seconds,
    /// Minutes.
    Minutes,
    /// Hours.
    Hours,
    /// Days.
    Days,
}

impl TimeUnit {
    /// The unit named `name` (`MILLISECONDS`, ...).
    pub fn from_name(name: &str) -> Option<TimeUnit> {
        Some(match name {
            "NANOSECONDS" => TimeUnit::Nanoseconds,
            "MICROSECONDS" => TimeUnit::Microseconds,
            "MILLISECONDS" => TimeUnit::Milliseconds,
            "SECONDS" => TimeUnit::Seconds,
            "MINUTES" => TimeUnit::Minutes,
            "HOURS" => TimeUnit::Hours,
            "DAYS" => TimeUnit::Days,
            _ => return None,
        })
    }

    /// Whole milliseconds in one unit (Java's `toMillis(1)`).
    pub fn millis(self) -> i64 {
        match self {
            TimeUnit::Nanoseconds | TimeUnit::Microseconds => 0,
            TimeUnit::Milliseconds => 1,
            TimeUnit::Seconds => 1000,
            TimeUnit::Minutes => 60_000,
            TimeUnit::Hours => 3_600_000,
            TimeUnit::Days => 86_400_000,
        }
    }
}

/// What an evaluation needs from its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EvalContext {
    /// Unit of `le` bounds when `histogram()` is called without one (SECONDS on OTLP).
    pub default_histogram_unit: TimeUnit,
    /// Wall-clock time in epoch milliseconds (`time()`).
    pub now_ms: i64,
}

/// What one evaluation of a rule set produced.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RuleOutput {
    /// One value per (metric, entity).
    pub emissions: Vec<MetricEmission>,
    /// Entities seen (service always; instance/endpoint when their name is non-empty).
    pub traffic: Vec<Traffic>,
}
