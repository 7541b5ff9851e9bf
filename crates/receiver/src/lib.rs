//! Skylark's ingress: decodes what agents send and hands it to an [`IngestSink`].
//!
//! - OTLP metrics and logs over HTTP (`POST /v1/metrics`, `POST /v1/logs`, [`http_router`]) and
//!   gRPC (`MetricsService/Export`, `LogsService/Export`, [`grpc_routes`]).
//! - SkyWalking trace segments over HTTP (`POST /v3/segments`, `POST /v3/segment`, proto3 JSON)
//!   and gRPC (`skywalking.v3.TraceSegmentReportService/collect` and `/collectInSync`).
//! - The metrics conversion ([`decode_metrics`], [`convert_metrics_request`]) follows OAP's
//!   `OpenTelemetryMetricRequestProcessor` + `PrometheusMetricConverter`, so MAL rules written for
//!   OAP see the same sample names, labels and values; the logs conversion ([`decode_logs`])
//!   follows `OpenTelemetryLogHandler`, so LAL rules see the same fields.
//!
//! - Datadog-format RUM events (`POST /api/v2/rum`, `?ddforward=`, [`rum_router`]) from the
//!   Flashcat mini-program SDK and Datadog's browser SDK.
//!
//! This crate only decodes and validates; it never depends on storage or the rule engines.
//!
//! [`IngestSink`]: skylark_core::IngestSink
#![warn(missing_docs, unreachable_pub)]

mod config;
mod error;
mod grpc;
mod http;
mod ingest;
mod otlp;
mod rum;
mod skywalking;

pub use config::{
    Backpressure, Overload, ReceiverConfig, ReceiverState, DEFAULT_MAX_BODY_BYTES,
    DEFAULT_MAX_INFLIGHT_REQUESTS, DEFAULT_MAX_SPANS_PER_SEGMENT,
};
pub use error::{Error, RejectedSegment, Result, SegmentRejection};
pub use grpc::grpc_routes;
pub use http::http_router;
pub use otlp::{
    convert_logs_request, convert_metrics_request, decode_logs, decode_metrics,
    java_double_to_string, LogBatch,
};
pub use rum::{
    decode_rum_ndjson, rum_router, ClientToken, ClientTokens, RumError, RumIntakeConfig,
    RUM_INTAKE_PATH,
};
pub use skywalking::{decode_segment_json, decode_segments_json, SegmentBatch};
