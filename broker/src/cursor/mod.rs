//! The durable cursor's acknowledgement state, as Pulsar's `ManagedCursor` keeps it.
//!
//! A subscription's cursor is a mark-delete position (everything at or below it is acknowledged),
//! the individually acknowledged ranges above it, and per-entry batch-index bitsets for batches
//! that are partly acknowledged. Acks arrive from consumers; the mark-delete position advances
//! whenever the lowest range becomes contiguous with it in the ledger layout. The state can be
//! written out as a bounded [`CursorSnapshot`] (see `snapshot`); a bound that drops ranges is
//! reported, and restoring such a snapshot only causes redelivery, never a skip.
//!
//! Pure logic: no I/O. The shell persists snapshots and lends the topic's [`LedgerLayout`].

mod ack_set;
mod ranges;
mod snapshot;

use std::collections::BTreeMap;

pub use ack_set::AckSet;
pub use ranges::AckedRanges;
pub use snapshot::{AckedRange, BatchAck, CursorSnapshot, SnapshotError, SnapshotLimits};

use crate::position::{LedgerLayout, Position};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AckError {
    #[error("position {0} is not an entry of this topic")]
    UnknownPosition(Position),
}

/// What an acknowledgement changed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AckEffect {
    /// The acknowledged entry became fully acknowledged with this call.
    pub entry_acked: bool,
    /// The mark-delete position moved forward.
    pub mark_delete_moved: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cursor {
    mark_delete: Position,
    acked: AckedRanges,
    batch: BTreeMap<Position, AckSet>,
    /// Named values stored with the cursor (Pulsar's cursor properties); the broker's own
    /// cursors keep state in them, e.g. `pulsar.dedup` its sequence-id snapshot.
    properties: BTreeMap<String, String>,
}

impl Cursor {
    pub fn new(mark_delete: Position) -> Self {
        Self {
            mark_delete,
            acked: AckedRanges::default(),
            batch: BTreeMap::new(),
            properties: BTreeMap::new(),
        }
    }

    pub fn properties(&self) -> &BTreeMap<String, String> {
        &self.properties
    }

    /// Replaces the properties; they are written with the cursor's next persist.
    pub fn set_properties(&mut self, properties: BTreeMap<String, String>) {
        self.properties = properties;
    }

    /// A new subscription with initial position Earliest: nothing acknowledged.
    pub fn earliest(layout: &LedgerLayout) -> Self {
        let first = layout
            .first_position()
            .unwrap_or_else(|| layout.end_position());
        Self::new(layout.prev(first))
    }

    /// A new subscription with initial position Latest: everything written so far acknowledged.
    pub fn latest(layout: &LedgerLayout) -> Self {
        Self::new(layout.prev(layout.end_position()))
    }

    pub fn mark_delete(&self) -> Position {
        self.mark_delete
    }

    /// The first position that is not acknowledged (where a fresh read starts).
    pub fn next_unacked(&self, layout: &LedgerLayout) -> Position {
        layout.next(self.mark_delete)
    }

    pub fn acked_ranges(&self) -> &AckedRanges {
        &self.acked
    }

