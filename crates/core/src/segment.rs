//! Native SkyWalking trace segments (our model of `skywalking.v3.SegmentObject`) and the record
//! storage keeps per segment.
use crate::{EndpointId, InstanceId, ServiceId};

/// One trace segment: the spans one service instance produced for one trace.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Segment {
    /// The trace this segment belongs to.
    pub trace_id: String,
    /// The segment's own id (`traceSegmentId`).
    pub segment_id: String,
    /// Service name.
    pub service: String,
    /// Instance name (the mini-program SDK sends `-` when none is configured).
    pub service_instance: String,
    /// Spans in the order the agent sent them.
    pub spans: Vec<Span>,
    /// The agent dropped spans because the segment grew too large.
    pub is_size_limited: bool,
}

/// What a span does in its segment.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
pub enum SpanType {
    /// Receives a call (0).
    #[default]
    Entry,
    /// Makes a call (1).
    Exit,
    /// Local work (2).
    Local,
}

impl SpanType {
    /// The name OAP's query API shows (`Entry`, `Exit`, `Local`).
    pub fn name(self) -> &'static str {
        match self {
            SpanType::Entry => "Entry",
            SpanType::Exit => "Exit",
            SpanType::Local => "Local",
        }
    }
}

/// The kind of technology a span touches.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
pub enum SpanLayer {
    /// 0.
    #[default]
    Unknown,
    /// 1.
    Database,
    /// 2.
    RPCFramework,
    /// 3.
    Http,
    /// 4.
    MQ,
    /// 5.
    Cache,
    /// 6.
    FAAS,
}

impl SpanLayer {
    /// The name OAP's query API shows (`Unknown`, `Database`, `RPCFramework`, `Http`, ...).
    pub fn name(self) -> &'static str {
        match self {
            SpanLayer::Unknown => "Unknown",
            SpanLayer::Database => "Database",
            SpanLayer::RPCFramework => "RPCFramework",
            SpanLayer::Http => "Http",
            SpanLayer::MQ => "MQ",
            SpanLayer::Cache => "Cache",
            SpanLayer::FAAS => "FAAS",
        }
    }
}

/// How a segment is linked to its parent.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
pub enum RefType {
    /// The parent is in another process (0).
    #[default]
    CrossProcess,
    /// The parent is another thread of the same process (1).
    CrossThread,
}

impl RefType {
    /// The GraphQL enum value (`CROSS_PROCESS`, `CROSS_THREAD`).
    pub fn name(self) -> &'static str {
        match self {
            RefType::CrossProcess => "CROSS_PROCESS",
            RefType::CrossThread => "CROSS_THREAD",
        }
    }
}

/// A link from a span to the span that caused it.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SegmentRef {
    /// Cross-process or cross-thread.
    pub ref_type: RefType,
    /// The parent's trace id.
    pub trace_id: String,
    /// The parent segment.
    pub parent_segment_id: String,
    /// The parent span within that segment.
    pub parent_span_id: i32,
    /// The parent's service name.
    pub parent_service: String,
    /// The parent's instance name.
    pub parent_service_instance: String,
    /// The parent's endpoint name.
    pub parent_endpoint: String,
    /// The address the parent used to reach this service.
    pub network_address_used_at_peer: String,
}

/// A timestamped event inside a span.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SpanLog {
    /// Epoch milliseconds.
    pub time_ms: i64,
    /// Key/value pairs in arrival order.
    pub data: Vec<(String, String)>,
}

