//! Logs (log.graphqls): `queryLogs`, `queryLogsByName`, keyword support and tag autocomplete.

use super::query::{given, qctx};
use super::types::*;
use crate::Error;
use async_graphql::{Context, Enum, InputObject, Object, Result, SimpleObject, ID};
use skylark_core::{ContentType, EndpointId, InstanceId, ServiceId};
use skylark_storage::StoredLog;

/// OAP's message when neither a duration nor a trace narrows the search; reported in
/// `errorReason` so clients show it instead of failing the whole request.
pub const LOG_CONDITION_REQUIRED: &str =
    "The condition must contains either queryDuration or relatedTrace.";

/// `enum ContentType` (a stored `NONE` shows as `TEXT`, as the schema has no `NONE`).
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
#[graphql(name = "ContentType")]
pub enum ContentTypeEnum {
    /// `TEXT`
    Text,
    /// `JSON`
    Json,
    /// `YAML`
    Yaml,
}

impl From<ContentType> for ContentTypeEnum {
    fn from(c: ContentType) -> Self {
        match c {
            ContentType::None | ContentType::Text => ContentTypeEnum::Text,
            ContentType::Json => ContentTypeEnum::Json,
            ContentType::Yaml => ContentTypeEnum::Yaml,
        }
    }
}

/// `input TraceScopeCondition`: logs linked to a trace (optionally one segment and span).
#[derive(InputObject, Debug, Clone)]
pub struct TraceScopeCondition {
    /// Trace id; `""` means no trace filter.
    pub trace_id: String,
    /// Segment id.
    pub segment_id: Option<String>,
    /// Span id within the segment.
    pub span_id: Option<i32>,
}

/// `input LogTag`: an exact tag match (any value of the key when `value` is null).
#[derive(InputObject, Debug, Clone)]
pub struct LogTag {
    /// Tag key.
    pub key: String,
    /// Tag value.
    pub value: Option<String>,
}

/// `input LogQueryCondition`.
#[derive(InputObject, Debug, Clone)]
pub struct LogQueryCondition {
    /// Service id (`""` = all).
    pub service_id: Option<ID>,
    /// Instance id (`""` = all).
    pub service_instance_id: Option<ID>,
    /// Endpoint id (`""` = all).
    pub endpoint_id: Option<ID>,
    /// Logs of one trace; replaces the need for a duration.
    pub related_trace: Option<TraceScopeCondition>,
    /// Time range of the log timestamps.
    pub query_duration: Option<DurationInput>,
    /// Paging.
    pub paging: Pagination,
    /// Tags the logs must carry (all of them).
    pub tags: Option<Vec<LogTag>>,
    /// Words the content must contain.
    pub keywords_of_content: Option<Vec<String>>,
    /// Words the content must not contain.
    pub excluding_keywords_of_content: Option<Vec<String>>,
    /// Timestamp order, `DES` by default.
    pub query_order: Option<OrderEnum>,
}

/// `input LogQueryConditionByName`: as [`LogQueryCondition`] with entities by name.
#[derive(InputObject, Debug, Clone)]
pub struct LogQueryConditionByName {
    /// Service.
    pub service: Option<ServiceCondition>,
    /// Instance.
    pub instance: Option<InstanceCondition>,
    /// Endpoint.
    pub endpoint: Option<EndpointCondition>,
    /// Logs of one trace; replaces the need for a duration.
    pub related_trace: Option<TraceScopeCondition>,
    /// Time range of the log timestamps.
    pub query_duration: Option<DurationInput>,
    /// Paging.
    pub paging: Pagination,
    /// Tags the logs must carry (all of them).
    pub tags: Option<Vec<LogTag>>,
    /// Words the content must contain.
    pub keywords_of_content: Option<Vec<String>>,
    /// Words the content must not contain.
    pub excluding_keywords_of_content: Option<Vec<String>>,
    /// Timestamp order, `DES` by default.
    pub query_order: Option<OrderEnum>,
}

/// `type Log`.
#[derive(SimpleObject, Debug, Clone)]
#[graphql(name = "Log")]
pub struct LogObject {
    /// Service name (decoded from the id).
    pub service_name: Option<String>,
    /// Service id.
    pub service_id: Option<ID>,
    /// Instance name, null without an instance.
    pub service_instance_name: Option<String>,
    /// Instance id, null without an instance.
    pub service_instance_id: Option<ID>,
    /// Endpoint name, null without an endpoint.
    pub endpoint_name: Option<String>,
    /// Endpoint id, null without an endpoint.
    pub endpoint_id: Option<ID>,
    /// Trace id, null (not `""`) when the log is not linked to a trace.
    pub trace_id: Option<String>,
    /// Epoch ms.
    pub timestamp: Long,
    /// How `content` is encoded.
    pub content_type: ContentTypeEnum,
    /// The body.
    pub content: Option<String>,
    /// Tags in stored order.
    pub tags: Option<Vec<KeyValue>>,
}

