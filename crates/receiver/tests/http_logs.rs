//! `POST /v1/logs` behaviour of `http_router`, driven with `oneshot` against a recording sink.
mod common;

use std::io::Write;
use std::sync::Arc;

use axum::body::{to_bytes, Body};
use axum::http::{header, Request, StatusCode};
use axum::response::Response;
use common::{sdk_like_logs_request, state, RecordingSink};
use flate2::write::GzEncoder;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceResponse;
use opentelemetry_proto::tonic::common::v1::{any_value::Value, AnyValue, KeyValue};
use prost::Message;
use skylark_core::LogBody;
use skylark_receiver::http_router;
use tower::ServiceExt;

const LIMIT: usize = 64 * 1024;

async fn post(sink: &Arc<RecordingSink>, limit: usize, request: Request<Body>) -> Response {
    http_router(state(sink, limit))
        .oneshot(request)
        .await
        .unwrap()
}

fn logs_request(content_type: &str, body: impl Into<Body>) -> Request<Body> {
    Request::post("/v1/logs")
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

fn tag<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

#[tokio::test]
async fn protobuf_logs_reach_the_sink_and_are_answered_in_protobuf() {
    let sink = Arc::new(RecordingSink::default());
    let body = sdk_like_logs_request().encode_to_vec();
    let response = post(&sink, LIMIT, logs_request("application/x-protobuf", body)).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()[header::CONTENT_TYPE],
        "application/x-protobuf"
    );
    let bytes = to_bytes(response.into_body(), usize::MAX).await.unwrap();
    assert!(ExportLogsServiceResponse::decode(bytes)
        .unwrap()
        .partial_success
        .is_none());

    let logs = sink.all_logs();
    assert_eq!(logs.len(), 2);
    assert_eq!(logs[0].service, "mini-program-sim-wechat");
    assert_eq!(logs[0].service_instance, "sim-instance-1");
    assert_eq!(logs[0].timestamp_ms, 1_795_929_348_521);
    assert_eq!(
        logs[0].body,
        LogBody::Text("TypeError: x is undefined".to_owned())
    );
    assert_eq!(tag(&logs[0].tags, "exception.type"), Some("js"));
    assert_eq!(tag(&logs[1].tags, "exception.type"), Some("promise"));
    assert_eq!(
        tag(&logs[1].source_attributes, "miniprogram.platform"),
        Some("wechat")
    );
}

#[tokio::test]
async fn json_and_gzip_logs_are_accepted() {
    let sink = Arc::new(RecordingSink::default());
    let json = serde_json::to_vec(&sdk_like_logs_request()).unwrap();
    let response = post(
        &sink,
        LIMIT,
        logs_request("application/json; charset=utf-8", json.clone()),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
    assert_eq!(body_text(response).await, "{}");

    let gzipped = Request::post("/v1/logs")
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CONTENT_ENCODING, "gzip")
        .body(Body::from(gzip(&json)))
        .unwrap();
    let response = post(&sink, LIMIT, gzipped).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(sink.logs.lock().unwrap().len(), 2);
    assert_eq!(sink.all_logs().len(), 4);
}

#[tokio::test]
async fn malformed_bodies_get_400_with_reason() {
    let sink = Arc::new(RecordingSink::default());
    let good = sdk_like_logs_request().encode_to_vec();
    let response = post(
        &sink,
        LIMIT,
        logs_request("application/x-protobuf", good[..good.len() - 4].to_vec()),
    )
    .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let text = body_text(response).await;
    assert!(text.starts_with("invalid OTLP protobuf: "), "{text}");

    let response = post(
        &sink,
        LIMIT,
        logs_request("application/json", r#"{"resourceLogs": [{]}"#),
    )
    .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let text = body_text(response).await;
    assert!(text.starts_with("invalid OTLP JSON: "), "{text}");
    assert!(text.contains("line 1 column"), "{text}");
    assert!(sink.all_logs().is_empty());
}

#[tokio::test]
async fn invalid_utf8_in_a_protobuf_string_fails_the_request() {
    let sink = Arc::new(RecordingSink::default());
    let mut request = sdk_like_logs_request();
    request.resource_logs[0].scope_logs[0].log_records[0].body = Some(AnyValue {
        value: Some(Value::StringValue("@@@@".to_owned())),
    });
    let mut body = request.encode_to_vec();
    let at = body.windows(4).position(|w| w == b"@@@@").unwrap();
    body[at..at + 4].copy_from_slice(&[0xff, 0xfe, 0xfd, 0xfc]);
    let response = post(&sink, LIMIT, logs_request("application/x-protobuf", body)).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let text = body_text(response).await;
    assert!(text.starts_with("invalid OTLP protobuf: "), "{text}");
    assert!(text.to_lowercase().contains("utf-8"), "{text}");
    assert!(sink.all_logs().is_empty());
}

#[tokio::test]
async fn duplicate_keys_drop_one_record_and_big_records_pass() {
    let sink = Arc::new(RecordingSink::default());
    let mut request = sdk_like_logs_request();
    let records = &mut request.resource_logs[0].scope_logs[0].log_records;
    let duplicate = records[0].attributes[0].clone();
    records[0].attributes.push(duplicate);
    records[1].body = Some(AnyValue {
        value: Some(Value::StringValue("x".repeat(1024 * 1024 + 10))),
    });
    records[1].attributes.extend((0..10_000).map(|i| KeyValue {
        key: format!("attr.{i}"),
        value: Some(AnyValue {
            value: Some(Value::IntValue(i)),
        }),
        ..Default::default()
    }));
    let body = request.encode_to_vec();
    let response = post(
        &sink,
        4 * 1024 * 1024,
        logs_request("application/x-protobuf", body),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    let logs = sink.all_logs();
    assert_eq!(logs.len(), 1, "the record with a repeated key is dropped");
    assert_eq!(logs[0].body.content().len(), 1024 * 1024 + 10);
    // Two SDK attributes, the 10,000 added, and the `level` from the record's severity.
    assert_eq!(logs[0].tags.len(), 2 + 10_000 + 1);
    assert_eq!(tag(&logs[0].tags, "level"), Some("ERROR"));
    assert_eq!(tag(&logs[0].tags, "attr.9999"), Some("9999"));
}

#[tokio::test]
async fn a_request_without_service_name_is_accepted_but_not_ingested() {
    let sink = Arc::new(RecordingSink::default());
    let mut request = sdk_like_logs_request();
    request.resource_logs[0]
        .resource
        .as_mut()
        .unwrap()
        .attributes
        .retain(|kv| kv.key != "service.name");
    let response = post(
        &sink,
        LIMIT,
        logs_request("application/x-protobuf", request.encode_to_vec()),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK, "OAP answers 200 too");
    assert!(sink.logs.lock().unwrap().is_empty());
}

#[tokio::test]
async fn content_type_size_and_busy_errors() {
    let sink = Arc::new(RecordingSink::default());
    let response = post(&sink, LIMIT, logs_request("text/plain", "hello")).await;
    assert_eq!(response.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(body_text(response).await.contains("text/plain"));

    let body = sdk_like_logs_request().encode_to_vec();
    let response = post(
        &sink,
        100,
        logs_request("application/x-protobuf", body.clone()),
    )
    .await;
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert!(body_text(response).await.contains("100 bytes"));

    sink.set_busy(true);
    let response = post(&sink, LIMIT, logs_request("application/x-protobuf", body)).await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.headers()[header::RETRY_AFTER], "1");
    assert!(sink.all_logs().is_empty());
}
