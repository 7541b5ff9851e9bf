//! OTLP wire types → Skylark model, one module per signal.
mod attributes;
mod double_format;
mod encoding;
mod logs;
mod metrics;
mod text_format;
mod traces;

pub use double_format::java_double_to_string;
pub(crate) use encoding::OtlpEncoding;
pub use logs::{convert_logs_request, decode_logs, LogBatch};
pub use metrics::{convert_metrics_request, decode_metrics};
pub(crate) use traces::{convert_traces_request, TraceConversion};