impl From<StoredLog> for LogObject {
    fn from(log: StoredLog) -> Self {
        let r = log.record;
        let service_name = log
            .service_id
            .decode()
            .map(|(name, _)| name)
            .unwrap_or(r.service);
        let instance = log.instance_id.map(|id| {
            let name = id.decode().map(|(_, n)| n);
            (id, name)
        });
        let endpoint = log.endpoint_id.map(|id| {
            let name = id.decode().map(|(_, n)| n);
            (id, name)
        });
        LogObject {
            service_name: Some(service_name),
            service_id: Some(ID(log.service_id.into_string())),
            service_instance_name: instance
                .as_ref()
                .map(|(_, n)| n.clone().unwrap_or_else(|| r.service_instance.clone())),
            service_instance_id: instance.map(|(id, _)| ID(id.into_string())),
            endpoint_name: endpoint
                .as_ref()
                .map(|(_, n)| n.clone().unwrap_or_else(|| r.endpoint.clone())),
            endpoint_id: endpoint.map(|(id, _)| ID(id.into_string())),
            trace_id: r.trace_id.filter(|t| !t.is_empty()),
            timestamp: Long(r.timestamp_ms),
            content_type: r.content_type.into(),
            content: Some(r.content),
            tags: Some(
                r.tags
                    .into_iter()
                    .map(|(key, value)| KeyValue {
                        key,
                        value: Some(value),
                    })
                    .collect(),
            ),
        }
    }
}

/// `type Logs`.
#[derive(SimpleObject, Debug, Clone)]
#[graphql(name = "Logs")]
pub struct LogsObject {
    /// Why the query could not run (the UI shows it), else null.
    pub error_reason: Option<String>,
    /// The page of logs.
    pub logs: Vec<LogObject>,
    /// Always null.
    pub debugging_trace: Option<DebuggingTrace>,
}

/// The parts both condition types share, with entities already resolved to ids.
struct LogFilter {
    service_id: Option<ServiceId>,
    instance_id: Option<InstanceId>,
    endpoint_id: Option<EndpointId>,
    related_trace: Option<TraceScopeCondition>,
    query_duration: Option<DurationInput>,
    paging: Pagination,
    tags: Vec<LogTag>,
    keywords: Vec<String>,
    excluding_keywords: Vec<String>,
    order: Option<OrderEnum>,
}

fn id_given(id: Option<ID>) -> Option<String> {
    given(id.map(|i| i.0))
}

impl From<LogQueryCondition> for LogFilter {
    fn from(c: LogQueryCondition) -> Self {
        LogFilter {
            service_id: id_given(c.service_id).map(ServiceId::from_raw),
            instance_id: id_given(c.service_instance_id).map(InstanceId::from_raw),
            endpoint_id: id_given(c.endpoint_id).map(EndpointId::from_raw),
            related_trace: c.related_trace,
            query_duration: c.query_duration,
            paging: c.paging,
            tags: c.tags.unwrap_or_default(),
            keywords: c.keywords_of_content.unwrap_or_default(),
            excluding_keywords: c.excluding_keywords_of_content.unwrap_or_default(),
            order: c.query_order,
        }
    }
}

impl From<LogQueryConditionByName> for LogFilter {
    fn from(c: LogQueryConditionByName) -> Self {
        let service_id = c
            .service
            .filter(|s| !s.service_name.is_empty())
            .map(|s| condition_service_id(&s.service_name, s.layer.as_deref()));
        let instance_id = c
            .instance
            .filter(|i| !i.service_name.is_empty() && !i.instance_name.is_empty())
            .map(|i| {
                let sid = condition_service_id(&i.service_name, i.layer.as_deref());
                InstanceId::new(&sid, &i.instance_name)
            });
        let endpoint_id = c
            .endpoint
            .filter(|e| !e.service_name.is_empty() && !e.endpoint_name.is_empty())
            .map(|e| {
                let sid = condition_service_id(&e.service_name, e.layer.as_deref());
                EndpointId::new(&sid, &e.endpoint_name)
            });
        LogFilter {
            service_id,
            instance_id,
            endpoint_id,
            related_trace: c.related_trace,
            query_duration: c.query_duration,
            paging: c.paging,
            tags: c.tags.unwrap_or_default(),
            keywords: c.keywords_of_content.unwrap_or_default(),
            excluding_keywords: c.excluding_keywords_of_content.unwrap_or_default(),
            order: c.query_order,
        }
    }
}

