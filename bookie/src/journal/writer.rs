//! The journal's two threads: the group-commit writer and the apply thread behind it.

use std::fmt;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::record::Record;
use super::segment::{self, Position};
use super::{AppendError, JournalConfig, JournalError};

/// Called once with the outcome of one append. Dropping it uncalled reports
/// [`AppendError::Closed`], so no waiter is ever left hanging.
pub struct Completion(Option<CompletionFn>);

type CompletionFn = Box<dyn FnOnce(Result<(), AppendError>) + Send>;

impl Completion {
    pub fn new(f: impl FnOnce(Result<(), AppendError>) + Send + 'static) -> Self {
        Completion(Some(Box::new(f)))
    }

    pub fn complete(mut self, result: Result<(), AppendError>) {
        if let Some(f) = self.0.take() {
            f(result);
        }
    }
}

impl Drop for Completion {
    fn drop(&mut self) {
        if let Some(f) = self.0.take() {
            f(Err(AppendError::Closed));
        }
    }
}

impl fmt::Debug for Completion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Completion")
    }
}

/// Applies a durable batch of records to ledger storage before their appends complete.
pub type Applier =
    Box<dyn FnMut(&[Record]) -> Result<(), Box<dyn std::error::Error + Send + Sync>> + Send>;

/// Counters since the journal started, for metrics and benchmarks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JournalStats {
    pub fsyncs: u64,
    pub records: u64,
    pub bytes: u64,
    pub segments_created: u64,
}

#[derive(Debug, Default)]
struct Shared {
    fsyncs: AtomicU64,
    records: AtomicU64,
    bytes: AtomicU64,
    segments_created: AtomicU64,
    applied: Mutex<Position>,
    fsync_latency: crate::metrics::FsyncLatency,
}

enum Msg {
    Append(Record, Completion),
    Stop,
}

struct DurableBatch {
    records: Vec<Record>,
    completions: Vec<Completion>,
    end: Position,
}

/// A running journal. Appends may come from any thread; [`Journal::close`] (or drop) stops the
/// threads after the batch in progress.
#[derive(Debug)]
pub struct Journal {
    tx: Sender<Msg>,
    shared: Arc<Shared>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    dir: PathBuf,
    max_record_len: u64,
}

impl Journal {
    /// Starts writing at a new segment `first_segment` in `dir`. Everything journaled before must
    /// already be applied (replayed) by the caller: the applied position starts at this segment.
    pub fn start(
        dir: &Path,
        config: &JournalConfig,
        first_segment: u64,
        applier: Applier,
    ) -> Result<Journal, JournalError> {
        let file = segment::create(dir, first_segment, config.segment_size)
            .map_err(|e| JournalError::io("creating a segment", e))?;
        let start = Position {
            segment: first_segment,
            offset: 0,
        };
        let shared = Arc::new(Shared {
            applied: Mutex::new(start),
            segments_created: AtomicU64::new(1),
            ..Shared::default()
        });
        let (tx, rx) = mpsc::channel();
        let (durable_tx, durable_rx) = mpsc::channel();
        let writer = Writer {
            rx,
            durable_tx,
            shared: shared.clone(),
            dir: dir.to_path_buf(),
            config: config.clone(),
            file,
            position: start,
            buf: Vec::with_capacity(config.max_batch_bytes * 2),
        };
        let spawn_err = |e| JournalError::io("spawning a journal thread", e);
        let writer = std::thread::Builder::new()
            .name("journal-writer".into())
            .spawn(move || writer.run())
            .map_err(spawn_err)?;
        let apply_shared = shared.clone();
        let applier_thread = std::thread::Builder::new()
            .name("journal-apply".into())
            .spawn(move || apply_loop(durable_rx, applier, &apply_shared))
            .map_err(spawn_err)?;
        Ok(Journal {
            tx,
            shared,
            threads: Mutex::new(vec![writer, applier_thread]),
            dir: dir.to_path_buf(),
            max_record_len: config.max_record_len(),
        })
    }

    /// Queues `record`; `done` is completed once it is durable and applied, or has failed.
    pub fn append(&self, record: Record, done: Completion) {
        let len = record.encoded_len() as u64;
        if len > self.max_record_len {
            done.complete(Err(AppendError::TooLarge {
                len,
                max: self.max_record_len,
            }));
            return;
        }
        // A closed journal hands the message back; dropping it completes `done` with Closed.
        let _ = self.tx.send(Msg::Append(record, done));
    }

    /// [`Journal::append`] as a future.
    pub async fn append_durable(&self, record: Record) -> Result<(), AppendError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.append(
            record,
            Completion::new(move |result| {
                let _ = tx.send(result);
            }),
        );
        rx.await.unwrap_or(Err(AppendError::Closed))
    }

    /// Everything before this position is durable and applied.
    pub fn applied_position(&self) -> Position {
        *self
            .shared
            .applied
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Removes segments wholly before `position` (a checkpoint). Returns how many went.
    pub fn remove_segments_before(&self, position: Position) -> Result<usize, JournalError> {
        segment::remove_before(&self.dir, position.segment)
            .map_err(|e| JournalError::io("removing old segments", e))
    }

    /// The write + fdatasync time of each group commit.
    pub fn fsync_latency(&self) -> &crate::metrics::FsyncLatency {
        &self.shared.fsync_latency
    }

    pub fn stats(&self) -> JournalStats {
        let s = &self.shared;
        JournalStats {
            fsyncs: s.fsyncs.load(Ordering::Relaxed),
            records: s.records.load(Ordering::Relaxed),
            bytes: s.bytes.load(Ordering::Relaxed),
            segments_created: s.segments_created.load(Ordering::Relaxed),
        }
    }

    /// Stops after the batch in progress; appends still queued complete with `Closed`. Returns
    /// once both threads have ended. Idempotent.
    pub fn close(&self) {
        let _ = self.tx.send(Msg::Stop);
        let threads =
            std::mem::take(&mut *self.threads.lock().unwrap_or_else(PoisonError::into_inner));
        for thread in threads {
            if thread.join().is_err() {
                tracing::error!("a journal thread panicked");
            }
        }
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        self.close();
    }
}

