//! `POST /graphql` with every cost bounded: the body's size, the document's nesting, fields and
//! depth, the page size, the time a request may take, and the threads queries run on.
//!
//! Queries run on a small runtime of their own ([`QueryLimits::threads`] workers), never on the
//! workers that answer ingest requests: resolvers read storage and evaluate MQE synchronously, so
//! a heavy dashboard on the shared workers would hold up every acknowledgement behind it. Bodies
//! are read before a query thread is taken (a slow upload holds none), and the requests being
//! read or waiting are capped, which bounds the memory they hold.
use crate::SkylarkSchema;
use async_graphql::parser::types::{ExecutableDocument, Selection, SelectionSet};
use async_graphql::{BatchRequest, BatchResponse, Positioned, Request, Response, ServerError};
use async_graphql_axum::GraphQLResponse;
use axum::body::{Body, Bytes, HttpBody};
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response as HttpResponse};
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

/// Bounds on what one GraphQL request may cost (`query.graphql.*` settings).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryLimits {
    /// Largest request body in bytes (`SW_QUERY_MAX_BODY_BYTES`); larger ones get 413.
    pub max_body_bytes: usize,
    /// Most fields a request selects, aliases counted and fragments expanded
    /// (`SW_QUERY_MAX_QUERY_COMPLEXITY`, OAP's name).
    pub max_complexity: usize,
    /// Deepest nesting of selections (`SW_QUERY_MAX_DEPTH`).
    pub max_depth: usize,
    /// Largest `paging.pageSize` (`SW_QUERY_MAX_PAGE_SIZE`).
    pub max_page_size: usize,
    /// How long a request may take, waiting for a query thread included (`SW_QUERY_TIMEOUT_MS`).
    pub timeout: Duration,
    /// Threads that run queries, so also the most queries running at once (`SW_QUERY_THREADS`).
    pub threads: usize,
}

impl Default for QueryLimits {
    fn default() -> Self {
        QueryLimits {
            max_body_bytes: 1024 * 1024,
            max_complexity: 3000,
            max_depth: 20,
            max_page_size: 1000,
            timeout: Duration::from_secs(10),
            threads: 2,
        }
    }
}

/// Deepest bracket nesting (`{`, `(`, `[`) a document may have before it is parsed: the parser
/// recurses once per level, so this keeps its stack use small whatever the body holds.
pub(crate) const MAX_NESTING: usize = 64;

/// Requests per query thread that may be read or wait at once (each holds at most
/// `max_body_bytes`); more are answered 503 with `Retry-After`.
const ADMITTED_PER_THREAD: usize = 32;

/// Stack of each query thread: generous, because resolvers and MQE evaluation recurse.
const QUERY_THREAD_STACK_BYTES: usize = 8 * 1024 * 1024;

/// Most bytes of a refused body read and thrown away, so the client sees the 413 instead of a
/// reset connection; a larger body's connection is closed.
const DRAIN_MAX_BYTES: usize = 16 * 1024 * 1024;

/// Longest time spent draining a refused body.
const DRAIN_MAX_TIME: Duration = Duration::from_secs(2);

/// The runtime queries run on; shut down without waiting when dropped (a query still running
/// then is abandoned, which is all a stopping server can do with it).
struct QueryPool {
    runtime: Option<tokio::runtime::Runtime>,
}