fn error_reason(message: &str) -> LogsObject {
    LogsObject {
        error_reason: Some(message.to_string()),
        logs: Vec::new(),
        debugging_trace: None,
    }
}

fn run_log_query(ctx: &Context<'_>, filter: Option<LogFilter>) -> Result<LogsObject> {
    let Some(f) = filter else {
        return Ok(error_reason(LOG_CONDITION_REQUIRED));
    };
    let trace = f
        .related_trace
        .filter(|t| !t.trace_id.is_empty() || given(t.segment_id.clone()).is_some());
    if f.query_duration.is_none() && trace.is_none() {
        return Ok(error_reason(LOG_CONDITION_REQUIRED));
    }
    let window = match &f.query_duration {
        Some(d) => Some(d.record_window()?),
        None => None,
    };
    let (offset, limit) = f.paging.offset_limit(max_page_size(ctx))?;
    let query = skylark_storage::LogQuery {
        service_id: f.service_id,
        instance_id: f.instance_id,
        endpoint_id: f.endpoint_id,
        trace_id: trace
            .as_ref()
            .map(|t| t.trace_id.clone())
            .filter(|t| !t.is_empty()),
        segment_id: trace.as_ref().and_then(|t| given(t.segment_id.clone())),
        span_id: trace.as_ref().and_then(|t| t.span_id),
        start_ms: window.map(|w| w.start_ms),
        end_ms: window.map(|w| w.end_ms),
        tags: f
            .tags
            .into_iter()
            .filter(|t| !t.key.trim().is_empty())
            .map(|t| (t.key, t.value))
            .collect(),
        keywords: f.keywords,
        excluding_keywords: f.excluding_keywords,
        order_desc: f.order != Some(OrderEnum::Asc),
        offset,
        limit,
    };
    let logs = qctx(ctx)?.storage.query_logs(&query).map_err(Error::from)?;
    Ok(LogsObject {
        error_reason: None,
        logs: logs.into_iter().map(LogObject::from).collect(),
        debugging_trace: None,
    })
}

/// Log root fields.
#[derive(Default)]
pub struct LogQueryRoot;

#[Object]
impl LogQueryRoot {
    /// Content keyword filters are supported (the UIs show the keyword box).
    async fn support_query_logs_by_keywords(&self) -> bool {
        true
    }

    /// Logs matching the condition, one page. Without a duration or a trace the answer carries
    /// `errorReason` instead of logs.
    async fn query_logs(
        &self,
        ctx: &Context<'_>,
        condition: Option<LogQueryCondition>,
        debug: Option<bool>,
    ) -> Result<Option<LogsObject>> {
        let _ = debug;
        run_log_query(ctx, condition.map(LogFilter::from)).map(Some)
    }

    /// As `queryLogs`, with the service, instance and endpoint given by name.
    async fn query_logs_by_name(
        &self,
        ctx: &Context<'_>,
        condition: Option<LogQueryConditionByName>,
        debug: Option<bool>,
    ) -> Result<Option<LogsObject>> {
        let _ = debug;
        run_log_query(ctx, condition.map(LogFilter::from)).map(Some)
    }

    /// Log tag keys seen in the duration.
    async fn query_log_tag_autocomplete_keys(
        &self,
        ctx: &Context<'_>,
        duration: DurationInput,
    ) -> Result<Option<Vec<String>>> {
        let w = duration.record_window()?;
        let keys = qctx(ctx)?
            .storage
            .log_tag_keys(w.start_ms, w.end_ms)
            .map_err(Error::from)?;
        Ok(Some(keys))
    }

    /// Values of log tag `tagKey` seen in the duration.
    async fn query_log_tag_autocomplete_values(
        &self,
        ctx: &Context<'_>,
        tag_key: String,
        duration: DurationInput,
    ) -> Result<Option<Vec<String>>> {
        let w = duration.record_window()?;
        let values = qctx(ctx)?
            .storage
            .log_tag_values(&tag_key, w.start_ms, w.end_ms)
            .map_err(Error::from)?;
        Ok(Some(values))
    }
}
