//! Skylark's RUM extension (not in SkyWalking's schema): `queryRumEvents`, the events the RUM
//! intake stored, by service, session, view, trace or user; `querySessions`, the session
//! summaries kept at ingest; `querySessionTimeline`, one session's views with their events.
//! Times and durations are ms.

use super::query::{given, qctx};
use super::types::*;
use crate::Error;
use async_graphql::{Context, InputObject, Object, Result, SimpleObject, ID};
use skylark_core::rum::RumDetail;
use skylark_core::segment::RUM_SEGMENT_PREFIX;
use skylark_core::{RumEvent, RumEventType, RumSession};
use skylark_storage::{RumQuery, SessionQuery};

/// Most events one page returns.
const PAGE_SIZE_MAX: usize = 1_000;

/// Most events one timeline returns (the earliest ones); a session is rarely near it.
pub const TIMELINE_EVENTS_MAX: usize = 10_000;

/// `input SessionCondition`.
#[derive(InputObject, Debug, Clone)]
pub struct SessionCondition {
    /// Service name.
    pub service_name: Option<String>,
    /// An app version the session used.
    pub version: Option<String>,
    /// User id or anonymous id.
    pub user_id: Option<String>,
    /// Only sessions with (true) or without (false) error events.
    pub has_error: Option<bool>,
    /// Only sessions at least this long.
    pub min_duration_ms: Option<i64>,
    /// Sessions that started in this range.
    pub duration: DurationInput,
    /// Paging.
    pub paging: Pagination,
}

/// `type Session`: one user session as received (the SDKs sample sessions; counts are of the
/// events that arrived).
#[derive(SimpleObject, Debug, Clone)]
#[graphql(name = "Session")]
pub struct SessionObject {
    /// Session id.
    pub id: ID,
    /// Service.
    pub service_name: String,
    /// The latest app version seen.
    pub version: String,
    /// Every app version seen, in order.
    pub versions: Vec<String>,
    /// User id.
    pub user_id: Option<String>,
    /// The SDK's anonymous id.
    pub anonymous_id: Option<String>,
    /// Device model, when sent.
    pub device: Option<String>,
    /// OS name and version, when sent.
    pub os: Option<String>,
    /// Network type (effective type, interface or status).
    pub network: Option<String>,
    /// First event, epoch ms.
    pub start: i64,
    /// Last event (a view's end), epoch ms.
    pub end: i64,
    /// `end - start`.
    pub duration_ms: i64,
    /// Distinct views.
    pub view_count: i64,
    /// Actions.
    pub action_count: i64,
    /// Resources.
    pub resource_count: i64,
    /// Errors.
    pub error_count: i64,
    /// Crashes (errors flagged `is_crash`).
    pub crash_count: i64,
    /// Long tasks.
    pub long_task_count: i64,
    /// Frustrations.
    pub frustration_count: i64,
    /// Whether a request failed.
    pub has_failed_request: bool,
    /// The SDK's sampling decision, when it sent one.
    pub sampled: Option<bool>,
    /// Page routes in the order visited.
    pub pages: Vec<String>,
}

