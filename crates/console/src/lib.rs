//! The Skylark console: the pages SkyWalking's UIs lack (RUM overview, sessions and their
//! timelines, error issues, trace lookup), served at `/console/` on the REST port.
//!
//! Every page is the same small server-rendered shell naming its page; the page's plain-JS file
//! reads Skylark's own `/graphql` (same origin) and draws the page. Assets are embedded in the
//! binary, so nothing is fetched from elsewhere and no JS toolchain is involved.
#![warn(missing_docs, unreachable_pub)]

use axum::extract::Path;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use std::sync::OnceLock;

/// Where the console is mounted.
pub const BASE: &str = "/console";

/// The shell every page is served in; `{{…}}` markers are replaced per page.
const SHELL: &str = include_str!("../assets/shell.html");

/// Scripts run on every page before the page's own.
const COMMON_SCRIPTS: [&str; 2] = ["core.js", "charts.js"];

/// Embedded assets: name, content type, body.
const ASSETS: [(&str, &str, &str); 8] = [
    (
        "console.css",
        "text/css; charset=utf-8",
        include_str!("../assets/console.css"),
    ),
    ("core.js", JS, include_str!("../assets/core.js")),
    ("charts.js", JS, include_str!("../assets/charts.js")),
    ("overview.js", JS, include_str!("../assets/overview.js")),
    ("sessions.js", JS, include_str!("../assets/sessions.js")),
    ("timeline.js", JS, include_str!("../assets/timeline.js")),
    ("issues.js", JS, include_str!("../assets/issues.js")),
    ("trace.js", JS, include_str!("../assets/trace.js")),
];

const JS: &str = "text/javascript; charset=utf-8";

/// Only this origin's scripts, styles and GraphQL: the console works offline and an injected
/// string can never load or run anything.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// One page of the console.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Page {
    Overview,
    Sessions,
    Session,
    Issues,
    Issue,
    Trace,
    NotFound,
}

impl Page {
    /// The name the shell and the scripts know the page by.
    fn name(self) -> &'static str {
        match self {
            Page::Overview => "overview",
            Page::Sessions => "sessions",
            Page::Session => "session",
            Page::Issues => "issues",
            Page::Issue => "issue",
            Page::Trace => "trace",
            Page::NotFound => "notfound",
        }
    }

    fn title(self) -> &'static str {
        match self {
            Page::Overview => "Overview",
            Page::Sessions => "Sessions",
            Page::Session => "Session",
            Page::Issues => "Issues",
            Page::Issue => "Issue",
            Page::Trace => "Trace lookup",
            Page::NotFound => "Not found",
        }
    }

    fn script(self) -> Option<&'static str> {
        match self {
            Page::Overview => Some("overview.js"),
            Page::Sessions => Some("sessions.js"),
            Page::Session => Some("timeline.js"),
            Page::Issues | Page::Issue => Some("issues.js"),
            Page::Trace => Some("trace.js"),
            Page::NotFound => None,
        }
    }

    /// The nav entry marked current on this page.
    fn section(self) -> &'static str {
        match self {
            Page::Overview => "overview",
            Page::Sessions | Page::Session => "sessions",
            Page::Issues | Page::Issue => "issues",
            Page::Trace => "trace",
            Page::NotFound => "",
        }
    }
}

/// The console's routes, all under [`BASE`]: `/console/`, `/console/sessions`,
/// `/console/sessions/{id}`, `/console/issues`, `/console/issues/{id}`, `/console/traces`,
/// `/console/traces/{id}` and `/console/assets/{file}`. Merge it into the REST router that
/// serves `/graphql`.
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route(BASE, get(|| async { Redirect::permanent("/console/") }))
        .route("/console/", get(|| async { page(Page::Overview) }))
        .route("/console/sessions", get(|| async { page(Page::Sessions) }))
        .route(
            "/console/sessions/{id}",
            get(|| async { page(Page::Session) }),
        )
        .route("/console/issues", get(|| async { page(Page::Issues) }))
        .route("/console/issues/{id}", get(|| async { page(Page::Issue) }))
        .route("/console/traces", get(|| async { page(Page::Trace) }))
        .route("/console/traces/{id}", get(|| async { page(Page::Trace) }))
        .route("/console/assets/{file}", get(asset))
        .route("/console/{*rest}", get(|| async { page(Page::NotFound) }))
}

