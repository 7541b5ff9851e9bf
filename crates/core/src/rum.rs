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

/// Most pages a session keeps (the first ones visited); later visits still count as views.
pub const SESSION_PAGES_MAX: usize = 500;

/// Most distinct app versions a session keeps.
const SESSION_VERSIONS_MAX: usize = 16;

/// One page visit of a session.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RumSessionPage {
    /// The view id.
    pub view_id: String,
    /// The page route.
    pub name: String,
    /// The view's start, epoch ms.
    pub start_ms: i64,
}

/// What Skylark knows of one user session, summed from the RUM events received for it (the
/// SDKs sample sessions, so counts are of what arrived).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RumSession {
    /// `session.id`.
    pub id: String,
    /// The service (app) of its first event.
    pub service: String,
    /// App versions seen, in order of arrival.
    pub versions: Vec<String>,
    /// `usr.id` (the last one set).
    pub user_id: String,
    /// `usr.anonymous_id`.
    pub anonymous_id: String,
    /// `device.model` (or `device.name`), when sent.
    pub device: String,
    /// `os.name` and `os.version`, when sent.
    pub os: String,
    /// `connectivity.effective_type`, else `connectivity.interfaces`, else `connectivity.status`.
    pub network: String,
    /// The earliest event, epoch ms.
    pub start_ms: i64,
    /// The latest event (a view's start plus its time spent), epoch ms.
    pub end_ms: i64,
    /// Distinct views.
    pub view_count: u64,
    /// Actions.
    pub action_count: u64,
    /// Resources.
    pub resource_count: u64,
    /// Errors.
    pub error_count: u64,
    /// Errors flagged `error.is_crash`.
    pub crash_count: u64,
    /// Long tasks.
    pub long_task_count: u64,
    /// Custom events and vitals.
    pub custom_count: u64,
    /// Frustrations on actions.
    pub frustration_count: u64,
    /// Whether a request failed (a resource with status >= 400 or no answer, a network error).
    pub failed_request: bool,
    /// `session.sampled` / `_dd.session.sampled` when the SDK sent it.
    pub sampled: Option<bool>,
    /// Pages in the order visited (view start), at most [`SESSION_PAGES_MAX`].
    pub pages: Vec<RumSessionPage>,
}

impl RumSession {
    /// A session with nothing counted yet, started by `event`.
    pub fn new(event: &RumEvent) -> Self {
        RumSession {
            id: event.session_id.clone(),
            service: event.service.clone(),
            start_ms: event.time_ms,
            end_ms: event.time_ms,
            ..RumSession::default()
        }
    }

    /// The session's length in ms.
    pub fn duration_ms(&self) -> i64 {
        self.end_ms.saturating_sub(self.start_ms).max(0)
    }

