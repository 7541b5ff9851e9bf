//! `POST /v3/segments` and `POST /v3/segment` behaviour of `http_router` against a recording sink.
mod common;

use std::io::Write;
use std::sync::Arc;

use axum::body::{to_bytes, Body};
use axum::http::{header, Request, StatusCode};
use axum::response::Response;
use common::{segment_json, state, RecordingSink};
use flate2::write::GzEncoder;
use skylark_core::segment::SpanType;
use skylark_receiver::http_router;
use tower::ServiceExt;

const LIMIT: usize = 64 * 1024;

async fn post(sink: &Arc<RecordingSink>, limit: usize, request: Request<Body>) -> Response {
    http_router(state(sink, limit))
        .oneshot(request)
        .await
        .unwrap()
}

fn json_request(path: &str, body: impl Into<Body>) -> Request<Body> {
    Request::post(path)
        .header(header::CONTENT_TYPE, "application/json")
        .body(body.into())
        .unwrap()
}

async fn body_text(response: Response) -> String {
    let bytes = to_bytes(response.into_body(), usize::MAX).await.unwrap();
    String::from_utf8(bytes.to_vec()).unwrap()
}

fn segment_ids(sink: &RecordingSink) -> Vec<String> {
    sink.all_segments()
        .into_iter()
        .map(|s| s.segment_id)
        .collect()
}

#[tokio::test]
async fn an_array_and_a_single_object_are_ingested_and_answered_with_empty_object() {
    let sink = Arc::new(RecordingSink::default());
    let body = format!(
        "[{},{},{}]",
        segment_json("t1", "s1", 100, 200),
        segment_json("t2", "s2", 100, 200),
        segment_json("t3", "s3", 100, 100)
    );
    let response = post(&sink, LIMIT, json_request("/v3/segments", body)).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
    assert_eq!(body_text(response).await, "{}");
    assert_eq!(segment_ids(&sink), ["s1", "s2", "s3"]);

    let response = post(
        &sink,
        LIMIT,
        json_request("/v3/segment", segment_json("t4", "s4", 1, 2)),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    let segments = sink.all_segments();
    assert_eq!(segments.len(), 4);
    let span = &segments[3].spans[0];
    assert_eq!(span.span_type, SpanType::Exit);
    assert_eq!(span.component_id, 10002);
    assert_eq!(span.peer, "api.example.com");
}

#[tokio::test]
async fn malformed_json_or_wrong_shape_is_400_and_nothing_is_ingested() {
    let sink = Arc::new(RecordingSink::default());
    let response = post(
        &sink,
        LIMIT,
        json_request("/v3/segments", "[{\"traceId\": "),
    )
    .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let text = body_text(response).await;
    assert!(
        text.starts_with("invalid segment JSON, expected an array of segments: "),
        "{text}"
    );
    assert!(text.contains("line 1 column"), "{text}");

    let response = post(
        &sink,
        LIMIT,
        json_request("/v3/segments", segment_json("t", "s", 1, 2)),
    )
    .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(body_text(response)
        .await
        .contains("expected an array of segments"));

    let response = post(&sink, LIMIT, json_request("/v3/segment", "\"text\"")).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(body_text(response)
        .await
        .contains("expected one segment object"));
    assert!(sink.all_segments().is_empty());
}

#[tokio::test]
async fn bad_elements_are_named_by_index_and_the_good_ones_ingested() {
    let sink = Arc::new(RecordingSink::default());
    let body = format!(
        r#"[{}, {{"traceId": 5}}, {}, {}, {}, {}]"#,
        segment_json("t0", "s0", 1, 2),
        segment_json("t2", "s2", 1, 2),
        segment_json("t3", "s3", 500, 400),
        segment_json("", "s4", 1, 2),
        segment_json("t5", "", 1, 2),
    );
    let response = post(&sink, LIMIT, json_request("/v3/segments", body)).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let text = body_text(response).await;
    assert!(
        text.starts_with("4 of 6 segments rejected: [1] invalid segment: "),
        "{text}"
    );
    assert!(
        text.contains("[3] span 0 ends before it starts (startTime 500, endTime 400)"),
        "{text}"
    );
    assert!(text.contains("[4] missing traceId"), "{text}");
    assert!(text.contains("[5] missing traceSegmentId"), "{text}");
    assert_eq!(segment_ids(&sink), ["s0", "s2"]);

    let response = post(
        &sink,
        LIMIT,
        json_request("/v3/segment", segment_json("t", "s", 9, 3)),
    )
    .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(body_text(response)
        .await
        .starts_with("1 of 1 segments rejected: [0] span 0 ends"));
    assert_eq!(sink.all_segments().len(), 2);
}

#[tokio::test]
async fn a_segment_over_the_span_limit_is_rejected_and_the_others_kept() {
    let sink = Arc::new(RecordingSink::default());
    let span = r#"{"spanId":1,"startTime":1,"endTime":2,"spanType":"Local"}"#;
    let spans = vec![span; 100_000].join(",");
    let huge = format!(r#"{{"traceId":"t","traceSegmentId":"huge","spans":[{spans}]}}"#);
    let body = format!(
        "[{},{huge},{}]",
        segment_json("t0", "s0", 1, 2),
        segment_json("t2", "s2", 1, 2)
    );
    assert!(body.len() > 5_000_000);
    let response = post(&sink, 16 * 1024 * 1024, json_request("/v3/segments", body)).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        body_text(response).await,
        "1 of 3 segments rejected: [1] segment has 100000 spans, more than the limit of 10000"
    );
    assert_eq!(segment_ids(&sink), ["s0", "s2"]);
}

#[tokio::test]
async fn content_type_encoding_size_and_busy() {
    let sink = Arc::new(RecordingSink::default());
    let body = format!("[{}]", segment_json("t", "s", 1, 2));

    let protobuf = Request::post("/v3/segments")
        .header(header::CONTENT_TYPE, "application/x-protobuf")
        .body(Body::from(body.clone()))
        .unwrap();
    let response = post(&sink, LIMIT, protobuf).await;
    assert_eq!(response.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(body_text(response)
        .await
        .contains("expected application/json"));
    let untyped = Request::post("/v3/segment")
        .body(Body::from(body.clone()))
        .unwrap();
    assert_eq!(
        post(&sink, LIMIT, untyped).await.status(),
        StatusCode::UNSUPPORTED_MEDIA_TYPE
    );

    let response = post(&sink, 100, json_request("/v3/segments", body.clone())).await;
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert!(sink.all_segments().is_empty());

    let mut encoder = GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(body.as_bytes()).unwrap();
    let gzipped = Request::post("/v3/segments")
        .header(header::CONTENT_TYPE, "application/json;charset=UTF-8")
        .header(header::CONTENT_ENCODING, "gzip")
        .body(Body::from(encoder.finish().unwrap()))
        .unwrap();
    assert_eq!(post(&sink, LIMIT, gzipped).await.status(), StatusCode::OK);
    assert_eq!(segment_ids(&sink), ["s"]);

    sink.set_busy(true);
    let response = post(&sink, LIMIT, json_request("/v3/segments", body)).await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(sink.all_segments().len(), 1);
}