impl Drop for QueryPool {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// What the `/graphql` handler needs.
struct GraphqlService {
    schema: SkylarkSchema,
    limits: QueryLimits,
    /// Kept so the query threads live as long as the route.
    _pool: QueryPool,
    handle: tokio::runtime::Handle,
    /// One per query thread: held while a query is parsed, checked and run.
    permits: Arc<Semaphore>,
    /// Requests being read or waiting for a query thread; more are answered 503.
    admitted: Arc<Semaphore>,
    admitted_max: usize,
}

/// `POST /graphql` (single or batched JSON requests) served within `limits`, and `GET /graphql`
/// (a playground page). Fails only when the query threads cannot be started.
pub(crate) fn router_with_limits(
    schema: SkylarkSchema,
    limits: QueryLimits,
) -> std::io::Result<axum::Router> {
    let threads = limits.threads.max(1);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .thread_name("skylark-query")
        .thread_stack_size(QUERY_THREAD_STACK_BYTES)
        .enable_time()
        .build()?;
    let service = Arc::new(GraphqlService {
        schema,
        handle: runtime.handle().clone(),
        _pool: QueryPool {
            runtime: Some(runtime),
        },
        permits: Arc::new(Semaphore::new(threads)),
        admitted: Arc::new(Semaphore::new(threads * ADMITTED_PER_THREAD)),
        admitted_max: threads * ADMITTED_PER_THREAD,
        limits,
    });
    Ok(axum::Router::new()
        .route(
            "/graphql",
            axum::routing::get(playground).post(graphql_post),
        )
        .with_state(service))
}

async fn playground() -> axum::response::Html<String> {
    axum::response::Html(async_graphql::http::playground_source(
        async_graphql::http::GraphQLPlaygroundConfig::new("/graphql"),
    ))
}

async fn graphql_post(
    State(service): State<Arc<GraphqlService>>,
    headers: HeaderMap,
    body: Body,
) -> HttpResponse {
    let started = Instant::now();
    let limits = &service.limits;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if content_type.to_ascii_lowercase().starts_with("multipart/") {
        return refuse(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "multipart GraphQL requests (file uploads) are not supported; send application/json"
                .into(),
            body,
        )
        .await;
    }
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > limits.max_body_bytes as u64) {
        return too_large(body, limits.max_body_bytes).await;
    }

    // Bodies are read before a query thread is taken, so a slow upload holds no thread; the
    // requests being read or waiting are capped instead, which bounds their memory.
    let Ok(_admitted) = service.admitted.clone().try_acquire_owned() else {
        let mut response = plain(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "{} GraphQL requests are already waiting; retry shortly",
                service.admitted_max
            ),
        );
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        return response;
    };
    let bytes =
        match tokio::time::timeout(limits.timeout, read_limited(body, limits.max_body_bytes)).await
        {
            Ok(Ok(bytes)) => bytes,
            Ok(Err(ReadError::TooLarge(rest))) => {
                return too_large(rest, limits.max_body_bytes).await;
            }
            Ok(Err(ReadError::Io(e))) => {
                return plain(
                    StatusCode::BAD_REQUEST,
                    format!("cannot read the body: {e}"),
                )
            }
            Err(_) => return timed_out(limits, None),
        };
    let remaining = limits.timeout.saturating_sub(started.elapsed());
    let permit =
        match tokio::time::timeout(remaining, service.permits.clone().acquire_owned()).await {
            Ok(Ok(permit)) => permit,
            _ => return timed_out(limits, None),
        };

    let schema = service.schema.clone();
    let run_limits = limits.clone();
    let task = service.handle.spawn(async move {
        let _permit = permit;
        let batch: BatchRequest = match serde_json::from_slice(&bytes) {
            Ok(batch) => batch,
            Err(e) => return Err(format!("invalid GraphQL request: {e}")),
        };
        let batch = match prepare_batch(batch, &run_limits) {
            Ok(batch) => batch,
            Err(refused) => return Ok(error_response(&refused.message, refused.batch_len)),
        };
        Ok(schema.execute_batch(batch).await)
    });
    let abort = task.abort_handle();
    let remaining = limits.timeout.saturating_sub(started.elapsed());
    match tokio::time::timeout(remaining, task).await {
        Ok(Ok(Ok(response))) => GraphQLResponse(response).into_response(),
        Ok(Ok(Err(message))) => plain(StatusCode::BAD_REQUEST, message),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "graphql task failed");
            GraphQLResponse(error_response("the query failed inside the server", None))
                .into_response()
        }
        Err(_) => {
            // The task stops at its next await; a resolver in a synchronous loop keeps its
            // thread (and permit) until it returns, so later queries wait rather than pile up.
            abort.abort();
            timed_out(limits, None)
        }
    }
}

