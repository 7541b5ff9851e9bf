//! Datadog-format RUM NDJSON → [`RumEvent`]s. Each line is decoded on its own: a bad line is
//! skipped with its reason and the rest of the batch is kept. Durations arrive in nanoseconds
//! and leave in milliseconds; fields the model does not name are kept as attributes.
use serde_json::{Map, Value};
use skylark_core::rum::{
    normalize_span_id, normalize_trace_id, RumActionDetail, RumDetail, RumErrorDetail,
    RumResourceDetail, RumUser, RumViewRef, RumViewTimings,
};
use skylark_core::{RejectReason, Rejections, RumEvent, RumEventType};

/// Query parameters of an intake request that events inherit.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct BatchContext {
    /// `ddsource` (`miniapp`, `browser`).
    pub(crate) source: String,
    /// `service` from `ddtags`.
    pub(crate) service: String,
    /// `version` from `ddtags`.
    pub(crate) version: String,
    /// `env` from `ddtags`.
    pub(crate) env: String,
}

impl BatchContext {
    /// The context of `ddsource` and `ddtags` (`service:…,env:…,version:…`).
    pub(crate) fn new(source: &str, ddtags: &str) -> Self {
        let mut context = BatchContext {
            source: bound(source, NAME_MAX),
            ..BatchContext::default()
        };
        context.apply_tags(ddtags);
        context
    }

    fn apply_tags(&mut self, ddtags: &str) {
        for tag in ddtags.split(',') {
            let Some((key, value)) = tag.split_once(':') else {
                continue;
            };
            let value = bound(value.trim(), NAME_MAX);
            match key.trim() {
                "service" => self.service = value,
                "version" => self.version = value,
                "env" => self.env = value,
                _ => {}
            }
        }
    }
}

/// What one body decoded to.
#[derive(Debug, Default)]
pub(crate) struct DecodedBatch {
    /// The good lines' events, in order.
    pub(crate) events: Vec<RumEvent>,
    /// Bad lines by reason.
    pub(crate) rejected: Rejections,
    /// The first bad line's number (1-based) and reason, for the answer and the log.
    pub(crate) first_error: Option<(usize, String)>,
}

/// Longest name-like value kept (service, version, ids, routes).
const NAME_MAX: usize = 512;
/// Longest URL, message or attribute value kept.
const TEXT_MAX: usize = 4096;
/// Longest error stack kept.
const STACK_MAX: usize = 64 * 1024;
/// Most attributes kept per event; the rest are dropped with `attributes.truncated=true`.
const ATTRIBUTES_MAX: usize = 128;
/// Nesting below this depth is kept as one JSON-text attribute.
const FLATTEN_DEPTH: usize = 4;
/// A duration longer than a day (in ns) is not a measurement; the line is refused.
const DURATION_MAX_NS: f64 = 86_400.0 * 1e9;

/// Fields the model names (never copied to attributes).
const KNOWN: &[&str] = &[
    "date",
    "type",
    "service",
    "version",
    "env",
    "source",
    "ddtags",
    "application.id",
    "session.id",
    "view.id",
    "view.name",
    "view.url",
    "view.referrer",
    "usr.id",
    "usr.name",
    "usr.email",
    "usr.anonymous_id",
    "_dd.document_version",
    "_dd.trace_id",
    "_dd.span_id",
    "view.loading_type",
    "view.is_active",
    "view.time_spent",
    "view.loading_time",
    "view.app_launch",
    "view.first_render",
    "view.evaluate_script",
    "view.onload_to_onshow",
    "view.onshow_to_onready",
    "view.setdata.count",
    "view.setdata.duration",
    "view.action.count",
    "view.error.count",
    "view.resource.count",
    "view.long_task.count",
    "view.frustration.count",
    "resource.id",
    "resource.type",
    "resource.method",
    "resource.url",
    "resource.status_code",
    "resource.duration",
    "resource.error_message",
    "resource.trace_id",
    "resource.span_id",
    "error.id",
    "error.message",
    "error.stack",
    "error.source",
    "error.type",
    "error.handling",
    "error.fingerprint",
    "error.resource.method",
    "error.resource.url",
    "error.resource.status_code",
    "action.id",
    "action.type",
    "action.target.name",
    "action.loading_time",
    "action.frustration.type",
    "long_task.id",
    "long_task.duration",
    "event.id",
    "event.name",
    "vital.id",
    "vital.name",
    "vital.duration",
];

