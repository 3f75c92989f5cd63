//! Durable storage of a metadata node: one RocksDB holding the Raft log (synced on every append)
//! and the state machine (keys, sessions, revision history), in separate column families.
//!
//! State-machine writes are not synced themselves: they share RocksDB's WAL with the log, so the
//! next synced log append persists them, and anything lost in a crash is re-applied from the log.

// openraft's storage traits fix the error type (`StorageError`, ~224 bytes); boxing it is not ours
// to choose.
#![allow(clippy::result_large_err)]

mod log;
mod state_machine;

use std::path::Path;
use std::sync::Arc;

use rocksdb::{ColumnFamilyDescriptor, DB, Options};
use serde::Serialize;
use serde::de::DeserializeOwned;

pub use log::LogStore;
pub use state_machine::{StateMachine, StateReader};

use crate::types::StorageError;

/// Raft log entries, keyed by big-endian index.
pub(crate) const CF_LOG: &str = "log";
/// Vote, committed id and last purged id.
pub(crate) const CF_RAFT: &str = "raft";
/// Keys and values of the state machine.
pub(crate) const CF_KV: &str = "kv";
/// Sessions, keyed by big-endian session id.
pub(crate) const CF_SESSIONS: &str = "sessions";
/// Events of each revision (the watch history), keyed by big-endian revision.
pub(crate) const CF_EVENTS: &str = "events";
/// Applied log id, membership, revision counters and the current snapshot.
pub(crate) const CF_SM: &str = "sm";

const ALL_CFS: [&str; 6] = [CF_LOG, CF_RAFT, CF_KV, CF_SESSIONS, CF_EVENTS, CF_SM];

/// One column family's memtable size.
const MEMTABLE_SIZE: usize = 16 << 20;
/// The memtables of every column family together.
const MEMTABLE_BUDGET: usize = 48 << 20;
/// The key-value column family's block cache, MiB.
const KV_BLOCK_CACHE_MB: u64 = 16;

/// Opens (creating if needed) a node's database.
pub fn open_db(path: &Path) -> Result<Arc<DB>, rocksdb::Error> {
    let mut options = Options::default();
    options.create_if_missing(true);
    options.create_missing_column_families(true);
    // Memtables: RocksDB's defaults (64 MiB per column family, six of them) let a broker with
    // 100,000 topics hold a few hundred MB of metadata writes in memory. Metadata values are
    // small and written at thousands per second at most: 16 MiB memtables and 48 MiB for all of
    // them together flush early enough and cost nothing measurable.
    options.set_db_write_buffer_size(MEMTABLE_BUDGET);
    let cfs = ALL_CFS.iter().map(|name| {
        let mut cf_options = Options::default();
        cf_options.set_write_buffer_size(MEMTABLE_SIZE);
        if *name == CF_KV {
            // Every transaction reads the keys it compares and writes: bloom filters, a hash
            // index in data blocks and a block cache, or each read searches every level-0 file
            // (these reads were 12% of a standalone's CPU while 60,000 topics closed).
            cf_options.optimize_for_point_lookup(KV_BLOCK_CACHE_MB);
        }
        ColumnFamilyDescriptor::new(*name, cf_options)
    });
    Ok(Arc::new(DB::open_cf_descriptors(&options, path, cfs)?))
}

pub(crate) fn cf<'a>(db: &'a DB, name: &str) -> &'a rocksdb::ColumnFamily {
    db.cf_handle(name)
        .expect("every column family is created when the database is opened")
}

pub(crate) fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    postcard::to_allocvec(value).expect("serializing plain data to a Vec does not fail")
}

pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, postcard::Error> {
    postcard::from_bytes(bytes)
}

/// Wraps a read failure for openraft.
pub(crate) fn read_err(e: impl std::error::Error + 'static) -> StorageError {
    openraft::StorageIOError::read(&e).into()
}

/// Wraps a write failure for openraft.
pub(crate) fn write_err(e: impl std::error::Error + 'static) -> StorageError {
    openraft::StorageIOError::write(&e).into()
}
