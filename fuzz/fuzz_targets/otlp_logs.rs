//! `POST /v1/logs`: a body starting with `{` is decoded as OTLP JSON, anything else as
//! protobuf (so captured bodies of either kind are useful seeds as they are).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| {
    let content_type = if body.first() == Some(&b'{') {
        "application/json"
    } else {
        "application/x-protobuf"
    };
    if let Ok(batch) = skylark_receiver::decode_logs(content_type, body) {
        // A record is only kept with the service name its resource must carry.
        assert!(batch.logs.iter().all(|log| !log.service.is_empty()));
    }
});
