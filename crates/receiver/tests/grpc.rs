//! OTLP gRPC `MetricsService/Export` served by tonic on a real socket.
mod common;

use std::sync::Arc;

use common::{sdk_like_request, state, RecordingSink};
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_client::MetricsServiceClient;
use skylark_receiver::grpc_routes;
use tonic::codec::CompressionEncoding;
use tonic::transport::server::TcpIncoming;
use tonic::transport::Server;
use tonic::Code;

async fn serve(sink: &Arc<RecordingSink>, limit: usize) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let routes = grpc_routes(state(sink, limit));
    tokio::spawn(async move {
        Server::builder()
            .add_routes(routes)
            .serve_with_incoming(TcpIncoming::from(listener))
            .await
            .unwrap();
    });
    format!("http://{addr}")
}

#[tokio::test]
async fn export_reaches_the_sink_plain_and_gzipped() {
    let sink = Arc::new(RecordingSink::default());
    let url = serve(&sink, 1024 * 1024).await;
    let mut client = MetricsServiceClient::connect(url.clone()).await.unwrap();
    let response = client.export(sdk_like_request()).await.unwrap();
    assert!(response.get_ref().partial_success.is_none());

    let mut gzip_client = MetricsServiceClient::connect(url)
        .await
        .unwrap()
        .send_compressed(CompressionEncoding::Gzip)
        .accept_compressed(CompressionEncoding::Gzip);
    gzip_client.export(sdk_like_request()).await.unwrap();

    let batches = sink.batches.lock().unwrap();
    assert_eq!(batches.len(), 2);
    for batch in batches.iter() {
        let families = &batch.resources[0];
        assert_eq!(
            families["miniprogram_app_launch_duration"].samples[0].labels["job_name"],
            "mini-program-sim-wechat"
        );
        assert_eq!(families["miniprogram_request_duration"].samples.len(), 11);
    }
}

#[tokio::test]
async fn busy_sink_is_unavailable_and_oversize_is_refused() {
    let sink = Arc::new(RecordingSink::default());
    let url = serve(&sink, 200).await;
    let mut client = MetricsServiceClient::connect(url).await.unwrap();

    // The SDK-like request is ~500 bytes, over the 200-byte limit.
    let status = client.export(sdk_like_request()).await.unwrap_err();
    assert_eq!(status.code(), Code::OutOfRange, "{status:?}");
    assert_eq!(sink.count(), 0);

    sink.set_busy(true);
    let status = client
        .export(opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest::default())
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);
    assert!(
        status.message().contains("queue full"),
        "{}",
        status.message()
    );

    sink.set_busy(false);
    client
        .export(opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest::default())
        .await
        .unwrap();
    assert_eq!(sink.count(), 1);
}
