//! The write path: decoded data → rules → storage. Each request is first *prepared* (rules run,
//! nothing stored) into [`Effects`], then written; the durable sink (`skylark_wal::durable`)
//! puts a write-ahead log between the two.
use skylark_core::traffic::Traffic;
use skylark_core::{
    is_too_far_ahead, HistogramGroup, IngestError, IngestReport, IngestSink, Labels, Layer,
    LogData, MeterEntity, MeterValue, MetricBatch, MetricDefinition, MetricEmission,
    MetricFunction, RejectReason, Rejections, RumBatch, RumEvent, SampleFamilies, Scope, Segment,
    SegmentRecord, SpanType, Step, TimeBucket,
};
use skylark_lal::LalEngine;
use skylark_mal::{EvalContext, RuleSet, TimeUnit};
use skylark_storage::Storage;
use std::sync::Arc;

/// OAP's `percentile2` precision for relation latency percentiles, in ms.
const RELATION_PERCENTILE_PRECISION: i64 = 10;

/// Ranks of the relation latency percentiles.
const RELATION_PERCENTILE_RANKS: [u32; 5] = [50, 75, 90, 95, 99];

/// A source of "now" in epoch milliseconds (injectable for tests).
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// The system clock.
pub fn system_clock() -> Clock {
    Arc::new(|| chrono::Utc::now().timestamp_millis())
}

/// The rule sets the pipeline runs.
pub struct Rules {
    /// MAL rules for OTLP metrics (`otel-rules/`).
    pub otel: RuleSet,
    /// LAL rules for logs.
    pub lal: LalEngine,
    /// MAL rules for samples LAL emits (`log-mal-rules/`).
    pub log_mal: RuleSet,
}

fn relation_metric(name: &str, scope: Scope, function: MetricFunction) -> MetricDefinition {
    let percentile_ranks = if function == MetricFunction::SumHistogramPercentile {
        RELATION_PERCENTILE_RANKS.to_vec()
    } else {
        Vec::new()
    };
    MetricDefinition {
        name: name.to_string(),
        scope,
        function,
        percentile_ranks,
    }
}

/// The client-side relation metrics OAP derives from exit spans (its `service_relation_client_*`
/// and `service_instance_relation_client_*`), in order: cpm, resp_time, call_sla, percentile.
pub fn relation_metrics() -> Vec<MetricDefinition> {
    let mut defs = Vec::new();
    for (prefix, scope) in [
        ("service_relation_client", Scope::ServiceRelation),
        (
            "service_instance_relation_client",
            Scope::ServiceInstanceRelation,
        ),
    ] {
        defs.push(relation_metric(
            &format!("{prefix}_cpm"),
            scope,
            MetricFunction::SumPerMin,
        ));
        defs.push(relation_metric(
            &format!("{prefix}_resp_time"),
            scope,
            MetricFunction::Avg,
        ));
        defs.push(relation_metric(
            &format!("{prefix}_call_sla"),
            scope,
            MetricFunction::Percent,
        ));
        defs.push(relation_metric(
            &format!("{prefix}_percentile"),
            scope,
            MetricFunction::SumHistogramPercentile,
        ));
    }
    defs
}

/// Runs decoded requests through the rules into storage.
pub struct Pipeline {
    rules: Rules,
    relation_metrics: Vec<std::sync::Arc<MetricDefinition>>,
    storage: Arc<dyn Storage>,
    metrics_ttl_ms: i64,
    records_ttl_ms: i64,
    clock: Clock,
    /// Caps on instances, endpoints and label values, applied to what the rules produced.
    guard: Option<Arc<crate::guards::CardinalityGuard>>,
    /// Groups error logs into issues (none: logs are only stored).
    issues: Option<Arc<crate::issues::IssueGrouping>>,
    /// Occurrences per issue per minute (`skylark_issues::OCCURRENCE_METRIC`).
    issue_metric: Arc<MetricDefinition>,
    /// Turns RUM events into samples, error logs and records.
    rum: skylark_rum::Deriver,
    /// The RUM views and sessions already counted.
    rum_tracker: parking_lot::Mutex<skylark_rum::ViewTracker>,
}

/// What storage already holds, for RUM views and sessions the tracker does not remember (after a
/// restart). A failed read counts as "not stored".
struct StoredRum<'a>(&'a dyn Storage);