    /// Entries with some but not all batch indexes acknowledged, with their unacked bitsets.
    pub fn batch_acks(&self) -> impl Iterator<Item = (Position, &AckSet)> + '_ {
        self.batch.iter().map(|(p, s)| (*p, s))
    }

    /// Whether the whole entry at `p` is acknowledged.
    pub fn is_entry_acked(&self, p: Position) -> bool {
        p <= self.mark_delete || self.acked.contains(p)
    }

    /// Whether one message is acknowledged; `batch_index: None` asks about the whole entry.
    pub fn is_acked(&self, p: Position, batch_index: Option<u32>) -> bool {
        if self.is_entry_acked(p) {
            return true;
        }
        match (batch_index, self.batch.get(&p)) {
            (Some(i), Some(set)) => !set.is_unacked(i),
            _ => false,
        }
    }

    /// The still-unacknowledged bitset of a partly acknowledged batch (for `MESSAGE.ack_set`).
    pub fn batch_ack_set(&self, p: Position) -> Option<&AckSet> {
        self.batch.get(&p)
    }

    fn check_exists(layout: &LedgerLayout, p: Position) -> Result<(), AckError> {
        if layout.contains(p) {
            Ok(())
        } else {
            Err(AckError::UnknownPosition(p))
        }
    }

    /// Individual acknowledgement of the whole entry `p` (an ACK without `ack_set`).
    pub fn ack(&mut self, layout: &LedgerLayout, p: Position) -> Result<AckEffect, AckError> {
        if self.is_entry_acked(p) {
            return Ok(AckEffect::default());
        }
        Self::check_exists(layout, p)?;
        self.batch.remove(&p);
        self.acked.insert(layout.prev(p), p);
        let mark_delete_moved = self.advance(layout);
        Ok(AckEffect {
            entry_acked: true,
            mark_delete_moved,
        })
    }

    /// Batch-index acknowledgement: `unacked_words` is the wire `ack_set` (set bit = still
    /// unacked). The first one for an entry is taken as is, later ones are intersected with it;
    /// once no bit is left the entry counts as acknowledged.
    pub fn ack_batch_indexes(
        &mut self,
        layout: &LedgerLayout,
        p: Position,
        unacked_words: &[i64],
    ) -> Result<AckEffect, AckError> {
        if self.is_entry_acked(p) {
            return Ok(AckEffect::default());
        }
        Self::check_exists(layout, p)?;
        let given = AckSet::from_words(unacked_words);
        let set = self.batch.entry(p).or_insert_with(|| given.clone());
        set.and(&given);
        if set.is_empty() {
            self.ack(layout, p)
        } else {
            Ok(AckEffect::default())
        }
    }

    /// Moves mark-delete back to `to` when it is above it, keeping every acknowledgement:
    /// positions in between become unacknowledged (compacted entries a read-compacted
    /// subscription has not seen, in ledgers trimmed before it started).
    pub fn rewind_mark_delete(&mut self, to: Position) {
        if to < self.mark_delete {
            self.mark_delete = to;
        }
    }

    /// Acknowledges every position in `(after, through]`, whether or not an entry is there: the
    /// entries a compacted read passed over (superseded, so never delivered). True if
    /// mark-delete moved.
    pub fn ack_range(&mut self, layout: &LedgerLayout, after: Position, through: Position) -> bool {
        let after = after.max(self.mark_delete);
        if through <= after {
            return false;
        }
        self.acked.insert(after, through);
        let inside: Vec<Position> = self
            .batch
            .range(after.successor()..=through)
            .map(|(p, _)| *p)
            .collect();
        for p in inside {
            self.batch.remove(&p);
        }
        self.advance(layout)
    }

    /// Cumulative acknowledgement up to `p`. With `unacked_words` (a batch partly acked
    /// cumulatively) the entry itself is only batch-acked and mark-delete stops right before it.
    pub fn ack_cumulative(
        &mut self,
        layout: &LedgerLayout,
        p: Position,
        unacked_words: Option<&[i64]>,
    ) -> Result<AckEffect, AckError> {
        if p <= self.mark_delete {
            return Ok(AckEffect::default());
        }
        Self::check_exists(layout, p)?;
        let (was_acked, mark_delete_before) = (self.is_entry_acked(p), self.mark_delete);
        let target = match unacked_words {
            Some(words) => {
                self.ack_batch_indexes(layout, p, words)?;
                if self.is_entry_acked(p) {
                    p
                } else {
                    layout.prev(p)
                }
            }
            None => p,
        };
        self.move_mark_delete(layout, target);
        Ok(AckEffect {
            entry_acked: !was_acked && self.is_entry_acked(p),
            mark_delete_moved: self.mark_delete != mark_delete_before,
        })
    }

    /// Sets mark-delete to `target` if that moves it forward, then absorbs contiguous ranges.
    fn move_mark_delete(&mut self, layout: &LedgerLayout, target: Position) -> bool {
        let mut moved = false;
        if target > self.mark_delete {
            self.mark_delete = target;
            self.acked.remove_through(target);
            self.batch = self.batch.split_off(&target.successor());
            moved = true;
        }
        self.advance(layout) || moved
    }

    /// Absorbs the lowest range while it starts right after mark-delete.
    fn advance(&mut self, layout: &LedgerLayout) -> bool {
        let mut moved = false;
        while let Some((lower, upper)) = self.acked.first() {
            let next = layout.next(self.mark_delete);
            if !(lower < next && next <= upper) {
                break;
            }
            self.acked.pop_first();
            self.mark_delete = upper;
            self.batch = self.batch.split_off(&upper.successor());
            moved = true;
        }
        moved
    }

    /// Entries between mark-delete and the end of the topic that are not fully acknowledged.
    pub fn backlog(&self, layout: &LedgerLayout) -> u64 {
        let total = layout.entries_after(self.mark_delete);
        total.saturating_sub(self.acked.count_entries(layout))
    }

    /// Seek: everything before `p` becomes acknowledged, everything from `p` on unacknowledged
    /// (Java's `resetCursor`).
    pub fn reset_to(&mut self, layout: &LedgerLayout, p: Position) {
        let p = p.min(layout.end_position());
        self.mark_delete = layout.prev(p);
        self.acked.clear();
        self.batch.clear();
    }
}

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;