struct Writer {
    rx: Receiver<Msg>,
    durable_tx: Sender<DurableBatch>,
    shared: Arc<Shared>,
    dir: PathBuf,
    config: JournalConfig,
    file: File,
    position: Position,
    buf: Vec<u8>,
}

impl Writer {
    fn run(mut self) {
        let wait = self.config.max_group_wait();
        let mut stopping = false;
        while !stopping {
            let Ok(Msg::Append(record, done)) = self.rx.recv() else {
                break;
            };
            self.buf.clear();
            let mut records = Vec::new();
            let mut completions = Vec::new();
            record.encode(&mut self.buf);
            records.push(record);
            completions.push(done);
            let deadline = Instant::now() + wait;
            while records.len() < self.config.max_batch_records
                && self.buf.len() < self.config.max_batch_bytes
            {
                match self.next_within(deadline) {
                    Next::Msg(Msg::Append(record, done)) => {
                        record.encode(&mut self.buf);
                        records.push(record);
                        completions.push(done);
                    }
                    Next::Msg(Msg::Stop) | Next::Closed => {
                        stopping = true;
                        break;
                    }
                    Next::Timeout => break,
                }
            }
            match self.write(records.len()) {
                Ok(end) => {
                    let batch = DurableBatch {
                        records,
                        completions,
                        end,
                    };
                    if self.durable_tx.send(batch).is_err() {
                        break;
                    }
                }
                Err(e) => {
                    // After a failed write or fsync nothing about the file can be trusted
                    // (a retried fsync may "succeed" on lost pages): fail and stop.
                    tracing::error!(error = %e, segment = self.position.segment, "journal write failed; journal stopped");
                    let e = AppendError::Io(Arc::new(e));
                    for done in completions {
                        done.complete(Err(e.clone()));
                    }
                    break;
                }
            }
        }
        // Appends still queued are dropped here, which completes them with `Closed`.
    }

    fn next_within(&self, deadline: Instant) -> Next {
        match self.rx.try_recv() {
            Ok(msg) => return Next::Msg(msg),
            Err(TryRecvError::Disconnected) => return Next::Closed,
            Err(TryRecvError::Empty) => {}
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left == Duration::ZERO {
            return Next::Timeout;
        }
        match self.rx.recv_timeout(left) {
            Ok(msg) => Next::Msg(msg),
            Err(RecvTimeoutError::Timeout) => Next::Timeout,
            Err(RecvTimeoutError::Disconnected) => Next::Closed,
        }
    }

    /// Writes the buffered batch and fdatasyncs it; returns the position just past it.
    fn write(&mut self, records: usize) -> std::io::Result<Position> {
        let len = self.buf.len() as u64;
        if self.position.offset + len > self.config.segment_size {
            self.roll()?;
        }
        let started = Instant::now();
        self.file.write_all_at(&self.buf, self.position.offset)?;
        self.file.sync_data()?;
        self.position.offset += len;
        let s = &self.shared;
        s.fsync_latency.0.observe(started.elapsed().as_secs_f64());
        s.fsyncs.fetch_add(1, Ordering::Relaxed);
        s.bytes.fetch_add(len, Ordering::Relaxed);
        s.records.fetch_add(records as u64, Ordering::Relaxed);
        Ok(self.position)
    }

    /// Continues in a new segment. The current one is complete: every batch in it is durable.
    fn roll(&mut self) -> std::io::Result<()> {
        let next = self.position.segment + 1;
        self.file = segment::create(&self.dir, next, self.config.segment_size)?;
        self.position = Position {
            segment: next,
            offset: 0,
        };
        self.shared.segments_created.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

enum Next {
    Msg(Msg),
    Timeout,
    Closed,
}

/// Applies durable batches in journal order. After one failure every later batch fails too:
/// the applied position must never pass a record that storage does not have.
fn apply_loop(rx: Receiver<DurableBatch>, mut applier: Applier, shared: &Shared) {
    let mut failure: Option<AppendError> = None;
    for batch in rx {
        let result = match &failure {
            Some(e) => Err(e.clone()),
            None => applier(&batch.records).map_err(|e| AppendError::Apply(Arc::from(e))),
        };
        match &result {
            Ok(()) => {
                *shared
                    .applied
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner) = batch.end;
            }
            Err(e) if failure.is_none() => {
                tracing::error!(error = %e, "applying journaled records failed; journal stopped applying");
                failure = Some(e.clone());
            }
            Err(_) => {}
        }
        for done in batch.completions {
            done.complete(result.clone());
        }
    }
}