fn error_response(message: &str, batch_len: Option<usize>) -> BatchResponse {
    let one = || Response::from_errors(vec![ServerError::new(message, None)]);
    match batch_len {
        Some(n) => BatchResponse::Batch((0..n).map(|_| one()).collect()),
        None => BatchResponse::Single(one()),
    }
}

fn timed_out(limits: &QueryLimits, batch_len: Option<usize>) -> HttpResponse {
    tracing::warn!(
        timeout_ms = limits.timeout.as_millis() as u64,
        "graphql request stopped at its time limit"
    );
    GraphQLResponse(error_response(
        &format!(
            "the query did not finish within {} ms (SW_QUERY_TIMEOUT_MS) and was stopped; narrow \
             the duration or ask for fewer fields",
            limits.timeout.as_millis()
        ),
        batch_len,
    ))
    .into_response()
}

/// Why a batch was refused before running: the message, and the batch's length when it was a
/// batch (the answer then holds one error per request).
struct Refused {
    message: String,
    batch_len: Option<usize>,
}

/// Checks every document of the batch against the limits before anything is validated or run.
fn prepare_batch(
    batch: BatchRequest,
    limits: &QueryLimits,
) -> std::result::Result<BatchRequest, Refused> {
    let (mut requests, is_batch) = match batch {
        BatchRequest::Single(request) => (vec![request], false),
        BatchRequest::Batch(requests) => (requests, true),
    };
    let mut budget = limits.max_complexity;
    for request in requests.iter_mut() {
        match check_document(&request.query, limits, &mut budget) {
            Ok(doc) => request.set_parsed_query(doc),
            Err(message) => {
                tracing::debug!(%message, "graphql request refused");
                return Err(Refused {
                    message,
                    batch_len: is_batch.then_some(requests.len()),
                });
            }
        }
    }
    Ok(if is_batch {
        BatchRequest::Batch(requests)
    } else {
        BatchRequest::Single(requests.pop().unwrap_or_else(|| Request::new("")))
    })
}

/// Parses a document within the limits: bracket nesting first (before the parser recurses),
/// then fields (fragments expanded, counted against `budget`, shared across a batch) and depth.
pub(crate) fn check_document(
    query: &str,
    limits: &QueryLimits,
    budget: &mut usize,
) -> std::result::Result<ExecutableDocument, String> {
    let scanned = scan(query, MAX_NESTING);
    if scanned.nesting > MAX_NESTING {
        return Err(format!(
            "the query nests brackets more than {MAX_NESTING} deep"
        ));
    }
    if scanned.selections > *budget {
        return Err(too_many_fields(limits));
    }
    let doc = async_graphql::parser::parse_query(query).map_err(|e| e.to_string())?;
    let mut walk = Walk {
        doc: &doc,
        limits,
        budget,
        fragments: Vec::new(),
    };
    for (_, operation) in doc.operations.iter() {
        walk.selection_set(&operation.node.selection_set, 1)?;
    }
    Ok(doc)
}

fn too_many_fields(limits: &QueryLimits) -> String {
    format!(
        "the query selects more than {} fields (aliases and fragments counted; \
         SW_QUERY_MAX_QUERY_COMPLEXITY); split it into smaller queries",
        limits.max_complexity
    )
}

/// Walks selections with fragments expanded, stopping as soon as a limit is passed (so a
/// document whose fragments multiply costs no more than the limit to reject).
struct Walk<'a, 'b> {
    doc: &'a ExecutableDocument,
    limits: &'b QueryLimits,
    budget: &'b mut usize,
    /// Fragments being expanded; a cycle is left for validation to report.
    fragments: Vec<&'a str>,
}

