//! What Skylark derives from RUM events: samples under the SkyAPM mini-program SDK's metric names
//! (so `otel-rules/miniprogram` and the dashboards show RUM data unchanged), RUM-only samples for
//! `otel-rules/rum`, and error logs with the SkyAPM SDK's tags for LAL.
//!
//! Views are re-sent whole with a growing `_dd.document_version`; [`ViewTracker`] remembers per
//! view what was already counted, so a view's timings are observed once and its counters
//! (`setData`) only add what grew.
#![warn(missing_docs, unreachable_pub)]

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::hash::Hash;

use skylark_core::rum::{RumDetail, RumErrorDetail, RumViewTimings};
use skylark_core::segment::{
    Segment, Span, SpanLayer, SpanType, OTEL_SPAN_ID_TAG, RUM_SEGMENT_PREFIX,
};
use skylark_core::{
    LabelText, Labels, LogBody, LogData, RumEvent, RumEventType, Sample, SampleFamilies,
    SampleFamily,
};

/// The SkyAPM SDK's request-duration bucket bounds (ms, inclusive upper limits).
pub const REQUEST_BUCKET_BOUNDS_MS: [f64; 10] = [
    10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0,
];

/// The `le` label of each bucket as the OTLP receiver writes it (Java's `Double.toString`), the
/// overflow bucket last.
const REQUEST_BUCKET_LE: [&str; 11] = [
    "10.0", "25.0", "50.0", "100.0", "250.0", "500.0", "1000.0", "2500.0", "5000.0", "10000.0",
    "Infinity",
];

/// SkyAPM gauge: app launch (ms).
pub const APP_LAUNCH: &str = "miniprogram_app_launch_duration";
/// SkyAPM gauge: first render (ms).
pub const FIRST_RENDER: &str = "miniprogram_first_render_duration";
/// SkyAPM gauge: route change (ms).
pub const ROUTE: &str = "miniprogram_route_duration";
/// SkyAPM gauge: script evaluation (ms).
pub const SCRIPT: &str = "miniprogram_script_duration";
/// SkyAPM histogram: request duration (ms); `_count`, `_sum` and `{le}` buckets.
pub const REQUEST: &str = "miniprogram_request_duration";
/// RUM only: a page view (1 per view, counted once).
pub const PAGE_VIEWS: &str = "rum_page_view_count";
/// RUM only: a session's first event (1 per session).
pub const SESSIONS: &str = "rum_session_count";
/// RUM only: an error (1 per error event) with its `error_source`.
pub const ERRORS: &str = "rum_error_count";
/// RUM only: a long task (1 per long task).
pub const LONG_TASKS: &str = "rum_long_task_count";
/// RUM only: a long task's duration (ms).
pub const LONG_TASK_DURATION: &str = "rum_long_task_duration";
/// RUM only: `setData` calls (what a view's counter grew by).
pub const SETDATA_COUNT: &str = "rum_setdata_count";
/// RUM only: time in `setData` (ms, what a view's counter grew by).
pub const SETDATA_DURATION: &str = "rum_setdata_duration";
/// RUM only: onLoad → onShow (ms, once per view).
pub const ONLOAD_TO_ONSHOW: &str = "rum_onload_to_onshow_duration";
/// RUM only: onShow → onReady (ms, once per view).
pub const ONSHOW_TO_ONREADY: &str = "rum_onshow_to_onready_duration";
/// RUM only: a frustration signal on an action, with its `frustration_type`.
pub const FRUSTRATIONS: &str = "rum_frustration_count";

/// Which mini-program platform each RUM `source` is (`miniprogram` → `wechat`), so samples and
/// logs carry the `miniprogram.platform` the rules select on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlatformMapping(Vec<(String, String)>);

impl PlatformMapping {
    /// Parses `source:platform` pairs separated by commas (`SW_RUM_PLATFORMS`).
    pub fn parse(text: &str) -> Self {
        PlatformMapping(
            text.split(',')
                .filter_map(|pair| pair.split_once(':'))
                .map(|(s, p)| (s.trim().to_owned(), p.trim().to_owned()))
                .filter(|(s, p)| !s.is_empty() && !p.is_empty())
                .collect(),
        )
    }

