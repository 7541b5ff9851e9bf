//! Stack traces as mini programs print them (errors-and-sourcemaps.md §1): V8 (`at FN (FILE:L:C)`,
//! `at FILE:L:C`, Flashcat's rewritten `at FN @ FILE:L:C`) and JavaScriptCore (`FN@FILE:L:C`),
//! split into frames with the file normalised (§2.3) and marked in-app or framework (§1.5).

/// Bytes of a stack that are looked at; the rest is ignored (a 100k-line stack costs no more
/// than this).
pub const STACK_SCAN_MAX_BYTES: usize = 64 * 1024;
/// Frames kept per stack.
pub const STACK_FRAMES_MAX: usize = 50;
/// Longer lines are not frames (and are cut when kept as header text).
const LINE_MAX_BYTES: usize = 2048;

/// One stack frame. Line and column are 1-based, as stack traces print them.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Frame {
    /// Function name as printed (`""` for anonymous frames).
    pub function: String,
    /// The file as printed (query string included).
    pub raw_file: String,
    /// The file with URL schemes, dev-server hosts and container prefixes stripped.
    pub file: String,
    /// 1-based line.
    pub line: Option<u32>,
    /// 1-based column.
    pub column: Option<u32>,
    /// Whether the frame is the application's code (not the runtime's or a library's).
    pub in_app: bool,
}

/// A parsed stack: the header lines before the first frame, and the frames.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ParsedStack {
    /// Text lines before the first frame (`TypeError: ...`), a repeated one dropped.
    pub header: Vec<String>,
    /// Frames, innermost first, at most [`STACK_FRAMES_MAX`].
    pub frames: Vec<Frame>,
}

/// How file names are normalised and what counts as in-app.
#[derive(Debug, Clone, Default)]
pub struct FrameRules {
    /// Extra prefixes stripped from file names after the built-in ones (from configuration).
    pub strip_prefixes: Vec<String>,
}

/// Built-in prefixes stripped from frame files, in order, repeatedly (§2.3).
const STRIP_PREFIXES: [&str; 8] = [
    "weapp:///",
    "https://usr/",
    "https://servicewechat.qq.com/",
    "https://appx/",
    "app:///",
    "appservice/",
    "app-service/",
    "WAService/",
];

/// Basenames of the runtimes' own scripts.
const FRAMEWORK_BASENAMES: [&str; 4] = [
    "WAService.js",
    "WASubContext.js",
    "WAServiceMainContext.js",
    "asdebug.js",
];

/// Raw-file prefixes of code that is not the application's.
const FRAMEWORK_PREFIXES: [&str; 5] = [
    "https://lib/",
    "__dev__/",
    "file://",
    "node:",
    "plugin-private://",
];

/// Bundler output that holds libraries, not the application's code.
const FRAMEWORK_FILES: [&str; 4] = ["taro.js", "runtime.js", "vendors.js", "common/vendor.js"];

impl FrameRules {
    /// `raw` without query, fragment, scheme/host and container prefixes.
    pub fn normalise_file(&self, raw: &str) -> String {
        let mut file = raw;
        if let Some(i) = file.find(['?', '#']) {
            file = &file[..i];
        }
        loop {
            let before = file.len();
            for prefix in STRIP_PREFIXES {
                if let Some(rest) = file.strip_prefix(prefix) {
                    file = rest.trim_start_matches('/');
                }
            }
            file = strip_dev_server(file);
            for prefix in &self.strip_prefixes {
                if !prefix.is_empty() {
                    if let Some(rest) = file.strip_prefix(prefix.as_str()) {
                        file = rest.trim_start_matches('/');
                    }
                }
            }
            if file.len() == before {
                break;
            }
        }
        file.to_string()
    }

