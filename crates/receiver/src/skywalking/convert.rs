//! Generated SkyWalking types → [`skylark_core::segment`] model, with the checks OAP's analysis
//! relies on but the wire format cannot express.
use skylark_core::segment::{RefType, Segment, SegmentRef, Span, SpanLayer, SpanLog, SpanType};

use super::proto::{
    KeyStringValuePair as SwKeyStringValuePair, Log as SwLog, RefType as SwRefType,
    SegmentObject as SwSegmentObject, SegmentReference as SwSegmentReference,
    SpanLayer as SwSpanLayer, SpanObject as SwSpanObject, SpanType as SwSpanType,
};
use crate::SegmentRejection;

/// Converts one reported segment, rejecting it when it has more than `max_spans` spans.
pub(crate) fn convert_segment(
    segment: SwSegmentObject,
    max_spans: usize,
) -> Result<Segment, SegmentRejection> {
    if segment.spans.len() > max_spans {
        return Err(SegmentRejection::TooManySpans {
            spans: segment.spans.len(),
            limit: max_spans,
        });
    }
    Segment::try_from(segment)
}

impl TryFrom<SwSegmentObject> for Segment {
    type Error = SegmentRejection;

    /// Rejects a segment without ids or with a span that ends before it starts; a segment
    /// without spans passes (OAP ignores it later, without error).
    fn try_from(segment: SwSegmentObject) -> Result<Self, Self::Error> {
        if segment.trace_id.is_empty() {
            return Err(SegmentRejection::MissingTraceId);
        }
        if segment.trace_segment_id.is_empty() {
            return Err(SegmentRejection::MissingSegmentId);
        }
        let spans = segment
            .spans
            .into_iter()
            .map(Span::try_from)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Segment {
            trace_id: segment.trace_id,
            segment_id: segment.trace_segment_id,
            service: segment.service,
            service_instance: segment.service_instance,
            spans,
            is_size_limited: segment.is_size_limited,
        })
    }
}

impl TryFrom<SwSpanObject> for Span {
    type Error = SegmentRejection;

    fn try_from(span: SwSpanObject) -> Result<Self, Self::Error> {
        if span.end_time < span.start_time {
            return Err(SegmentRejection::NegativeDuration {
                span_id: span.span_id,
                start_ms: span.start_time,
                end_ms: span.end_time,
            });
        }
        let span_type = match SwSpanType::try_from(span.span_type) {
            Ok(SwSpanType::Entry) => SpanType::Entry,
            Ok(SwSpanType::Exit) => SpanType::Exit,
            Ok(SwSpanType::Local) => SpanType::Local,
            Err(_) => {
                return Err(SegmentRejection::UnknownSpanType {
                    span_id: span.span_id,
                    value: span.span_type,
                })
            }
        };
        let span_id = span.span_id;
        let refs = span
            .refs
            .into_iter()
            .map(|r| {
                SegmentRef::try_from(r)
                    .map_err(|value| SegmentRejection::UnknownRefType { span_id, value })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Span {
            span_id,
            parent_span_id: span.parent_span_id,
            start_time_ms: span.start_time,
            end_time_ms: span.end_time,
            refs,
            operation_name: span.operation_name,
            peer: span.peer,
            span_type,
            span_layer: span_layer(span.span_layer),
            component_id: span.component_id,
            is_error: span.is_error,
            tags: span.tags.into_iter().map(pair).collect(),
            logs: span.logs.into_iter().map(SpanLog::from).collect(),
            skip_analysis: span.skip_analysis,
        })
    }
}

/// Layers newer agents may send (GenAI = 7, ...) are not in our model; the layer only labels the
/// span, so they read as `Unknown` instead of losing the segment.
fn span_layer(value: i32) -> SpanLayer {
    match SwSpanLayer::try_from(value) {
        Ok(SwSpanLayer::Unknown) | Err(_) => SpanLayer::Unknown,
        Ok(SwSpanLayer::Database) => SpanLayer::Database,
        Ok(SwSpanLayer::RpcFramework) => SpanLayer::RPCFramework,
        Ok(SwSpanLayer::Http) => SpanLayer::Http,
        Ok(SwSpanLayer::Mq) => SpanLayer::MQ,
        Ok(SwSpanLayer::Cache) => SpanLayer::Cache,
        Ok(SwSpanLayer::Faas) => SpanLayer::FAAS,
    }
}

impl TryFrom<SwSegmentReference> for SegmentRef {
    /// The unknown `refType` number.
    type Error = i32;

