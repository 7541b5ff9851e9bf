//! OTLP over gRPC on tonic. The service only converts, then calls the shared ingest function.
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use tonic::codec::CompressionEncoding;
use tonic::service::Routes;
use tonic::{Code, Request, Response, Status};

use crate::ingest::ingest_metrics;
use crate::otlp::convert_metrics_request;
use crate::{Error, ReceiverState};

/// The OTLP gRPC services: `opentelemetry.proto.collector.metrics.v1.MetricsService/Export`,
/// accepting gzip and messages up to `config.max_body_bytes` (decompressed).
///
/// Serve with `tonic::transport::Server::builder().add_routes(grpc_routes(state))`.
pub fn grpc_routes(state: ReceiverState) -> Routes {
    let limit = state.config.max_body_bytes;
    let metrics = MetricsServiceServer::new(OtlpMetricsService { state })
        .accept_compressed(CompressionEncoding::Gzip)
        .send_compressed(CompressionEncoding::Gzip)
        .max_decoding_message_size(limit);
    Routes::new(metrics)
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
        let batch = convert_metrics_request(request.get_ref());
        ingest_metrics(&self.state, batch, "grpc")
            .await
            .map_err(|e| status_from_error(&e))?;
        Ok(Response::new(ExportMetricsServiceResponse::default()))
    }
}

/// The error as a gRPC status, with the code decided by `ErrorCode` in core.
fn status_from_error(error: &Error) -> Status {
    Status::new(Code::from(error.code().grpc_code()), error.to_string())
}