    /// Whether a frame in `raw` (normalised to `file`) is the application's code (§1.5).
    pub fn is_in_app(&self, raw: &str, file: &str) -> bool {
        if raw.is_empty() || raw == "[native code]" || file.is_empty() {
            return false;
        }
        if FRAMEWORK_PREFIXES
            .iter()
            .any(|p| raw.starts_with(p) || file.starts_with(p))
        {
            return false;
        }
        let base = file.rsplit('/').next().unwrap_or(file);
        if FRAMEWORK_BASENAMES.contains(&base)
            || (base.starts_with("af-appx") && base.ends_with(".js"))
        {
            return false;
        }
        let under =
            |dir: &str| file.starts_with(&format!("{dir}/")) || file.contains(&format!("/{dir}/"));
        if under("node_modules") || under("miniprogram_npm") || under("__dev__") {
            return false;
        }
        !FRAMEWORK_FILES.contains(&file)
    }

    /// Parses `stack` into header lines and frames, looking at most at
    /// [`STACK_SCAN_MAX_BYTES`] and keeping at most [`STACK_FRAMES_MAX`] frames.
    pub fn parse(&self, stack: &str) -> ParsedStack {
        let scanned = &stack[..floor_char_boundary(stack, STACK_SCAN_MAX_BYTES)];
        let mut parsed = ParsedStack::default();
        for line in scanned.lines() {
            if parsed.frames.len() >= STACK_FRAMES_MAX {
                break;
            }
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            match parse_frame_line(line) {
                Some(FrameLine::Frame { function, location }) => {
                    let (raw_file, line_no, column) = split_location(location);
                    let file = self.normalise_file(raw_file);
                    let in_app = self.is_in_app(raw_file, &file);
                    parsed.frames.push(Frame {
                        function: clean_function(function),
                        raw_file: raw_file.to_string(),
                        file,
                        line: line_no,
                        column,
                        in_app,
                    });
                }
                Some(FrameLine::Noise) => {}
                None if parsed.frames.is_empty() => {
                    let text = unwrap_mini_program_error(line);
                    let text = &text[..floor_char_boundary(text, LINE_MAX_BYTES)];
                    if text.is_empty() {
                        continue;
                    }
                    // WeChat's onError repeats the message before the `TypeError: message` line.
                    let repeated = parsed.header.iter().any(|h| {
                        h == text
                            || text.ends_with(&format!(": {h}"))
                            || h.ends_with(&format!(": {text}"))
                    });
                    if !repeated {
                        parsed.header.push(text.to_string());
                    }
                }
                None => {}
            }
        }
        parsed
    }
}

enum FrameLine<'a> {
    Frame {
        function: &'a str,
        location: &'a str,
    },
    /// A line that is part of the stack but names no code (`@[native code]`, `global code@`).
    Noise,
}

fn parse_frame_line(line: &str) -> Option<FrameLine<'_>> {
    if line.len() > LINE_MAX_BYTES {
        return None;
    }
    if let Some(rest) = line.strip_prefix("at ") {
        let rest = rest.trim();
        let rest = rest.strip_prefix("async ").unwrap_or(rest);
        let rest = rest.strip_prefix("new ").unwrap_or(rest);
        // Flashcat's rewritten form: `at FN @ FILE:L:C`.
        if let Some((function, location)) = rest.split_once(" @ ") {
            return Some(FrameLine::Frame {
                function: function.trim(),
                location: location.trim(),
            });
        }
        if let Some(inner) = rest.strip_suffix(')') {
            if let Some(open) = inner.rfind(" (") {
                let location = &inner[open + 2..];
                if location == "native" || location == "<anonymous>" {
                    return Some(FrameLine::Noise);
                }
                return Some(FrameLine::Frame {
                    function: inner[..open].trim(),
                    location,
                });
            }
        }
        if has_position(rest) || rest.contains('/') || rest.ends_with(".js") {
            return Some(FrameLine::Frame {
                function: "",
                location: rest,
            });
        }
        return None;
    }
    // JavaScriptCore: `FN@FILE:L:C`, `@FILE:L:C`; `@[native code]`, `global code@` are noise.
    let (function, location) = line.split_once('@')?;
    if function.chars().any(char::is_whitespace) && function != "global code" {
        return None;
    }
    if location.is_empty() || location == "[native code]" {
        return Some(FrameLine::Noise);
    }
    if !has_position(location) {
        return None;
    }
    Some(FrameLine::Frame { function, location })
}

