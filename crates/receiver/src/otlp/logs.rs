//! OTLP logs → [`LogData`], as OAP's `OpenTelemetryLogHandler` does it (oap-semantics §3.1), with
//! one deliberate deviation: duplicate attribute keys, which make OAP fail the whole request
//! (`Collectors.toMap` throws), drop only what carries them:
//!
//! - a log record with a repeated attribute key is dropped, its siblings are kept;
//! - a resource with a repeated attribute key is dropped with all its records.
//!
//! A `ResourceLogs` without a non-empty `service.name` is discarded, as in OAP. Every dropped
//! record is counted in [`LogBatch::rejected`].
//!
//! Nothing is truncated here: a body over 1 MiB or 10,000 attributes pass through (storage
//! truncates). A protobuf string field that is not UTF-8 fails prost's decoding, so such a
//! request is refused as a whole (HTTP 400 / gRPC INVALID_ARGUMENT with prost's reason).
use std::collections::HashSet;

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value::Value as OtlpValue, KeyValue};
use opentelemetry_proto::tonic::logs::v1::{LogRecord as OtlpLogRecord, ResourceLogs};
use skylark_core::{LogBody, LogData};

use super::attributes::log_value_string;
use super::OtlpEncoding;
use crate::Result;

const SERVICE_NAME: &str = "service.name";
const SERVICE_LAYER: &str = "service.layer";
const SERVICE_INSTANCE_ID: &str = "service.instance.id";
const SERVICE_INSTANCE: &str = "service.instance";

/// The logs of one OTLP request, ready for LAL.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LogBatch {
    /// Converted records, in request order.
    pub logs: Vec<LogData>,
    /// Records dropped: no `service.name` on their resource, or a repeated attribute key.
    pub rejected: u64,
}

/// Decodes an (already decompressed) OTLP/HTTP logs body and converts it.
///
/// `content_type` is the request's `Content-Type` (`application/x-protobuf`,
/// `application/protobuf` or `application/json`, parameters allowed).
pub fn decode_logs(content_type: &str, body: &[u8]) -> Result<LogBatch> {
    let encoding = OtlpEncoding::from_content_type(content_type)?;
    let request: ExportLogsServiceRequest = encoding.decode(body)?;
    Ok(convert_logs_request(request))
}

/// Converts a decoded OTLP logs request. Never fails: what cannot be converted is dropped and
/// counted (module docs). Takes the request by value so large bodies are moved, not copied.
pub fn convert_logs_request(request: ExportLogsServiceRequest) -> LogBatch {
    let mut batch = LogBatch::default();
    for resource_logs in request.resource_logs {
        add_resource_logs(&mut batch, resource_logs);
    }
    batch
}

fn record_count(resource_logs: &ResourceLogs) -> u64 {
    resource_logs
        .scope_logs
        .iter()
        .map(|s| s.log_records.len() as u64)
        .sum()
}

fn add_resource_logs(batch: &mut LogBatch, resource_logs: ResourceLogs) {
    let attributes = resource_logs
        .resource
        .as_ref()
        .map(|r| r.attributes.as_slice())
        .unwrap_or_default();
    let Some(source_attributes) = attribute_pairs(attributes) else {
        tracing::debug!("dropping resource logs with a repeated resource attribute key");
        batch.rejected += record_count(&resource_logs);
        return;
    };
    let lookup = |key: &str| {
        source_attributes
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .unwrap_or_default()
    };
    let service = lookup(SERVICE_NAME).to_owned();
    if service.is_empty() {
        tracing::debug!("dropping resource logs without service.name");
        batch.rejected += record_count(&resource_logs);
        return;
    }
    let layer = lookup(SERVICE_LAYER).to_owned();
    let service_instance = match lookup(SERVICE_INSTANCE_ID) {
        "" => lookup(SERVICE_INSTANCE),
        id => id,
    }
    .to_owned();

    let resource = ResourceFields {
        service,
        service_instance,
        layer,
        source_attributes,
    };
    for record in resource_logs
        .scope_logs
        .into_iter()
        .flat_map(|s| s.log_records)
    {
        match resource.log_data(record) {
            Some(log) => batch.logs.push(log),
            None => {
                tracing::debug!(service = %resource.service, "dropping log record with a repeated attribute key");
                batch.rejected += 1;
            }
        }
    }
}

/// What every record of one resource shares.
struct ResourceFields {
    service: String,
    service_instance: String,
    layer: String,
    source_attributes: Vec<(String, String)>,
}