    /// Adds `event`. `first_time` is false for an event already added (a re-sent view version,
    /// a replayed batch): it then only moves times and fills fields, never counts again.
    pub fn add(&mut self, event: &RumEvent, first_time: bool) {
        self.start_ms = self.start_ms.min(event.time_ms);
        let mut end = event.time_ms;
        if event.kind() == RumEventType::View {
            let spent = event
                .view_timings()
                .and_then(|t| t.time_spent_ms)
                .or(event.duration_ms)
                .unwrap_or(0.0);
            if spent.is_finite() && spent > 0.0 && spent < 1e12 {
                end = end.saturating_add(spent as i64);
            }
        }
        self.end_ms = self.end_ms.max(end);
        let fill = |slot: &mut String, value: &str| {
            if !value.is_empty() {
                value.clone_into(slot);
            }
        };
        fill(&mut self.user_id, &event.user.id);
        fill(&mut self.anonymous_id, &event.user.anonymous_id);
        if self.service.is_empty() {
            fill(&mut self.service, &event.service);
        }
        let attr = |key: &str| {
            event
                .attributes
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.as_str())
                .filter(|v| !v.is_empty())
        };
        if let Some(device) = attr("device.model").or_else(|| attr("device.name")) {
            fill(&mut self.device, device);
        }
        if let Some(os) = attr("os.name") {
            let os = match attr("os.version") {
                Some(v) => format!("{os} {v}"),
                None => os.to_owned(),
            };
            self.os = os;
        }
        // Attributes hold non-strings as JSON text: `["wifi"]` reads as `wifi`.
        let interfaces = attr("connectivity.interfaces").map(|v| {
            v.split(',')
                .map(|i| i.trim_matches(|c: char| c == '[' || c == ']' || c == '"' || c == ' '))
                .filter(|i| !i.is_empty())
                .collect::<Vec<_>>()
                .join(",")
        });
        if let Some(net) = attr("connectivity.effective_type")
            .map(str::to_owned)
            .or(interfaces.filter(|v| !v.is_empty()))
            .or_else(|| attr("connectivity.status").map(str::to_owned))
        {
            fill(&mut self.network, &net);
        }
        if let Some(sampled) = attr("session.sampled").or_else(|| attr("_dd.session.sampled")) {
            self.sampled = Some(sampled == "true");
        }
        if !event.version.is_empty()
            && self.versions.len() < SESSION_VERSIONS_MAX
            && !self.versions.contains(&event.version)
        {
            self.versions.push(event.version.clone());
        }
        if !first_time {
            return;
        }
        match event.kind() {
            RumEventType::View => {
                self.view_count += 1;
                if self.pages.len() < SESSION_PAGES_MAX {
                    let page = RumSessionPage {
                        view_id: event.view.id.clone(),
                        name: event.view.name.clone(),
                        start_ms: event.time_ms,
                    };
                    let at = self.pages.partition_point(|p| p.start_ms <= page.start_ms);
                    self.pages.insert(at, page);
                }
            }
            RumEventType::Action => {
                self.action_count += 1;
                if let RumDetail::Action(a) = &event.detail {
                    self.frustration_count += a.frustrations.len() as u64;
                }
            }
            RumEventType::Resource => {
                self.resource_count += 1;
                let unanswered = event.status.is_none()
                    && matches!(&event.detail, RumDetail::Resource(r) if !r.error_message.is_empty());
                if event.status.is_some_and(|s| s >= 400) || unanswered {
                    self.failed_request = true;
                }
            }
            RumEventType::Error => {
                self.error_count += 1;
                if attr("error.is_crash") == Some("true") {
                    self.crash_count += 1;
                }
                if matches!(&event.detail, RumDetail::Error(e) if e.source == "network") {
                    self.failed_request = true;
                }
            }
            RumEventType::LongTask => self.long_task_count += 1,
            RumEventType::Custom | RumEventType::Vital => self.custom_count += 1,
        }
    }
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

    fn of(kind: RumEventType, id: &str, time_ms: i64, detail: RumDetail) -> RumEvent {
        RumEvent {
            event_type: Some(kind),
            id: id.into(),
            time_ms,
            service: "shop".into(),
            version: "1.0".into(),
            session_id: "s".into(),
            view: RumViewRef {
                id: format!("v-{id}"),
                name: format!("pages/{id}"),
                ..RumViewRef::default()
            },
            detail,
            ..RumEvent::default()
        }
    }

    #[test]
    fn a_session_sums_what_arrived_and_counts_nothing_twice() {
        let crash = RumEvent {
            attributes: vec![
                ("error.is_crash".into(), "true".into()),
                (
                    "connectivity.interfaces".into(),
                    "[\"wifi\",\"cellular\"]".into(),
                ),
                ("session.sampled".into(), "true".into()),
                ("os.name".into(), "iOS".into()),
                ("os.version".into(), "17.2".into()),
            ],
            ..of(RumEventType::Error, "e", 3_000, RumDetail::None)
        };
        let rage = of(
            RumEventType::Action,
            "a",
            2_000,
            RumDetail::Action(RumActionDetail {
                action_type: "tap".into(),
                frustrations: vec!["rage_click".into(), "error_click".into()],
            }),
        );
        let second = of(RumEventType::View, "two", 5_000, RumDetail::None);
        let first = of(RumEventType::View, "one", 1_000, RumDetail::None);
        let mut s = RumSession::new(&second);
        for e in [&second, &crash, &rage, &first] {
            s.add(e, true);
        }
        // Seen again: times may move, counts do not.
        s.add(&crash, false);
        assert_eq!((s.view_count, s.error_count, s.crash_count), (2, 1, 1));
        assert_eq!((s.action_count, s.frustration_count), (1, 2));
        assert_eq!(
            (s.start_ms, s.end_ms, s.duration_ms()),
            (1_000, 5_000, 4_000)
        );
        let pages: Vec<&str> = s.pages.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(pages, ["pages/one", "pages/two"], "in the order visited");
        assert_eq!(s.network, "wifi,cellular");
        assert_eq!(s.os, "iOS 17.2");
        assert_eq!(s.sampled, Some(true));
        assert!(!s.failed_request);

        // A request without an answer is a failed request; one answered 200 is not.
        let mut ok = of(RumEventType::Resource, "r", 4_000, RumDetail::None);
        ok.status = Some(200);
        s.add(&ok, true);
        assert!(!s.failed_request);
        let unanswered = of(
            RumEventType::Resource,
            "r2",
            4_500,
            RumDetail::Resource(RumResourceDetail {
                error_message: "request:fail timeout".into(),
                ..RumResourceDetail::default()
            }),
        );
        s.add(&unanswered, true);
        assert!(s.failed_request);
        assert_eq!(s.resource_count, 2);
    }
}
