//! Traces (trace.graphqls, trace-v2.graphqls): segment lists, whole traces and tag autocomplete.

use super::query::{given, qctx};
use super::types::*;
use crate::{Error, RecordWindow};
use async_graphql::{Context, Enum, InputObject, Object, Result, SimpleObject, ID};
use skylark_core::segment::{OTEL_PARENT_PREFIX, OTEL_SPAN_ID_TAG};
use skylark_core::{component_name, EndpointId, InstanceId, SegmentRecord, ServiceId};
use skylark_storage::{TraceOrder, TraceQuery, TraceState};
use std::collections::{HashMap, HashSet};

/// How far back `queryTraces` looks without a duration (OAP: one day).
const DEFAULT_TRACE_LOOKBACK_MS: i64 = 86_400_000;

/// Segments read per storage call while collecting distinct traces for `queryTraces`.
const TRACE_SCAN_BATCH: usize = 500;

/// `enum TraceState`.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
#[graphql(name = "TraceState")]
pub enum TraceStateEnum {
    /// `ALL`
    All,
    /// `SUCCESS`
    Success,
    /// `ERROR`
    Error,
}

impl From<TraceStateEnum> for TraceState {
    fn from(s: TraceStateEnum) -> Self {
        match s {
            TraceStateEnum::All => TraceState::All,
            TraceStateEnum::Success => TraceState::Success,
            TraceStateEnum::Error => TraceState::Error,
        }
    }
}

/// `enum QueryOrder`.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
#[graphql(name = "QueryOrder")]
pub enum QueryOrderEnum {
    /// `BY_START_TIME`
    ByStartTime,
    /// `BY_DURATION`
    ByDuration,
}

impl From<QueryOrderEnum> for TraceOrder {
    fn from(o: QueryOrderEnum) -> Self {
        match o {
            QueryOrderEnum::ByStartTime => TraceOrder::ByStartTime,
            QueryOrderEnum::ByDuration => TraceOrder::ByDuration,
        }
    }
}

/// `enum RefType`.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
#[graphql(name = "RefType")]
pub enum RefTypeEnum {
    /// `CROSS_PROCESS`
    CrossProcess,
    /// `CROSS_THREAD`
    CrossThread,
}

impl From<skylark_core::RefType> for RefTypeEnum {
    fn from(r: skylark_core::RefType) -> Self {
        match r {
            skylark_core::RefType::CrossProcess => RefTypeEnum::CrossProcess,
            skylark_core::RefType::CrossThread => RefTypeEnum::CrossThread,
        }
    }
}

/// `input SpanTag`.
#[derive(InputObject, Debug, Clone)]
pub struct SpanTag {
    /// Tag key.
    pub key: String,
    /// Tag value.
    pub value: Option<String>,
}

/// `input TraceQueryCondition`.
#[derive(InputObject, Debug, Clone)]
pub struct TraceQueryCondition {
    /// Service id (`""` = all).
    pub service_id: Option<ID>,
    /// Instance id (`""` = all).
    pub service_instance_id: Option<ID>,
    /// Trace id (`""` = all).
    pub trace_id: Option<String>,
    /// Endpoint id (`""` = all).
    pub endpoint_id: Option<ID>,
    /// Time range of segment starts.
    pub query_duration: Option<DurationInput>,
    /// Minimum latency (ms).
    pub min_trace_duration: Option<i32>,
    /// Maximum latency (ms).
    pub max_trace_duration: Option<i32>,
    /// Outcome filter.
    pub trace_state: TraceStateEnum,
    /// Sort order.
    pub query_order: QueryOrderEnum,
    /// Searchable span tags the segment must carry.
    pub tags: Option<Vec<SpanTag>>,
    /// Paging.
    pub paging: Pagination,
}

/// `input TraceQueryConditionByName`: as [`TraceQueryCondition`] with entities by name.
#[derive(InputObject, Debug, Clone)]
pub struct TraceQueryConditionByName {
    /// Service.
    pub service: Option<ServiceCondition>,
    /// Instance.
    pub instance: Option<InstanceCondition>,
    /// Endpoint.
    pub endpoint: Option<EndpointCondition>,
    /// Trace id (`""` = all).
    pub trace_id: Option<String>,
    /// Time range of segment starts.
    pub query_duration: Option<DurationInput>,
    /// Minimum latency (ms).
    pub min_trace_duration: Option<i32>,
    /// Maximum latency (ms).
    pub max_trace_duration: Option<i32>,
    /// Outcome filter.
    pub trace_state: TraceStateEnum,
    /// Sort order.
    pub query_order: QueryOrderEnum,
    /// Searchable span tags the segment must carry.
    pub tags: Option<Vec<SpanTag>>,
    /// Paging.
    pub paging: Pagination,
}