fn count(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl From<RumSession> for SessionObject {
    fn from(s: RumSession) -> Self {
        SessionObject {
            duration_ms: s.duration_ms(),
            id: ID(s.id),
            service_name: s.service,
            version: s.versions.last().cloned().unwrap_or_default(),
            versions: s.versions,
            user_id: some(&s.user_id),
            anonymous_id: some(&s.anonymous_id),
            device: some(&s.device),
            os: some(&s.os),
            network: some(&s.network),
            start: s.start_ms,
            end: s.end_ms,
            view_count: count(s.view_count),
            action_count: count(s.action_count),
            resource_count: count(s.resource_count),
            error_count: count(s.error_count),
            crash_count: count(s.crash_count),
            long_task_count: count(s.long_task_count),
            frustration_count: count(s.frustration_count),
            has_failed_request: s.failed_request,
            sampled: s.sampled,
            pages: s.pages.into_iter().map(|p| p.name).collect(),
        }
    }
}

/// `type Sessions`.
#[derive(SimpleObject, Debug, Clone)]
#[graphql(name = "Sessions")]
pub struct SessionsObject {
    /// The page, newest start first.
    pub sessions: Vec<SessionObject>,
    /// Matches in all (a lower bound past 10,000 beyond the page).
    pub total: i64,
}

/// `type TimelineEvent`: one event of a view.
#[derive(SimpleObject, Debug, Clone)]
#[graphql(name = "TimelineEvent")]
pub struct TimelineEventObject {
    /// Event type.
    #[graphql(name = "type")]
    pub event_type: String,
    /// Epoch ms.
    pub time: i64,
    /// Duration in ms.
    pub duration_ms: Option<f64>,
    /// Action target, custom event name, resource URL.
    pub name: String,
    /// A resource's HTTP status.
    pub status: Option<i64>,
    /// A resource's method.
    pub method: Option<String>,
    /// A resource's URL (an error's failed request).
    pub url: Option<String>,
    /// Error message (a failed resource's error text).
    pub message: Option<String>,
    /// Trace id, 32 lowercase hex digits.
    pub trace_id: Option<String>,
    /// Span id, 16 lowercase hex digits.
    pub span_id: Option<String>,
    /// For a resource whose trace Skylark does not hold: `SW_TRACE_LINK_TEMPLATE` with its id.
    pub trace_link: Option<String>,
}

impl From<RumEvent> for TimelineEventObject {
    fn from(e: RumEvent) -> Self {
        let (method, url, message) = match &e.detail {
            RumDetail::Resource(r) => (some(&r.method), some(&r.url), some(&r.error_message)),
            RumDetail::Error(d) => (some(&d.resource_method), some(&d.resource_url), None),
            _ => (None, None, None),
        };
        TimelineEventObject {
            event_type: e.kind().as_str().to_owned(),
            time: e.time_ms,
            duration_ms: e.duration_ms,
            status: e.status,
            method,
            url,
            message: some(&e.message).or(message),
            trace_id: some(&e.trace_id),
            span_id: some(&e.span_id),
            trace_link: None,
            name: e.name,
        }
    }
}

/// `type TimelineView`: one page visit and what happened in it.
#[derive(SimpleObject, Debug, Clone)]
#[graphql(name = "TimelineView")]
pub struct TimelineViewObject {
    /// View id.
    pub id: ID,
    /// Page route.
    pub name: String,
    /// Page URL.
    pub url: String,
    /// Start, epoch ms.
    pub start: i64,
    /// Time spent on the page (the latest view version), ms.
    pub duration_ms: Option<f64>,
    /// `initial_load` or `route_change`.
    pub loading_type: Option<String>,
    /// The view's other events in time order.
    pub events: Vec<TimelineEventObject>,
}

/// `type SessionTimeline`.
#[derive(SimpleObject, Debug, Clone)]
#[graphql(name = "SessionTimeline")]
pub struct SessionTimelineObject {
    /// The session's summary.
    pub session: SessionObject,
    /// Views in start order.
    pub views: Vec<TimelineViewObject>,
    /// Whether the session had more events than one timeline returns (the earliest are shown).
    pub truncated: bool,
}

/// Links out for resource traces Skylark does not hold, each trace looked up once per answer.
struct TraceLinks<'a> {
    template: Option<&'a str>,
    storage: &'a dyn skylark_storage::Storage,
    known: std::collections::HashMap<String, Option<String>>,
}

impl<'a> TraceLinks<'a> {
    fn new(ctx: &Context<'a>, storage: &'a dyn skylark_storage::Storage) -> Self {
        TraceLinks {
            template: ctx
                .data_opt::<crate::UiContext>()
                .and_then(|ui| ui.trace_link_template.as_deref()),
            storage,
            known: std::collections::HashMap::new(),
        }
    }