/// A short hash of every asset, appended to their URLs so a new build is never served stale
/// assets from a browser cache.
fn asset_version() -> &'static str {
    static VERSION: OnceLock<String> = OnceLock::new();
    VERSION.get_or_init(|| {
        // FNV-1a: stable across builds and platforms, unlike std's hasher.
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for (_, _, body) in ASSETS {
            for byte in body.bytes() {
                hash ^= u64::from(byte);
                hash = hash.wrapping_mul(0x0100_0000_01b3);
            }
        }
        format!("{:08x}", hash as u32)
    })
}

fn render(page: Page) -> String {
    let version = asset_version();
    let mut scripts = String::new();
    for name in COMMON_SCRIPTS.iter().copied().chain(page.script()) {
        scripts.push_str(&format!(
            "<script src=\"/console/assets/{name}?v={version}\" defer></script>\n"
        ));
    }
    SHELL
        .replace("{{title}}", page.title())
        .replace("{{page}}", page.name())
        .replace("{{section}}", page.section())
        .replace("{{version}}", version)
        .replace("{{scripts}}", &scripts)
}

fn page(page: Page) -> Response {
    let status = if page == Page::NotFound {
        StatusCode::NOT_FOUND
    } else {
        StatusCode::OK
    };
    (
        status,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        render(page),
    )
        .into_response()
}

async fn asset(Path(file): Path<String>) -> Response {
    match ASSETS.iter().find(|(name, _, _)| *name == file) {
        Some((_, content_type, body)) => (
            [
                (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
                // URLs carry the assets' hash, so a cached copy is never stale.
                (
                    header::CACHE_CONTROL,
                    HeaderValue::from_static("public, max-age=86400"),
                ),
            ],
            *body,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "no such console asset").into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    async fn get(path: &str) -> (StatusCode, String, String) {
        let response = router::<()>()
            .oneshot(Request::get(path).body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let kind = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, kind, String::from_utf8(bytes.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn every_page_is_a_shell_naming_its_page_and_scripts() {
        for (path, name, script) in [
            ("/console/", "overview", "overview.js"),
            ("/console/sessions", "sessions", "sessions.js"),
            ("/console/sessions/abc", "session", "timeline.js"),
            ("/console/issues", "issues", "issues.js"),
            ("/console/issues/x1", "issue", "issues.js"),
            ("/console/traces", "trace", "trace.js"),
            (
                "/console/traces/0af7651916cd43dd8448eb211c80319c",
                "trace",
                "trace.js",
            ),
        ] {
            let (status, kind, body) = get(path).await;
            assert_eq!(status, StatusCode::OK, "{path}");
            assert!(kind.starts_with("text/html"), "{path}: {kind}");
            assert!(body.contains(&format!("data-page=\"{name}\"")), "{path}");
            assert!(
                body.contains(&format!("/console/assets/{script}?v=")),
                "{path}"
            );
            assert!(!body.contains("{{"), "{path}: a marker was left");
        }
    }

    #[tokio::test]
    async fn every_script_the_shell_names_is_served() {
        for (name, kind, body) in ASSETS {
            let (status, served_kind, served) = get(&format!("/console/assets/{name}")).await;
            assert_eq!(status, StatusCode::OK);
            assert_eq!(served_kind, kind);
            assert_eq!(served, body);
        }
        let (status, _, _) = get("/console/assets/secret.txt").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn unknown_pages_are_404_with_the_navigation() {
        let (status, kind, body) = get("/console/nothing/here").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert!(kind.starts_with("text/html"));
        assert!(body.contains("href=\"/console/sessions\""));
    }

    #[tokio::test]
    async fn the_bare_mount_point_redirects_to_the_overview() {
        let response = router::<()>()
            .oneshot(Request::get("/console").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::PERMANENT_REDIRECT);
        assert_eq!(response.headers()[header::LOCATION], "/console/");
    }

    #[tokio::test]
    async fn pages_allow_only_this_origin() {
        let response = router::<()>()
            .oneshot(Request::get("/console/issues").body(Body::empty()).unwrap())
            .await
            .unwrap();
        let csp = response.headers()[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap();
        assert!(csp.contains("script-src 'self'") && csp.contains("connect-src 'self'"));
    }

    #[test]
    fn assets_stay_small() {
        // The page-weight goal is 150 KB per page; the largest page loads the shell, the css,
        // the common scripts and one page script.
        let total: usize = ASSETS.iter().map(|(_, _, b)| b.len()).sum::<usize>() + SHELL.len();
        assert!(total < 150 * 1024, "all assets together are {total} bytes");
    }
}
