//! From an error log record to an issue occurrence: which tags are read, how the stack is parsed
//! and resolved, and the fingerprint.
use crate::fingerprint::{error_type_of, fingerprint, FingerprintFrame, FingerprintInput};
use crate::sourcemaps::{MapSource, ResolvedFrame, Resolver, SourceMapLimits};
use crate::stack::{floor_char_boundary, unwrap_mini_program_error, Frame, FrameRules};
use skylark_core::{IssueOccurrence, LogRecord};

/// The log tags issues are built from. A log is an error occurrence when it has a non-empty
/// [`tags::EXCEPTION_TYPE`]; every other tag is optional. Tags are read from the stored record
/// first, then from the log's resource attributes.
pub mod tags {
    /// The error's kind (`js`, `promise`, `ajax`, `pageNotFound`; RUM `app`, `network`, ...).
    pub const EXCEPTION_TYPE: &str = "exception.type";
    /// The stack as the SDK printed it.
    pub const EXCEPTION_STACKTRACE: &str = "exception.stacktrace";
    /// The page the error happened on (else the record's endpoint).
    pub const PAGE_PATH: &str = "miniprogram.page.path";
    /// The application version.
    pub const SERVICE_VERSION: &str = "service.version";
    /// The SDK's own grouping key; wins over every other rule when present.
    pub const ERROR_FINGERPRINT: &str = "error.fingerprint";
    /// The RUM session.
    pub const SESSION_ID: &str = "session.id";
    /// The RUM session as the RUM intake tags its error logs.
    pub const RUM_SESSION_ID: &str = "rum.session.id";
    /// The user.
    pub const USER_ID: &str = "user.id";
    /// HTTP method of a failed request (`http.request.method`, or LAL's `http.method`).
    pub const HTTP_METHODS: [&str; 2] = ["http.request.method", "http.method"];
    /// HTTP status of a failed request (`http.response.status_code`, or LAL's `http.status`).
    pub const HTTP_STATUSES: [&str; 2] = ["http.response.status_code", "http.status"];
}

/// Messages kept per occurrence are cut to this many bytes.
const MESSAGE_KEPT_MAX_BYTES: usize = 4096;
/// Stacks kept per occurrence are cut to this many bytes.
const STACK_KEPT_MAX_BYTES: usize = 16 * 1024;
/// Titles are cut to this many characters.
const TITLE_MAX_CHARS: usize = 200;

/// How occurrences are grouped.
#[derive(Debug, Clone)]
pub struct GrouperSettings {
    /// Top in-app frames that make the fingerprint.
    pub frames_considered: usize,
    /// Extra file prefixes stripped before matching maps and grouping.
    pub strip_prefixes: Vec<String>,
    /// Bounds on maps.
    pub limits: SourceMapLimits,
    /// Bytes of decoded maps kept in memory (by map size).
    pub map_cache_bytes: usize,
}

impl Default for GrouperSettings {
    fn default() -> Self {
        GrouperSettings {
            frames_considered: 5,
            strip_prefixes: Vec::new(),
            limits: SourceMapLimits::default(),
            map_cache_bytes: 128 * 1024 * 1024,
        }
    }
}

/// A frame and, when a map matched, where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedStackFrame {
    /// The frame as parsed.
    pub frame: Frame,
    /// Its original position.
    pub resolved: Option<ResolvedFrame>,
}

/// Turns error log records into issue occurrences.
pub struct Grouper {
    rules: FrameRules,
    frames_considered: usize,
    resolver: Resolver,
}

fn tag<'a>(record: &'a LogRecord, extra: &'a [(String, String)], key: &str) -> Option<&'a str> {
    record
        .tags
        .iter()
        .chain(extra)
        .find(|(k, v)| k == key && !v.is_empty())
        .map(|(_, v)| v.as_str())
}

fn cut(text: &str, max: usize) -> String {
    text[..floor_char_boundary(text, max)].to_string()
}

impl Grouper {
    /// A grouper with these settings.
    pub fn new(settings: GrouperSettings) -> Self {
        Grouper {
            rules: FrameRules {
                strip_prefixes: settings.strip_prefixes,
            },
            frames_considered: settings.frames_considered.max(1),
            resolver: Resolver::new(settings.limits, settings.map_cache_bytes),
        }
    }