/// Attribute paths whose numbers are nanoseconds (offsets or durations), kept in ms.
const NANOSECOND_PREFIXES: &[&str] = &[
    "view.first_render_detail.",
    "view.custom_timings.",
    "view.performance.",
    "view.largest_contentful_paint",
    "view.first_contentful_paint",
    "view.dom_",
    "view.load_event",
    "view.first_input",
    "view.interaction_to_next_paint",
    "_dd.page_states.start",
    "long_task.blocking_duration",
    "vital.",
    "resource.dns.",
    "resource.connect.",
    "resource.ssl.",
    "resource.first_byte.",
    "resource.download.",
    "resource.redirect.",
];

/// Why one line was refused.
struct LineError {
    reason: RejectReason,
    message: String,
}

impl LineError {
    fn malformed(message: impl Into<String>) -> Self {
        LineError {
            reason: RejectReason::Malformed,
            message: message.into(),
        }
    }
}

/// Decodes an NDJSON body (blank lines ignored).
pub(crate) fn decode_ndjson(body: &[u8], context: &BatchContext) -> DecodedBatch {
    let mut out = DecodedBatch::default();
    for (index, line) in body.split(|b| *b == b'\n').enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match decode_line(line, context) {
            Ok(event) => out.events.push(event),
            Err(error) => {
                out.rejected.add(error.reason, 1);
                if out.first_error.is_none() {
                    out.first_error = Some((index + 1, error.message));
                }
            }
        }
    }
    out
}

