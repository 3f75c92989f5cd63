//! State shared by a managed ledger's handles, its cursors and its two tasks (the appender and
//! the background trimmer).
//!
//! Locks, always taken in this order and never held across an await: `cursors` (the map only),
//! `state`, one cursor's state, `cache`, `readers`. `meta_lock` (async) serializes the
//! read-modify-CAS cycles of the ledger list between the appender and the trimmer.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use bytes::Bytes;
use futures::channel::mpsc;
use magnetar_bookie::ledger::{LedgerClient, LedgerReader, LedgerWriter};
use magnetar_metadata::{Expected, MetadataClient, MetadataError, Txn};
use tokio::sync::{Notify, oneshot, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::cache::EntryCache;
use super::config::{OffloadPolicy, Retention};
use super::info::{self, MlInfo};
use super::offload_status::OffloadState;
use super::read_ahead::ReadAhead;
use super::{ManagedLedgerConfig, MlError};
use crate::cursor::Cursor;
use crate::position::{LedgerLayout, Position};

/// Ledgers written by this instance kept for reads (the open one and the last closed ones).
const RECENT_WRITERS: usize = 3;
/// Closed ledgers kept open for catch-up reads.
const MAX_READERS: usize = 64;

pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(super) enum Status {
    Open = 0,
    Fenced = 1,
    Closed = 2,
}

/// What [`Shared::fence`] calls.
pub struct OnFenced(pub Box<dyn FnOnce() + Send>);

impl std::fmt::Debug for OnFenced {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OnFenced")
    }
}

/// What the appender task is asked to do, in call order. The channel is `futures`' unbounded
/// one: tokio's allocates a block of 32 slots and a cache-padded header (about 800 bytes) when
/// created, and every loaded topic has one.
#[derive(Debug)]
pub(super) enum Command {
    Append {
        data: Bytes,
        done: oneshot::Sender<Result<Position, MlError>>,
    },
    /// Roll over to a new ledger now (admin, tests), ignoring the rollover rules.
    Rollover {
        done: oneshot::Sender<Result<(), MlError>>,
    },
    /// Finish what is in flight, seal the current ledger, record it; take no more appends.
    Close {
        done: oneshot::Sender<Result<(), MlError>>,
    },
}

#[derive(Debug)]
pub(super) struct State {
    pub info: MlInfo,
    /// Version of `/managed-ledgers/{name}` that `info` was written at.
    pub version: u64,
    /// Confirmed entries only: the open ledger's count grows as appends complete.
    pub layout: LedgerLayout,
    pub last_confirmed: Option<Position>,
    /// Bytes confirmed in the open ledger.
    pub current_size: u64,
    pub writers: VecDeque<LedgerWriter>,
}

impl State {
    pub fn remember_writer(&mut self, writer: LedgerWriter) {
        self.writers.push_back(writer);
        while self.writers.len() > RECENT_WRITERS {
            self.writers.pop_front();
        }
    }
}

/// What the managed ledger keeps of one cursor. The acknowledgement state has one owner at a
/// time: the holder that opened the cursor (a subscription), or — while nobody holds it — this
/// record (`idle`). The managed ledger writes the snapshots its holder hands it and remembers
/// where the last one left the mark-delete position: that, not the holder's live state, is what
/// trimming trusts, so a ledger is never deleted ahead of what a restart would restore.
#[derive(Debug)]
pub(super) struct CursorCore {
    pub name: String,
    pub record: Mutex<CursorRecord>,
    /// One write of this cursor at a time, so writes land in snapshot order.
    pub persist_lock: tokio::sync::Mutex<()>,
}

#[derive(Debug)]
pub(super) struct CursorRecord {
    /// The state while no holder has it: restored at open, handed back when its holder stops.
    pub idle: Option<Cursor>,
    /// `idle` holds changes its holder could not write; the background task retries them.
    pub idle_unwritten: bool,
    pub deleted: bool,
    pub persisted_mark_delete: Position,
    pub persists: u64,
    pub truncated_persists: u64,
    pub last_dropped_ranges: u64,
    pub last_dropped_batch_acks: u64,
    pub last_truncation_warning: Option<Instant>,
}

impl CursorCore {
    /// A cursor whose state `cursor` is persisted as it stands; `idle` when nobody holds it yet.
    pub fn new(name: String, cursor: Cursor, idle: bool) -> CursorCore {
        let persisted_mark_delete = cursor.mark_delete();
        CursorCore {
            name,
            record: Mutex::new(CursorRecord {
                idle: idle.then_some(cursor),
                idle_unwritten: false,
                deleted: false,
                persisted_mark_delete,
                persists: 0,
                truncated_persists: 0,
                last_dropped_ranges: 0,
                last_dropped_batch_acks: 0,
                last_truncation_warning: None,
            }),
            persist_lock: tokio::sync::Mutex::new(()),
        }
    }
}

