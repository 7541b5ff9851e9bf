//! Record writes of the write-ahead log, applied in order on threads of their own: one lane
//! per kind of record, so the kinds commit side by side while each stays in order (each kind
//! has its own mark).
//!
//! Skylark's log thread applies each group of requests after its fsync. Waiting there for
//! PostgreSQL's round trips left both the log and the database idle half the time; with this
//! writer the log thread fsyncs the next group while the database commits this one. Nothing is
//! lost by returning early: each batch's mark commits with its rows, the log keeps every entry
//! past the marks, and a metrics flush (which lets the log be cut) drains this writer first.
use crate::error::{Error, Result};
use parking_lot::Mutex;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;

/// One write, run on the writer thread.
pub(crate) type Work = Box<dyn FnOnce() -> skylark_storage::Result<()> + Send>;

/// Batches queued at most: the log thread waits beyond this, so memory stays bounded.
const QUEUE_DEPTH: usize = 4;

enum Job {
    Work(Work),
    /// Answered once every job queued before it has run.
    Barrier(SyncSender<()>),
}

/// The writer thread and its queue.
pub(crate) struct Deferred {
    queue: Mutex<Option<SyncSender<Job>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
    /// The first failure; once set, later work is skipped so no mark passes a lost batch.
    failure: Arc<Mutex<Option<String>>>,
}

impl Deferred {
    pub(crate) fn start(name: &str) -> Result<Self> {
        let (queue, jobs) = sync_channel(QUEUE_DEPTH);
        let failure = Arc::new(Mutex::new(None));
        let thread = {
            let failure = failure.clone();
            std::thread::Builder::new()
                .name(name.into())
                .spawn(move || run(jobs, &failure))
                .map_err(Error::Runtime)?
        };
        Ok(Deferred {
            queue: Mutex::new(Some(queue)),
            thread: Mutex::new(Some(thread)),
            failure,
        })
    }

    fn failed(&self) -> Result<()> {
        match &*self.failure.lock() {
            Some(message) => Err(Error::EarlierWrite(message.clone())),
            None => Ok(()),
        }
    }

    fn send(&self, job: Job) -> Result<()> {
        // Cloned out of the lock: a full queue must not block `drain` callers on the mutex.
        let queue = self.queue.lock().clone();
        match queue {
            Some(queue) if queue.send(job).is_ok() => Ok(()),
            _ => Err(Error::Runtime(std::io::Error::other(
                "the record writer has stopped",
            ))),
        }
    }

    /// Queues `work` behind every write queued before it (waiting while the queue is full).
    /// Fails at once if an earlier write failed.
    pub(crate) fn submit(&self, work: Work) -> Result<()> {
        self.failed()?;
        self.send(Job::Work(work))
    }

    /// Waits until every write queued so far has run; the first failure among them, if any.
    pub(crate) fn drain(&self) -> Result<()> {
        if self.queue.lock().is_none() {
            // Stopped: the thread ran everything before it ended.
            return self.failed();
        }
        let (done, finished) = sync_channel(1);
        self.send(Job::Barrier(done))?;
        finished
            .recv()
            .map_err(|_| Error::Runtime(std::io::Error::other("the record writer has stopped")))?;
        self.failed()
    }

    /// Runs what is queued, then stops the thread.
    pub(crate) fn stop(&self) {
        drop(self.queue.lock().take());
        if let Some(thread) = self.thread.lock().take() {
            if thread.join().is_err() {
                tracing::error!("the postgresql record writer panicked");
            }
        }
    }
}

fn run(jobs: Receiver<Job>, failure: &Mutex<Option<String>>) {
    for job in jobs {
        match job {
            Job::Work(work) => {
                if failure.lock().is_some() {
                    continue;
                }
                let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(work))
                    .unwrap_or_else(|_| {
                        Err(skylark_storage::Error::Backend {
                            context: "postgresql record writer".into(),
                            source: "a write panicked".into(),
                        })
                    });
                if let Err(error) = outcome {
                    tracing::error!(%error, "postgresql record write failed; later writes wait for a restart and the log replay");
                    *failure.lock() = Some(error.to_string());
                }
            }
            Job::Barrier(done) => {
                let _ = done.send(());
            }
        }
    }
}

/// The kinds of record batches the write-ahead log hands over, each in a lane of its own.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Lane {
    Logs = 0,
    Segments = 1,
    Rum = 2,
    Issues = 3,
}

/// One [`Deferred`] writer per [`Lane`].
pub(crate) struct Lanes([Deferred; 4]);

impl Lanes {
    pub(crate) fn start() -> Result<Self> {
        Ok(Lanes([
            Deferred::start("skylark-pg-logs")?,
            Deferred::start("skylark-pg-segments")?,
            Deferred::start("skylark-pg-rum")?,
            Deferred::start("skylark-pg-issues")?,
        ]))
    }

    /// Queues `work` in `lane`, behind that lane's earlier writes.
    pub(crate) fn submit(&self, lane: Lane, work: Work) -> Result<()> {
        self.0[lane as usize].submit(work)
    }

    /// Waits for `lane`'s queued writes (before reading what they write).
    pub(crate) fn drain(&self, lane: Lane) -> Result<()> {
        self.0[lane as usize].drain()
    }

    /// Waits for every lane's queued writes; the first failure, if any.
    pub(crate) fn drain_all(&self) -> Result<()> {
        let mut first = Ok(());
        for lane in &self.0 {
            let drained = lane.drain();
            if first.is_ok() {
                first = drained;
            }
        }
        first
    }

    /// Runs every lane's queued writes, then stops the threads.
    pub(crate) fn stop(&self) {
        for lane in &self.0 {
            lane.stop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn a_stopped_writer_has_run_everything_queued() {
        let deferred = Deferred::start("test-writer").unwrap();
        let ran = Arc::new(AtomicUsize::new(0));
        for _ in 0..8 {
            let ran = ran.clone();
            deferred
                .submit(Box::new(move || {
                    std::thread::sleep(std::time::Duration::from_millis(2));
                    ran.fetch_add(1, Ordering::SeqCst);
                    Ok(())
                }))
                .unwrap();
        }
        deferred.stop();
        assert_eq!(ran.load(Ordering::SeqCst), 8);
        deferred.drain().unwrap();
    }

    #[test]
    fn writes_run_in_order_and_a_failure_stops_the_rest() {
        let deferred = Deferred::start("test-writer").unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        for i in 0..10 {
            let seen = seen.clone();
            deferred
                .submit(Box::new(move || {
                    seen.lock().push(i);
                    Ok(())
                }))
                .unwrap();
        }
        deferred.drain().unwrap();
        assert_eq!(*seen.lock(), (0..10).collect::<Vec<_>>());

        let after = Arc::new(AtomicUsize::new(0));
        deferred
            .submit(Box::new(|| {
                Err(skylark_storage::Error::CorruptMark("x".into()))
            }))
            .unwrap();
        let counted = after.clone();
        // Queued before the failure is seen: skipped, so no later mark can pass the lost batch.
        let _ = deferred.submit(Box::new(move || {
            counted.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }));
        assert!(matches!(deferred.drain(), Err(Error::EarlierWrite(_))));
        assert_eq!(after.load(Ordering::SeqCst), 0);
        assert!(deferred.submit(Box::new(|| Ok(()))).is_err());
        deferred.stop();
        // After a stop, draining reports what happened before it.
        assert!(matches!(deferred.drain(), Err(Error::EarlierWrite(_))));
    }
}
