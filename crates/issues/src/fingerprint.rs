//! Fingerprint rule `fp1` (errors-and-sourcemaps.md §3.2): which occurrences are one issue.
//!
//! `fp = hex(sha256("fp1" ␟ service ␟ parts…))[..32]`, where parts are the first that applies of:
//! 1. the SDK's fingerprint: `custom, value`;
//! 2. network errors (`ajax`, `network`): `net, METHOD, host, path template, status class`;
//! 3. page not found: `404, path template`;
//! 4. a usable stack: `stack, kind, error type, module|function` of the top in-app frames (line
//!    and column never count; resolved names and files when a source map resolved them). Usable
//!    means at least one in-app frame is resolved or sits in an unbundled file;
//! 5. otherwise: `msg, kind, error type, normalised message`.
//!
//! The version is never part of the key, so a new build with the same bug is the same issue.
use crate::stack::{floor_char_boundary, unwrap_mini_program_error, Frame};
use regex::Regex;
use sha2::{Digest, Sha256};
use std::sync::LazyLock;

/// Normalised messages are cut to this many characters.
const NORM_MESSAGE_MAX_CHARS: usize = 256;
/// Only this much of a message is normalised (a 1 MB message costs no more).
const MESSAGE_SCAN_MAX_BYTES: usize = 4096;

/// Bundles WeChat and Alipay merge all code into: a frame there says nothing stable unless a
/// source map resolves it.
const BUNDLES: [&str; 6] = [
    "app-service.js",
    "appservice.app.js",
    "index.worker.js",
    "vendor.js",
    "vendors.js",
    "common.js",
];

/// A frame as fingerprinting sees it: resolved through a source map when one matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FingerprintFrame<'a> {
    /// The frame as parsed.
    pub frame: &'a Frame,
    /// The original function and file, when a source map resolved the frame.
    pub resolved: Option<(&'a str, &'a str)>,
}

/// What the fingerprint of one occurrence is computed from.
#[derive(Debug, Clone, Default)]
pub struct FingerprintInput<'a> {
    /// Service name.
    pub service: &'a str,
    /// The SDK's fingerprint (`error.fingerprint`), wins when non-empty.
    pub sdk_fingerprint: Option<&'a str>,
    /// `exception.type` / `error.source`.
    pub kind: &'a str,
    /// Error class.
    pub error_type: &'a str,
    /// The message.
    pub message: &'a str,
    /// Page path.
    pub page: &'a str,
    /// HTTP method of a network error, if tagged.
    pub http_method: Option<&'a str>,
    /// HTTP status of a network error, if tagged.
    pub http_status: Option<&'a str>,
    /// How many top in-app frames count.
    pub frames_considered: usize,
}

static ERR_TYPE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(?:Uncaught )?((?:[A-Za-z_$][\w$]*)?(?:Error|Exception)):").expect("valid regex")
});
static URL: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\x22]+").expect("valid regex"));
static EMAIL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"[\w.+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+").expect("valid regex")
});
static UUID: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b")
        .expect("valid regex")
});
static IPV4: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\b\d{1,3}(?:\.\d{1,3}){3}\b").expect("valid regex"));
static HEX: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?i)\b(?:0x)?[0-9a-f]{8,}\b").expect("valid regex"));
static QUOTED: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r#"'[^']*'|"[^"]*"|`[^`]*`"#).expect("valid regex"));
static NUMBER: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"-?\d+(?:\.\d+)?").expect("valid regex"));
static SPACES: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"\s+").expect("valid regex"));
static CONTENT_HASH: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\.[0-9a-f]{8,}").expect("valid regex"));
static ID_SEGMENT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)^(?:\d+|[0-9a-f]{8,}|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$",
    )
    .expect("valid regex")
});

/// The error class named at the start of `text` (`TypeError: …`), if any.
pub fn error_type_of(text: &str) -> Option<&str> {
    let text = unwrap_mini_program_error(text);
    ERR_TYPE
        .captures(text)
        .and_then(|c| c.get(1))
        .map(|m| m.as_str())
}