/// Whether `location` ends with `:LINE` (and maybe `:COLUMN`).
fn has_position(location: &str) -> bool {
    split_location(location).1.is_some()
}

/// `FILE:L:C` → (FILE, L, C); the numbers are taken from the end, so a query string or a port in
/// FILE is kept.
fn split_location(location: &str) -> (&str, Option<u32>, Option<u32>) {
    let trailing_number = |s: &str| -> Option<(usize, u32)> {
        let (head, tail) = s.rsplit_once(':')?;
        if tail.is_empty() || !tail.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        Some((head.len(), tail.parse().ok()?))
    };
    match trailing_number(location) {
        None => (location, None, None),
        Some((end, last)) => {
            let head = &location[..end];
            match trailing_number(head) {
                Some((end2, line)) if !head[..end2].is_empty() => {
                    (&head[..end2], Some(line), Some(last))
                }
                _ => (head, Some(last), None),
            }
        }
    }
}

/// The function name without `Object.`/`[as x]` decorations that differ between runtimes.
fn clean_function(function: &str) -> String {
    let mut f = function.trim();
    if let Some(i) = f.find(" [as ") {
        f = &f[..i];
    }
    if f == "<anonymous>" || f == "global code" {
        return String::new();
    }
    f.strip_prefix("Object.").unwrap_or(f).to_string()
}

/// `MiniProgramError` wrapping removed (WeChat tools prefix it to the message).
pub(crate) fn unwrap_mini_program_error(text: &str) -> &str {
    let text = text.trim();
    match text.strip_prefix("MiniProgramError") {
        Some(rest) => rest.trim_start_matches([':', ' ', '\n', '\r']),
        None => text,
    }
}

/// `http://127.0.0.1:PORT/` or `http://localhost:PORT/` with an optional `appservice/`.
fn strip_dev_server(file: &str) -> &str {
    for scheme in ["http://", "https://"] {
        let Some(rest) = file.strip_prefix(scheme) else {
            continue;
        };
        let Some((host, path)) = rest.split_once('/') else {
            continue;
        };
        let name = host.split(':').next().unwrap_or(host);
        if name == "127.0.0.1" || name == "localhost" {
            return path.strip_prefix("appservice/").unwrap_or(path);
        }
    }
    file
}

/// The largest char boundary at or below `max` (`str::floor_char_boundary` is unstable).
pub(crate) fn floor_char_boundary(s: &str, max: usize) -> usize {
    if s.len() <= max {
        return s.len();
    }
    let mut i = max;
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(stack: &str) -> ParsedStack {
        FrameRules::default().parse(stack)
    }

    #[test]
    fn locations_keep_query_strings_and_ports() {
        assert_eq!(
            split_location("http://127.0.0.1:18025/appservice/__dev__/WASubContext.js?t=wechat&v=3.14.2:1:356138"),
            ("http://127.0.0.1:18025/appservice/__dev__/WASubContext.js?t=wechat&v=3.14.2", Some(1), Some(356138))
        );
        assert_eq!(
            split_location("WAService.js:19"),
            ("WAService.js", Some(19), None)
        );
        assert_eq!(
            split_location("appservice?t=1534184446171:1725"),
            ("appservice?t=1534184446171", Some(1725), None)
        );
    }

    #[test]
    fn a_huge_stack_is_bounded() {
        let stack = "    at f (pages/a.js:1:1)\n".repeat(100_000);
        let parsed = parse(&stack);
        assert_eq!(parsed.frames.len(), STACK_FRAMES_MAX);
        let junk = "x".repeat(1_000_000);
        let parsed = parse(&junk);
        assert!(parsed.frames.is_empty());
        assert!(parsed.header[0].len() <= LINE_MAX_BYTES);
    }
}
