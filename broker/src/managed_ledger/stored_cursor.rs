//! How a cursor is stored in the metadata service: its encoding, the bounded snapshot that
//! always fits one value, loading every cursor of a topic, and the conditional write.
//!
//! Each cursor is one key, `/managed-ledgers/{name}/cursors/{cursor}`, holding compact JSON:
//! `{"markDelete":[ledger,entry],"ranges":[[l1,e1,l2,e2]…],"batch":[[ledger,entry,[words…]]…],
//! "droppedRanges":n,"droppedBatchAcks":n,"properties":{…}}` — ranges are open-closed `(l1:e1, l2:e2]` as
//! Pulsar's `individualDeletedMessages`, batch words are the wire's `ack_set` (set bit = still
//! unacked). At most `max_unacked_ranges_persisted` ranges and batches are written, fewer if
//! the value would not fit in one metadata value; what is left out is counted, logged and kept
//! in memory, and only ever causes redelivery after a restart.
//!
//! Writes are transactions conditional on the ledger list being at the version this instance
//! wrote: once another broker has opened the topic, our cursor writes fail (`Fenced`) instead of
//! overwriting its state.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use magnetar_metadata::{Expected, MetadataClient};
use serde::{Deserialize, Serialize};

use super::MlError;
use super::info::{cursor_key, cursors_prefix, unescape};
use super::shared::{CursorCore, Shared, lock};
use crate::cursor::{AckedRange, BatchAck, Cursor, CursorSnapshot, SnapshotLimits};
use crate::position::Position;

/// Room left for the key and framing in one metadata value.
const VALUE_BUDGET: usize = magnetar_metadata::keys::MAX_VALUE_SIZE - 4096;
/// A truncated cursor is warned about at most this often.
const TRUNCATION_WARNING_EVERY: Duration = Duration::from_secs(60);

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Stored {
    mark_delete: (i64, i64),
    #[serde(default)]
    ranges: Vec<(i64, i64, i64, i64)>,
    #[serde(default)]
    batch: Vec<(i64, i64, Vec<i64>)>,
    #[serde(default)]
    dropped_ranges: u64,
    #[serde(default)]
    dropped_batch_acks: u64,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    properties: BTreeMap<String, String>,
}

pub(super) fn encode(s: &CursorSnapshot) -> Vec<u8> {
    let stored = Stored {
        mark_delete: (s.mark_delete.ledger_id, s.mark_delete.entry_id),
        ranges: s
            .acked_ranges
            .iter()
            .map(|r| {
                (
                    r.lower.ledger_id,
                    r.lower.entry_id,
                    r.upper.ledger_id,
                    r.upper.entry_id,
                )
            })
            .collect(),
        batch: s
            .batch_acks
            .iter()
            .map(|b| (b.position.ledger_id, b.position.entry_id, b.unacked.clone()))
            .collect(),
        dropped_ranges: s.dropped_ranges,
        dropped_batch_acks: s.dropped_batch_acks,
        properties: s.properties.clone(),
    };
    // Numbers only: serialization cannot fail.
    serde_json::to_vec(&stored).unwrap_or_default()
}

pub(super) fn decode(bytes: &[u8]) -> Result<CursorSnapshot, String> {
    let s: Stored = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    let p = |l, e| Position::new(l, e);
    Ok(CursorSnapshot {
        mark_delete: p(s.mark_delete.0, s.mark_delete.1),
        acked_ranges: s
            .ranges
            .into_iter()
            .map(|(l1, e1, l2, e2)| AckedRange {
                lower: p(l1, e1),
                upper: p(l2, e2),
            })
            .collect(),
        batch_acks: s
            .batch
            .into_iter()
            .map(|(l, e, unacked)| BatchAck {
                position: p(l, e),
                unacked,
            })
            .collect(),
        dropped_ranges: s.dropped_ranges,
        dropped_batch_acks: s.dropped_batch_acks,
        properties: s.properties,
    })
}

/// The cursor's snapshot within `max` ranges and batches, shrunk further until it fits in one
/// metadata value. The lowest ranges are kept (dropping only causes redelivery).
pub(super) fn bounded_snapshot(cursor: &Cursor, max: usize) -> (CursorSnapshot, Vec<u8>) {
    let mut limits = SnapshotLimits {
        max_ranges: max,
        max_batch_acks: max,
    };
    loop {
        let snapshot = cursor.snapshot(limits);
        let bytes = encode(&snapshot);
        if bytes.len() <= VALUE_BUDGET || (limits.max_ranges == 0 && limits.max_batch_acks == 0) {
            return (snapshot, bytes);
        }
        limits.max_ranges = limits.max_ranges.min(snapshot.acked_ranges.len()) / 2;
        limits.max_batch_acks = limits.max_batch_acks.min(snapshot.batch_acks.len()) / 2;
    }
}

/// Every persisted cursor of a managed ledger.
pub(super) async fn load_all(
    metadata: &MetadataClient,
    name: &str,
) -> Result<Vec<(String, Cursor)>, MlError> {
    let prefix = cursors_prefix(name);
    let mut out = Vec::new();
    for record in metadata.list(&prefix).await? {
        let Some(segment) = record.key.strip_prefix(&prefix) else {
            continue;
        };
        let cursor_name = unescape(segment)?;
        let corrupt = |e: String| MlError::Corrupt(format!("cursor {cursor_name} of {name}: {e}"));
        let snapshot = decode(&record.value).map_err(corrupt)?;
        if snapshot.is_truncated() {
            tracing::warn!(
                managed_ledger = name,
                cursor = cursor_name,
                dropped_ranges = snapshot.dropped_ranges,
                dropped_batch_acks = snapshot.dropped_batch_acks,
                "restoring a truncated cursor: some acknowledged messages will be redelivered"
            );
        }
        let cursor = Cursor::restore(&snapshot).map_err(|e| corrupt(e.to_string()))?;
        out.push((cursor_name, cursor));
    }
    Ok(out)
}

