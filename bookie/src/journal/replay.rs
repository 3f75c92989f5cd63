//! Replay of the journal after a restart: every record from a checkpoint position on, in order.
//!
//! Each segment is read up to its first zeroed header or its end. Damage (a torn or corrupt
//! record) in the *last* segment is the tail of a batch that was being written when the process
//! died: none of it was acknowledged, so replay stops there and the segment is cut at that offset.
//! Damage in an earlier segment cannot come from a crash (a segment is only left once all of it
//! is durable), so it is reported as corruption for a human to look at rather than skipped.

use std::path::Path;

use super::JournalError;
use super::record::{self, Damage, Decoded, Record};
use super::segment::{self, Position};

/// What a replay found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayOutcome {
    /// Records handed to the caller.
    pub records: u64,
    /// Just past the last valid record (the checkpoint position itself if there was none).
    pub end: Position,
    /// Highest segment id present, if any: the journal continues after it.
    pub last_segment: Option<u64>,
    /// Where the last segment was cut, and why.
    pub truncated: Option<(Position, Damage)>,
}

/// Reads the records at and after `from` and hands each to `apply`, in journal order.
pub fn replay<E>(
    dir: &Path,
    from: Position,
    mut apply: impl FnMut(Record) -> Result<(), E>,
) -> Result<ReplayOutcome, ReplayError<E>> {
    let segments = segment::list(dir).map_err(|e| JournalError::io("listing segments", e))?;
    let mut outcome = ReplayOutcome {
        records: 0,
        end: from,
        last_segment: segments.last().copied(),
        truncated: None,
    };
    let to_read: Vec<u64> = segments
        .into_iter()
        .filter(|id| *id >= from.segment)
        .collect();
    for (i, &id) in to_read.iter().enumerate() {
        let is_last = i + 1 == to_read.len();
        let bytes = std::fs::read(segment::path(dir, id))
            .map_err(|e| JournalError::io("reading a segment", e))?;
        let mut offset = if id == from.segment { from.offset } else { 0 };
        if offset > bytes.len() as u64 {
            return Err(JournalError::Corrupt {
                position: Position {
                    segment: id,
                    offset,
                },
                detail: format!("checkpoint is past the segment's {} bytes", bytes.len()),
            }
            .into());
        }
        loop {
            // `offset` never passes `bytes.len()`: it only grows by decoded record lengths.
            let rest = bytes.get(offset as usize..).unwrap_or_default();
            match record::decode(rest) {
                Decoded::Record { record, len } => {
                    apply(record).map_err(ReplayError::Apply)?;
                    outcome.records += 1;
                    offset += len as u64;
                }
                Decoded::End => break,
                Decoded::Damaged(damage) => {
                    let position = Position {
                        segment: id,
                        offset,
                    };
                    if !is_last {
                        return Err(JournalError::Corrupt {
                            position,
                            detail: damage.to_string(),
                        }
                        .into());
                    }
                    segment::truncate(dir, id, offset)
                        .map_err(|e| JournalError::io("truncating a torn tail", e))?;
                    tracing::warn!(%position, %damage, "journal tail torn; truncated");
                    outcome.truncated = Some((position, damage));
                    break;
                }
            }
        }
        outcome.end = Position {
            segment: id,
            offset,
        };
    }
    Ok(outcome)
}

/// A replay failure: the journal's own, or the caller's while applying a record.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError<E> {
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error("applying a replayed record: {0}")]
    Apply(#[source] E),
}
