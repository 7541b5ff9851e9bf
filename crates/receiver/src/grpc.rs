//! OTLP and SkyWalking over gRPC on tonic. Services only convert, then call the shared ingest
//! functions.
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_server::{
    LogsService, LogsServiceServer,
};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use tonic::codec::CompressionEncoding;
use tonic::service::Routes;
use tonic::{Code, Request, Response, Status, Streaming};

use skylark_core::RejectReason;

use crate::ingest::{
    admit, ingest_logs, ingest_metrics, ingest_otlp_traces, ingest_segments, logs_response,
    metrics_response, record_rejected, record_request,
};
use crate::otlp::{convert_logs_request, convert_metrics_request, convert_traces_request};
use crate::skywalking::{
    SwCommands, SwSegmentCollection, SwSegmentObject, TraceSegmentReportService,
    TraceSegmentReportServiceServer,
};
use crate::{Error, ReceiverState, SegmentBatch};

/// A `collect` stream hands its valid segments to the sink every this many, so a long stream
/// does not pile up in memory.
const STREAM_CHUNK_SEGMENTS: usize = 1_000;

/// The gRPC services, each accepting gzip and messages up to `config.max_body_bytes`
/// (decompressed):
///
/// - `opentelemetry.proto.collector.metrics.v1.MetricsService/Export`
/// - `opentelemetry.proto.collector.logs.v1.LogsService/Export`
/// - `opentelemetry.proto.collector.trace.v1.TraceService/Export`
/// - `skywalking.v3.TraceSegmentReportService/collect` (client stream) and `/collectInSync`
///
/// Serve with `tonic::transport::Server::builder().add_routes(grpc_routes(state))`.
pub fn grpc_routes(state: ReceiverState) -> Routes {
    let limit = state.config.max_body_bytes;
    let metrics = MetricsServiceServer::new(OtlpMetricsService {
        state: state.clone(),
    })
    .accept_compressed(CompressionEncoding::Gzip)
    .send_compressed(CompressionEncoding::Gzip)
    .max_decoding_message_size(limit);
    let logs = LogsServiceServer::new(OtlpLogsService {
        state: state.clone(),
    })
    .accept_compressed(CompressionEncoding::Gzip)
    .send_compressed(CompressionEncoding::Gzip)
    .max_decoding_message_size(limit);
    let traces = TraceServiceServer::new(OtlpTraceService {
        state: state.clone(),
    })
    .accept_compressed(CompressionEncoding::Gzip)
    .send_compressed(CompressionEncoding::Gzip)
    .max_decoding_message_size(limit);
    let segments = TraceSegmentReportServiceServer::new(SegmentReportService { state })
        .accept_compressed(CompressionEncoding::Gzip)
        .send_compressed(CompressionEncoding::Gzip)
        .max_decoding_message_size(limit);
    Routes::new(metrics)
        .add_service(logs)
        .add_service(traces)
        .add_service(segments)
}

struct OtlpMetricsService {
    state: ReceiverState,
}

#[tonic::async_trait]
impl MetricsService for OtlpMetricsService {
    async fn export(
        &self,
        request: Request<ExportMetricsServiceRequest>,
    ) -> Result<Response<ExportMetricsServiceResponse>, Status> {
        let result = async {
            let _slot = admit(&self.state)?;
            let batch = convert_metrics_request(request.get_ref());
            ingest_metrics(&self.state, batch, "grpc").await
        }
        .await;
        record_request(&self.state, "grpc", "metrics", &result);
        let report = result.map_err(|e| status_from_error(&e))?;
        Ok(Response::new(metrics_response(&report)))
    }
}

struct OtlpLogsService {
    state: ReceiverState,
}