fn decode_line(line: &[u8], context: &BatchContext) -> Result<RumEvent, LineError> {
    let value: Value =
        serde_json::from_slice(line).map_err(|e| LineError::malformed(format!("not JSON: {e}")))?;
    let Value::Object(root) = value else {
        return Err(LineError::malformed("not a JSON object"));
    };
    let type_name = text(&root, "type");
    let event_type = RumEventType::from_name(&type_name)
        .ok_or_else(|| LineError::malformed(format!("unknown event type {type_name:?}")))?;
    let time_ms = match get(&root, "date") {
        Some(Value::Number(n)) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.is_finite()).map(|f| f as i64))
            .ok_or_else(|| LineError::malformed("date is not a number of ms"))?,
        _ => return Err(LineError::malformed("missing date")),
    };

    let mut batch = context.clone();
    let event_tags = text(&root, "ddtags");
    if !event_tags.is_empty() {
        batch.apply_tags(&event_tags);
    }
    let or = |own: String, inherited: &str| {
        if own.is_empty() {
            inherited.to_owned()
        } else {
            own
        }
    };
    let mut event = RumEvent {
        event_type: Some(event_type),
        time_ms,
        service: bound(&or(text(&root, "service"), &batch.service), NAME_MAX),
        version: bound(&or(text(&root, "version"), &batch.version), NAME_MAX),
        env: bound(&or(text(&root, "env"), &batch.env), NAME_MAX),
        source: bound(&or(text(&root, "source"), &batch.source), NAME_MAX),
        application_id: name(&root, "application.id"),
        session_id: name(&root, "session.id"),
        view: RumViewRef {
            id: name(&root, "view.id"),
            name: route(&name(&root, "view.name")),
            url: long_text(&root, "view.url"),
            referrer: long_text(&root, "view.referrer"),
        },
        user: RumUser {
            id: name(&root, "usr.id"),
            name: name(&root, "usr.name"),
            email: name(&root, "usr.email"),
            anonymous_id: name(&root, "usr.anonymous_id"),
        },
        document_version: integer(&root, "_dd.document_version"),
        ..RumEvent::default()
    };
    if event.view.name.is_empty() {
        event.view.name = route(&event.view.url);
    }
    if event.service.is_empty() {
        return Err(LineError::malformed("no service (in the event or ddtags)"));
    }

    match event_type {
        RumEventType::View => {
            event.id = event.view.id.clone();
            let timings = RumViewTimings {
                loading_type: name(&root, "view.loading_type"),
                is_active: match get(&root, "view.is_active") {
                    Some(Value::Bool(b)) => Some(*b),
                    _ => None,
                },
                time_spent_ms: duration(&root, "view.time_spent")?,
                loading_time_ms: duration(&root, "view.loading_time")?,
                app_launch_ms: duration(&root, "view.app_launch")?,
                first_render_ms: duration(&root, "view.first_render")?,
                evaluate_script_ms: duration(&root, "view.evaluate_script")?,
                onload_to_onshow_ms: duration(&root, "view.onload_to_onshow")?,
                onshow_to_onready_ms: duration(&root, "view.onshow_to_onready")?,
                setdata_count: count(&root, "view.setdata.count")?,
                setdata_duration_ms: duration(&root, "view.setdata.duration")?,
                action_count: count(&root, "view.action.count")?,
                error_count: count(&root, "view.error.count")?,
                resource_count: count(&root, "view.resource.count")?,
                long_task_count: count(&root, "view.long_task.count")?,
                frustration_count: count(&root, "view.frustration.count")?,
            };
            event.duration_ms = timings.time_spent_ms;
            event.name = event.view.name.clone();
            event.detail = RumDetail::View(timings);
        }
        RumEventType::Resource => {
            event.id = name(&root, "resource.id");
            event.duration_ms = duration(&root, "resource.duration")?;
            event.status = integer(&root, "resource.status_code");
            let url = long_text(&root, "resource.url");
            event.name = url.clone();
            let trace = or(
                text(&root, "_dd.trace_id"),
                &text(&root, "resource.trace_id"),
            );
            if let Some(hex) = normalize_trace_id(&trace) {
                event.trace_id = hex;
                if trace.bytes().all(|b| b.is_ascii_digit()) {
                    event.dd_trace_id = trace;
                }
            }
            let span = or(text(&root, "_dd.span_id"), &text(&root, "resource.span_id"));
            event.span_id = normalize_span_id(&span).unwrap_or_default();
            event.detail = RumDetail::Resource(RumResourceDetail {
                resource_type: name(&root, "resource.type"),
                method: name(&root, "resource.method").to_ascii_uppercase(),
                url,
                error_message: long_text(&root, "resource.error_message"),
            });
        }
        RumEventType::Error => {
            event.id = name(&root, "error.id");
            event.message = long_text(&root, "error.message");
            event.stack = bound(&text(&root, "error.stack"), STACK_MAX);
            event.detail = RumDetail::Error(RumErrorDetail {
                source: name(&root, "error.source"),
                error_type: name(&root, "error.type"),
                handling: name(&root, "error.handling"),
                fingerprint: name(&root, "error.fingerprint"),
                resource_method: name(&root, "error.resource.method").to_ascii_uppercase(),
                resource_url: long_text(&root, "error.resource.url"),
                resource_status: integer(&root, "error.resource.status_code"),
            });
            event.name = event.message.lines().next().unwrap_or_default().to_owned();
        }
        RumEventType::Action => {
            event.id = name(&root, "action.id");
            event.name = name(&root, "action.target.name");
            event.duration_ms = duration(&root, "action.loading_time")?;
            let frustrations = match get(&root, "action.frustration.type") {
                Some(Value::Array(items)) => items
                    .iter()
                    .filter_map(Value::as_str)
                    .take(8)
                    .map(|s| bound(s, NAME_MAX))
                    .collect(),
                _ => Vec::new(),
            };
            event.detail = RumDetail::Action(RumActionDetail {
                action_type: name(&root, "action.type"),
                frustrations,
            });
        }
        RumEventType::LongTask => {
            event.id = name(&root, "long_task.id");
            event.duration_ms = duration(&root, "long_task.duration")?;
        }
        RumEventType::Custom => {
            event.id = name(&root, "event.id");
            event.name = name(&root, "event.name");
        }
        RumEventType::Vital => {
            event.id = name(&root, "vital.id");
            event.name = name(&root, "vital.name");
            event.duration_ms = duration(&root, "vital.duration")?;
        }
    }
    if event.id.is_empty() {
        // Re-sends of an id-less line get the same id, so storing it again replaces it.
        event.id = format!("{}-{:016x}", event_type.as_str(), fnv1a(line));
    }
    let mut attributes = Vec::new();
    flatten(&root, "", 0, &mut attributes);
    if attributes.len() > ATTRIBUTES_MAX {
        attributes.truncate(ATTRIBUTES_MAX);
        attributes.push(("attributes.truncated".to_owned(), "true".to_owned()));
    }
    event.attributes = attributes;
    Ok(event)
}

