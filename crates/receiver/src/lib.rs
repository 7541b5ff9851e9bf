//! Skylark's ingress: decodes what agents send and hands it to an [`IngestSink`].
//!
//! - OTLP metrics over HTTP (`POST /v1/metrics`, [`http_router`]) and gRPC
//!   (`opentelemetry.proto.collector.metrics.v1.MetricsService/Export`, [`grpc_routes`]).
//! - The conversion itself ([`decode_metrics`], [`convert_metrics_request`]) follows OAP's
//!   `OpenTelemetryMetricRequestProcessor` + `PrometheusMetricConverter`, so MAL rules written for
//!   OAP see the same sample names, labels and values.
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

pub use config::{ReceiverConfig, ReceiverState, DEFAULT_MAX_BODY_BYTES};
pub use error::{Error, Result};
pub use grpc::grpc_routes;
pub use http::http_router;
pub use otlp::{convert_metrics_request, decode_metrics, java_double_to_string};
