//! OTLP/HTTP on axum. Handlers only decode, then call the shared ingest function.
use std::io::Read;
use std::pin::Pin;

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use flate2::read::MultiGzDecoder;
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use serde::de::DeserializeOwned;

use crate::ingest::ingest_metrics;
use crate::otlp::{convert_metrics_request, OtlpEncoding};
use crate::{Error, ReceiverState, Result};

/// Bodies above this size (or any gzip body) are decoded on the blocking pool, so a large
/// request cannot stall the async workers.
const INLINE_DECODE_MAX_BYTES: usize = 64 * 1024;

/// The OTLP/HTTP routes: `POST /v1/metrics`.
///
/// Mount under a prefix with `Router::nest("/otlp", http_router(state))` when the collector URL
/// has a path (the SDK appends `/v1/metrics` to whatever it is configured with).
pub fn http_router(state: ReceiverState) -> Router {
    Router::new()
        .route("/v1/metrics", post(export_metrics))
        .with_state(state)
}

async fn export_metrics(
    State(state): State<ReceiverState>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let result = async {
        let (encoding, request) = decode_otlp_request::<ExportMetricsServiceRequest>(
            &headers,
            body,
            state.config.max_body_bytes,
        )
        .await?;
        let batch = convert_metrics_request(&request);
        ingest_metrics(&state, batch, "http").await?;
        Ok(encoding)
    }
    .await;
    match result {
        Ok(encoding) => success_response(encoding, &ExportMetricsServiceResponse::default()),
        Err(e) => error_response(&e),
    }
}

/// Validates headers, reads the body within the limit, un-gzips and decodes it.
async fn decode_otlp_request<T>(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<(OtlpEncoding, T)>
where
    T: prost::Message + DeserializeOwned + Default + Send + 'static,
{
    // Header checks come first so a wrong request is refused before its body is read.
    let encoding = OtlpEncoding::from_content_type(header_str(headers, header::CONTENT_TYPE))?;
    let gzip = is_gzip(header_str(headers, header::CONTENT_ENCODING))?;
    let declared_length = header_str(headers, header::CONTENT_LENGTH)
        .parse::<u64>()
        .ok();
    if declared_length.is_some_and(|length| length > limit as u64) {
        return Err(Error::BodyTooLarge { limit });
    }
    let body = read_body(body, limit).await?;
    let decode_inline = !gzip && body.len() <= INLINE_DECODE_MAX_BYTES;

    let decode = move || -> Result<T> {
        if gzip {
            encoding.decode(&gunzip(&body, limit)?)
        } else {
            encoding.decode(&body)
        }
    };
    let message = if decode_inline {
        decode()?
    } else {
        tokio::task::spawn_blocking(decode)
            .await
            .map_err(Error::DecodeTask)??
    };
    Ok((encoding, message))
}

fn header_str(headers: &HeaderMap, name: header::HeaderName) -> &str {
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
async fn read_body(mut body: Body, limit: usize) -> Result<Bytes> {
    let mut chunks: Vec<Bytes> = Vec::new();
    let mut total = 0usize;
    while let Some(frame) = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
        let Ok(data) = frame.map_err(Error::ReadBody)?.into_data() else {
            continue; // trailers
        };
        total += data.len();
        if total > limit {
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

/// Decompresses a gzip body (concatenated members too), refusing output beyond `limit`.
fn gunzip(body: &[u8], limit: usize) -> Result<Vec<u8>> {
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

fn success_response<T: prost::Message>(encoding: OtlpEncoding, response: &T) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(encoding.content_type()),
        )],
        encoding.encode_empty_response(response),
    )
        .into_response()
}

/// Plain-text error with the reason; 503 tells the client when to retry.
fn error_response(error: &Error) -> Response {
    let code = error.code();
    let status =
        StatusCode::from_u16(code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if status.is_server_error() {
        tracing::warn!(protocol = "http", code = code.as_str(), error = %error, "otlp request failed");
    } else {
        tracing::debug!(protocol = "http", code = code.as_str(), error = %error, "otlp request refused");
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
