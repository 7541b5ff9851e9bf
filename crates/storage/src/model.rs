use skylark_core::{EndpointId, InstanceId, Layer, LogRecord, ServiceId};

/// A registered service with every layer it was seen in.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ServiceRecord {
    /// `b64(name).1`.
    pub id: ServiceId,
    /// The service name.
    pub name: String,
    /// Layers, ascending by value.
    pub layers: Vec<Layer>,
}

/// A registered instance.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct InstanceRecord {
    /// `serviceId_b64(name)`.
    pub id: InstanceId,
    /// Instance name.
    pub name: String,
    /// Owning service.
    pub service_id: ServiceId,
    /// Last time (epoch ms) it was seen.
    pub last_ping_ms: i64,
}

/// A registered endpoint.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct EndpointRecord {
    /// `serviceId_b64(name)`.
    pub id: EndpointId,
    /// Endpoint name.
    pub name: String,
    /// Owning service.
    pub service_id: ServiceId,
    /// Last time (epoch ms) it was seen.
    pub last_ping_ms: i64,
}

/// A stored UI dashboard template (booster-ui's template store).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TemplateRecord {
    /// Template id (a shipped file's top-level `id`, or a UUID for added ones).
    pub id: String,
    /// The template's configuration as JSON text, stored verbatim.
    pub configuration: String,
    /// Soft-deleted (`disableTemplate`); kept so it still overrides a shipped template.
    pub disabled: bool,
}

/// How long rows are kept, in days (OAP's `metricsDataTTL`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionPolicy {
    /// Metric rows (minute, hour and day), in days.
    pub metrics_days: u32,
    /// Records (logs, segments), in days.
    pub records_days: u32,
}

impl Default for RetentionPolicy {
    fn default() -> Self {
        RetentionPolicy {
            metrics_days: 7,
            records_days: 3,
        }
    }
}

/// A stored log: the record plus the id and entity ids storage gave it (OAP's `Log` row).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StoredLog {
    /// Unique id, 32 lowercase hex digits.
    pub id: String,
    /// `b64(service).1`.
    pub service_id: ServiceId,
    /// `serviceId_b64(instance)`, only when the record names an instance.
    pub instance_id: Option<InstanceId>,
    /// `serviceId_b64(endpoint)`, only when the record names an endpoint.
    pub endpoint_id: Option<EndpointId>,
    /// The log as written (after truncation, see [`crate::Storage::write_logs`]).
    pub record: LogRecord,
}

/// Which logs [`crate::Storage::query_logs`] returns. Every filter is ANDed; `None`, empty ids
/// and empty lists filter nothing (clients send `""` for "unset").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogQuery {
    /// Only logs of this service.
    pub service_id: Option<ServiceId>,
    /// Only logs of this instance.
    pub instance_id: Option<InstanceId>,
    /// Only logs of this endpoint.
    pub endpoint_id: Option<EndpointId>,
    /// Only logs linked to this trace.
    pub trace_id: Option<String>,
    /// Only logs linked to this segment.
    pub segment_id: Option<String>,
    /// Only logs linked to this span (within the segment).
    pub span_id: Option<i32>,
    /// Earliest timestamp, epoch ms, inclusive.
    pub start_ms: Option<i64>,
    /// Latest timestamp, epoch ms, inclusive.
    pub end_ms: Option<i64>,
    /// Tags the log must carry: `(key, Some(value))` an exact pair, `(key, None)` any value of
    /// the key. Keys and values are trimmed, as OAP does.
    pub tags: Vec<(String, Option<String>)>,
    /// Words the content must all contain (empty words are ignored).
    pub keywords: Vec<String>,
    /// Words the content must not contain (empty words are ignored).
    pub excluding_keywords: Vec<String>,
    /// Newest first (OAP's default `DES`); oldest first when false.
    pub order_desc: bool,
    /// Matching logs to skip.
    pub offset: usize,
    /// At most this many logs.
    pub limit: usize,
}

impl LogQuery {
    /// Whether `log` passes the tag and keyword filters, the ones no index or SQL predicate
    /// applies (every backend checks them on the decoded log).
    pub fn matches_tags_and_keywords(&self, log: &StoredLog) -> bool {
        let r = &log.record;
        let tags_match = self.tags.iter().all(|(key, value)| {
            let key = key.trim();
            let value = value.as_deref().map(str::trim);
            r.tags
                .iter()
                .any(|(k, v)| k == key && value.is_none_or(|value| v == value))
        });
        tags_match
            && self
                .keywords
                .iter()
                .filter(|w| !w.is_empty())
                .all(|w| r.content.contains(w.as_str()))
            && !self
                .excluding_keywords
                .iter()
                .filter(|w| !w.is_empty())
                .any(|w| r.content.contains(w.as_str()))
    }
}

