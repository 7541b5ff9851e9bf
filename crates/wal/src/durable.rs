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
//! An entry is postcard of the request and its time (`EntryRef`), appended with the format tag
//! [`ENTRY_FORMAT_POSTCARD`]. Entries that versions before this one wrote (bincode, untagged) are
//! still replayed by the read-only `legacy` module; nothing writes them any more.
//!
//! One thread does the ordered work, group by group: append, fsync, storage writes, answers.
//! While it writes one group to storage the next group gathers, so groups grow with the load.
//! A second thread that wrote storage while the next fsync ran was tried: handing every group
//! across threads (a wake-up, a context switch, cold caches) cost more CPU per request than the
//! overlap saved, and the server is CPU-bound before it is fsync-bound.
use crate::error::chain;
use crate::wal::{Payload, Wal};
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use skylark_core::traffic::Traffic;
use skylark_core::{
    IngestError, IngestReport, IngestSink, IssueOccurrence, LogData, LogRecord, MetricBatch,
    MetricEmission, RumBatch, RumEvent, Segment, SegmentRecord,
};
use skylark_storage::{AppliedSeqs, Storage};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

mod legacy;

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

/// What one request makes storage do, as the rules computed it.
#[derive(Debug, Default)]
pub struct Effects {
    /// The time the request was processed at (traffic pings use it).
    pub now_ms: i64,
    /// Metric emissions to aggregate.
    pub emissions: Vec<MetricEmission>,
    /// Entities seen.
    pub traffic: Vec<Traffic>,
    /// Log records to store.
    pub logs: Vec<LogRecord>,
    /// Segment records to store.
    pub segments: Vec<SegmentRecord>,
    /// Error occurrences to fold into issues.
    pub issues: Vec<IssueOccurrence>,
    /// RUM events to store (views only in a higher version than stored).
    pub rum: Vec<RumEvent>,
}

impl Effects {
    /// No effects yet, for a request processed at `now_ms`.
    pub fn at(now_ms: i64) -> Self {
        Effects {
            now_ms,
            ..Effects::default()
        }
    }

    /// Whether applying these effects would change nothing.
    pub fn is_empty(&self) -> bool {
        self.emissions.is_empty()
            && self.traffic.is_empty()
            && self.logs.is_empty()
            && self.segments.is_empty()
            && self.rum.is_empty()
            && self.issues.is_empty()
    }
}

/// An error from decoding a request body, whatever decoder made it.
pub type BodyError = Box<dyn std::error::Error + Send + Sync>;

/// What the sink needs from the write path (the server's pipeline): "now", the storage to write
/// to, and the rules run over one request without touching storage. The sink calls it for new
/// requests and again for logged ones on replay, so the same input and `now_ms` must always give
/// the same effects.
pub trait WritePath: Send + Sync + 'static {
    /// "Now" in epoch ms: the time a new request is logged and processed at.
    fn now_ms(&self) -> i64;
    /// The storage effects are written to.
    fn storage(&self) -> &Arc<dyn Storage>;
    /// Runs one metrics request through the rules as of `now_ms`, storing nothing.
    fn prepare_metrics(&self, batch: MetricBatch, now_ms: i64) -> (IngestReport, Effects);
    /// Runs one logs request through the rules as of `now_ms`, storing nothing.
    fn prepare_logs(&self, logs: Vec<LogData>, now_ms: i64) -> (IngestReport, Effects);
    /// Runs one trace segments request through the rules as of `now_ms`, storing nothing.
    fn prepare_segments(&self, segments: Vec<Segment>, now_ms: i64) -> (IngestReport, Effects);
    /// Runs one RUM request through the rules as of `now_ms`, storing nothing.
    fn prepare_rum(&self, batch: RumBatch, now_ms: i64) -> (IngestReport, Effects);
    /// Decodes a metrics body the log kept as received (`content_type` says how), on replay.
    fn decode_metrics_body(
        &self,
        content_type: &str,
        body: &[u8],
    ) -> std::result::Result<MetricBatch, BodyError>;
}

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

/// The format tag of the entries this version writes: postcard of `EntryRef`. Tags are never
/// reused; a new encoding gets a new tag (0 is never used, so zeros are not an entry).
pub const ENTRY_FORMAT_POSTCARD: u8 = 1;