/// A stable 64-bit hash (FNV-1a): the same line gets the same id in every process.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The value at a dotted path.
fn get<'a>(root: &'a Map<String, Value>, path: &str) -> Option<&'a Value> {
    let mut parts = path.split('.');
    let mut value = root.get(parts.next()?)?;
    for part in parts {
        value = value.as_object()?.get(part)?;
    }
    Some(value)
}

/// A string (numbers as their text) at `path`, `""` when absent.
fn text(root: &Map<String, Value>, path: &str) -> String {
    match get(root, path) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::Bool(b)) => b.to_string(),
        _ => String::new(),
    }
}

fn name(root: &Map<String, Value>, path: &str) -> String {
    bound(&text(root, path), NAME_MAX)
}

fn long_text(root: &Map<String, Value>, path: &str) -> String {
    bound(&text(root, path), TEXT_MAX)
}

/// `s` cut to at most `max` bytes at a character boundary.
pub(crate) fn bound(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

/// A page route without its query string or fragment.
fn route(url: &str) -> String {
    url.split(['?', '#']).next().unwrap_or_default().to_owned()
}

fn integer(root: &Map<String, Value>, path: &str) -> Option<i64> {
    match get(root, path)? {
        Value::Number(n) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.is_finite()).map(|f| f as i64)),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A count that must not be negative.
fn count(root: &Map<String, Value>, path: &str) -> Result<Option<i64>, LineError> {
    match integer(root, path) {
        Some(n) if n < 0 => Err(LineError::malformed(format!("{path} is negative ({n})"))),
        other => Ok(other),
    }
}

/// A nanosecond duration at `path`, in ms; negative or longer than a day refuses the line.
fn duration(root: &Map<String, Value>, path: &str) -> Result<Option<f64>, LineError> {
    let ns = match get(root, path) {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Number(n)) => n.as_f64(),
        Some(_) => None,
    };
    let Some(ns) = ns.filter(|n| n.is_finite()) else {
        return Err(LineError::malformed(format!("{path} is not a number")));
    };
    if ns < 0.0 {
        return Err(LineError {
            reason: RejectReason::NegativeDuration,
            message: format!("{path} is negative ({ns} ns)"),
        });
    }
    if ns > DURATION_MAX_NS {
        return Err(LineError::malformed(format!(
            "{path} is longer than a day ({ns} ns)"
        )));
    }
    Ok(Some(ns / 1e6))
}

fn known(path: &str) -> bool {
    KNOWN.contains(&path)
}

