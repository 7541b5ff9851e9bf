//! The RUM intake: the Datadog-format endpoint the Flashcat mini-program SDK (and Datadog's
//! browser SDK) posts to, in both URL forms:
//!
//! - direct, `POST /api/v2/rum?<params>` (the SDK's `site` option);
//! - proxied, `POST <any path>?ddforward=<url-encoded "/api/v2/rum?<params>">` (its `proxy`
//!   option). Skylark is the intake: `ddforward` is parsed, never fetched.
//!
//! The body is NDJSON, plain, gzip (`Content-Encoding`) or deflate (`dd-evp-encoding=deflate`),
//! under the same size limits as OTLP before and after decompression. Answers are 202 as the
//! real intake's; preflights are answered so webview SDKs can post cross-origin.
mod decode;
mod intake;

use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use flate2::read::ZlibDecoder;
use skylark_core::telemetry::RUM_DUPLICATE_REQUESTS_TOTAL;
use skylark_core::{ErrorCode, IngestError, IngestReport, RumBatch};

pub use intake::{ClientToken, ClientTokens};

use crate::http::{drain, error_response, gunzip, header_str, read_body, DRAIN_MAX_BYTES};
use crate::ingest::{admit, record_report, record_request};
use crate::{Error, ReceiverState, Result};
use decode::{decode_ndjson, BatchContext, DecodedBatch};
use intake::{Claim, RequestIds, REQUEST_IDS_MAX, REQUEST_ID_WINDOW};

/// The path every RUM SDK posts to (or names in `ddforward`).
pub const RUM_INTAKE_PATH: &str = "/api/v2/rum";

/// Bodies above this size, and compressed ones, are decoded on the blocking pool.
const INLINE_DECODE_MAX_BYTES: usize = 64 * 1024;

/// Why a RUM request was refused.
#[derive(Debug, thiserror::Error)]
pub enum RumError {
    /// Tokens are configured and the request's `dd-api-key` is not one of them.
    #[error("unknown client token {0:?}: not in SW_RUM_CLIENT_TOKENS")]
    UnknownToken(String),
    /// The token is bound to one service and an event names another.
    #[error("client token may only write service {allowed:?}, an event names {found:?}")]
    WrongService {
        /// The service the token is bound to.
        allowed: String,
        /// The service an event named.
        found: String,
    },
    /// `ddforward` names something other than the RUM intake.
    #[error("ddforward must name {RUM_INTAKE_PATH}, got {0:?}")]
    ForwardPath(String),
    /// The body decodes to no event.
    #[error("no RUM event in the body: {0}")]
    NoEvents(String),
    /// A deflate body that does not inflate.
    #[error("invalid deflate body: {0}")]
    Deflate(#[source] std::io::Error),
    /// An encoding other than gzip, deflate or identity.
    #[error("unsupported content encoding {0:?}: expected gzip, deflate or identity")]
    Encoding(String),
}

impl RumError {
    /// The category that decides the status.
    pub fn code(&self) -> ErrorCode {
        match self {
            RumError::UnknownToken(_) | RumError::WrongService { .. } => ErrorCode::Forbidden,
            RumError::ForwardPath(_) | RumError::NoEvents(_) | RumError::Deflate(_) => {
                ErrorCode::BadRequest
            }
            RumError::Encoding(_) => ErrorCode::UnsupportedMediaType,
        }
    }
}

/// RUM intake settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RumIntakeConfig {
    /// Accepted `dd-api-key` client tokens (`SW_RUM_CLIENT_TOKENS`); empty accepts all.
    pub client_tokens: ClientTokens,
}

#[derive(Clone)]
struct RumState {
    receiver: ReceiverState,
    tokens: Arc<ClientTokens>,
    request_ids: Arc<RequestIds>,
}

/// The RUM routes: `POST`/`OPTIONS /api/v2/rum`, and a fallback that takes `POST`/`OPTIONS` on
/// any other path carrying `?ddforward=` (everything else there is 404). Merge it beside
/// [`crate::http_router`].
pub fn rum_router(state: ReceiverState, config: RumIntakeConfig) -> Router {
    let state = RumState {
        receiver: state,
        tokens: Arc::new(config.client_tokens),
        request_ids: Arc::new(RequestIds::new(REQUEST_ID_WINDOW, REQUEST_IDS_MAX)),
    };
    Router::new()
        .route(RUM_INTAKE_PATH, post(direct).options(preflight))
        .fallback(forwarded)
        .with_state(state)
}

/// Decodes an uncompressed NDJSON body exactly as the intake does for a request with these
/// `ddsource` and `ddtags` parameters, and returns how many events it held (bad lines are
/// skipped). Only the decode: no token, idempotency or storage step, so `skylark-bench` can set
/// it against the whole path.
pub fn decode_rum_ndjson(body: &[u8], ddsource: &str, ddtags: &str) -> usize {
    decode_ndjson(body, &BatchContext::new(ddsource, ddtags))
        .events
        .len()
}

