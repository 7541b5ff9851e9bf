//! OTLP/HTTP and SkyWalking's REST segment report on axum. Handlers only decode, then call the
//! shared ingest functions.
use std::io::Read;
use std::pin::Pin;

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use flate2::read::MultiGzDecoder;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use skylark_core::{EncodedRequest, RejectReason};

use crate::ingest::{
    admit, ingest_logs, ingest_metrics, ingest_otlp_traces, ingest_segments, logs_response,
    metrics_response, record_rejected, record_request,
};
use crate::otlp::{
    convert_logs_request, convert_metrics_request, convert_traces_request, OtlpEncoding,
};
use crate::{
    decode_segment_json, decode_segments_json, Error, ReceiverState, Result, SegmentBatch,
};

/// Bodies above this size (or any gzip body) are decoded on the blocking pool, so a large
/// request cannot stall the async workers.
const INLINE_DECODE_MAX_BYTES: usize = 64 * 1024;

/// The REST routes: OTLP `POST /v1/metrics`, `/v1/logs` and `/v1/traces` (protobuf or JSON), SkyWalking
/// `POST /v3/segments` (JSON array) and `POST /v3/segment` (one JSON object). Every route
/// accepts gzip and enforces `config.max_body_bytes` on the body before and after decompression.
///
/// Mount under a prefix with `Router::nest("/otlp", http_router(state))` when the collector URL
/// has a path (the SDK appends `/v1/metrics` to whatever it is configured with).
pub fn http_router(state: ReceiverState) -> Router {
    Router::new()
        .route("/v1/metrics", post(export_metrics))
        .route("/v1/logs", post(export_logs))
        .route("/v1/traces", post(export_traces))
        .route("/v3/segments", post(report_segments))
        .route("/v3/segment", post(report_segment))
        .with_state(state)
}

async fn export_metrics(
    State(state): State<ReceiverState>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let mut unread = Some(body);
    let result = async {
        let encoding = otlp_encoding(&headers)?;
        let _slot = admit(&state)?;
        let body = unread.take().unwrap_or_default();
        let batch = decode_body(&headers, body, state.config.max_body_bytes, move |bytes| {
            let request: ExportMetricsServiceRequest = encoding.decode(&bytes)?;
            let mut batch = convert_metrics_request(&request);
            batch.source = Some(EncodedRequest {
                content_type: encoding.content_type(),
                body: bytes,
            });
            Ok(batch)
        })
        .await?;
        let report = ingest_metrics(&state, batch, "http").await?;
        Ok((encoding, report))
    }
    .await;
    record_request(&state, "http", "metrics", &result);
    match result {
        Ok((encoding, report)) => success_response(encoding, &metrics_response(&report)),
        Err(e) => refusal(&e, unread, state.config.max_body_bytes).await,
    }
}

async fn export_logs(
    State(state): State<ReceiverState>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let mut unread = Some(body);
    let result = async {
        let encoding = otlp_encoding(&headers)?;
        let _slot = admit(&state)?;
        let body = unread.take().unwrap_or_default();
        let batch = decode_body(&headers, body, state.config.max_body_bytes, move |bytes| {
            let request: ExportLogsServiceRequest = encoding.decode(&bytes)?;
            Ok(convert_logs_request(request))
        })
        .await?;
        let report = ingest_logs(&state, batch, "http").await?;
        Ok((encoding, report))
    }
    .await;
    record_request(&state, "http", "logs", &result);
    match result {
        Ok((encoding, report)) => success_response(encoding, &logs_response(&report)),
        Err(e) => refusal(&e, unread, state.config.max_body_bytes).await,
    }
}

async fn export_traces(
    State(state): State<ReceiverState>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let mut unread = Some(body);
    let result = async {
        let encoding = otlp_encoding(&headers)?;
        let _slot = admit(&state)?;
        let body = unread.take().unwrap_or_default();
        let max_spans = state.config.max_spans_per_segment;
        let conversion = decode_body(&headers, body, state.config.max_body_bytes, move |bytes| {
            let request: ExportTraceServiceRequest = encoding.decode(&bytes)?;
            Ok(convert_traces_request(&request, max_spans))
        })
        .await?;
        let response = ingest_otlp_traces(&state, conversion, "http").await?;
        Ok((encoding, response))
    }
    .await;
    record_request(&state, "http", "traces", &result);
    match result {
        Ok((encoding, response)) => success_response(encoding, &response),
        Err(e) => refusal(&e, unread, state.config.max_body_bytes).await,
    }
}

async fn report_segments(
    State(state): State<ReceiverState>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let max_spans = state.config.max_spans_per_segment;
    report(&state, &headers, body, move |bytes| {
        decode_segments_json(&bytes, max_spans)
    })
    .await
}

