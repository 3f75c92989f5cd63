//! The managed ledger: a topic's storage, as Pulsar's `ManagedLedgerImpl`. A topic is an ordered
//! list of ledgers on bookies (written through the ledger client) recorded in the metadata
//! service, plus one durable cursor per subscription.
//!
//! - [`ManagedLedger::open`] takes the topic over: it recovers (fences and closes) the last ledger
//!   of the previous owner and starts a new ledger (see `open`).
//! - [`ManagedLedger::append`] is pipelined and ordered: the `appender` task writes each entry to
//!   the current ledger and resolves the futures in call order once `Qa` bookies have it; it rolls
//!   ledgers over by entries, size and age, and after a write failure re-writes the unconfirmed
//!   appends, in order, to a new ledger.
//! - Reads come from the entry `cache` (recent appends) or the bookies (`read`).
//! - A [`ManagedCursor`] writes the acknowledgement state its holder (a subscription) owns and
//!   hands it; the managed ledger keeps a cursor's state only while nobody holds it
//!   (`stored_cursor` is how it is stored). The background task (`trim`) deletes the ledgers
//!   every cursor has consumed — as persisted — and retention does not keep.
//! - Losing ownership (a fenced ledger, a lost compare-and-set) turns every write into
//!   [`MlError::Fenced`].

mod appender;
mod cache;
mod config;
mod cursor;
mod error;
mod info;
mod ledgers;
mod offload;
mod offload_status;
mod open;
mod read;
mod read_ahead;
mod shared;
mod stored_cursor;
mod trim;

use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use magnetar_bookie::ledger::LedgerClient;
use magnetar_metadata::Expected;
use tokio::sync::{oneshot, watch};

pub use cache::CacheBudget;
pub use config::{ManagedLedgerConfig, OffloadPolicy, OwnershipGuard, Retention};
pub use cursor::{CursorStats, IdleCursorStats, InitialPosition, ManagedCursor};
pub use error::MlError;
pub use info::{LedgerRecord, MlInfo, OffloadContext};
pub use offload_status::{OffloadProgress, OffloadStatus};

use crate::cursor::Cursor;
use crate::position::{LedgerLayout, Position};
use shared::{Command, CursorCore, Shared, lock};

#[derive(Debug)]
struct Handle {
    shared: Arc<Shared>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.shared.cancel.cancel();
        shared::lock(&self.shared.on_fenced).take();
    }
}

/// A topic's storage; cheap to clone. Dropping the last clone stops its tasks (without
/// flushing: call [`ManagedLedger::close`] for that).
#[derive(Debug, Clone)]
pub struct ManagedLedger {
    handle: Arc<Handle>,
}

/// Figures for stats and metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MlStats {
    pub entries: u64,
    pub size_bytes: u64,
    pub ledgers: usize,
    pub current_ledger: i64,
    pub cache_entries: usize,
    pub cache_bytes: usize,
    pub cache_hits: u64,
    pub cache_misses: u64,
    /// Ledger writes that failed, each followed by a rollover.
    pub write_failures: u64,
}

impl ManagedLedger {
    /// Opens (or creates) the managed ledger `name` — the topic's persistent name path
    /// `tenant/ns/persistent/topic`, stored at `/managed-ledgers/{name}` — taking the topic over
    /// from any previous owner.
    pub async fn open(
        name: &str,
        ledgers: LedgerClient,
        config: ManagedLedgerConfig,
    ) -> Result<ManagedLedger, MlError> {
        let opened = open::open(name, ledgers, config).await?;
        let shared = opened.shared;
        shared
            .tasks
            .spawn(opened.appender.run(shared.cancel.child_token()));
        trim::start(&shared);
        if shared.config.offloader.is_some() {
            shared
                .tasks
                .spawn(offload::run(shared.clone(), shared.cancel.child_token()));
        }
        Ok(ManagedLedger {
            handle: Arc::new(Handle { shared }),
        })
    }

    fn shared(&self) -> &Arc<Shared> {
        &self.handle.shared
    }