impl skylark_rum::Known for StoredRum<'_> {
    fn stored_view(&self, view: &RumEvent) -> Option<RumEvent> {
        self.0.stored_rum_view(view).unwrap_or_else(|error| {
            tracing::warn!(%error, "reading a stored rum view failed");
            None
        })
    }

    fn session_seen(&self, session_id: &str) -> bool {
        self.0.rum_session_seen(session_id).unwrap_or_else(|error| {
            tracing::warn!(%error, "reading a stored rum session failed");
            false
        })
    }
}

fn internal(e: impl std::fmt::Display) -> IngestError {
    IngestError::Internal(e.to_string())
}

impl Pipeline {
    /// A pipeline over these rules and storage; data older than the TTLs (days) is dropped.
    pub fn new(
        rules: Rules,
        storage: Arc<dyn Storage>,
        metrics_ttl_days: u32,
        records_ttl_days: u32,
        clock: Clock,
    ) -> Self {
        Pipeline {
            rules,
            relation_metrics: relation_metrics()
                .into_iter()
                .map(std::sync::Arc::new)
                .collect(),
            storage,
            metrics_ttl_ms: i64::from(metrics_ttl_days) * 86_400_000,
            records_ttl_ms: i64::from(records_ttl_days) * 86_400_000,
            clock,
            guard: None,
            rum: skylark_rum::Deriver::default(),
            rum_tracker: parking_lot::Mutex::new(skylark_rum::ViewTracker::default()),
            issues: None,
            issue_metric: Arc::new(MetricDefinition {
                name: skylark_issues::OCCURRENCE_METRIC.to_string(),
                scope: Scope::Service,
                function: MetricFunction::SumLabeled,
                percentile_ranks: Vec::new(),
            }),
        }
    }

    /// The same pipeline mapping RUM sources to mini-program platforms with `platforms`.
    pub fn with_rum_platforms(mut self, platforms: skylark_rum::PlatformMapping) -> Self {
        self.rum = skylark_rum::Deriver::new(platforms);
        self
    }

    /// The same pipeline, also turning every stored error log into an issue occurrence.
    pub fn with_issues(mut self, issues: Arc<crate::issues::IssueGrouping>) -> Self {
        self.issues = Some(issues);
        self
    }

    /// The same pipeline with cardinality caps on the entities and labels it produces.
    pub fn with_cardinality_guard(mut self, guard: Arc<crate::guards::CardinalityGuard>) -> Self {
        self.guard = Some(guard);
        self
    }

    /// Folds or drops instances, endpoints and label values past their caps (the one place
    /// entities and labels are materialized, so MAL and storage stay generic).
    fn guard(&self, effects: &mut Effects) {
        if let Some(guard) = &self.guard {
            guard.apply(&mut effects.emissions, &mut effects.traffic);
        }
    }

    /// Every metric the pipeline can write: the rules' and the relation metrics.
    pub fn definitions(&self) -> Vec<MetricDefinition> {
        let mut defs = self.rules.otel.definitions();
        defs.extend(self.rules.log_mal.definitions());
        defs.extend(self.relation_metrics.iter().map(|d| (**d).clone()));
        if self.issues.is_some() {
            defs.push((*self.issue_metric).clone());
        }
        defs
    }

    /// Drops samples OAP would never store (timestamp ≤ 0, older than the TTL) and those too far
    /// in the future ([`skylark_core::MAX_FUTURE_MS`]); returns how many were dropped, by reason.
    fn drop_out_of_range(&self, families: &mut SampleFamilies, now_ms: i64) -> Rejections {
        let oldest = now_ms.saturating_sub(self.metrics_ttl_ms);
        let mut dropped = Rejections::default();
        for family in families.values_mut() {
            family.samples.retain(|s| {
                let reason = if s.timestamp_ms <= 0 || s.timestamp_ms < oldest {
                    RejectReason::ExpiredTimestamp
                } else if is_too_far_ahead(s.timestamp_ms, now_ms) {
                    RejectReason::FutureTimestamp
                } else {
                    return true;
                };
                dropped.add(reason, 1);
                false
            });
        }
        families.retain(|_, f| !f.is_empty());
        dropped
    }

    /// Why a record time (ms) is outside the window records are kept for, if it is: older than
    /// the TTL, or further ahead than every signal allows.
    fn record_time_problem(&self, time_ms: i64, now_ms: i64) -> Option<RejectReason> {
        if time_ms < now_ms.saturating_sub(self.records_ttl_ms) {
            Some(RejectReason::ExpiredTimestamp)
        } else if is_too_far_ahead(time_ms, now_ms) {
            Some(RejectReason::FutureTimestamp)
        } else {
            None
        }
    }