/// Copies every field the model does not name into `out` as `dotted.path = text`.
fn flatten(
    object: &Map<String, Value>,
    prefix: &str,
    depth: usize,
    out: &mut Vec<(String, String)>,
) {
    for (key, value) in object {
        if out.len() > ATTRIBUTES_MAX {
            return;
        }
        let path = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        if known(&path) {
            continue;
        }
        match value {
            Value::Object(inner) if depth + 1 < FLATTEN_DEPTH => {
                flatten(inner, &path, depth + 1, out)
            }
            Value::Array(items) if is_nanoseconds(&path) => {
                // `_dd.page_states`: offsets in ns, kept as ms.
                let converted: Vec<Value> = items.iter().map(|i| to_ms_value(i, &path)).collect();
                out.push((path, bound(&Value::Array(converted).to_string(), TEXT_MAX)));
            }
            Value::Null => {}
            Value::String(s) => out.push((path, bound(s, TEXT_MAX))),
            Value::Number(n) if is_nanoseconds(&path) => {
                let ms = n.as_f64().map(|ns| ns / 1e6).unwrap_or_default();
                out.push((path, format_ms(ms)));
            }
            other => out.push((path, bound(&other.to_string(), TEXT_MAX))),
        }
    }
}

fn is_nanoseconds(path: &str) -> bool {
    path == "_dd.page_states" || NANOSECOND_PREFIXES.iter().any(|p| path.starts_with(p))
}

/// An element of a nanosecond array with its `start` (or the number itself) in ms.
fn to_ms_value(item: &Value, path: &str) -> Value {
    match item {
        Value::Object(map) => {
            let mut map = map.clone();
            if let Some(start) = map.get_mut("start") {
                if let Some(ns) = start.as_f64() {
                    *start = serde_json::json!(ns / 1e6);
                }
            }
            Value::Object(map)
        }
        Value::Number(n) => n
            .as_f64()
            .map(|ns| serde_json::json!(ns / 1e6))
            .unwrap_or_else(|| Value::String(path.to_owned())),
        other => other.clone(),
    }
}