/// `type BasicTrace`: one segment of the list.
#[derive(SimpleObject, Debug, Clone)]
pub struct BasicTrace {
    /// Segment id.
    pub segment_id: String,
    /// The segment's endpoint (first span's operation name).
    pub endpoint_names: Vec<String>,
    /// Latency in ms.
    pub duration: i32,
    /// Start, epoch ms as text.
    pub start: String,
    /// Any span failed.
    pub is_error: Option<bool>,
    /// The trace id.
    pub trace_ids: Vec<String>,
}

/// `type TraceBrief`.
#[derive(SimpleObject, Debug, Clone)]
pub struct TraceBrief {
    /// One page of segments.
    pub traces: Vec<BasicTrace>,
    /// Always null.
    pub debugging_trace: Option<DebuggingTrace>,
}

/// `type Ref`.
#[derive(SimpleObject, Debug, Clone)]
#[graphql(name = "Ref")]
pub struct RefObject {
    /// Parent trace id.
    pub trace_id: ID,
    /// Parent segment.
    pub parent_segment_id: ID,
    /// Parent span.
    pub parent_span_id: i32,
    /// Cross-process or cross-thread.
    #[graphql(name = "type")]
    pub kind: RefTypeEnum,
}

/// `type LogEntity`: an event inside a span.
#[derive(SimpleObject, Debug, Clone)]
pub struct LogEntity {
    /// Epoch ms.
    pub time: Long,
    /// Key/value pairs.
    pub data: Option<Vec<KeyValue>>,
}

/// `type Instant`.
#[derive(SimpleObject, Debug, Clone)]
pub struct Instant {
    /// Seconds since the epoch.
    pub seconds: Long,
    /// Nanoseconds within the second.
    pub nanos: i32,
}

/// `type SpanAttachedEvent` (never produced: mini-program spans have none).
#[derive(SimpleObject, Debug, Clone)]
pub struct SpanAttachedEvent {
    /// Start.
    pub start_time: Instant,
    /// Event name.
    pub event: String,
    /// End.
    pub end_time: Instant,
    /// Tags.
    pub tags: Vec<Option<KeyValue>>,
    /// Statistics.
    pub summary: Vec<KeyNumericValue>,
}

/// `type Span`.
#[derive(SimpleObject, Debug, Clone)]
#[graphql(name = "Span")]
pub struct SpanObject {
    /// Trace id.
    pub trace_id: ID,
    /// Segment id.
    pub segment_id: ID,
    /// Span id within the segment.
    pub span_id: i32,
    /// Parent span within the segment (-1 for the root).
    pub parent_span_id: i32,
    /// Links to parent segments.
    pub refs: Vec<RefObject>,
    /// Service name.
    pub service_code: String,
    /// Instance name.
    pub service_instance_name: ID,
    /// Epoch ms.
    pub start_time: Long,
    /// Epoch ms.
    pub end_time: Long,
    /// Operation name.
    pub endpoint_name: Option<String>,
    /// `Entry`, `Exit` or `Local`.
    #[graphql(name = "type")]
    pub kind: String,
    /// Remote address.
    pub peer: Option<String>,
    /// Component name (the id as text when unknown).
    pub component: Option<String>,
    /// The span failed.
    pub is_error: Option<bool>,
    /// `Unknown`, `Database`, `RPCFramework`, `Http`, `MQ`, `Cache` or `FAAS`.
    pub layer: Option<String>,
    /// Tags in arrival order.
    pub tags: Vec<KeyValue>,
    /// Events.
    pub logs: Vec<LogEntity>,
    /// Always empty.
    pub attached_events: Vec<SpanAttachedEvent>,
}

/// `type Trace`.
#[derive(SimpleObject, Debug, Clone)]
#[graphql(name = "Trace")]
pub struct TraceObject {
    /// Every span of the trace, parents before children.
    pub spans: Vec<SpanObject>,
    /// Always null.
    pub debugging_trace: Option<DebuggingTrace>,
}