#[derive(Debug)]
pub(super) struct Shared {
    pub name: String,
    pub key: String,
    pub config: ManagedLedgerConfig,
    pub ledgers: LedgerClient,
    status: AtomicU8,
    pub state: Mutex<State>,
    pub meta_lock: tokio::sync::Mutex<()>,
    pub cache: Mutex<EntryCache>,
    pub readers: Mutex<HashMap<u64, LedgerReader>>,
    pub commands: mpsc::UnboundedSender<Command>,
    pub appended: watch::Sender<Option<Position>>,
    pub cursors: Mutex<BTreeMap<String, Arc<CursorCore>>>,
    /// Serializes cursor creation and deletion.
    pub cursor_lock: tokio::sync::Mutex<()>,
    /// Wakes the trim task before its next tick (see `trim::wake`).
    pub wake: Notify,
    /// Whether the trim task runs: it runs only while there is something to trim or an idle
    /// cursor to write, so that an idle topic keeps neither a task nor a timer.
    trim_running: AtomicBool,
    /// Stops the managed ledger's tasks.
    pub cancel: CancellationToken,
    /// The managed ledger's tasks (closing waits for them).
    pub tasks: TaskTracker,
    /// Ledger writes that failed (each followed by a rollover).
    pub write_failures: AtomicU64,
    /// Called once when the managed ledger is fenced (a callback rather than a task waiting
    /// for it: every loaded topic has one).
    pub on_fenced: Mutex<Option<OnFenced>>,
    /// Retention now (the namespace policy may change while the topic is loaded).
    pub retention: Mutex<Retention>,
    /// The offload policy now (likewise).
    pub offload_policy: Mutex<OffloadPolicy>,
    /// The last offload's outcome, and the position an admin asked to offload up to.
    pub offload: Mutex<OffloadState>,
    /// Wakes the offload task before its next tick.
    pub offload_wake: Notify,
    /// Held while ledgers are copied to tiered storage or deleted from the bookies after
    /// their lag: the task's rounds and an admin's or a test's explicit ones take turns (two
    /// at once copied the same ledger twice or deleted it twice).
    pub offload_turn: tokio::sync::Mutex<()>,
    /// Entries read ahead for sequential readers (from the bookies or tiered storage).
    pub read_ahead: Mutex<ReadAhead>,
}

impl Shared {
    pub fn new(
        name: &str,
        config: ManagedLedgerConfig,
        ledgers: LedgerClient,
        state: State,
        commands: mpsc::UnboundedSender<Command>,
    ) -> Shared {
        let last = state.last_confirmed;
        let retention = config.retention();
        let offload_policy = config.offload;
        Shared {
            name: name.to_string(),
            key: info::ml_key(name),
            cache: Mutex::new(EntryCache::new(
                config.cache_bytes,
                config.cache_budget.clone(),
            )),
            config,
            ledgers,
            status: AtomicU8::new(Status::Open as u8),
            state: Mutex::new(state),
            meta_lock: tokio::sync::Mutex::new(()),
            readers: Mutex::default(),
            commands,
            appended: watch::Sender::new(last),
            cursors: Mutex::default(),
            cursor_lock: tokio::sync::Mutex::new(()),
            wake: Notify::new(),
            trim_running: AtomicBool::new(false),
            cancel: CancellationToken::new(),
            tasks: TaskTracker::new(),
            write_failures: AtomicU64::new(0),
            on_fenced: Mutex::new(None),
            retention: Mutex::new(retention),
            offload_policy: Mutex::new(offload_policy),
            offload: Mutex::default(),
            offload_wake: Notify::new(),
            offload_turn: tokio::sync::Mutex::new(()),
            read_ahead: Mutex::default(),
        }
    }

    pub fn metadata(&self) -> &MetadataClient {
        self.ledgers.metadata()
    }

