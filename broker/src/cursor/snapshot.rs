//! A compact, serializable picture of a cursor for persistence (cursor ledger or metadata).
//!
//! Like Pulsar's `PositionInfo`/`ManagedCursorInfo`, it holds the mark-delete position, the
//! acknowledged ranges above it (open-closed, lowest first) and the partly acknowledged batches.
//! The number of ranges and batch entries written is bounded (Pulsar's
//! `managedLedgerMaxUnackedRangesToPersist` and `…MaxBatchDeletedIndexToPersist`, both 10,000).
//! When a bound drops something the snapshot says how much (`dropped_*`), so the shell can put it
//! in stats and logs. Dropping only ever forgets acknowledgements: the highest ranges go first,
//! and a restored cursor redelivers those entries (at-least-once) but never skips one.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{AckSet, Cursor};
use crate::position::Position;

/// Acknowledged entries `(lower, upper]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AckedRange {
    pub lower: Position,
    pub upper: Position,
}

/// A partly acknowledged batch: the wire `ack_set` words, set bit = still unacknowledged.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchAck {
    pub position: Position,
    pub unacked: Vec<i64>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CursorSnapshot {
    pub mark_delete: Position,
    pub acked_ranges: Vec<AckedRange>,
    pub batch_acks: Vec<BatchAck>,
    /// Ranges left out because of [`SnapshotLimits::max_ranges`].
    pub dropped_ranges: u64,
    /// Batch entries left out because of [`SnapshotLimits::max_batch_acks`].
    pub dropped_batch_acks: u64,
    /// The cursor's properties, always whole.
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
}

impl CursorSnapshot {
    /// Whether restoring this snapshot will redeliver acknowledged messages.
    pub fn is_truncated(&self) -> bool {
        self.dropped_ranges > 0 || self.dropped_batch_acks > 0
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SnapshotLimits {
    pub max_ranges: usize,
    pub max_batch_acks: usize,
}

impl Default for SnapshotLimits {
    fn default() -> Self {
        Self {
            max_ranges: 10_000,
            max_batch_acks: 10_000,
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SnapshotError {
    #[error("acknowledged range ({lower}, {upper}] is empty or reversed")]
    InvalidRange { lower: Position, upper: Position },
}

impl Cursor {
    /// The state to persist, keeping the lowest ranges and batches within `limits`.
    pub fn snapshot(&self, limits: SnapshotLimits) -> CursorSnapshot {
        let acked_ranges: Vec<AckedRange> = self
            .acked
            .iter()
            .take(limits.max_ranges)
            .map(|(lower, upper)| AckedRange { lower, upper })
            .collect();
        let batch_acks: Vec<BatchAck> = self
            .batch
            .iter()
            .take(limits.max_batch_acks)
            .map(|(p, set)| BatchAck {
                position: *p,
                unacked: set.to_words(),
            })
            .collect();
        CursorSnapshot {
            mark_delete: self.mark_delete,
            dropped_ranges: (self.acked.len() - acked_ranges.len()) as u64,
            dropped_batch_acks: (self.batch.len() - batch_acks.len()) as u64,
            acked_ranges,
            batch_acks,
            properties: self.properties.clone(),
        }
    }

    /// Rebuilds a cursor from a snapshot. Ranges at or below mark-delete are ignored, overlapping
    /// ones merged; batch entries that are already covered are dropped.
    pub fn restore(snapshot: &CursorSnapshot) -> Result<Cursor, SnapshotError> {
        let mut cursor = Cursor::new(snapshot.mark_delete);
        cursor.properties = snapshot.properties.clone();
        for r in &snapshot.acked_ranges {
            if r.upper <= r.lower {
                return Err(SnapshotError::InvalidRange {
                    lower: r.lower,
                    upper: r.upper,
                });
            }
            cursor.acked.insert(r.lower, r.upper);
        }
        cursor.acked.remove_through(snapshot.mark_delete);
        for b in &snapshot.batch_acks {
            if cursor.is_entry_acked(b.position) {
                continue;
            }
            let set = AckSet::from_words(&b.unacked);
            if set.is_empty() {
                // An entry with no unacked index left is acked; it just was not folded into a
                // range yet. Without the layout we cannot build its range, so keep it unacked
                // at entry level: at worst the entry is redelivered.
                continue;
            }
            cursor.batch.insert(b.position, set);
        }
        Ok(cursor)
    }
}
