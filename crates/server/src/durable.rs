//! Acknowledged means durable: the [`DurableSink`] puts the write-ahead log ([`crate::wal`])
//! between the rules and storage.
//!
//! A request is prepared (rules run, nothing stored), its input is appended to the log under
//! the next sequence number (an HTTP metrics body as received, other input decoded), and the
//! group of requests waiting at that moment is fsynced once (group commit). Only then are the
//! group's effects written to storage, in sequence order, and the requests answered. Storage
//! keeps "applied through seq N" marks in the same batches as the data
//! (`Storage::write_*_through`), so on start the log is replayed from the marks: entries whose
//! effects were persisted are not applied twice. Once a flush has stored everything up to a
//! mark, the segments below it are deleted.
//!
//! One thread does the ordered work, group by group: append, fsync, storage writes, answers.
//! While it writes one group to storage the next group gathers, so groups grow with the load.
//! A second thread that wrote storage while the next fsync ran was tried: handing every group
//! across threads (a wake-up, a context switch, cold caches) cost more CPU per request than the
//! overlap saved, and the server is CPU-bound before it is fsync-bound.
use crate::pipeline::{Effects, Pipeline};
use crate::wal::Wal;
use serde::{Deserialize, Serialize};
use skylark_core::{
    IngestError, IngestReport, IngestSink, LogData, MetricBatch, RumBatch, RumEvent, Segment,
};
use skylark_storage::{AppliedSeqs, Storage};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A group never holds more requests than this, so one slow fsync cannot make a huge batch.
const MAX_GROUP_REQUESTS: usize = 2048;

/// Nor more payload bytes than this.
const MAX_GROUP_BYTES: usize = 32 * 1024 * 1024;

/// How long a shutdown waits for open connections before dropping them, leaving the rest of the
/// 5 s shutdown promise to persisting.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// Everything after the stop signal, the final persist included, ends by this; the rest of the
/// 5 s promise is left for the process to exit, even on a busy machine. A persist cut short loses nothing: what it did not store
/// stays in the write-ahead log (which is only cut back to what storage holds) and is replayed
/// on the next start.
pub const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(4);

/// When a request is acknowledged (`core.durability`, `SW_CORE_DURABILITY`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// After the request is in the log on disk (fsync).
    Sync,
    /// Before the fsync; the log is fsynced every `wal_flush` instead, so a machine crash can
    /// lose that much acknowledged data (a process crash loses none: the data is in the OS).
    Relaxed,
}

/// How the durable sink runs.
#[derive(Debug, Clone)]
pub struct DurabilitySettings {
    /// When requests are acknowledged.
    pub mode: Durability,
    /// How often the log is fsynced in [`Durability::Relaxed`] mode.
    pub wal_flush: Duration,
    /// The log's folder.
    pub wal_dir: PathBuf,
}

/// One request as the log keeps it: its input (as received, or decoded) and the time it was
/// processed at, which is all the rules need to compute the same effects again.
#[derive(Serialize)]
struct EntryRef<'a> {
    now_ms: i64,
    request: RequestRef<'a>,
}

#[derive(Serialize)]
enum RequestRef<'a> {
    /// Earlier versions' metrics entries (bincode of the batch); still read on replay.
    #[cfg_attr(not(test), allow(dead_code))]
    Metrics(&'a MetricBatch),
    Logs(&'a [LogData]),
    Segments(&'a [Segment]),
    /// A batch in [`crate::batch_codec`]'s encoding, a twelfth of the size.
    CompactMetrics(Bytes<'a>),
    /// The body a batch was decoded from (HTTP requests), decoded again on replay: cheaper to
    /// keep than any encoding of the decoded batch.
    EncodedMetrics {
        content_type: &'a str,
        body: Bytes<'a>,
    },
    /// Decoded RUM events (last, so earlier entries keep their variant numbers).
    Rum(&'a [RumEvent]),
}

/// Bytes serialized as one length-prefixed copy instead of a sequence of numbers.
struct Bytes<'a>(&'a [u8]);

impl Serialize for Bytes<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(self.0)
    }
}

/// What [`Bytes`] wrote, read back.
struct ByteBuf(Vec<u8>);

impl<'de> Deserialize<'de> for ByteBuf {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = ByteBuf;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("bytes")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<ByteBuf, E> {
                Ok(ByteBuf(v.to_vec()))
            }
            fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<ByteBuf, E> {
                Ok(ByteBuf(v))
            }
        }
        deserializer.deserialize_byte_buf(Visitor)
    }
}

/// [`EntryRef`] read back (same encoding).
#[derive(Deserialize)]
struct Entry {
    now_ms: i64,
    request: Request,
}

#[derive(Deserialize)]
enum Request {
    Metrics(MetricBatch),
    Logs(Vec<LogData>),
    Segments(Vec<Segment>),
    CompactMetrics(ByteBuf),
    EncodedMetrics { content_type: String, body: ByteBuf },
    Rum(Vec<RumEvent>),
}

/// What replay runs through the pipeline again, whichever encoding the entry used.
enum Input {
    Metrics(MetricBatch),
    Logs(Vec<LogData>),
    Segments(Vec<Segment>),
    Rum(RumBatch),
}