/// One span of a segment.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Span {
    /// Id within the segment (0 is the first span).
    pub span_id: i32,
    /// Parent span within the segment, -1 for the root.
    pub parent_span_id: i32,
    /// Epoch milliseconds.
    pub start_time_ms: i64,
    /// Epoch milliseconds.
    pub end_time_ms: i64,
    /// Links to parent segments.
    pub refs: Vec<SegmentRef>,
    /// Operation (endpoint) name; the mini-program SDK sends the page path.
    pub operation_name: String,
    /// Remote address of an exit span (`-` or empty when unknown).
    pub peer: String,
    /// Entry, exit or local.
    pub span_type: SpanType,
    /// Technology layer.
    pub span_layer: SpanLayer,
    /// Component id (see [`component_name`]).
    pub component_id: i32,
    /// The span failed.
    pub is_error: bool,
    /// Tags in arrival order (duplicates kept).
    pub tags: Vec<(String, String)>,
    /// Events.
    pub logs: Vec<SpanLog>,
    /// The agent asked OAP not to derive metrics from this span.
    pub skip_analysis: bool,
}

/// The tag holding the OTLP span id (16 lowercase hex digits) of a span received over OTLP.
pub const OTEL_SPAN_ID_TAG: &str = "otel.span_id";

/// A ref whose parent segment id starts with this names the parent's OTLP span id instead
/// (`otel:<16 hex>`): the OTLP receiver cannot know which segment holds a parent sent in another
/// request, so the trace query resolves it among the trace's spans.
pub const OTEL_PARENT_PREFIX: &str = "otel:";

/// The segment id prefix of a mini program's own request span made from a RUM resource
/// (`rum.<trace id>.<span id>`): a trace holding only those has no backend spans in Skylark.
pub const RUM_SEGMENT_PREFIX: &str = "rum.";

/// OAP's default `searchableTracesTags`: span tags that trace queries can filter on.
pub const DEFAULT_SEARCHABLE_SPAN_TAG_KEYS: &[&str] = &[
    "http.method",
    "http.status_code",
    "rpc.status_code",
    "db.type",
    "db.instance",
    "mq.queue",
    "mq.topic",
    "mq.broker",
];

/// OAP does not index a tag whose value or `key=value` text is longer than this.
pub const SEARCHABLE_TAG_MAX_CHARS: usize = 256;

/// What storage keeps per segment (OAP's `SegmentRecord`), with the segment itself for detail
/// queries.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SegmentRecord {
    /// The segment's id.
    pub segment_id: String,
    /// The trace id.
    pub trace_id: String,
    /// `b64(service).1`.
    pub service_id: ServiceId,
    /// Service name.
    pub service: String,
    /// `serviceId_b64(instance)`; the SDK's `-` is encoded as is (`…_LQ==`).
    pub service_instance_id: InstanceId,
    /// Instance name.
    pub service_instance: String,
    /// `serviceId_b64(endpoint)`.
    pub endpoint_id: EndpointId,
    /// The first span's operation name.
    pub endpoint: String,
    /// Earliest span start, epoch milliseconds.
    pub start_time_ms: i64,
    /// Latest span end minus earliest span start, in ms (never negative).
    pub latency_ms: i64,
    /// Any span failed.
    pub is_error: bool,
    /// Searchable span tags, deduplicated, in first-seen order.
    pub tags: Vec<(String, String)>,
    /// The whole segment.
    pub segment: Segment,
}

impl SegmentRecord {
    /// The record OAP derives from `segment` with the default searchable tag keys; `None` for a
    /// segment without spans (OAP ignores those).
    pub fn from_segment(segment: &Segment) -> Option<Self> {
        Self::from_segment_with_tag_keys(segment, DEFAULT_SEARCHABLE_SPAN_TAG_KEYS)
    }

