//! `POST /v1/metrics` with `Content-Type: application/x-protobuf`: any body must decode to a
//! batch or a typed error, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| {
    if let Ok(batch) = skylark_receiver::decode_metrics("application/x-protobuf", body) {
        // Every sample the converter keeps is finite (NaN/±Inf points are skipped).
        for family in batch.resources.iter().flat_map(|r| r.values()) {
            assert!(family.samples.iter().all(|s| s.value.is_finite()));
        }
    }
});