/// The query parameters of an intake request.
#[derive(Debug, Default, serde::Deserialize)]
struct RumParams {
    #[serde(default)]
    ddsource: String,
    #[serde(default)]
    ddtags: String,
    #[serde(default, rename = "dd-api-key")]
    api_key: String,
    #[serde(default, rename = "dd-request-id")]
    request_id: String,
    #[serde(default, rename = "dd-evp-encoding")]
    encoding: String,
    #[serde(default)]
    ddforward: Option<String>,
}

async fn direct(
    State(state): State<RumState>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match params_of(&uri) {
        Ok(params) => intake(&state, params, &headers, body).await,
        Err(error) => answer(&state.receiver, Err(error)),
    }
}

async fn preflight(headers: HeaderMap) -> Response {
    let mut response = StatusCode::NO_CONTENT.into_response();
    let h = response.headers_mut();
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, allow_origin(&headers));
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("POST, OPTIONS"),
    );
    let requested = headers
        .get(header::ACCESS_CONTROL_REQUEST_HEADERS)
        .cloned()
        .unwrap_or_else(|| HeaderValue::from_static("content-type"));
    h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, requested);
    h.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("86400"),
    );
    response
}

/// Any path: only `?ddforward=` requests are RUM; everything else is not found.
async fn forwarded(
    State(state): State<RumState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let forward = params_of(&uri).ok().and_then(|p| p.ddforward);
    let Some(forward) = forward else {
        return (StatusCode::NOT_FOUND, "not found").into_response();
    };
    if method == Method::OPTIONS {
        return preflight(headers).await;
    }
    if method != Method::POST {
        return (StatusCode::METHOD_NOT_ALLOWED, "ddforward takes POST").into_response();
    }
    let params = forwarded_params(&forward);
    match params {
        Ok(params) => intake(&state, params, &headers, body).await,
        Err(error) => {
            drain_refused(body).await;
            answer(&state.receiver, Err(error))
        }
    }
}

fn params_of(uri: &Uri) -> Result<RumParams> {
    if uri.query().is_none() {
        return Ok(RumParams::default());
    }
    Query::<RumParams>::try_from_uri(uri)
        .map(|q| q.0)
        .map_err(|e| RumError::NoEvents(format!("bad query string: {e}")).into())
}

/// The parameters inside a decoded `ddforward` (`/api/v2/rum?...`); any other path is refused.
fn forwarded_params(forward: &str) -> Result<RumParams> {
    let (path, query) = forward.split_once('?').unwrap_or((forward, ""));
    if path != RUM_INTAKE_PATH {
        let shown: String = path.chars().take(200).collect();
        return Err(RumError::ForwardPath(shown).into());
    }
    let uri: Uri = format!("{RUM_INTAKE_PATH}?{query}")
        .parse()
        .map_err(|_| RumError::ForwardPath(forward.chars().take(200).collect()))?;
    let mut params = params_of(&uri)?;
    params.ddforward = None;
    Ok(params)
}

fn allow_origin(headers: &HeaderMap) -> HeaderValue {
    headers
        .get(header::ORIGIN)
        .cloned()
        .unwrap_or_else(|| HeaderValue::from_static("*"))
}

/// What an accepted request did.
enum Applied {
    Ingested,
    Duplicate,
}

async fn intake(state: &RumState, params: RumParams, headers: &HeaderMap, body: Body) -> Response {
    let api_key = if params.api_key.is_empty() {
        header_str(headers, header::HeaderName::from_static("dd-api-key")).to_owned()
    } else {
        params.api_key.clone()
    };
    let token = if state.tokens.accepts_all() {
        None
    } else {
        match state.tokens.find(&api_key) {
            Some(token) => Some(token.clone()),
            None => {
                drain_refused(body).await;
                let shown: String = api_key.chars().take(64).collect();
                let mut response =
                    answer(&state.receiver, Err(RumError::UnknownToken(shown).into()));
                add_cors(&mut response, headers);
                return response;
            }
        }
    };
    let claim_key = (!params.request_id.is_empty()).then(|| {
        format!(
            "{api_key}\n{}",
            params.request_id.chars().take(128).collect::<String>()
        )
    });
    let result = match &claim_key {
        Some(key) => match state.request_ids.claim(key, Instant::now()) {
            Claim::Duplicate => {
                drain_refused(body).await;
                state
                    .receiver
                    .telemetry
                    .counter(RUM_DUPLICATE_REQUESTS_TOTAL, &[])
                    .inc();
                tracing::debug!(request_id = %params.request_id, "rum batch already applied");
                Ok(Applied::Duplicate)
            }
            Claim::InFlight => {
                drain_refused(body).await;
                Err(Error::Ingest(IngestError::Busy(
                    "a request with this dd-request-id is being applied".to_owned(),
                )))
            }
            Claim::New => {
                let result = apply(state, &params, token.as_ref(), headers, body).await;
                match &result {
                    Ok(_) => state.request_ids.accepted(key),
                    Err(_) => state.request_ids.release(key),
                }
                result.map(|_| Applied::Ingested)
            }
        },
        None => apply(state, &params, token.as_ref(), headers, body)
            .await
            .map(|_| Applied::Ingested),
    };
    let mut response = answer(&state.receiver, result);
    add_cors(&mut response, headers);
    response
}

