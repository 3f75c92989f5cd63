//! Message deduplication (Pulsar's `MessageDeduplication`), and the receiving side of exactly-once
//! geo-replication.
//!
//! Per producer name the topic keeps the highest sequence id *pushed* (checked and sent to the
//! managed ledger) and the highest *persisted* (its entry durable). A SEND at or below pushed is
//! a duplicate when it is also at or below persisted (receipt `-1:-1`, nothing stored) and
//! undecidable otherwise (`PersistenceError`; the client re-sends). A batch counts by its
//! highest sequence id; a chunked message by its last chunk.
//!
//! Entries replicated from another cluster are deduplicated the same way, by their *source
//! position*: the key is `pulsar.repl.{source cluster}` and the mark `(ledger, entry)` of the
//! entry in the source topic, which only grows. The replicator re-sends from its durable cursor
//! after any failure; whatever the remote already stored comes back as a duplicate.
//!
//! Durability: the state is never written per message. The cursor `pulsar.dedup` holds a
//! snapshot — its properties are the marks, its mark-delete the last entry they cover — and
//! retains every entry after it. Loading the topic replays those entries from the ledger; a
//! snapshot is taken by the same replay (from what is durably stored, so it never depends on the
//! order receipts complete in), every `deduplication_entries_interval` entries or
//! `deduplication_snapshot_interval_secs`.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use magnetar_protocol::Payload;
use magnetar_protocol::pulsar::{KeyValue, MessageMetadata};

use crate::cursor::Cursor;
use crate::managed_ledger::{InitialPosition, ManagedCursor, ManagedLedger, MlError};
use crate::position::Position;

/// The cursor holding the snapshot (Pulsar's `PersistentTopic.DEDUPLICATION_CURSOR_NAME`).
pub const CURSOR: &str = "pulsar.dedup";
/// Prefix of replication cursors and of the dedup keys of replicated entries.
pub const REPL_PREFIX: &str = "pulsar.repl.";
/// The property a replicated message carries: its `ledger:entry` in the source cluster.
pub const REPL_SOURCE_POSITION: &str = "__MSG_PROP_REPL_SOURCE_POSITION";
/// Entries read per step of a replay.
const REPLAY_BATCH: usize = 500;

/// A high-water mark: `(0, sequence_id)` for a producer, `(ledger, entry)` of the source topic
/// for a replicated stream. Compared as a tuple.
pub type Mark = (u64, u64);

/// The dedup key of entries replicated from `cluster`.
pub fn repl_key(cluster: &str) -> String {
    format!("{REPL_PREFIX}{cluster}")
}

/// Whether a cursor is the broker's own, not a subscription.
pub fn is_system_cursor(name: &str) -> bool {
    name == CURSOR || name.starts_with(REPL_PREFIX)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Store it.
    New,
    /// Stored before: answer with the `-1:-1` receipt.
    Duplicate,
    /// An earlier copy is still being written: answer `PersistenceError`, the sender retries.
    Unknown,
}

/// Settings (the broker's `deduplication_*`).
#[derive(Debug, Clone, Copy)]
pub struct DedupSettings {
    pub entries_interval: u64,
    pub snapshot_interval: Duration,
}

#[derive(Debug)]
struct Tracking {
    cursor: ManagedCursor,
    /// The snapshot as last written (mark-delete and properties).
    state: Cursor,
    pushed: HashMap<String, Mark>,
    persisted: HashMap<String, Mark>,
    since_snapshot: u64,
    last_snapshot: Instant,
}

#[derive(Debug, Default)]
struct Inner {
    /// Producers' sequence ids are checked (the namespace or broker setting).
    enabled: bool,
    /// Present while the topic keeps marks: dedup is enabled, or it received replicated data.
    tracking: Option<Tracking>,
}

/// A topic's deduplication state.
#[derive(Debug)]
pub struct Dedup {
    inner: Mutex<Inner>,
    /// Serializes the cursor's open, snapshots and release.
    io: tokio::sync::Mutex<()>,
    settings: DedupSettings,
}

