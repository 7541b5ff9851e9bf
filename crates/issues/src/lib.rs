//! Skylark's error issues: mini-program stacks parsed into frames, frames resolved through
//! uploaded source maps, occurrences fingerprinted (rule `fp1`) and grouped into issues with a
//! lifecycle (`unresolved`, `resolved`, `ignored`, `regressed`).
//!
//! Issues are built from error *log records* after LAL, so every SDK whose errors end up as logs
//! with the tags in [`tags`] is grouped the same way.
#![warn(missing_docs, unreachable_pub)]

/// The per-issue occurrence metric: a service-scope `SumLabeled` metric labeled
/// [`OCCURRENCE_METRIC_LABEL`] = issue id, one per occurrence, so MQE can chart an issue
/// (`meter_issue_occurrence_count{issue='<id>'}`).
pub const OCCURRENCE_METRIC: &str = "meter_issue_occurrence_count";
/// The label holding the issue id.
pub const OCCURRENCE_METRIC_LABEL: &str = "issue";

mod error;
mod fingerprint;
mod grouper;
mod lifecycle;
mod sourcemaps;
mod stack;

pub use error::{Error, Result};
pub use fingerprint::{
    error_type_of, fingerprint, fingerprint_parts, normalise_message, FingerprintFrame,
    FingerprintInput,
};
pub use grouper::{tags, Grouper, GrouperSettings, ResolvedStackFrame};
pub use lifecycle::{record_occurrence, set_status};
pub use sourcemaps::{
    check_map, generated_file_for, is_zip, unpack_zip, ArchivedMap, MapSource, MapSummary,
    ResolvedFrame, Resolver, SourceMapLimits,
};
pub use stack::{Frame, FrameRules, ParsedStack, STACK_FRAMES_MAX, STACK_SCAN_MAX_BYTES};
