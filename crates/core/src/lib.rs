//! Skylark's model: the types every other crate speaks.
//!
//! Wire formats (OTLP, SkyWalking protobuf/JSON) are decoded by `skylark-receiver` into these
//! types; rules (`skylark-mal`, `skylark-lal`) compute on them; `skylark-storage` keeps them and
//! `skylark-query` answers from them. Nothing here does IO.
#![warn(missing_docs, unreachable_pub)]

mod error;
mod id;
mod ingest;
mod labels;
mod layer;
mod metric;
mod sample;
mod time;

pub use error::ErrorCode;
pub use id::{
    base64_encode, split_child_id, EndpointId, InstanceId, ServiceId, ENDPOINT_NAME_MAX,
    SERVICE_NAME_MAX,
};
pub use ingest::{
    is_too_far_ahead, EncodedRequest, IngestError, IngestReport, IngestSink, MetricBatch,
    RejectReason, Rejections, MAX_FUTURE_MS,
};
pub use labels::{bound_text, LabelText, Labels};
pub use layer::Layer;
pub use metric::{
    labels_with_le, to_long, HistogramGroup, MeterEntity, MeterValue, MetricCatalog,
    MetricDefinition, MetricEmission, MetricFunction, MetricState, MetricValue, Scope, LE,
};
pub use sample::{Sample, SampleFamilies, SampleFamily};
pub use time::{Step, TimeBucket, TimeError};

/// Traffic ("registration") of entities, the rows behind `listServices`, `listInstances` and
/// `findEndpoint`.
pub mod traffic;

/// Logs in (to LAL) and out (persisted).
pub mod log;
pub use log::{ContentType, LogBody, LogData, LogRecord};

/// Native SkyWalking trace segments and the record storage keeps per segment.
pub mod segment;
pub use segment::{
    component_name, RefType, Segment, SegmentRecord, SegmentRef, Span, SpanLayer, SpanLog, SpanType,
};

/// Real-user-monitoring events (the Datadog/Flashcat RUM format).
pub mod rum;
pub use rum::{RumBatch, RumEvent, RumEventType, RumSession, RumSessionPage};
/// Error issues: occurrences grouped by fingerprint and their lifecycle state.
pub mod issue;
pub use issue::{Issue, IssueOccurrence, IssueStatus, IssueVersion};

/// Self-metric names and the registry receivers and the server report into.
pub mod telemetry;