async fn report_segment(
    State(state): State<ReceiverState>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let max_spans = state.config.max_spans_per_segment;
    report(&state, &headers, body, move |bytes| {
        decode_segment_json(&bytes, max_spans)
    })
    .await
}

/// A segment report: the valid segments are ingested even when others are rejected; the answer
/// is then 400 naming the rejected ones (see `skywalking::segment`).
async fn report<F>(state: &ReceiverState, headers: &HeaderMap, body: Body, decode: F) -> Response
where
    F: FnOnce(Bytes) -> Result<SegmentBatch> + Send + 'static,
{
    let mut unread = Some(body);
    let result = async {
        require_json(headers)?;
        let _slot = admit(state)?;
        let body = unread.take().unwrap_or_default();
        let batch = decode_body(headers, body, state.config.max_body_bytes, decode).await?;
        let (segments, rejected) = batch.into_parts();
        if let Some(Error::SegmentsRejected { rejected, .. }) = &rejected {
            record_rejected(
                state,
                "segments",
                RejectReason::Malformed,
                rejected.len() as u64,
            );
        }
        ingest_segments(state, segments, "http").await?;
        rejected.map_or(Ok(()), Err)
    }
    .await;
    record_request(state, "http", "segments", &result);
    match result {
        Ok(()) => (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            "{}",
        )
            .into_response(),
        Err(e) => refusal(&e, unread, state.config.max_body_bytes).await,
    }
}

fn otlp_encoding(headers: &HeaderMap) -> Result<OtlpEncoding> {
    OtlpEncoding::from_content_type(header_str(headers, header::CONTENT_TYPE))
}

/// SkyWalking's REST protocol is JSON only (parameters and case ignored).
fn require_json(headers: &HeaderMap) -> Result<()> {
    let content_type = header_str(headers, header::CONTENT_TYPE);
    match otlp_encoding(headers) {
        Ok(OtlpEncoding::Json) => Ok(()),
        _ => Err(Error::UnsupportedSegmentContentType(
            content_type.to_owned(),
        )),
    }
}

/// Checks the encoding headers, reads the body within the limit, un-gzips and decodes it.
/// The caller checks `Content-Type` first, so a wrong request is refused before its body is read.
async fn decode_body<T, F>(headers: &HeaderMap, body: Body, limit: usize, decode: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce(Bytes) -> Result<T> + Send + 'static,
{
    let gzip = is_gzip(header_str(headers, header::CONTENT_ENCODING))?;
    let declared_length = header_str(headers, header::CONTENT_LENGTH)
        .parse::<u64>()
        .ok();
    if declared_length.is_some_and(|length| length > limit as u64) {
        drain(body, DRAIN_MAX_BYTES).await;
        return Err(Error::BodyTooLarge { limit });
    }
    let body = read_body(body, limit).await?;
    let decode_inline = !gzip && body.len() <= INLINE_DECODE_MAX_BYTES;

    let decode = move || -> Result<T> {
        if gzip {
            decode(Bytes::from(gunzip(&body, limit)?))
        } else {
            decode(body)
        }
    };
    if decode_inline {
        decode()
    } else {
        tokio::task::spawn_blocking(decode)
            .await
            .map_err(Error::DecodeTask)?
    }
}

pub(crate) fn header_str(headers: &HeaderMap, name: header::HeaderName) -> &str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

fn is_gzip(content_encoding: &str) -> Result<bool> {
    match content_encoding.trim().to_ascii_lowercase().as_str() {
        "" | "identity" => Ok(false),
        "gzip" | "x-gzip" => Ok(true),
        _ => Err(Error::UnsupportedContentEncoding(
            content_encoding.to_owned(),
        )),
    }
}

/// Reads the whole body, refusing it as soon as it passes `limit` (chunked bodies carry no
/// `Content-Length` to check up front).
pub(crate) async fn read_body(mut body: Body, limit: usize) -> Result<Bytes> {
    let mut chunks: Vec<Bytes> = Vec::new();
    let mut total = 0usize;
    while let Some(frame) = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
        let Ok(data) = frame.map_err(Error::ReadBody)?.into_data() else {
            continue; // trailers
        };
        total += data.len();
        if total > limit {
            drain(body, DRAIN_MAX_BYTES).await;
            return Err(Error::BodyTooLarge { limit });
        }
        chunks.push(data);
    }
    // A body usually arrives as one frame; only join when it did not.
    if chunks.len() == 1 {
        return Ok(chunks.pop().unwrap_or_default());
    }
    Ok(Bytes::from(chunks.concat()))
}

