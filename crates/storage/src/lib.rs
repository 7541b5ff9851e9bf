//! Skylark's storage: where metric rows, entities, logs and trace segments are kept.
//!
//! Everything the rules produce goes through [`Storage`]; queries read through it too, so a second
//! backend (a distributed store) can be added without touching rules or queries. [`SledStorage`]
//! is the embedded default.
#![warn(missing_docs, unreachable_pub)]

mod alarms;
mod applied;
mod engine;
mod error;
mod issues;
mod keys;
mod kv_storage;
mod mem_storage;
mod model;
mod names;
mod records;
mod rollups;
mod rows;
mod rum;
mod runs;
mod sled_storage;
mod templates;
#[cfg(feature = "testsuite")]
mod testsuite;
mod traffic;

pub use applied::{AppliedSeqs, MARK_KEY_PREFIX};
pub use error::{Error, Result};
pub use issues::{IssueFold, ISSUE_EVENTS_KEPT};
pub use keys::{is_timed_range, timed_row_day};
pub use kv_storage::KvStorage;
pub use mem_storage::MemStorage;
pub use model::{
    AlarmEntityFilter, AlarmQuery, AlarmRecord, EndpointRecord, InstanceRecord, IssueOrder,
    IssueQuery, LogQuery, RetentionPolicy, RumPage, RumQuery, ServiceRecord, SessionPage,
    SessionQuery, SourceMapRecord, StoredLog, TemplateRecord, TraceOrder, TraceQuery, TraceState,
};
pub use records::{
    indexable_tag, truncate_log, Page, LOG_CONTENT_MAX_BYTES, LOG_TAGS_MAX, LOG_TRUNCATED_TAG,
};
pub use rows::{RangeVisitor, RowOp, RowStore, RowVisitor};
pub use rum::RUM_TOTAL_MAX;
pub use sled_storage::{SledConfig, SledStorage};
#[cfg(feature = "testsuite")]
pub use testsuite::{run_conformance_suite, ConformanceCheck, CONFORMANCE_CHECKS};

use skylark_core::traffic::Traffic;
use skylark_core::{
    EndpointId, InstanceId, Issue, IssueOccurrence, Layer, LogRecord, MetricDefinition,
    MetricEmission, MetricValue, SegmentRecord, ServiceId, TimeBucket,
};