/// `type TraceV2`.
#[derive(SimpleObject, Debug, Clone)]
pub struct TraceV2 {
    /// Every span of the trace, parents before children.
    pub spans: Vec<SpanObject>,
}

/// `type RetrievedTimeRange`.
#[derive(SimpleObject, Debug, Clone)]
pub struct RetrievedTimeRange {
    /// Epoch ms.
    pub start_time: Long,
    /// Epoch ms.
    pub end_time: Long,
}

/// `type TraceList`.
#[derive(SimpleObject, Debug, Clone)]
pub struct TraceList {
    /// One page of traces.
    pub traces: Vec<TraceV2>,
    /// The window searched.
    pub retrieved_time_range: RetrievedTimeRange,
    /// Always null.
    pub debugging_trace: Option<DebuggingTrace>,
}

fn key_values(pairs: &[(String, String)]) -> Vec<KeyValue> {
    pairs
        .iter()
        .map(|(k, v)| KeyValue {
            key: k.clone(),
            value: Some(v.clone()),
        })
        .collect()
}

/// The spans of one stored segment as the query API shows them.
fn segment_spans(record: &SegmentRecord) -> Vec<SpanObject> {
    let seg = &record.segment;
    seg.spans
        .iter()
        .map(|s| SpanObject {
            trace_id: ID(seg.trace_id.clone()),
            segment_id: ID(seg.segment_id.clone()),
            span_id: s.span_id,
            parent_span_id: s.parent_span_id,
            refs: s
                .refs
                .iter()
                .map(|r| RefObject {
                    trace_id: ID(r.trace_id.clone()),
                    parent_segment_id: ID(r.parent_segment_id.clone()),
                    parent_span_id: r.parent_span_id,
                    kind: r.ref_type.into(),
                })
                .collect(),
            service_code: seg.service.clone(),
            service_instance_name: ID(seg.service_instance.clone()),
            start_time: Long(s.start_time_ms),
            end_time: Long(s.end_time_ms),
            endpoint_name: Some(s.operation_name.clone()),
            kind: s.span_type.name().to_string(),
            peer: Some(s.peer.clone()),
            component: Some(
                component_name(s.component_id)
                    .map(str::to_string)
                    .unwrap_or_else(|| s.component_id.to_string()),
            ),
            is_error: Some(s.is_error),
            layer: Some(s.span_layer.name().to_string()),
            tags: key_values(&s.tags),
            logs: s
                .logs
                .iter()
                .map(|l| LogEntity {
                    time: Long(l.time_ms),
                    data: Some(key_values(&l.data)),
                })
                .collect(),
            attached_events: Vec::new(),
        })
        .collect()
}

/// Orders spans as OAP does: each root (no parent inside the trace) by start time, followed
/// depth-first by its children (same-segment children and cross-segment refs). Spans no root
/// reaches are appended rather than dropped, so a broken trace still shows everything.
fn sort_spans(spans: Vec<SpanObject>) -> Vec<SpanObject> {
    let key = |s: &SpanObject| (s.segment_id.0.clone(), s.span_id);
    let present: HashSet<(String, i32)> = spans.iter().map(key).collect();
    let mut children: HashMap<(String, i32), Vec<usize>> = HashMap::new();
    let mut roots = Vec::new();
    for (idx, s) in spans.iter().enumerate() {
        let mut parents: Vec<(String, i32)> = s
            .refs
            .iter()
            .map(|r| (r.parent_segment_id.0.clone(), r.parent_span_id))
            .filter(|p| present.contains(p))
            .collect();
        if s.parent_span_id >= 0 && present.contains(&(s.segment_id.0.clone(), s.parent_span_id)) {
            parents.push((s.segment_id.0.clone(), s.parent_span_id));
        }
        match parents.into_iter().next() {
            Some(parent) => children.entry(parent).or_default().push(idx),
            None => roots.push(idx),
        }
    }
    roots.sort_by_key(|&i| spans[i].start_time.0);
    let mut order = Vec::with_capacity(spans.len());
    let mut visited = vec![false; spans.len()];
    let mut stack: Vec<usize> = roots.into_iter().rev().collect();
    let mut pending_tail: Vec<usize> = (0..spans.len()).rev().collect();
    loop {
        while let Some(i) = stack.pop() {
            if std::mem::replace(&mut visited[i], true) {
                continue;
            }
            order.push(i);
            if let Some(kids) = children.get(&key(&spans[i])) {
                let mut kids = kids.clone();
                kids.sort_by_key(|&k| (spans[k].start_time.0, spans[k].span_id));
                stack.extend(kids.into_iter().rev());
            }
        }
        // Spans caught in a parent cycle are unreachable from any root.
        match pending_tail.pop() {
            Some(i) if !visited[i] => stack.push(i),
            Some(_) => {}
            None => break,
        }
    }
    let mut slots: Vec<Option<SpanObject>> = spans.into_iter().map(Some).collect();
    order.into_iter().filter_map(|i| slots[i].take()).collect()
}

