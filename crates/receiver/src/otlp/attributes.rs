//! OTLP attributes → OAP label maps (metrics) and string pairs (logs).
use opentelemetry_proto::tonic::common::v1::{any_value::Value as OtlpValue, AnyValue, KeyValue};
use skylark_core::Labels;

use super::java_double_to_string;
use super::text_format::array_value_text;

/// Resource attributes OAP also copies under another name, applied in this order with
/// `putIfAbsent` (so `host.name` beats `net.host.name`).
const FALLBACK_COPIES: [(&str, &str); 3] = [
    ("service.name", "job_name"),
    ("host.name", "node_identifier_host_name"),
    ("net.host.name", "node_identifier_host_name"),
];

/// `service.name` → `service_name`: OAP replaces only dots in label keys.
pub(crate) fn escape_label_key(key: &str) -> String {
    key.replace('.', "_")
}

/// The attribute value as OAP stringifies it: strings as-is, bools `true`/`false`, ints in
/// decimal, doubles via Java `Double.toString`, everything else (arrays, kvlists, bytes, an empty
/// `AnyValue`) as `""`.
pub(crate) fn attribute_value_string(attribute: &KeyValue) -> String {
    match attribute.value.as_ref().and_then(|v| v.value.as_ref()) {
        Some(OtlpValue::StringValue(s)) => s.clone(),
        Some(OtlpValue::BoolValue(b)) => b.to_string(),
        Some(OtlpValue::IntValue(i)) => i.to_string(),
        Some(OtlpValue::DoubleValue(d)) => java_double_to_string(*d),
        Some(OtlpValue::ArrayValue(_))
        | Some(OtlpValue::KvlistValue(_))
        | Some(OtlpValue::BytesValue(_))
        | Some(OtlpValue::StringValueStrindex(_))
        | None => String::new(),
    }
}

/// The value as OAP's log handler stringifies it: like [`attribute_value_string`], except that an
/// array becomes its protobuf text form (`values {\n  string_value: "a"\n}\n`).
pub(crate) fn log_value_string(value: Option<&AnyValue>) -> String {
    match value.and_then(|v| v.value.as_ref()) {
        Some(OtlpValue::ArrayValue(array)) => array_value_text(array),
        Some(OtlpValue::StringValue(s)) => s.clone(),
        Some(OtlpValue::BoolValue(b)) => b.to_string(),
        Some(OtlpValue::IntValue(i)) => i.to_string(),
        Some(OtlpValue::DoubleValue(d)) => java_double_to_string(*d),
        Some(OtlpValue::KvlistValue(_))
        | Some(OtlpValue::BytesValue(_))
        | Some(OtlpValue::StringValueStrindex(_))
        | None => String::new(),
    }
}

/// Attributes as labels: keys escaped, the first attribute wins when two keys escape alike.
pub(crate) fn attribute_labels(attributes: &[KeyValue]) -> Labels {
    let mut labels = Labels::new();
    for attribute in attributes {
        let key = escape_label_key(&attribute.key);
        if !labels.contains_key(&key) {
            labels.insert(key, attribute_value_string(attribute));
        }
    }
    labels
}

/// OAP's "node labels" of a resource: every attribute escaped (first wins), then the fallback
/// copies (`job_name`, `node_identifier_host_name`) where still absent.
pub(crate) fn resource_labels(attributes: &[KeyValue]) -> Labels {
    let mut labels = attribute_labels(attributes);
    for (source, target) in FALLBACK_COPIES {
        if let Some(attribute) = attributes.iter().find(|a| a.key == source) {
            if !labels.contains_key(target) {
                labels.insert(target, attribute_value_string(attribute));
            }
        }
    }
    labels
}

/// Data-point labels on top of the resource's: the point's attributes override.
pub(crate) fn merged_labels(resource: &Labels, point_attributes: &[KeyValue]) -> Labels {
    let mut labels = resource.clone();
    labels.extend(attribute_labels(point_attributes));
    labels
}
