use std::sync::Arc;

use skylark_core::IngestSink;

/// Largest accepted request body by default: 8 MiB (the SDK's bodies are under 6 KB).
pub const DEFAULT_MAX_BODY_BYTES: usize = 8 * 1024 * 1024;

/// Most spans one trace segment may carry by default (the SDK sends one; Java agents cap theirs
/// at 300 by default).
pub const DEFAULT_MAX_SPANS_PER_SEGMENT: usize = 10_000;

/// Receiver settings.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct ReceiverConfig {
    /// Largest accepted request in bytes. Applies to the body as received *and* to the body after
    /// gzip decompression (HTTP), and is the gRPC max decoding message size.
    pub max_body_bytes: usize,
    /// A trace segment with more spans than this is rejected (the rest of its batch is kept).
    pub max_spans_per_segment: usize,
}

impl Default for ReceiverConfig {
    fn default() -> Self {
        ReceiverConfig {
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            max_spans_per_segment: DEFAULT_MAX_SPANS_PER_SEGMENT,
        }
    }
}

/// What the HTTP and gRPC handlers share: where decoded data goes and the limits.
#[derive(Clone)]
pub struct ReceiverState {
    /// Receives every successfully decoded request.
    pub sink: Arc<dyn IngestSink>,
    /// Limits.
    pub config: ReceiverConfig,
}

impl ReceiverState {
    /// A state handing data to `sink` under `config`.
    pub fn new(sink: Arc<dyn IngestSink>, config: ReceiverConfig) -> Self {
        ReceiverState { sink, config }
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
        let config: ReceiverConfig =
            serde_json::from_str(r#"{"maxBodyBytes": 1024, "maxSpansPerSegment": 5}"#).unwrap();
        assert_eq!(config.max_body_bytes, 1024);
        assert_eq!(config.max_spans_per_segment, 5);
        let err = serde_json::from_str::<ReceiverConfig>(r#"{"maxBodyByte": 1}"#).unwrap_err();
        assert!(err.to_string().contains("unknown field"), "{err}");
    }
}