/// Writes `cursor` — the state of `core`, as its owner holds it — now.
pub(super) async fn write(
    shared: &Shared,
    core: &CursorCore,
    cursor: &Cursor,
) -> Result<(), MlError> {
    let _serial = core.persist_lock.lock().await;
    write_serialized(shared, core, cursor).await
}

/// [`write`] for a caller that holds `core.persist_lock`.
async fn write_serialized(
    shared: &Shared,
    core: &CursorCore,
    cursor: &Cursor,
) -> Result<(), MlError> {
    if lock(&core.record).deleted {
        return Err(MlError::CursorClosed);
    }
    let (snapshot, bytes) = bounded_snapshot(cursor, shared.config.max_unacked_ranges_persisted);
    let key = cursor_key(&shared.name, &core.name);
    shared
        .owned_txn(|txn| txn.put(key.clone(), bytes.clone(), Expected::Any))
        .await?;
    let mut record = lock(&core.record);
    record.persisted_mark_delete = snapshot.mark_delete;
    record.persists += 1;
    record.last_dropped_ranges = snapshot.dropped_ranges;
    record.last_dropped_batch_acks = snapshot.dropped_batch_acks;
    if snapshot.is_truncated() {
        record.truncated_persists += 1;
        let due = record
            .last_truncation_warning
            .is_none_or(|at| at.elapsed() >= TRUNCATION_WARNING_EVERY);
        if due {
            record.last_truncation_warning = Some(Instant::now());
            tracing::warn!(managed_ledger = %shared.name, cursor = %core.name,
                dropped_ranges = snapshot.dropped_ranges, dropped_batch_acks = snapshot.dropped_batch_acks,
                kept_ranges = snapshot.acked_ranges.len(),
                "cursor state truncated when persisted: after a restart the left-out acknowledged messages are redelivered");
        }
    }
    Ok(())
}

/// Writes the idle cursors whose last holder could not write its final state (a failed write
/// is retried here, on the background task's tick, until it lands or the topic is fenced).
pub(super) async fn write_idle(shared: &Shared) -> Result<(), MlError> {
    for core in shared.cursor_cores() {
        // The state is read under the persist lock, so a holder's newer write (which takes the
        // lock too) is never overwritten by this older copy.
        let _serial = core.persist_lock.lock().await;
        let unwritten = {
            let record = lock(&core.record);
            match (&record.idle, record.idle_unwritten) {
                (Some(cursor), true) => Some(cursor.clone()),
                _ => None,
            }
        };
        let Some(cursor) = unwritten else { continue };
        match write_serialized(shared, &core, &cursor).await {
            Ok(()) => {
                let mut record = lock(&core.record);
                // Unless a holder took it meanwhile, what is idle is what was written.
                if record.idle.as_ref() == Some(&cursor) {
                    record.idle_unwritten = false;
                }
            }
            Err(MlError::CursorClosed) => {}
            Err(MlError::Fenced) => return Err(MlError::Fenced),
            Err(e) => {
                tracing::warn!(managed_ledger = %shared.name, cursor = %core.name, error = %e, "persisting an idle cursor failed; will retry");
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::position::LedgerLayout;

    #[test]
    fn snapshot_round_trips_compactly() {
        let layout = LedgerLayout::new([(3, 100), (7, 50)]).expect("layout");
        let mut cursor = Cursor::new(Position::new(3, 9));
        cursor.ack(&layout, Position::new(3, 20)).expect("ack");
        cursor.ack(&layout, Position::new(7, 0)).expect("ack");
        cursor
            .ack_batch_indexes(&layout, Position::new(7, 5), &[0b1010])
            .expect("batch ack");
        let (snapshot, bytes) = bounded_snapshot(&cursor, 10);
        assert!(!snapshot.is_truncated());
        let text = String::from_utf8(bytes.clone()).expect("utf8");
        assert!(text.starts_with("{\"markDelete\":[3,9]"), "{text}");
        let decoded = decode(&bytes).expect("decode");
        assert_eq!(decoded, snapshot);
        assert_eq!(Cursor::restore(&decoded).expect("restore"), cursor);
        assert!(
            decode(b"{\"ranges\":[]}").is_err(),
            "mark-delete is required"
        );
    }

    #[test]
    fn oversized_state_is_truncated_to_fit_and_counted() {
        let layout = LedgerLayout::new([(1, 400_000)]).expect("layout");
        let mut cursor = Cursor::new(Position::new(1, -1));
        for e in (1..400_000).step_by(2) {
            cursor.ack(&layout, Position::new(1, e)).expect("ack");
        }
        let (snapshot, bytes) = bounded_snapshot(&cursor, usize::MAX);
        assert!(bytes.len() <= VALUE_BUDGET);
        assert!(snapshot.is_truncated());
        assert_eq!(
            snapshot.acked_ranges.len() as u64 + snapshot.dropped_ranges,
            200_000
        );
        let restored = Cursor::restore(&decode(&bytes).expect("decode")).expect("restore");
        // Nothing unacknowledged is skipped: every even entry is still unacked.
        for e in (0..400_000).step_by(2) {
            assert!(!restored.is_entry_acked(Position::new(1, e)));
        }
    }
}
