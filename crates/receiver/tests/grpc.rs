//! The gRPC services (OTLP metrics and logs, SkyWalking segment reports) served by tonic on a
//! real socket.
mod common;

use std::sync::Arc;

use common::{sdk_like_logs_request, sdk_like_request, state, RecordingSink};
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_client::LogsServiceClient;
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_client::MetricsServiceClient;
use skylark_core::segment::{SpanLayer, SpanType};
use skylark_receiver::grpc_routes;
use sw::trace_segment_report_service_client::TraceSegmentReportServiceClient;
use tonic::codec::CompressionEncoding;
use tonic::transport::server::TcpIncoming;
use tonic::transport::Server;
use tonic::Code;

/// The crate's generated SkyWalking types (build.rs also generates the client for this test).
mod sw {
    #![allow(dead_code, clippy::all)]
    tonic::include_proto!("skywalking.v3");
}

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
            &families["miniprogram_app_launch_duration"].samples[0].labels["job_name"],
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

#[tokio::test]
async fn logs_export_reaches_the_sink() {
    let sink = Arc::new(RecordingSink::default());
    let url = serve(&sink, 1024 * 1024).await;
    let mut client = LogsServiceClient::connect(url)
        .await
        .unwrap()
        .send_compressed(CompressionEncoding::Gzip);
    let response = client.export(sdk_like_logs_request()).await.unwrap();
    assert!(response.get_ref().partial_success.is_none());
    let logs = sink.all_logs();
    assert_eq!(logs.len(), 2);
    assert_eq!(logs[0].service, "mini-program-sim-wechat");
    assert!(logs[1]
        .tags
        .contains(&("exception.type".to_owned(), "promise".to_owned())));

    sink.set_busy(true);
    let status = client.export(sdk_like_logs_request()).await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);
}

fn sw_segment(segment_id: &str, start: i64, end: i64) -> sw::SegmentObject {
    sw::SegmentObject {
        trace_id: format!("trace-{segment_id}"),
        trace_segment_id: segment_id.to_owned(),
        service: "mini-program-sim-alipay".to_owned(),
        service_instance: "-".to_owned(),
        spans: vec![sw::SpanObject {
            span_id: 0,
            parent_span_id: -1,
            start_time: start,
            end_time: end,
            operation_name: "pages/index/index".to_owned(),
            peer: "api.example.com".to_owned(),
            span_type: sw::SpanType::Exit as i32,
            span_layer: sw::SpanLayer::Http as i32,
            component_id: 10003,
            tags: vec![sw::KeyStringValuePair {
                key: "http.method".to_owned(),
                value: "GET".to_owned(),
            }],
            ..Default::default()
        }],
        is_size_limited: false,
    }
}

fn segment_ids(sink: &RecordingSink) -> Vec<String> {
    sink.all_segments()
        .into_iter()
        .map(|s| s.segment_id)
        .collect()
}

#[tokio::test]
async fn collect_stream_of_three_is_ingested_and_answered_with_empty_commands() {
    let sink = Arc::new(RecordingSink::default());
    let url = serve(&sink, 1024 * 1024).await;
    let mut client = TraceSegmentReportServiceClient::connect(url).await.unwrap();
    let stream = tonic::codegen::tokio_stream::iter(vec![
        sw_segment("s1", 10, 20),
        sw_segment("s2", 30, 40),
        sw_segment("s3", 50, 50),
    ]);
    let response = client.collect(stream).await.unwrap();
    assert!(response.get_ref().commands.is_empty());
    assert_eq!(segment_ids(&sink), ["s1", "s2", "s3"]);
    let span = &sink.all_segments()[0].spans[0];
    assert_eq!(span.span_type, SpanType::Exit);
    assert_eq!(span.span_layer, SpanLayer::Http);
    assert_eq!(span.component_id, 10003);
    assert_eq!((span.start_time_ms, span.end_time_ms), (10, 20));

    // A bad segment in the stream: the others are kept, the call names it.
    let stream = tonic::codegen::tokio_stream::iter(vec![
        sw_segment("s4", 10, 20),
        sw_segment("s5", 30, 20),
    ]);
    let status = client.collect(stream).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(
        status.message(),
        "1 of 2 segments rejected: [1] span 0 ends before it starts (startTime 30, endTime 20)"
    );
    assert_eq!(segment_ids(&sink), ["s1", "s2", "s3", "s4"]);
}

#[tokio::test]
async fn collect_in_sync_ingests_the_collection_and_rejects_missing_ids() {
    let sink = Arc::new(RecordingSink::default());
    let url = serve(&sink, 1024 * 1024).await;
    let mut client = TraceSegmentReportServiceClient::connect(url)
        .await
        .unwrap()
        .send_compressed(CompressionEncoding::Gzip);
    let collection = sw::SegmentCollection {
        segments: vec![sw_segment("a", 1, 2), sw_segment("b", 3, 4)],
    };
    let response = client.collect_in_sync(collection).await.unwrap();
    assert!(response.get_ref().commands.is_empty());
    assert_eq!(segment_ids(&sink), ["a", "b"]);

    let mut no_trace = sw_segment("c", 1, 2);
    no_trace.trace_id.clear();
    let collection = sw::SegmentCollection {
        segments: vec![no_trace, sw_segment("d", 1, 2)],
    };
    let status = client.collect_in_sync(collection).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(
        status.message(),
        "1 of 2 segments rejected: [0] missing traceId"
    );
    assert_eq!(segment_ids(&sink), ["a", "b", "d"]);

    sink.set_busy(true);
    let status = client
        .collect_in_sync(sw::SegmentCollection {
            segments: vec![sw_segment("e", 1, 2)],
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);
}