impl ResourceFields {
    /// The record as [`LogData`]; `None` when an attribute key repeats. The timestamp is in ms
    /// (0 stays 0: the pipeline substitutes the receive time). The severity becomes a `level`
    /// tag unless an attribute already names one (UIs filter and colour logs by it); trace and
    /// span ids are not mapped (OAP ignores them too).
    fn log_data(&self, record: OtlpLogRecord) -> Option<LogData> {
        let mut tags = attribute_pairs(&record.attributes)?;
        if let Some(level) = severity_level(&record.severity_text, record.severity_number) {
            if !tags.iter().any(|(k, _)| k == LEVEL) {
                tags.push((LEVEL.to_owned(), level));
            }
        }
        // u64::MAX / 1e6 fits in i64, so this never truncates.
        let timestamp_ms = (record.time_unix_nano / 1_000_000) as i64;
        let text = match record.body.and_then(|b| b.value) {
            Some(OtlpValue::StringValue(s)) => s,
            _ => String::new(),
        };
        Some(LogData {
            service: self.service.clone(),
            service_instance: self.service_instance.clone(),
            endpoint: String::new(),
            layer: self.layer.clone(),
            timestamp_ms,
            body: LogBody::Text(text),
            tags,
            source_attributes: self.source_attributes.clone(),
            trace_id: None,
            segment_id: None,
            span_id: None,
        })
    }
}

/// The tag the UIs read a log's level from.
const LEVEL: &str = "level";

/// The level a record's severity names: its text when it has one, else the name of its number's
/// range in the OTLP data model (1-4 TRACE ... 21-24 FATAL); `None` when both are unset.
fn severity_level(text: &str, number: i32) -> Option<String> {
    let text = text.trim();
    if !text.is_empty() {
        return Some(text.to_owned());
    }
    let name = match number {
        1..=4 => "TRACE",
        5..=8 => "DEBUG",
        9..=12 => "INFO",
        13..=16 => "WARN",
        17..=20 => "ERROR",
        21..=24 => "FATAL",
        _ => return None,
    };
    Some(name.to_owned())
}