    /// The link for a resource's trace, `None` without a template, for other events, or when
    /// Skylark holds backend spans of the trace.
    fn link(&mut self, event_type: &str, trace_id: Option<&str>) -> Result<Option<String>> {
        let (Some(template), Some(trace_id)) = (self.template, trace_id) else {
            return Ok(None);
        };
        if event_type != RumEventType::Resource.as_str() {
            return Ok(None);
        }
        if let Some(link) = self.known.get(trace_id) {
            return Ok(link.clone());
        }
        // The request's own span (from the RUM resource) does not make the trace held here.
        let held = self
            .storage
            .get_trace(trace_id)
            .map_err(Error::from)?
            .iter()
            .any(|r| !r.segment_id.starts_with(RUM_SEGMENT_PREFIX));
        let link = (!held).then(|| template.replace("{traceId}", trace_id));
        self.known.insert(trace_id.to_owned(), link.clone());
        Ok(link)
    }
}

/// Groups a session's events (in time order) by view, views in start order.
fn timeline_views(events: Vec<RumEvent>) -> Vec<TimelineViewObject> {
    let mut views: Vec<TimelineViewObject> = Vec::new();
    let mut index: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for event in events {
        let at = *index.entry(event.view.id.clone()).or_insert_with(|| {
            views.push(TimelineViewObject {
                id: ID(event.view.id.clone()),
                name: event.view.name.clone(),
                url: event.view.url.clone(),
                start: event.time_ms,
                duration_ms: None,
                loading_type: None,
                events: Vec::new(),
            });
            views.len() - 1
        });
        let Some(view) = views.get_mut(at) else {
            continue;
        };
        if event.kind() == RumEventType::View {
            view.start = event.time_ms;
            view.duration_ms = event.duration_ms;
            view.loading_type = event.view_timings().and_then(|t| some(&t.loading_type));
        } else {
            view.start = view.start.min(event.time_ms);
            view.events.push(event.into());
        }
    }
    views.sort_by_key(|v| v.start);
    views
}

/// `input RumEventCondition`.
#[derive(InputObject, Debug, Clone)]
pub struct RumEventCondition {
    /// Service name.
    pub service_name: Option<String>,
    /// Session id.
    pub session_id: Option<String>,
    /// View id.
    pub view_id: Option<String>,
    /// Trace id: Datadog's 64-bit decimal, 16 or 32 hex digits (matched on the low 64 bits).
    pub trace_id: Option<String>,
    /// User id or anonymous id.
    pub user_id: Option<String>,
    /// Event types (`view`, `action`, `resource`, `error`, `long_task`, `custom`, `vital`);
    /// all when absent or empty.
    pub types: Option<Vec<String>>,
    /// Time range of the event dates.
    pub duration: DurationInput,
    /// Paging.
    pub paging: Pagination,
}

/// `type RumEvent`.
#[derive(SimpleObject, Debug, Clone)]
#[graphql(name = "RumEvent")]
pub struct RumEventObject {
    /// Event type.
    #[graphql(name = "type")]
    pub event_type: String,
    /// Epoch ms.
    pub time: i64,
    /// Service.
    pub service_name: String,
    /// App version.
    pub version: String,
    /// Session id.
    pub session_id: String,
    /// View id.
    pub view_id: String,
    /// Page route.
    pub view_name: String,
    /// Action target, custom event or vital name, resource URL, error's first line.
    pub name: String,
    /// Duration in ms.
    pub duration: Option<f64>,
    /// A resource's HTTP status.
    pub status: Option<i64>,
    /// Trace id, 32 lowercase hex digits.
    pub trace_id: Option<String>,
    /// Span id, 16 lowercase hex digits.
    pub span_id: Option<String>,
    /// For a resource whose trace Skylark does not hold: `SW_TRACE_LINK_TEMPLATE` with its id.
    pub trace_link: Option<String>,
    /// Error message.
    pub message: Option<String>,
    /// Error stack.
    pub stack: Option<String>,
    /// Every other field: the event's own (`error.source`, `resource.method`, ...), user and
    /// context fields.
    pub attributes: Vec<KeyValue>,
}