    /// Strips trailing NULs from the string fields: server-side agents that copy them out of a
    /// fixed-size `sw8` buffer send them (sdk-signals §13).
    fn try_from(reference: SwSegmentReference) -> Result<Self, Self::Error> {
        let ref_type = match SwRefType::try_from(reference.ref_type) {
            Ok(SwRefType::CrossProcess) => RefType::CrossProcess,
            Ok(SwRefType::CrossThread) => RefType::CrossThread,
            Err(_) => return Err(reference.ref_type),
        };
        Ok(SegmentRef {
            ref_type,
            trace_id: without_trailing_nuls(reference.trace_id),
            parent_segment_id: without_trailing_nuls(reference.parent_trace_segment_id),
            parent_span_id: reference.parent_span_id,
            parent_service: without_trailing_nuls(reference.parent_service),
            parent_service_instance: without_trailing_nuls(reference.parent_service_instance),
            parent_endpoint: without_trailing_nuls(reference.parent_endpoint),
            network_address_used_at_peer: without_trailing_nuls(
                reference.network_address_used_at_peer,
            ),
        })
    }
}

impl From<SwLog> for SpanLog {
    fn from(log: SwLog) -> Self {
        SpanLog {
            time_ms: log.time,
            data: log.data.into_iter().map(pair).collect(),
        }
    }
}

fn pair(kv: SwKeyStringValuePair) -> (String, String) {
    (kv.key, kv.value)
}

fn without_trailing_nuls(mut value: String) -> String {
    let kept = value.trim_end_matches('\0').len();
    value.truncate(kept);
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sw_span(span_id: i32, start: i64, end: i64) -> SwSpanObject {
        SwSpanObject {
            span_id,
            parent_span_id: span_id - 1,
            start_time: start,
            end_time: end,
            span_type: SwSpanType::Exit as i32,
            span_layer: SwSpanLayer::Http as i32,
            component_id: 10002,
            peer: "api.example.com".to_owned(),
            tags: vec![SwKeyStringValuePair {
                key: "http.method".to_owned(),
                value: "GET".to_owned(),
            }],
            ..Default::default()
        }
    }

    fn sw_segment(spans: Vec<SwSpanObject>) -> SwSegmentObject {
        SwSegmentObject {
            trace_id: "t".to_owned(),
            trace_segment_id: "s".to_owned(),
            service: "mp".to_owned(),
            service_instance: "-".to_owned(),
            spans,
            is_size_limited: false,
        }
    }

    #[test]
    fn fields_carry_over() {
        let segment = convert_segment(sw_segment(vec![sw_span(0, 10, 30)]), 10).unwrap();
        assert_eq!(
            (segment.trace_id.as_str(), segment.segment_id.as_str()),
            ("t", "s")
        );
        assert_eq!(segment.service_instance, "-");
        let span = &segment.spans[0];
        assert_eq!(span.span_type, SpanType::Exit);
        assert_eq!(span.span_layer, SpanLayer::Http);
        assert_eq!((span.start_time_ms, span.end_time_ms), (10, 30));
        assert_eq!(span.parent_span_id, -1);
        assert_eq!(span.component_id, 10002);
        assert_eq!(span.tags, vec![("http.method".into(), "GET".into())]);
    }

    #[test]
    fn ids_duration_span_count_and_enums_are_checked() {
        let mut no_trace = sw_segment(vec![]);
        no_trace.trace_id.clear();
        assert!(matches!(
            convert_segment(no_trace, 10),
            Err(SegmentRejection::MissingTraceId)
        ));
        let mut no_segment = sw_segment(vec![]);
        no_segment.trace_segment_id.clear();
        let err = convert_segment(no_segment, 10).unwrap_err();
        assert_eq!(err.to_string(), "missing traceSegmentId");

        let err = convert_segment(sw_segment(vec![sw_span(0, 1, 2), sw_span(1, 50, 40)]), 10)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "span 1 ends before it starts (startTime 50, endTime 40)"
        );

        let err = convert_segment(sw_segment(vec![sw_span(0, 1, 2); 3]), 2).unwrap_err();
        assert_eq!(
            err.to_string(),
            "segment has 3 spans, more than the limit of 2"
        );

        let mut odd = sw_span(0, 1, 2);
        odd.span_type = 9;
        let err = convert_segment(sw_segment(vec![odd]), 10).unwrap_err();
        assert_eq!(err.to_string(), "span 0 has unknown spanType 9");

        let mut new_layer = sw_span(0, 1, 2);
        new_layer.span_layer = 7;
        let segment = convert_segment(sw_segment(vec![new_layer]), 10).unwrap();
        assert_eq!(segment.spans[0].span_layer, SpanLayer::Unknown);

        assert!(convert_segment(sw_segment(vec![]), 10)
            .unwrap()
            .spans
            .is_empty());
    }

    #[test]
    fn reference_strings_lose_trailing_nuls() {
        let mut span = sw_span(0, 1, 2);
        span.refs = vec![SwSegmentReference {
            ref_type: SwRefType::CrossThread as i32,
            trace_id: "trace\0\0".to_owned(),
            parent_trace_segment_id: "parent\0".to_owned(),
            parent_span_id: 3,
            parent_service: "svc\0".to_owned(),
            parent_service_instance: "inst\0".to_owned(),
            parent_endpoint: "/a\0b\0".to_owned(),
            network_address_used_at_peer: "host:80\0".to_owned(),
        }];
        let segment = convert_segment(sw_segment(vec![span]), 10).unwrap();
        let reference = &segment.spans[0].refs[0];
        assert_eq!(reference.ref_type, RefType::CrossThread);
        assert_eq!(reference.trace_id, "trace");
        assert_eq!(reference.parent_segment_id, "parent");
        assert_eq!(reference.parent_service, "svc");
        assert_eq!(reference.parent_service_instance, "inst");
        assert_eq!(reference.parent_endpoint, "/a\0b", "inner NULs are data");
        assert_eq!(reference.network_address_used_at_peer, "host:80");
        assert_eq!(reference.parent_span_id, 3);

        let mut bad = sw_span(0, 1, 2);
        bad.refs = vec![SwSegmentReference {
            ref_type: 5,
            ..Default::default()
        }];
        let err = convert_segment(sw_segment(vec![bad]), 10).unwrap_err();
        assert_eq!(
            err.to_string(),
            "span 0 has a reference with unknown refType 5"
        );
    }
}