impl Dedup {
    /// Restores the state of a topic being loaded: with dedup `enabled`, or when the topic kept
    /// marks before (its `pulsar.dedup` cursor exists), the snapshot is read and the entries
    /// after it replayed.
    pub async fn load(
        ml: &ManagedLedger,
        enabled: bool,
        settings: DedupSettings,
    ) -> Result<Dedup, MlError> {
        let dedup = Dedup {
            inner: Mutex::new(Inner {
                enabled,
                tracking: None,
            }),
            io: tokio::sync::Mutex::new(()),
            settings,
        };
        if enabled || ml.cursor_names().iter().any(|c| c == CURSOR) {
            dedup.start_tracking(ml).await?;
        }
        Ok(dedup)
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn is_enabled(&self) -> bool {
        self.lock().enabled
    }

    /// Whether marks are kept now (replicated entries may be stored only then).
    pub fn is_tracking(&self) -> bool {
        self.lock().tracking.is_some()
    }

    /// Opens the cursor (created at the end of the topic if new) and replays the entries after
    /// its snapshot. Idempotent.
    async fn start_tracking(&self, ml: &ManagedLedger) -> Result<(), MlError> {
        let _io = self.io.lock().await;
        if self.lock().tracking.is_some() {
            return Ok(());
        }
        let (cursor, state) = ml.open_cursor(CURSOR, InitialPosition::Latest).await?;
        let started = Instant::now();
        let mut marks = decode_marks(state.properties());
        let replayed = match replay(ml, state.mark_delete(), &mut marks).await {
            Ok((replayed, _)) => replayed,
            Err(e) => {
                cursor.release(state, false);
                return Err(e);
            }
        };
        tracing::info!(
            managed_ledger = ml.name(),
            producers = marks.len(),
            replayed,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "deduplication state restored"
        );
        self.lock().tracking = Some(Tracking {
            cursor,
            state,
            pushed: marks.clone(),
            persisted: marks,
            since_snapshot: replayed,
            last_snapshot: Instant::now(),
        });
        Ok(())
    }

    /// Makes sure the topic keeps marks (before it stores its first replicated entry).
    pub async fn ensure_tracking(&self, ml: &ManagedLedger) -> Result<(), MlError> {
        self.start_tracking(ml).await
    }

    /// Applies the namespace's (or broker's) setting. Turning it off drops the producers' marks;
    /// the cursor goes too unless the topic also keeps marks of replicated entries.
    pub async fn set_enabled(&self, ml: &ManagedLedger, enabled: bool) -> Result<(), MlError> {
        let was = std::mem::replace(&mut self.lock().enabled, enabled);
        if was == enabled {
            return Ok(());
        }
        tracing::info!(managed_ledger = ml.name(), enabled, "deduplication changed");
        if enabled {
            return self.start_tracking(ml).await;
        }
        let _io = self.io.lock().await;
        let keeps_replicated = {
            let mut inner = self.lock();
            let Some(t) = inner.tracking.as_mut() else {
                return Ok(());
            };
            t.pushed.retain(|k, _| k.starts_with(REPL_PREFIX));
            t.persisted.retain(|k, _| k.starts_with(REPL_PREFIX));
            !t.persisted.is_empty()
        };
        if !keeps_replicated {
            let tracking = self.lock().tracking.take();
            if let Some(t) = tracking {
                t.cursor.release(t.state, false);
            }
            ml.delete_cursor(CURSOR).await?;
        }
        Ok(())
    }

    /// Checks a message (or a batch: `lowest..=highest`) of `producer` before it is stored.
    /// Untracked producers (dedup off) are always `New`.
    pub fn check(&self, producer: &str, lowest: Mark, highest: Mark) -> Verdict {
        let mut inner = self.lock();
        let enabled = inner.enabled;
        let Some(t) = inner.tracking.as_mut() else {
            return Verdict::New;
        };
        if !enabled && !producer.starts_with(REPL_PREFIX) {
            return Verdict::New;
        }
        if let Some(pushed) = t.pushed.get(producer)
            && lowest <= *pushed
        {
            return match t.persisted.get(producer) {
                Some(persisted) if lowest <= *persisted => Verdict::Duplicate,
                _ => Verdict::Unknown,
            };
        }
        t.pushed.insert(producer.to_string(), highest.max(lowest));
        Verdict::New
    }

    /// Whether `producer` is tracked (its receipts must report back).
    pub fn tracks(&self, producer: &str) -> bool {
        let inner = self.lock();
        inner.tracking.is_some() && (inner.enabled || producer.starts_with(REPL_PREFIX))
    }

    /// The entry checked `New` for `producer` up to `mark` is durable.
    pub fn persisted(&self, producer: &str, mark: Mark) {
        let mut inner = self.lock();
        if let Some(t) = inner.tracking.as_mut() {
            let e = t.persisted.entry(producer.to_string()).or_insert(mark);
            *e = (*e).max(mark);
            t.since_snapshot += 1;
        }
    }

    /// Storing it failed: whatever was pushed beyond the persisted mark may be sent again.
    pub fn failed(&self, producer: &str) {
        let mut inner = self.lock();
        if let Some(t) = inner.tracking.as_mut() {
            match t.persisted.get(producer).copied() {
                Some(mark) => t.pushed.insert(producer.to_string(), mark),
                None => t.pushed.remove(producer),
            };
        }
    }

    /// The sequence id a producer resumes after (`PRODUCER_SUCCESS.last_sequence_id`): the
    /// highest pushed, or -1 when dedup is off or the name is new.
    pub fn last_sequence_id(&self, producer: &str) -> i64 {
        let inner = self.lock();
        match (&inner.tracking, inner.enabled) {
            (Some(t), true) => t.pushed.get(producer).map_or(-1, |m| m.1 as i64),
            _ => -1,
        }
    }

    /// The highest source position stored from `cluster`'s replicator, if any.
    pub fn replicated_mark(&self, cluster: &str) -> Option<Mark> {
        let inner = self.lock();
        inner
            .tracking
            .as_ref()
            .and_then(|t| t.persisted.get(&repl_key(cluster)).copied())
    }

    /// Writes a snapshot when enough entries or time have passed (or `force`).
    pub async fn maybe_snapshot(&self, ml: &ManagedLedger, force: bool) -> Result<(), MlError> {
        let due = {
            let inner = self.lock();
            inner.tracking.as_ref().is_some_and(|t| {
                t.since_snapshot > 0
                    && (force
                        || t.since_snapshot >= self.settings.entries_interval
                        || t.last_snapshot.elapsed() >= self.settings.snapshot_interval)
            })
        };
        if due {
            self.snapshot(ml).await?;
        }
        Ok(())
    }

    async fn snapshot(&self, ml: &ManagedLedger) -> Result<(), MlError> {
        let _io = self.io.lock().await;
        let (cursor, mut state) = {
            let inner = self.lock();
            let Some(t) = inner.tracking.as_ref() else {
                return Ok(());
            };
            (t.cursor.clone(), t.state.clone())
        };
        let mut marks = decode_marks(state.properties());
        let (_, last) = replay(ml, state.mark_delete(), &mut marks).await?;
        let Some(last) = last else {
            return Ok(());
        };
        let layout = ml.layout();
        state.set_properties(encode_marks(&marks));
        if state.ack_cumulative(&layout, last, None).is_err() {
            return Ok(()); // trimmed under us: the next snapshot starts from a valid position
        }
        cursor.persist(&state).await?;
        let mut inner = self.lock();
        if let Some(t) = inner.tracking.as_mut() {
            t.state = state;
            t.since_snapshot = 0;
            t.last_snapshot = Instant::now();
        }
        Ok(())
    }

    /// A last snapshot, then the cursor is given back (the topic is closing).
    pub async fn close(&self, ml: &ManagedLedger) {
        if let Err(e) = self.maybe_snapshot(ml, true).await {
            tracing::debug!(managed_ledger = ml.name(), error = %e, "final deduplication snapshot failed");
        }
        let _io = self.io.lock().await;
        let tracking = self.lock().tracking.take();
        if let Some(t) = tracking {
            t.cursor.release(t.state, false);
        }
    }

    /// For stats: `"Enabled"` or `"Disabled"` (Pulsar's `deduplicationStatus`).
    pub fn status(&self) -> &'static str {
        if self.is_enabled() {
            "Enabled"
        } else {
            "Disabled"
        }
    }
}

