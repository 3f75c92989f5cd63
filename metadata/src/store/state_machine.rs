//! The replicated state machine: keys with versions, sessions owning ephemeral keys, and a
//! bounded history of revisions for watches. Every node applies the same log, so every node has
//! the same keys, the same revisions and the same history.

use std::collections::HashMap;
use std::io::Cursor;
use std::sync::Arc;

use openraft::storage::RaftStateMachine;
use openraft::{EntryPayload, OptionalSend, RaftSnapshotBuilder};
use rocksdb::{DB, Direction, IteratorMode, WriteBatch};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use super::{CF_EVENTS, CF_KV, CF_SESSIONS, CF_SM, cf, decode, encode, read_err, write_err};
use crate::error::MetadataError;
use crate::types::*;

const KEY_APPLIED: &[u8] = b"applied";
const KEY_MEMBERSHIP: &[u8] = b"membership";
const KEY_REVISION: &[u8] = b"revision";
const KEY_COMPACTED: &[u8] = b"compacted";
const KEY_SNAPSHOT: &[u8] = b"snapshot";
/// Trim the watch history every this many revisions.
const TRIM_EVERY: u64 = 1024;

/// Everything a snapshot holds besides its openraft metadata.
#[derive(Debug, Serialize, Deserialize)]
struct SnapshotData {
    revision: u64,
    kvs: Vec<(String, StoredValue)>,
    sessions: Vec<(u64, SessionInfo)>,
}

/// Applies committed entries; owned by openraft.
#[derive(Debug)]
pub struct StateMachine {
    db: Arc<DB>,
    events: broadcast::Sender<Arc<RevisionEvents>>,
    /// Revisions of history kept for watches.
    history: u64,
    revision: u64,
    compacted: u64,
    snapshot_counter: u64,
}

/// Read access to the applied state, shared with request handlers.
#[derive(Debug, Clone)]
pub struct StateReader {
    db: Arc<DB>,
    events: broadcast::Sender<Arc<RevisionEvents>>,
}

/// Reads and writes of one log entry: later commands of a batched proposal see earlier ones.
struct Overlay<'a> {
    db: &'a DB,
    kvs: HashMap<String, Option<StoredValue>>,
    sessions: HashMap<u64, Option<SessionInfo>>,
}

impl<'a> Overlay<'a> {
    fn get(&mut self, key: &str) -> Result<Option<StoredValue>, StorageError> {
        if let Some(value) = self.kvs.get(key) {
            return Ok(value.clone());
        }
        get_kv(self.db, key).map_err(|e| read_err(std::io::Error::other(e.to_string())))
    }

    fn session(&mut self, id: u64) -> Result<Option<SessionInfo>, StorageError> {
        if let Some(session) = self.sessions.get(&id) {
            return Ok(session.clone());
        }
        match self
            .db
            .get_cf(cf(self.db, CF_SESSIONS), id.to_be_bytes())
            .map_err(read_err)?
        {
            Some(bytes) => Ok(Some(decode(&bytes).map_err(read_err)?)),
            None => Ok(None),
        }
    }

    fn write_into(self, batch: &mut WriteBatch) {
        for (key, value) in self.kvs {
            match value {
                Some(value) => batch.put_cf(cf(self.db, CF_KV), key.as_bytes(), encode(&value)),
                None => batch.delete_cf(cf(self.db, CF_KV), key.as_bytes()),
            }
        }
        for (id, session) in self.sessions {
            match session {
                Some(session) => {
                    batch.put_cf(cf(self.db, CF_SESSIONS), id.to_be_bytes(), encode(&session))
                }
                None => batch.delete_cf(cf(self.db, CF_SESSIONS), id.to_be_bytes()),
            }
        }
    }
}

fn get_kv(db: &DB, key: &str) -> Result<Option<StoredValue>, MetadataError> {
    let internal = |e: String| MetadataError::Internal(e);
    match db
        .get_cf(cf(db, CF_KV), key.as_bytes())
        .map_err(|e| internal(e.to_string()))?
    {
        Some(bytes) => Ok(Some(decode(&bytes).map_err(|e| internal(e.to_string()))?)),
        None => Ok(None),
    }
}