    /// The platform of `source`; unmapped sources keep their own name (no shipped rule selects
    /// them, so they are stored but make no SkyAPM metrics).
    pub fn platform<'a>(&'a self, source: &'a str) -> &'a str {
        self.0
            .iter()
            .find(|(s, _)| s == source)
            .map_or(source, |(_, p)| p.as_str())
    }
}

impl Default for PlatformMapping {
    fn default() -> Self {
        PlatformMapping::parse("miniprogram:wechat,miniapp:wechat")
    }
}

/// A map that forgets its oldest entries past `capacity`, so state kept per view and per
/// session cannot grow without bound.
#[derive(Debug)]
struct BoundedMap<K, V> {
    capacity: usize,
    entries: HashMap<K, V>,
    order: VecDeque<K>,
}

impl<K: Hash + Eq + Clone, V> BoundedMap<K, V> {
    fn new(capacity: usize) -> Self {
        BoundedMap {
            capacity: capacity.max(1),
            entries: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        self.entries.get_mut(key)
    }

    fn contains(&self, key: &K) -> bool {
        self.entries.contains_key(key)
    }

    fn insert(&mut self, key: K, value: V) {
        if self.entries.insert(key.clone(), value).is_none() {
            self.order.push_back(key);
            while self.order.len() > self.capacity {
                if let Some(old) = self.order.pop_front() {
                    self.entries.remove(&old);
                }
            }
        }
    }
}

/// What was already counted for one view.
#[derive(Debug, Clone, Default, PartialEq)]
struct ViewState {
    version: i64,
    app_launch: bool,
    first_render: bool,
    script: bool,
    route: bool,
    onload_to_onshow: bool,
    onshow_to_onready: bool,
    setdata_count: i64,
    setdata_duration_ms: f64,
}

impl ViewState {
    /// The state a stored view (the highest version applied before) stands for.
    fn of_stored(view: &RumEvent) -> Self {
        let mut state = ViewState {
            version: view.document_version.unwrap_or(0),
            ..ViewState::default()
        };
        if let Some(t) = view.view_timings() {
            state.app_launch = t.app_launch_ms.is_some();
            state.first_render = t.first_render_ms.is_some();
            state.script = t.evaluate_script_ms.is_some();
            state.route = t.loading_time_ms.is_some() && t.loading_type == "route_change";
            state.onload_to_onshow = t.onload_to_onshow_ms.is_some();
            state.onshow_to_onready = t.onshow_to_onready_ms.is_some();
            state.setdata_count = t.setdata_count.unwrap_or(0);
            state.setdata_duration_ms = t.setdata_duration_ms.unwrap_or(0.0);
        }
        state
    }
}

/// Most views and sessions remembered by default.
pub const TRACKED_MAX: usize = 100_000;

/// Views and sessions already counted. On a miss the caller's lookup is asked (storage holds
/// the highest stored version of each view), so re-sends across restarts are not counted again.
#[derive(Debug)]
pub struct ViewTracker {
    views: BoundedMap<String, ViewState>,
    sessions: BoundedMap<String, ()>,
}

impl ViewTracker {
    /// A tracker remembering at most `capacity` views and as many sessions.
    pub fn new(capacity: usize) -> Self {
        ViewTracker {
            views: BoundedMap::new(capacity),
            sessions: BoundedMap::new(capacity),
        }
    }
}

impl Default for ViewTracker {
    fn default() -> Self {
        ViewTracker::new(TRACKED_MAX)
    }
}

/// What storage knows, asked when the tracker does not remember a view or session.
pub trait Known {
    /// The stored view `view` is a version of (same id and start), if any.
    fn stored_view(&self, view: &RumEvent) -> Option<RumEvent>;
    /// Whether any event of `session_id` is stored.
    fn session_seen(&self, session_id: &str) -> bool;
}

/// Nothing is stored (tests, replay without storage).
pub struct NothingKnown;

impl Known for NothingKnown {
    fn stored_view(&self, _view: &RumEvent) -> Option<RumEvent> {
        None
    }
    fn session_seen(&self, _session_id: &str) -> bool {
        false
    }
}

/// What one batch of events becomes.
#[derive(Debug, Default)]
pub struct Derived {
    /// Sample families, each evaluated by the rules as one unit (as one OTLP `ResourceMetrics`
    /// would be): one per view's new timings, one per minute for request histograms and counts.
    pub units: Vec<SampleFamilies>,
    /// Error logs for LAL.
    pub logs: Vec<LogData>,
    /// The events to store: every non-view event, and each view only when it is a higher
    /// version than what was counted before (one per view per batch).
    pub events: Vec<RumEvent>,
    /// View events that were older versions of a view already counted (not stored again).
    pub stale_views: u64,
}

/// Samples of one unit, merged by (name, labels): counts and histogram parts add up.
#[derive(Default)]
struct UnitBuilder {
    samples: BTreeMap<(String, Labels), (f64, i64)>,
}

impl UnitBuilder {
    fn add(&mut self, name: &str, labels: Labels, value: f64, timestamp_ms: i64) {
        let entry = self
            .samples
            .entry((name.to_owned(), labels))
            .or_insert((0.0, timestamp_ms));
        entry.0 += value;
    }

    fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    fn build(self) -> SampleFamilies {
        let mut families = SampleFamilies::default();
        for ((name, labels), (value, timestamp_ms)) in self.samples {
            let text = LabelText::from(name.as_str());
            families
                .entry(name)
                .or_insert_with(|| SampleFamily::new(Vec::new()))
                .samples
                .push(Sample {
                    name: text,
                    labels,
                    value,
                    timestamp_ms,
                });
        }
        families
    }
}

/// Derives samples, logs and records from events.
#[derive(Debug, Default)]
pub struct Deriver {
    platforms: PlatformMapping,
}

impl Deriver {
    /// A deriver mapping sources to platforms with `platforms`.
    pub fn new(platforms: PlatformMapping) -> Self {
        Deriver { platforms }
    }

    /// The mini program's own side of a traced request: a segment of one exit span (the RUM
    /// resource with its trace and span ids), so the trace shows the request at its root and a
    /// backend span whose parent is that span id links to it. `None` for events that are not
    /// resources or carry no trace or span id.
    pub fn request_segment(&self, event: &RumEvent) -> Option<Segment> {
        let RumDetail::Resource(resource) = &event.detail else {
            return None;
        };
        if event.trace_id.len() != 32 || event.span_id.len() != 16 {
            return None;
        }
        let duration = event
            .duration_ms
            .filter(|d| d.is_finite() && *d >= 0.0 && *d < 86_400_000.0)
            .unwrap_or(0.0) as i64;
        let url = if resource.url.is_empty() {
            event.name.as_str()
        } else {
            resource.url.as_str()
        };
        let without_query = url.split(['?', '#']).next().unwrap_or(url);
        let peer = without_query
            .split_once("://")
            .map(|(_, rest)| rest.split('/').next().unwrap_or(rest))
            .unwrap_or_default();
        let component_id = match self.platforms.platform(&event.source) {
            "wechat" => 10002,
            "alipay" => 10003,
            _ => 10001,
        };
        let mut tags = vec![
            ("http.method".to_owned(), resource.method.clone()),
            ("url".to_owned(), url.to_owned()),
            ("rum.session.id".to_owned(), event.session_id.clone()),
            ("rum.view.id".to_owned(), event.view.id.clone()),
            ("rum.view.name".to_owned(), event.view.name.clone()),
            (OTEL_SPAN_ID_TAG.to_owned(), event.span_id.clone()),
        ];
        if let Some(status) = event.status {
            tags.push(("http.status_code".to_owned(), status.to_string()));
        }
        if !resource.error_message.is_empty() {
            tags.push(("error.message".to_owned(), resource.error_message.clone()));
        }
        tags.retain(|(_, v)| !v.is_empty());
        Some(Segment {
            trace_id: event.trace_id.clone(),
            segment_id: format!("{RUM_SEGMENT_PREFIX}{}.{}", event.trace_id, event.span_id),
            service: event.service.clone(),
            service_instance: if event.version.is_empty() {
                "-".to_owned()
            } else {
                event.version.clone()
            },
            spans: vec![Span {
                span_id: 0,
                parent_span_id: -1,
                start_time_ms: event.time_ms,
                end_time_ms: event.time_ms.saturating_add(duration),
                refs: Vec::new(),
                operation_name: without_query.to_owned(),
                peer: peer.to_owned(),
                span_type: SpanType::Exit,
                span_layer: SpanLayer::Http,
                component_id,
                is_error: event.status.is_none_or(|s| s >= 400),
                tags,
                logs: Vec::new(),
                skip_analysis: true,
            }],
            is_size_limited: false,
        })
    }

