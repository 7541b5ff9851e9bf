//! SkyWalking segment reports in proto3 JSON (`POST /v3/segments`, `POST /v3/segment`) and the
//! batch both transports build.
//!
//! An array is decoded element by element, so one bad segment does not lose the others: the
//! valid ones are ingested and the report is answered 400 naming the bad ones by index. The SDK
//! re-sends a batch answered non-2xx, so the valid segments of such a batch arrive again; this is
//! accepted because a client that keeps sending a broken segment needs to hear about it, and a
//! silent 200 would hide the fault.
use serde_json::value::RawValue;
use skylark_core::segment::Segment;

use super::convert::convert_segment;
use super::proto::SegmentObject as SwSegmentObject;
use crate::{Error, RejectedSegment, Result, SegmentRejection};

/// The segments of one report: the valid ones converted, the others with their reasons.
#[derive(Debug, Default)]
pub struct SegmentBatch {
    /// Valid segments in report order.
    pub segments: Vec<Segment>,
    /// Rejected segments with their position in the report.
    pub rejected: Vec<RejectedSegment>,
    /// Segments pushed so far, valid or not (a gRPC stream hands valid ones on in chunks).
    total: usize,
}

impl SegmentBatch {
    /// Segments in the report, valid or not.
    pub fn total(&self) -> usize {
        self.total
    }

    /// Converts and files one reported segment (or its decoding failure) at position `index`.
    pub(crate) fn push(
        &mut self,
        index: usize,
        decoded: Result<SwSegmentObject, SegmentRejection>,
        max_spans: usize,
    ) {
        self.total += 1;
        match decoded.and_then(|segment| convert_segment(segment, max_spans)) {
            Ok(segment) => self.segments.push(segment),
            Err(reason) => self.rejected.push(RejectedSegment { index, reason }),
        }
    }

    /// Splits off the valid segments, leaving the error that reports the rejected ones (if any).
    pub(crate) fn into_parts(self) -> (Vec<Segment>, Option<Error>) {
        let total = self.total();
        let error = (!self.rejected.is_empty()).then_some(Error::SegmentsRejected {
            total,
            rejected: self.rejected,
        });
        (self.segments, error)
    }
}

/// Decodes a `/v3/segments` body: a JSON array of `SegmentObject` in proto3 JSON (camelCase
/// field names as in the protocol, int64 as number or string, enums by name or number, unknown
/// fields ignored). Fails only when the body is not a JSON array; bad elements are rejected one by one.
pub fn decode_segments_json(body: &[u8], max_spans_per_segment: usize) -> Result<SegmentBatch> {
    let elements: Vec<&RawValue> =
        serde_json::from_slice(body).map_err(|source| Error::SegmentJson {
            expected: "an array of segments",
            source,
        })?;
    let mut batch = SegmentBatch::default();
    for (index, element) in elements.into_iter().enumerate() {
        batch.push(index, decode_element(element), max_spans_per_segment);
    }
    Ok(batch)
}

/// Decodes a `/v3/segment` body: one `SegmentObject` (see [`decode_segments_json`]). Fails when
/// the body is not a JSON object; an object that is not a valid segment is a rejected element 0.
pub fn decode_segment_json(body: &[u8], max_spans_per_segment: usize) -> Result<SegmentBatch> {
    const EXPECTED: &str = "one segment object";
    let element: &RawValue = serde_json::from_slice(body).map_err(|source| Error::SegmentJson {
        expected: EXPECTED,
        source,
    })?;
    if !element.get().starts_with('{') {
        // Reuse serde's wording ("invalid type: sequence, expected a map at line 1 column 1").
        let source =
            serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(element.get()).err();
        if let Some(source) = source {
            return Err(Error::SegmentJson {
                expected: EXPECTED,
                source,
            });
        }
    }
    let mut batch = SegmentBatch::default();
    batch.push(0, decode_element(element), max_spans_per_segment);
    Ok(batch)
}

fn decode_element(element: &RawValue) -> Result<SwSegmentObject, SegmentRejection> {
    serde_json::from_str(element.get()).map_err(SegmentRejection::Json)
}

