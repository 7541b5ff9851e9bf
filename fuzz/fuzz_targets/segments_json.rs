//! `POST /v3/segments` (array) and `POST /v3/segment` (one object): any body must give a batch
//! (with per-element rejections) or a typed error, never panic. A small span limit makes the
//! too-many-spans rejection reachable.
#![no_main]

use libfuzzer_sys::fuzz_target;

const MAX_SPANS: usize = 8;

fuzz_target!(|body: &[u8]| {
    if let Ok(batch) = skylark_receiver::decode_segments_json(body, MAX_SPANS) {
        assert_eq!(batch.total(), batch.segments.len() + batch.rejected.len());
        assert!(batch.segments.iter().all(|s| s.spans.len() <= MAX_SPANS));
    }
    let _ = skylark_receiver::decode_segment_json(body, MAX_SPANS);
});