    /// Derives one batch; `tracker` is updated so later batches do not count the same view or
    /// session again.
    pub fn derive(
        &self,
        events: Vec<RumEvent>,
        tracker: &mut ViewTracker,
        known: &dyn Known,
    ) -> Derived {
        let mut out = Derived::default();
        let mut minutes: BTreeMap<i64, UnitBuilder> = BTreeMap::new();
        // The highest version of each view in this batch, by position in `out.events`.
        let mut view_slots: HashMap<String, usize> = HashMap::new();
        for event in events {
            let platform = self.platforms.platform(&event.source).to_owned();
            let base = base_labels(&event, &platform);
            let minute = minutes.entry(event.time_ms.div_euclid(60_000)).or_default();
            if !event.session_id.is_empty() {
                let session = event.session_id.clone();
                if !tracker.sessions.contains(&session) {
                    if !known.session_seen(&session) {
                        minute.add(SESSIONS, without_page(&base), 1.0, event.time_ms);
                    }
                    tracker.sessions.insert(session, ());
                }
            }
            match event.kind() {
                RumEventType::View => {
                    if let Some(unit) = view_samples(&event, &base, tracker, known) {
                        if !unit.is_empty() {
                            out.units.push(unit.build());
                        }
                        match view_slots.get(&event.id) {
                            Some(slot) => out.events[*slot] = event,
                            None => {
                                view_slots.insert(event.id.clone(), out.events.len());
                                out.events.push(event);
                            }
                        }
                    } else {
                        out.stale_views += 1;
                    }
                    continue;
                }
                RumEventType::Resource => request_samples(&event, &base, minute),
                RumEventType::Error => {
                    let mut labels = base.clone();
                    if let RumDetail::Error(detail) = &event.detail {
                        labels.insert("error_source", detail.source.as_str());
                    }
                    minute.add(ERRORS, labels, 1.0, event.time_ms);
                    out.logs.push(error_log(&event, &platform));
                }
                RumEventType::LongTask => {
                    minute.add(LONG_TASKS, base.clone(), 1.0, event.time_ms);
                    if let Some(ms) = event.duration_ms {
                        let mut unit = UnitBuilder::default();
                        unit.add(LONG_TASK_DURATION, base.clone(), ms.floor(), event.time_ms);
                        out.units.push(unit.build());
                    }
                }
                RumEventType::Action => {
                    if let RumDetail::Action(detail) = &event.detail {
                        for kind in &detail.frustrations {
                            let mut labels = base.clone();
                            labels.insert("frustration_type", kind.as_str());
                            minute.add(FRUSTRATIONS, labels, 1.0, event.time_ms);
                        }
                    }
                }
                RumEventType::Custom | RumEventType::Vital => {}
            }
            out.events.push(event);
        }
        for (_, unit) in minutes {
            if !unit.is_empty() {
                out.units.push(unit.build());
            }
        }
        out
    }
}

/// The labels every sample of an event carries, named as the OTLP receiver names the SkyAPM
/// SDK's resource and point attributes.
fn base_labels(event: &RumEvent, platform: &str) -> Labels {
    let mut labels = Labels::new();
    labels.insert("service_name", event.service.as_str());
    labels.insert("service_instance_id", event.version.as_str());
    labels.insert("miniprogram_platform", platform);
    labels.insert("miniprogram_page_path", event.view.name.as_str());
    labels
}

fn without_page(base: &Labels) -> Labels {
    let mut labels = base.clone();
    labels.remove("miniprogram_page_path");
    labels
}

/// The samples a view version adds, `None` when it is not newer than what was counted.
fn view_samples(
    event: &RumEvent,
    base: &Labels,
    tracker: &mut ViewTracker,
    known: &dyn Known,
) -> Option<UnitBuilder> {
    let version = event.document_version.unwrap_or(0);
    let id = event.id.clone();
    if tracker.views.get_mut(&id).is_none() {
        if let Some(stored) = known.stored_view(event) {
            tracker
                .views
                .insert(id.clone(), ViewState::of_stored(&stored));
        }
    }
    let mut unit = UnitBuilder::default();
    let at = event.time_ms;
    let state = match tracker.views.get_mut(&id) {
        Some(state) => {
            if version <= state.version {
                return None;
            }
            state
        }
        None => {
            tracker.views.insert(
                id.clone(),
                ViewState {
                    version: -1,
                    ..ViewState::default()
                },
            );
            unit.add(PAGE_VIEWS, view_count_labels(event, base), 1.0, at);
            tracker.views.get_mut(&id)?
        }
    };
    state.version = version;
    let Some(t) = event.view_timings() else {
        return Some(unit);
    };
    let mut once = |seen: &mut bool, name: &str, value: Option<f64>| {
        if let (false, Some(ms)) = (*seen, value) {
            // The SkyAPM SDK sends whole milliseconds, rounded down.
            unit.add(name, base.clone(), ms.floor(), at);
            *seen = true;
        }
    };
    once(&mut state.app_launch, APP_LAUNCH, t.app_launch_ms);
    once(&mut state.first_render, FIRST_RENDER, t.first_render_ms);
    once(&mut state.script, SCRIPT, t.evaluate_script_ms);
    once(&mut state.route, ROUTE, route_duration(t));
    once(
        &mut state.onload_to_onshow,
        ONLOAD_TO_ONSHOW,
        t.onload_to_onshow_ms,
    );
    once(
        &mut state.onshow_to_onready,
        ONSHOW_TO_ONREADY,
        t.onshow_to_onready_ms,
    );
    let count = t.setdata_count.unwrap_or(0);
    if count > state.setdata_count {
        unit.add(
            SETDATA_COUNT,
            base.clone(),
            (count - state.setdata_count) as f64,
            at,
        );
        state.setdata_count = count;
    }
    let duration = t.setdata_duration_ms.unwrap_or(0.0);
    if duration > state.setdata_duration_ms {
        unit.add(
            SETDATA_DURATION,
            base.clone(),
            duration - state.setdata_duration_ms,
            at,
        );
        state.setdata_duration_ms = duration;
    }
    Some(unit)
}

fn view_count_labels(event: &RumEvent, base: &Labels) -> Labels {
    let mut labels = base.clone();
    if let Some(t) = event.view_timings() {
        labels.insert("loading_type", t.loading_type.as_str());
    }
    labels
}

/// A route change's onLoad→onReady is what the SkyAPM SDK reports as the route duration.
fn route_duration(t: &RumViewTimings) -> Option<f64> {
    (t.loading_type == "route_change")
        .then_some(t.loading_time_ms)
        .flatten()
}

/// A request resource becomes one observation of the SkyAPM request histogram (merged with
/// the others of its minute and labels, as the SDK merges one flush).
fn request_samples(event: &RumEvent, base: &Labels, minute: &mut UnitBuilder) {
    let RumDetail::Resource(resource) = &event.detail else {
        return;
    };
    if !matches!(resource.resource_type.as_str(), "xhr" | "fetch") {
        return;
    }
    let Some(ms) = event.duration_ms else {
        return;
    };
    let ms = ms.floor();
    let mut labels = base.clone();
    let method = if resource.method.is_empty() {
        "GET"
    } else {
        resource.method.as_str()
    };
    labels.insert("http_request_method", method);
    let status = event.status.unwrap_or(0).to_string();
    labels.insert("http_response_status_code", status.as_str());
    if let Some(host) = server_address(&resource.url) {
        labels.insert("server_address", host);
    }
    let at = event.time_ms;
    minute.add(&format!("{REQUEST}_count"), labels.clone(), 1.0, at);
    minute.add(&format!("{REQUEST}_sum"), labels.clone(), ms, at);
    let hit = REQUEST_BUCKET_BOUNDS_MS
        .iter()
        .position(|bound| ms <= *bound)
        .unwrap_or(REQUEST_BUCKET_BOUNDS_MS.len());
    for (i, le) in REQUEST_BUCKET_LE.iter().enumerate() {
        let mut bucket = labels.clone();
        bucket.insert("le", *le);
        minute.add(REQUEST, bucket, if i == hit { 1.0 } else { 0.0 }, at);
    }
}

/// `host[:port]` of an http(s) URL, as the SkyAPM SDK's `server.address`.
fn server_address(url: &str) -> Option<&str> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))?;
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    Some(&rest[..end]).filter(|h| !h.is_empty())
}

