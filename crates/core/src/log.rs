//! Logs: what the receiver hands to LAL ([`LogData`]) and what LAL persists ([`LogRecord`]).
use crate::Layer;

/// The body of a log as received.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum LogBody {
    /// No body.
    #[default]
    None,
    /// Plain text (every OTLP log body arrives as text).
    Text(String),
    /// A JSON document.
    Json(String),
    /// A YAML document.
    Yaml(String),
}

impl LogBody {
    /// The body's text, `""` when there is none.
    pub fn content(&self) -> &str {
        match self {
            LogBody::None => "",
            LogBody::Text(s) | LogBody::Json(s) | LogBody::Yaml(s) => s,
        }
    }

    /// How the body is stored.
    pub fn content_type(&self) -> ContentType {
        match self {
            LogBody::None => ContentType::None,
            LogBody::Text(_) => ContentType::Text,
            LogBody::Json(_) => ContentType::Json,
            LogBody::Yaml(_) => ContentType::Yaml,
        }
    }
}

/// One log as decoded by a receiver, before LAL (OAP's `LogData` plus its metadata).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LogData {
    /// Service name (resource `service.name`).
    pub service: String,
    /// Instance name (`service.instance.id`, else `service.instance`), `""` if none.
    pub service_instance: String,
    /// Endpoint name, `""` if none (never set from OTLP).
    pub endpoint: String,
    /// Layer name from resource `service.layer`, `""` if none (then `layer: auto` rules run).
    pub layer: String,
    /// Epoch milliseconds; 0 means "use the time of receipt".
    pub timestamp_ms: i64,
    /// The body.
    pub body: LogBody,
    /// The log record's attributes, original keys, in arrival order.
    pub tags: Vec<(String, String)>,
    /// The resource attributes, original keys (read by LAL's `sourceAttribute`).
    pub source_attributes: Vec<(String, String)>,
    /// Trace id, if the sender linked the log to a trace.
    pub trace_id: Option<String>,
    /// Segment id, if linked.
    pub segment_id: Option<String>,
    /// Span id within the segment, if linked.
    pub span_id: Option<i32>,
}

/// How a persisted log's content is encoded (OAP's `ContentType`, stored as its ordinal).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
pub enum ContentType {
    /// No content (0).
    #[default]
    None,
    /// Text (1).
    Text,
    /// JSON (2).
    Json,
    /// YAML (3).
    Yaml,
}

impl ContentType {
    /// OAP's stored integer.
    pub fn value(self) -> i32 {
        match self {
            ContentType::None => 0,
            ContentType::Text => 1,
            ContentType::Json => 2,
            ContentType::Yaml => 3,
        }
    }
}

/// A log as LAL persists it (OAP's `Log` source, before storage assigns id and time bucket).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LogRecord {
    /// Service name.
    pub service: String,
    /// Instance name, `""` if none (then no instance id is stored).
    pub service_instance: String,
    /// Endpoint name, `""` if none (then no endpoint id is stored).
    pub endpoint: String,
    /// Layer the log was processed in.
    pub layer: Layer,
    /// Epoch milliseconds.
    pub timestamp_ms: i64,
    /// Trace id, if any.
    pub trace_id: Option<String>,
    /// Segment id, if any.
    pub segment_id: Option<String>,
    /// Span id, if any.
    pub span_id: Option<i32>,
    /// How `content` is encoded.
    pub content_type: ContentType,
    /// The body.
    pub content: String,
    /// The original attributes followed by the tags added by the rule (duplicates kept).
    pub tags: Vec<(String, String)>,
}