impl Request {
    fn into_input(self) -> Result<Input, String> {
        Ok(match self {
            Request::Metrics(batch) => Input::Metrics(batch),
            Request::CompactMetrics(ByteBuf(bytes)) => {
                Input::Metrics(crate::batch_codec::decode(&bytes).map_err(|e| e.to_string())?)
            }
            Request::EncodedMetrics {
                content_type,
                body: ByteBuf(body),
            } => Input::Metrics(
                skylark_receiver::decode_metrics(&content_type, &body)
                    .map_err(|e| e.to_string())?,
            ),
            Request::Logs(logs) => Input::Logs(logs),
            Request::Segments(segments) => Input::Segments(segments),
            Request::Rum(events) => Input::Rum(RumBatch { events }),
        })
    }
}

fn encode(entry: &EntryRef<'_>) -> Result<Vec<u8>, IngestError> {
    bincode::serialize(entry)
        .map_err(|e| IngestError::Internal(format!("cannot encode the log entry: {e}")))
}

/// The answer a request waits for.
type Answer = tokio::sync::oneshot::Sender<Result<(), String>>;

/// A request on its way through the log.
struct Job {
    payload: Vec<u8>,
    effects: Effects,
    answer: Answer,
}

enum Command {
    Append(Job),
    /// Delete segments wholly at or below this sequence number.
    RemoveThrough(u64),
}

/// A group the log writer made durable (or, in relaxed mode, wrote), in sequence order.
struct Group {
    jobs: Vec<(u64, Job)>,
}

impl Group {
    /// Writes the group's effects to storage, then answers its requests.
    fn apply(mut self, shared: &Shared) {
        let answer = if shared.failed.load(Ordering::SeqCst) {
            Err("storage failed earlier".to_string())
        } else {
            apply_group(shared.storage.as_ref(), &mut self)
                .map_err(|error| shared.fail("writing to storage", &error))
        };
        for (_, job) in self.jobs {
            let _ = job.answer.send(answer.clone());
        }
    }
}

/// State the sink and its threads share.
struct Shared {
    storage: Arc<dyn Storage>,
    /// Set when the log or storage failed: entries and marks may disagree from then on, so every
    /// later request is refused until a restart replays the log.
    failed: AtomicBool,
}

impl Shared {
    fn fail(&self, what: &str, error: &dyn std::fmt::Display) -> String {
        self.failed.store(true, Ordering::SeqCst);
        tracing::error!(%error, "{what} failed; ingestion is refused until skylark restarts and replays the write-ahead log");
        format!("{what} failed: {error}")
    }
}

struct Threads {
    commands: Sender<Command>,
    writer: std::thread::JoinHandle<Wal>,
}

/// The [`IngestSink`] that acknowledges only what the write-ahead log holds.
pub struct DurableSink {
    pipeline: Arc<Pipeline>,
    shared: Arc<Shared>,
    threads: parking_lot::Mutex<Option<Threads>>,
    mode: Durability,
}

/// What start-up replay did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReplayReport {
    /// Entries found in the log.
    pub entries: u64,
    /// Entries whose effects (some or all) were applied again.
    pub applied: u64,
    /// Entries that could not be decoded (skipped).
    pub undecodable: u64,
    /// The marks storage held before the replay.
    pub marks: AppliedSeqs,
}

/// Writes the effects of entry `seq` that storage has not stored yet (`marks` say which).
/// Traffic goes before the metrics mark so a flush that takes the mark takes the traffic too.
fn apply_entry(
    storage: &dyn Storage,
    seq: u64,
    effects: Effects,
    marks: &AppliedSeqs,
) -> skylark_storage::Result<()> {
    // Issues before logs, so a replay that re-stores the logs also finds their occurrences.
    if seq > marks.issues && !effects.issues.is_empty() {
        storage.record_issue_occurrences(
            Some(seq),
            effects.issues,
            &skylark_issues::record_occurrence,
        )?;
    }
    if seq > marks.logs && !effects.logs.is_empty() {
        storage.write_logs_through(seq, effects.logs)?;
    }
    if seq > marks.segments && !effects.segments.is_empty() {
        storage.write_segments_through(seq, effects.segments)?;
    }
    if seq > marks.rum && !effects.rum.is_empty() {
        storage.write_rum_events_through(seq, effects.rum)?;
    }
    if seq > marks.metrics {
        if !effects.traffic.is_empty() {
            storage.write_traffic(effects.traffic, effects.now_ms)?;
        }
        storage.write_metrics_through(seq, effects.emissions)?;
    }
    Ok(())
}

