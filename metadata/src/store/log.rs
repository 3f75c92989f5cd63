//! The Raft log and vote in RocksDB. Every append and vote is synced before it is acknowledged.
//!
//! Appends are written to RocksDB at once (so they can be read back and replicated) and made
//! durable by a sync thread that fsyncs the write-ahead log once for every append waiting at that
//! moment (group commit), then tells openraft through each append's `LogFlushed` callback. The
//! Raft core never waits for an fsync itself.

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::sync::mpsc;
use std::sync::{Arc, Weak};

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{LogState, OptionalSend, RaftLogReader, Vote};
use rocksdb::{DB, Direction, IteratorMode, WriteBatch, WriteOptions};

use super::{CF_LOG, CF_RAFT, cf, decode, encode, read_err, write_err};
use crate::types::{Entry, LogId, NodeId, StorageError, TypeConfig};

const KEY_VOTE: &[u8] = b"vote";
const KEY_COMMITTED: &[u8] = b"committed";
const KEY_LAST_PURGED: &[u8] = b"last_purged";

#[derive(Debug, Clone)]
pub struct LogStore {
    db: Arc<DB>,
    syncs: mpsc::Sender<LogFlushed<TypeConfig>>,
}

/// Fsyncs the WAL for every append queued when it wakes, then completes them. It holds the
/// database only while syncing, so the database closes when the node drops it.
fn sync_loop(db: Weak<DB>, queue: mpsc::Receiver<LogFlushed<TypeConfig>>) {
    while let Ok(first) = queue.recv() {
        let mut waiting = vec![first];
        waiting.extend(queue.try_iter());
        let result = match db.upgrade() {
            Some(db) => db
                .flush_wal(true)
                .map_err(|e| std::io::Error::other(e.to_string())),
            None => Err(std::io::Error::other("the log store is closed")),
        };
        for callback in waiting {
            callback.log_io_completed(
                result
                    .as_ref()
                    .map(|_| ())
                    .map_err(|e| std::io::Error::other(e.to_string())),
            );
        }
    }
}

impl LogStore {
    pub fn new(db: Arc<DB>) -> LogStore {
        let (syncs, queue) = mpsc::channel();
        let weak = Arc::downgrade(&db);
        std::thread::Builder::new()
            .name("metadata-log-sync".into())
            .spawn(move || sync_loop(weak, queue))
            .expect("spawning the log sync thread");
        LogStore { db, syncs }
    }

    fn get_meta<T: serde::de::DeserializeOwned>(
        &self,
        key: &[u8],
    ) -> Result<Option<T>, StorageError> {
        match self
            .db
            .get_cf(cf(&self.db, CF_RAFT), key)
            .map_err(read_err)?
        {
            Some(bytes) => Ok(Some(decode(&bytes).map_err(read_err)?)),
            None => Ok(None),
        }
    }

    /// Writes in a blocking thread so a slow fsync never stalls the async runtime.
    async fn write_synced(&self, batch: WriteBatch) -> Result<(), StorageError> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || {
            let mut options = WriteOptions::default();
            options.set_sync(true);
            db.write_opt(batch, &options)
        })
        .await
        .map_err(|e| write_err(std::io::Error::other(e)))?
        .map_err(write_err)
    }

    fn last_log_id(&self) -> Result<Option<LogId>, StorageError> {
        let mut iter = self.db.iterator_cf(cf(&self.db, CF_LOG), IteratorMode::End);
        match iter.next() {
            Some(item) => {
                let (_, bytes) = item.map_err(read_err)?;
                let entry: Entry = decode(&bytes).map_err(read_err)?;
                Ok(Some(entry.log_id))
            }
            None => Ok(None),
        }
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        let start = match range.start_bound() {
            Bound::Included(i) => *i,
            Bound::Excluded(i) => i + 1,
            Bound::Unbounded => 0,
        };
        let mut entries = Vec::new();
        let from = start.to_be_bytes();
        for item in self.db.iterator_cf(
            cf(&self.db, CF_LOG),
            IteratorMode::From(&from, Direction::Forward),
        ) {
            let (key, bytes) = item.map_err(read_err)?;
            let index = u64::from_be_bytes(
                key.as_ref()
                    .try_into()
                    .map_err(|_| read_err(std::io::Error::other("log key is not 8 bytes")))?,
            );
            if !range.contains(&index) {
                break;
            }
            entries.push(decode(&bytes).map_err(read_err)?);
        }
        Ok(entries)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let last_purged_log_id: Option<LogId> = self.get_meta(KEY_LAST_PURGED)?;
        let last_log_id = self.last_log_id()?.or(last_purged_log_id);
        Ok(LogState {
            last_purged_log_id,
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> LogStore {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), StorageError> {
        let mut batch = WriteBatch::default();
        batch.put_cf(cf(&self.db, CF_RAFT), KEY_VOTE, encode(vote));
        self.write_synced(batch).await
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, StorageError> {
        self.get_meta(KEY_VOTE)
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        // Not synced: losing it only means re-learning the commit index from the leader.
        self.db
            .put_cf(cf(&self.db, CF_RAFT), KEY_COMMITTED, encode(&committed))
            .map_err(write_err)
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        Ok(self.get_meta::<Option<LogId>>(KEY_COMMITTED)?.flatten())
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut batch = WriteBatch::default();
        let log = cf(&self.db, CF_LOG);
        for entry in entries {
            batch.put_cf(log, entry.log_id.index.to_be_bytes(), encode(&entry));
        }
        // Written now, durable when the sync thread has fsynced the WAL and called back.
        self.db.write(batch).map_err(write_err)?;
        self.syncs
            .send(callback)
            .map_err(|_| write_err(std::io::Error::other("the log sync thread has stopped")))
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let mut batch = WriteBatch::default();
        batch.delete_range_cf(
            cf(&self.db, CF_LOG),
            log_id.index.to_be_bytes(),
            u64::MAX.to_be_bytes(),
        );
        batch.delete_cf(cf(&self.db, CF_LOG), u64::MAX.to_be_bytes());
        self.write_synced(batch).await
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let mut batch = WriteBatch::default();
        batch.put_cf(cf(&self.db, CF_RAFT), KEY_LAST_PURGED, encode(&log_id));
        batch.delete_range_cf(
            cf(&self.db, CF_LOG),
            0u64.to_be_bytes(),
            (log_id.index + 1).to_be_bytes(),
        );
        self.write_synced(batch).await
    }
}