impl StateMachine {
    pub fn open(db: Arc<DB>, history: u64) -> Result<StateMachine, StorageError> {
        let (events, _) = broadcast::channel(4096);
        let get_u64 = |key: &[u8]| -> Result<u64, StorageError> {
            match db.get_cf(cf(&db, CF_SM), key).map_err(read_err)? {
                Some(bytes) => decode(&bytes).map_err(read_err),
                None => Ok(0),
            }
        };
        let revision = get_u64(KEY_REVISION)?;
        let compacted = get_u64(KEY_COMPACTED)?;
        Ok(StateMachine {
            db,
            events,
            history: history.max(1),
            revision,
            compacted,
            snapshot_counter: 0,
        })
    }

    pub fn reader(&self) -> StateReader {
        StateReader {
            db: self.db.clone(),
            events: self.events.clone(),
        }
    }

    fn apply_command(
        &mut self,
        command: Command,
        index: u64,
        overlay: &mut Overlay<'_>,
        batch: &mut WriteBatch,
        published: &mut Vec<RevisionEvents>,
    ) -> Result<CommandResult, StorageError> {
        match command {
            Command::CreateSession { ttl_ms } => {
                overlay.sessions.insert(
                    index,
                    Some(SessionInfo {
                        ttl_ms,
                        keys: Default::default(),
                    }),
                );
                Ok(CommandResult::Session {
                    session: index,
                    ttl_ms,
                })
            }
            Command::ExpireSession { session } => {
                let Some(info) = overlay.session(session)? else {
                    return Ok(CommandResult::Done);
                };
                overlay.sessions.insert(session, None);
                let ops = info
                    .keys
                    .into_iter()
                    .map(|key| Op::Delete {
                        key,
                        expected: Expected::Any,
                    })
                    .collect();
                self.apply_txn(Vec::new(), ops, overlay, batch, published)
            }
            Command::Txn { compares, ops } => {
                self.apply_txn(compares, ops, overlay, batch, published)
            }
        }
    }

    fn apply_txn(
        &mut self,
        compares: Vec<(String, Expected)>,
        ops: Vec<Op>,
        overlay: &mut Overlay<'_>,
        batch: &mut WriteBatch,
        published: &mut Vec<RevisionEvents>,
    ) -> Result<CommandResult, StorageError> {
        // Every expectation is checked against the state before the transaction.
        let checks = compares
            .iter()
            .map(|(key, expected)| (key.as_str(), *expected));
        for (key, expected) in checks.chain(ops.iter().map(|op| (op.key(), op.expected()))) {
            let actual = overlay.get(key)?;
            let actual_version = actual.as_ref().map_or(0, |v| v.version);
            if !expected.holds(actual_version, actual.and_then(|v| v.session)) {
                return Ok(CommandResult::CompareFailed {
                    key: key.to_string(),
                    actual_version,
                });
            }
        }
        for op in &ops {
            if let Op::Put {
                session: Some(session),
                ..
            } = op
                && overlay.session(*session)?.is_none()
            {
                return Ok(CommandResult::SessionExpired { session: *session });
            }
        }
        let revision = self.revision + 1;
        let mut events = Vec::new();
        let mut results = Vec::with_capacity(ops.len());
        for op in ops {
            match op {
                Op::Put {
                    key,
                    value,
                    session,
                    ..
                } => {
                    let old = overlay.get(&key)?;
                    let new = StoredValue {
                        value,
                        version: old.as_ref().map_or(1, |v| v.version + 1),
                        create_revision: old.as_ref().map_or(revision, |v| v.create_revision),
                        mod_revision: revision,
                        session,
                    };
                    if let Some(previous) = old
                        .as_ref()
                        .and_then(|v| v.session)
                        .filter(|s| Some(*s) != session)
                    {
                        self.untrack(overlay, previous, &key)?;
                    }
                    if let Some(session) = session
                        && let Some(mut info) = overlay.session(session)?
                    {
                        info.keys.insert(key.clone());
                        overlay.sessions.insert(session, Some(info));
                    }
                    results.push(new.version);
                    overlay.kvs.insert(key.clone(), Some(new.clone()));
                    events.push(Event {
                        kind: EventKind::Put,
                        key,
                        value: new,
                    });
                }
                Op::Delete { key, .. } => match overlay.get(&key)? {
                    Some(old) => {
                        if let Some(session) = old.session {
                            self.untrack(overlay, session, &key)?;
                        }
                        overlay.kvs.insert(key.clone(), None);
                        results.push(1);
                        events.push(Event {
                            kind: EventKind::Delete,
                            key,
                            value: old,
                        });
                    }
                    None => results.push(0),
                },
            }
        }
        if events.is_empty() {
            return Ok(CommandResult::Txn {
                revision: self.revision,
                results,
            });
        }
        self.revision = revision;
        let record = RevisionEvents { revision, events };
        batch.put_cf(
            cf(&self.db, CF_EVENTS),
            revision.to_be_bytes(),
            encode(&record),
        );
        batch.put_cf(cf(&self.db, CF_SM), KEY_REVISION, encode(&revision));
        if revision.is_multiple_of(TRIM_EVERY) && revision > self.history {
            self.compacted = revision - self.history;
            batch.delete_range_cf(
                cf(&self.db, CF_EVENTS),
                0u64.to_be_bytes(),
                (self.compacted + 1).to_be_bytes(),
            );
            batch.put_cf(cf(&self.db, CF_SM), KEY_COMPACTED, encode(&self.compacted));
        }
        published.push(record);
        Ok(CommandResult::Txn { revision, results })
    }

