//! Ledger storage in RocksDB, with RocksDB's own WAL off: the bookie's journal is the WAL.
//!
//! Column families and their layout (integers big-endian, so keys sort by ledger then entry):
//!
//! ```text
//! entries  (ledger_id u64, entry_id u64)  -> [u64 last_add_confirmed (u64::MAX = none)][data]
//! ledgers  ledger_id u64                  -> [u8 flags (bit 0 = fenced)][u64 last_add_confirmed]
//! default  "checkpoint"                   -> [u64 segment][u64 offset]
//! ```
//!
//! Entries at least `min_blob_size` long go to blob files, so compaction moves keys and not
//! payloads. Flushes are atomic across column families: after a crash RocksDB holds a prefix of
//! what was applied, and replaying the journal from the checkpoint completes it.
//!
//! A deleted ledger is a range tombstone, which frees nothing by itself: its keys, and the blob
//! files only they refer to, go when a compaction covers the range. Writes of other ledgers
//! never overlap it (keys sort by ledger), so a background thread compacts each deleted range
//! (consecutive deleted ledgers in one call), and the disk space comes back within seconds of
//! the deletion instead of whenever RocksDB would pick that range.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};

use bytes::Bytes;
use rocksdb::{
    ColumnFamily, ColumnFamilyDescriptor, DB, DBCompressionType, FlushOptions, Options, WriteBatch,
    WriteOptions,
};
use serde::{Deserialize, Serialize};

use super::{LedgerMeta, LedgerStorage, StorageError, StoredEntry};
use crate::journal::{Position, Record};

const CF_ENTRIES: &str = "entries";
const CF_LEDGERS: &str = "ledgers";
const CHECKPOINT_KEY: &[u8] = b"checkpoint";
const NO_LAC: u64 = u64::MAX;
const FLAG_FENCED: u8 = 1;

/// RocksDB tuning; every field has a default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    /// Bytes of one memtable of the entries column family.
    pub write_buffer_size: usize,
    pub max_write_buffer_number: i32,
    /// Store entry values in blob files (only keys and blob references are compacted).
    pub enable_blob_files: bool,
    /// Values at least this long go to blob files.
    pub min_blob_size: u64,
    pub max_background_jobs: i32,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            write_buffer_size: 128 * 1024 * 1024,
            max_write_buffer_number: 4,
            enable_blob_files: true,
            min_blob_size: 512,
            max_background_jobs: 2,
        }
    }
}

/// Ledger storage in one RocksDB database.
pub struct RocksStorage {
    db: Arc<DB>,
    no_wal: WriteOptions,
    /// Ledgers deleted, for the reclaim thread to compact away (dropped first on drop).
    deleted: Option<mpsc::Sender<u64>>,
    reclaim: Option<std::thread::JoinHandle<()>>,
    /// Tells the reclaim thread to skip what is left (closing must not wait on compactions).
    stopping: Arc<AtomicBool>,
}

impl Drop for RocksStorage {
    fn drop(&mut self) {
        // The thread stops after the compaction it runs, if any; then the database may close.
        // What it skips is compacted by RocksDB in time.
        self.stopping.store(true, Ordering::Release);
        self.deleted.take();
        if let Some(thread) = self.reclaim.take() {
            let _ = thread.join();
        }
    }
}

/// Compacts the key ranges of deleted ledgers: each wakeup takes every deletion queued and
/// compacts each run of consecutive ledger ids as one range (never the live ledgers between).
fn reclaim_deleted(db: Arc<DB>, deleted: mpsc::Receiver<u64>, stopping: Arc<AtomicBool>) {
    while let Ok(first) = deleted.recv() {
        let mut ids = vec![first];
        ids.extend(deleted.try_iter());
        ids.sort_unstable();
        ids.dedup();
        let Some(entries) = db.cf_handle(CF_ENTRIES) else {
            return;
        };
        let started = std::time::Instant::now();
        let mut runs = 0;
        let mut at = 0;
        while at < ids.len() && !stopping.load(Ordering::Acquire) {
            let low = ids[at];
            while at + 1 < ids.len() && ids[at + 1] == ids[at] + 1 {
                at += 1;
            }
            db.compact_range_cf(
                entries,
                Some(entry_key(low, 0)),
                Some(entry_key(ids[at], u64::MAX)),
            );
            runs += 1;
            at += 1;
        }
        tracing::debug!(ledgers = ids.len(), runs, took = ?started.elapsed(), "compacted deleted ledgers away");
    }
}

impl std::fmt::Debug for RocksStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RocksStorage")
            .field("path", &self.db.path())
            .finish_non_exhaustive()
    }
}