/// `type RumEvents`.
#[derive(SimpleObject, Debug, Clone)]
#[graphql(name = "RumEvents")]
pub struct RumEventsObject {
    /// The page.
    pub events: Vec<RumEventObject>,
    /// Matches in all (a lower bound past 10,000 beyond the page).
    pub total: i64,
}

fn some(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_owned())
}

fn kv(key: &str, value: impl Into<String>) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(value.into()),
    }
}

impl From<RumEvent> for RumEventObject {
    fn from(e: RumEvent) -> Self {
        let mut attributes = Vec::new();
        let mut put = |key: &str, value: &str| {
            if !value.is_empty() {
                attributes.push(kv(key, value));
            }
        };
        put("event.id", &e.id);
        put("env", &e.env);
        put("source", &e.source);
        put("application.id", &e.application_id);
        put("view.url", &e.view.url);
        put("view.referrer", &e.view.referrer);
        put("usr.id", &e.user.id);
        put("usr.name", &e.user.name);
        put("usr.email", &e.user.email);
        put("usr.anonymous_id", &e.user.anonymous_id);
        put("_dd.trace_id", &e.dd_trace_id);
        if let Some(v) = e.document_version {
            put("_dd.document_version", &v.to_string());
        }
        match &e.detail {
            RumDetail::Error(d) => {
                put("error.source", &d.source);
                put("error.type", &d.error_type);
                put("error.handling", &d.handling);
                put("error.fingerprint", &d.fingerprint);
                put("error.resource.method", &d.resource_method);
                put("error.resource.url", &d.resource_url);
                if let Some(s) = d.resource_status {
                    put("error.resource.status_code", &s.to_string());
                }
            }
            RumDetail::Resource(d) => {
                put("resource.type", &d.resource_type);
                put("resource.method", &d.method);
                put("resource.url", &d.url);
                put("resource.error_message", &d.error_message);
            }
            RumDetail::Action(d) => {
                put("action.type", &d.action_type);
                put("action.frustration.type", &d.frustrations.join(","));
            }
            RumDetail::View(t) => {
                put("view.loading_type", &t.loading_type);
                let ms = [
                    ("view.loading_time", t.loading_time_ms),
                    ("view.app_launch", t.app_launch_ms),
                    ("view.first_render", t.first_render_ms),
                    ("view.evaluate_script", t.evaluate_script_ms),
                    ("view.onload_to_onshow", t.onload_to_onshow_ms),
                    ("view.onshow_to_onready", t.onshow_to_onready_ms),
                    ("view.setdata.duration", t.setdata_duration_ms),
                ];
                for (key, value) in ms {
                    if let Some(v) = value {
                        put(key, &v.to_string());
                    }
                }
                let counts = [
                    ("view.setdata.count", t.setdata_count),
                    ("view.action.count", t.action_count),
                    ("view.error.count", t.error_count),
                    ("view.resource.count", t.resource_count),
                    ("view.long_task.count", t.long_task_count),
                    ("view.frustration.count", t.frustration_count),
                ];
                for (key, value) in counts {
                    if let Some(v) = value {
                        put(key, &v.to_string());
                    }
                }
                if let Some(active) = t.is_active {
                    put("view.is_active", &active.to_string());
                }
            }
            RumDetail::None => {}
        }
        attributes.extend(e.attributes.iter().map(|(k, v)| kv(k, v.as_str())));
        RumEventObject {
            event_type: e.kind().as_str().to_owned(),
            time: e.time_ms,
            service_name: e.service,
            version: e.version,
            session_id: e.session_id,
            view_id: e.view.id,
            view_name: e.view.name,
            name: e.name,
            duration: e.duration_ms,
            status: e.status,
            trace_id: some(&e.trace_id),
            span_id: some(&e.span_id),
            trace_link: None,
            message: some(&e.message),
            stack: some(&e.stack),
            attributes,
        }
    }
}

