//! Read only, for WAL folders written before this version: their entries are bincode (1.x,
//! default options) of the then `EntryRef`, with no format tag (records whose length field has
//! [`crate::wal::TAGGED`] clear). Nothing is written this way any more: new entries are postcard
//! ([`super::ENTRY_FORMAT_POSTCARD`]). The types below are frozen copies of the old ones; their
//! field and variant order is the encoding, so they must not change. Once no folder from before
//! this version can be left to replay, this module and the `bincode` dependency can go.
use super::{ByteBuf, Input, Request as Current, WritePath};
use crate::{Error, Result};
use serde::Deserialize;
use skylark_core::{LogData, MetricBatch, RumEvent, Segment};

/// An old entry: the time the request was processed at and the request.
#[derive(Deserialize)]
struct Entry {
    now_ms: i64,
    request: Request,
}

/// The old request kinds, in their variant order.
#[derive(Deserialize)]
enum Request {
    /// A decoded batch (the oldest metrics entries; later ones were compact or kept the body).
    Metrics(MetricBatch),
    Logs(Vec<LogData>),
    Segments(Vec<Segment>),
    CompactMetrics(ByteBuf),
    EncodedMetrics {
        content_type: String,
        body: ByteBuf,
    },
    Rum(Vec<RumEvent>),
}

/// Decodes an untagged entry an earlier version wrote.
pub(super) fn decode(payload: &[u8], path: &dyn WritePath) -> Result<(i64, Input)> {
    let entry: Entry = bincode::deserialize(payload).map_err(Error::DecodeLegacy)?;
    let current = match entry.request {
        Request::Metrics(batch) => return Ok((entry.now_ms, Input::Metrics(batch))),
        Request::Logs(logs) => Current::Logs(logs),
        Request::Segments(segments) => Current::Segments(segments),
        Request::CompactMetrics(bytes) => Current::CompactMetrics(bytes),
        Request::EncodedMetrics { content_type, body } => {
            Current::EncodedMetrics { content_type, body }
        }
        Request::Rum(events) => Current::Rum(events),
    };
    Ok((entry.now_ms, current.into_input(path)?))
}

/// How earlier versions wrote entries, byte for byte, for tests that build old WAL folders.
#[cfg(test)]
pub(super) mod write {
    use serde::Serialize;
    use skylark_core::{LogData, MetricBatch, RumEvent, Segment};

    /// The old `EntryRef`.
    #[derive(Serialize)]
    pub(crate) struct EntryRef<'a> {
        pub(crate) now_ms: i64,
        pub(crate) request: RequestRef<'a>,
    }

    /// The old `RequestRef`.
    #[allow(dead_code)]
    #[derive(Serialize)]
    pub(crate) enum RequestRef<'a> {
        Metrics(&'a MetricBatch),
        Logs(&'a [LogData]),
        Segments(&'a [Segment]),
        CompactMetrics(Bytes<'a>),
        EncodedMetrics {
            content_type: &'a str,
            body: Bytes<'a>,
        },
        Rum(&'a [RumEvent]),
    }

    /// The old `Bytes`: one length-prefixed copy.
    pub(crate) struct Bytes<'a>(pub(crate) &'a [u8]);

    impl Serialize for Bytes<'_> {
        fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            serializer.serialize_bytes(self.0)
        }
    }

    /// An old entry's payload, as `bincode::serialize(&EntryRef { .. })` wrote it.
    pub(crate) fn entry(now_ms: i64, request: RequestRef<'_>) -> Vec<u8> {
        bincode::serialize(&EntryRef { now_ms, request }).unwrap()
    }
}
