//! The storage node's core, without networking: journal + ledger storage + fencing.
//!
//! Every change goes through the journal and reaches ledger storage only once durable, in journal
//! order (see [`crate::journal`]). Fencing is decided when a change is *queued*: a lock covers both
//! the fenced check of an add and the queueing of a fence, so an add the bookie accepted before a
//! fence is ahead of it in the journal, durable and readable by the time the fence is answered,
//! and every add queued after it is refused.

use std::collections::HashSet;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use bytes::Bytes;

use crate::config::BookieConfig;
use crate::error::{BookieError, OpError};
use crate::journal::{self, Completion, Journal, JournalConfig, JournalStats, Position, Record};
use crate::storage::{LedgerMeta, LedgerStorage, RocksStorage, StorageError, StoredEntry};

/// Records applied to storage per write during replay.
const REPLAY_BATCH: usize = 1024;

/// One add, as the bookie takes it.
#[derive(Debug, Clone)]
pub struct AddEntry {
    pub ledger_id: u64,
    pub entry_id: u64,
    pub last_add_confirmed: Option<u64>,
    pub data: Bytes,
    /// Re-replication by a recovering client: allowed on a fenced ledger.
    pub recovery: bool,
}

/// A running storage node.
#[derive(Debug)]
pub struct Bookie {
    journal: Journal,
    storage: Arc<dyn LedgerStorage>,
    /// Ledgers fenced (durably or with the fence queued); adds are checked against it.
    fenced: Mutex<HashSet<u64>>,
    read_only: AtomicBool,
    max_entry_size: usize,
    last_checkpoint: Mutex<Position>,
}

impl Bookie {
    /// Opens RocksDB in `ledger_dir`, replays the journal and starts it. Blocks on disk.
    pub fn open(config: &BookieConfig) -> Result<Bookie, BookieError> {
        config.validate()?;
        for dir in [&config.journal_dir, &config.ledger_dir] {
            std::fs::create_dir_all(dir).map_err(|e| BookieError::io("creating a data dir", e))?;
        }
        let storage = Arc::new(RocksStorage::open(&config.ledger_dir, &config.storage)?);
        Self::open_with(
            &config.journal_dir,
            &config.journal,
            storage,
            config.max_entry_size,
        )
    }

    /// Like [`Bookie::open`], over any ledger storage.
    pub fn open_with(
        journal_dir: &Path,
        journal_config: &JournalConfig,
        storage: Arc<dyn LedgerStorage>,
        max_entry_size: usize,
    ) -> Result<Bookie, BookieError> {
        let from = storage.checkpoint_position()?.unwrap_or_default();
        let mut fenced: HashSet<u64> = storage.fenced_ledgers()?.into_iter().collect();
        let mut batch = Vec::with_capacity(REPLAY_BATCH);
        let outcome = journal::replay(journal_dir, from, |record| {
            match &record {
                Record::Fence { ledger_id } => fenced.insert(*ledger_id),
                Record::DeleteLedger { ledger_id } => fenced.remove(ledger_id),
                Record::Entry { .. } => false,
            };
            batch.push(record);
            if batch.len() >= REPLAY_BATCH {
                storage.apply(&batch)?;
                batch.clear();
            }
            Ok::<(), StorageError>(())
        })?;
        storage.apply(&batch)?;
        tracing::info!(
            from = %from,
            records = outcome.records,
            truncated = outcome.truncated.is_some(),
            "journal replayed"
        );
        let next_segment = (outcome.last_segment.map_or(0, |s| s + 1)).max(from.segment + 1);
        let applier_storage = storage.clone();
        let journal = Journal::start(
            journal_dir,
            journal_config,
            next_segment,
            Box::new(move |records| Ok(applier_storage.apply(records)?)),
        )?;
        let bookie = Bookie {
            journal,
            storage,
            fenced: Mutex::new(fenced),
            read_only: AtomicBool::new(false),
            max_entry_size,
            last_checkpoint: Mutex::new(from),
        };
        // Make the replayed state durable so the replayed segments can go.
        bookie.checkpoint()?;
        Ok(bookie)
    }