/// RUM root fields.
#[derive(Default)]
pub struct RumQueryRoot;

#[Object]
impl RumQueryRoot {
    /// Sessions that started in the duration matching the condition, newest first.
    async fn query_sessions(
        &self,
        ctx: &Context<'_>,
        condition: SessionCondition,
    ) -> Result<SessionsObject> {
        let window = condition.duration.record_window()?;
        let (offset, limit) = condition.paging.offset_limit(max_page_size(ctx))?;
        let query = SessionQuery {
            service: given(condition.service_name),
            version: given(condition.version),
            user_id: given(condition.user_id),
            has_error: condition.has_error,
            min_duration_ms: condition.min_duration_ms,
            start_ms: window.start_ms,
            end_ms: window.end_ms,
            offset,
            limit: limit.min(PAGE_SIZE_MAX),
        };
        let page = qctx(ctx)?
            .storage
            .query_rum_sessions(&query)
            .map_err(Error::from)?;
        Ok(SessionsObject {
            sessions: page.sessions.into_iter().map(SessionObject::from).collect(),
            total: i64::try_from(page.total).unwrap_or(i64::MAX),
        })
    }

    /// One session's views in start order with the events that happened in each; null for a
    /// session Skylark has no events of.
    async fn query_session_timeline(
        &self,
        ctx: &Context<'_>,
        session_id: ID,
    ) -> Result<Option<SessionTimelineObject>> {
        let storage = &qctx(ctx)?.storage;
        let Some(session) = storage.rum_session(&session_id).map_err(Error::from)? else {
            return Ok(None);
        };
        let query = RumQuery {
            session_id: given(Some(session_id.0)),
            order_desc: false,
            limit: TIMELINE_EVENTS_MAX,
            ..RumQuery::default()
        };
        let page = storage.query_rum_events(&query).map_err(Error::from)?;
        let truncated = page.total > page.events.len() as u64;
        let mut views = timeline_views(page.events);
        let mut links = TraceLinks::new(ctx, storage.as_ref());
        for event in views.iter_mut().flat_map(|v| v.events.iter_mut()) {
            event.trace_link = links.link(&event.event_type, event.trace_id.as_deref())?;
        }
        Ok(Some(SessionTimelineObject {
            session: session.into(),
            views,
            truncated,
        }))
    }

    /// RUM events in the duration matching the condition, newest first.
    async fn query_rum_events(
        &self,
        ctx: &Context<'_>,
        condition: RumEventCondition,
    ) -> Result<RumEventsObject> {
        let window = condition.duration.record_window()?;
        let mut types = Vec::new();
        for name in condition.types.unwrap_or_default() {
            match RumEventType::from_name(name.trim()) {
                Some(t) => types.push(t),
                None => {
                    return Err(async_graphql::Error::new(format!(
                        "unknown RUM event type {name:?}: expected view, action, resource, error, long_task, custom or vital"
                    )))
                }
            }
        }
        let (offset, limit) = condition.paging.offset_limit(max_page_size(ctx))?;
        let query = RumQuery {
            service: given(condition.service_name),
            session_id: given(condition.session_id),
            view_id: given(condition.view_id),
            trace_id: given(condition.trace_id),
            user_id: given(condition.user_id),
            types,
            start_ms: Some(window.start_ms),
            end_ms: Some(window.end_ms),
            order_desc: true,
            offset,
            limit: limit.min(PAGE_SIZE_MAX),
        };
        let storage = qctx(ctx)?.storage.as_ref();
        let page = storage.query_rum_events(&query).map_err(Error::from)?;
        let mut links = TraceLinks::new(ctx, storage);
        let mut events = Vec::with_capacity(page.events.len());
        for event in page.events {
            let mut event = RumEventObject::from(event);
            event.trace_link = links.link(&event.event_type, event.trace_id.as_deref())?;
            events.push(event);
        }
        Ok(RumEventsObject {
            events,
            total: i64::try_from(page.total).unwrap_or(i64::MAX),
        })
    }
}
