//! OTLP/HTTP body encodings: content-type dispatch and decoding, shared by every signal.
use serde::de::DeserializeOwned;

use crate::{Error, Result};

/// How an OTLP/HTTP body is encoded, from its `Content-Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OtlpEncoding {
    /// `application/x-protobuf` (or `application/protobuf`).
    Protobuf,
    /// `application/json`.
    Json,
}

impl OtlpEncoding {
    /// Reads a `Content-Type` value; parameters (`; charset=utf-8`) and case are ignored.
    pub(crate) fn from_content_type(content_type: &str) -> Result<Self> {
        let essence = content_type
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        match essence.as_str() {
            "application/x-protobuf" | "application/protobuf" => Ok(OtlpEncoding::Protobuf),
            "application/json" => Ok(OtlpEncoding::Json),
            _ => Err(Error::UnsupportedContentType(content_type.to_owned())),
        }
    }

    /// The `Content-Type` of responses in this encoding.
    pub(crate) fn content_type(self) -> &'static str {
        match self {
            OtlpEncoding::Protobuf => "application/x-protobuf",
            OtlpEncoding::Json => "application/json",
        }
    }

    /// Decodes an (already decompressed) body into an OTLP message.
    pub(crate) fn decode<T>(self, body: &[u8]) -> Result<T>
    where
        T: prost::Message + DeserializeOwned + Default,
    {
        match self {
            OtlpEncoding::Protobuf => T::decode(body).map_err(Error::Protobuf),
            OtlpEncoding::Json => serde_json::from_slice(body).map_err(Error::Json),
        }
    }

    /// Encodes a response message. A fully successful OTLP response is empty, so its JSON is the
    /// literal `{}` (what OAP answers) rather than serde's rendering with `null` fields; one with
    /// a `partialSuccess` is rendered in full.
    pub(crate) fn encode_response<T>(self, response: &T) -> Vec<u8>
    where
        T: prost::Message + serde::Serialize + Default + PartialEq,
    {
        match self {
            OtlpEncoding::Protobuf => response.encode_to_vec(),
            OtlpEncoding::Json if *response == T::default() => b"{}".to_vec(),
            OtlpEncoding::Json => serde_json::to_vec(response).unwrap_or_else(|e| {
                tracing::warn!(error = %e, "could not render an OTLP response as JSON");
                b"{}".to_vec()
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_type_parameters_and_case_are_ignored() {
        assert_eq!(
            OtlpEncoding::from_content_type("application/json; charset=utf-8").unwrap(),
            OtlpEncoding::Json
        );
        assert_eq!(
            OtlpEncoding::from_content_type("Application/X-Protobuf").unwrap(),
            OtlpEncoding::Protobuf
        );
        assert_eq!(
            OtlpEncoding::from_content_type("application/protobuf").unwrap(),
            OtlpEncoding::Protobuf
        );
        let err = OtlpEncoding::from_content_type("text/plain").unwrap_err();
        assert_eq!(err.code(), skylark_core::ErrorCode::UnsupportedMediaType);
        assert!(err.to_string().contains("text/plain"), "{err}");
        assert!(OtlpEncoding::from_content_type("").is_err());
    }

    #[test]
    fn json_responses_are_empty_unless_something_was_refused() {
        use opentelemetry_proto::tonic::collector::logs::v1::{
            ExportLogsPartialSuccess, ExportLogsServiceResponse,
        };
        let empty = ExportLogsServiceResponse::default();
        assert_eq!(OtlpEncoding::Json.encode_response(&empty), b"{}");
        let partial = ExportLogsServiceResponse {
            partial_success: Some(ExportLogsPartialSuccess {
                rejected_log_records: 2,
                error_message: "rejected: 2 future_timestamp".to_owned(),
            }),
        };
        let json: serde_json::Value =
            serde_json::from_slice(&OtlpEncoding::Json.encode_response(&partial)).unwrap();
        assert_eq!(
            json["partialSuccess"]["errorMessage"],
            "rejected: 2 future_timestamp"
        );
        let proto = OtlpEncoding::Protobuf.encode_response(&partial);
        assert_eq!(
            <ExportLogsServiceResponse as prost::Message>::decode(proto.as_slice()).unwrap(),
            partial
        );
    }
}
