//! Ledger storage in memory: the executable model [`super::RocksStorage`] is checked against,
//! and a stand-in where a test needs storage but not its durability. It models durability too:
//! only what a checkpoint covered survives [`MemoryStorage::after_crash`], as with RocksDB
//! running without its WAL.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, PoisonError};

use super::{LedgerMeta, LedgerStorage, StorageError, StoredEntry};
use crate::journal::{Position, Record};

#[derive(Debug, Default)]
pub struct MemoryStorage {
    state: Mutex<State>,
    /// The state as of the last checkpoint: what survives a crash.
    durable: Mutex<State>,
}

#[derive(Debug, Default, Clone)]
struct State {
    entries: BTreeMap<(u64, u64), StoredEntry>,
    ledgers: HashMap<u64, LedgerMeta>,
    checkpoint: Option<Position>,
}

impl MemoryStorage {
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn durable(&self) -> std::sync::MutexGuard<'_, State> {
        self.durable.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The storage a restart would find after a crash now: the last checkpoint's state.
    pub fn after_crash(&self) -> MemoryStorage {
        let durable = self.durable().clone();
        MemoryStorage {
            state: Mutex::new(durable.clone()),
            durable: Mutex::new(durable),
        }
    }
}

impl LedgerStorage for MemoryStorage {
    fn apply(&self, records: &[Record]) -> Result<(), StorageError> {
        let mut state = self.state();
        for record in records {
            let ledger_id = record.ledger_id();
            match record {
                Record::Entry {
                    entry_id,
                    last_add_confirmed,
                    data,
                    ..
                } => {
                    let entry = StoredEntry {
                        last_add_confirmed: *last_add_confirmed,
                        data: data.clone(),
                    };
                    state.entries.insert((ledger_id, *entry_id), entry);
                }
                Record::Fence { .. } => {}
                Record::DeleteLedger { .. } => {
                    state.entries.retain(|(l, _), _| *l != ledger_id);
                    state.ledgers.remove(&ledger_id);
                    continue;
                }
            }
            let meta = state.ledgers.entry(ledger_id).or_default();
            *meta = meta.updated(record);
        }
        Ok(())
    }

    fn read_entry(
        &self,
        ledger_id: u64,
        entry_id: u64,
    ) -> Result<Option<StoredEntry>, StorageError> {
        Ok(self.state().entries.get(&(ledger_id, entry_id)).cloned())
    }

    fn ledger(&self, ledger_id: u64) -> Result<Option<LedgerMeta>, StorageError> {
        Ok(self.state().ledgers.get(&ledger_id).copied())
    }

    fn fenced_ledgers(&self) -> Result<Vec<u64>, StorageError> {
        let mut ids: Vec<u64> = (self.state().ledgers.iter())
            .filter(|(_, meta)| meta.fenced)
            .map(|(id, _)| *id)
            .collect();
        ids.sort_unstable();
        Ok(ids)
    }

    fn list_ledgers(&self) -> Result<Vec<u64>, StorageError> {
        let mut ids: Vec<u64> = self.state().ledgers.keys().copied().collect();
        ids.sort_unstable();
        Ok(ids)
    }

    fn checkpoint_position(&self) -> Result<Option<Position>, StorageError> {
        Ok(self.state().checkpoint)
    }

    fn checkpoint(&self, position: Position) -> Result<(), StorageError> {
        let mut state = self.state();
        state.checkpoint = Some(position);
        *self.durable() = state.clone();
        Ok(())
    }
}
