use std::sync::Arc;

use skylark_core::telemetry::{Telemetry, RECEIVER_INFLIGHT_REQUESTS_LIMIT};
use skylark_core::IngestSink;
use tokio::sync::Semaphore;

/// Largest accepted request body by default: 8 MiB (the SDK's bodies are under 6 KB).
pub const DEFAULT_MAX_BODY_BYTES: usize = 8 * 1024 * 1024;

/// Most spans one trace segment may carry by default (the SDK sends one; Java agents cap theirs
/// at 300 by default).
pub const DEFAULT_MAX_SPANS_PER_SEGMENT: usize = 10_000;

/// Most requests ingested at once by default; more get 503 (`Retry-After: 1`) or gRPC
/// `UNAVAILABLE`. With the SDK's bodies (a few KB) this costs little memory, and it caps the
/// bodies held at once at 32 × `max_body_bytes`.
pub const DEFAULT_MAX_INFLIGHT_REQUESTS: usize = 32;

/// Receiver settings.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct ReceiverConfig {
    /// Largest accepted request in bytes. Applies to the body as received *and* to the body after
    /// gzip decompression (HTTP), and is the gRPC max decoding message size.
    pub max_body_bytes: usize,
    /// A trace segment with more spans than this is rejected (the rest of its batch is kept).
    pub max_spans_per_segment: usize,
    /// Most requests being ingested at once (HTTP: from before the body is read; gRPC: after
    /// tonic decoded the message; a `collect` stream holds its slot until it ends). Past it,
    /// requests are refused as busy instead of queueing in memory. 0 is treated as 1.
    pub max_inflight_requests: usize,
}

impl Default for ReceiverConfig {
    fn default() -> Self {
        ReceiverConfig {
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            max_spans_per_segment: DEFAULT_MAX_SPANS_PER_SEGMENT,
            max_inflight_requests: DEFAULT_MAX_INFLIGHT_REQUESTS,
        }
    }
}

/// Why the server cannot take a request now (see [`Backpressure`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Overload {
    /// Bounded label value for `skylark_receiver_busy_rejections_total{reason}`.
    pub reason: &'static str,
    /// What the client is told.
    pub detail: String,
}

/// A check the receivers run before taking a request, so a saturated stage behind the sink
/// (aggregation memory, a slow disk) refuses new work with 503/`UNAVAILABLE` before the request
/// is decoded or logged anywhere.
pub trait Backpressure: Send + Sync + 'static {
    /// `Some` when new requests must be refused now.
    fn overloaded(&self) -> Option<Overload>;
}

/// What the HTTP and gRPC handlers share: where decoded data goes, the limits and the
/// self-metrics.
#[derive(Clone)]
pub struct ReceiverState {
    /// Receives every successfully decoded request.
    pub sink: Arc<dyn IngestSink>,
    /// Limits.
    pub config: ReceiverConfig,
    /// Where request and item counts go.
    pub telemetry: Arc<Telemetry>,
    /// Checked before each request, after the in-flight limit.
    pub backpressure: Option<Arc<dyn Backpressure>>,
    /// Slots of `config.max_inflight_requests`.
    pub(crate) inflight: Arc<Semaphore>,
}

impl ReceiverState {
    /// A state handing data to `sink` under `config`, counting into a registry of its own.
    pub fn new(sink: Arc<dyn IngestSink>, config: ReceiverConfig) -> Self {
        let slots = config
            .max_inflight_requests
            .clamp(1, Semaphore::MAX_PERMITS);
        let state = ReceiverState {
            sink,
            config,
            telemetry: Arc::new(Telemetry::new()),
            backpressure: None,
            inflight: Arc::new(Semaphore::new(slots)),
        };
        state.publish_limit();
        state
    }

    /// The same state counting into `telemetry` (the server's shared registry).
    pub fn with_telemetry(mut self, telemetry: Arc<Telemetry>) -> Self {
        self.telemetry = telemetry;
        self.publish_limit();
        self
    }

    /// The same state also refusing requests while `backpressure` says so.
    pub fn with_backpressure(mut self, backpressure: Arc<dyn Backpressure>) -> Self {
        self.backpressure = Some(backpressure);
        self
    }

    fn publish_limit(&self) {
        let limit = self
            .config
            .max_inflight_requests
            .clamp(1, Semaphore::MAX_PERMITS);
        self.telemetry
            .gauge(RECEIVER_INFLIGHT_REQUESTS_LIMIT, &[])
            .set(i64::try_from(limit).unwrap_or(i64::MAX));
    }
}

impl std::fmt::Debug for ReceiverState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReceiverState")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_defaults_to_eight_mebibytes_and_rejects_unknown_fields() {
        let config: ReceiverConfig = serde_json::from_str("{}").unwrap();
        assert_eq!(config.max_body_bytes, 8 * 1024 * 1024);
        assert_eq!(config.max_spans_per_segment, 10_000);
        assert_eq!(config.max_inflight_requests, 32);
        let config: ReceiverConfig =
            serde_json::from_str(r#"{"maxBodyBytes": 1024, "maxSpansPerSegment": 5}"#).unwrap();
        assert_eq!(config.max_body_bytes, 1024);
        assert_eq!(config.max_spans_per_segment, 5);
        let err = serde_json::from_str::<ReceiverConfig>(r#"{"maxBodyByte": 1}"#).unwrap_err();
        assert!(err.to_string().contains("unknown field"), "{err}");
    }
}