/// The message as grouping sees it: first line, wrappers and error class dropped, variable
/// parts replaced by `<url> <email> <uuid> <ip> <hex> <str> <n>`, spaces squeezed, 256 chars.
pub fn normalise_message(message: &str) -> String {
    let message = &message[..floor_char_boundary(message, MESSAGE_SCAN_MAX_BYTES)];
    let mut text = unwrap_mini_program_error(message)
        .lines()
        .next()
        .unwrap_or("")
        .trim();
    text = text.strip_prefix("Uncaught ").unwrap_or(text);
    if let Some(m) = ERR_TYPE.find(text) {
        text = text[m.end()..].trim_start();
    }
    let text = URL.replace_all(text, "<url>");
    let text = EMAIL.replace_all(&text, "<email>");
    let text = UUID.replace_all(&text, "<uuid>");
    let text = IPV4.replace_all(&text, "<ip>");
    let text = QUOTED.replace_all(&text, "<str>");
    let text = hex_ids(&text);
    let text = NUMBER.replace_all(&text, "<n>");
    let text = SPACES.replace_all(text.trim(), " ");
    text.chars().take(NORM_MESSAGE_MAX_CHARS).collect()
}

/// Hex runs of 8+ characters with both digits and letters (or a `0x` prefix) become `<hex>`;
/// plain words and plain numbers are left to the other rules.
fn hex_ids(text: &str) -> String {
    HEX.replace_all(text, |c: &regex::Captures<'_>| {
        let m = &c[0];
        let prefixed = m.starts_with("0x") || m.starts_with("0X");
        let digits = m.bytes().any(|b| b.is_ascii_digit());
        let letters = m.bytes().any(|b| b.is_ascii_alphabetic());
        if prefixed || (digits && letters) {
            "<hex>".to_string()
        } else {
            m.to_string()
        }
    })
    .into_owned()
}