/// Reads every entry after `after` and folds its marks in; returns how many were read and the
/// position of the last.
async fn replay(
    ml: &ManagedLedger,
    after: Position,
    marks: &mut HashMap<String, Mark>,
) -> Result<(u64, Option<Position>), MlError> {
    let Some(end) = ml.last_confirmed() else {
        return Ok((0, None));
    };
    let mut from = ml.layout().next(after);
    let mut count = 0;
    let mut last = None;
    while from <= end {
        let entries = ml.read(from, REPLAY_BATCH).await?;
        let Some((p, _)) = entries.last() else {
            break;
        };
        let next = ml.layout().next(*p);
        for (position, entry) in entries {
            if position > end {
                break;
            }
            fold(marks, entry);
            count += 1;
            last = Some(position);
        }
        from = next;
    }
    Ok((count, last))
}

/// The key and mark an entry stands for, if it has one.
pub fn entry_mark(entry: Bytes) -> Option<(String, Mark)> {
    let metadata = Payload::parse(entry).ok()?.metadata().ok()?;
    if metadata.marker_type.is_some_and(|t| t != 0) {
        return None;
    }
    if let Some(mark) = metadata_mark(&metadata) {
        return Some(mark);
    }
    // As at publish: a batch ends at least at first + count - 1.
    let count = u64::from(metadata.num_messages_in_batch.unwrap_or(1).max(1) as u32);
    let highest = metadata
        .highest_sequence_id
        .unwrap_or(0)
        .max(metadata.sequence_id.saturating_add(count - 1));
    Some((metadata.producer_name, (0, highest)))
}