    /// Runs sample families through `rules`, collecting emissions and traffic.
    fn run_mal(
        &self,
        rules: &RuleSet,
        mut families: SampleFamilies,
        now_ms: i64,
        report: &mut IngestReport,
        emissions: &mut Vec<MetricEmission>,
        traffic: &mut Vec<Traffic>,
    ) {
        let dropped = self.drop_out_of_range(&mut families, now_ms);
        if dropped.total() > 0 {
            tracing::debug!(
                expired = dropped.get(RejectReason::ExpiredTimestamp),
                future = dropped.get(RejectReason::FutureTimestamp),
                "samples outside the accepted time range were dropped"
            );
        }
        report.reject_all(&dropped);
        report.accepted += families
            .values()
            .map(|f| f.samples.len() as u64)
            .sum::<u64>();
        if families.is_empty() {
            return;
        }
        let ctx = EvalContext {
            default_histogram_unit: TimeUnit::Seconds,
            now_ms,
        };
        let out = rules.evaluate(&families, &ctx);
        emissions.extend(out.emissions);
        traffic.extend(out.traffic);
    }

    /// Writes what a request produced; record writes are synchronous (fsync), so they run on the
    /// blocking pool.
    async fn write(&self, effects: Effects) -> Result<(), IngestError> {
        let Effects {
            now_ms,
            emissions,
            traffic,
            logs,
            segments,
            rum,
            issues,
        } = effects;
        if !rum.is_empty() {
            let storage = self.storage.clone();
            tokio::task::spawn_blocking(move || storage.write_rum_events(rum))
                .await
                .map_err(internal)?
                .map_err(internal)?;
        }
        if !issues.is_empty() {
            let storage = self.storage.clone();
            tokio::task::spawn_blocking(move || {
                storage.record_issue_occurrences(None, issues, &skylark_issues::record_occurrence)
            })
            .await
            .map_err(internal)?
            .map_err(internal)?;
        }
        if !logs.is_empty() {
            let storage = self.storage.clone();
            tokio::task::spawn_blocking(move || storage.write_logs(logs))
                .await
                .map_err(internal)?
                .map_err(internal)?;
        }
        if !segments.is_empty() {
            let storage = self.storage.clone();
            tokio::task::spawn_blocking(move || storage.write_segments(segments))
                .await
                .map_err(internal)?
                .map_err(internal)?;
        }
        if !emissions.is_empty() {
            self.storage.write_metrics(emissions).map_err(internal)?;
        }
        if !traffic.is_empty() {
            self.storage
                .write_traffic(traffic, now_ms)
                .map_err(internal)?;
        }
        Ok(())
    }

    /// The client-side relation emissions of one segment's exit spans (OAP §5.2).
    fn relation_emissions(&self, segment: &Segment, out: &mut Vec<MetricEmission>) {
        for span in &segment.spans {
            if span.span_type != SpanType::Exit || span.peer.is_empty() || span.skip_analysis {
                continue;
            }
            let Ok(minute) = TimeBucket::from_epoch_ms(span.start_time_ms, Step::Minute) else {
                continue;
            };
            let latency = (span.end_time_ms - span.start_time_ms).max(0);
            let service = MeterEntity {
                service_name: segment.service.clone(),
                dest_service_name: span.peer.clone(),
                ..MeterEntity::new(Scope::ServiceRelation, Layer::GENERAL)
            };
            let mut entities = vec![service];
            if !segment.service_instance.is_empty() {
                entities.push(MeterEntity {
                    service_name: segment.service.clone(),
                    instance_name: segment.service_instance.clone(),
                    dest_service_name: span.peer.clone(),
                    dest_instance_name: span.peer.clone(),
                    ..MeterEntity::new(Scope::ServiceInstanceRelation, Layer::GENERAL)
                });
            }
            let bucket = latency / RELATION_PERCENTILE_PRECISION * RELATION_PERCENTILE_PRECISION;
            let values = [
                MeterValue::Single(1),
                MeterValue::Single(latency),
                MeterValue::Single(i64::from(!span.is_error)),
                MeterValue::Histogram(vec![HistogramGroup {
                    labels: Labels::new(),
                    buckets: vec![(bucket, 1)],
                }]),
            ];
            for entity in entities {
                let defs = self
                    .relation_metrics
                    .iter()
                    .filter(|d| d.scope == entity.scope);
                for (def, value) in defs.zip(values.iter()) {
                    out.push(MetricEmission {
                        metric: def.clone(),
                        entity: entity.clone(),
                        minute,
                        value: value.clone(),
                    });
                }
            }
        }
    }
}

impl Pipeline {
    /// "Now" by the pipeline's clock, in epoch ms.
    pub fn now_ms(&self) -> i64 {
        (self.clock)()
    }