impl Default for LogQuery {
    /// No filters, newest first, no paging.
    fn default() -> Self {
        LogQuery {
            service_id: None,
            instance_id: None,
            endpoint_id: None,
            trace_id: None,
            segment_id: None,
            span_id: None,
            start_ms: None,
            end_ms: None,
            tags: Vec::new(),
            keywords: Vec::new(),
            excluding_keywords: Vec::new(),
            order_desc: true,
            offset: 0,
            limit: usize::MAX,
        }
    }
}

/// Which segments a trace query wants by outcome.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum TraceState {
    /// Every segment.
    #[default]
    All,
    /// Segments without an error span.
    Success,
    /// Segments with an error span.
    Error,
}

/// How trace query results are sorted (both descending, as OAP).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum TraceOrder {
    /// Latest start first.
    #[default]
    ByStartTime,
    /// Longest first (ties: latest start first).
    ByDuration,
}

/// Which segments [`crate::Storage::query_segments`] returns. Every filter is ANDed; `None` and
/// empty ids filter nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceQuery {
    /// Only segments of this service.
    pub service_id: Option<ServiceId>,
    /// Only segments of this instance.
    pub instance_id: Option<InstanceId>,
    /// Only segments whose first span is this endpoint.
    pub endpoint_id: Option<EndpointId>,
    /// Only segments of this trace.
    pub trace_id: Option<String>,
    /// Earliest segment start, epoch ms, inclusive.
    pub start_ms: Option<i64>,
    /// Latest segment start, epoch ms, inclusive.
    pub end_ms: Option<i64>,
    /// Minimum latency in ms, inclusive.
    pub min_duration: Option<i64>,
    /// Maximum latency in ms, inclusive.
    pub max_duration: Option<i64>,
    /// Outcome filter.
    pub state: TraceState,
    /// Sort order.
    pub order: TraceOrder,
    /// Searchable span tags the segment must carry (exact `key=value`, trimmed). Tags that are
    /// not searchable never match, as in OAP.
    pub tags: Vec<(String, String)>,
    /// Matching segments to skip.
    pub offset: usize,
    /// At most this many segments.
    pub limit: usize,
}

impl TraceQuery {
    /// Whether `segment` carries every tag filter (exact key and value, trimmed): the filter no
    /// index or SQL predicate applies (every backend checks it on the decoded segment).
    pub fn matches_tags(&self, segment: &skylark_core::SegmentRecord) -> bool {
        self.tags.iter().all(|(key, value)| {
            let (key, value) = (key.trim(), value.trim());
            segment.tags.iter().any(|(k, v)| k == key && v == value)
        })
    }
}

impl Default for TraceQuery {
    /// No filters, latest first, no paging.
    fn default() -> Self {
        TraceQuery {
            service_id: None,
            instance_id: None,
            endpoint_id: None,
            trace_id: None,
            start_ms: None,
            end_ms: None,
            min_duration: None,
            max_duration: None,
            state: TraceState::All,
            order: TraceOrder::ByStartTime,
            tags: Vec::new(),
            offset: 0,
            limit: usize::MAX,
        }
    }
}

/// A stored alarm (OAP's `AlarmRecord` joined with its recovery): what fired, on which entity,
/// when, and when it recovered.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AlarmRecord {
    /// Unique id, shared by the firing and the recovery message.
    pub uuid: String,
    /// The alarmed entity's scope.
    pub scope: skylark_core::Scope,
    /// Entity name as OAP builds it (`svc`, `inst of svc`, `ep in svc`).
    pub name: String,
    /// Entity id (the source entity for relations).
    pub id0: String,
    /// Destination entity id for relations, else empty.
    pub id1: String,
    /// The rule that fired.
    pub rule_name: String,
    /// The formatted alarm message.
    pub message: String,
    /// The rule's tags.
    pub tags: Vec<(String, String)>,
    /// Layers of the entity when the alarm fired (the first one is filtered on).
    pub layers: Vec<String>,
    /// When it fired, epoch ms.
    pub start_time_ms: i64,
    /// When it recovered, epoch ms; `None` while firing.
    pub recovery_time_ms: Option<i64>,
    /// The rule's MQE expression.
    pub expression: String,
    /// The metric values the expression saw: `(metric as written, series as JSON)`.
    pub snapshot: Vec<(String, String)>,
}

/// One entity filter of an [`AlarmQuery`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlarmEntityFilter {
    /// Entity id (source for relations).
    pub id0: String,
    /// `Some(dest)` for a relation (both sides must match in order); `None` matches `id0` on
    /// either side of a record.
    pub id1: Option<String>,
}

