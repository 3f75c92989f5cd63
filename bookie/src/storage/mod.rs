//! Ledger storage: where entries live once the journal has made them durable.
//!
//! [`LedgerStorage`] is what the bookie needs from it; [`RocksStorage`] is the real one and
//! [`MemoryStorage`] a model of it. Both run the same conformance suite (`conformance.rs`).
//!
//! Storage is written *without* its own durability: the journal is the write-ahead log. What
//! storage must offer is [`LedgerStorage::checkpoint`]: make everything applied so far durable,
//! then remember the journal position it covers, so that a restart replays the journal only
//! from there and older journal segments can go.

mod memory;
mod rocks;

use bytes::Bytes;

use crate::journal::{Position, Record};

pub use memory::MemoryStorage;
pub use rocks::{RocksStorage, StorageConfig};

/// What a bookie knows about one ledger beyond its entries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LedgerMeta {
    /// Normal adds are refused once set; it is never cleared.
    pub fenced: bool,
    /// Highest last-add-confirmed piggybacked on an applied add.
    pub last_add_confirmed: Option<u64>,
}

impl LedgerMeta {
    /// The state after `record` (which must concern this ledger and not delete it).
    pub fn updated(mut self, record: &Record) -> LedgerMeta {
        match record {
            Record::Entry {
                last_add_confirmed, ..
            } => self.last_add_confirmed = self.last_add_confirmed.max(*last_add_confirmed),
            Record::Fence { .. } => self.fenced = true,
            Record::DeleteLedger { .. } => {}
        }
        self
    }
}

/// One stored entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEntry {
    /// The last-add-confirmed its writer piggybacked on it.
    pub last_add_confirmed: Option<u64>,
    pub data: Bytes,
}

/// Why ledger storage failed.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("ledger storage failed while {action}: {source}")]
    Rocks {
        action: &'static str,
        #[source]
        source: rocksdb::Error,
    },
    #[error("ledger storage holds a malformed {what} (key {key:02x?})")]
    Corrupt { what: &'static str, key: Vec<u8> },
    #[error("ledger storage could not start its reclaim thread: {0}")]
    Thread(#[source] std::io::Error),
}

/// The bookie's view of ledger storage. Calls are synchronous and may block on disk: call them
/// from blocking threads.
pub trait LedgerStorage: Send + Sync + std::fmt::Debug + 'static {
    /// Applies journaled records in order: an entry is stored (replacing one with the same id),
    /// a fence sets the ledger's flag, a deletion removes the ledger's entries and state. Applying
    /// a record again is harmless, which is what makes replay after a crash safe.
    fn apply(&self, records: &[Record]) -> Result<(), StorageError>;

    fn read_entry(
        &self,
        ledger_id: u64,
        entry_id: u64,
    ) -> Result<Option<StoredEntry>, StorageError>;

    /// The ledger's state, or `None` if the bookie has nothing of it.
    fn ledger(&self, ledger_id: u64) -> Result<Option<LedgerMeta>, StorageError>;

    /// Ids of every fenced ledger (loaded into memory at start).
    fn fenced_ledgers(&self) -> Result<Vec<u64>, StorageError>;

    /// Ids of every ledger the bookie holds entries or state of, ascending (what garbage
    /// collection checks against the ledger metadata).
    fn list_ledgers(&self) -> Result<Vec<u64>, StorageError>;

    /// The position recorded by the last [`LedgerStorage::checkpoint`], if any.
    fn checkpoint_position(&self) -> Result<Option<Position>, StorageError>;

    /// Makes everything applied so far durable, then records `position` as covered.
    fn checkpoint(&self, position: Position) -> Result<(), StorageError>;
}

#[cfg(test)]
mod conformance;