    /// Calls `callback` once if this managed ledger is fenced (another broker took the topic;
    /// the topic should be unloaded): at once if it already is, never once it is closed.
    pub fn on_fenced(&self, callback: impl FnOnce() + Send + 'static) {
        let shared = self.shared();
        let mut slot = shared::lock(&shared.on_fenced);
        match shared.status() {
            shared::Status::Open => *slot = Some(shared::OnFenced(Box::new(callback))),
            shared::Status::Fenced => {
                drop(slot);
                callback();
            }
            shared::Status::Closed => {}
        }
    }

    pub fn name(&self) -> &str {
        &self.shared().name
    }

    /// The ledger client it writes with (compaction writes its own ledgers through it).
    pub fn ledger_client(&self) -> &LedgerClient {
        &self.shared().ledgers
    }

    /// Its configuration (ensemble and quorums of new ledgers among it).
    pub fn config(&self) -> &ManagedLedgerConfig {
        &self.shared().config
    }

    /// Whether another broker took the topic (every write now fails `Fenced`).
    pub fn is_fenced(&self) -> bool {
        self.shared().status() == shared::Status::Fenced
    }

    /// Appends an entry. Pipelined and ordered: the futures resolve in call order, each with
    /// its entry's position once `Qa` bookies have it durably.
    pub fn append(
        &self,
        entry: Bytes,
    ) -> impl Future<Output = Result<Position, MlError>> + Send + 'static {
        let (done, rx) = oneshot::channel();
        let sent = self.shared().check_open().and_then(|()| {
            self.shared()
                .commands
                .unbounded_send(Command::Append { data: entry, done })
                .map_err(|_| MlError::Closed)
        });
        async move {
            sent?;
            rx.await.unwrap_or(Err(MlError::Closed))
        }
    }

    pub fn last_confirmed(&self) -> Option<Position> {
        self.shared().lock().last_confirmed
    }

    /// A snapshot of the ledgers and their confirmed entry counts.
    pub fn layout(&self) -> LedgerLayout {
        self.shared().lock().layout.clone()
    }

    /// The ledger list as recorded in metadata (the open ledger's counts are 0 there).
    pub fn info(&self) -> MlInfo {
        self.shared().lock().info.clone()
    }

    /// A property recorded with the ledger list (Java's managed ledger properties).
    pub fn property(&self, key: &str) -> Option<String> {
        self.shared().lock().info.properties.get(key).cloned()
    }

    /// Records a property with the ledger list (compare-and-set, as every ledger list change).
    pub async fn set_property(&self, key: &str, value: String) -> Result<(), MlError> {
        let key = key.to_string();
        self.shared()
            .update_info(
                |info| {
                    info.properties.insert(key, value);
                },
                |_| {},
            )
            .await
    }

    pub fn entries(&self) -> u64 {
        let state = self.shared().lock();
        state
            .layout
            .ledgers()
            .iter()
            .map(|l| l.entries as u64)
            .sum()
    }

    pub fn size_bytes(&self) -> u64 {
        let state = self.shared().lock();
        state.info.ledgers.iter().map(|l| l.size).sum::<u64>() + state.current_size
    }

    pub fn stats(&self) -> MlStats {
        let (entries, size_bytes) = (self.entries(), self.size_bytes());
        let (ledgers, current_ledger) = {
            let state = self.shared().lock();
            (state.layout.ledgers().len(), state.layout.open_ledger_id())
        };
        let cache = lock(&self.shared().cache);
        let (cache_hits, cache_misses) = cache.hit_counts();
        MlStats {
            entries,
            size_bytes,
            ledgers,
            current_ledger,
            cache_entries: cache.len(),
            cache_bytes: cache.size_bytes(),
            cache_hits,
            cache_misses,
            write_failures: self
                .shared()
                .write_failures
                .load(std::sync::atomic::Ordering::Relaxed),
        }
    }

    /// Changes how long and how much consumed data is kept (the namespace's retention policy
    /// changed while the topic is loaded); true if it changed.
    pub fn set_retention(&self, retention: Retention) -> bool {
        let mut current = lock(&self.shared().retention);
        let changed = *current != retention;
        *current = retention;
        changed
    }

    /// The lowest persisted mark-delete position of the cursors: what the backlog counts from
    /// (None without cursors).
    pub fn slowest_persisted(&self) -> Option<Position> {
        self.shared()
            .cursor_cores()
            .iter()
            .map(|core| lock(&core.record).persisted_mark_delete)
            .min()
    }

    /// Bytes stored after `from`, estimated per ledger from its recorded size (entries of a
    /// ledger counted as equally large), as Pulsar estimates a backlog.
    pub fn bytes_after(&self, from: Position) -> u64 {
        let state = self.shared().lock();
        let mut total = 0u64;
        for (ledger, size) in ledger_sizes(&state) {
            if ledger.ledger_id < from.ledger_id || ledger.entries == 0 {
                continue;
            }
            let after = if ledger.ledger_id == from.ledger_id {
                (ledger.entries - 1 - from.entry_id).clamp(0, ledger.entries)
            } else {
                ledger.entries
            };
            total += (u128::from(size) * after as u128 / ledger.entries as u128) as u64;
        }
        total
    }

    /// The position through which entries must be dropped so that at most `keep` bytes remain
    /// after it (backlog eviction); None when everything already fits.
    pub fn position_keeping(&self, keep: u64) -> Option<Position> {
        let state = self.shared().lock();
        let mut kept = 0u64;
        for (ledger, size) in ledger_sizes(&state).into_iter().rev() {
            if ledger.entries == 0 {
                continue;
            }
            if kept + size <= keep {
                kept += size;
                continue;
            }
            let per_entry = (size / ledger.entries as u64).max(1);
            let room = ((keep - kept) / per_entry) as i64;
            let through = ledger.entries - 1 - room.min(ledger.entries);
            return Some(if through >= 0 {
                Position::new(ledger.ledger_id, through)
            } else {
                state.layout.prev(Position::new(ledger.ledger_id, 0))
            });
        }
        None
    }

    /// Acknowledges everything through `through` on a cursor nobody holds (backlog eviction);
    /// true if it moved. A held cursor is its holder's to move.
    pub fn skip_idle_cursor(&self, name: &str, through: Position) -> bool {
        let Some(core) = lock(&self.shared().cursors).get(name).cloned() else {
            return false;
        };
        let layout = self.layout();
        let mut record = lock(&core.record);
        let Some(cursor) = record.idle.as_mut() else {
            return false;
        };
        let moved = cursor
            .ack_cumulative(&layout, through, None)
            .is_ok_and(|effect| effect.mark_delete_moved);
        if moved {
            record.idle_unwritten = true;
            trim::wake(self.shared());
        }
        moved
    }

    /// Changes when closed ledgers go to tiered storage (the namespace's offload policies
    /// changed while the topic is loaded); true if it changed.
    pub fn set_offload_policy(&self, policy: OffloadPolicy) -> bool {
        let mut current = lock(&self.shared().offload_policy);
        let changed = *current != policy;
        *current = policy;
        drop(current);
        if changed {
            self.shared().offload_wake.notify_one();
        }
        changed
    }

    /// Asks for every closed ledger before `until`'s ledger to be offloaded, in the background
    /// (`PUT …/offload`); false if an offload is already running. An error without an offload
    /// driver.
    pub fn request_offload(&self, until: Position) -> Result<bool, MlError> {
        offload::request(self.shared(), until)
    }

    /// Offloads every closed ledger before `until`'s ledger now, returning once done.
    pub async fn offload_until(&self, until: Position) -> Result<(), MlError> {
        let ids = {
            let state = self.shared().lock();
            offload::before(&state.info.ledgers, state.layout.open_ledger_id(), until)
        };
        offload::offload(self.shared(), &ids).await
    }

    /// Runs one round of the offload task now: the policy's offloads, then the bookie
    /// deletions whose lag has passed.
    pub async fn offload_round(&self) -> Result<(), MlError> {
        offload::round(self.shared()).await
    }

    /// The last offload's outcome (`GET …/offload`).
    pub fn offload_status(&self) -> OffloadStatus {
        lock(&self.shared().offload).status.clone()
    }

    /// Bytes of the ledgers in tiered storage.
    pub fn offloaded_size(&self) -> u64 {
        let state = self.shared().lock();
        state
            .info
            .ledgers
            .iter()
            .filter(|l| l.offloaded())
            .map(|l| l.size)
            .sum()
    }

    /// Up to `max` entries from `from` (inclusive) in order, stopping at the last confirmed
    /// entry; positions that do not exist (a trimmed or empty ledger) are skipped over.
    pub async fn read(
        &self,
        from: Position,
        max: usize,
    ) -> Result<Vec<(Position, Bytes)>, MlError> {
        read::read(self.shared(), from, max).await
    }

    /// The entries at `positions` (redeliveries), in the order given; positions that name no
    /// confirmed entry are left out.
    pub async fn read_positions(
        &self,
        positions: &[Position],
    ) -> Result<Vec<(Position, Bytes)>, MlError> {
        read::read_positions(self.shared(), positions).await
    }

    /// Changes whenever entries are confirmed; the value is the last confirmed position.
    pub fn watch_appends(&self) -> watch::Receiver<Option<Position>> {
        self.shared().appended.subscribe()
    }

    /// Takes the cursor `name` and its acknowledgement state: as persisted (or as its last
    /// holder released it), else created at `initial` and persisted at once. The caller owns the
    /// state until it [`release`](ManagedCursor::release)s it; a cursor already held is
    /// `CursorInUse`.
    pub async fn open_cursor(
        &self,
        name: &str,
        initial: InitialPosition,
    ) -> Result<(ManagedCursor, Cursor), MlError> {
        let shared = self.shared();
        let _serial = shared.cursor_lock.lock().await;
        if let Some(core) = lock(&shared.cursors).get(name).cloned() {
            let state = lock(&core.record).idle.take();
            let state = state.ok_or_else(|| MlError::CursorInUse(name.to_string()))?;
            let managed = ManagedCursor {
                core,
                shared: shared.clone(),
            };
            return Ok((managed, state));
        }
        shared.check_open()?;
        let cursor = {
            let state = shared.lock();
            match initial {
                InitialPosition::Latest => Cursor::latest(&state.layout),
                InitialPosition::Earliest => Cursor::earliest(&state.layout),
            }
        };
        let core = Arc::new(CursorCore::new(name.to_string(), cursor.clone(), false));
        stored_cursor::write(shared, &core, &cursor).await?;
        lock(&shared.cursors).insert(name.to_string(), core.clone());
        tracing::info!(managed_ledger = %shared.name, cursor = name, ?initial, "cursor created");
        let managed = ManagedCursor {
            core,
            shared: shared.clone(),
        };
        Ok((managed, cursor))
    }

    /// Removes a cursor and its persisted state; ledgers it alone held become trimmable.
    pub async fn delete_cursor(&self, name: &str) -> Result<(), MlError> {
        let shared = self.shared();
        let _serial = shared.cursor_lock.lock().await;
        let core = lock(&shared.cursors).remove(name);
        let _persisting = match &core {
            Some(core) => {
                lock(&core.record).deleted = true;
                Some(core.persist_lock.lock().await)
            }
            None => None,
        };
        let key = info::cursor_key(&shared.name, name);
        shared
            .owned_txn(|txn| txn.delete(key.clone(), Expected::Any))
            .await?;
        trim::wake(shared);
        Ok(())
    }

    pub fn cursor_names(&self) -> Vec<String> {
        lock(&self.shared().cursors).keys().cloned().collect()
    }

    /// A cursor by name, without creating or taking it (its stats).
    pub fn cursor(&self, name: &str) -> Option<ManagedCursor> {
        let shared = self.shared();
        let core = lock(&shared.cursors).get(name).cloned()?;
        Some(ManagedCursor {
            core,
            shared: shared.clone(),
        })
    }

    /// Rolls over to a new ledger now, whatever the rollover rules say.
    pub async fn roll_over(&self) -> Result<(), MlError> {
        let (done, rx) = oneshot::channel();
        self.shared()
            .commands
            .unbounded_send(Command::Rollover { done })
            .map_err(|_| MlError::Closed)?;
        rx.await.unwrap_or(Err(MlError::Closed))
    }

    /// Trims consumed ledgers now (the background task does this every
    /// `cursor_persist_interval`); returns the ledgers deleted.
    pub async fn trim(&self) -> Result<Vec<u64>, MlError> {
        trim::trim(self.shared()).await
    }

    /// Finishes the appends in flight, seals the current ledger, writes idle cursors whose
    /// holders could not, and stops the tasks. Appends after this fail with `Closed`. Holders
    /// write their own cursors before they let go (the topic closes its subscriptions first).
    pub async fn close(&self) -> Result<(), MlError> {
        let shared = self.shared();
        let (done, rx) = oneshot::channel();
        let sealed = match shared.commands.unbounded_send(Command::Close { done }) {
            Ok(()) => rx.await.unwrap_or(Ok(())),
            Err(_) => Ok(()), // already closed
        };
        let flushed = match shared.status() {
            shared::Status::Fenced => Ok(()),
            _ => stored_cursor::write_idle(shared).await,
        };
        shared.cancel.cancel();
        shared.tasks.close();
        shared.tasks.wait().await;
        shared.set_closed();
        lock(&shared.cache).clear();
        lock(&shared.read_ahead).clear();
        // At debug, as "opened": the broker logs "topic unloaded".
        tracing::debug!(managed_ledger = %shared.name, "managed ledger closed");
        sealed.and(flushed)
    }

    /// Deletes the topic's storage: closes, then removes the cursors and the ledger list from
    /// metadata and the ledgers from the bookies. Refused (`Fenced`) if another broker owns it.
    pub async fn delete(&self) -> Result<(), MlError> {
        self.close().await?;
        let shared = self.shared();
        if shared.status() == shared::Status::Fenced {
            return Err(MlError::Fenced);
        }
        // A cursor still held (a subscription or the compactor closing late) writes nothing
        // more, as after `delete_cursor`: a write between the listing and the list's delete
        // would leave a key that the topic's next incarnation loads as a phantom cursor.
        let cores: Vec<_> = lock(&shared.cursors).values().cloned().collect();
        let mut _persisting = Vec::with_capacity(cores.len());
        for core in &cores {
            lock(&core.record).deleted = true;
            _persisting.push(core.persist_lock.lock().await);
        }
        let metadata = shared.metadata();
        for record in metadata.list(&info::cursors_prefix(&shared.name)).await? {
            let key = record.key;
            shared
                .owned_txn(|txn| txn.delete(key.clone(), Expected::Any))
                .await?;
        }
        let ledgers = shared.lock().info.ledgers.clone();
        shared
            .owned_txn(|txn| txn.delete(shared.key.clone(), Expected::Any))
            .await?;
        for ledger in ledgers {
            ledgers::delete_ledger(shared, &ledger).await;
        }
        lock(&shared.cursors).clear();
        tracing::info!(managed_ledger = %shared.name, "managed ledger deleted");
        Ok(())
    }
}

/// Each ledger of the layout with its size in bytes: recorded for closed ledgers, counted so
/// far for the open one.
fn ledger_sizes(state: &shared::State) -> Vec<(crate::position::LedgerInfo, u64)> {
    let open = state.layout.open_ledger_id();
    state
        .layout
        .ledgers()
        .iter()
        .map(|l| {
            let size = if l.ledger_id == open {
                state.current_size
            } else {
                state
                    .info
                    .ledgers
                    .iter()
                    .find(|r| r.ledger_id as i64 == l.ledger_id)
                    .map_or(0, |r| r.size)
            };
            (*l, size)
        })
        .collect()
}