/// Attributes as `(original key, stringified value)` in arrival order; `None` when a key repeats.
fn attribute_pairs(attributes: &[KeyValue]) -> Option<Vec<(String, String)>> {
    let mut seen = HashSet::with_capacity(attributes.len());
    let mut pairs = Vec::with_capacity(attributes.len());
    for attribute in attributes {
        if !seen.insert(attribute.key.as_str()) {
            return None;
        }
        pairs.push((
            attribute.key.clone(),
            log_value_string(attribute.value.as_ref()),
        ));
    }
    Some(pairs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::{AnyValue, ArrayValue};
    use opentelemetry_proto::tonic::logs::v1::ScopeLogs;
    use opentelemetry_proto::tonic::resource::v1::Resource;

    fn value(v: OtlpValue) -> Option<AnyValue> {
        Some(AnyValue { value: Some(v) })
    }

    fn kv(key: &str, v: OtlpValue) -> KeyValue {
        KeyValue {
            key: key.to_owned(),
            value: value(v),
            ..Default::default()
        }
    }

    fn s(key: &str, v: &str) -> KeyValue {
        kv(key, OtlpValue::StringValue(v.to_owned()))
    }

    fn record(
        time_unix_nano: u64,
        body: Option<AnyValue>,
        attributes: Vec<KeyValue>,
    ) -> OtlpLogRecord {
        OtlpLogRecord {
            time_unix_nano,
            body,
            attributes,
            ..Default::default()
        }
    }

    fn request(resource: Vec<KeyValue>, records: Vec<OtlpLogRecord>) -> ExportLogsServiceRequest {
        ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                resource: Some(Resource {
                    attributes: resource,
                    ..Default::default()
                }),
                scope_logs: vec![ScopeLogs {
                    log_records: records,
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
    }

    #[test]
    fn resource_and_record_map_like_oap() {
        let batch = convert_logs_request(request(
            vec![
                s("service.name", "mp"),
                s("service.instance", "fallback"),
                s("miniprogram.platform", "wechat"),
                kv("retries", OtlpValue::IntValue(3)),
                kv("ratio", OtlpValue::DoubleValue(0.5)),
                kv("debug", OtlpValue::BoolValue(true)),
                kv("raw", OtlpValue::BytesValue(vec![1])),
            ],
            vec![record(
                1_795_929_348_521_999_999,
                value(OtlpValue::StringValue("boom".to_owned())),
                vec![
                    s("exception.type", "js"),
                    KeyValue {
                        key: "exception.stacktrace".to_owned(),
                        value: Some(AnyValue { value: None }),
                        ..Default::default()
                    },
                    kv(
                        "list",
                        OtlpValue::ArrayValue(ArrayValue {
                            values: vec![AnyValue {
                                value: Some(OtlpValue::StringValue("a".to_owned())),
                            }],
                        }),
                    ),
                ],
            )],
        ));
        assert_eq!(batch.rejected, 0);
        let log = &batch.logs[0];
        assert_eq!(log.service, "mp");
        assert_eq!(log.service_instance, "fallback");
        assert_eq!(log.layer, "");
        assert_eq!(log.endpoint, "");
        assert_eq!(log.timestamp_ms, 1_795_929_348_521);
        assert_eq!(log.body, LogBody::Text("boom".to_owned()));
        let pairs = |v: &[(&str, &str)]| {
            v.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            log.source_attributes,
            pairs(&[
                ("service.name", "mp"),
                ("service.instance", "fallback"),
                ("miniprogram.platform", "wechat"),
                ("retries", "3"),
                ("ratio", "0.5"),
                ("debug", "true"),
                ("raw", ""),
            ])
        );
        assert_eq!(
            log.tags,
            pairs(&[
                ("exception.type", "js"),
                ("exception.stacktrace", ""),
                ("list", "values {\n  string_value: \"a\"\n}\n"),
            ])
        );
        assert_eq!(log.trace_id, None);
    }

    #[test]
    fn severity_becomes_a_level_tag_unless_an_attribute_names_one() {
        let with = |text: &str, number: i32, attributes: Vec<KeyValue>| {
            let mut r = record(1, None, attributes);
            r.severity_text = text.to_owned();
            r.severity_number = number;
            r
        };
        let batch = convert_logs_request(request(
            vec![s("service.name", "mp")],
            vec![
                with("ERROR", 17, vec![s("exception.type", "js")]),
                with("", 10, vec![]),
                with("", 0, vec![]),
                with("WARN", 13, vec![s("level", "custom")]),
            ],
        ));
        let levels: Vec<Vec<&str>> = batch
            .logs
            .iter()
            .map(|l| {
                l.tags
                    .iter()
                    .filter(|(k, _)| k == "level")
                    .map(|(_, v)| v.as_str())
                    .collect()
            })
            .collect();
        assert_eq!(
            levels,
            vec![vec!["ERROR"], vec!["INFO"], vec![], vec!["custom"]]
        );
    }

    #[test]
    fn instance_id_layer_zero_time_and_non_string_body() {
        let batch = convert_logs_request(request(
            vec![
                s("service.name", "mp"),
                s("service.instance.id", "i-1"),
                s("service.instance", "ignored"),
                s("service.layer", "GENERAL"),
            ],
            vec![
                record(0, value(OtlpValue::IntValue(5)), vec![]),
                record(0, None, vec![]),
            ],
        ));
        assert_eq!(batch.logs.len(), 2);
        assert_eq!(batch.logs[0].service_instance, "i-1");
        assert_eq!(batch.logs[0].layer, "GENERAL");
        assert_eq!(batch.logs[0].timestamp_ms, 0);
        assert_eq!(batch.logs[0].body, LogBody::Text(String::new()));
        assert_eq!(batch.logs[1].body, LogBody::Text(String::new()));
    }

    #[test]
    fn missing_service_name_discards_the_resource() {
        let records = || vec![record(1, None, vec![]), record(2, None, vec![])];
        let mut req = request(vec![s("service.name", "")], records());
        req.resource_logs
            .extend(request(vec![s("host.name", "h")], records()).resource_logs);
        req.resource_logs
            .extend(request(vec![s("service.name", "kept")], records()).resource_logs);
        let batch = convert_logs_request(req);
        assert_eq!(batch.rejected, 4);
        assert_eq!(batch.logs.len(), 2);
        assert!(batch.logs.iter().all(|l| l.service == "kept"));
    }

    #[test]
    fn repeated_keys_drop_the_record_or_the_resource() {
        let batch = convert_logs_request(request(
            vec![s("service.name", "mp")],
            vec![
                record(1, None, vec![s("a", "1"), s("a", "2")]),
                record(2_000_000, None, vec![s("a", "1"), s("b", "2")]),
            ],
        ));
        assert_eq!(batch.rejected, 1);
        assert_eq!(batch.logs.len(), 1);
        assert_eq!(batch.logs[0].timestamp_ms, 2);

        let batch = convert_logs_request(request(
            vec![s("service.name", "mp"), s("service.name", "other")],
            vec![record(1, None, vec![])],
        ));
        assert_eq!((batch.logs.len(), batch.rejected), (0, 1));
    }

    #[test]
    fn huge_bodies_and_many_attributes_pass_untouched() {
        let body = "x".repeat(1024 * 1024 + 1);
        let attributes: Vec<KeyValue> = (0..10_000).map(|i| s(&format!("k{i}"), "v")).collect();
        let batch = convert_logs_request(request(
            vec![s("service.name", "mp")],
            vec![record(
                1,
                value(OtlpValue::StringValue(body.clone())),
                attributes,
            )],
        ));
        assert_eq!(batch.logs[0].body.content().len(), body.len());
        assert_eq!(batch.logs[0].tags.len(), 10_000);
    }
}
