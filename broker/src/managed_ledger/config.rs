//! Settings of a managed ledger, with the defaults of Pulsar's `broker.conf`.

use std::time::Duration;

use magnetar_bookie::ledger::LedgerConfig;

use super::MlError;
use super::cache::CacheBudget;
use crate::tiered::Offloader;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagedLedgerConfig {
    /// Bookies per ledger (`managedLedgerDefaultEnsembleSize`).
    pub ensemble: usize,
    /// Copies of each entry (`managedLedgerDefaultWriteQuorum`).
    pub write_quorum: usize,
    /// Copies acknowledged before an append completes (`managedLedgerDefaultAckQuorum`).
    pub ack_quorum: usize,
    /// Roll over once a ledger holds this many entries (`managedLedgerMaxEntriesPerLedger`)…
    pub max_entries_per_ledger: u64,
    /// …or this many bytes (`managedLedgerMaxSizePerLedgerMbytes`)…
    pub max_size_per_ledger: u64,
    /// …but never before the ledger is this old (`managedLedgerMinLedgerRolloverTimeMinutes`).
    pub min_rollover: Duration,
    /// A ledger with entries rolls over at this age whatever its size
    /// (`managedLedgerMaxLedgerRolloverTimeMinutes`).
    pub max_rollover: Duration,
    /// A ledger full by entries or size rolls over before `min_rollover` when the cursors have
    /// consumed every earlier ledger, but not before this age: consumed data is deleted within
    /// about this long at any rate, and a topic makes at most one ledger per this interval.
    pub consumed_rollover_floor: Duration,
    /// Bytes of recently appended entries kept in memory for tailing readers.
    pub cache_bytes: usize,
    /// The broker-wide budget every topic's cache also draws from (`None`: this topic's
    /// `cache_bytes` only).
    pub cache_budget: Option<CacheBudget>,
    /// Cursor state is written at most this often (`managedLedgerDefaultMarkDeleteRateLimit`).
    pub cursor_persist_interval: Duration,
    /// Acknowledged ranges (and partly acknowledged batches) written per cursor; more are kept in
    /// memory only, reported in stats and logs (`managedLedgerMaxUnackedRangesToPersist`).
    pub max_unacked_ranges_persisted: usize,
    /// How long consumed ledgers are kept. `None` is Pulsar's 0: no retention; use
    /// `Some(Duration::MAX)` for Pulsar's −1 (forever).
    pub retention_time: Option<Duration>,
    /// Bytes of consumed ledgers kept. `None` is Pulsar's 0; `Some(u64::MAX)` is −1.
    ///
    /// As in Pulsar, a consumed ledger is deleted once it is older than the retention time *or*
    /// the topic stays at least this large without it, so keeping data by time alone needs
    /// `retention_size: Some(u64::MAX)`.
    pub retention_size: Option<u64>,
    /// The record by which this broker owns the topic: every write of the managed ledger's
    /// metadata (ledger list, cursors) also compares it, so a broker whose ownership lapsed
    /// — its session expired while it still thought it served — writes nothing. `None` for a
    /// managed ledger used outside a broker's ownership (tools, tests).
    pub ownership: Option<OwnershipGuard>,
    /// Where closed ledgers are offloaded to (`None`: no tiered storage).
    pub offloader: Option<Offloader>,
    /// When they are offloaded, and how long the bookies keep them after.
    pub offload: OffloadPolicy,
}

/// When closed ledgers go to tiered storage (the namespace's `offloadThreshold`,
/// `offloadThresholdInSeconds` and `offloadDeletionLagMs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffloadPolicy {
    /// Offload the oldest closed ledgers while the ledgers not offloaded hold more than this
    /// many bytes (`Some(0)`: every closed ledger); `None` never by size.
    pub threshold_bytes: Option<u64>,
    /// Offload ledgers closed longer ago than this; `None` never by age.
    pub threshold_age: Option<Duration>,
    /// How long an offloaded ledger also stays on the bookies.
    pub deletion_lag: Duration,
}

impl Default for OffloadPolicy {
    fn default() -> OffloadPolicy {
        OffloadPolicy {
            threshold_bytes: None,
            threshold_age: None,
            deletion_lag: Duration::from_secs(4 * 60 * 60),
        }
    }
}

/// How long and how much consumed data a managed ledger keeps; see
/// [`ManagedLedgerConfig::retention_time`] and [`ManagedLedgerConfig::retention_size`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Retention {
    pub time: Option<Duration>,
    pub size: Option<u64>,
}

/// An ownership record held by a metadata session: the ephemeral
/// `/namespace/{tenant}/{namespace}/{range}` key of the topic's bundle and the session of
/// the broker that claimed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnershipGuard {
    pub key: String,
    pub session: u64,
}

impl Default for ManagedLedgerConfig {
    fn default() -> ManagedLedgerConfig {
        ManagedLedgerConfig {
            ensemble: 2,
            write_quorum: 2,
            ack_quorum: 2,
            max_entries_per_ledger: 50_000,
            max_size_per_ledger: 2048 * 1024 * 1024,
            min_rollover: Duration::from_secs(10 * 60),
            max_rollover: Duration::from_secs(240 * 60),
            consumed_rollover_floor: Duration::from_secs(15),
            cache_bytes: 16 * 1024 * 1024,
            cache_budget: None,
            cursor_persist_interval: Duration::from_secs(1),
            max_unacked_ranges_persisted: 10_000,
            retention_time: None,
            retention_size: None,
            ownership: None,
            offloader: None,
            offload: OffloadPolicy::default(),
        }
    }
}

impl ManagedLedgerConfig {
    pub fn retention(&self) -> Retention {
        Retention {
            time: self.retention_time,
            size: self.retention_size,
        }
    }

    pub fn ledger_config(&self) -> LedgerConfig {
        LedgerConfig {
            ensemble: self.ensemble,
            write_quorum: self.write_quorum,
            ack_quorum: self.ack_quorum,
        }
    }

    pub fn validate(&self) -> Result<(), MlError> {
        self.ledger_config()
            .validate()
            .map_err(|e| MlError::InvalidConfig(e.to_string()))?;
        if self.max_entries_per_ledger == 0 || self.max_size_per_ledger == 0 {
            return Err(MlError::InvalidConfig(
                "max entries and max size per ledger must be positive".into(),
            ));
        }
        if self.cursor_persist_interval.is_zero() {
            return Err(MlError::InvalidConfig(
                "cursor_persist_interval must be positive".into(),
            ));
        }
        Ok(())
    }

    /// How often the appender checks for a time-based rollover.
    pub(super) fn rollover_check_interval(&self) -> Duration {
        (self.max_rollover / 10)
            .min(self.consumed_rollover_floor)
            .clamp(Duration::from_millis(10), Duration::from_secs(10))
    }
}