fn trace_spans(ctx: &Context<'_>, trace_id: &str) -> Result<Vec<SpanObject>> {
    let segments = qctx(ctx)?
        .storage
        .get_trace(trace_id)
        .map_err(Error::from)?;
    let mut spans: Vec<SpanObject> = segments.iter().flat_map(segment_spans).collect();
    resolve_otel_refs(&mut spans);
    Ok(sort_spans(spans))
}

/// Points refs that name an OTLP parent span (`otel:<span id>`) at the segment and span holding
/// it, when it is in the trace; others stay as stored.
fn resolve_otel_refs(spans: &mut [SpanObject]) {
    let mut by_otel_id: HashMap<String, (ID, i32)> = HashMap::new();
    for s in spans.iter() {
        if let Some(id) = s
            .tags
            .iter()
            .find(|t| t.key == OTEL_SPAN_ID_TAG)
            .and_then(|t| t.value.clone())
        {
            by_otel_id.insert(id, (s.segment_id.clone(), s.span_id));
        }
    }
    if by_otel_id.is_empty() {
        return;
    }
    for s in spans.iter_mut() {
        for r in &mut s.refs {
            let Some(otel_id) = r.parent_segment_id.0.strip_prefix(OTEL_PARENT_PREFIX) else {
                continue;
            };
            if let Some((segment, span)) = by_otel_id.get(otel_id) {
                r.parent_segment_id = segment.clone();
                r.parent_span_id = *span;
            }
        }
    }
}

/// A trace condition with entities already resolved to ids.
struct TraceFilter {
    service_id: Option<ServiceId>,
    instance_id: Option<InstanceId>,
    endpoint_id: Option<EndpointId>,
    trace_id: Option<String>,
    query_duration: Option<DurationInput>,
    min_duration: Option<i32>,
    max_duration: Option<i32>,
    state: TraceStateEnum,
    order: QueryOrderEnum,
    tags: Vec<SpanTag>,
    paging: Pagination,
}

impl From<TraceQueryCondition> for TraceFilter {
    fn from(c: TraceQueryCondition) -> Self {
        TraceFilter {
            service_id: given(c.service_id.map(|i| i.0)).map(ServiceId::from_raw),
            instance_id: given(c.service_instance_id.map(|i| i.0)).map(InstanceId::from_raw),
            endpoint_id: given(c.endpoint_id.map(|i| i.0)).map(EndpointId::from_raw),
            trace_id: given(c.trace_id),
            query_duration: c.query_duration,
            min_duration: c.min_trace_duration,
            max_duration: c.max_trace_duration,
            state: c.trace_state,
            order: c.query_order,
            tags: c.tags.unwrap_or_default(),
            paging: c.paging,
        }
    }
}

impl From<TraceQueryConditionByName> for TraceFilter {
    fn from(c: TraceQueryConditionByName) -> Self {
        TraceFilter {
            service_id: c
                .service
                .filter(|s| !s.service_name.is_empty())
                .map(|s| condition_service_id(&s.service_name, s.layer.as_deref())),
            instance_id: c
                .instance
                .filter(|i| !i.service_name.is_empty() && !i.instance_name.is_empty())
                .map(|i| {
                    let sid = condition_service_id(&i.service_name, i.layer.as_deref());
                    InstanceId::new(&sid, &i.instance_name)
                }),
            endpoint_id: c
                .endpoint
                .filter(|e| !e.service_name.is_empty() && !e.endpoint_name.is_empty())
                .map(|e| {
                    let sid = condition_service_id(&e.service_name, e.layer.as_deref());
                    EndpointId::new(&sid, &e.endpoint_name)
                }),
            trace_id: given(c.trace_id),
            query_duration: c.query_duration,
            min_duration: c.min_trace_duration,
            max_duration: c.max_trace_duration,
            state: c.trace_state,
            order: c.query_order,
            tags: c.tags.unwrap_or_default(),
            paging: c.paging,
        }
    }
}

