//! SkyWalking native protocol: wire types (generated from `proto/`) → Skylark model.
mod convert;
mod proto;
mod segment;

pub(crate) use proto::trace_segment_report_service_server::{
    TraceSegmentReportService, TraceSegmentReportServiceServer,
};
pub(crate) use proto::{
    Commands as SwCommands, SegmentCollection as SwSegmentCollection,
    SegmentObject as SwSegmentObject,
};
pub use segment::{decode_segment_json, decode_segments_json, SegmentBatch};