impl<'a> Walk<'a, '_> {
    fn selection_set(
        &mut self,
        set: &'a Positioned<SelectionSet>,
        depth: usize,
    ) -> std::result::Result<(), String> {
        for selection in &set.node.items {
            if *self.budget == 0 {
                return Err(too_many_fields(self.limits));
            }
            *self.budget -= 1;
            match &selection.node {
                Selection::Field(field) => {
                    if depth > self.limits.max_depth {
                        return Err(format!(
                            "the query nests fields more than {} deep (SW_QUERY_MAX_DEPTH)",
                            self.limits.max_depth
                        ));
                    }
                    self.selection_set(&field.node.selection_set, depth + 1)?;
                }
                Selection::InlineFragment(fragment) => {
                    self.selection_set(&fragment.node.selection_set, depth)?;
                }
                Selection::FragmentSpread(spread) => {
                    let name = spread.node.fragment_name.node.as_str();
                    if self.fragments.contains(&name) {
                        continue;
                    }
                    if let Some(fragment) = self.doc.fragments.get(&spread.node.fragment_name.node)
                    {
                        self.fragments.push(name);
                        self.selection_set(&fragment.node.selection_set, depth)?;
                        self.fragments.pop();
                    }
                }
            }
        }
        Ok(())
    }
}

/// What a byte scan of a document finds before it is parsed.
#[derive(Debug, PartialEq, Eq)]
struct Scan {
    /// Deepest nesting of `{`, `(` and `[` outside strings and comments.
    nesting: usize,
    /// Selections written in selection sets (an alias and its field count once, a fragment
    /// spread once, an inline fragment's type condition not at all): never more than the
    /// fields the document selects once its fragments are expanded.
    selections: usize,
}

/// Scans `query` once, outside strings and comments; stops early once `max_nesting` is passed.
/// Cheap enough to refuse a document of thousands of aliases before parsing it, which takes far
/// longer.
fn scan(query: &str, max_nesting: usize) -> Scan {
    let bytes = query.as_bytes();
    let is_name_start = |b: u8| b == b'_' || b.is_ascii_alphabetic();
    let is_name = |b: u8| b == b'_' || b.is_ascii_alphanumeric();
    let (mut braces, mut parens, mut brackets, mut deepest) = (0usize, 0usize, 0usize, 0usize);
    let mut selections = 0usize;
    // What the previous token makes of the next name in a selection set.
    let (mut after_colon, mut after_at, mut after_spread, mut after_on) =
        (false, false, false, false);
    let mut i = 0usize;
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'#' => {
                while i < bytes.len() && bytes[i] != b'\n' && bytes[i] != b'\r' {
                    i += 1;
                }
            }
            b'"' if bytes[i..].starts_with(b"\"\"\"") => {
                i += 3;
                while i < bytes.len() && !bytes[i..].starts_with(b"\"\"\"") {
                    i += if bytes[i..].starts_with(b"\\\"\"\"") {
                        4
                    } else {
                        1
                    };
                }
                i += 2;
            }
            b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' && bytes[i] != b'\n' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
            }
            b'{' | b'(' | b'[' => {
                match b {
                    b'{' => braces += 1,
                    b'(' => parens += 1,
                    _ => brackets += 1,
                }
                deepest = deepest.max(braces + parens + brackets);
                if deepest > max_nesting {
                    break;
                }
            }
            b'}' => braces = braces.saturating_sub(1),
            b')' => parens = parens.saturating_sub(1),
            b']' => brackets = brackets.saturating_sub(1),
            b'.' if bytes[i..].starts_with(b"...") => {
                after_spread = true;
                i += 2;
            }
            b':' => after_colon = true,
            b'@' => after_at = true,
            _ if is_name_start(b) => {
                let start = i;
                while i + 1 < bytes.len() && is_name(bytes[i + 1]) {
                    i += 1;
                }
                if braces > 0 && parens == 0 {
                    let name = &bytes[start..=i];
                    if after_spread && name == b"on" {
                        after_on = true;
                    } else if !(after_colon || after_at || after_on) {
                        selections += 1;
                    } else {
                        after_on = false;
                    }
                }
                after_colon = false;
                after_at = false;
                after_spread = false;
                i += 1;
                continue;
            }
            _ => {}
        }
        if !b.is_ascii_whitespace() && b != b',' && b != b'.' && b != b':' && b != b'@' {
            after_colon = false;
            after_at = false;
            after_spread = false;
            after_on = false;
        }
        i += 1;
    }
    Scan {
        nesting: deepest,
        selections,
    }
}

