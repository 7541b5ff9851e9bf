//! OTLP/HTTP behaviour of `http_router`, driven with `oneshot` against a recording sink.
mod common;

use std::io::Write;
use std::sync::Arc;

use axum::body::{to_bytes, Body};
use axum::http::{header, Request, StatusCode};
use axum::response::Response;
use common::{sdk_like_request, state, RecordingSink};
use flate2::write::GzEncoder;
use prost::Message;
use skylark_receiver::http_router;
use tower::ServiceExt;

const LIMIT: usize = 64 * 1024;

async fn post(sink: &Arc<RecordingSink>, limit: usize, request: Request<Body>) -> Response {
    http_router(state(sink, limit))
        .oneshot(request)
        .await
        .unwrap()
}

fn metrics_request(content_type: &str, body: impl Into<Body>) -> Request<Body> {
    Request::post("/v1/metrics")
        .header(header::CONTENT_TYPE, content_type)
        .body(body.into())
        .unwrap()
}

async fn body_text(response: Response) -> String {
    let bytes = to_bytes(response.into_body(), usize::MAX).await.unwrap();
    String::from_utf8(bytes.to_vec()).unwrap()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

#[tokio::test]
async fn protobuf_request_is_ingested_and_answered_in_protobuf() {
    let sink = Arc::new(RecordingSink::default());
    let body = sdk_like_request().encode_to_vec();
    let response = post(
        &sink,
        LIMIT,
        metrics_request("application/x-protobuf", body),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()[header::CONTENT_TYPE],
        "application/x-protobuf"
    );
    let bytes = to_bytes(response.into_body(), usize::MAX).await.unwrap();
    let decoded =
        opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceResponse::decode(
            bytes,
        )
        .unwrap();
    assert!(decoded.partial_success.is_none());

    let batches = sink.batches.lock().unwrap();
    assert_eq!(batches.len(), 1);
    let families = &batches[0].resources[0];
    let launch = &families["miniprogram_app_launch_duration"].samples[0];
    assert_eq!(launch.value, 1200.0);
    assert_eq!(&launch.labels["service_name"], "mini-program-sim-wechat");
    assert_eq!(&launch.labels["miniprogram_page_path"], "pages/index/index");
    assert_eq!(families["miniprogram_request_duration"].samples.len(), 11);
    assert_eq!(
        families["miniprogram_request_duration_count"].samples[0].value,
        2.0
    );
}

#[tokio::test]
async fn json_request_with_charset_is_ingested_and_answered_with_empty_object() {
    let sink = Arc::new(RecordingSink::default());
    let body = serde_json::to_vec(&sdk_like_request()).unwrap();
    let response = post(
        &sink,
        LIMIT,
        metrics_request("application/json; charset=utf-8", body),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
    assert_eq!(body_text(response).await, "{}");
    let batches = sink.batches.lock().unwrap();
    assert_eq!(batches.len(), 1);
    assert_eq!(
        batches[0].resources[0]["miniprogram_request_duration_sum"].samples[0].value,
        130.0
    );
}

#[tokio::test]
async fn bad_bodies_get_400_with_reason_and_never_reach_the_sink() {
    let sink = Arc::new(RecordingSink::default());
    let router = http_router(state(&sink, LIMIT));
    let good = sdk_like_request().encode_to_vec();

    let truncated = good[..good.len() - 3].to_vec();
    let response = router
        .clone()
        .oneshot(metrics_request("application/x-protobuf", truncated))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let text = body_text(response).await;
    assert!(text.starts_with("invalid OTLP protobuf: "), "{text}");

    let response = router
        .clone()
        .oneshot(metrics_request(
            "application/json",
            r#"{"resourceMetrics": [}"#,
        ))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let text = body_text(response).await;
    assert!(text.starts_with("invalid OTLP JSON: "), "{text}");
    assert!(
        text.contains("line 1"),
        "reason should locate the error: {text}"
    );

    assert_eq!(sink.count(), 0, "a rejected body reached the sink");

    let response = router
        .oneshot(metrics_request("application/x-protobuf", good))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(sink.count(), 1);
}

#[tokio::test]
async fn unsupported_content_type_gets_415() {
    let sink = Arc::new(RecordingSink::default());
    let response = post(&sink, LIMIT, metrics_request("text/plain", "hello")).await;
    assert_eq!(response.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let text = body_text(response).await;
    assert!(text.contains("text/plain"), "{text}");
    assert!(text.contains("application/x-protobuf"), "{text}");

    let no_type = Request::post("/v1/metrics").body(Body::from("x")).unwrap();
    let response = post(&sink, LIMIT, no_type).await;
    assert_eq!(response.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);

    let brotli = Request::post("/v1/metrics")
        .header(header::CONTENT_TYPE, "application/x-protobuf")
        .header(header::CONTENT_ENCODING, "br")
        .body(Body::from("x"))
        .unwrap();
    let response = post(&sink, LIMIT, brotli).await;
    assert_eq!(response.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(sink.count(), 0);
}

#[tokio::test]
async fn oversize_bodies_get_413_with_or_without_content_length() {
    let sink = Arc::new(RecordingSink::default());
    let body = vec![0u8; 2048];

    // No Content-Length header: the streaming limit must catch it.
    let response = post(
        &sink,
        1024,
        metrics_request("application/x-protobuf", body.clone()),
    )
    .await;
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert!(body_text(response).await.contains("1024 bytes"));

    let declared = Request::post("/v1/metrics")
        .header(header::CONTENT_TYPE, "application/x-protobuf")
        .header(header::CONTENT_LENGTH, body.len())
        .body(Body::from(body))
        .unwrap();
    let response = post(&sink, 1024, declared).await;
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(sink.count(), 0);
}

#[tokio::test]
async fn gzip_bodies_are_accepted_and_their_decompressed_size_limited() {
    let sink = Arc::new(RecordingSink::default());
    let raw = sdk_like_request().encode_to_vec();
    let request = Request::post("/v1/metrics")
        .header(header::CONTENT_TYPE, "application/x-protobuf")
        .header(header::CONTENT_ENCODING, "gzip")
        .body(Body::from(gzip(&raw)))
        .unwrap();
    let response = post(&sink, LIMIT, request).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(sink.count(), 1);

    // Small on the wire, over the limit once inflated.
    let bomb = gzip(&vec![b' '; 100_000]);
    assert!(bomb.len() < 1024);
    let request = Request::post("/v1/metrics")
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CONTENT_ENCODING, "gzip")
        .body(Body::from(bomb))
        .unwrap();
    let response = post(&sink, 1024, request).await;
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);

    let request = Request::post("/v1/metrics")
        .header(header::CONTENT_TYPE, "application/x-protobuf")
        .header(header::CONTENT_ENCODING, "gzip")
        .body(Body::from(raw))
        .unwrap();
    let response = post(&sink, LIMIT, request).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(body_text(response).await.starts_with("invalid gzip body"));
    assert_eq!(sink.count(), 1);
}

#[tokio::test]
async fn busy_sink_maps_to_503_with_retry_after() {
    let sink = Arc::new(RecordingSink::default());
    sink.set_busy(true);
    let body = sdk_like_request().encode_to_vec();
    let response = post(
        &sink,
        LIMIT,
        metrics_request("application/x-protobuf", body),
    )
    .await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.headers()[header::RETRY_AFTER], "1");
    assert!(body_text(response).await.contains("queue full"));
}

#[tokio::test]
async fn only_post_is_routed() {
    let sink = Arc::new(RecordingSink::default());
    let get = Request::get("/v1/metrics").body(Body::empty()).unwrap();
    let response = post(&sink, LIMIT, get).await;
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
}
