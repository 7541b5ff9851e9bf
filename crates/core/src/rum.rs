//! Real-user-monitoring events (the Datadog/Flashcat RUM format) as Skylark keeps them: one
//! [`RumEvent`] per event line, times in epoch ms and durations in ms (the wire's nanoseconds are
//! converted once, by the receiver), fields the model does not name kept as attributes.

/// What kind of RUM event a line is (the wire's `type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum RumEventType {
    /// A page view; re-sent whole with a growing `_dd.document_version`.
    View,
    /// A user action (tap, custom, ...).
    Action,
    /// A network request or download.
    Resource,
    /// An error.
    Error,
    /// A long task (Datadog browser SDK).
    LongTask,
    /// An app-defined event (Flashcat's `addCustomEvent`).
    Custom,
    /// A vital (Datadog's app-launch/duration vitals).
    Vital,
}

impl RumEventType {
    /// Every type, in wire-name order.
    pub const ALL: [RumEventType; 7] = [
        RumEventType::View,
        RumEventType::Action,
        RumEventType::Resource,
        RumEventType::Error,
        RumEventType::LongTask,
        RumEventType::Custom,
        RumEventType::Vital,
    ];

    /// The wire name (`view`, `long_task`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            RumEventType::View => "view",
            RumEventType::Action => "action",
            RumEventType::Resource => "resource",
            RumEventType::Error => "error",
            RumEventType::LongTask => "long_task",
            RumEventType::Custom => "custom",
            RumEventType::Vital => "vital",
        }
    }

    /// The type of a wire name, `None` for names the model does not know.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == name)
    }
}

/// The page an event happened on (the view's context on every event).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RumViewRef {
    /// The view id (a new one per page visit).
    pub id: String,
    /// The page route without its query string (the endpoint name).
    pub name: String,
    /// The page URL as sent.
    pub url: String,
    /// The previous route, when sent.
    pub referrer: String,
}

/// The user of an event.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RumUser {
    /// The app's user id (`usr.id`).
    pub id: String,
    /// `usr.name`.
    pub name: String,
    /// `usr.email`.
    pub email: String,
    /// The SDK's anonymous id, kept per stored session.
    pub anonymous_id: String,
}

/// A view's timings and counters (durations in ms).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RumViewTimings {
    /// `initial_load` or `route_change`.
    pub loading_type: String,
    /// Whether the page was still shown when this version was sent.
    pub is_active: Option<bool>,
    /// Time on the page so far.
    pub time_spent_ms: Option<f64>,
    /// onLoad to onReady.
    pub loading_time_ms: Option<f64>,
    /// App launch (first view of a launch only).
    pub app_launch_ms: Option<f64>,
    /// First render of the page.
    pub first_render_ms: Option<f64>,
    /// Script evaluation (first view of a launch only).
    pub evaluate_script_ms: Option<f64>,
    /// onLoad to onShow.
    pub onload_to_onshow_ms: Option<f64>,
    /// onShow to onReady.
    pub onshow_to_onready_ms: Option<f64>,
    /// `setData` calls so far.
    pub setdata_count: Option<i64>,
    /// Time spent in `setData` so far.
    pub setdata_duration_ms: Option<f64>,
    /// Actions counted on the view so far.
    pub action_count: Option<i64>,
    /// Errors counted on the view so far.
    pub error_count: Option<i64>,
    /// Resources counted on the view so far.
    pub resource_count: Option<i64>,
    /// Long tasks counted on the view so far.
    pub long_task_count: Option<i64>,
    /// Frustrations counted on the view so far.
    pub frustration_count: Option<i64>,
}

/// What an error event says beyond its message and stack.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RumErrorDetail {
    /// Where it came from: `app`, `promise`, `network`, `page-not-found`, `custom`, ...
    pub source: String,
    /// The error's type name, when sent.
    pub error_type: String,
    /// `handled` or `unhandled`, when sent.
    pub handling: String,
    /// The grouping fingerprint, when sent.
    pub fingerprint: String,
    /// The request that failed (network errors): method, URL and status.
    pub resource_method: String,
    /// See `resource_method`.
    pub resource_url: String,
    /// See `resource_method`; `None` when the request got no answer.
    pub resource_status: Option<i64>,
}

/// What a resource event says beyond duration, status and trace.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RumResourceDetail {
    /// `xhr` for `wx.request`, `image`, `media`, ... for downloads.
    pub resource_type: String,
    /// Upper-cased HTTP method.
    pub method: String,
    /// The URL with its query.
    pub url: String,
    /// The platform's error text when the request failed.
    pub error_message: String,
}

/// What an action event says beyond its name and loading time.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RumActionDetail {
    /// `tap`, `click`, `custom`, `application_start`, ...
    pub action_type: String,
    /// Frustration types (`rage_click`, `dead_click`, `error_click`), when sent.
    pub frustrations: Vec<String>,
}

/// The type-specific part of an event.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum RumDetail {
    /// Types without typed details (long task, custom, vital).
    #[default]
    None,
    /// A view's timings.
    View(RumViewTimings),
    /// An action's type and frustrations.
    Action(RumActionDetail),
    /// A resource's request.
    Resource(RumResourceDetail),
    /// An error's origin.
    Error(RumErrorDetail),
}