    /// The resolver (to invalidate after uploads).
    pub fn resolver(&self) -> &Resolver {
        &self.resolver
    }

    /// Frames of `stack`, each resolved through the maps of `service` at `version` when one
    /// matches the frame's file.
    pub fn resolve_stack(
        &self,
        maps: &dyn MapSource,
        service: &str,
        version: &str,
        stack: &str,
    ) -> Vec<ResolvedStackFrame> {
        self.rules
            .parse(stack)
            .frames
            .into_iter()
            .map(|frame| {
                // Runtime and library frames have no user-uploaded maps: no lookups for them.
                let resolved = if frame.in_app {
                    self.resolver.resolve(maps, service, version, &frame)
                } else {
                    None
                };
                ResolvedStackFrame { frame, resolved }
            })
            .collect()
    }

    /// The occurrence `record` is, if it is an error log (see [`tags`]); `source_attributes` are
    /// the log's resource attributes (where SkyAPM puts `service.version`).
    pub fn occurrence(
        &self,
        maps: &dyn MapSource,
        record: &LogRecord,
        source_attributes: &[(String, String)],
    ) -> Option<IssueOccurrence> {
        let kind = tag(record, source_attributes, tags::EXCEPTION_TYPE)?;
        let stack = tag(record, source_attributes, tags::EXCEPTION_STACKTRACE).unwrap_or("");
        let version = tag(record, source_attributes, tags::SERVICE_VERSION).unwrap_or("");
        let page = tag(record, source_attributes, tags::PAGE_PATH).unwrap_or(&record.endpoint);
        let message = unwrap_mini_program_error(&record.content);
        let message = &message[..floor_char_boundary(message, MESSAGE_KEPT_MAX_BYTES)];
        let frames = self.resolve_stack(maps, &record.service, version, stack);
        let header = self.rules.parse(stack).header;
        let error_type = header
            .first()
            .and_then(|h| error_type_of(h))
            .or_else(|| error_type_of(message))
            .unwrap_or("Error")
            .to_string();
        let first_line = message.lines().next().unwrap_or("").trim();
        let first_line = first_line
            .strip_prefix(&format!("{error_type}:"))
            .map(str::trim_start)
            .unwrap_or(first_line);
        let title: String = format!("{error_type}: {first_line}")
            .chars()
            .take(TITLE_MAX_CHARS)
            .collect();
        let culprit = frames
            .iter()
            .find(|f| f.frame.in_app)
            .map(|f| match &f.resolved {
                Some(r) => format!("{} ({})", r.function, r.file),
                None => format!("{} ({})", f.frame.function, f.frame.file),
            })
            .unwrap_or_default();
        let fp_frames: Vec<FingerprintFrame<'_>> = frames
            .iter()
            .map(|f| FingerprintFrame {
                frame: &f.frame,
                resolved: f
                    .resolved
                    .as_ref()
                    .map(|r| (r.function.as_str(), r.file.as_str())),
            })
            .collect();
        let http_method = tags::HTTP_METHODS
            .iter()
            .find_map(|k| tag(record, source_attributes, k));
        let http_status = tags::HTTP_STATUSES
            .iter()
            .find_map(|k| tag(record, source_attributes, k));
        let input = FingerprintInput {
            service: &record.service,
            sdk_fingerprint: tag(record, source_attributes, tags::ERROR_FINGERPRINT),
            kind,
            error_type: &error_type,
            message,
            page,
            http_method,
            http_status,
            frames_considered: self.frames_considered,
        };
        Some(IssueOccurrence {
            fingerprint: fingerprint(&input, &fp_frames),
            service: record.service.clone(),
            layer: record.layer,
            kind: kind.to_string(),
            error_type: error_type.clone(),
            title,
            culprit,
            time_ms: record.timestamp_ms,
            version: version.to_string(),
            page: page.to_string(),
            message: message.to_string(),
            stack: cut(stack, STACK_KEPT_MAX_BYTES),
            session_id: tag(record, source_attributes, tags::SESSION_ID)
                .or_else(|| tag(record, source_attributes, tags::RUM_SESSION_ID))
                .map(str::to_string),
            user_id: tag(record, source_attributes, tags::USER_ID).map(str::to_string),
            trace_id: record.trace_id.clone(),
        })
    }
}