impl RocksStorage {
    pub fn open(dir: &Path, config: &StorageConfig) -> Result<RocksStorage, StorageError> {
        let mut db_opts = Options::default();
        db_opts.create_if_missing(true);
        db_opts.create_missing_column_families(true);
        db_opts.set_atomic_flush(true);
        db_opts.set_max_background_jobs(config.max_background_jobs);
        // Sync flushed files as they are written rather than in one burst at the end, which
        // would stall the journal's fdatasync when both share a disk.
        db_opts.set_bytes_per_sync(1024 * 1024);
        let mut entries = Options::default();
        entries.set_write_buffer_size(config.write_buffer_size);
        entries.set_max_write_buffer_number(config.max_write_buffer_number);
        entries.set_compression_type(DBCompressionType::Lz4);
        entries.set_enable_blob_files(config.enable_blob_files);
        entries.set_min_blob_size(config.min_blob_size);
        entries.set_blob_compression_type(DBCompressionType::None);
        entries.set_enable_blob_gc(true);
        let cfs = [
            ColumnFamilyDescriptor::new(CF_ENTRIES, entries),
            ColumnFamilyDescriptor::new(CF_LEDGERS, Options::default()),
        ];
        let db = Arc::new(DB::open_cf_descriptors(&db_opts, dir, cfs).map_err(rocks("opening"))?);
        let mut no_wal = WriteOptions::default();
        no_wal.disable_wal(true);
        let (deleted, queue) = mpsc::channel();
        let stopping = Arc::new(AtomicBool::new(false));
        let reclaim = std::thread::Builder::new()
            .name("bookie-reclaim".into())
            .spawn({
                let (db, stopping) = (db.clone(), stopping.clone());
                move || reclaim_deleted(db, queue, stopping)
            })
            .map_err(StorageError::Thread)?;
        Ok(RocksStorage {
            db,
            no_wal,
            deleted: Some(deleted),
            reclaim: Some(reclaim),
            stopping,
        })
    }

    fn cf(&self, name: &str) -> &ColumnFamily {
        self.db
            .cf_handle(name)
            .expect("column families are created at open")
    }

    /// Calls `f` with every ledger's id and state, in id order.
    fn for_each_ledger(&self, mut f: impl FnMut(u64, LedgerMeta)) -> Result<(), StorageError> {
        for item in self
            .db
            .iterator_cf(self.cf(CF_LEDGERS), rocksdb::IteratorMode::Start)
        {
            let (key, value) = item.map_err(rocks("listing ledgers"))?;
            let corrupt = || StorageError::Corrupt {
                what: "ledger key",
                key: key.to_vec(),
            };
            let ledger_id = be_u64(&key)
                .filter(|_| key.len() == 8)
                .ok_or_else(corrupt)?;
            f(ledger_id, decode_meta(&key, &value)?);
        }
        Ok(())
    }

    fn load_meta(&self, ledger_id: u64) -> Result<Option<LedgerMeta>, StorageError> {
        let key = ledger_id.to_be_bytes();
        let value = (self.db.get_pinned_cf(self.cf(CF_LEDGERS), key)).map_err(rocks("reading"))?;
        value.map(|v| decode_meta(&key, &v)).transpose()
    }
}

fn rocks(action: &'static str) -> impl Fn(rocksdb::Error) -> StorageError {
    move |source| StorageError::Rocks { action, source }
}

fn entry_key(ledger_id: u64, entry_id: u64) -> [u8; 16] {
    let mut key = [0u8; 16];
    key[..8].copy_from_slice(&ledger_id.to_be_bytes());
    key[8..].copy_from_slice(&entry_id.to_be_bytes());
    key
}

fn be_u64(bytes: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(bytes.get(..8)?.try_into().ok()?))
}

fn lac_from_u64(lac: u64) -> Option<u64> {
    (lac != NO_LAC).then_some(lac)
}

fn decode_meta(key: &[u8], value: &[u8]) -> Result<LedgerMeta, StorageError> {
    let corrupt = || StorageError::Corrupt {
        what: "ledger state",
        key: key.to_vec(),
    };
    if value.len() != 9 {
        return Err(corrupt());
    }
    let lac = be_u64(&value[1..]).ok_or_else(corrupt)?;
    Ok(LedgerMeta {
        fenced: value[0] & FLAG_FENCED != 0,
        last_add_confirmed: lac_from_u64(lac),
    })
}

fn encode_meta(meta: &LedgerMeta) -> [u8; 9] {
    let mut value = [0u8; 9];
    value[0] = if meta.fenced { FLAG_FENCED } else { 0 };
    value[1..].copy_from_slice(&meta.last_add_confirmed.unwrap_or(NO_LAC).to_be_bytes());
    value
}