/// The storage contract. Implementations aggregate writes in memory and persist them in batches
/// on [`Storage::flush`]; reads see both persisted and not-yet-flushed data.
///
/// Records (logs and segments) are not aggregated: each `write_logs`/`write_segments` call is
/// persisted as one batch before it returns.
///
/// Metric rows are keyed by (metric name, entity id, bucket) and merged with OAP's storage
/// functions (`MetricState::combine`) within and across flushes. Nothing is persisted until
/// `flush` (implementations also flush when dropped), so the caller decides the persistence
/// period (OAP: 25 s).
pub trait Storage: Send + Sync + 'static {
    /// Adds metric emissions to the in-memory aggregation (minute rows plus hour and day rollups).
    fn write_metrics(&self, emissions: Vec<MetricEmission>) -> Result<()>;

    /// Records that entities were seen at `now_ms` (service/instance/endpoint registration).
    /// Instances and endpoints keep the latest ping; services keep every layer they were seen in.
    fn write_traffic(&self, traffic: Vec<Traffic>, now_ms: i64) -> Result<()>;

    /// Persists everything aggregated so far (one batch), merging with stored rows.
    fn flush(&self) -> Result<()>;

    /// Builds the rows of hours and days that have closed, once, from their finer rows, and
    /// returns how many it wrote. Backends that keep rollups up to date at every flush have
    /// nothing to build. Called by the periodic persist after a flush, never by the one at
    /// shutdown or after a replay, so those stay short.
    fn build_rollups(&self) -> Result<usize> {
        Ok(0)
    }

    /// Metric rows (minute, hour and day each count) waiting for the next flush; callers may
    /// flush early when this grows large.
    fn pending_rows(&self) -> usize {
        0
    }

    /// Estimated memory of the metric rows not yet persisted (pending and in a running flush),
    /// in bytes: what the memory budget counts.
    fn pending_bytes(&self) -> usize {
        0
    }

    /// Values of `metric` for entity `entity_id` in each of `buckets` (all of one step), `None`
    /// where no row exists.
    fn read_metric(
        &self,
        metric: &MetricDefinition,
        entity_id: &str,
        buckets: &[TimeBucket],
    ) -> Result<Vec<Option<MetricValue>>>;

    /// Entity ids that have at least one row of `metric` in `buckets` (for top-n style queries).
    fn metric_entities(
        &self,
        metric: &MetricDefinition,
        buckets: &[TimeBucket],
    ) -> Result<Vec<String>>;

    /// Services, optionally only those seen in `layer`.
    fn list_services(&self, layer: Option<Layer>) -> Result<Vec<ServiceRecord>>;

    /// One service by id.
    fn get_service(&self, id: &ServiceId) -> Result<Option<ServiceRecord>>;

    /// Instances of a service last seen at or after `since_ms`.
    fn list_instances(&self, service: &ServiceId, since_ms: i64) -> Result<Vec<InstanceRecord>>;

    /// One instance by id.
    fn get_instance(&self, id: &InstanceId) -> Result<Option<InstanceRecord>>;

    /// Endpoints of a service whose name contains `keyword` (all when `None` or empty), at most
    /// `limit`, sorted by name.
    fn find_endpoints(
        &self,
        service: &ServiceId,
        keyword: Option<&str>,
        limit: usize,
    ) -> Result<Vec<EndpointRecord>>;

    /// One endpoint by id.
    fn get_endpoint(&self, id: &EndpointId) -> Result<Option<EndpointRecord>>;

    /// Stores logs durably (one batch for the call), each under a new unique id with its
    /// service/instance/endpoint ids computed as OAP's (`instance_id`/`endpoint_id` only when the
    /// name is non-empty).
    ///
    /// Receivers may hand over huge logs, so a log whose content exceeds
    /// [`LOG_CONTENT_MAX_BYTES`] (256 KiB) has it cut at a character boundary, and one with more
    /// than [`LOG_TAGS_MAX`] (1,000) tags keeps only the first 1,000; either way the tag
    /// `truncated=true` ([`LOG_TRUNCATED_TAG`]) is appended.
    fn write_logs(&self, logs: Vec<LogRecord>) -> Result<()>;

    /// Logs matching `query`, ordered by timestamp (newest first unless `order_desc` is false),
    /// then paged with `offset`/`limit`.
    fn query_logs(&self, query: &LogQuery) -> Result<Vec<StoredLog>>;

    /// Distinct log tag keys seen in the UTC days overlapping `[start_ms, end_ms]`, sorted. Tags
    /// longer than 256 characters (`key=value`) are not offered.
    fn log_tag_keys(&self, start_ms: i64, end_ms: i64) -> Result<Vec<String>>;

    /// Distinct values of log tag `key` seen in the UTC days overlapping `[start_ms, end_ms]`,
    /// sorted.
    fn log_tag_values(&self, key: &str, start_ms: i64, end_ms: i64) -> Result<Vec<String>>;

    /// Stores segment records durably (one batch for the call). A segment with the same id and
    /// start time as a stored one replaces it; segments are stored whole however many spans they
    /// have (the caller limits size).
    fn write_segments(&self, segments: Vec<SegmentRecord>) -> Result<()>;

    /// Segment records matching `query` (with their full segments), sorted by `query.order`
    /// (descending) and paged with `offset`/`limit`.
    fn query_segments(&self, query: &TraceQuery) -> Result<Vec<SegmentRecord>>;

    /// Every segment record of `trace_id`, earliest start first; empty for an unknown trace.
    fn get_trace(&self, trace_id: &str) -> Result<Vec<SegmentRecord>>;

    /// Distinct searchable span tag keys seen in the UTC days overlapping `[start_ms, end_ms]`.
    fn trace_tag_keys(&self, start_ms: i64, end_ms: i64) -> Result<Vec<String>>;

    /// Distinct values of searchable span tag `key` seen in the UTC days overlapping
    /// `[start_ms, end_ms]`.
    fn trace_tag_values(&self, key: &str, start_ms: i64, end_ms: i64) -> Result<Vec<String>>;

    /// Removes metric rows (minute, hour and day) whose bucket lies wholly before
    /// `now_ms - metrics_days`, instances/endpoints last seen before then (services are kept),
    /// and logs and segments older than `now_ms - records_days` (with their indexes); returns
    /// how many metric rows, entities, logs and segments were removed.
    fn remove_expired(&self, policy: &RetentionPolicy, now_ms: i64) -> Result<u64>;

    /// Stores UI template `id` durably before returning, replacing any stored one with that id.
    /// `configuration` is kept verbatim; `disabled` is a soft delete. Templates never expire.
    ///
    /// Backends without a template store refuse with [`Error::Unsupported`].
    fn put_template(&self, id: &str, configuration: &str, disabled: bool) -> Result<()> {
        let _ = (id, configuration, disabled);
        Err(Error::Unsupported("ui templates"))
    }

    /// The stored UI template `id` (disabled ones included); `None` if never stored.
    fn get_template(&self, id: &str) -> Result<Option<TemplateRecord>> {
        let _ = id;
        Ok(None)
    }

    /// Every stored UI template (disabled ones included), sorted by id.
    fn list_templates(&self) -> Result<Vec<TemplateRecord>> {
        Ok(Vec::new())
    }

    /// Like [`Storage::write_metrics`], and marks every write-ahead-log entry up to `seq` as
    /// aggregated: the next [`Storage::flush`] stores the mark in the same batch as the rows, so
    /// [`Storage::applied_seqs`] never claims more than is stored. Callers apply entries in `seq`
    /// order and write an entry's traffic before calling this.
    ///
    /// Backends without write-ahead-log marks refuse with [`Error::Unsupported`].
    fn write_metrics_through(&self, seq: u64, emissions: Vec<MetricEmission>) -> Result<()> {
        let _ = (seq, emissions);
        Err(Error::Unsupported("write-ahead-log marks"))
    }

    /// Like [`Storage::write_logs`], storing `seq` as the logs mark in the same batch (callers
    /// apply entries in `seq` order).
    ///
    /// The `*_through` writes may be applied after they return, in the order they were made:
    /// the write-ahead log holds their entries until [`Storage::flush`] (which first finishes
    /// them) stores the metrics mark. Reads and [`Storage::applied_seqs`] see them once done; a
    /// failure is returned by a later call.
    fn write_logs_through(&self, seq: u64, logs: Vec<LogRecord>) -> Result<()> {
        let _ = (seq, logs);
        Err(Error::Unsupported("write-ahead-log marks"))
    }

    /// Like [`Storage::write_segments`], storing `seq` as the segments mark in the same batch.
    fn write_segments_through(&self, seq: u64, segments: Vec<SegmentRecord>) -> Result<()> {
        let _ = (seq, segments);
        Err(Error::Unsupported("write-ahead-log marks"))
    }

    /// The stored write-ahead-log marks (all 0 in a new store).
    fn applied_seqs(&self) -> Result<AppliedSeqs> {
        Err(Error::Unsupported("write-ahead-log marks"))
    }

    /// Stores alarm records durably before returning; a record with the same start time and
    /// uuid as a stored one (its recovery) replaces it. Records expire after `records_days`.
    ///
    /// Backends without alarm storage refuse with [`Error::Unsupported`].
    fn write_alarm_records(&self, records: Vec<AlarmRecord>) -> Result<()> {
        let _ = records;
        Err(Error::Unsupported("alarm records"))
    }

    /// Alarm records matching `query`, latest start first, paged with `offset`/`limit`.
    fn query_alarms(&self, query: &AlarmQuery) -> Result<Vec<AlarmRecord>> {
        let _ = query;
        Ok(Vec::new())
    }

    /// Distinct alarm tag keys seen in the UTC days overlapping `[start_ms, end_ms]`, sorted.
    fn alarm_tag_keys(&self, start_ms: i64, end_ms: i64) -> Result<Vec<String>> {
        let _ = (start_ms, end_ms);
        Ok(Vec::new())
    }

    /// Distinct values of alarm tag `key` seen in the UTC days overlapping
    /// `[start_ms, end_ms]`, sorted.
    fn alarm_tag_values(&self, key: &str, start_ms: i64, end_ms: i64) -> Result<Vec<String>> {
        let _ = (key, start_ms, end_ms);
        Ok(Vec::new())
    }

    /// Durably replaces (`Some`) or removes (`None`) the alarm evaluator's state of each
    /// `(rule name, entity key)`, in one batch, so silence survives a restart.
    fn put_alarm_states(&self, states: Vec<(String, String, Option<String>)>) -> Result<()> {
        let _ = states;
        Err(Error::Unsupported("alarm state"))
    }

    /// Every stored `(rule name, entity key, state)`.
    fn alarm_states(&self) -> Result<Vec<(String, String, String)>> {
        Ok(Vec::new())
    }

    /// Stores RUM events durably (one batch for the call), indexed by service + time, session,
    /// view, user / anonymous id and trace id. A view replaces its stored version only when its
    /// `document_version` is higher; other events with a stored time and id replace it. Events
    /// expire with the other records.
    ///
    /// Backends without RUM storage refuse with [`Error::Unsupported`].
    fn write_rum_events(&self, events: Vec<skylark_core::RumEvent>) -> Result<()> {
        let _ = events;
        Err(Error::Unsupported("rum events"))
    }

    /// Like [`Storage::write_rum_events`], storing `seq` as the RUM mark in the same batch.
    fn write_rum_events_through(
        &self,
        seq: u64,
        events: Vec<skylark_core::RumEvent>,
    ) -> Result<()> {
        let _ = (seq, events);
        Err(Error::Unsupported("write-ahead-log marks"))
    }

    /// RUM events matching `query`, paged, with the number of matches.
    fn query_rum_events(&self, query: &RumQuery) -> Result<RumPage> {
        let _ = query;
        Ok(RumPage::default())
    }

    /// The stored version of a view (the event with `view`'s id and start time), if any.
    fn stored_rum_view(
        &self,
        view: &skylark_core::RumEvent,
    ) -> Result<Option<skylark_core::RumEvent>> {
        let _ = view;
        Ok(None)
    }

    /// The summary of RUM session `id` (kept up to date by [`Storage::write_rum_events`]).
    fn rum_session(&self, id: &str) -> Result<Option<skylark_core::RumSession>> {
        let _ = id;
        Ok(None)
    }

    /// RUM sessions started in the query's window matching it, newest first, paged.
    fn query_rum_sessions(&self, query: &SessionQuery) -> Result<SessionPage> {
        let _ = query;
        Ok(SessionPage::default())
    }

    /// Whether any RUM event of `session_id` is stored.
    fn rum_session_seen(&self, session_id: &str) -> Result<bool> {
        let _ = session_id;
        Ok(false)
    }

    /// Folds `occurrences` into their issues with `fold` and stores the issues, the latest
    /// occurrences ([`ISSUE_EVENTS_KEPT`] per issue) and per-minute counts durably in one batch,
    /// with `seq` as the issues mark when given (write-ahead-log replay skips what it covers).
    ///
    /// Backends without issue storage refuse with [`Error::Unsupported`].
    fn record_issue_occurrences(
        &self,
        seq: Option<u64>,
        occurrences: Vec<IssueOccurrence>,
        fold: &'static IssueFold,
    ) -> Result<()> {
        let _ = (seq, occurrences, fold);
        Err(Error::Unsupported("error issues"))
    }

    /// Durably replaces issue `id` with `change(issue)`, serialised with
    /// [`Storage::record_issue_occurrences`]; `None` when there is no such issue.
    fn update_issue(
        &self,
        id: &str,
        change: &mut dyn FnMut(Issue) -> Issue,
    ) -> Result<Option<Issue>> {
        let _ = (id, change);
        Err(Error::Unsupported("error issues"))
    }

    /// Issue `id`.
    fn get_issue(&self, id: &str) -> Result<Option<Issue>> {
        let _ = id;
        Ok(None)
    }

    /// Issues matching `query`, sorted and paged, and how many matched in all.
    fn query_issues(&self, query: &IssueQuery) -> Result<(Vec<Issue>, usize)> {
        let _ = query;
        Ok((Vec::new(), 0))
    }

    /// The kept occurrences of issue `id`, latest first, paged.
    fn issue_events(&self, id: &str, offset: usize, limit: usize) -> Result<Vec<IssueOccurrence>> {
        let _ = (id, offset, limit);
        Ok(Vec::new())
    }

    /// `(minute start ms, occurrences)` of issue `id` within `[start_ms, end_ms]`, ascending;
    /// minutes without occurrences are left out.
    fn issue_minutes(&self, id: &str, start_ms: i64, end_ms: i64) -> Result<Vec<(i64, u64)>> {
        let _ = (id, start_ms, end_ms);
        Ok(Vec::new())
    }

    /// Stores a source map durably, replacing the one for the same service, version and file.
    ///
    /// Backends without source-map storage refuse with [`Error::Unsupported`].
    fn put_source_map(&self, record: &SourceMapRecord, map: &[u8]) -> Result<()> {
        let _ = (record, map);
        Err(Error::Unsupported("source maps"))
    }

    /// The map stored for this service, version and generated file.
    fn source_map(&self, service: &str, version: &str, file: &str) -> Result<Option<Vec<u8>>> {
        let _ = (service, version, file);
        Ok(None)
    }

    /// Stored maps (only `service`'s when given), newest upload first.
    fn list_source_maps(&self, service: Option<&str>) -> Result<Vec<SourceMapRecord>> {
        let _ = service;
        Ok(Vec::new())
    }

    /// Removes a stored map; whether there was one.
    fn delete_source_map(&self, service: &str, version: &str, file: &str) -> Result<bool> {
        let _ = (service, version, file);
        Ok(false)
    }
}