#[tonic::async_trait]
impl LogsService for OtlpLogsService {
    async fn export(
        &self,
        request: Request<ExportLogsServiceRequest>,
    ) -> Result<Response<ExportLogsServiceResponse>, Status> {
        let result = async {
            let _slot = admit(&self.state)?;
            let batch = convert_logs_request(request.into_inner());
            ingest_logs(&self.state, batch, "grpc").await
        }
        .await;
        record_request(&self.state, "grpc", "logs", &result);
        let report = result.map_err(|e| status_from_error(&e))?;
        Ok(Response::new(logs_response(&report)))
    }
}

struct OtlpTraceService {
    state: ReceiverState,
}

#[tonic::async_trait]
impl TraceService for OtlpTraceService {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        let result = async {
            let _slot = admit(&self.state)?;
            let max_spans = self.state.config.max_spans_per_segment;
            let conversion = convert_traces_request(request.get_ref(), max_spans);
            ingest_otlp_traces(&self.state, conversion, "grpc").await
        }
        .await;
        record_request(&self.state, "grpc", "traces", &result);
        let response = result.map_err(|e| status_from_error(&e))?;
        Ok(Response::new(response))
    }
}

struct SegmentReportService {
    state: ReceiverState,
}

impl SegmentReportService {
    /// Ingests the valid segments and reports the rejected ones (INVALID_ARGUMENT naming them by
    /// position), as the REST route does.
    async fn finish(&self, batch: SegmentBatch) -> crate::Result<()> {
        let (segments, rejected) = batch.into_parts();
        if let Some(Error::SegmentsRejected { rejected, .. }) = &rejected {
            record_rejected(
                &self.state,
                "segments",
                RejectReason::Malformed,
                rejected.len() as u64,
            );
        }
        ingest_segments(&self.state, segments, "grpc").await?;
        rejected.map_or(Ok(()), Err)
    }

    /// Counts the call and turns its outcome into the reply.
    fn answer(&self, result: crate::Result<()>) -> Result<Response<SwCommands>, Status> {
        record_request(&self.state, "grpc", "segments", &result);
        result
            .map(|()| Response::new(SwCommands::default()))
            .map_err(|e| status_from_error(&e))
    }
}

#[tonic::async_trait]
impl TraceSegmentReportService for SegmentReportService {
    /// A broken stream (transport or decoding error) ends the call with that error; chunks
    /// already handed to the sink stay ingested. The stream holds one in-flight slot until it
    /// ends.
    async fn collect(
        &self,
        request: Request<Streaming<SwSegmentObject>>,
    ) -> Result<Response<SwCommands>, Status> {
        let _slot = match admit(&self.state) {
            Ok(slot) => slot,
            Err(e) => return self.answer(Err(e)),
        };
        let max_spans = self.state.config.max_spans_per_segment;
        let mut stream = request.into_inner();
        let mut batch = SegmentBatch::default();
        while let Some(segment) = stream.message().await? {
            batch.push(batch.total(), Ok(segment), max_spans);
            if batch.segments.len() >= STREAM_CHUNK_SEGMENTS {
                let chunk = std::mem::take(&mut batch.segments);
                if let Err(e) = ingest_segments(&self.state, chunk, "grpc").await {
                    return self.answer(Err(e));
                }
            }
        }
        self.answer(self.finish(batch).await)
    }

    async fn collect_in_sync(
        &self,
        request: Request<SwSegmentCollection>,
    ) -> Result<Response<SwCommands>, Status> {
        let _slot = match admit(&self.state) {
            Ok(slot) => slot,
            Err(e) => return self.answer(Err(e)),
        };
        let max_spans = self.state.config.max_spans_per_segment;
        let mut batch = SegmentBatch::default();
        for (index, segment) in request.into_inner().segments.into_iter().enumerate() {
            batch.push(index, Ok(segment), max_spans);
        }
        self.answer(self.finish(batch).await)
    }
}

/// The error as a gRPC status, with the code decided by `ErrorCode` in core.
fn status_from_error(error: &Error) -> Status {
    Status::new(Code::from(error.code().grpc_code()), error.to_string())
}