    /// As [`SegmentRecord::from_segment`], indexing the span tags whose key is in
    /// `searchable_keys` (OAP's `searchableTracesTags`).
    pub fn from_segment_with_tag_keys(segment: &Segment, searchable_keys: &[&str]) -> Option<Self> {
        // OAP takes the endpoint from the span with id 0; an agent that starts elsewhere still
        // gets its first span used.
        let first = segment
            .spans
            .iter()
            .find(|s| s.span_id == 0)
            .or_else(|| segment.spans.first())?;
        let start = segment.spans.iter().map(|s| s.start_time_ms).min()?;
        let end = segment.spans.iter().map(|s| s.end_time_ms).max()?;
        let service_id = ServiceId::new(&segment.service, true);
        let mut tags: Vec<(String, String)> = Vec::new();
        for (key, value) in segment.spans.iter().flat_map(|s| s.tags.iter()) {
            if !searchable_keys.contains(&key.as_str()) {
                continue;
            }
            let chars = value.chars().count();
            if chars > SEARCHABLE_TAG_MAX_CHARS
                || key.chars().count() + 1 + chars > SEARCHABLE_TAG_MAX_CHARS
            {
                continue;
            }
            if !tags.iter().any(|(k, v)| k == key && v == value) {
                tags.push((key.clone(), value.clone()));
            }
        }
        Some(SegmentRecord {
            segment_id: segment.segment_id.clone(),
            trace_id: segment.trace_id.clone(),
            service_instance_id: InstanceId::new(&service_id, &segment.service_instance),
            endpoint_id: EndpointId::new(&service_id, &first.operation_name),
            service_id,
            service: segment.service.clone(),
            service_instance: segment.service_instance.clone(),
            endpoint: first.operation_name.clone(),
            start_time_ms: start,
            latency_ms: end.saturating_sub(start).max(0),
            is_error: segment.spans.iter().any(|s| s.is_error),
            tags,
            segment: segment.clone(),
        })
    }
}

/// Component names by id, from OAP's `component-libraries.yml` (a subset: the common Java/HTTP
/// libraries, a few per other language, and the JavaScript/mini-program range).
const COMPONENTS: &[(i32, &str)] = &[
    (0, "Unknown"),
    (1, "Tomcat"),
    (2, "HttpClient"),
    (3, "Dubbo"),
    (4, "H2"),
    (5, "Mysql"),
    (6, "ORACLE"),
    (7, "Redis"),
    (8, "Motan"),
    (9, "MongoDB"),
    (10, "Resin"),
    (11, "Feign"),
    (12, "OKHttp"),
    (13, "SpringRestTemplate"),
    (14, "SpringMVC"),
    (15, "Struts2"),
    (16, "NutzMVC"),
    (17, "NutzHttp"),
    (18, "JettyClient"),
    (19, "JettyServer"),
    (20, "Memcached"),
    (21, "ShardingJDBC"),
    (22, "PostgreSQL"),
    (23, "GRPC"),
    (24, "ElasticJob"),
    (25, "RocketMQ"),
    (26, "httpasyncclient"),
    (27, "Kafka"),
    (28, "ServiceComb"),
    (29, "Hystrix"),
    (30, "Jedis"),
    (31, "SQLite"),
    (32, "h2-jdbc-driver"),
    (33, "mysql-connector-java"),
    (34, "ojdbc"),
    (35, "Spymemcached"),
    (36, "Xmemcached"),
    (37, "postgresql-jdbc-driver"),
    (38, "rocketMQ-producer"),
    (39, "rocketMQ-consumer"),
    (40, "kafka-producer"),
    (41, "kafka-consumer"),
    (42, "mongodb-driver"),
    (43, "SOFARPC"),
    (44, "ActiveMQ"),
    (45, "activemq-producer"),
    (46, "activemq-consumer"),
    (47, "Elasticsearch"),
    (48, "transport-client"),
    (49, "http"),
    (50, "rpc"),
    (51, "RabbitMQ"),
    (52, "rabbitmq-producer"),
    (53, "rabbitmq-consumer"),
    (61, "spring-cloud-gateway"),
    (66, "JdkHttp"),
    (67, "spring-webflux"),
    (84, "Undertow"),
    (110, "tcp"),
    (129, "https"),
    (4001, "HttpServer"),
    (4002, "Express"),
    (4005, "Axios"),
    (5004, "GoHttpServer"),
    (5005, "GoHttpClient"),
    (6000, "Nginx"),
    (7000, "Python"),
    (7001, "Flask"),
    (7002, "Requests"),
    (9000, "EnvoyProxy"),
    (10000, "JavaScript"),
    (10001, "ajax"),
    (10002, "WeChat-MiniProgram"),
    (10003, "AliPay-MiniProgram"),
    (11000, "Rust"),
];