/// Implements [`Storage`] for a type with an `engine` field by forwarding every method.
macro_rules! delegate_storage {
    ([$($g:ident: $b:path),*] $ty:ty) => {
        impl<$($g: $b),*> $crate::Storage for $ty {
            fn write_metrics(
                &self,
                emissions: Vec<skylark_core::MetricEmission>,
            ) -> $crate::Result<()> {
                self.engine.write_metrics(emissions)
            }
            fn write_traffic(
                &self,
                traffic: Vec<skylark_core::traffic::Traffic>,
                now_ms: i64,
            ) -> $crate::Result<()> {
                self.engine.write_traffic(traffic, now_ms)
            }
            fn flush(&self) -> $crate::Result<()> {
                self.engine.flush()
            }
            fn build_rollups(&self) -> $crate::Result<usize> {
                self.engine.build_rollups()
            }
            fn pending_rows(&self) -> usize {
                self.engine.pending_rows()
            }

            fn pending_bytes(&self) -> usize {
                self.engine.pending_bytes()
            }
            fn read_metric(
                &self,
                metric: &skylark_core::MetricDefinition,
                entity_id: &str,
                buckets: &[skylark_core::TimeBucket],
            ) -> $crate::Result<Vec<Option<skylark_core::MetricValue>>> {
                self.engine.read_metric(metric, entity_id, buckets)
            }
            fn metric_entities(
                &self,
                metric: &skylark_core::MetricDefinition,
                buckets: &[skylark_core::TimeBucket],
            ) -> $crate::Result<Vec<String>> {
                self.engine.metric_entities(metric, buckets)
            }
            fn list_services(
                &self,
                layer: Option<skylark_core::Layer>,
            ) -> $crate::Result<Vec<$crate::ServiceRecord>> {
                self.engine.list_services(layer)
            }
            fn get_service(
                &self,
                id: &skylark_core::ServiceId,
            ) -> $crate::Result<Option<$crate::ServiceRecord>> {
                self.engine.get_service(id)
            }
            fn list_instances(
                &self,
                service: &skylark_core::ServiceId,
                since_ms: i64,
            ) -> $crate::Result<Vec<$crate::InstanceRecord>> {
                self.engine.list_instances(service, since_ms)
            }
            fn get_instance(
                &self,
                id: &skylark_core::InstanceId,
            ) -> $crate::Result<Option<$crate::InstanceRecord>> {
                self.engine.get_instance(id)
            }
            fn find_endpoints(
                &self,
                service: &skylark_core::ServiceId,
                keyword: Option<&str>,
                limit: usize,
            ) -> $crate::Result<Vec<$crate::EndpointRecord>> {
                self.engine.find_endpoints(service, keyword, limit)
            }
            fn get_endpoint(
                &self,
                id: &skylark_core::EndpointId,
            ) -> $crate::Result<Option<$crate::EndpointRecord>> {
                self.engine.get_endpoint(id)
            }
            fn write_logs(&self, logs: Vec<skylark_core::LogRecord>) -> $crate::Result<()> {
                self.engine.write_logs(logs)
            }
            fn query_logs(
                &self,
                query: &$crate::LogQuery,
            ) -> $crate::Result<Vec<$crate::StoredLog>> {
                self.engine.query_logs(query)
            }
            fn log_tag_keys(&self, start_ms: i64, end_ms: i64) -> $crate::Result<Vec<String>> {
                self.engine.log_tag_keys(start_ms, end_ms)
            }
            fn log_tag_values(
                &self,
                key: &str,
                start_ms: i64,
                end_ms: i64,
            ) -> $crate::Result<Vec<String>> {
                self.engine.log_tag_values(key, start_ms, end_ms)
            }
            fn write_segments(
                &self,
                segments: Vec<skylark_core::SegmentRecord>,
            ) -> $crate::Result<()> {
                self.engine.write_segments(segments)
            }
            fn query_segments(
                &self,
                query: &$crate::TraceQuery,
            ) -> $crate::Result<Vec<skylark_core::SegmentRecord>> {
                self.engine.query_segments(query)
            }
            fn get_trace(
                &self,
                trace_id: &str,
            ) -> $crate::Result<Vec<skylark_core::SegmentRecord>> {
                self.engine.get_trace(trace_id)
            }
            fn trace_tag_keys(&self, start_ms: i64, end_ms: i64) -> $crate::Result<Vec<String>> {
                self.engine.trace_tag_keys(start_ms, end_ms)
            }
            fn trace_tag_values(
                &self,
                key: &str,
                start_ms: i64,
                end_ms: i64,
            ) -> $crate::Result<Vec<String>> {
                self.engine.trace_tag_values(key, start_ms, end_ms)
            }
            fn remove_expired(
                &self,
                policy: &$crate::RetentionPolicy,
                now_ms: i64,
            ) -> $crate::Result<u64> {
                self.engine.remove_expired(policy, now_ms)
            }
            fn put_template(
                &self,
                id: &str,
                configuration: &str,
                disabled: bool,
            ) -> $crate::Result<()> {
                self.engine.put_template(id, configuration, disabled)
            }
            fn get_template(&self, id: &str) -> $crate::Result<Option<$crate::TemplateRecord>> {
                self.engine.get_template(id)
            }
            fn list_templates(&self) -> $crate::Result<Vec<$crate::TemplateRecord>> {
                self.engine.list_templates()
            }
            fn write_metrics_through(
                &self,
                seq: u64,
                emissions: Vec<skylark_core::MetricEmission>,
            ) -> $crate::Result<()> {
                self.engine.write_metrics_through(seq, emissions)
            }
            fn write_logs_through(
                &self,
                seq: u64,
                logs: Vec<skylark_core::LogRecord>,
            ) -> $crate::Result<()> {
                self.engine.write_logs_through(seq, logs)
            }
            fn write_segments_through(
                &self,
                seq: u64,
                segments: Vec<skylark_core::SegmentRecord>,
            ) -> $crate::Result<()> {
                self.engine.write_segments_through(seq, segments)
            }
            fn applied_seqs(&self) -> $crate::Result<$crate::AppliedSeqs> {
                self.engine.applied_seqs()
            }
            fn write_alarm_records(&self, records: Vec<$crate::AlarmRecord>) -> $crate::Result<()> {
                self.engine.write_alarm_records(records)
            }
            fn query_alarms(
                &self,
                query: &$crate::AlarmQuery,
            ) -> $crate::Result<Vec<$crate::AlarmRecord>> {
                self.engine.query_alarms(query)
            }
            fn alarm_tag_keys(&self, start_ms: i64, end_ms: i64) -> $crate::Result<Vec<String>> {
                self.engine.alarm_tag_keys(start_ms, end_ms)
            }
            fn alarm_tag_values(
                &self,
                key: &str,
                start_ms: i64,
                end_ms: i64,
            ) -> $crate::Result<Vec<String>> {
                self.engine.alarm_tag_values(key, start_ms, end_ms)
            }
            fn put_alarm_states(
                &self,
                states: Vec<(String, String, Option<String>)>,
            ) -> $crate::Result<()> {
                self.engine.put_alarm_states(states)
            }
            fn alarm_states(&self) -> $crate::Result<Vec<(String, String, String)>> {
                self.engine.alarm_states()
            }
            fn write_rum_events(&self, events: Vec<skylark_core::RumEvent>) -> $crate::Result<()> {
                self.engine.write_rum_events(events)
            }
            fn write_rum_events_through(
                &self,
                seq: u64,
                events: Vec<skylark_core::RumEvent>,
            ) -> $crate::Result<()> {
                self.engine.write_rum_events_through(seq, events)
            }
            fn query_rum_events(
                &self,
                query: &$crate::RumQuery,
            ) -> $crate::Result<$crate::RumPage> {
                self.engine.query_rum_events(query)
            }
            fn stored_rum_view(
                &self,
                view: &skylark_core::RumEvent,
            ) -> $crate::Result<Option<skylark_core::RumEvent>> {
                self.engine.stored_rum_view(view)
            }
            fn rum_session(&self, id: &str) -> $crate::Result<Option<skylark_core::RumSession>> {
                self.engine.rum_session(id)
            }
            fn query_rum_sessions(
                &self,
                query: &$crate::SessionQuery,
            ) -> $crate::Result<$crate::SessionPage> {
                self.engine.query_rum_sessions(query)
            }
            fn rum_session_seen(&self, session_id: &str) -> $crate::Result<bool> {
                self.engine.rum_session_seen(session_id)
            }
            fn record_issue_occurrences(
                &self,
                seq: Option<u64>,
                occurrences: Vec<skylark_core::IssueOccurrence>,
                fold: &'static $crate::IssueFold,
            ) -> $crate::Result<()> {
                self.engine.record_issue_occurrences(seq, occurrences, fold)
            }
            fn update_issue(
                &self,
                id: &str,
                change: &mut dyn FnMut(skylark_core::Issue) -> skylark_core::Issue,
            ) -> $crate::Result<Option<skylark_core::Issue>> {
                self.engine.update_issue(id, change)
            }
            fn get_issue(&self, id: &str) -> $crate::Result<Option<skylark_core::Issue>> {
                self.engine.get_issue(id)
            }
            fn query_issues(
                &self,
                query: &$crate::IssueQuery,
            ) -> $crate::Result<(Vec<skylark_core::Issue>, usize)> {
                self.engine.query_issues(query)
            }
            fn issue_events(
                &self,
                id: &str,
                offset: usize,
                limit: usize,
            ) -> $crate::Result<Vec<skylark_core::IssueOccurrence>> {
                self.engine.issue_events(id, offset, limit)
            }
            fn issue_minutes(
                &self,
                id: &str,
                start_ms: i64,
                end_ms: i64,
            ) -> $crate::Result<Vec<(i64, u64)>> {
                self.engine.issue_minutes(id, start_ms, end_ms)
            }
            fn put_source_map(
                &self,
                record: &$crate::SourceMapRecord,
                map: &[u8],
            ) -> $crate::Result<()> {
                self.engine.put_source_map(record, map)
            }
            fn source_map(
                &self,
                service: &str,
                version: &str,
                file: &str,
            ) -> $crate::Result<Option<Vec<u8>>> {
                self.engine.source_map(service, version, file)
            }
            fn list_source_maps(
                &self,
                service: Option<&str>,
            ) -> $crate::Result<Vec<$crate::SourceMapRecord>> {
                self.engine.list_source_maps(service)
            }
            fn delete_source_map(
                &self,
                service: &str,
                version: &str,
                file: &str,
            ) -> $crate::Result<bool> {
                self.engine.delete_source_map(service, version, file)
            }
        }
    };
    ($ty:ty) => {
        $crate::delegate_storage!([] $ty);
    };
}
pub(crate) use delegate_storage;