/// The SkyAPM SDK's `exception.type` for a RUM error source.
pub fn exception_type(source: &str) -> &str {
    match source {
        "app" => "js",
        "promise" => "promise",
        "network" => "ajax",
        "page-not-found" => "pageNotFound",
        other => other,
    }
}

/// An error as the SkyAPM SDK would have logged it.
fn error_log(event: &RumEvent, platform: &str) -> LogData {
    let default = RumErrorDetail::default();
    let detail = match &event.detail {
        RumDetail::Error(d) => d,
        _ => &default,
    };
    let kind = exception_type(&detail.source);
    let mut page = event.view.name.clone();
    if kind == "pageNotFound" {
        // The SkyAPM SDK names the missing page, not the current one.
        if let Some(missing) = event.message.strip_prefix("Page not found: ") {
            page = missing.trim().to_owned();
        }
    }
    let mut tags = vec![
        ("exception.type".to_owned(), kind.to_owned()),
        ("exception.stacktrace".to_owned(), event.stack.clone()),
    ];
    if kind == "ajax" {
        let (method, url, status) = failed_request(event, detail);
        tags.push(("http.request.method".to_owned(), method));
        tags.push(("http.response.status_code".to_owned(), status));
        if let Some(host) = server_address(&url) {
            tags.push(("server.address".to_owned(), host.to_owned()));
        }
    }
    tags.push(("miniprogram.page.path".to_owned(), page));
    tags.push(("rum.session.id".to_owned(), event.session_id.clone()));
    tags.push(("rum.view.id".to_owned(), event.view.id.clone()));
    tags.push(("rum.error.id".to_owned(), event.id.clone()));
    LogData {
        service: event.service.clone(),
        service_instance: event.version.clone(),
        endpoint: String::new(),
        layer: String::new(),
        timestamp_ms: event.time_ms,
        body: LogBody::Text(event.message.clone()),
        tags,
        source_attributes: vec![
            ("service.name".to_owned(), event.service.clone()),
            ("service.instance.id".to_owned(), event.version.clone()),
            // Where the issues grouper reads the version (as the SkyAPM SDK sends it), so a
            // RUM error's issue knows its versions and finds that version's source maps.
            ("service.version".to_owned(), event.version.clone()),
            ("miniprogram.platform".to_owned(), platform.to_owned()),
            ("telemetry.sdk.name".to_owned(), event.source.clone()),
        ],
        trace_id: None,
        segment_id: None,
        span_id: None,
    }
}

/// Method, URL and status (`"0"` without an answer) of a network error: from `error.resource`,
/// else from Flashcat's message `<METHOD> <url> failed: <errMsg>`.
fn failed_request(event: &RumEvent, detail: &RumErrorDetail) -> (String, String, String) {
    let status = detail.resource_status.unwrap_or(0).to_string();
    if !detail.resource_url.is_empty() {
        return (
            detail.resource_method.clone(),
            detail.resource_url.clone(),
            status,
        );
    }
    let mut words = event.message.split_whitespace();
    match (words.next(), words.next()) {
        (Some(method), Some(url)) if method.chars().all(|c| c.is_ascii_uppercase()) => {
            (method.to_owned(), url.to_owned(), status)
        }
        _ => (String::new(), String::new(), status),
    }
}

#[cfg(test)]
mod tests;