    pub fn lock(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    pub fn status(&self) -> Status {
        match self.status.load(Ordering::Acquire) {
            0 => Status::Open,
            1 => Status::Fenced,
            _ => Status::Closed,
        }
    }

    pub fn check_open(&self) -> Result<(), MlError> {
        match self.status() {
            Status::Open => Ok(()),
            Status::Fenced => Err(MlError::Fenced),
            Status::Closed => Err(MlError::Closed),
        }
    }

    /// Marks the trim task running; false if it already was.
    pub fn begin_trim(&self) -> bool {
        !self.trim_running.swap(true, Ordering::AcqRel)
    }

    /// The trim task found nothing to do: it may stop, unless work appeared meanwhile and no
    /// other task was started for it. True if the caller should go on running.
    pub fn trim_may_stop(&self, has_work: impl Fn() -> bool) -> bool {
        self.trim_running.store(false, Ordering::Release);
        // A wake between the caller's check and the store saw the task running and only
        // notified: look again, and go on unless that wake started a task of its own.
        has_work() && !self.trim_running.swap(true, Ordering::AcqRel)
    }

    /// Another broker took the topic: stop writing for good.
    pub fn fence(&self) {
        if self
            .status
            .compare_exchange(
                Status::Open as u8,
                Status::Fenced as u8,
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_ok()
        {
            tracing::warn!(managed_ledger = %self.name, "fenced: another broker owns the topic now");
        }
        let callback = lock(&self.on_fenced).take();
        if let Some(OnFenced(callback)) = callback {
            callback();
        }
    }

    pub fn set_closed(&self) {
        let _ = self.status.compare_exchange(
            Status::Open as u8,
            Status::Closed as u8,
            Ordering::AcqRel,
            Ordering::Acquire,
        );
        lock(&self.on_fenced).take();
    }

    /// Changes the ledger list by compare-and-set: `edit` the latest list, write it, then
    /// `apply` the matching in-memory change under the same lock that records the new version.
    pub async fn update_info(
        &self,
        edit: impl FnOnce(&mut MlInfo),
        apply: impl FnOnce(&mut State),
    ) -> Result<(), MlError> {
        let _guard = self.meta_lock.lock().await;
        self.check_not_fenced()?;
        let (mut info, version) = {
            let state = self.lock();
            (state.info.clone(), state.version)
        };
        edit(&mut info);
        let value = info.encode();
        match info::cas(
            self.metadata(),
            &self.key,
            value,
            Expected::Version(version),
            self.config.ownership.as_ref(),
        )
        .await
        {
            Ok(version) => {
                let mut state = self.lock();
                state.info = info;
                state.version = version;
                apply(&mut state);
                Ok(())
            }
            Err(MlError::Fenced) => {
                self.fence();
                Err(MlError::Fenced)
            }
            Err(e) => Err(e),
        }
    }

    fn check_not_fenced(&self) -> Result<(), MlError> {
        match self.status() {
            Status::Fenced => Err(MlError::Fenced),
            _ => Ok(()),
        }
    }

    /// Runs a transaction that applies only while this instance still owns the topic: the
    /// ledger list is at the version we wrote and, in a broker, the bundle's ownership record
    /// is still held by our session.
    pub async fn owned_txn(&self, build: impl Fn(Txn) -> Txn) -> Result<(), MlError> {
        let ownership = self.config.ownership.as_ref();
        for _ in 0..5 {
            self.check_not_fenced()?;
            let version = self.lock().version;
            let txn = info::guarded(
                Txn::new().compare(self.key.clone(), Expected::Version(version)),
                ownership,
            );
            match self.metadata().txn(build(txn)).await {
                Ok(_) => return Ok(()),
                Err(MetadataError::BadVersion { key, .. })
                    if ownership.is_some_and(|g| g.key == key) =>
                {
                    tracing::warn!(
                        managed_ledger = self.name,
                        ownership = key,
                        "the topic's ownership lapsed; fenced"
                    );
                    self.fence();
                    return Err(MlError::Fenced);
                }
                Err(MetadataError::BadVersion { key, .. }) if key == self.key => {
                    if self.lock().version != version {
                        continue; // our own list update raced with this write
                    }
                    self.fence();
                    return Err(MlError::Fenced);
                }
                Err(e) => return Err(MlError::Metadata(e)),
            }
        }
        Err(MlError::Metadata(MetadataError::Unavailable(
            "ledger list kept changing".into(),
        )))
    }

    pub fn cached_reader(&self, ledger_id: u64) -> Option<LedgerReader> {
        lock(&self.readers).get(&ledger_id).cloned()
    }

    pub fn keep_reader(&self, reader: LedgerReader) {
        let mut readers = lock(&self.readers);
        if readers.len() >= MAX_READERS
            && let Some(oldest) = readers.keys().min().copied()
        {
            readers.remove(&oldest);
        }
        readers.insert(reader.id(), reader);
    }

    /// Whether every cursor acknowledged (as persisted) everything through `position`
    /// (`(ledger, -1)`: everything before that ledger). True without cursors.
    pub fn caught_up_with(&self, position: Position) -> bool {
        let slowest = self
            .cursor_cores()
            .iter()
            .map(|core| lock(&core.record).persisted_mark_delete)
            .min();
        match slowest {
            None => true,
            Some(mark_delete) if mark_delete >= position => true,
            // Everything before the ledger: the first unacknowledged entry is in it or later.
            Some(mark_delete) => {
                position.entry_id < 0
                    && self.lock().layout.next(mark_delete).ledger_id >= position.ledger_id
            }
        }
    }

    pub fn cursor_cores(&self) -> Vec<Arc<CursorCore>> {
        lock(&self.cursors).values().cloned().collect()
    }
}