/// The display name of component `id`, `None` for ids outside our table.
pub fn component_name(id: i32) -> Option<&'static str> {
    COMPONENTS
        .binary_search_by_key(&id, |(i, _)| *i)
        .ok()
        .map(|idx| COMPONENTS[idx].1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(id: i32, start: i64, end: i64, op: &str) -> Span {
        Span {
            span_id: id,
            parent_span_id: id - 1,
            start_time_ms: start,
            end_time_ms: end,
            operation_name: op.into(),
            ..Span::default()
        }
    }

    fn segment(spans: Vec<Span>) -> Segment {
        Segment {
            trace_id: "t1".into(),
            segment_id: "s1".into(),
            service: "mini-program-sim-wechat".into(),
            service_instance: "-".into(),
            spans,
            is_size_limited: false,
        }
    }

    #[test]
    fn record_derives_ids_times_and_error_as_oap() {
        let mut second = span(1, 900, 1_300, "inner");
        second.is_error = true;
        let seg = segment(vec![span(0, 1_000, 1_200, "pages/index/index"), second]);
        let rec = SegmentRecord::from_segment(&seg).unwrap();
        assert_eq!(
            rec.service_id.as_str(),
            "bWluaS1wcm9ncmFtLXNpbS13ZWNoYXQ=.1"
        );
        assert_eq!(
            rec.service_instance_id.as_str(),
            "bWluaS1wcm9ncmFtLXNpbS13ZWNoYXQ=.1_LQ=="
        );
        assert_eq!(rec.service_instance, "-");
        assert_eq!(rec.endpoint, "pages/index/index");
        assert_eq!(
            rec.endpoint_id,
            EndpointId::new(&rec.service_id, "pages/index/index")
        );
        assert_eq!((rec.start_time_ms, rec.latency_ms), (900, 400));
        assert!(rec.is_error);
        assert_eq!(rec.segment, seg);
    }

    #[test]
    fn a_segment_without_spans_has_no_record() {
        assert_eq!(SegmentRecord::from_segment(&segment(vec![])), None);
    }

    #[test]
    fn only_searchable_short_tags_are_indexed_once() {
        let mut a = span(0, 1, 2, "p");
        a.tags = vec![
            ("http.method".into(), "GET".into()),
            ("url".into(), "https://x/y".into()),
            ("http.status_code".into(), "x".repeat(300)),
        ];
        let mut b = span(1, 1, 2, "q");
        b.tags = vec![
            ("http.method".into(), "GET".into()),
            ("http.status_code".into(), "200".into()),
        ];
        let rec = SegmentRecord::from_segment(&segment(vec![a, b])).unwrap();
        assert_eq!(
            rec.tags,
            vec![
                ("http.method".to_string(), "GET".to_string()),
                ("http.status_code".to_string(), "200".to_string())
            ]
        );
    }

    #[test]
    fn component_names_cover_the_mini_program_range() {
        assert_eq!(component_name(10002), Some("WeChat-MiniProgram"));
        assert_eq!(component_name(10003), Some("AliPay-MiniProgram"));
        assert_eq!(component_name(10001), Some("ajax"));
        assert_eq!(component_name(14), Some("SpringMVC"));
        assert_eq!(component_name(0), Some("Unknown"));
        assert_eq!(component_name(99_999), None);
        assert!(
            COMPONENTS.windows(2).all(|w| w[0].0 < w[1].0),
            "table must stay sorted for binary search"
        );
    }
}