    /// The storage the pipeline writes to.
    pub fn storage(&self) -> &Arc<dyn Storage> {
        &self.storage
    }

    /// Runs one metrics request through the rules as of `now_ms`, touching no storage. The same
    /// input and `now_ms` always give the same effects, which is what makes replay exact.
    pub fn prepare_metrics(&self, batch: MetricBatch, now_ms: i64) -> (IngestReport, Effects) {
        let mut report = IngestReport {
            accepted: 0,
            rejected: batch.skipped_points,
            reasons: batch.skip_reasons,
        };
        let mut effects = Effects::at(now_ms);
        for families in batch.resources {
            self.run_mal(
                &self.rules.otel,
                families,
                now_ms,
                &mut report,
                &mut effects.emissions,
                &mut effects.traffic,
            );
        }
        self.guard(&mut effects);
        (report, effects)
    }

    /// Runs one logs request through LAL and the log-MAL rules as of `now_ms`.
    pub fn prepare_logs(&self, logs: Vec<LogData>, now_ms: i64) -> (IngestReport, Effects) {
        let mut effects = Effects::at(now_ms);
        let report = self.run_lal(logs, now_ms, &mut effects);
        self.guard(&mut effects);
        (report, effects)
    }

    /// Runs one RUM request as of `now_ms`: events outside the record window are refused; views
    /// already counted add nothing; the rest become SkyAPM-named and RUM-only samples (through
    /// the otel rules), error logs (through LAL and log-MAL) and records. Reads storage for views
    /// and sessions the tracker does not remember.
    pub fn prepare_rum(&self, batch: RumBatch, now_ms: i64) -> (IngestReport, Effects) {
        let mut report = IngestReport::default();
        let mut effects = Effects::at(now_ms);
        let mut kept = Vec::with_capacity(batch.events.len());
        for event in batch.events {
            match self.record_time_problem(event.time_ms, now_ms) {
                Some(reason) => report.reject(reason, 1),
                None => kept.push(event),
            }
        }
        report.accepted += kept.len() as u64;
        let derived = {
            let mut tracker = self.rum_tracker.lock();
            self.rum
                .derive(kept, &mut tracker, &StoredRum(self.storage.as_ref()))
        };
        let mut samples = IngestReport::default();
        for unit in derived.units {
            self.run_mal(
                &self.rules.otel,
                unit,
                now_ms,
                &mut samples,
                &mut effects.emissions,
                &mut effects.traffic,
            );
        }
        // Error logs were checked with their events; they are not counted twice.
        self.run_lal(derived.logs, now_ms, &mut effects);
        // A traced request is also the mini program's exit span at the root of its trace.
        effects.segments = derived
            .events
            .iter()
            .filter_map(|e| self.rum.request_segment(e))
            .filter_map(|s| SegmentRecord::from_segment(&s))
            .collect();
        effects.rum = derived.events;
        self.guard(&mut effects);
        (report, effects)
    }

    /// LAL and log-MAL over `logs`, into `effects`; reports the logs accepted and refused.
    fn run_lal(&self, logs: Vec<LogData>, now_ms: i64, effects: &mut Effects) -> IngestReport {
        let mut report = IngestReport::default();
        let mut samples = IngestReport::default();
        for log in logs {
            // Time 0 means "now" (LAL substitutes it); anything else must be within retention
            // and not too far ahead.
            if log.timestamp_ms != 0 {
                if let Some(reason) = self.record_time_problem(log.timestamp_ms, now_ms) {
                    report.reject(reason, 1);
                    continue;
                }
            }
            report.accepted += 1;
            // Resource attributes are read by issues (SkyAPM's `service.version`), and LAL
            // consumes the log.
            let source_attributes = match &self.issues {
                Some(_)
                    if log
                        .tags
                        .iter()
                        .any(|(k, _)| k == skylark_issues::tags::EXCEPTION_TYPE) =>
                {
                    log.source_attributes.clone()
                }
                _ => Vec::new(),
            };
            let out = self.rules.lal.process_at(log, now_ms);
            if let Some(issues) = &self.issues {
                // One occurrence per error, however many rules stored it.
                if let Some(occurrence) = out
                    .records
                    .iter()
                    .find_map(|r| issues.occurrence(r, &source_attributes))
                {
                    if let Ok(minute) = TimeBucket::from_epoch_ms(occurrence.time_ms, Step::Minute)
                    {
                        let label: Labels = [(
                            skylark_issues::OCCURRENCE_METRIC_LABEL,
                            occurrence.fingerprint.as_str(),
                        )]
                        .into();
                        effects.emissions.push(MetricEmission {
                            metric: self.issue_metric.clone(),
                            entity: MeterEntity::service(
                                occurrence.service.clone(),
                                occurrence.layer,
                            ),
                            minute,
                            value: MeterValue::Labeled(vec![(label, 1)]),
                        });
                    }
                    effects.issues.push(occurrence);
                }
            }
            effects.logs.extend(out.records);
            effects.traffic.extend(out.traffic);
            for families in out.samples {
                self.run_mal(
                    &self.rules.log_mal,
                    families,
                    now_ms,
                    &mut samples,
                    &mut effects.emissions,
                    &mut effects.traffic,
                );
            }
        }
        report
    }

