//! From an error log record to an issue occurrence: which tags are read, how the stack is parsed
//! and resolved, and the fingerprint.
use crate::fingerprint::{error_type_of, fingerprint, FingerprintFrame, FingerprintInput};
use crate::sourcemaps::{MapSource, ResolvedFrame, Resolver, SourceMapLimits};
use crate::stack::{floor_char_boundary, unwrap_mini_program_error, Frame, FrameRules};
use parking_lot::Mutex;
use skylark_core::{IssueOccurrence, LogRecord};
use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, RandomState};
use std::time::{Duration, Instant};

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
/// Bytes of inputs the derived-parts memo holds before it starts over.
const DERIVED_MEMO_MAX_BYTES: usize = 4 * 1024 * 1024;
/// Occurrences whose stack and message together are longer than this are not memoised (one
/// would crowd out hundreds of common ones).
const DERIVED_MEMO_ENTRY_MAX_BYTES: usize = 16 * 1024;

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
    /// How long a memoised fingerprint, title and culprit are reused for the same error. Maps
    /// another node uploads are seen after this (uploads through this node clear it at once).
    pub memo_ttl: Duration,
}

impl Default for GrouperSettings {
    fn default() -> Self {
        GrouperSettings {
            frames_considered: 5,
            strip_prefixes: Vec::new(),
            limits: SourceMapLimits::default(),
            map_cache_bytes: 128 * 1024 * 1024,
            memo_ttl: Duration::from_secs(10),
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
    memo: Mutex<DerivedMemo>,
}

/// What an occurrence's grouping reads from its error log: the same inputs always give the same
/// [`Derived`] parts while the maps stay the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct DerivedInput<'a> {
    service: &'a str,
    version: &'a str,
    kind: &'a str,
    stack: &'a str,
    message: &'a str,
    page: &'a str,
    sdk_fingerprint: Option<&'a str>,
    http_method: Option<&'a str>,
    http_status: Option<&'a str>,
}

/// [`DerivedInput`] kept in the memo.
#[derive(Debug)]
struct OwnedDerivedInput {
    fields: [String; 6],
    optional: [Option<String>; 3],
}

impl DerivedInput<'_> {
    /// The inputs as the memo keeps them: the texts, then the optional texts.
    fn parts(&self) -> ([&str; 6], [Option<&str>; 3]) {
        (
            [
                self.service,
                self.version,
                self.kind,
                self.stack,
                self.message,
                self.page,
            ],
            [self.sdk_fingerprint, self.http_method, self.http_status],
        )
    }
}

impl OwnedDerivedInput {
    fn new(input: &DerivedInput<'_>) -> Self {
        let (fields, optional) = input.parts();
        OwnedDerivedInput {
            fields: fields.map(str::to_string),
            optional: optional.map(|v| v.map(str::to_string)),
        }
    }

    fn matches(&self, input: &DerivedInput<'_>) -> bool {
        let (fields, optional) = input.parts();
        self.fields.iter().zip(fields).all(|(a, b)| a == b)
            && self
                .optional
                .iter()
                .zip(optional)
                .all(|(a, b)| a.as_deref() == b)
    }

    fn bytes(&self) -> usize {
        self.fields.iter().map(String::len).sum::<usize>()
            + self
                .optional
                .iter()
                .flatten()
                .map(String::len)
                .sum::<usize>()
    }
}

/// The parts of an occurrence that parsing, resolving and hashing give.
#[derive(Debug, Clone)]
struct Derived {
    fingerprint: String,
    error_type: String,
    title: String,
    culprit: String,
}

/// Derived parts of recent errors: a crash loop sends the same error from thousands of devices,
/// and parsing, map lookups, message normalisation and SHA-256 are most of an error log's cost.
/// Entries are checked field by field, so a hash collision cannot merge two issues.
#[derive(Debug)]
struct DerivedMemo {
    hasher: RandomState,
    entries: HashMap<u64, Vec<(OwnedDerivedInput, Derived)>>,
    bytes: usize,
    started: Instant,
    ttl: Duration,
}

impl DerivedMemo {
    fn new(ttl: Duration) -> Self {
        DerivedMemo {
            hasher: RandomState::new(),
            entries: HashMap::new(),
            bytes: 0,
            started: Instant::now(),
            ttl,
        }
    }