#[cfg(test)]
mod tests {
    use super::*;
    use skylark_core::segment::{SpanLayer, SpanType};

    const SEGMENT: &str = r#"{"traceId":"t1","traceSegmentId":"s1","service":"mp",
        "serviceInstance":"-","spans":[{"operationName":"pages/index/index",
        "startTime":1795929348521,"endTime":"1795929348761","spanId":0,"parentSpanId":-1,
        "spanLayer":"Http","spanType":1,"isError":false,"componentId":10002,
        "peer":"api.example.com","futureField":{"x":1},
        "tags":[{"key":"http.method","value":"GET"}]}]}"#;

    #[test]
    fn proto3_json_forms_are_accepted() {
        let body = format!("[{SEGMENT}]");
        let batch = decode_segments_json(body.as_bytes(), 10).unwrap();
        assert!(batch.rejected.is_empty(), "{:?}", batch.rejected);
        let span = &batch.segments[0].spans[0];
        assert_eq!(span.end_time_ms, 1_795_929_348_761, "int64 as string");
        assert_eq!(span.span_type, SpanType::Exit, "enum by number");
        assert_eq!(span.span_layer, SpanLayer::Http, "enum by name");
        assert_eq!(span.peer, "api.example.com");

        let batch = decode_segment_json(SEGMENT.as_bytes(), 10).unwrap();
        assert_eq!(batch.segments[0].segment_id, "s1");
        // The proto's field names are camelCase, so snake_case keys are unknown fields (ignored,
        // as OAP's `ignoringUnknownFields` parser does), leaving the ids missing.
        let snake = r#"{"trace_id":"t","trace_segment_id":"s","spans":[]}"#;
        let batch = decode_segment_json(snake.as_bytes(), 10).unwrap();
        assert_eq!(batch.rejected[0].reason.to_string(), "missing traceId");
    }

    #[test]
    fn bad_elements_are_rejected_by_index_and_others_kept() {
        let body = format!(
            r#"[{SEGMENT}, 5, {{"traceId":"t"}}, {{"spans":[{{"spanType":"Sideways"}}]}}, {SEGMENT}]"#
        );
        let batch = decode_segments_json(body.as_bytes(), 10).unwrap();
        assert_eq!(batch.segments.len(), 2);
        assert_eq!(batch.total(), 5);
        let reasons: Vec<(usize, String)> = batch
            .rejected
            .iter()
            .map(|r| (r.index, r.reason.to_string()))
            .collect();
        assert_eq!(reasons[0].0, 1);
        assert!(
            reasons[0]
                .1
                .starts_with("invalid segment: invalid type: integer"),
            "{reasons:?}"
        );
        assert_eq!(reasons[1], (2, "missing traceSegmentId".to_owned()));
        assert_eq!(reasons[2].0, 3);
        assert!(
            reasons[2].1.contains("unknown variant `Sideways`"),
            "{reasons:?}"
        );
        let (segments, error) = batch.into_parts();
        assert_eq!(segments.len(), 2);
        assert!(error
            .unwrap()
            .to_string()
            .starts_with("3 of 5 segments rejected: [1] "));
    }

    #[test]
    fn wrong_shapes_fail_the_whole_body() {
        let err = decode_segments_json(SEGMENT.as_bytes(), 10).unwrap_err();
        assert!(
            err.to_string().starts_with(
                "invalid segment JSON, expected an array of segments: invalid type: map"
            ),
            "{err}"
        );
        let err = decode_segments_json(b"[{\"traceId\":", 10).unwrap_err();
        assert!(err.to_string().contains("line 1 column"), "{err}");
        let err = decode_segment_json(b"[]", 10).unwrap_err();
        assert!(
            err.to_string().starts_with(
                "invalid segment JSON, expected one segment object: invalid type: sequence"
            ),
            "{err}"
        );
        let batch = decode_segments_json(b"[]", 10).unwrap();
        assert_eq!(batch.total(), 0);
    }
}