/// Most bytes of an oversized body read and thrown away so the client sees the 413.
pub(crate) const DRAIN_MAX_BYTES: usize = 64 * 1024 * 1024;

/// Longest time spent draining a refused body: a client that sends slowly is not waited for.
const DRAIN_MAX_TIME: std::time::Duration = std::time::Duration::from_secs(2);

/// Reads and discards the rest of a refused body, up to `max_bytes` and [`DRAIN_MAX_TIME`];
/// true when the body ended. Answering while the client is still sending makes the server
/// close the connection under it, and the client then sees a broken pipe instead of the answer
/// and its reason.
pub(crate) async fn drain(mut body: Body, max_bytes: usize) -> bool {
    let read_all = async {
        let mut total = 0usize;
        loop {
            match std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
                None => return true,
                Some(Err(_)) => return false,
                Some(Ok(frame)) => {
                    total = total.saturating_add(frame.data_ref().map_or(0, |d| d.len()));
                    if total > max_bytes {
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

/// The answer to a refused request. A body never read (busy, wrong content type) is drained up
/// to the body limit first, so a keep-alive client reads the answer and can send its next
/// request on the same connection. When that is not possible (the body is larger, or too slow)
/// and for every 413, the answer says `Connection: close` and the connection is closed after it,
/// so the client knows to reconnect rather than writing into a closed socket.
async fn refusal(error: &Error, unread: Option<Body>, max_body_bytes: usize) -> Response {
    let mut response = error_response(error);
    let drained = match unread {
        Some(body) => drain(body, max_body_bytes).await,
        None => true,
    };
    if !drained || response.status() == StatusCode::PAYLOAD_TOO_LARGE {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// Decompresses a gzip body (concatenated members too), refusing output beyond `limit`.
pub(crate) fn gunzip(body: &[u8], limit: usize) -> Result<Vec<u8>> {
    let mut decompressed = Vec::new();
    MultiGzDecoder::new(body)
        .take(limit as u64 + 1)
        .read_to_end(&mut decompressed)
        .map_err(Error::Gzip)?;
    if decompressed.len() > limit {
        return Err(Error::BodyTooLarge { limit });
    }
    Ok(decompressed)
}

fn success_response<T>(encoding: OtlpEncoding, response: &T) -> Response
where
    T: prost::Message + serde::Serialize + Default + PartialEq,
{
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(encoding.content_type()),
        )],
        encoding.encode_response(response),
    )
        .into_response()
}

/// Plain-text error with the reason; 503 tells the client when to retry.
pub(crate) fn error_response(error: &Error) -> Response {
    let code = error.code();
    let status =
        StatusCode::from_u16(code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if status.is_server_error() {
        tracing::warn!(protocol = "http", code = code.as_str(), error = %error, "request failed");
    } else {
        tracing::debug!(protocol = "http", code = code.as_str(), error = %error, "request refused");
    }
    let mut response = (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        )],
        error.to_string(),
    )
        .into_response();
    if status == StatusCode::SERVICE_UNAVAILABLE {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::write::GzEncoder;
    use std::io::Write;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut encoder = GzEncoder::new(Vec::new(), flate2::Compression::default());
        encoder.write_all(data).unwrap();
        encoder.finish().unwrap()
    }

    #[test]
    fn gunzip_enforces_the_decompressed_limit() {
        let data = vec![b'a'; 10_000];
        let compressed = gzip(&data);
        assert!(compressed.len() < 1_000);
        assert_eq!(gunzip(&compressed, 10_000).unwrap(), data);
        let err = gunzip(&compressed, 9_999).unwrap_err();
        assert_eq!(err.code(), skylark_core::ErrorCode::PayloadTooLarge);
    }

    #[test]
    fn gunzip_reads_concatenated_members_and_rejects_garbage() {
        let mut two = gzip(b"hello ");
        two.extend(gzip(b"world"));
        assert_eq!(gunzip(&two, 100).unwrap(), b"hello world");
        let err = gunzip(b"not gzip at all", 100).unwrap_err();
        assert_eq!(err.code(), skylark_core::ErrorCode::BadRequest);
        assert!(err.to_string().starts_with("invalid gzip body"), "{err}");
    }

    #[test]
    fn content_encoding_accepts_gzip_and_identity_only() {
        assert!(!is_gzip("").unwrap());
        assert!(!is_gzip("identity").unwrap());
        assert!(is_gzip("GZIP").unwrap());
        let err = is_gzip("br").unwrap_err();
        assert_eq!(err.code(), skylark_core::ErrorCode::UnsupportedMediaType);
    }
}