    fn untrack(
        &self,
        overlay: &mut Overlay<'_>,
        session: u64,
        key: &str,
    ) -> Result<(), StorageError> {
        if let Some(mut info) = overlay.session(session)? {
            info.keys.remove(key);
            overlay.sessions.insert(session, Some(info));
        }
        Ok(())
    }

    fn get_sm<T: serde::de::DeserializeOwned>(
        &self,
        key: &[u8],
    ) -> Result<Option<T>, StorageError> {
        match self.db.get_cf(cf(&self.db, CF_SM), key).map_err(read_err)? {
            Some(bytes) => Ok(Some(decode(&bytes).map_err(read_err)?)),
            None => Ok(None),
        }
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        let applied = self.get_sm(KEY_APPLIED)?;
        let membership = self.get_sm(KEY_MEMBERSHIP)?.unwrap_or_default();
        Ok((applied, membership))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<ProposalResult>, StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut replies = Vec::new();
        for entry in entries {
            let db = self.db.clone();
            let mut batch = WriteBatch::default();
            let mut overlay = Overlay {
                db: &db,
                kvs: HashMap::new(),
                sessions: HashMap::new(),
            };
            let mut published = Vec::new();
            let mut reply = ProposalResult::default();
            match entry.payload {
                EntryPayload::Blank => {}
                EntryPayload::Normal(proposal) => {
                    for command in proposal.commands {
                        let result = self.apply_command(
                            command,
                            entry.log_id.index,
                            &mut overlay,
                            &mut batch,
                            &mut published,
                        )?;
                        reply.results.push(result);
                    }
                }
                EntryPayload::Membership(membership) => {
                    let stored = StoredMembership::new(Some(entry.log_id), membership);
                    batch.put_cf(cf(&db, CF_SM), KEY_MEMBERSHIP, encode(&stored));
                }
            }
            overlay.write_into(&mut batch);
            batch.put_cf(cf(&db, CF_SM), KEY_APPLIED, encode(&entry.log_id));
            db.write(batch).map_err(write_err)?;
            for record in published {
                // No receiver just means no watcher right now.
                let _ = self.events.send(Arc::new(record));
            }
            replies.push(reply);
        }
        Ok(replies)
    }

