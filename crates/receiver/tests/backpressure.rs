//! Bounded ingestion: past `max_inflight_requests`, or while the backpressure check says so,
//! requests are refused as busy (HTTP 503 + `Retry-After`, gRPC `UNAVAILABLE`) and counted.
mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use common::sdk_like_request;
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_client::MetricsServiceClient;
use prost::Message;
use skylark_core::telemetry::{
    Telemetry, RECEIVER_BUSY_REJECTIONS_TOTAL, RECEIVER_INFLIGHT_REQUESTS, RECEIVER_ITEMS_TOTAL,
    RECEIVER_REQUESTS_TOTAL,
};
use skylark_core::{IngestError, IngestReport, IngestSink, MetricBatch};
use skylark_receiver::{
    grpc_routes, http_router, Backpressure, Overload, ReceiverConfig, ReceiverState,
};
use tokio::sync::Notify;
use tonic::transport::server::TcpIncoming;
use tower::ServiceExt;

/// Holds every metrics request until `release` is notified, so slots stay taken.
#[derive(Default)]
struct GatedSink {
    entered: Notify,
    release: Notify,
}

#[async_trait::async_trait]
impl IngestSink for GatedSink {
    async fn ingest_metrics(&self, batch: MetricBatch) -> Result<IngestReport, IngestError> {
        self.entered.notify_one();
        self.release.notified().await;
        let accepted = batch
            .resources
            .iter()
            .flat_map(|r| r.values())
            .map(|f| f.samples.len() as u64)
            .sum();
        Ok(IngestReport {
            accepted,
            ..Default::default()
        })
    }
}

fn one_slot(sink: &Arc<GatedSink>) -> ReceiverState {
    ReceiverState::new(
        sink.clone(),
        ReceiverConfig {
            max_inflight_requests: 1,
            ..ReceiverConfig::default()
        },
    )
    .with_telemetry(Arc::new(Telemetry::new()))
}

fn metrics_post() -> Request<Body> {
    Request::post("/v1/metrics")
        .header(header::CONTENT_TYPE, "application/x-protobuf")
        .body(Body::from(sdk_like_request().encode_to_vec()))
        .unwrap()
}

fn requests(state: &ReceiverState, protocol: &'static str, status: &'static str) -> u64 {
    state
        .telemetry
        .counter(
            RECEIVER_REQUESTS_TOTAL,
            &[
                ("protocol", protocol),
                ("signal", "metrics"),
                ("status", status),
            ],
        )
        .get()
}

#[tokio::test]
async fn http_answers_503_with_retry_after_while_every_slot_is_taken() {
    let sink = Arc::new(GatedSink::default());
    let state = one_slot(&sink);
    let router = http_router(state.clone());

    let first = tokio::spawn(router.clone().oneshot(metrics_post()));
    sink.entered.notified().await;
    assert_eq!(
        state.telemetry.gauge(RECEIVER_INFLIGHT_REQUESTS, &[]).get(),
        1
    );

    let refused = router.clone().oneshot(metrics_post()).await.unwrap();
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(refused.headers()[header::RETRY_AFTER], "1");

    sink.release.notify_one();
    let accepted = first.await.unwrap().unwrap();
    assert_eq!(accepted.status(), StatusCode::OK);

    // The slot is free again.
    let again = tokio::spawn(router.oneshot(metrics_post()));
    sink.entered.notified().await;
    sink.release.notify_one();
    assert_eq!(again.await.unwrap().unwrap().status(), StatusCode::OK);

    assert_eq!(requests(&state, "http", "ok"), 2);
    assert_eq!(requests(&state, "http", "unavailable"), 1);
    let busy = &state.telemetry;
    assert_eq!(
        busy.counter(RECEIVER_BUSY_REJECTIONS_TOTAL, &[("reason", "inflight")])
            .get(),
        1
    );
    assert_eq!(busy.gauge(RECEIVER_INFLIGHT_REQUESTS, &[]).get(), 0);
    let accepted_items = busy
        .counter(
            RECEIVER_ITEMS_TOTAL,
            &[("signal", "metrics"), ("outcome", "accepted")],
        )
        .get();
    assert!(accepted_items > 0);
}

#[tokio::test]
async fn grpc_answers_unavailable_while_every_slot_is_taken() {
    let sink = Arc::new(GatedSink::default());
    let state = one_slot(&sink);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let routes = grpc_routes(state.clone());
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_routes(routes)
            .serve_with_incoming(TcpIncoming::from(listener))
            .await
            .unwrap();
    });
    let mut client = MetricsServiceClient::connect(url.clone()).await.unwrap();
    let mut second = MetricsServiceClient::connect(url).await.unwrap();

    let first = tokio::spawn(async move { client.export(sdk_like_request()).await });
    sink.entered.notified().await;
    let refused = second.export(sdk_like_request()).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unavailable);
    assert!(refused.message().contains("busy"), "{}", refused.message());

    sink.release.notify_one();
    first.await.unwrap().unwrap();
    assert_eq!(requests(&state, "grpc", "ok"), 1);
    assert_eq!(requests(&state, "grpc", "unavailable"), 1);
}

/// Says "overloaded" while set.
struct Switch(AtomicBool);

impl Backpressure for Switch {
    fn overloaded(&self) -> Option<Overload> {
        self.0.load(Ordering::SeqCst).then(|| Overload {
            reason: "memory",
            detail: "aggregation is over its memory budget".to_owned(),
        })
    }
}

#[tokio::test]
async fn backpressure_refuses_until_it_clears() {
    let sink = Arc::new(common::RecordingSink::default());
    let switch = Arc::new(Switch(AtomicBool::new(true)));
    let state = ReceiverState::new(sink.clone(), ReceiverConfig::default())
        .with_backpressure(switch.clone());
    let router = http_router(state.clone());

    let refused = router.clone().oneshot(metrics_post()).await.unwrap();
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(refused.headers()[header::RETRY_AFTER], "1");
    assert_eq!(sink.count(), 0, "a refused request never reaches the sink");

    switch.0.store(false, Ordering::SeqCst);
    let accepted = router.oneshot(metrics_post()).await.unwrap();
    assert_eq!(accepted.status(), StatusCode::OK);
    assert_eq!(sink.count(), 1);
    assert_eq!(
        state
            .telemetry
            .counter(RECEIVER_BUSY_REJECTIONS_TOTAL, &[("reason", "memory")])
            .get(),
        1
    );
    // The refused request released its slot.
    assert_eq!(
        state.telemetry.gauge(RECEIVER_INFLIGHT_REQUESTS, &[]).get(),
        0
    );
}