fn format_ms(ms: f64) -> String {
    if ms.fract() == 0.0 && ms.abs() < 1e15 {
        format!("{}", ms as i64)
    } else {
        format!("{ms}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context() -> BatchContext {
        BatchContext::new(
            "miniapp",
            "sdk_version:0.1.0,api:miniapp,env:sim,service:shop,version:1.4.2",
        )
    }

    const VIEW: &str = r#"{"date":1700000000000,"type":"view","_dd":{"document_version":3,"page_states":[{"state":"hidden","start":4590000000}]},"view":{"id":"v1","url":"pages/a/a?x=1","name":"pages/a/a","loading_type":"initial_load","first_render":126000000,"app_launch":1392000000,"setdata":{"count":2,"duration":4000000},"first_render_detail":{"view_layer_ready_time":60000000}},"session":{"id":"s1"},"usr":{"id":"u1","anonymous_id":"a1"},"context":{"channel":"moments"},"source":"miniprogram","device":{"model":"iPhone"}}"#;

    #[test]
    fn a_view_is_decoded_in_milliseconds_with_unknown_fields_kept() {
        let batch = decode_ndjson(VIEW.as_bytes(), &context());
        assert_eq!(batch.rejected.total(), 0, "{:?}", batch.first_error);
        let event = &batch.events[0];
        assert_eq!(event.kind(), RumEventType::View);
        assert_eq!(
            (
                event.service.as_str(),
                event.version.as_str(),
                event.env.as_str()
            ),
            ("shop", "1.4.2", "sim")
        );
        assert_eq!(event.id, "v1");
        assert_eq!(event.document_version, Some(3));
        let timings = event.view_timings().unwrap();
        assert_eq!(timings.first_render_ms, Some(126.0));
        assert_eq!(timings.app_launch_ms, Some(1392.0));
        assert_eq!(timings.setdata_count, Some(2));
        assert_eq!(timings.setdata_duration_ms, Some(4.0));
        let attr = |k: &str| {
            event
                .attributes
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(attr("context.channel"), Some("moments"));
        assert_eq!(attr("device.model"), Some("iPhone"));
        assert_eq!(
            attr("view.first_render_detail.view_layer_ready_time"),
            Some("60")
        );
        assert_eq!(
            attr("_dd.page_states"),
            Some(r#"[{"start":4590.0,"state":"hidden"}]"#)
        );
        assert_eq!(
            attr("view.first_render"),
            None,
            "named fields are not repeated"
        );
    }

    #[test]
    fn ddtags_fill_what_the_event_lacks() {
        let line =
            r#"{"date":1,"type":"custom","event":{"id":"e1","name":"paid"},"version":"2.0"}"#;
        let batch = decode_ndjson(line.as_bytes(), &context());
        let event = &batch.events[0];
        assert_eq!(
            (event.service.as_str(), event.version.as_str()),
            ("shop", "2.0")
        );
        assert_eq!(event.source, "miniapp");
        assert_eq!(event.name, "paid");
    }

    #[test]
    fn a_resource_gets_hex_trace_ids() {
        let line = r#"{"date":1,"type":"resource","service":"shop","_dd":{"trace_id":"6181618604699066953","span_id":"5287968358521447938"},"resource":{"id":"r1","type":"xhr","method":"get","url":"https://api/x?y=1","status_code":200,"duration":210000000}}"#;
        let event = &decode_ndjson(line.as_bytes(), &context()).events[0];
        assert_eq!(event.trace_id, "000000000000000055c9855e8e08a249");
        assert_eq!(event.dd_trace_id, "6181618604699066953");
        assert_eq!(event.span_id, "4962a334892d2602");
        assert_eq!(event.duration_ms, Some(210.0));
        assert_eq!(event.status, Some(200));
        match &event.detail {
            RumDetail::Resource(r) => assert_eq!(r.method, "GET"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn bad_lines_are_skipped_and_counted_by_reason() {
        let body = [
            VIEW,
            "not json",
            r#"{"date":1,"type":"resource","service":"s","resource":{"duration":-5}}"#,
            r#"{"date":1,"type":"resource","service":"s","resource":{"duration":1e30}}"#,
            r#"{"date":1,"type":"telepathy","service":"s"}"#,
            r#"{"type":"view","service":"s"}"#,
            "",
            r#"[1,2]"#,
        ]
        .join("\n");
        let batch = decode_ndjson(body.as_bytes(), &context());
        assert_eq!(batch.events.len(), 1);
        assert_eq!(batch.rejected.get(RejectReason::NegativeDuration), 1);
        assert_eq!(batch.rejected.get(RejectReason::Malformed), 5);
        let (line, message) = batch.first_error.unwrap();
        assert_eq!(line, 2);
        assert!(message.starts_with("not JSON"), "{message}");
    }

    #[test]
    fn deep_or_wide_events_stay_bounded() {
        let deep = format!(
            r#"{{"date":1,"type":"custom","service":"s","context":{}1{}}}"#,
            r#"{"a":"#.repeat(50),
            "}".repeat(50)
        );
        let event = &decode_ndjson(deep.as_bytes(), &context()).events[0];
        assert!(event.attributes.iter().all(|(_, v)| v.len() <= TEXT_MAX));
        let wide: String = (0..1000)
            .map(|i| format!(r#""k{i}":{i}"#))
            .collect::<Vec<_>>()
            .join(",");
        let line = format!(r#"{{"date":1,"type":"custom","service":"s","context":{{{wide}}}}}"#);
        let event = &decode_ndjson(line.as_bytes(), &context()).events[0];
        assert_eq!(event.attributes.len(), ATTRIBUTES_MAX + 1);
        // Nesting past serde_json's recursion limit is a bad line, not a crash.
        let abyss = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        let batch = decode_ndjson(abyss.as_bytes(), &context());
        assert_eq!(batch.rejected.get(RejectReason::Malformed), 1);
    }
}