/// One request as the log keeps it: its input (as received, or decoded) and the time it was
/// processed at, which is all the rules need to compute the same effects again. Written as
/// postcard behind [`ENTRY_FORMAT_POSTCARD`]; [`Request`] reads it back. Variants are only ever
/// added at the end, so older entries keep their meaning.
#[derive(Serialize)]
struct EntryRef<'a> {
    now_ms: i64,
    request: RequestRef<'a>,
}

#[derive(Serialize)]
enum RequestRef<'a> {
    Logs(&'a [LogData]),
    Segments(&'a [Segment]),
    /// A batch in [`crate::batch_codec`]'s encoding, a twelfth of the size of the decoded batch.
    CompactMetrics(Bytes<'a>),
    /// The body a batch was decoded from (HTTP requests), decoded again on replay: cheaper to
    /// keep than any encoding of the decoded batch.
    EncodedMetrics {
        content_type: &'a str,
        body: Bytes<'a>,
    },
    /// Decoded RUM events.
    Rum(&'a [RumEvent]),
}

/// Bytes serialized as one length-prefixed copy instead of a sequence of numbers.
struct Bytes<'a>(&'a [u8]);

impl Serialize for Bytes<'_> {
    fn serialize<S: serde::Serializer>(
        &self,
        serializer: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        serializer.serialize_bytes(self.0)
    }
}

/// What [`Bytes`] wrote, read back.
struct ByteBuf(Vec<u8>);

impl<'de> Deserialize<'de> for ByteBuf {
    fn deserialize<D: serde::Deserializer<'de>>(
        deserializer: D,
    ) -> std::result::Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = ByteBuf;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("bytes")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> std::result::Result<ByteBuf, E> {
                Ok(ByteBuf(v.to_vec()))
            }
            fn visit_byte_buf<E: serde::de::Error>(
                self,
                v: Vec<u8>,
            ) -> std::result::Result<ByteBuf, E> {
                Ok(ByteBuf(v))
            }
        }
        deserializer.deserialize_byte_buf(Visitor)
    }
}

/// [`EntryRef`] read back.
#[derive(Deserialize)]
struct Entry {
    now_ms: i64,
    request: Request,
}

/// [`RequestRef`] read back.
#[derive(Deserialize)]
enum Request {
    Logs(Vec<LogData>),
    Segments(Vec<Segment>),
    CompactMetrics(ByteBuf),
    EncodedMetrics { content_type: String, body: ByteBuf },
    Rum(Vec<RumEvent>),
}

/// What replay runs through the pipeline again, whichever encoding the entry used.
#[derive(Debug, PartialEq)]
enum Input {
    Metrics(MetricBatch),
    Logs(Vec<LogData>),
    Segments(Vec<Segment>),
    Rum(RumBatch),
}

impl Request {
    fn into_input(self, path: &dyn WritePath) -> Result<Input> {
        Ok(match self {
            Request::CompactMetrics(ByteBuf(bytes)) => {
                Input::Metrics(crate::batch_codec::decode(&bytes)?)
            }
            Request::EncodedMetrics {
                content_type,
                body: ByteBuf(body),
            } => Input::Metrics(
                path.decode_metrics_body(&content_type, &body)
                    .map_err(Error::DecodeBody)?,
            ),
            Request::Logs(logs) => Input::Logs(logs),
            Request::Segments(segments) => Input::Segments(segments),
            Request::Rum(events) => Input::Rum(RumBatch { events }),
        })
    }
}

/// Encodes an entry as this version logs it (postcard; the writer tags it
/// [`ENTRY_FORMAT_POSTCARD`]).
fn encode(entry: &EntryRef<'_>) -> std::result::Result<Vec<u8>, IngestError> {
    postcard::to_allocvec(entry).map_err(|e| IngestError::Internal(chain(&Error::Encode(e))))
}

/// Reads one logged entry back: postcard when tagged so, bincode when untagged (an entry an
/// earlier version wrote, see [`legacy`]).
fn decode_entry(payload: Payload<'_>, path: &dyn WritePath) -> Result<(i64, Input)> {
    match payload {
        Payload::Tagged {
            format: ENTRY_FORMAT_POSTCARD,
            bytes,
        } => {
            let (entry, rest): (Entry, _) =
                postcard::take_from_bytes(bytes).map_err(Error::Decode)?;
            if !rest.is_empty() {
                return Err(Error::TrailingBytes(rest.len()));
            }
            Ok((entry.now_ms, entry.request.into_input(path)?))
        }
        Payload::Tagged { format, .. } => Err(Error::UnknownFormat(format)),
        Payload::Legacy(bytes) => legacy::decode(bytes, path),
    }
}