    /// Turns one segments request into records and relation metrics as of `now_ms`.
    pub fn prepare_segments(&self, segments: Vec<Segment>, now_ms: i64) -> (IngestReport, Effects) {
        let mut report = IngestReport::default();
        let mut effects = Effects::at(now_ms);
        for segment in segments {
            // OAP ignores segments without spans.
            let Some(record) = SegmentRecord::from_segment(&segment) else {
                report.reject(RejectReason::Malformed, 1);
                continue;
            };
            // Every span must end in range too: a span ending years ahead would give the
            // segment, and the relation metrics, a latency no query window explains.
            let end_ms = segment.spans.iter().map(|s| s.end_time_ms).max();
            let problem = self
                .record_time_problem(record.start_time_ms, now_ms)
                .or_else(|| {
                    end_ms
                        .filter(|end| is_too_far_ahead(*end, now_ms))
                        .map(|_| RejectReason::FutureTimestamp)
                });
            if let Some(reason) = problem {
                report.reject(reason, 1);
                continue;
            }
            report.accepted += 1;
            self.relation_emissions(&segment, &mut effects.emissions);
            effects.segments.push(record);
        }
        // Segments register no entities: a mini-program keeps exactly its MAL/LAL layer.
        self.guard(&mut effects);
        (report, effects)
    }
}

/// What a prepared request makes storage do; the durable sink that writes it owns the type.
pub use skylark_wal::Effects;

/// The durable sink's view of the pipeline: it logs a request, then has it prepared here (and
/// again on replay).
impl skylark_wal::WritePath for Pipeline {
    fn now_ms(&self) -> i64 {
        Pipeline::now_ms(self)
    }

    fn storage(&self) -> &Arc<dyn Storage> {
        Pipeline::storage(self)
    }

    fn prepare_metrics(&self, batch: MetricBatch, now_ms: i64) -> (IngestReport, Effects) {
        Pipeline::prepare_metrics(self, batch, now_ms)
    }

    fn prepare_logs(&self, logs: Vec<LogData>, now_ms: i64) -> (IngestReport, Effects) {
        Pipeline::prepare_logs(self, logs, now_ms)
    }

    fn prepare_segments(&self, segments: Vec<Segment>, now_ms: i64) -> (IngestReport, Effects) {
        Pipeline::prepare_segments(self, segments, now_ms)
    }

    fn prepare_rum(&self, batch: RumBatch, now_ms: i64) -> (IngestReport, Effects) {
        Pipeline::prepare_rum(self, batch, now_ms)
    }

    fn decode_metrics_body(
        &self,
        content_type: &str,
        body: &[u8],
    ) -> Result<MetricBatch, skylark_wal::durable::BodyError> {
        Ok(skylark_receiver::decode_metrics(content_type, body)?)
    }
}

#[async_trait::async_trait]
impl IngestSink for Pipeline {
    async fn ingest_metrics(&self, batch: MetricBatch) -> Result<IngestReport, IngestError> {
        let (report, effects) = self.prepare_metrics(batch, self.now_ms());
        self.write(effects).await?;
        Ok(report)
    }

    async fn ingest_logs(&self, logs: Vec<LogData>) -> Result<IngestReport, IngestError> {
        let (report, effects) = self.prepare_logs(logs, self.now_ms());
        self.write(effects).await?;
        Ok(report)
    }

    async fn ingest_segments(&self, segments: Vec<Segment>) -> Result<IngestReport, IngestError> {
        let (report, effects) = self.prepare_segments(segments, self.now_ms());
        self.write(effects).await?;
        Ok(report)
    }

    async fn ingest_rum(&self, batch: RumBatch) -> Result<IngestReport, IngestError> {
        let (report, effects) = self.prepare_rum(batch, self.now_ms());
        self.write(effects).await?;
        Ok(report)
    }
}