    async fn get_snapshot_builder(&mut self) -> SnapshotBuilder {
        self.snapshot_counter += 1;
        SnapshotBuilder {
            db: self.db.clone(),
            counter: self.snapshot_counter,
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let bytes = snapshot.into_inner();
        let data: SnapshotData = decode(&bytes).map_err(read_err)?;
        let db = &self.db;
        let mut batch = WriteBatch::default();
        batch.delete_range_cf(cf(db, CF_KV), [0u8].as_slice(), [0xffu8].as_slice());
        batch.delete_range_cf(
            cf(db, CF_SESSIONS),
            [0u8; 8].as_slice(),
            [0xffu8; 9].as_slice(),
        );
        batch.delete_range_cf(
            cf(db, CF_EVENTS),
            [0u8; 8].as_slice(),
            [0xffu8; 9].as_slice(),
        );
        for (key, value) in &data.kvs {
            batch.put_cf(cf(db, CF_KV), key.as_bytes(), encode(value));
        }
        for (id, session) in &data.sessions {
            batch.put_cf(cf(db, CF_SESSIONS), id.to_be_bytes(), encode(session));
        }
        // History before the snapshot is not transferred: watches from older revisions on this
        // node get a clear "compacted" error.
        batch.put_cf(cf(db, CF_SM), KEY_REVISION, encode(&data.revision));
        batch.put_cf(cf(db, CF_SM), KEY_COMPACTED, encode(&data.revision));
        batch.put_cf(cf(db, CF_SM), KEY_APPLIED, encode(&meta.last_log_id));
        batch.put_cf(cf(db, CF_SM), KEY_MEMBERSHIP, encode(&meta.last_membership));
        batch.put_cf(cf(db, CF_SM), KEY_SNAPSHOT, encode(&(meta.clone(), bytes)));
        db.write(batch).map_err(write_err)?;
        self.revision = data.revision;
        self.compacted = data.revision;
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, StorageError> {
        let stored: Option<(SnapshotMeta, Vec<u8>)> = self.get_sm(KEY_SNAPSHOT)?;
        Ok(stored.map(|(meta, bytes)| Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(bytes)),
        }))
    }
}

/// Builds a snapshot from a consistent RocksDB view while the state machine goes on applying.
#[derive(Debug)]
pub struct SnapshotBuilder {
    db: Arc<DB>,
    counter: u64,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot, StorageError> {
        let db = &self.db;
        let view = db.snapshot();
        let get = |key: &[u8]| view.get_cf(cf(db, CF_SM), key).map_err(read_err);
        let applied: Option<LogId> = get(KEY_APPLIED)?
            .map(|b| decode(&b))
            .transpose()
            .map_err(read_err)?;
        let membership: StoredMembership = get(KEY_MEMBERSHIP)?
            .map(|b| decode(&b))
            .transpose()
            .map_err(read_err)?
            .unwrap_or_default();
        let revision: u64 = get(KEY_REVISION)?
            .map(|b| decode(&b))
            .transpose()
            .map_err(read_err)?
            .unwrap_or(0);
        let mut data = SnapshotData {
            revision,
            kvs: Vec::new(),
            sessions: Vec::new(),
        };
        for item in view.iterator_cf(cf(db, CF_KV), IteratorMode::Start) {
            let (key, value) = item.map_err(read_err)?;
            let key = String::from_utf8(key.to_vec()).map_err(read_err)?;
            data.kvs.push((key, decode(&value).map_err(read_err)?));
        }
        for item in view.iterator_cf(cf(db, CF_SESSIONS), IteratorMode::Start) {
            let (key, value) = item.map_err(read_err)?;
            let id = u64::from_be_bytes(
                key.as_ref()
                    .try_into()
                    .map_err(|_| read_err(std::io::Error::other("bad session key")))?,
            );
            data.sessions.push((id, decode(&value).map_err(read_err)?));
        }
        let bytes = encode(&data);
        let snapshot_id = format!(
            "{}-{}-{}",
            applied.map_or(0, |id| id.leader_id.term),
            applied.map_or(0, |id| id.index),
            self.counter
        );
        let meta = SnapshotMeta {
            last_log_id: applied,
            last_membership: membership,
            snapshot_id,
        };
        db.put_cf(
            cf(db, CF_SM),
            KEY_SNAPSHOT,
            encode(&(meta.clone(), bytes.clone())),
        )
        .map_err(write_err)?;
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(bytes)),
        })
    }
}

impl StateReader {
    pub fn get(&self, key: &str) -> Result<Option<StoredValue>, MetadataError> {
        get_kv(&self.db, key)
    }

