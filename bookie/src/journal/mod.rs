//! The journal: the bookie's write-ahead log.
//!
//! Every change (entry add, fence, ledger deletion) is appended as a [`Record`] to preallocated
//! segment files in the journal directory. A dedicated writer thread does **group commit**: it
//! takes every pending append (up to a byte/count limit, waiting at most a short configurable
//! delay for more), writes them with one `pwrite`, makes them durable with one `fdatasync`, and
//! hands the durable batch to an apply thread. The apply thread gives the records to the owner's
//! *applier* (the bookie writes them to ledger storage) and only then completes each append, so an
//! acknowledged change is both durable and visible to reads. While one batch is being applied the
//! writer is already writing the next.
//!
//! The apply thread also tracks the [`Position`] up to which everything has been applied: a
//! checkpoint makes ledger storage durable up to there and may then drop older segments.

mod record;
mod replay;
mod segment;
mod writer;

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use record::{Damage, Decoded, Record, decode};
pub use replay::{ReplayError, ReplayOutcome, replay};
pub use segment::Position;
pub use writer::{Applier, Completion, Journal, JournalStats};

/// Tuning of the journal; every field has a default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JournalConfig {
    /// Bytes preallocated for each segment file.
    pub segment_size: u64,
    /// A group commit stops taking appends once its records reach this many bytes.
    pub max_batch_bytes: usize,
    /// A group commit stops taking appends once it holds this many records.
    pub max_batch_records: usize,
    /// How long, in microseconds, a group commit may wait for more appends once the queue runs
    /// dry. 0 writes as soon as the queue is empty; appends still pile up during each fsync.
    pub max_group_wait_us: u64,
}

impl Default for JournalConfig {
    fn default() -> Self {
        JournalConfig {
            segment_size: 64 * 1024 * 1024,
            max_batch_bytes: 2 * 1024 * 1024,
            max_batch_records: 16 * 1024,
            max_group_wait_us: 0,
        }
    }
}

impl JournalConfig {
    pub fn max_group_wait(&self) -> Duration {
        Duration::from_micros(self.max_group_wait_us)
    }

    /// Largest record a segment of this configuration can take with a full batch beside it.
    pub fn max_record_len(&self) -> u64 {
        self.segment_size
            .saturating_sub(self.max_batch_bytes as u64)
    }
}

/// Why the journal could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("journal i/o error while {action}: {source}")]
    Io {
        action: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("journal corrupt at {position}: {detail}")]
    Corrupt { position: Position, detail: String },
}

impl JournalError {
    pub(crate) fn io(action: &'static str, source: std::io::Error) -> Self {
        JournalError::Io { action, source }
    }
}

/// Why one append did not become durable. Cheap to clone: one failure completes many appends.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AppendError {
    #[error("journal write failed: {0}")]
    Io(Arc<std::io::Error>),
    #[error("applying to ledger storage failed: {0}")]
    Apply(Arc<dyn std::error::Error + Send + Sync>),
    #[error("record of {len} bytes exceeds the journal's maximum of {max}")]
    TooLarge { len: u64, max: u64 },
    #[error("journal is closed")]
    Closed,
}