/// Replays the log into storage from its marks and flushes; returns what it did and the highest
/// sequence number in use.
fn replay(pipeline: &Pipeline, wal: &Wal) -> anyhow::Result<(ReplayReport, u64)> {
    let storage = pipeline.storage().as_ref();
    let marks = storage.applied_seqs()?;
    let floor = marks
        .metrics
        .min(marks.logs)
        .min(marks.segments)
        .min(marks.rum)
        .min(marks.issues);
    let mut report = ReplayReport {
        marks,
        ..ReplayReport::default()
    };
    let mut failure = None;
    wal.replay(&mut |seq, payload| {
        report.entries += 1;
        if seq <= floor || failure.is_some() {
            return;
        }
        let decoded = bincode::deserialize::<Entry>(payload)
            .map_err(|e| e.to_string())
            .and_then(|entry| Ok((entry.now_ms, entry.request.into_input()?)));
        let (now_ms, input) = match decoded {
            Ok(decoded) => decoded,
            Err(error) => {
                tracing::error!(seq, %error, "write-ahead log entry cannot be decoded; skipped");
                report.undecodable += 1;
                return;
            }
        };
        let needed = match &input {
            Input::Metrics(_) => seq > marks.metrics,
            Input::Logs(_) => seq > marks.metrics.min(marks.logs).min(marks.issues),
            Input::Segments(_) => seq > marks.metrics.min(marks.segments),
            Input::Rum(_) => {
                seq > marks
                    .metrics
                    .min(marks.logs)
                    .min(marks.segments)
                    .min(marks.rum)
            }
        };
        if !needed {
            return;
        }
        let (_, effects) = match input {
            Input::Metrics(batch) => pipeline.prepare_metrics(batch, now_ms),
            Input::Logs(logs) => pipeline.prepare_logs(logs, now_ms),
            Input::Segments(segments) => pipeline.prepare_segments(segments, now_ms),
            Input::Rum(batch) => pipeline.prepare_rum(batch, now_ms),
        };
        match apply_entry(storage, seq, effects, &marks) {
            Ok(()) => report.applied += 1,
            Err(error) => failure = Some((seq, error)),
        }
    })?;
    if let Some((seq, error)) = failure {
        anyhow::bail!("replaying write-ahead log entry {seq} into storage failed: {error}");
    }
    storage.flush()?;
    let last = wal
        .last_seq()
        .unwrap_or(0)
        .max(marks.metrics)
        .max(marks.logs)
        .max(marks.segments)
        .max(marks.rum)
        .max(marks.issues);
    Ok((report, last))
}

impl DurableSink {
    /// Opens the log, replays it into storage, flushes, deletes the replayed segments and starts
    /// the writer threads. Fails (refusing to start) when the log cannot be read or replayed.
    pub fn start(
        pipeline: Arc<Pipeline>,
        settings: &DurabilitySettings,
    ) -> anyhow::Result<(DurableSink, ReplayReport)> {
        let started = Instant::now();
        let mut wal = Wal::open(&settings.wal_dir).map_err(|e| {
            anyhow::anyhow!(
                "cannot open the write-ahead log in {}: {e}",
                settings.wal_dir.display()
            )
        })?;
        let (report, last) = replay(&pipeline, &wal)?;
        wal.remove_through(last)?;
        tracing::info!(
            entries = report.entries,
            applied = report.applied,
            undecodable = report.undecodable,
            next_seq = last + 1,
            elapsed_ms = started.elapsed().as_millis() as u64,
            mode = ?settings.mode,
            "write-ahead log replayed"
        );
        let shared = Arc::new(Shared {
            storage: pipeline.storage().clone(),
            failed: AtomicBool::new(false),
        });
        let (commands, command_rx) = mpsc::channel();
        let writer = {
            let (shared, mode, flush) = (shared.clone(), settings.mode, settings.wal_flush);
            std::thread::Builder::new()
                .name("skylark-wal".into())
                .spawn(move || write_log(wal, last + 1, command_rx, mode, flush, &shared))?
        };
        Ok((
            DurableSink {
                pipeline,
                shared,
                threads: parking_lot::Mutex::new(Some(Threads { commands, writer })),
                mode: settings.mode,
            },
            report,
        ))
    }

    /// The acknowledgement mode.
    pub fn mode(&self) -> Durability {
        self.mode
    }

    /// Persists aggregated metrics and deletes the log segments the stored marks cover (the
    /// periodic persist; blocking).
    pub fn persist(&self) -> anyhow::Result<()> {
        let storage = &self.shared.storage;
        storage.flush()?;
        let marks = storage.applied_seqs()?;
        // Entries are applied in order and records are written before the metrics mark moves,
        // so everything at or below the metrics mark is stored.
        if let Some(threads) = self.threads.lock().as_ref() {
            let _ = threads.commands.send(Command::RemoveThrough(marks.metrics));
        }
        Ok(())
    }

    /// Stops taking requests, waits until every logged request is applied, persists everything
    /// and empties the log (blocking). Later requests are refused.
    pub fn shutdown(&self) -> anyhow::Result<()> {
        let Some(threads) = self.threads.lock().take() else {
            return Ok(());
        };
        drop(threads.commands);
        let wal = threads
            .writer
            .join()
            .map_err(|_| anyhow::anyhow!("the write-ahead log thread panicked"))?;
        let storage = &self.shared.storage;
        storage.flush()?;
        let marks = storage.applied_seqs()?;
        let mut wal = wal;
        if !self.shared.failed.load(Ordering::SeqCst) {
            wal.remove_through(marks.metrics)?;
        }
        tracing::info!(
            applied_through = marks.metrics,
            "write-ahead log closed; everything acknowledged is in storage"
        );
        Ok(())
    }

    async fn submit(&self, payload: Vec<u8>, effects: Effects) -> Result<(), IngestError> {
        if self.shared.failed.load(Ordering::SeqCst) {
            return Err(IngestError::Internal(
                "the write-ahead log failed; restart skylark".into(),
            ));
        }
        let (answer, answered) = tokio::sync::oneshot::channel();
        let job = Job {
            payload,
            effects,
            answer,
        };
        let sent = match self.threads.lock().as_ref() {
            Some(threads) => threads.commands.send(Command::Append(job)).is_ok(),
            None => false,
        };
        if !sent {
            return Err(IngestError::Busy("skylark is shutting down".into()));
        }
        match answered.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(message)) => Err(IngestError::Internal(message)),
            Err(_) => Err(IngestError::Internal(
                "the write-ahead log stopped before answering".into(),
            )),
        }
    }
}