    /// Keys under `prefix` greater than `start_after`, in order, at most `limit` of them; the
    /// flag says whether more follow.
    pub fn list(
        &self,
        prefix: &str,
        start_after: &str,
        limit: usize,
    ) -> Result<(Vec<(String, StoredValue)>, bool), MetadataError> {
        let start = if start_after.as_bytes() > prefix.as_bytes() {
            start_after
        } else {
            prefix
        };
        let mut out = Vec::new();
        let iter = self.db.iterator_cf(
            cf(&self.db, CF_KV),
            IteratorMode::From(start.as_bytes(), Direction::Forward),
        );
        for item in iter {
            let (key, value) = item.map_err(|e| MetadataError::Internal(e.to_string()))?;
            if !key.starts_with(prefix.as_bytes()) {
                break;
            }
            if key.as_ref() == start_after.as_bytes() {
                continue;
            }
            if out.len() == limit {
                return Ok((out, true));
            }
            let key = String::from_utf8(key.to_vec())
                .map_err(|e| MetadataError::Internal(e.to_string()))?;
            out.push((
                key,
                decode(&value).map_err(|e| MetadataError::Internal(e.to_string()))?,
            ));
        }
        Ok((out, false))
    }

    /// Names of the direct children of `path` (one level), in order.
    pub fn children(&self, path: &str) -> Result<Vec<String>, MetadataError> {
        let prefix = format!("{}/", path.trim_end_matches('/'));
        let mut names: Vec<String> = Vec::new();
        let mut seek = prefix.clone();
        loop {
            let mut iter = self.db.iterator_cf(
                cf(&self.db, CF_KV),
                IteratorMode::From(seek.as_bytes(), Direction::Forward),
            );
            let Some(item) = iter.next() else { break };
            let (key, _) = item.map_err(|e| MetadataError::Internal(e.to_string()))?;
            let Some(rest) = key.strip_prefix(prefix.as_bytes()) else {
                break;
            };
            let child = rest.split(|b| *b == b'/').next().unwrap_or(rest);
            let child = String::from_utf8_lossy(child).into_owned();
            // Skip the child's whole subtree: '0' is the byte after '/'.
            seek = format!("{prefix}{child}0");
            if names.last() != Some(&child) {
                names.push(child);
            }
        }
        Ok(names)
    }

    /// The revision of the last applied change.
    pub fn revision(&self) -> u64 {
        self.get_u64(KEY_REVISION)
    }

    /// Revisions up to this one are no longer in the history.
    pub fn compacted(&self) -> u64 {
        self.get_u64(KEY_COMPACTED)
    }

    fn get_u64(&self, key: &[u8]) -> u64 {
        self.db
            .get_cf(cf(&self.db, CF_SM), key)
            .ok()
            .flatten()
            .and_then(|bytes| decode(&bytes).ok())
            .unwrap_or(0)
    }

    /// Recorded revisions from `from` on, in order, at most `limit`.
    pub fn history(&self, from: u64, limit: usize) -> Result<Vec<RevisionEvents>, MetadataError> {
        let mut out = Vec::new();
        let start = from.to_be_bytes();
        for item in self.db.iterator_cf(
            cf(&self.db, CF_EVENTS),
            IteratorMode::From(&start, Direction::Forward),
        ) {
            let (_, value) = item.map_err(|e| MetadataError::Internal(e.to_string()))?;
            out.push(decode(&value).map_err(|e| MetadataError::Internal(e.to_string()))?);
            if out.len() == limit {
                break;
            }
        }
        Ok(out)
    }

    /// Live events of every revision applied from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<RevisionEvents>> {
        self.events.subscribe()
    }

    pub fn sessions(&self) -> Result<Vec<(u64, SessionInfo)>, MetadataError> {
        let mut out = Vec::new();
        for item in self
            .db
            .iterator_cf(cf(&self.db, CF_SESSIONS), IteratorMode::Start)
        {
            let (key, value) = item.map_err(|e| MetadataError::Internal(e.to_string()))?;
            let Ok(id) = <[u8; 8]>::try_from(key.as_ref()) else {
                continue;
            };
            out.push((
                u64::from_be_bytes(id),
                decode(&value).map_err(|e| MetadataError::Internal(e.to_string()))?,
            ));
        }
        Ok(out)
    }

    pub fn session_exists(&self, id: u64) -> Result<bool, MetadataError> {
        Ok(self
            .db
            .get_cf(cf(&self.db, CF_SESSIONS), id.to_be_bytes())
            .map_err(|e| MetadataError::Internal(e.to_string()))?
            .is_some())
    }
}