fn add_cors(response: &mut Response, headers: &HeaderMap) {
    response
        .headers_mut()
        .insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, allow_origin(headers));
}

fn answer(state: &ReceiverState, result: Result<Applied>) -> Response {
    record_request(state, "http", "rum", &result);
    match result {
        Ok(_) => (
            StatusCode::ACCEPTED,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            "{}",
        )
            .into_response(),
        Err(e) => {
            let mut response = error_response(&e);
            // A body over the limit was not read to its end: the connection cannot be reused.
            if response.status() == StatusCode::PAYLOAD_TOO_LARGE {
                response
                    .headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            response
        }
    }
}

/// Reads and discards a refused request's body (bounded in bytes and time), so the client gets
/// the answer instead of a connection closed under it.
async fn drain_refused(body: Body) {
    let _ = drain(body, DRAIN_MAX_BYTES).await;
}

/// Reads, decodes and ingests one request.
async fn apply(
    state: &RumState,
    params: &RumParams,
    token: Option<&ClientToken>,
    headers: &HeaderMap,
    body: Body,
) -> Result<IngestReport> {
    let receiver = &state.receiver;
    // A refusal before the body is read drains it, so a keep-alive client reads the answer.
    let encoding = match body_encoding(headers, &params.encoding) {
        Ok(encoding) => encoding,
        Err(e) => {
            drain_refused(body).await;
            return Err(e);
        }
    };
    let _slot = match admit(receiver) {
        Ok(slot) => slot,
        Err(e) => {
            drain_refused(body).await;
            return Err(e);
        }
    };
    let limit = receiver.config.max_body_bytes;
    let declared = header_str(headers, header::CONTENT_LENGTH)
        .parse::<u64>()
        .ok();
    if declared.is_some_and(|length| length > limit as u64) {
        drain_refused(body).await;
        return Err(Error::BodyTooLarge { limit });
    }
    let bytes = read_body(body, limit).await?;
    let context = BatchContext::new(&params.ddsource, &params.ddtags);
    let inline = encoding == BodyEncoding::Identity && bytes.len() <= INLINE_DECODE_MAX_BYTES;
    let decode = move || -> Result<DecodedBatch> {
        let plain = match encoding {
            BodyEncoding::Identity => bytes,
            BodyEncoding::Gzip => Bytes::from(gunzip(&bytes, limit)?),
            BodyEncoding::Deflate => Bytes::from(inflate(&bytes, limit)?),
        };
        Ok(decode_ndjson(&plain, &context))
    };
    let decoded = if inline {
        decode()?
    } else {
        tokio::task::spawn_blocking(decode)
            .await
            .map_err(Error::DecodeTask)??
    };
    if let Some(token) = token {
        if let Some(allowed) = &token.service {
            if let Some(other) = decoded.events.iter().find(|e| &e.service != allowed) {
                return Err(RumError::WrongService {
                    allowed: allowed.clone(),
                    found: other.service.chars().take(200).collect(),
                }
                .into());
            }
        }
    }
    if let Some((line, reason)) = &decoded.first_error {
        warn_bad_lines(decoded.rejected.total(), *line, reason);
    }
    if decoded.events.is_empty() {
        let mut report = IngestReport::default();
        report.reject_all(&decoded.rejected);
        record_report(receiver, "rum", &report);
        let why = match decoded.first_error {
            Some((line, reason)) => format!("line {line}: {reason}"),
            None => "the body is empty".to_owned(),
        };
        return Err(RumError::NoEvents(why).into());
    }
    let events = decoded.events.len();
    match receiver
        .sink
        .ingest_rum(RumBatch {
            events: decoded.events,
        })
        .await
    {
        Ok(mut report) => {
            report.reject_all(&decoded.rejected);
            record_report(receiver, "rum", &report);
            tracing::debug!(
                events,
                accepted = report.accepted,
                rejected = report.rejected,
                "rum events ingested"
            );
            Ok(report)
        }
        Err(e) => {
            tracing::warn!(signal = "rum", error = %e, "rum ingestion failed");
            Err(e.into())
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BodyEncoding {
    Identity,
    Gzip,
    Deflate,
}

/// `Content-Encoding` decides; `dd-evp-encoding=deflate` (Datadog's browser SDK) names deflate
/// when no header does.
fn body_encoding(headers: &HeaderMap, evp_encoding: &str) -> Result<BodyEncoding> {
    let header = header_str(headers, header::CONTENT_ENCODING)
        .trim()
        .to_ascii_lowercase();
    let name = if header.is_empty() || header == "identity" {
        evp_encoding.trim().to_ascii_lowercase()
    } else {
        header
    };
    match name.as_str() {
        "" | "identity" => Ok(BodyEncoding::Identity),
        "gzip" | "x-gzip" => Ok(BodyEncoding::Gzip),
        "deflate" => Ok(BodyEncoding::Deflate),
        _ => Err(RumError::Encoding(name.chars().take(64).collect()).into()),
    }
}

/// Inflates a zlib-wrapped deflate body (what `CompressionStream("deflate")` writes), refusing
/// output beyond `limit`.
fn inflate(body: &[u8], limit: usize) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    ZlibDecoder::new(body)
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(RumError::Deflate)?;
    if out.len() > limit {
        return Err(Error::BodyTooLarge { limit });
    }
    Ok(out)
}

/// Seconds since the epoch of the last bad-line warning; one a minute at most, so a client
/// sending garbage cannot flood the log.
static LAST_BAD_LINE_WARNING: AtomicU64 = AtomicU64::new(0);

fn warn_bad_lines(count: u64, first_line: usize, reason: &str) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let last = LAST_BAD_LINE_WARNING.load(Ordering::Relaxed);
    if now >= last + 60
        && LAST_BAD_LINE_WARNING
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    {
        tracing::warn!(
            skipped = count,
            first_line,
            reason,
            "rum lines skipped (counted in skylark_receiver_rejected_items_total{{signal=\"rum\"}}; warned at most once a minute)"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ddforward_must_name_the_intake() {
        let params = forwarded_params(
            "/api/v2/rum?ddsource=miniapp&ddtags=service%3Ashop%2Cversion%3A1&dd-request-id=r1",
        )
        .unwrap();
        assert_eq!(params.ddsource, "miniapp");
        assert_eq!(params.ddtags, "service:shop,version:1");
        assert_eq!(params.request_id, "r1");
        for bad in [
            "/api/v2/logs?x=1",
            "http://evil.example/api/v2/rum?x",
            "/api/v2/rum/../x",
        ] {
            let err = forwarded_params(bad).unwrap_err();
            assert_eq!(err.code(), ErrorCode::BadRequest, "{bad}");
        }
    }

    #[test]
    fn decode_only_counts_the_good_lines() {
        let now = 1_796_524_911_531_i64;
        let body = format!(
            "{{\"date\":{now},\"type\":\"view\",\"view\":{{\"id\":\"v1\"}}}}\n\nnot json\n{{\"date\":{now},\"type\":\"action\",\"action\":{{\"id\":\"a1\"}}}}\n"
        );
        assert_eq!(
            decode_rum_ndjson(body.as_bytes(), "miniapp", "service:shop"),
            2
        );
        assert_eq!(decode_rum_ndjson(b"", "miniapp", ""), 0);
    }

    #[test]
    fn deflate_is_bounded() {
        use flate2::write::ZlibEncoder;
        use std::io::Write;
        let mut encoder = ZlibEncoder::new(Vec::new(), flate2::Compression::best());
        encoder.write_all(&vec![b'{'; 1_000_000]).unwrap();
        let bomb = encoder.finish().unwrap();
        assert!(bomb.len() < 10_000);
        let err = inflate(&bomb, 100_000).unwrap_err();
        assert_eq!(err.code(), ErrorCode::PayloadTooLarge);
        assert_eq!(inflate(&bomb, 1_000_000).unwrap().len(), 1_000_000);
        assert_eq!(
            inflate(b"nope", 100).unwrap_err().code(),
            ErrorCode::BadRequest
        );
    }

    #[test]
    fn encodings_come_from_the_header_or_the_parameter() {
        let mut headers = HeaderMap::new();
        assert_eq!(body_encoding(&headers, "").unwrap(), BodyEncoding::Identity);
        assert_eq!(
            body_encoding(&headers, "deflate").unwrap(),
            BodyEncoding::Deflate
        );
        headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        assert_eq!(
            body_encoding(&headers, "deflate").unwrap(),
            BodyEncoding::Gzip
        );
        headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("br"));
        assert_eq!(
            body_encoding(&headers, "").unwrap_err().code(),
            ErrorCode::UnsupportedMediaType
        );
    }
}