/// The log writer: appends each group, fsyncs it once (sync mode), writes it to storage and
/// answers its requests.
fn write_log(
    mut wal: Wal,
    mut next_seq: u64,
    commands: Receiver<Command>,
    mode: Durability,
    flush_every: Duration,
    shared: &Shared,
) -> Wal {
    let mut last_sync = Instant::now();
    let mut unsynced = false;
    loop {
        let first = match mode {
            Durability::Sync => commands.recv().ok(),
            Durability::Relaxed => {
                let wait = flush_every.saturating_sub(last_sync.elapsed());
                match commands.recv_timeout(wait) {
                    Ok(command) => Some(command),
                    Err(RecvTimeoutError::Timeout) => {
                        if unsynced {
                            if let Err(e) = wal.sync() {
                                shared.fail("fsync of the write-ahead log", &e);
                            }
                            unsynced = false;
                        }
                        last_sync = Instant::now();
                        continue;
                    }
                    Err(RecvTimeoutError::Disconnected) => None,
                }
            }
        };
        let Some(first) = first else { break };
        let mut jobs: Vec<(u64, Job)> = Vec::new();
        let mut remove_through = None;
        let mut bytes = 0;
        let mut next = Some(first);
        while let Some(command) = next.take() {
            match command {
                Command::Append(job) => {
                    bytes += job.payload.len();
                    jobs.push((0, job));
                }
                Command::RemoveThrough(seq) => remove_through = Some(seq),
            }
            if jobs.len() < MAX_GROUP_REQUESTS && bytes < MAX_GROUP_BYTES {
                next = commands.try_recv().ok();
            }
        }
        if shared.failed.load(Ordering::SeqCst) {
            for (_, job) in jobs {
                let _ = job
                    .answer
                    .send(Err("the write-ahead log failed earlier".into()));
            }
            continue;
        }
        let mut result = Ok(());
        for (seq, job) in jobs.iter_mut() {
            *seq = next_seq;
            next_seq += 1;
            result = wal.append(*seq, &job.payload);
            if result.is_err() {
                break;
            }
            // The payload is on its way to disk; storage needs only the effects.
            job.payload = Vec::new();
        }
        if !jobs.is_empty() && result.is_ok() {
            result = match mode {
                Durability::Sync => wal.sync(),
                Durability::Relaxed => {
                    unsynced = true;
                    if last_sync.elapsed() >= flush_every {
                        last_sync = Instant::now();
                        unsynced = false;
                        wal.sync()
                    } else {
                        wal.flush()
                    }
                }
            };
        }
        if let Err(error) = result {
            let message = shared.fail("writing the write-ahead log", &error);
            for (_, job) in jobs {
                let _ = job.answer.send(Err(message.clone()));
            }
            continue;
        }
        if !jobs.is_empty() {
            Group { jobs }.apply(shared);
        }
        if let Some(seq) = remove_through {
            match wal.remove_through(seq) {
                Ok(removed) if removed > 0 => {
                    tracing::debug!(removed, through = seq, "write-ahead log segments deleted")
                }
                Ok(_) => {}
                Err(error) => tracing::warn!(%error, "deleting write-ahead log segments failed"),
            }
        }
    }
    if let Err(e) = wal.sync() {
        shared.fail("fsync of the write-ahead log", &e);
    }
    wal
}

/// Writes a group with one batch per kind: all its logs, all its segments (each batch carrying
/// the group's last sequence number as its mark), its traffic, then all its emissions with the
/// metrics mark.
fn apply_group(storage: &dyn Storage, group: &mut Group) -> skylark_storage::Result<()> {
    let last = group.jobs.last().map(|(seq, _)| *seq).unwrap_or(0);
    let (mut logs, mut segments, mut emissions) = (Vec::new(), Vec::new(), Vec::new());
    let mut rum = Vec::new();
    let (mut traffic, mut issues) = (Vec::new(), Vec::new());
    for (_, job) in &mut group.jobs {
        let effects = std::mem::take(&mut job.effects);
        issues.extend(effects.issues);
        logs.extend(effects.logs);
        segments.extend(effects.segments);
        rum.extend(effects.rum);
        emissions.extend(effects.emissions);
        if !effects.traffic.is_empty() {
            traffic.push((effects.traffic, effects.now_ms));
        }
    }
    if !issues.is_empty() {
        storage.record_issue_occurrences(Some(last), issues, &skylark_issues::record_occurrence)?;
    }
    if !logs.is_empty() {
        storage.write_logs_through(last, logs)?;
    }
    if !segments.is_empty() {
        storage.write_segments_through(last, segments)?;
    }
    if !rum.is_empty() {
        storage.write_rum_events_through(last, rum)?;
    }
    for (entities, now_ms) in traffic {
        storage.write_traffic(entities, now_ms)?;
    }
    storage.write_metrics_through(last, emissions)
}

#[async_trait::async_trait]
impl IngestSink for DurableSink {
    async fn ingest_metrics(&self, batch: MetricBatch) -> Result<IngestReport, IngestError> {
        let now_ms = self.pipeline.now_ms();
        let payload = match &batch.source {
            Some(source) => encode(&EntryRef {
                now_ms,
                request: RequestRef::EncodedMetrics {
                    content_type: source.content_type,
                    body: Bytes(&source.body),
                },
            })?,
            None => encode(&EntryRef {
                now_ms,
                request: RequestRef::CompactMetrics(Bytes(&crate::batch_codec::encode(&batch))),
            })?,
        };
        let (report, effects) = self.pipeline.prepare_metrics(batch, now_ms);
        self.finish(payload, report, effects).await
    }

