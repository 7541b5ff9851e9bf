//! OTLP spans → SkyWalking segments: per resource and trace, one segment holding that service's
//! spans of the request. A parent in the same segment is `parent_span_id`; a parent elsewhere
//! (another service, another request) is a cross-process ref naming the parent's OTLP span id
//! (`otel:<16 hex>`), which the trace query resolves to the segment and span that hold it.
use std::collections::HashMap;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use opentelemetry_proto::tonic::trace::v1::Span as OtlpSpan;
use skylark_core::segment::{OTEL_PARENT_PREFIX, OTEL_SPAN_ID_TAG};
use skylark_core::{RefType, Segment, SegmentRef, Span, SpanLayer, SpanLog, SpanType};

use super::attributes::attribute_value_string;

/// Most tags and events one span keeps; the rest are dropped.
const SPAN_ITEMS_MAX: usize = 128;

/// Segments converted from one request, and the spans refused with the first reason.
#[derive(Debug, Default)]
pub(crate) struct TraceConversion {
    /// Segments in request order.
    pub(crate) segments: Vec<Segment>,
    /// Spans refused (bad ids) or dropped (beyond the per-segment span limit).
    pub(crate) rejected_spans: u64,
    /// Why the first span was refused.
    pub(crate) first_problem: Option<String>,
}

/// One trace's segment of a resource: its index in the output and OTLP span id → span index.
type Group = (usize, HashMap<Vec<u8>, i32>);

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn ms(nanos: u64) -> i64 {
    i64::try_from(nanos / 1_000_000).unwrap_or(i64::MAX)
}

fn span_problem(span: &OtlpSpan) -> Option<String> {
    if span.trace_id.len() != 16 || span.trace_id.iter().all(|b| *b == 0) {
        return Some(format!(
            "span {:?}: trace id must be 16 bytes, not all zero (got {} bytes)",
            span.name,
            span.trace_id.len()
        ));
    }
    if span.span_id.len() != 8 || span.span_id.iter().all(|b| *b == 0) {
        return Some(format!(
            "span {:?}: span id must be 8 bytes, not all zero (got {} bytes)",
            span.name,
            span.span_id.len()
        ));
    }
    if !span.parent_span_id.is_empty() && span.parent_span_id.len() != 8 {
        return Some(format!(
            "span {:?}: parent span id must be empty or 8 bytes (got {} bytes)",
            span.name,
            span.parent_span_id.len()
        ));
    }
    None
}

fn layer_of(tags: &[(String, String)]) -> SpanLayer {
    let has = |key: &str| tags.iter().any(|(k, _)| k == key);
    if has("db.system") {
        SpanLayer::Database
    } else if has("messaging.system") {
        SpanLayer::MQ
    } else if has("rpc.system") {
        SpanLayer::RPCFramework
    } else if has("http.request.method") || has("http.method") {
        SpanLayer::Http
    } else {
        SpanLayer::Unknown
    }
}

fn peer_of(tags: &[(String, String)]) -> String {
    let get = |key: &str| {
        tags.iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    };
    match (
        get("server.address").or_else(|| get("net.peer.name")),
        get("server.port").or_else(|| get("net.peer.port")),
    ) {
        (Some(host), Some(port)) => format!("{host}:{port}"),
        (Some(host), None) => host.to_owned(),
        _ => String::new(),
    }
}