    fn fenced(&self) -> MutexGuard<'_, HashSet<u64>> {
        self.fenced.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues an add; `done` runs once it is durable and readable, or refused, or failed.
    pub fn add_entry(
        &self,
        add: AddEntry,
        done: impl FnOnce(Result<(), OpError>) + Send + 'static,
    ) {
        if self.is_read_only() {
            return done(Err(OpError::ReadOnly));
        }
        if add.data.len() > self.max_entry_size {
            return done(Err(OpError::TooLarge {
                len: add.data.len(),
                max: self.max_entry_size,
            }));
        }
        let record = Record::Entry {
            ledger_id: add.ledger_id,
            entry_id: add.entry_id,
            last_add_confirmed: add.last_add_confirmed,
            data: add.data,
        };
        let fenced = self.fenced();
        if !add.recovery && fenced.contains(&add.ledger_id) {
            drop(fenced);
            return done(Err(OpError::Fenced {
                ledger_id: add.ledger_id,
            }));
        }
        let completion = Completion::new(move |result| done(result.map_err(OpError::from)));
        self.journal.append(record, completion);
    }

    /// Fences the ledger (creating its state if the bookie has none); returns its state once the
    /// fence is durable. Every add accepted before is then durable and readable.
    pub async fn fence(&self, ledger_id: u64) -> Result<(), OpError> {
        let durable = {
            let mut fenced = self.fenced();
            fenced.insert(ledger_id);
            self.append_locked(Record::Fence { ledger_id })
        };
        durable.await
    }

    /// Removes the ledger's entries and state once the deletion is durable.
    pub async fn delete_ledger(&self, ledger_id: u64) -> Result<(), OpError> {
        let durable = {
            let mut fenced = self.fenced();
            fenced.remove(&ledger_id);
            self.append_locked(Record::DeleteLedger { ledger_id })
        };
        durable.await
    }

    /// Queues `record` now (the caller holds the fence lock) and returns its durability.
    fn append_locked(
        &self,
        record: Record,
    ) -> impl std::future::Future<Output = Result<(), OpError>> + use<> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let completion = Completion::new(move |result| {
            let _ = tx.send(result);
        });
        self.journal.append(record, completion);
        async move {
            match rx.await {
                Ok(result) => result.map_err(OpError::from),
                Err(_) => Err(OpError::from(journal::AppendError::Closed)),
            }
        }
    }

    /// Reads one entry. Blocks on disk.
    pub fn read_entry(&self, ledger_id: u64, entry_id: u64) -> Result<StoredEntry, OpError> {
        match self.storage.read_entry(ledger_id, entry_id)? {
            Some(entry) => Ok(entry),
            None => match self.storage.ledger(ledger_id)? {
                Some(_) => Err(OpError::NoSuchEntry {
                    ledger_id,
                    entry_id,
                }),
                None => Err(OpError::NoSuchLedger { ledger_id }),
            },
        }
    }

    /// The ledger's fenced flag and last-add-confirmed. Blocks on disk.
    pub fn ledger(&self, ledger_id: u64) -> Result<LedgerMeta, OpError> {
        self.storage
            .ledger(ledger_id)?
            .ok_or(OpError::NoSuchLedger { ledger_id })
    }

    /// Ids of every ledger the bookie holds entries or state of, ascending. Blocks on disk.
    pub fn ledger_ids(&self) -> Result<Vec<u64>, OpError> {
        Ok(self.storage.list_ledgers()?)
    }

    /// Makes storage durable up to what has been applied and drops journal segments before it.
    /// Blocks on disk (a RocksDB flush). Returns the checkpoint position.
    pub fn checkpoint(&self) -> Result<Position, BookieError> {
        let mut last = self
            .last_checkpoint
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let position = self.journal.applied_position();
        if position != *last {
            self.storage.checkpoint(position)?;
            *last = position;
        }
        let removed = self.journal.remove_segments_before(position)?;
        if removed > 0 {
            tracing::debug!(%position, removed, "checkpoint removed journal segments");
        }
        Ok(position)
    }

    /// Refuse (or accept again) adds: the disk-threshold hook, reported as `ReadOnly`.
    pub fn set_read_only(&self, read_only: bool) {
        self.read_only.store(read_only, Ordering::Relaxed);
    }

    pub fn is_read_only(&self) -> bool {
        self.read_only.load(Ordering::Relaxed)
    }

    pub fn journal_stats(&self) -> JournalStats {
        self.journal.stats()
    }

    /// The journal's group-commit latency histogram.
    pub fn fsync_latency(&self) -> &crate::metrics::FsyncLatency {
        self.journal.fsync_latency()
    }

    /// Stops the journal (appends still queued fail with `Closed`) and checkpoints. Blocks.
    pub fn close(&self) -> Result<(), BookieError> {
        self.set_read_only(true);
        self.journal.close();
        self.checkpoint().map(|_| ())
    }
}

#[cfg(test)]
#[path = "bookie_test.rs"]
mod tests;