/// One RUM event, decoded.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RumEvent {
    /// The event type; `None` never happens after decoding (kept `Option` for `Default`).
    pub event_type: Option<RumEventType>,
    /// The event's own id (the view id for views); unique per event, stable across re-sends.
    pub id: String,
    /// Epoch ms (`date`; a view's start, constant across its versions).
    pub time_ms: i64,
    /// Service (the app), from the event or `ddtags`.
    pub service: String,
    /// App version (the SkyWalking instance).
    pub version: String,
    /// Environment from `ddtags`.
    pub env: String,
    /// The SDK's `source` (`miniprogram`, `browser`), else `ddsource`.
    pub source: String,
    /// `application.id`.
    pub application_id: String,
    /// `session.id`.
    pub session_id: String,
    /// The page.
    pub view: RumViewRef,
    /// The user.
    pub user: RumUser,
    /// `_dd.document_version` (views): only the highest version of a view counts.
    pub document_version: Option<i64>,
    /// A short name: the action target, the custom event or vital name, the resource URL.
    pub name: String,
    /// The event's duration in ms (resource, action loading time, long task, vital, a view's
    /// time spent).
    pub duration_ms: Option<f64>,
    /// A resource's HTTP status (absent when the request failed).
    pub status: Option<i64>,
    /// Trace id as 32 lowercase hex digits (Datadog's 64-bit decimal left-padded with zeros).
    pub trace_id: String,
    /// The 64-bit decimal form of the trace id as sent (`_dd.trace_id`), when sent.
    pub dd_trace_id: String,
    /// Span id as 16 lowercase hex digits.
    pub span_id: String,
    /// Error message (errors).
    pub message: String,
    /// Error stack (errors).
    pub stack: String,
    /// The type-specific part.
    pub detail: RumDetail,
    /// Every field the model does not name, flattened (`context.channel`, `connectivity.status`,
    /// `device.model`, ...): strings as they are, anything else as JSON text.
    pub attributes: Vec<(String, String)>,
}

impl RumEvent {
    /// The type, `Custom` if unset.
    pub fn kind(&self) -> RumEventType {
        self.event_type.unwrap_or(RumEventType::Custom)
    }

    /// The view timings of a view event.
    pub fn view_timings(&self) -> Option<&RumViewTimings> {
        match &self.detail {
            RumDetail::View(t) => Some(t),
            _ => None,
        }
    }
}

/// The decoded events of one intake request.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RumBatch {
    /// Events in arrival order.
    pub events: Vec<RumEvent>,
}

/// A trace id as sent by a RUM SDK (64-bit decimal, 16 or 32 hex digits) as 32 lowercase hex
/// digits (the W3C form, high half zero for 64-bit ids); `None` when it is none of those.
pub fn normalize_trace_id(id: &str) -> Option<String> {
    let id = id.trim();
    if id.is_empty() || id.len() > 39 {
        return None;
    }
    if id.bytes().all(|b| b.is_ascii_digit()) && id.len() <= 20 {
        if let Ok(v) = id.parse::<u64>() {
            return Some(format!("{v:032x}"));
        }
    }
    let hex = id.bytes().all(|b| b.is_ascii_hexdigit());
    match id.len() {
        32 if hex => Some(id.to_ascii_lowercase()),
        16 if hex => Some(format!("{:0>32}", id.to_ascii_lowercase())),
        _ => {
            // A UUID-style id with dashes (the SkyAPM SDK's trace ids).
            let plain: String = id.chars().filter(|c| *c != '-').collect();
            (plain.len() == 32 && plain.bytes().all(|b| b.is_ascii_hexdigit()))
                .then(|| plain.to_ascii_lowercase())
        }
    }
}

/// A span id (64-bit decimal or 16 hex digits) as 16 lowercase hex digits.
pub fn normalize_span_id(id: &str) -> Option<String> {
    let id = id.trim();
    if !id.is_empty() && id.len() <= 20 && id.bytes().all(|b| b.is_ascii_digit()) {
        if let Ok(v) = id.parse::<u64>() {
            return Some(format!("{v:016x}"));
        }
    }
    (id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit())).then(|| id.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_ids_become_32_lowercase_hex() {
        // The fixtures' `_dd.trace_id` and its traceparent.
        assert_eq!(
            normalize_trace_id("6181618604699066953").as_deref(),
            Some("000000000000000055c9855e8e08a249")
        );
        assert_eq!(
            normalize_trace_id("55C9855E8E08A249").as_deref(),
            Some("000000000000000055c9855e8e08a249")
        );
        assert_eq!(
            normalize_trace_id("0000000000000000d4ca8cdf2c77b4af").as_deref(),
            Some("0000000000000000d4ca8cdf2c77b4af")
        );
        assert_eq!(normalize_trace_id("not a trace"), None);
        assert_eq!(normalize_trace_id("99999999999999999999999"), None);
        assert_eq!(
            normalize_span_id("5287968358521447938").as_deref(),
            Some("4962a334892d2602")
        );
    }

    #[test]
    fn type_names_round_trip() {
        for t in RumEventType::ALL {
            assert_eq!(RumEventType::from_name(t.as_str()), Some(t));
        }
        assert_eq!(RumEventType::from_name("session"), None);
    }
}
