//! protobuf-java's `TextFormat` rendering of an OTLP `ArrayValue`, which is how OAP stringifies an
//! array-valued log attribute (`ArrayValue.toString()`), so LAL rules see the same text.
//!
//! Rules followed: fields print in field-number order with two-space indentation per nesting
//! level; a set oneof member prints even when it holds its default (`string_value: ""`); plain
//! proto3 fields (`KeyValue.key`, `key_strindex`) print only when non-default; strings and bytes
//! are escaped byte by byte with non-ASCII bytes as three-digit octal (`escapingNonAscii`).
use std::fmt::Write;

use opentelemetry_proto::tonic::common::v1::{
    any_value::Value as OtlpValue, AnyValue, ArrayValue, KeyValue,
};

use super::java_double_to_string;

/// `values {\n  string_value: "a"\n}\n...` for every element of `array`.
pub(crate) fn array_value_text(array: &ArrayValue) -> String {
    let mut out = String::new();
    for value in &array.values {
        write_message_field(&mut out, 0, "values", |out, depth| {
            write_any_value_fields(out, depth, value)
        });
    }
    out
}

fn indent(out: &mut String, depth: usize) {
    out.extend(std::iter::repeat_n("  ", depth));
}

fn write_message_field(
    out: &mut String,
    depth: usize,
    name: &str,
    fields: impl FnOnce(&mut String, usize),
) {
    indent(out, depth);
    out.push_str(name);
    out.push_str(" {\n");
    fields(out, depth + 1);
    indent(out, depth);
    out.push_str("}\n");
}

fn write_scalar_field(out: &mut String, depth: usize, name: &str, value: &str) {
    indent(out, depth);
    out.push_str(name);
    out.push_str(": ");
    out.push_str(value);
    out.push('\n');
}

fn write_any_value_fields(out: &mut String, depth: usize, value: &AnyValue) {
    let Some(value) = &value.value else {
        return;
    };
    match value {
        OtlpValue::StringValue(s) => {
            write_scalar_field(out, depth, "string_value", &quoted(s.as_bytes()))
        }
        OtlpValue::BoolValue(b) => write_scalar_field(out, depth, "bool_value", &b.to_string()),
        OtlpValue::IntValue(i) => write_scalar_field(out, depth, "int_value", &i.to_string()),
        OtlpValue::DoubleValue(d) => {
            write_scalar_field(out, depth, "double_value", &java_double_to_string(*d))
        }
        OtlpValue::ArrayValue(array) => {
            write_message_field(out, depth, "array_value", |out, depth| {
                for element in &array.values {
                    write_message_field(out, depth, "values", |out, depth| {
                        write_any_value_fields(out, depth, element)
                    });
                }
            })
        }
        OtlpValue::KvlistValue(list) => {
            write_message_field(out, depth, "kvlist_value", |out, depth| {
                for pair in &list.values {
                    write_message_field(out, depth, "values", |out, depth| {
                        write_key_value_fields(out, depth, pair)
                    });
                }
            })
        }
        OtlpValue::BytesValue(bytes) => {
            write_scalar_field(out, depth, "bytes_value", &quoted(bytes))
        }
        OtlpValue::StringValueStrindex(i) => {
            write_scalar_field(out, depth, "string_value_strindex", &i.to_string())
        }
    }
}

fn write_key_value_fields(out: &mut String, depth: usize, pair: &KeyValue) {
    if !pair.key.is_empty() {
        write_scalar_field(out, depth, "key", &quoted(pair.key.as_bytes()));
    }
    if let Some(value) = &pair.value {
        write_message_field(out, depth, "value", |out, depth| {
            write_any_value_fields(out, depth, value)
        });
    }
    if pair.key_strindex != 0 {
        write_scalar_field(out, depth, "key_strindex", &pair.key_strindex.to_string());
    }
}

/// `TextFormat.escapeBytes` in double quotes.
fn quoted(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() + 2);
    out.push('"');
    for &byte in bytes {
        match byte {
            0x07 => out.push_str("\\a"),
            0x08 => out.push_str("\\b"),
            0x0c => out.push_str("\\f"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            0x0b => out.push_str("\\v"),
            b'\\' => out.push_str("\\\\"),
            b'\'' => out.push_str("\\'"),
            b'"' => out.push_str("\\\""),
            0x20..=0x7e => out.push(char::from(byte)),
            _ => {
                let _ = write!(out, "\\{byte:03o}");
            }
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::KeyValueList;

    fn any(value: OtlpValue) -> AnyValue {
        AnyValue { value: Some(value) }
    }

    #[test]
    fn scalars_render_like_protobuf_java() {
        let array = ArrayValue {
            values: vec![
                any(OtlpValue::StringValue("a\"b\n中".to_owned())),
                any(OtlpValue::IntValue(-3)),
                any(OtlpValue::DoubleValue(1e10)),
                any(OtlpValue::BoolValue(false)),
                any(OtlpValue::StringValue(String::new())),
                AnyValue { value: None },
            ],
        };
        assert_eq!(
            array_value_text(&array),
            "values {\n  string_value: \"a\\\"b\\n\\344\\270\\255\"\n}\n\
             values {\n  int_value: -3\n}\n\
             values {\n  double_value: 1.0E10\n}\n\
             values {\n  bool_value: false\n}\n\
             values {\n  string_value: \"\"\n}\n\
             values {\n}\n"
        );
    }

    #[test]
    fn nested_arrays_and_kvlists_indent_per_level() {
        let array = ArrayValue {
            values: vec![
                any(OtlpValue::ArrayValue(ArrayValue {
                    values: vec![any(OtlpValue::IntValue(1))],
                })),
                any(OtlpValue::KvlistValue(KeyValueList {
                    values: vec![KeyValue {
                        key: "k".to_owned(),
                        value: Some(any(OtlpValue::BytesValue(vec![0, b'x']))),
                        ..Default::default()
                    }],
                })),
            ],
        };
        assert_eq!(
            array_value_text(&array),
            "values {\n  array_value {\n    values {\n      int_value: 1\n    }\n  }\n}\n\
             values {\n  kvlist_value {\n    values {\n      key: \"k\"\n      value {\n        \
             bytes_value: \"\\000x\"\n      }\n    }\n  }\n}\n"
        );
        assert_eq!(array_value_text(&ArrayValue::default()), "");
    }
}