/// The answer a request waits for.
type Answer = tokio::sync::oneshot::Sender<std::result::Result<(), String>>;

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
    fn fail(&self, what: &str, error: &dyn std::error::Error) -> String {
        self.failed.store(true, Ordering::SeqCst);
        let error = chain(error);
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
    pipeline: Arc<dyn WritePath>,
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
fn replay(pipeline: &dyn WritePath, wal: &Wal) -> Result<(ReplayReport, u64)> {
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
        let (now_ms, input) = match decode_entry(payload, pipeline) {
            Ok(decoded) => decoded,
            Err(error) => {
                let error = chain(&error);
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
    if let Some((seq, source)) = failure {
        return Err(Error::Replay { seq, source });
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
        pipeline: Arc<dyn WritePath>,
        settings: &DurabilitySettings,
    ) -> Result<(DurableSink, ReplayReport)> {
        let started = Instant::now();
        let mut wal = Wal::open(&settings.wal_dir)?;
        let (report, last) = replay(pipeline.as_ref(), &wal)?;
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
                .spawn(move || write_log(wal, last + 1, command_rx, mode, flush, &shared))
                .map_err(Error::Thread)?
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
    pub fn persist(&self) -> Result<()> {
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
    pub fn shutdown(&self) -> Result<()> {
        let Some(threads) = self.threads.lock().take() else {
            return Ok(());
        };
        drop(threads.commands);
        let wal = threads.writer.join().map_err(|_| Error::WriterPanicked)?;
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

    async fn submit(
        &self,
        payload: Vec<u8>,
        effects: Effects,
    ) -> std::result::Result<(), IngestError> {
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
            result = wal.append(*seq, ENTRY_FORMAT_POSTCARD, &job.payload);
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
                Err(error) => {
                    let error = chain(&error);
                    tracing::warn!(%error, "deleting write-ahead log segments failed")
                }
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
    async fn ingest_metrics(
        &self,
        batch: MetricBatch,
    ) -> std::result::Result<IngestReport, IngestError> {
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

    async fn ingest_logs(
        &self,
        logs: Vec<LogData>,
    ) -> std::result::Result<IngestReport, IngestError> {
        let now_ms = self.pipeline.now_ms();
        let payload = encode(&EntryRef {
            now_ms,
            request: RequestRef::Logs(&logs),
        })?;
        let (report, effects) = self.pipeline.prepare_logs(logs, now_ms);
        self.finish(payload, report, effects).await
    }

    async fn ingest_segments(
        &self,
        segments: Vec<Segment>,
    ) -> std::result::Result<IngestReport, IngestError> {
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
    async fn ingest_rum(&self, batch: RumBatch) -> std::result::Result<IngestReport, IngestError> {
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
    ) -> std::result::Result<IngestReport, IngestError> {
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
    use super::legacy::write as old;
    use super::*;
    use skylark_core::rum::{
        RumActionDetail, RumDetail, RumErrorDetail, RumResourceDetail, RumUser, RumViewRef,
        RumViewTimings,
    };
    use skylark_core::{
        Layer, LogBody, RefType, RumEventType, SampleFamilies, SampleFamily, SegmentRef, Span,
        SpanLayer, SpanLog, SpanType,
    };
    use skylark_storage::{LogQuery, MemStorage};

    const NOW: i64 = 1_764_400_000_000;
    const BODY_TYPE: &str = "application/x-protobuf";

    /// A write path without rules: each log becomes one stored record, and every request it
    /// prepares is noted, in order.
    struct Recorder {
        storage: Arc<dyn Storage>,
        prepared: parking_lot::Mutex<Vec<String>>,
    }

    impl Recorder {
        fn new(storage: Arc<dyn Storage>) -> Arc<Recorder> {
            Arc::new(Recorder {
                storage,
                prepared: Default::default(),
            })
        }

        fn take(&self) -> Vec<String> {
            std::mem::take(&mut self.prepared.lock())
        }
    }

    impl WritePath for Recorder {
        fn now_ms(&self) -> i64 {
            NOW
        }

        fn storage(&self) -> &Arc<dyn Storage> {
            &self.storage
        }

        fn prepare_metrics(&self, batch: MetricBatch, now_ms: i64) -> (IngestReport, Effects) {
            let value = batch.resources[0]["launch"].samples[0].value;
            self.prepared.lock().push(format!("metrics {value}"));
            (IngestReport::default(), Effects::at(now_ms))
        }

        fn prepare_logs(&self, logs: Vec<LogData>, now_ms: i64) -> (IngestReport, Effects) {
            let mut effects = Effects::at(now_ms);
            for log in logs {
                self.prepared
                    .lock()
                    .push(format!("log {}", log.body.content()));
                effects.logs.push(LogRecord {
                    service: log.service,
                    service_instance: String::new(),
                    endpoint: String::new(),
                    layer: Layer::GENERAL,
                    timestamp_ms: now_ms,
                    trace_id: None,
                    segment_id: None,
                    span_id: None,
                    content_type: log.body.content_type(),
                    content: log.body.content().to_string(),
                    tags: Vec::new(),
                });
            }
            let report = IngestReport {
                accepted: effects.logs.len() as u64,
                ..IngestReport::default()
            };
            (report, effects)
        }

        fn prepare_segments(&self, segments: Vec<Segment>, now_ms: i64) -> (IngestReport, Effects) {
            for s in &segments {
                self.prepared
                    .lock()
                    .push(format!("segment {}", s.segment_id));
            }
            (IngestReport::default(), Effects::at(now_ms))
        }

        fn prepare_rum(&self, batch: RumBatch, now_ms: i64) -> (IngestReport, Effects) {
            for e in &batch.events {
                self.prepared.lock().push(format!("rum {}", e.id));
            }
            (IngestReport::default(), Effects::at(now_ms))
        }

        fn decode_metrics_body(
            &self,
            content_type: &str,
            body: &[u8],
        ) -> std::result::Result<MetricBatch, BodyError> {
            if content_type != BODY_TYPE {
                return Err(format!("unexpected content type {content_type}").into());
            }
            Ok(crate::batch_codec::decode(body)?)
        }
    }

    fn settings(dir: &Path) -> DurabilitySettings {
        DurabilitySettings {
            mode: Durability::Sync,
            wal_flush: Duration::from_millis(20),
            wal_dir: dir.to_path_buf(),
        }
    }

    fn logs(text: &str) -> Vec<LogData> {
        vec![LogData {
            service: "wal-test".into(),
            body: LogBody::Text(text.into()),
            ..LogData::default()
        }]
    }

    fn launch(value: f64) -> MetricBatch {
        let mut families = SampleFamilies::default();
        families.insert(
            "launch".into(),
            SampleFamily::new(vec![skylark_core::Sample {
                name: "launch".into(),
                labels: [("service_name", "wal-test"), ("platform", "wechat")].into(),
                value,
                timestamp_ms: NOW,
            }]),
        );
        MetricBatch {
            resources: vec![families],
            skipped_points: 2,
            skip_reasons: Default::default(),
            source: None,
        }
    }

    fn stored_logs(storage: &dyn Storage) -> Vec<String> {
        let mut contents: Vec<String> = storage
            .query_logs(&LogQuery::default())
            .unwrap()
            .into_iter()
            .map(|l| l.record.content)
            .collect();
        contents.sort();
        contents
    }

    /// Writes `entries` (seq, untagged bincode payload) as one segment an earlier version left.
    fn write_legacy_segment(dir: &Path, entries: &[(u64, Vec<u8>)]) {
        let mut data = Vec::new();
        for (seq, payload) in entries {
            data.extend(crate::wal::legacy_record(*seq, payload));
        }
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join(crate::wal::segment_name(entries[0].0)), data).unwrap();
    }

    fn tagged(entry: &EntryRef<'_>) -> Vec<u8> {
        encode(entry).unwrap()
    }

    /// Encodes `request` as this version logs it and decodes it back.
    fn round_trip(request: RequestRef<'_>) -> (i64, Input) {
        let bytes = tagged(&EntryRef {
            now_ms: NOW,
            request,
        });
        let payload = Payload::Tagged {
            format: ENTRY_FORMAT_POSTCARD,
            bytes: &bytes,
        };
        let recorder = Recorder::new(Arc::new(MemStorage::new()));
        decode_entry(payload, recorder.as_ref()).unwrap()
    }

    fn full_log(body: LogBody) -> LogData {
        LogData {
            service: "svc".into(),
            service_instance: "i-1".into(),
            endpoint: "/pay".into(),
            layer: "GENERAL".into(),
            timestamp_ms: -5,
            body,
            tags: vec![("k".into(), "v".into()), ("k".into(), "".into())],
            source_attributes: vec![("service.name".into(), "svc".into())],
            trace_id: Some("t1".into()),
            segment_id: Some("s1".into()),
            span_id: Some(-1),
        }
    }

    #[test]
    fn logs_entries_round_trip_through_postcard() {
        let logs = vec![
            full_log(LogBody::None),
            full_log(LogBody::Text("text ✓".into())),
            full_log(LogBody::Json("{\"a\":1}".into())),
            full_log(LogBody::Yaml("a: 1".into())),
            LogData::default(),
        ];
        let back = round_trip(RequestRef::Logs(&logs));
        assert_eq!(back, (NOW, Input::Logs(logs)));
    }

    #[test]
    fn segments_entries_round_trip_through_postcard() {
        let span = |span_type, span_layer, ref_type| Span {
            span_id: 1,
            parent_span_id: -1,
            start_time_ms: NOW,
            end_time_ms: NOW + 5,
            refs: vec![SegmentRef {
                ref_type,
                trace_id: "t".into(),
                parent_segment_id: "p".into(),
                parent_span_id: 3,
                parent_service: "up".into(),
                parent_service_instance: "up-1".into(),
                parent_endpoint: "/".into(),
                network_address_used_at_peer: "10.0.0.1:80".into(),
            }],
            operation_name: "GET /".into(),
            peer: "db:5432".into(),
            span_type,
            span_layer,
            component_id: 49,
            is_error: true,
            tags: vec![("http.method".into(), "GET".into())],
            logs: vec![SpanLog {
                time_ms: NOW,
                data: vec![("event".into(), "error".into())],
            }],
            skip_analysis: true,
        };
        let segments = vec![
            Segment {
                trace_id: "t".into(),
                segment_id: "s".into(),
                service: "svc".into(),
                service_instance: "i".into(),
                spans: vec![
                    span(SpanType::Entry, SpanLayer::Http, RefType::CrossProcess),
                    span(SpanType::Exit, SpanLayer::Database, RefType::CrossThread),
                    span(SpanType::Local, SpanLayer::FAAS, RefType::CrossProcess),
                ],
                is_size_limited: true,
            },
            Segment::default(),
        ];
        let back = round_trip(RequestRef::Segments(&segments));
        assert_eq!(back, (NOW, Input::Segments(segments)));
    }

    #[test]
    fn rum_entries_round_trip_through_postcard() {
        let event = |event_type, detail| RumEvent {
            event_type: Some(event_type),
            id: "e".into(),
            time_ms: NOW,
            service: "app".into(),
            version: "1.0".into(),
            env: "prod".into(),
            source: "miniprogram".into(),
            application_id: "a".into(),
            session_id: "s".into(),
            view: RumViewRef {
                id: "v".into(),
                name: "home".into(),
                url: "pages/home".into(),
                ..RumViewRef::default()
            },
            user: RumUser {
                id: "u".into(),
                ..RumUser::default()
            },
            document_version: Some(3),
            name: "tap".into(),
            duration_ms: Some(12.5),
            status: Some(500),
            trace_id: "0af7651916cd43dd8448eb211c80319c".into(),
            dd_trace_id: "123".into(),
            span_id: "b7ad6b7169203331".into(),
            message: "boom".into(),
            stack: "at f (a.js:1:2)".into(),
            detail,
            attributes: vec![("device.model".into(), "iPhone".into())],
        };
        let events = vec![
            event(
                RumEventType::View,
                RumDetail::View(RumViewTimings::default()),
            ),
            event(
                RumEventType::Action,
                RumDetail::Action(RumActionDetail::default()),
            ),
            event(
                RumEventType::Resource,
                RumDetail::Resource(RumResourceDetail::default()),
            ),
            event(
                RumEventType::Error,
                RumDetail::Error(RumErrorDetail {
                    source: "app".into(),
                    ..RumErrorDetail::default()
                }),
            ),
            event(RumEventType::LongTask, RumDetail::None),
            event(RumEventType::Custom, RumDetail::None),
            event(RumEventType::Vital, RumDetail::None),
            RumEvent::default(),
        ];
        let back = round_trip(RequestRef::Rum(&events));
        assert_eq!(back, (NOW, Input::Rum(RumBatch { events })));
    }

    #[test]
    fn metrics_entries_round_trip_through_postcard_in_both_kinds() {
        let batch = launch(1600.0);
        let compact = crate::batch_codec::encode(&batch);
        let (now, input) = round_trip(RequestRef::CompactMetrics(Bytes(&compact)));
        assert_eq!(now, NOW);
        let Input::Metrics(back) = input else {
            panic!("{input:?}")
        };
        assert_eq!(
            (back.resources, back.skipped_points),
            (batch.resources.clone(), 2)
        );
        let (_, input) = round_trip(RequestRef::EncodedMetrics {
            content_type: BODY_TYPE,
            body: Bytes(&compact),
        });
        let Input::Metrics(back) = input else {
            panic!("{input:?}")
        };
        assert_eq!(back.resources, batch.resources);
    }

    #[test]
    fn an_unknown_format_or_damaged_entry_is_an_error() {
        let recorder = Recorder::new(Arc::new(MemStorage::new()));
        let bytes = tagged(&EntryRef {
            now_ms: NOW,
            request: RequestRef::Logs(&logs("x")),
        });
        let newer = Payload::Tagged {
            format: 9,
            bytes: &bytes,
        };
        assert!(matches!(
            decode_entry(newer, recorder.as_ref()),
            Err(Error::UnknownFormat(9))
        ));
        let mut longer = bytes.clone();
        longer.push(0);
        let longer = Payload::Tagged {
            format: ENTRY_FORMAT_POSTCARD,
            bytes: &longer,
        };
        assert!(matches!(
            decode_entry(longer, recorder.as_ref()),
            Err(Error::TrailingBytes(1))
        ));
        for cut in 0..bytes.len() {
            let cut = Payload::Tagged {
                format: ENTRY_FORMAT_POSTCARD,
                bytes: &bytes[..cut],
            };
            assert!(decode_entry(cut, recorder.as_ref()).is_err());
        }
    }

    #[test]
    fn a_segment_of_an_earlier_version_replays_once() {
        let dir = tempfile::tempdir().unwrap();
        let entries: Vec<(u64, Vec<u8>)> = (1..=5)
            .map(|seq| {
                let logs = logs(&format!("old {seq}"));
                (seq, old::entry(NOW, old::RequestRef::Logs(&logs)))
            })
            .collect();
        write_legacy_segment(dir.path(), &entries);
        // Before the upgrade, entries 1-2 were stored; 3-5 were only in the log.
        let storage: Arc<dyn Storage> = Arc::new(MemStorage::new());
        let recorder = Recorder::new(storage.clone());
        for seq in 1..=2 {
            let (_, effects) = recorder.prepare_logs(logs(&format!("old {seq}")), NOW);
            apply_entry(storage.as_ref(), seq, effects, &AppliedSeqs::default()).unwrap();
        }
        storage.flush().unwrap();
        recorder.take();

        let (sink, report) = DurableSink::start(recorder.clone(), &settings(dir.path())).unwrap();
        assert_eq!((report.entries, report.undecodable), (5, 0), "{report:?}");
        assert_eq!((report.marks.logs, report.marks.metrics), (2, 2));
        // Entries 1-2 are prepared again only because no issue mark covers them (they made no
        // occurrences); their logs are not stored twice.
        assert_eq!(
            recorder.take(),
            [
                "log old 1",
                "log old 2",
                "log old 3",
                "log old 4",
                "log old 5"
            ]
        );
        assert_eq!(
            stored_logs(storage.as_ref()),
            ["old 1", "old 2", "old 3", "old 4", "old 5"]
        );
        assert_eq!(storage.applied_seqs().unwrap().logs, 5);
        sink.shutdown().unwrap();
        // Applied once: a second start finds nothing to replay.
        let (sink, report) = DurableSink::start(recorder.clone(), &settings(dir.path())).unwrap();
        assert_eq!((report.entries, report.applied), (0, 0), "{report:?}");
        assert_eq!(stored_logs(storage.as_ref()).len(), 5);
        sink.shutdown().unwrap();
    }

    #[test]
    fn old_entries_then_new_ones_in_one_folder_replay_in_order() {
        let dir = tempfile::tempdir().unwrap();
        // An earlier version's segment: every kind of entry it wrote for metrics, and a log.
        let (first, second, third) = (launch(1.0), launch(2.0), launch(3.0));
        let compact = crate::batch_codec::encode(&second);
        let body = crate::batch_codec::encode(&third);
        let old_logs = logs("old 4");
        let requests = [
            old::RequestRef::Metrics(&first),
            old::RequestRef::CompactMetrics(old::Bytes(&compact)),
            old::RequestRef::EncodedMetrics {
                content_type: BODY_TYPE,
                body: old::Bytes(&body),
            },
            old::RequestRef::Logs(&old_logs),
        ];
        let entries: Vec<(u64, Vec<u8>)> = (1..)
            .zip(requests)
            .map(|(seq, request)| (seq, old::entry(NOW, request)))
            .collect();
        write_legacy_segment(dir.path(), &entries);
        // This version appends after them, in a segment of its own.
        {
            let mut wal = Wal::open(dir.path()).unwrap();
            assert_eq!(wal.last_seq(), Some(4));
            let (new_logs, fourth) = (logs("new 6"), launch(4.0));
            let compact = crate::batch_codec::encode(&fourth);
            let requests = [
                RequestRef::CompactMetrics(Bytes(&compact)),
                RequestRef::Logs(&new_logs),
                RequestRef::Rum(&[]),
            ];
            for (seq, request) in (5..).zip(requests) {
                let payload = tagged(&EntryRef {
                    now_ms: NOW,
                    request,
                });
                wal.append(seq, ENTRY_FORMAT_POSTCARD, &payload).unwrap();
            }
            wal.sync().unwrap();
            assert_eq!(wal.segment_count(), 2);
        }

        let storage: Arc<dyn Storage> = Arc::new(MemStorage::new());
        let recorder = Recorder::new(storage.clone());
        let (sink, report) = DurableSink::start(recorder.clone(), &settings(dir.path())).unwrap();
        assert_eq!(
            (report.entries, report.applied, report.undecodable),
            (7, 7, 0),
            "{report:?}"
        );
        assert_eq!(
            recorder.take(),
            [
                "metrics 1",
                "metrics 2",
                "metrics 3",
                "log old 4",
                "metrics 4",
                "log new 6"
            ]
        );
        assert_eq!(stored_logs(storage.as_ref()), ["new 6", "old 4"]);
        assert_eq!(storage.applied_seqs().unwrap().metrics, 7);
        sink.shutdown().unwrap();
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[tokio::test]
    async fn new_requests_are_logged_tagged_as_postcard_never_bincode() {
        let dir = tempfile::tempdir().unwrap();
        let storage: Arc<dyn Storage> = Arc::new(MemStorage::new());
        let recorder = Recorder::new(storage.clone());
        let (sink, _) = DurableSink::start(recorder.clone(), &settings(dir.path())).unwrap();
        assert_eq!(sink.ingest_logs(logs("a")).await.unwrap().accepted, 1);
        assert_eq!(sink.ingest_logs(logs("b")).await.unwrap().accepted, 1);
        // Dies before a persist: the entries stay in the log.
        drop(sink);
        let wal = Wal::open(dir.path()).unwrap();
        let mut seen = Vec::new();
        wal.replay(&mut |seq, payload| {
            let Payload::Tagged {
                format: ENTRY_FORMAT_POSTCARD,
                bytes,
            } = payload
            else {
                panic!("entry {seq} is {payload:?}")
            };
            let entry: Entry = postcard::from_bytes(bytes).unwrap();
            let Request::Logs(logs) = entry.request else {
                panic!("entry {seq} is not logs")
            };
            seen.push((seq, entry.now_ms, logs[0].body.content().to_string()));
        })
        .unwrap();
        assert_eq!(seen, [(1, NOW, "a".into()), (2, NOW, "b".into())]);
        assert_eq!(stored_logs(storage.as_ref()), ["a", "b"]);
    }
}