impl LedgerStorage for RocksStorage {
    fn apply(&self, records: &[Record]) -> Result<(), StorageError> {
        let (entries, ledgers) = (self.cf(CF_ENTRIES), self.cf(CF_LEDGERS));
        let mut batch = WriteBatch::default();
        // Each touched ledger's state after the batch; `None` = deleted.
        let mut metas: HashMap<u64, Option<LedgerMeta>> = HashMap::new();
        let mut value = Vec::new();
        for record in records {
            let ledger_id = record.ledger_id();
            if let Record::DeleteLedger { .. } = record {
                batch.delete_range_cf(
                    entries,
                    entry_key(ledger_id, 0),
                    entry_key(ledger_id, u64::MAX),
                );
                batch.delete_cf(entries, entry_key(ledger_id, u64::MAX));
                metas.insert(ledger_id, None);
                continue;
            }
            if let Record::Entry {
                entry_id,
                last_add_confirmed,
                data,
                ..
            } = record
            {
                value.clear();
                value.extend_from_slice(&last_add_confirmed.unwrap_or(NO_LAC).to_be_bytes());
                value.extend_from_slice(data);
                batch.put_cf(entries, entry_key(ledger_id, *entry_id), &value);
            }
            let meta = match metas.get(&ledger_id) {
                Some(meta) => meta.unwrap_or_default(),
                None => self.load_meta(ledger_id)?.unwrap_or_default(),
            };
            metas.insert(ledger_id, Some(meta.updated(record)));
        }
        for (ledger_id, meta) in &metas {
            let key = ledger_id.to_be_bytes();
            match meta {
                Some(meta) => batch.put_cf(ledgers, key, encode_meta(meta)),
                None => batch.delete_cf(ledgers, key),
            }
        }
        self.db
            .write_opt(batch, &self.no_wal)
            .map_err(rocks("writing"))?;
        if let Some(deleted) = &self.deleted {
            for (ledger_id, meta) in &metas {
                if meta.is_none() {
                    let _ = deleted.send(*ledger_id);
                }
            }
        }
        Ok(())
    }

    fn read_entry(
        &self,
        ledger_id: u64,
        entry_id: u64,
    ) -> Result<Option<StoredEntry>, StorageError> {
        let key = entry_key(ledger_id, entry_id);
        let Some(value) =
            (self.db.get_pinned_cf(self.cf(CF_ENTRIES), key)).map_err(rocks("reading an entry"))?
        else {
            return Ok(None);
        };
        let lac = be_u64(&value).ok_or_else(|| StorageError::Corrupt {
            what: "entry",
            key: key.to_vec(),
        })?;
        Ok(Some(StoredEntry {
            last_add_confirmed: lac_from_u64(lac),
            data: Bytes::copy_from_slice(&value[8..]),
        }))
    }

    fn ledger(&self, ledger_id: u64) -> Result<Option<LedgerMeta>, StorageError> {
        self.load_meta(ledger_id)
    }

    fn fenced_ledgers(&self) -> Result<Vec<u64>, StorageError> {
        let mut fenced = Vec::new();
        self.for_each_ledger(|ledger_id, meta| {
            if meta.fenced {
                fenced.push(ledger_id);
            }
        })?;
        Ok(fenced)
    }

    fn list_ledgers(&self) -> Result<Vec<u64>, StorageError> {
        let mut ids = Vec::new();
        self.for_each_ledger(|ledger_id, _| ids.push(ledger_id))?;
        Ok(ids)
    }

    fn checkpoint_position(&self) -> Result<Option<Position>, StorageError> {
        let Some(value) = self
            .db
            .get_pinned(CHECKPOINT_KEY)
            .map_err(rocks("reading the checkpoint"))?
        else {
            return Ok(None);
        };
        let corrupt = || StorageError::Corrupt {
            what: "checkpoint",
            key: CHECKPOINT_KEY.to_vec(),
        };
        if value.len() != 16 {
            return Err(corrupt());
        }
        Ok(Some(Position {
            segment: be_u64(&value[..8]).ok_or_else(corrupt)?,
            offset: be_u64(&value[8..]).ok_or_else(corrupt)?,
        }))
    }

    fn checkpoint(&self, position: Position) -> Result<(), StorageError> {
        let mut flush = FlushOptions::default();
        flush.set_wait(true);
        let data_cfs = [self.cf(CF_ENTRIES), self.cf(CF_LEDGERS)];
        (self.db.flush_cfs_opt(&data_cfs, &flush)).map_err(rocks("flushing"))?;
        // Only once the data is durable may the position that relies on it be.
        let mut value = [0u8; 16];
        value[..8].copy_from_slice(&position.segment.to_be_bytes());
        value[8..].copy_from_slice(&position.offset.to_be_bytes());
        (self.db.put_opt(CHECKPOINT_KEY, value, &self.no_wal))
            .map_err(rocks("writing the checkpoint"))?;
        let default = self.db.cf_handle("default").expect("default family exists");
        (self.db.flush_cfs_opt(&[default], &flush)).map_err(rocks("flushing the checkpoint"))
    }
}
