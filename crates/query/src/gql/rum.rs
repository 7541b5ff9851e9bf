//! Skylark's RUM extension (not in SkyWalking's schema): `queryRumEvents`, the events the RUM
//! intake stored, by service, session, view, trace or user. Times and durations are ms.

use super::query::{given, qctx};
use super::types::*;
use crate::Error;
use async_graphql::{Context, InputObject, Object, Result, SimpleObject};
use skylark_core::rum::RumDetail;
use skylark_core::{RumEvent, RumEventType};
use skylark_storage::RumQuery;

/// Most events one page returns.
const PAGE_SIZE_MAX: usize = 1_000;

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
        let page = qctx(ctx)?
            .storage
            .query_rum_events(&query)
            .map_err(Error::from)?;
        Ok(RumEventsObject {
            events: page.events.into_iter().map(RumEventObject::from).collect(),
            total: i64::try_from(page.total).unwrap_or(i64::MAX),
        })
    }
}