/// Which alarms [`crate::Storage::query_alarms`] returns. Filters are ANDed; within `entities`
/// and `rule_names` any one matches. Empty lists and `None` filter nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlarmQuery {
    /// Earliest start, epoch ms, inclusive.
    pub start_ms: Option<i64>,
    /// Latest start, epoch ms, inclusive.
    pub end_ms: Option<i64>,
    /// Only alarms on entities of this scope.
    pub scope: Option<skylark_core::Scope>,
    /// Text the message must contain.
    pub keyword: Option<String>,
    /// Tags the alarm must carry: `(key, Some(value))` exact, `(key, None)` any value.
    pub tags: Vec<(String, Option<String>)>,
    /// Entities the alarm must be on.
    pub entities: Vec<AlarmEntityFilter>,
    /// Rules that must have fired it.
    pub rule_names: Vec<String>,
    /// The layer the alarmed entity must be in (its first layer).
    pub layer: Option<String>,
    /// Matching alarms to skip.
    pub offset: usize,
    /// At most this many alarms.
    pub limit: usize,
}

impl Default for AlarmQuery {
    /// No filters, no paging.
    fn default() -> Self {
        AlarmQuery {
            start_ms: None,
            end_ms: None,
            scope: None,
            keyword: None,
            tags: Vec::new(),
            entities: Vec::new(),
            rule_names: Vec::new(),
            layer: None,
            offset: 0,
            limit: usize::MAX,
        }
    }
}

/// What `queryRumEvents` asks for. Empty strings mean "no filter".
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RumQuery {
    /// Service name.
    pub service: Option<String>,
    /// Session id.
    pub session_id: Option<String>,
    /// View id.
    pub view_id: Option<String>,
    /// Trace id in any form the RUM SDKs send (decimal, 16 or 32 hex); matched on its low 64
    /// bits.
    pub trace_id: Option<String>,
    /// User id or anonymous id.
    pub user_id: Option<String>,
    /// Event types; empty means all.
    pub types: Vec<skylark_core::RumEventType>,
    /// Epoch ms, inclusive.
    pub start_ms: Option<i64>,
    /// Epoch ms, inclusive.
    pub end_ms: Option<i64>,
    /// Newest first when true.
    pub order_desc: bool,
    /// Matches skipped before the page.
    pub offset: usize,
    /// Page size.
    pub limit: usize,
}

/// A page of RUM events and how many matched.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RumPage {
    /// The page, in query order.
    pub events: Vec<skylark_core::RumEvent>,
    /// Matches in all (counting stops [`crate::RUM_TOTAL_MAX`] past the page).
    pub total: u64,
}

/// Which issues to list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssueQuery {
    /// Only this service's.
    pub service: Option<String>,
    /// Only those in this status.
    pub status: Option<skylark_core::IssueStatus>,
    /// Only those seen in this version.
    pub version: Option<String>,
    /// Only those whose title or culprit contains this (case-insensitive).
    pub keyword: Option<String>,
    /// Only those seen at or after this (epoch ms)...
    pub start_ms: i64,
    /// ...and first seen at or before this.
    pub end_ms: i64,
    /// Sort order (always descending).
    pub order: IssueOrder,
    /// Issues skipped.
    pub offset: usize,
    /// Issues returned at most.
    pub limit: usize,
}

/// How issues are sorted (descending).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IssueOrder {
    /// Latest occurrence first.
    #[default]
    LastSeen,
    /// Most recently appeared first.
    FirstSeen,
    /// Most occurrences first.
    Count,
}

/// A stored source map, without its bytes.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SourceMapRecord {
    /// Service it belongs to.
    pub service: String,
    /// Application version it was built for.
    pub version: String,
    /// The generated file it maps (`app-service.js`).
    pub file: String,
    /// Its size.
    pub bytes: u64,
    /// When it was uploaded (epoch ms); the newest upload is the fallback for other versions.
    pub uploaded_ms: i64,
}

/// What `querySessions` asks for. Empty strings mean "no filter".
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SessionQuery {
    /// Service name.
    pub service: Option<String>,
    /// An app version the session used.
    pub version: Option<String>,
    /// User id or anonymous id.
    pub user_id: Option<String>,
    /// Only sessions with (true) or without (false) error events.
    pub has_error: Option<bool>,
    /// Only sessions at least this long.
    pub min_duration_ms: Option<i64>,
    /// Sessions started at or after this, epoch ms.
    pub start_ms: i64,
    /// Sessions started at or before this, epoch ms.
    pub end_ms: i64,
    /// Matches skipped before the page.
    pub offset: usize,
    /// Page size.
    pub limit: usize,
}

/// A page of sessions, newest start first, and how many matched.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SessionPage {
    /// The page.
    pub sessions: Vec<skylark_core::RumSession>,
    /// Matches in all (counting stops [`crate::RUM_TOTAL_MAX`] past the page).
    pub total: u64,
}