/// The key and mark of a replicated entry: its source cluster and its position there.
pub fn metadata_mark(metadata: &MessageMetadata) -> Option<(String, Mark)> {
    let from = metadata.replicated_from.as_deref()?;
    let source = metadata
        .properties
        .iter()
        .find(|kv| kv.key == REPL_SOURCE_POSITION)?;
    Some((repl_key(from), parse_position_mark(&source.value)?))
}

/// An entry of this cluster as another stores it: marked as replicated from `source` (so it is
/// never replicated again) with its source `position` (by which it is deduplicated). Returns
/// the metadata, the (still compressed) body and the message count.
pub fn mark_replicated(
    entry: Bytes,
    source: &str,
    position: Mark,
) -> Result<(MessageMetadata, Bytes, u32), String> {
    let payload = Payload::parse(entry).map_err(|e| e.to_string())?;
    let mut metadata = payload.metadata().map_err(|e| e.to_string())?;
    metadata.replicated_from = Some(source.to_string());
    metadata
        .properties
        .retain(|kv| kv.key != REPL_SOURCE_POSITION);
    metadata.properties.push(KeyValue {
        key: REPL_SOURCE_POSITION.into(),
        value: format!("{}:{}", position.0, position.1),
    });
    let messages = metadata.num_messages_in_batch.unwrap_or(1).max(1) as u32;
    Ok((metadata, payload.body(), messages))
}

fn fold(marks: &mut HashMap<String, Mark>, entry: Bytes) {
    if let Some((key, mark)) = entry_mark(entry) {
        let e = marks.entry(key).or_insert(mark);
        *e = (*e).max(mark);
    }
}

/// `ledger:entry` as a mark.
pub fn parse_position_mark(s: &str) -> Option<Mark> {
    let (l, e) = s.split_once(':')?;
    Some((l.parse().ok()?, e.parse().ok()?))
}

fn decode_marks(properties: &BTreeMap<String, String>) -> HashMap<String, Mark> {
    properties
        .iter()
        .filter_map(|(k, v)| {
            let mark = match parse_position_mark(v) {
                Some(m) => m,
                None => (0, v.parse().ok()?),
            };
            Some((k.clone(), mark))
        })
        .collect()
}

fn encode_marks(marks: &HashMap<String, Mark>) -> BTreeMap<String, String> {
    marks
        .iter()
        .map(|(k, (hi, lo))| {
            let v = match k.starts_with(REPL_PREFIX) {
                true => format!("{hi}:{lo}"),
                false => lo.to_string(),
            };
            (k.clone(), v)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_round_trip_through_properties() {
        let marks: HashMap<String, Mark> = [
            ("producer-1".to_string(), (0, 41)),
            (repl_key("us-east"), (12, 7)),
        ]
        .into();
        let props = encode_marks(&marks);
        assert_eq!(props["producer-1"], "41");
        assert_eq!(props["pulsar.repl.us-east"], "12:7");
        assert_eq!(decode_marks(&props), marks);
    }

    #[test]
    fn source_positions_order_by_ledger_then_entry() {
        assert!(parse_position_mark("3:900") < parse_position_mark("4:0"));
        assert_eq!(parse_position_mark("x:1"), None);
    }
}
