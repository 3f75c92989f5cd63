//! `ManagedCursor`: a durable subscription's cursor bound to its managed ledger.
//!
//! The acknowledgement logic is the sans-IO [`Cursor`]; this wrapper lends it the topic's
//! current layout on every call, marks it dirty, and lets the background task persist it at a
//! bounded rate (or [`ManagedCursor::flush`] now). The persisted mark-delete position is what
//! trimming trusts, so a ledger is never deleted ahead of what a restart would restore.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::MlError;
use super::shared::{Shared, lock};
use super::stored_cursor;
use crate::cursor::{AckEffect, AckSet, Cursor};
use crate::position::{LedgerLayout, Position};

/// Where a new cursor starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InitialPosition {
    /// After the last entry written: only new entries are delivered.
    Latest,
    /// Before the first entry still stored.
    Earliest,
}

#[derive(Debug)]
pub(super) struct CursorState {
    pub cursor: Cursor,
    /// Changed since the last successful persist.
    pub dirty: bool,
    pub deleted: bool,
    pub persisted_mark_delete: Position,
    pub persists: u64,
    pub truncated_persists: u64,
    pub last_dropped_ranges: u64,
    pub last_dropped_batch_acks: u64,
    pub last_truncation_warning: Option<Instant>,
}

#[derive(Debug)]
pub(super) struct CursorCore {
    pub name: String,
    pub state: Mutex<CursorState>,
    /// One persist of this cursor at a time, so writes land in snapshot order.
    pub persist_lock: tokio::sync::Mutex<()>,
}

impl CursorCore {
    /// A cursor as loaded from metadata: clean, persisted where it stands.
    pub fn restored(name: String, cursor: Cursor) -> CursorCore {
        CursorCore::new(name, cursor, false)
    }

    pub fn new(name: String, cursor: Cursor, dirty: bool) -> CursorCore {
        let persisted_mark_delete = cursor.mark_delete();
        CursorCore {
            name,
            state: Mutex::new(CursorState {
                cursor,
                dirty,
                deleted: false,
                persisted_mark_delete,
                persists: 0,
                truncated_persists: 0,
                last_dropped_ranges: 0,
                last_dropped_batch_acks: 0,
                last_truncation_warning: None,
            }),
            persist_lock: tokio::sync::Mutex::new(()),
        }
    }
}

/// A cursor's numbers for stats and metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CursorStats {
    pub mark_delete: Position,
    pub persisted_mark_delete: Position,
    pub backlog: u64,
    pub acked_ranges: usize,
    pub batch_acks: usize,
    /// Successful writes of the cursor state.
    pub persists: u64,
    /// Writes that had to leave ranges or batches out (their entries would be redelivered).
    pub truncated_persists: u64,
    /// Ranges and batches left out of the last write.
    pub dropped_ranges: u64,
    pub dropped_batch_acks: u64,
}

#[derive(Clone, Debug)]
pub struct ManagedCursor {
    pub(super) core: Arc<CursorCore>,
    pub(super) shared: Arc<Shared>,
}

impl ManagedCursor {
    pub fn name(&self) -> &str {
        &self.core.name
    }

    /// Runs `f` on the cursor with the topic's current layout; marks the cursor dirty.
    pub fn update<R>(&self, f: impl FnOnce(&mut Cursor, &LedgerLayout) -> R) -> Result<R, MlError> {
        let state = self.shared.lock();
        let mut cursor = lock(&self.core.state);
        if cursor.deleted {
            return Err(MlError::CursorClosed);
        }
        cursor.dirty = true;
        Ok(f(&mut cursor.cursor, &state.layout))
    }

    /// Reads the cursor with the topic's current layout.
    pub fn inspect<R>(&self, f: impl FnOnce(&Cursor, &LedgerLayout) -> R) -> R {
        let state = self.shared.lock();
        let cursor = lock(&self.core.state);
        f(&cursor.cursor, &state.layout)
    }

    /// A copy of the acknowledgement state.
    pub fn state(&self) -> Cursor {
        lock(&self.core.state).cursor.clone()
    }

    pub fn mark_delete(&self) -> Position {
        lock(&self.core.state).cursor.mark_delete()
    }

    /// The first entry not acknowledged, where reading resumes.
    pub fn next_unacked(&self) -> Position {
        self.inspect(|c, layout| c.next_unacked(layout))
    }

    /// Entries after mark-delete not yet acknowledged.
    pub fn backlog(&self) -> u64 {
        self.inspect(|c, layout| c.backlog(layout))
    }

    pub fn ack(&self, p: Position) -> Result<AckEffect, MlError> {
        Ok(self.update(|c, layout| c.ack(layout, p))??)
    }

    pub fn ack_cumulative(&self, p: Position) -> Result<AckEffect, MlError> {
        Ok(self.update(|c, layout| c.ack_cumulative(layout, p, None))??)
    }

    /// A batch-index ack: `ack_set` as on the wire (set bit = still unacked) for a batch of
    /// `batch_size` messages; bits past the batch are ignored (0: take the words as they are).
    pub fn ack_batch_indexes(
        &self,
        p: Position,
        ack_set: &[i64],
        batch_size: u32,
    ) -> Result<AckEffect, MlError> {
        let words = if batch_size > 0 {
            let mut set = AckSet::from_words(ack_set);
            set.and(&AckSet::all_unacked(batch_size));
            set.to_words()
        } else {
            ack_set.to_vec()
        };
        Ok(self.update(|c, layout| c.ack_batch_indexes(layout, p, &words))??)
    }

    pub fn is_acked(&self, p: Position, batch_index: Option<u32>) -> bool {
        lock(&self.core.state).cursor.is_acked(p, batch_index)
    }

    /// Seek: everything before `p` acknowledged, everything from `p` on not.
    pub fn reset_to(&self, p: Position) {
        if let Err(e) = self.update(|c, layout| c.reset_to(layout, p)) {
            tracing::debug!(cursor = self.name(), error = %e, "reset of a deleted cursor ignored");
        }
    }

    /// Writes the state now if it changed since the last write.
    pub async fn flush(&self) -> Result<(), MlError> {
        stored_cursor::persist(&self.shared, &self.core).await
    }

    pub fn stats(&self) -> CursorStats {
        let state = self.shared.lock();
        let c = lock(&self.core.state);
        CursorStats {
            mark_delete: c.cursor.mark_delete(),
            persisted_mark_delete: c.persisted_mark_delete,
            backlog: c.cursor.backlog(&state.layout),
            acked_ranges: c.cursor.acked_ranges().len(),
            batch_acks: c.cursor.batch_acks().count(),
            persists: c.persists,
            truncated_persists: c.truncated_persists,
            dropped_ranges: c.last_dropped_ranges,
            dropped_batch_acks: c.last_dropped_batch_acks,
        }
    }
}
