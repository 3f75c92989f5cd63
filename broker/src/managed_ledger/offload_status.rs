//! The outcome of a managed ledger's offloads, as the admin API reports it (a leaf: the offload
//! task and the shared state both use it).

use crate::position::Position;

/// Pulsar's `LongRunningProcessStatus.Status`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum OffloadProgress {
    #[default]
    NotRun,
    Running,
    Success,
    Error,
}

impl OffloadProgress {
    pub fn as_str(self) -> &'static str {
        match self {
            OffloadProgress::NotRun => "NOT_RUN",
            OffloadProgress::Running => "RUNNING",
            OffloadProgress::Success => "SUCCESS",
            OffloadProgress::Error => "ERROR",
        }
    }
}

/// The outcome of the last offload (Pulsar's `OffloadProcessStatus`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OffloadStatus {
    pub progress: OffloadProgress,
    pub last_error: String,
    /// The first entry not in tiered storage.
    pub first_unoffloaded: Option<Position>,
}

#[derive(Debug, Default)]
pub(crate) struct OffloadState {
    pub status: OffloadStatus,
    /// An admin asked for the ledgers before this position.
    pub requested: Option<Position>,
}