impl TraceFilter {
    /// The storage query and the time window (if a duration was given).
    fn to_query(
        &self,
        max_page_size: usize,
    ) -> std::result::Result<(TraceQuery, Option<RecordWindow>), Error> {
        let window = match &self.query_duration {
            Some(d) => Some(d.record_window()?),
            None => None,
        };
        let (offset, limit) = self.paging.offset_limit(max_page_size)?;
        // Zero bounds are what UIs send for "no bound" in their number inputs.
        let bound = |v: Option<i32>| v.filter(|d| *d > 0).map(i64::from);
        let query = TraceQuery {
            service_id: self.service_id.clone(),
            instance_id: self.instance_id.clone(),
            endpoint_id: self.endpoint_id.clone(),
            trace_id: self.trace_id.clone(),
            start_ms: window.map(|w| w.start_ms),
            end_ms: window.map(|w| w.end_ms),
            min_duration: bound(self.min_duration),
            max_duration: bound(self.max_duration),
            state: self.state.into(),
            order: self.order.into(),
            tags: self
                .tags
                .iter()
                .filter(|t| !t.key.trim().is_empty())
                .map(|t| (t.key.clone(), t.value.clone().unwrap_or_default()))
                .collect(),
            offset,
            limit,
        };
        Ok((query, window))
    }
}

fn basic_traces(ctx: &Context<'_>, filter: Option<TraceFilter>) -> Result<Option<TraceBrief>> {
    let Some(filter) = filter else {
        return Ok(Some(TraceBrief {
            traces: Vec::new(),
            debugging_trace: None,
        }));
    };
    let (query, _) = filter.to_query(max_page_size(ctx))?;
    let segments = qctx(ctx)?
        .storage
        .query_segments(&query)
        .map_err(Error::from)?;
    Ok(Some(TraceBrief {
        traces: segments
            .into_iter()
            .map(|r| BasicTrace {
                segment_id: r.segment_id,
                endpoint_names: vec![r.endpoint],
                duration: i32::try_from(r.latency_ms).unwrap_or(i32::MAX),
                start: r.start_time_ms.to_string(),
                is_error: Some(r.is_error),
                trace_ids: vec![r.trace_id],
            })
            .collect(),
        debugging_trace: None,
    }))
}

/// Trace root fields.
#[derive(Default)]
pub struct TraceQueryRoot;

#[Object]
impl TraceQueryRoot {
    /// Keeps UIs on `queryBasicTraces` + `queryTrace` (`queryTraces` exists for swctl).
    async fn has_query_traces_v2_support(&self) -> bool {
        false
    }

    /// One page of segments matching the condition.
    async fn query_basic_traces(
        &self,
        ctx: &Context<'_>,
        condition: Option<TraceQueryCondition>,
        debug: Option<bool>,
    ) -> Result<Option<TraceBrief>> {
        let _ = debug;
        basic_traces(ctx, condition.map(TraceFilter::from))
    }

    /// As `queryBasicTraces`, with the service, instance and endpoint given by name.
    async fn query_basic_traces_by_name(
        &self,
        ctx: &Context<'_>,
        condition: Option<TraceQueryConditionByName>,
        debug: Option<bool>,
    ) -> Result<Option<TraceBrief>> {
        let _ = debug;
        basic_traces(ctx, condition.map(TraceFilter::from))
    }

    /// Every span of a trace (empty for an unknown trace). The duration only narrows storage
    /// scans in OAP's BanyanDB backend and is ignored here.
    async fn query_trace(
        &self,
        ctx: &Context<'_>,
        trace_id: ID,
        duration: Option<DurationInput>,
        debug: Option<bool>,
    ) -> Result<Option<TraceObject>> {
        let _ = (duration, debug);
        Ok(Some(TraceObject {
            spans: trace_spans(ctx, &trace_id)?,
            debugging_trace: None,
        }))
    }