/// Converts one export request; spans with bad ids are refused and counted, each segment keeps
/// at most `max_spans` spans (the rest counted, the segment marked size-limited).
pub(crate) fn convert_traces_request(
    request: &ExportTraceServiceRequest,
    max_spans: usize,
) -> TraceConversion {
    let mut out = TraceConversion::default();
    for resource_spans in &request.resource_spans {
        let attributes = resource_spans
            .resource
            .as_ref()
            .map(|r| r.attributes.as_slice())
            .unwrap_or_default();
        let resource = |key: &str| {
            attributes
                .iter()
                .find(|a| a.key == key)
                .map(attribute_value_string)
                .filter(|v| !v.is_empty())
        };
        let service = resource("service.name").unwrap_or_else(|| "unknown_service".to_owned());
        let instance = resource("service.instance.id")
            .or_else(|| resource("host.name"))
            .unwrap_or_else(|| "-".to_owned());
        let mut groups: HashMap<Vec<u8>, Group> = HashMap::new();
        let mut parents: Vec<(usize, usize, Vec<u8>)> = Vec::new();
        for span in resource_spans.scope_spans.iter().flat_map(|s| &s.spans) {
            if let Some(problem) = span_problem(span) {
                out.rejected_spans += 1;
                out.first_problem.get_or_insert(problem);
                continue;
            }
            let (at, ids) = groups.entry(span.trace_id.clone()).or_insert_with(|| {
                out.segments.push(Segment {
                    trace_id: hex(&span.trace_id),
                    segment_id: format!("{}.{}", hex(&span.trace_id), hex(&span.span_id)),
                    service: service.clone(),
                    service_instance: instance.clone(),
                    spans: Vec::new(),
                    is_size_limited: false,
                });
                (out.segments.len() - 1, HashMap::new())
            });
            let Some(segment) = out.segments.get_mut(*at) else {
                continue;
            };
            if segment.spans.len() >= max_spans {
                segment.is_size_limited = true;
                out.rejected_spans += 1;
                out.first_problem.get_or_insert_with(|| {
                    format!("a segment holds at most {max_spans} spans; the rest were dropped")
                });
                continue;
            }
            let index = segment.spans.len() as i32;
            ids.insert(span.span_id.clone(), index);
            let mut tags: Vec<(String, String)> = span
                .attributes
                .iter()
                .take(SPAN_ITEMS_MAX)
                .map(|a| (a.key.clone(), attribute_value_string(a)))
                .collect();
            let status = span.status.as_ref();
            let is_error = status.is_some_and(|s| s.code == StatusCode::Error as i32);
            if let Some(message) = status.map(|s| s.message.as_str()).filter(|m| !m.is_empty()) {
                tags.push(("otel.status_description".into(), message.to_owned()));
            }
            let span_type = match SpanKind::try_from(span.kind) {
                Ok(SpanKind::Server) | Ok(SpanKind::Consumer) => SpanType::Entry,
                Ok(SpanKind::Client) | Ok(SpanKind::Producer) => SpanType::Exit,
                _ => SpanType::Local,
            };
            let logs = span
                .events
                .iter()
                .take(SPAN_ITEMS_MAX)
                .map(|e| SpanLog {
                    time_ms: ms(e.time_unix_nano),
                    data: std::iter::once(("event".to_owned(), e.name.clone()))
                        .chain(
                            e.attributes
                                .iter()
                                .map(|a| (a.key.clone(), attribute_value_string(a))),
                        )
                        .collect(),
                })
                .collect();
            let layer = layer_of(&tags);
            let peer = if span_type == SpanType::Exit {
                peer_of(&tags)
            } else {
                String::new()
            };
            tags.push((OTEL_SPAN_ID_TAG.into(), hex(&span.span_id)));
            segment.spans.push(Span {
                span_id: index,
                parent_span_id: -1,
                start_time_ms: ms(span.start_time_unix_nano),
                end_time_ms: ms(span.end_time_unix_nano),
                refs: Vec::new(),
                operation_name: span.name.clone(),
                peer,
                span_type,
                span_layer: layer,
                component_id: 0,
                is_error,
                tags,
                logs,
                skip_analysis: false,
            });
            if !span.parent_span_id.is_empty() {
                parents.push((*at, index as usize, span.parent_span_id.clone()));
            }
        }
        // Parents are linked once every span of the resource is known (children may come first).
        let index_of: HashMap<usize, &HashMap<Vec<u8>, i32>> =
            groups.values().map(|(at, ids)| (*at, ids)).collect();
        for (at, index, parent) in parents {
            let local = index_of.get(&at).and_then(|ids| ids.get(&parent)).copied();
            let Some(span) = out.segments.get_mut(at).and_then(|s| {
                let trace_id = s.trace_id.clone();
                s.spans.get_mut(index).map(|span| (span, trace_id))
            }) else {
                continue;
            };
            let (span, trace_id) = span;
            match local {
                Some(parent_index) => span.parent_span_id = parent_index,
                None => span.refs.push(SegmentRef {
                    ref_type: RefType::CrossProcess,
                    trace_id,
                    parent_segment_id: format!("{OTEL_PARENT_PREFIX}{}", hex(&parent)),
                    parent_span_id: -1,
                    ..SegmentRef::default()
                }),
            }
        }
    }
    out
}