    async fn ingest_logs(&self, logs: Vec<LogData>) -> Result<IngestReport, IngestError> {
        let now_ms = self.pipeline.now_ms();
        let payload = encode(&EntryRef {
            now_ms,
            request: RequestRef::Logs(&logs),
        })?;
        let (report, effects) = self.pipeline.prepare_logs(logs, now_ms);
        self.finish(payload, report, effects).await
    }

    async fn ingest_segments(&self, segments: Vec<Segment>) -> Result<IngestReport, IngestError> {
        let now_ms = self.pipeline.now_ms();
        let payload = encode(&EntryRef {
            now_ms,
            request: RequestRef::Segments(&segments),
        })?;
        let (report, effects) = self.pipeline.prepare_segments(segments, now_ms);
        self.finish(payload, report, effects).await
    }

    /// The events are logged decoded: replay needs them as they were decoded, and decoding
    /// depends on the request's query parameters, which the body does not carry.
    async fn ingest_rum(&self, batch: RumBatch) -> Result<IngestReport, IngestError> {
        let now_ms = self.pipeline.now_ms();
        let payload = encode(&EntryRef {
            now_ms,
            request: RequestRef::Rum(&batch.events),
        })?;
        let (report, effects) = self.pipeline.prepare_rum(batch, now_ms);
        self.finish(payload, report, effects).await
    }
}

impl DurableSink {
    async fn finish(
        &self,
        payload: Vec<u8>,
        report: IngestReport,
        effects: Effects,
    ) -> Result<IngestReport, IngestError> {
        if effects.is_empty() {
            return Ok(report);
        }
        self.submit(payload, effects).await?;
        Ok(report)
    }
}