    /// Whole traces whose segments match the condition; paging counts traces.
    async fn query_traces(
        &self,
        ctx: &Context<'_>,
        condition: Option<TraceQueryCondition>,
        debug: Option<bool>,
    ) -> Result<Option<TraceList>> {
        let _ = debug;
        let now = chrono::Utc::now().timestamp_millis();
        let Some(filter) = condition.map(TraceFilter::from) else {
            return Ok(Some(TraceList {
                traces: Vec::new(),
                retrieved_time_range: RetrievedTimeRange {
                    start_time: Long(now - DEFAULT_TRACE_LOOKBACK_MS),
                    end_time: Long(now),
                },
                debugging_trace: None,
            }));
        };
        let (mut query, window) = filter.to_query(max_page_size(ctx))?;
        let (start_ms, end_ms) = match window {
            Some(w) => (w.start_ms, w.end_ms),
            None => (now - DEFAULT_TRACE_LOOKBACK_MS, now),
        };
        query.start_ms = Some(start_ms);
        query.end_ms = Some(end_ms);
        let (skip, wanted) = (query.offset, query.limit);
        let storage = &qctx(ctx)?.storage;
        let mut trace_ids: Vec<String> = Vec::new();
        let mut seen = HashSet::new();
        query.offset = 0;
        query.limit = TRACE_SCAN_BATCH;
        while trace_ids.len() < skip.saturating_add(wanted) {
            let batch = storage.query_segments(&query).map_err(Error::from)?;
            let exhausted = batch.len() < TRACE_SCAN_BATCH;
            for r in batch {
                if seen.insert(r.trace_id.clone()) {
                    trace_ids.push(r.trace_id);
                }
            }
            if exhausted {
                break;
            }
            query.offset += TRACE_SCAN_BATCH;
        }
        let mut traces = Vec::new();
        for id in trace_ids.into_iter().skip(skip).take(wanted) {
            traces.push(TraceV2 {
                spans: trace_spans(ctx, &id)?,
            });
        }
        Ok(Some(TraceList {
            traces,
            retrieved_time_range: RetrievedTimeRange {
                start_time: Long(start_ms),
                end_time: Long(end_ms),
            },
            debugging_trace: None,
        }))
    }

    /// Searchable span tag keys seen in the duration.
    async fn query_trace_tag_autocomplete_keys(
        &self,
        ctx: &Context<'_>,
        duration: DurationInput,
    ) -> Result<Option<Vec<String>>> {
        let w = duration.record_window()?;
        let keys = qctx(ctx)?
            .storage
            .trace_tag_keys(w.start_ms, w.end_ms)
            .map_err(Error::from)?;
        Ok(Some(keys))
    }

    /// Values of searchable span tag `tagKey` seen in the duration.
    async fn query_trace_tag_autocomplete_values(
        &self,
        ctx: &Context<'_>,
        tag_key: String,
        duration: DurationInput,
    ) -> Result<Option<Vec<String>>> {
        let w = duration.record_window()?;
        let values = qctx(ctx)?
            .storage
            .trace_tag_values(&tag_key, w.start_ms, w.end_ms)
            .map_err(Error::from)?;
        Ok(Some(values))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(segment: &str, id: i32, parent: i32, start: i64) -> SpanObject {
        SpanObject {
            trace_id: ID("t".into()),
            segment_id: ID(segment.into()),
            span_id: id,
            parent_span_id: parent,
            refs: Vec::new(),
            service_code: "s".into(),
            service_instance_name: ID("i".into()),
            start_time: Long(start),
            end_time: Long(start + 1),
            endpoint_name: None,
            kind: "Local".into(),
            peer: None,
            component: None,
            is_error: None,
            layer: None,
            tags: Vec::new(),
            logs: Vec::new(),
            attached_events: Vec::new(),
        }
    }

    fn ids(spans: &[SpanObject]) -> Vec<(String, i32)> {
        spans
            .iter()
            .map(|s| (s.segment_id.0.clone(), s.span_id))
            .collect()
    }

    #[test]
    fn roots_by_start_then_children_depth_first() {
        let spans = vec![
            span("b", 1, 0, 25),
            span("b", 0, -1, 20),
            span("a", 2, 0, 12),
            span("a", 1, 0, 11),
            span("a", 0, -1, 10),
        ];
        assert_eq!(
            ids(&sort_spans(spans)),
            vec![
                ("a".into(), 0),
                ("a".into(), 1),
                ("a".into(), 2),
                ("b".into(), 0),
                ("b".into(), 1)
            ]
        );
    }

    #[test]
    fn spans_in_a_parent_cycle_are_kept() {
        let spans = vec![
            span("a", 0, 1, 10),
            span("a", 1, 0, 11),
            span("b", 0, -1, 5),
        ];
        let sorted = sort_spans(spans);
        assert_eq!(sorted.len(), 3);
        assert_eq!(ids(&sorted)[0], ("b".into(), 0));
    }
}