enum ReadError {
    /// Over the limit; the rest of the body, unread.
    TooLarge(Body),
    Io(axum::Error),
}

/// Reads the body, stopping as soon as it passes `limit` (a chunked body declares no length).
async fn read_limited(mut body: Body, limit: usize) -> std::result::Result<Bytes, ReadError> {
    let mut chunks: Vec<Bytes> = Vec::new();
    let mut total = 0usize;
    while let Some(frame) = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
        let Ok(data) = frame.map_err(ReadError::Io)?.into_data() else {
            continue;
        };
        total = total.saturating_add(data.len());
        if total > limit {
            return Err(ReadError::TooLarge(body));
        }
        chunks.push(data);
    }
    Ok(if chunks.len() == 1 {
        chunks.pop().unwrap_or_default()
    } else {
        Bytes::from(chunks.concat())
    })
}

/// Reads and discards up to [`DRAIN_MAX_BYTES`] for at most [`DRAIN_MAX_TIME`]; true when the
/// body ended.
async fn drain(mut body: Body) -> bool {
    let read_all = async {
        let mut total = 0usize;
        loop {
            match std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
                None => return true,
                Some(Err(_)) => return false,
                Some(Ok(frame)) => {
                    total += frame.data_ref().map_or(0, |d| d.len());
                    if total > DRAIN_MAX_BYTES {
                        return false;
                    }
                }
            }
        }
    };
    tokio::time::timeout(DRAIN_MAX_TIME, read_all)
        .await
        .unwrap_or(false)
}

async fn too_large(body: Body, limit: usize) -> HttpResponse {
    refuse(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("the GraphQL request is larger than {limit} bytes (SW_QUERY_MAX_BODY_BYTES)"),
        body,
    )
    .await
}

/// Answers an error for a request whose body was not read: the body is drained (bounded) so the
/// client reads the answer rather than a reset, and the connection is closed after it.
async fn refuse(status: StatusCode, message: String, body: Body) -> HttpResponse {
    let _ = drain(body).await;
    let mut response = plain(status, message);
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

fn plain(status: StatusCode, message: String) -> HttpResponse {
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        )],
        message,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(query: &str, limits: &QueryLimits) -> std::result::Result<(), String> {
        let mut budget = limits.max_complexity;
        check_document(query, limits, &mut budget).map(|_| ())
    }

    #[test]
    fn nesting_ignores_brackets_in_strings_and_comments() {
        let nesting = |q: &str| scan(q, 64).nesting;
        assert_eq!(nesting("{ a(x: \"((((\") }"), 2);
        assert_eq!(nesting("# {{{{\n{ a }"), 1);
        assert_eq!(nesting("{ a(x: \"\"\"{{{\"\"\") }"), 2);
        assert_eq!(nesting("{ a(x: \"\\\"{{\") }"), 2);
        assert_eq!(nesting("{ a(x: [[[1]], [2]]) }"), 5);
        let deep = format!("{}{}", "{a".repeat(100_000), "}".repeat(100_000));
        assert_eq!(nesting(&deep), 65);
    }

    #[test]
    fn the_scan_counts_selections_as_the_walk_does_or_fewer() {
        let limits = QueryLimits::default();
        for query in [
            "query Q($d: Duration!) { a: version b: version c: execExpression(expression: \"x{y}\", entity: {serviceName: \"s\"}, duration: $d) { error results { values { value } } } }",
            "query { ...F ... on Query { version } ... @include(if: true) { version } __typename }\nfragment F on Query { version listServices(layer: \"GENERAL\") @skip(if: false) { name } }",
            "{ a(x: [1, 2], y: {z: [\"{\"]}) { b # c d e\n f } }",
        ] {
            let scanned = scan(query, 64).selections;
            let mut budget = limits.max_complexity;
            check_document(query, &limits, &mut budget).unwrap();
            let walked = limits.max_complexity - budget;
            assert!(scanned <= walked && scanned > 0, "{scanned} > {walked}: {query}");
        }
        assert_eq!(
            scan("{ a: b c d(e: f) { g } ...h ... on I { j } }", 64).selections,
            6
        );
    }

    #[test]
    fn deep_documents_are_refused_before_parsing() {
        let limits = QueryLimits::default();
        let deep = format!("query {}{}", "{ a ".repeat(200_000), "}".repeat(200_000));
        let err = check(&deep, &limits).unwrap_err();
        assert!(err.contains("nests brackets"), "{err}");
        let fields = format!("query {}{}", "{ a ".repeat(30), "}".repeat(30));
        let err = check(&fields, &limits).unwrap_err();
        assert!(err.contains("SW_QUERY_MAX_DEPTH"), "{err}");
    }

    #[test]
    fn aliased_fields_count_against_the_complexity_limit() {
        let limits = QueryLimits::default();
        let many: String = (0..50_000).map(|i| format!("a{i}: version ")).collect();
        let err = check(&format!("query {{ {many} }}"), &limits).unwrap_err();
        assert!(err.contains("more than 3000 fields"), "{err}");
        let few: String = (0..100).map(|i| format!("a{i}: version ")).collect();
        check(&format!("query {{ {few} }}"), &limits).unwrap();
    }

    #[test]
    fn fragments_that_multiply_are_counted_expanded() {
        // Each fragment spreads the next one twice: 2^30 fields once expanded.
        let mut doc = String::from("query { ...F0 }\n");
        for i in 0..30 {
            doc.push_str(&format!(
                "fragment F{i} on Query {{ ...F{} ...F{} }}\n",
                i + 1,
                i + 1
            ));
        }
        doc.push_str("fragment F30 on Query { version }\n");
        let err = check(&doc, &QueryLimits::default()).unwrap_err();
        assert!(err.contains("SW_QUERY_MAX_QUERY_COMPLEXITY"), "{err}");
        // A cycle is left to validation, without looping here.
        check(
            "query { ...A } fragment A on Query { ...B } fragment B on Query { ...A version }",
            &QueryLimits::default(),
        )
        .unwrap();
    }

    #[test]
    fn a_batch_shares_one_budget() {
        let limits = QueryLimits {
            max_complexity: 10,
            ..QueryLimits::default()
        };
        let mut budget = limits.max_complexity;
        for _ in 0..2 {
            check_document("{ a b c d }", &limits, &mut budget).unwrap();
        }
        let err = check_document("{ a b c d }", &limits, &mut budget).unwrap_err();
        assert!(err.contains("more than 10 fields"), "{err}");
    }
}

