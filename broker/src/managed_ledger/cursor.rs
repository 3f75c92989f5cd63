//! `ManagedCursor`: a durable subscription's cursor bound to its managed ledger.
//!
//! The acknowledgement state is the sans-IO [`Cursor`], and it has one owner: whoever opened
//! the cursor ([`ManagedLedger::open_cursor`](super::ManagedLedger::open_cursor) hands it the
//! state) until it gives the state back with [`ManagedCursor::release`]. The holder acks on its
//! own copy and, at the rate it chooses (`cursor_persist_interval`), asks this handle to write
//! it. The managed ledger never changes the state itself; it remembers where the last write put
//! the mark-delete position, which is all trimming trusts.

use std::sync::Arc;
use std::time::Duration;

use super::MlError;
use super::shared::{CursorCore, Shared, lock};
use super::stored_cursor;
use crate::cursor::Cursor;
use crate::position::Position;

/// Where a new cursor starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InitialPosition {
    /// After the last entry written: only new entries are delivered.
    Latest,
    /// Before the first entry still stored.
    Earliest,
}

/// A cursor's persistence figures for stats and metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CursorStats {
    /// Where the last write left the mark-delete position: what a restart restores.
    pub persisted_mark_delete: Position,
    /// Successful writes of the cursor state.
    pub persists: u64,
    /// Writes that had to leave ranges or batches out (their entries would be redelivered).
    pub truncated_persists: u64,
    /// Ranges and batches left out of the last write.
    pub dropped_ranges: u64,
    pub dropped_batch_acks: u64,
    /// The state itself while no holder has it (a subscription not loaded).
    pub idle: Option<IdleCursorStats>,
}

/// The figures of a cursor nobody holds, read from the state the managed ledger keeps for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdleCursorStats {
    pub mark_delete: Position,
    /// The first entry not acknowledged, where reading resumes.
    pub read_position: Position,
    /// Entries after mark-delete not yet acknowledged.
    pub backlog: u64,
    pub acked_ranges: usize,
    pub batch_acks: usize,
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

    /// How often its holder should write a changed state (the namespace's mark-delete rate).
    pub fn persist_interval(&self) -> Duration {
        self.shared.config.cursor_persist_interval
    }

    /// Writes `cursor`, the state its holder owns, now. Refused with `Fenced` once another
    /// broker owns the topic and with `CursorClosed` once the cursor is deleted.
    pub async fn persist(&self, cursor: &Cursor) -> Result<(), MlError> {
        stored_cursor::write(&self.shared, &self.core, cursor).await
    }

    /// Gives the state back when its holder stops: stats read it, the next
    /// [`open_cursor`](super::ManagedLedger::open_cursor) takes it. `unwritten` says the
    /// holder's last write did not cover it; the background task then writes it.
    pub fn release(&self, cursor: Cursor, unwritten: bool) {
        let mut record = lock(&self.core.record);
        if record.deleted {
            return;
        }
        record.idle = Some(cursor);
        record.idle_unwritten = unwritten;
        if unwritten {
            super::trim::wake(&self.shared);
        }
    }

    pub fn stats(&self) -> CursorStats {
        let layout = self.shared.lock().layout.clone();
        let record = lock(&self.core.record);
        CursorStats {
            persisted_mark_delete: record.persisted_mark_delete,
            persists: record.persists,
            truncated_persists: record.truncated_persists,
            dropped_ranges: record.last_dropped_ranges,
            dropped_batch_acks: record.last_dropped_batch_acks,
            idle: record.idle.as_ref().map(|c| IdleCursorStats {
                mark_delete: c.mark_delete(),
                read_position: c.next_unacked(&layout),
                backlog: c.backlog(&layout),
                acked_ranges: c.acked_ranges().len(),
                batch_acks: c.batch_acks().count(),
            }),
        }
    }
}