/// The log folder: `core.walPath`, else `wal/` inside the storage folder.
pub fn wal_dir(configured: Option<&Path>, storage_path: &Path) -> PathBuf {
    match configured {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => storage_path.join("wal"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::Clock;
    use skylark_core::{LogBody, MeterEntity, MetricValue, ServiceId, Step, TimeBucket};
    use skylark_storage::{LogQuery, MemStorage};

    const SERVICE: &str = "durable-test";

    fn pipeline(storage: Arc<dyn Storage>, now_ms: i64) -> Arc<Pipeline> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let mut config = crate::config::Config::load(None).unwrap();
        config.receiver_otel.rules_path = root.join("otel-rules");
        config.log_analyzer.lal_path = root.join("config/lal");
        config.log_analyzer.mal_path = root.join("config/log-mal-rules");
        let clock: Clock = Arc::new(move || now_ms);
        let grouping = Arc::new(crate::issues::IssueGrouping::new(
            skylark_issues::GrouperSettings::default(),
            storage.clone(),
        ));
        Arc::new(
            Pipeline::new(crate::load_rules(&config).unwrap(), storage, 7, 3, clock)
                .with_issues(grouping),
        )
    }

    /// The one issue the test errors make, and its occurrence count.
    fn issue_count(storage: &dyn Storage) -> u64 {
        let query = skylark_storage::IssueQuery {
            service: Some(SERVICE.into()),
            status: None,
            version: None,
            keyword: None,
            start_ms: 0,
            end_ms: i64::MAX,
            order: skylark_storage::IssueOrder::Count,
            offset: 0,
            limit: 10,
        };
        let (issues, total) = storage.query_issues(&query).unwrap();
        assert!(total <= 1, "one error, one issue: {issues:?}");
        issues.first().map(|i| i.count).unwrap_or(0)
    }

    /// One wechat error log, which LAL stores and counts in `meter_wechat_mp_error_count`.
    fn request(i: u64, timestamp_ms: i64) -> Vec<LogData> {
        vec![LogData {
            service: SERVICE.into(),
            timestamp_ms,
            body: LogBody::Text(format!("error {i}")),
            tags: vec![("exception.type".into(), "TypeError".into())],
            source_attributes: vec![("miniprogram.platform".into(), "wechat".into())],
            ..LogData::default()
        }]
    }

    fn settings(dir: &Path, mode: Durability) -> DurabilitySettings {
        DurabilitySettings {
            mode,
            wal_flush: Duration::from_millis(20),
            wal_dir: dir.to_path_buf(),
        }
    }

    fn stored_logs(storage: &dyn Storage) -> Vec<String> {
        let query = LogQuery {
            service_id: Some(ServiceId::new(SERVICE, true)),
            ..LogQuery::default()
        };
        let mut contents: Vec<String> = storage
            .query_logs(&query)
            .unwrap()
            .into_iter()
            .map(|l| l.record.content)
            .collect();
        contents.sort();
        contents
    }

    /// The stored minute value of `metric` for the test service at `now_ms`.
    fn service_minute(pipeline: &Pipeline, metric: &str, now_ms: i64) -> Vec<Option<MetricValue>> {
        let def = pipeline
            .definitions()
            .into_iter()
            .find(|d| d.name == metric)
            .unwrap();
        let entity = MeterEntity::service(SERVICE, skylark_core::Layer::WECHAT_MINI_PROGRAM).id();
        let minute = TimeBucket::from_epoch_ms(now_ms, Step::Minute).unwrap();
        pipeline
            .storage()
            .read_metric(&def, &entity, &[minute])
            .unwrap()
    }

    fn error_count(pipeline: &Pipeline, now_ms: i64) -> i64 {
        match service_minute(pipeline, "meter_wechat_mp_error_count", now_ms).pop() {
            Some(Some(MetricValue::Labeled(values))) => values.iter().map(|(_, v)| v).sum(),
            Some(Some(MetricValue::Single(v))) => v,
            _ => 0,
        }
    }

    fn segment_files(dir: &Path) -> usize {
        std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
    }

    #[test]
    fn replay_applies_only_what_storage_lacks() {
        let now = chrono::Utc::now().timestamp_millis();
        let dir = tempfile::tempdir().unwrap();
        let storage: Arc<dyn Storage> = Arc::new(MemStorage::new());
        let pipeline = pipeline(storage.clone(), now);
        let mut wal = Wal::open(dir.path()).unwrap();
        for seq in 1..=10 {
            let logs = request(seq, 0);
            let payload = bincode::serialize(&EntryRef {
                now_ms: now,
                request: RequestRef::Logs(&logs),
            })
            .unwrap();
            wal.append(seq, &payload).unwrap();
        }
        wal.sync().unwrap();
        drop(wal);
        // The process before the crash: entries 1-6 fully applied and flushed, entries 7-8 had
        // their log records stored but their metrics were still in memory when it died.
        for seq in 1..=6 {
            let (_, effects) = pipeline.prepare_logs(request(seq, 0), now);
            apply_entry(storage.as_ref(), seq, effects, &AppliedSeqs::default()).unwrap();
        }
        storage.flush().unwrap();
        for seq in 7..=8 {
            let (_, effects) = pipeline.prepare_logs(request(seq, 0), now);
            storage.write_logs_through(seq, effects.logs).unwrap();
        }
        let marks = storage.applied_seqs().unwrap();
        assert_eq!((marks.metrics, marks.logs), (6, 8));

        let (sink, report) =
            DurableSink::start(pipeline.clone(), &settings(dir.path(), Durability::Sync)).unwrap();
        assert_eq!(report.entries, 10);
        assert_eq!(report.applied, 4, "{report:?}");
        let logs = stored_logs(storage.as_ref());
        assert_eq!(logs.len(), 10, "{logs:?}");
        let mut distinct = logs.clone();
        distinct.dedup();
        assert_eq!(distinct.len(), 10, "a log was stored twice: {logs:?}");
        assert_eq!(error_count(&pipeline, now), 10);
        // Everything replayed is persisted, so the log is emptied.
        assert_eq!(segment_files(dir.path()), 0);
        assert_eq!(storage.applied_seqs().unwrap().metrics, 10);
        sink.shutdown().unwrap();
    }

    fn launch_batch(now_ms: i64, value: f64) -> MetricBatch {
        let labels: skylark_core::Labels = [
            ("service_name", SERVICE),
            ("miniprogram_platform", "wechat"),
            ("service_instance_id", "i-1"),
        ]
        .into();
        let mut families = skylark_core::SampleFamilies::default();
        families.insert(
            "miniprogram_app_launch_duration".into(),
            skylark_core::SampleFamily::new(vec![skylark_core::Sample {
                name: "miniprogram_app_launch_duration".into(),
                labels,
                value,
                timestamp_ms: now_ms,
            }]),
        );
        MetricBatch {
            resources: vec![families],
            skipped_points: 0,
            skip_reasons: Default::default(),
            source: None,
        }
    }

    /// The OTLP/protobuf body of one wechat launch gauge point of `value`.
    fn launch_body(now_ms: i64, value: f64) -> Vec<u8> {
        use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
        use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
        use opentelemetry_proto::tonic::metrics::v1::{
            metric, number_data_point, Gauge, Metric, NumberDataPoint, ResourceMetrics,
            ScopeMetrics,
        };
        use opentelemetry_proto::tonic::resource::v1::Resource;
        use prost::Message;
        let attribute = |k: &str, v: &str| KeyValue {
            key: k.into(),
            value: Some(AnyValue {
                value: Some(any_value::Value::StringValue(v.into())),
            }),
            ..Default::default()
        };
        ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                resource: Some(Resource {
                    attributes: vec![
                        attribute("service.name", SERVICE),
                        attribute("miniprogram.platform", "wechat"),
                        attribute("service.instance.id", "i-1"),
                    ],
                    ..Default::default()
                }),
                scope_metrics: vec![ScopeMetrics {
                    metrics: vec![Metric {
                        name: "miniprogram.app_launch.duration".into(),
                        data: Some(metric::Data::Gauge(Gauge {
                            data_points: vec![NumberDataPoint {
                                time_unix_nano: now_ms as u64 * 1_000_000,
                                value: Some(number_data_point::Value::AsDouble(value)),
                                ..Default::default()
                            }],
                        })),
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
        .encode_to_vec()
    }

    #[test]
    fn replay_counts_each_error_once_in_its_issue() {
        let now = chrono::Utc::now().timestamp_millis();
        let dir = tempfile::tempdir().unwrap();
        let storage: Arc<dyn Storage> = Arc::new(MemStorage::new());
        let pipeline = pipeline(storage.clone(), now);
        let mut wal = Wal::open(dir.path()).unwrap();
        for seq in 1..=10 {
            let logs = request(seq, 0);
            let payload = bincode::serialize(&EntryRef {
                now_ms: now,
                request: RequestRef::Logs(&logs),
            })
            .unwrap();
            wal.append(seq, &payload).unwrap();
        }
        wal.sync().unwrap();
        drop(wal);
        // Before the crash: entries 1-6 fully applied; 7-8 had their issue updates stored but
        // not their logs; 9-10 nothing.
        for seq in 1..=6 {
            let (_, effects) = pipeline.prepare_logs(request(seq, 0), now);
            apply_entry(storage.as_ref(), seq, effects, &AppliedSeqs::default()).unwrap();
        }
        storage.flush().unwrap();
        for seq in 7..=8 {
            let (_, effects) = pipeline.prepare_logs(request(seq, 0), now);
            assert_eq!(effects.issues.len(), 1);
            storage
                .record_issue_occurrences(
                    Some(seq),
                    effects.issues,
                    &skylark_issues::record_occurrence,
                )
                .unwrap();
        }
        assert_eq!(issue_count(storage.as_ref()), 8);
        let marks = storage.applied_seqs().unwrap();
        assert_eq!((marks.logs, marks.issues), (6, 8));

        let (sink, report) =
            DurableSink::start(pipeline.clone(), &settings(dir.path(), Durability::Sync)).unwrap();
        assert_eq!(report.applied, 4, "{report:?}");
        assert_eq!(stored_logs(storage.as_ref()).len(), 10);
        assert_eq!(
            issue_count(storage.as_ref()),
            10,
            "an occurrence was counted twice or lost"
        );
        assert_eq!(storage.applied_seqs().unwrap().issues, 10);
        // A second start replays nothing more.
        sink.shutdown().unwrap();
        let (sink, _) =
            DurableSink::start(pipeline, &settings(dir.path(), Durability::Sync)).unwrap();
        assert_eq!(issue_count(storage.as_ref()), 10);
        sink.shutdown().unwrap();
    }

    #[test]
    fn metrics_entries_replay_in_each_encoding() {
        let now = chrono::Utc::now().timestamp_millis();
        let dir = tempfile::tempdir().unwrap();
        let mut wal = Wal::open(dir.path()).unwrap();
        let old = launch_batch(now, 1000.0);
        let compact = crate::batch_codec::encode(&launch_batch(now, 2000.0));
        let body = launch_body(now, 3000.0);
        let entries = [
            RequestRef::Metrics(&old),
            RequestRef::CompactMetrics(Bytes(&compact)),
            RequestRef::EncodedMetrics {
                content_type: "application/x-protobuf",
                body: Bytes(&body),
            },
        ];
        for (seq, request) in (1..).zip(entries) {
            let payload = bincode::serialize(&EntryRef {
                now_ms: now,
                request,
            })
            .unwrap();
            wal.append(seq, &payload).unwrap();
        }
        wal.sync().unwrap();
        drop(wal);

        let storage: Arc<dyn Storage> = Arc::new(MemStorage::new());
        let pipeline = pipeline(storage.clone(), now);
        let (sink, report) =
            DurableSink::start(pipeline.clone(), &settings(dir.path(), Durability::Sync)).unwrap();
        assert_eq!((report.applied, report.undecodable), (3, 0), "{report:?}");
        let value = service_minute(&pipeline, "meter_wechat_mp_app_launch_duration", now);
        // avg of the three launches: every entry was decoded and applied.
        assert_eq!(value, vec![Some(MetricValue::Single(2000))]);
        sink.shutdown().unwrap();
    }

    #[tokio::test]
    async fn acknowledged_requests_are_logged_applied_and_numbered_after_the_replayed_ones() {
        let now = chrono::Utc::now().timestamp_millis();
        let dir = tempfile::tempdir().unwrap();
        let storage: Arc<dyn Storage> = Arc::new(MemStorage::new());
        let pipeline = pipeline(storage.clone(), now);
        let (sink, _) =
            DurableSink::start(pipeline.clone(), &settings(dir.path(), Durability::Sync)).unwrap();
        let sink = Arc::new(sink);
        let mut tasks = Vec::new();
        for i in 0..20 {
            let sink = sink.clone();
            tasks.push(tokio::spawn(async move {
                sink.ingest_logs(request(i, 0)).await
            }));
        }
        for t in tasks {
            assert_eq!(t.await.unwrap().unwrap().accepted, 1);
        }
        // Answered means: in the log on disk, and visible to queries.
        let wal = Wal::open(dir.path()).unwrap();
        let mut seqs = Vec::new();
        wal.replay(&mut |seq, payload| {
            let entry: Entry = bincode::deserialize(payload).unwrap();
            assert!(matches!(entry.request, Request::Logs(ref l) if l.len() == 1));
            seqs.push(seq);
        })
        .unwrap();
        assert_eq!(seqs, (1..=20).collect::<Vec<u64>>());
        assert_eq!(stored_logs(storage.as_ref()).len(), 20);
        assert_eq!(error_count(&pipeline, now), 20);
        assert_eq!(issue_count(storage.as_ref()), 20);

        tokio::task::spawn_blocking(move || sink.shutdown())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(segment_files(dir.path()), 0);
        let marks = storage.applied_seqs().unwrap();
        assert_eq!((marks.metrics, marks.logs), (20, 20));

        // A restart numbers new entries after everything already applied.
        let (sink, report) =
            DurableSink::start(pipeline.clone(), &settings(dir.path(), Durability::Sync)).unwrap();
        assert_eq!(report.entries, 0);
        sink.ingest_logs(request(99, 0)).await.unwrap();
        let wal = Wal::open(dir.path()).unwrap();
        assert_eq!(wal.last_seq(), Some(21));
        assert_eq!(error_count(&pipeline, now), 21);
        tokio::task::spawn_blocking(move || sink.shutdown())
            .await
            .unwrap()
            .unwrap();
    }

    fn rum_error(id: &str, now_ms: i64) -> RumEvent {
        RumEvent {
            event_type: Some(skylark_core::RumEventType::Error),
            id: id.into(),
            time_ms: now_ms,
            service: SERVICE.into(),
            source: "miniprogram".into(),
            session_id: "s1".into(),
            message: format!("error {id}"),
            detail: skylark_core::rum::RumDetail::Error(skylark_core::rum::RumErrorDetail {
                source: "app".into(),
                ..Default::default()
            }),
            ..RumEvent::default()
        }
    }

    #[tokio::test]
    async fn rum_batches_are_logged_and_replayed_into_a_store_that_lost_them() {
        let now = chrono::Utc::now().timestamp_millis();
        let dir = tempfile::tempdir().unwrap();
        let storage: Arc<dyn Storage> = Arc::new(MemStorage::new());
        let (sink, _) = DurableSink::start(
            pipeline(storage.clone(), now),
            &settings(dir.path(), Durability::Sync),
        )
        .unwrap();
        let batch = RumBatch {
            events: vec![rum_error("e1", now), rum_error("e2", now)],
        };
        assert_eq!(sink.ingest_rum(batch).await.unwrap().accepted, 2);
        let page = |storage: &dyn Storage| {
            storage
                .query_rum_events(&skylark_storage::RumQuery {
                    limit: 10,
                    ..Default::default()
                })
                .unwrap()
                .total
        };
        assert_eq!(page(storage.as_ref()), 2, "answered means stored");
        assert_eq!(storage.applied_seqs().unwrap().rum, 1);
        // The process dies before any flush: a fresh store gets everything back from the log.
        drop(sink);
        let fresh: Arc<dyn Storage> = Arc::new(MemStorage::new());
        let pipeline = pipeline(fresh.clone(), now);
        let (sink, report) =
            DurableSink::start(pipeline.clone(), &settings(dir.path(), Durability::Sync)).unwrap();
        assert_eq!((report.entries, report.applied), (1, 1), "{report:?}");
        assert_eq!(page(fresh.as_ref()), 2);
        let session = fresh
            .rum_session("s1")
            .unwrap()
            .expect("the session is rebuilt");
        assert_eq!(session.error_count, 2);
        assert_eq!(stored_logs(fresh.as_ref()), ["error e1", "error e2"]);
        assert_eq!(error_count(&pipeline, now), 2);
        tokio::task::spawn_blocking(move || sink.shutdown())
            .await
            .unwrap()
            .unwrap();
    }

    #[tokio::test]
    async fn relaxed_mode_answers_and_persists_on_shutdown() {
        let now = chrono::Utc::now().timestamp_millis();
        let dir = tempfile::tempdir().unwrap();
        let storage: Arc<dyn Storage> = Arc::new(MemStorage::new());
        let pipeline = pipeline(storage.clone(), now);
        let (sink, _) =
            DurableSink::start(pipeline.clone(), &settings(dir.path(), Durability::Relaxed))
                .unwrap();
        assert_eq!(sink.mode(), Durability::Relaxed);
        for i in 0..5 {
            sink.ingest_logs(request(i, 0)).await.unwrap();
        }
        assert_eq!(stored_logs(storage.as_ref()).len(), 5);
        sink.persist().unwrap();
        tokio::task::spawn_blocking(move || sink.shutdown())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(storage.applied_seqs().unwrap().metrics, 5);
        assert_eq!(error_count(&pipeline, now), 5);
    }

    #[tokio::test]
    async fn requests_that_change_nothing_skip_the_log() {
        let now = chrono::Utc::now().timestamp_millis();
        let dir = tempfile::tempdir().unwrap();
        let storage: Arc<dyn Storage> = Arc::new(MemStorage::new());
        let pipeline = pipeline(storage.clone(), now);
        let (sink, _) =
            DurableSink::start(pipeline, &settings(dir.path(), Durability::Sync)).unwrap();
        // Older than the 3-day record TTL: rejected, nothing to make durable.
        let report = sink
            .ingest_logs(request(1, now - 10 * 86_400_000))
            .await
            .unwrap();
        assert_eq!((report.accepted, report.rejected), (0, 1));
        assert_eq!(Wal::open(dir.path()).unwrap().last_seq(), None);
        tokio::task::spawn_blocking(move || sink.shutdown())
            .await
            .unwrap()
            .unwrap();
    }

    #[tokio::test]
    async fn requests_after_shutdown_are_refused_as_busy() {
        let now = chrono::Utc::now().timestamp_millis();
        let dir = tempfile::tempdir().unwrap();
        let storage: Arc<dyn Storage> = Arc::new(MemStorage::new());
        let (sink, _) = DurableSink::start(
            pipeline(storage, now),
            &settings(dir.path(), Durability::Sync),
        )
        .unwrap();
        let sink = Arc::new(sink);
        let s = sink.clone();
        tokio::task::spawn_blocking(move || s.shutdown())
            .await
            .unwrap()
            .unwrap();
        let err = sink.ingest_logs(request(1, 0)).await.unwrap_err();
        assert!(matches!(err, IngestError::Busy(_)), "{err}");
    }
}