    fn clear(&mut self) {
        self.entries.clear();
        self.bytes = 0;
        self.started = Instant::now();
    }

    fn hash(&self, input: &DerivedInput<'_>) -> u64 {
        self.hasher.hash_one(input)
    }

    fn get(&mut self, hash: u64, input: &DerivedInput<'_>) -> Option<Derived> {
        if self.started.elapsed() >= self.ttl {
            self.clear();
            return None;
        }
        self.entries
            .get(&hash)?
            .iter()
            .find(|(owned, _)| owned.matches(input))
            .map(|(_, derived)| derived.clone())
    }

    fn put(&mut self, hash: u64, input: &DerivedInput<'_>, derived: &Derived) {
        let owned = OwnedDerivedInput::new(input);
        let bytes = owned.bytes() + derived.title.len() + derived.culprit.len() + 128;
        if self.bytes + bytes > DERIVED_MEMO_MAX_BYTES {
            self.clear();
        }
        self.bytes += bytes;
        self.entries
            .entry(hash)
            .or_default()
            .push((owned, derived.clone()));
    }
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
            memo: Mutex::new(DerivedMemo::new(settings.memo_ttl)),
        }
    }

    /// The resolver.
    pub fn resolver(&self) -> &Resolver {
        &self.resolver
    }

    /// Forgets decoded maps and every memoised fingerprint (after an upload or delete changed
    /// which maps storage holds).
    pub fn invalidate(&self) {
        self.resolver.invalidate();
        self.memo.lock().clear();
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
        self.resolve_frames(maps, service, version, self.rules.parse(stack).frames)
    }

    /// `frames`, each resolved as [`Grouper::resolve_stack`] does.
    fn resolve_frames(
        &self,
        maps: &dyn MapSource,
        service: &str,
        version: &str,
        frames: Vec<Frame>,
    ) -> Vec<ResolvedStackFrame> {
        frames
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
        let input = DerivedInput {
            service: &record.service,
            version,
            kind,
            stack,
            message,
            page,
            sdk_fingerprint: tag(record, source_attributes, tags::ERROR_FINGERPRINT),
            http_method: tags::HTTP_METHODS
                .iter()
                .find_map(|k| tag(record, source_attributes, k)),
            http_status: tags::HTTP_STATUSES
                .iter()
                .find_map(|k| tag(record, source_attributes, k)),
        };
        let derived = if stack.len() + message.len() > DERIVED_MEMO_ENTRY_MAX_BYTES {
            self.derive(maps, &input)
        } else {
            let (hash, memoised) = {
                let mut memo = self.memo.lock();
                let hash = memo.hash(&input);
                (hash, memo.get(hash, &input))
            };
            match memoised {
                Some(derived) => derived,
                None => {
                    let derived = self.derive(maps, &input);
                    self.memo.lock().put(hash, &input, &derived);
                    derived
                }
            }
        };
        let Derived {
            fingerprint,
            error_type,
            title,
            culprit,
        } = derived;
        Some(IssueOccurrence {
            fingerprint,
            service: record.service.clone(),
            layer: record.layer,
            kind: kind.to_string(),
            error_type,
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

    /// Fingerprint, error type, title and culprit of `input`: the stack parsed and resolved
    /// through the maps, the message normalised, the parts hashed.
    fn derive(&self, maps: &dyn MapSource, input: &DerivedInput<'_>) -> Derived {
        let parsed = self.rules.parse(input.stack);
        let frames = self.resolve_frames(maps, input.service, input.version, parsed.frames);
        let error_type = parsed
            .header
            .first()
            .and_then(|h| error_type_of(h))
            .or_else(|| error_type_of(input.message))
            .unwrap_or("Error")
            .to_string();
        let first_line = input.message.lines().next().unwrap_or("").trim();
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
        let fingerprint_input = FingerprintInput {
            service: input.service,
            sdk_fingerprint: input.sdk_fingerprint,
            kind: input.kind,
            error_type: &error_type,
            message: input.message,
            page: input.page,
            http_method: input.http_method,
            http_status: input.http_status,
            frames_considered: self.frames_considered,
        };
        Derived {
            fingerprint: fingerprint(&fingerprint_input, &fp_frames),
            error_type,
            title,
            culprit,
        }
    }
}