#[cfg(test)]
mod ui_operations {
    use super::*;

    /// Every GraphQL operation the real UIs sent (`../shared/reference/ui-ops`) passes the
    /// default limits, with room to spare.
    #[test]
    fn every_recorded_ui_operation_fits_the_default_limits() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../../shared/reference/ui-ops");
        let Ok(entries) = std::fs::read_dir(&dir) else {
            eprintln!("SKIPPED: {} is absent", dir.display());
            return;
        };
        let limits = QueryLimits::default();
        let (mut operations, mut most_fields) = (0, 0);
        for entry in entries.flatten() {
            let text = std::fs::read_to_string(entry.path()).unwrap();
            for line in text.lines().filter(|l| !l.trim().is_empty()) {
                let op: serde_json::Value = serde_json::from_str(line).unwrap();
                // Non-GraphQL calls (Horizon's Zipkin probe) carry no document.
                let Some(query) = op["query"].as_str() else {
                    continue;
                };
                let mut budget = limits.max_complexity;
                check_document(query, &limits, &mut budget)
                    .unwrap_or_else(|e| panic!("{}: {e}\n{query}", op["op"]));
                let walked = limits.max_complexity - budget;
                let scanned = scan(query, MAX_NESTING).selections;
                assert!(
                    scanned <= walked,
                    "{}: scan {scanned} > walk {walked}",
                    op["op"]
                );
                most_fields = most_fields.max(walked);
                operations += 1;
            }
        }
        assert!(operations > 250, "{operations} operations read");
        assert!(
            most_fields * 4 < limits.max_complexity,
            "{most_fields} fields"
        );
        eprintln!("{operations} UI operations; the largest selects {most_fields} fields");
    }
}