/// A URL path with ids (`123`, hex ≥ 8, UUIDs) replaced by `{id}`, query dropped.
fn path_template(path: &str) -> String {
    let path = path.split(['?', '#']).next().unwrap_or("");
    path.split('/')
        .map(|seg| {
            if ID_SEGMENT.is_match(seg) {
                "{id}"
            } else {
                seg
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// `status` as a class: `fail` for none/0/text, else `4xx`, `5xx`, ...
fn status_class(status: Option<&str>) -> String {
    match status.map(str::trim).and_then(|s| s.parse::<u16>().ok()) {
        Some(code) if code >= 100 => format!("{}xx", code / 100),
        _ => "fail".to_string(),
    }
}

/// A module path as grouping sees it: no query, bundler scheme or content hash.
fn clean_module(file: &str) -> String {
    let file = file.split(['?', '#']).next().unwrap_or("");
    let file = file
        .strip_prefix("webpack://")
        .or_else(|| file.strip_prefix("app:///"))
        .unwrap_or(file);
    CONTENT_HASH.replace_all(file, "").into_owned()
}

fn is_bundle(file: &str) -> bool {
    let base = file.rsplit('/').next().unwrap_or(file);
    BUNDLES.contains(&base)
}

/// The kinds of errors that are about a request, not code.
fn is_network(kind: &str) -> bool {
    matches!(kind, "ajax" | "network")
}

fn is_page_not_found(kind: &str) -> bool {
    matches!(kind, "pageNotFound" | "page-not-found")
}

/// The parts the fingerprint hashes (after `fp1` and the service), for inspection and tests.
pub fn fingerprint_parts(
    input: &FingerprintInput<'_>,
    frames: &[FingerprintFrame<'_>],
) -> Vec<String> {
    if let Some(custom) = input
        .sdk_fingerprint
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        return vec!["custom".into(), custom.chars().take(512).collect()];
    }
    let message = &input.message[..floor_char_boundary(input.message, MESSAGE_SCAN_MAX_BYTES)];
    if is_network(input.kind) {
        let mut words = message.split_whitespace();
        let first = words.next().unwrap_or("");
        let method = input
            .http_method
            .filter(|m| !m.is_empty())
            .or_else(|| {
                first
                    .chars()
                    .all(|c| c.is_ascii_uppercase())
                    .then_some(first)
            })
            .unwrap_or("")
            .to_ascii_uppercase();
        let url = URL.find(message).map(|m| m.as_str()).unwrap_or("");
        let (host, path) = match url.split_once("://") {
            Some((_, rest)) => match rest.find('/') {
                Some(i) => (&rest[..i], &rest[i..]),
                None => (rest, ""),
            },
            None => ("", ""),
        };
        let status = input.http_status.filter(|s| !s.is_empty()).or_else(|| {
            message
                .rsplit_once("failed: ")
                .map(|(_, s)| s.split_whitespace().next().unwrap_or(""))
        });
        return vec![
            "net".into(),
            method,
            host.to_string(),
            path_template(path),
            status_class(status),
        ];
    }
    if is_page_not_found(input.kind) {
        let path = if input.page.is_empty() {
            message.rsplit_once(": ").map(|(_, p)| p).unwrap_or(message)
        } else {
            input.page
        };
        return vec!["404".into(), path_template(path.trim())];
    }
    let in_app: Vec<&FingerprintFrame<'_>> = frames.iter().filter(|f| f.frame.in_app).collect();
    let usable = in_app
        .iter()
        .any(|f| f.resolved.is_some() || !is_bundle(&f.frame.file));
    if usable {
        let mut parts = vec![
            "stack".into(),
            input.kind.to_string(),
            input.error_type.to_string(),
        ];
        for f in in_app.iter().take(input.frames_considered.max(1)) {
            let (function, file) = match f.resolved {
                Some((function, file)) if !function.is_empty() => (function, file),
                Some((_, file)) => (f.frame.function.as_str(), file),
                None => (f.frame.function.as_str(), f.frame.file.as_str()),
            };
            parts.push(format!("{}|{}", clean_module(file), function));
        }
        return parts;
    }
    vec![
        "msg".into(),
        input.kind.to_string(),
        input.error_type.to_string(),
        normalise_message(message),
    ]
}

/// The `fp1` fingerprint of one occurrence: 32 hex characters.
pub fn fingerprint(input: &FingerprintInput<'_>, frames: &[FingerprintFrame<'_>]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(b"fp1");
    for part in std::iter::once(input.service.to_string()).chain(fingerprint_parts(input, frames)) {
        hasher.update([0x1f]);
        hasher.update(part.as_bytes());
    }
    let digest = hasher.finalize();
    let mut hex = String::with_capacity(32);
    for byte in &digest[..16] {
        hex.push_str(&format!("{byte:02x}"));
    }
    hex
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_lose_their_variable_parts() {
        assert_eq!(
            normalise_message("TypeError: Cannot read properties of undefined (reading 'id')"),
            "Cannot read properties of undefined (reading <str>)"
        );
        assert_eq!(
            normalise_message("timeout of 10000ms exceeded"),
            "timeout of <n>ms exceeded"
        );
        assert_eq!(
            normalise_message(
                "order 5f3a9c0e1b2d failed for 3fa85f64-5717-4562-b3fc-2c963f66afa6 at https://api.example.com/o?id=7 from 10.0.0.12"
            ),
            "order <hex> failed for <uuid> at <url> from <ip>"
        );
        assert_eq!(
            normalise_message("MiniProgramError\nError: boom 42\nmore"),
            "boom <n>"
        );
        let long = "x".repeat(1_000_000);
        assert_eq!(
            normalise_message(&long).chars().count(),
            NORM_MESSAGE_MAX_CHARS
        );
    }

    #[test]
    fn error_types_come_from_the_header() {
        assert_eq!(error_type_of("TypeError: x"), Some("TypeError"));
        assert_eq!(
            error_type_of("MiniProgramError: RangeError: y"),
            Some("RangeError")
        );
        assert_eq!(error_type_of("network timeout"), None);
    }

    #[test]
    fn paths_become_templates() {
        assert_eq!(
            path_template("/api/orders/12345/items?x=1"),
            "/api/orders/{id}/items"
        );
        assert_eq!(
            path_template("/u/3fa85f64-5717-4562-b3fc-2c963f66afa6/a1b2c3d4e5"),
            "/u/{id}/{id}"
        );
        assert_eq!(status_class(Some("500")), "5xx");
        assert_eq!(status_class(Some("0")), "fail");
        assert_eq!(status_class(None), "fail");
        assert_eq!(
            clean_module("webpack://pages/index.3f9a1c2b7d.js?v=1"),
            "pages/index.js"
        );
    }
}
