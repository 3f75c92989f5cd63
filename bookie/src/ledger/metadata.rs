//! Ledger metadata, stored at `/ledgers/{id}` in the metadata service as JSON and changed only by
//! compare-and-set on its version. Ledger ids come from the version of the counter key
//! `/ledgers-counter`, which grows by one with every put: unique, never reused, and rising across
//! the whole cluster, which is what keeps every managed ledger's ledgers (and so its positions)
//! in order when its topic moves between brokers or its list was trimmed to nothing.

use std::collections::BTreeMap;

use magnetar_metadata::{Expected, MetadataClient};
use serde::{Deserialize, Serialize};

use super::LedgerError;

const COUNTER_KEY: &str = "/ledgers-counter";
/// Where ledger metadata lives: `{prefix}{id:020}`.
pub const LEDGERS_PREFIX: &str = "/ledgers/";

pub fn key(ledger_id: u64) -> String {
    format!("{LEDGERS_PREFIX}{ledger_id:020}")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LedgerState {
    Open,
    /// A reader is fencing and closing it; the writer must stop.
    InRecovery,
    Closed,
}

/// Entries from `first_entry` on are stored on `bookies` (an ensemble); entry `e` goes to the
/// write set `bookies[(e + k) % E]` for `k` in `0..write_quorum`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fragment {
    pub first_entry: u64,
    pub bookies: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerMetadata {
    pub ensemble_size: usize,
    pub write_quorum: usize,
    pub ack_quorum: usize,
    pub state: LedgerState,
    /// Last entry of a closed ledger, −1 if empty; meaningless while open.
    pub last_entry_id: i64,
    /// Bytes in a closed ledger.
    pub length: u64,
    pub fragments: Vec<Fragment>,
    pub created_ms: u64,
    /// When its writer or a recovery closed it (ms since the epoch); 0 while open and for
    /// ledgers closed before this was recorded.
    #[serde(default)]
    pub closed_ms: u64,
    /// Free-form properties from the creator (e.g. the managed ledger it belongs to).
    pub custom: BTreeMap<String, String>,
}

impl LedgerMetadata {
    /// The fragment holding `entry`.
    pub fn fragment_for(&self, entry: u64) -> &Fragment {
        self.fragments
            .iter()
            .rev()
            .find(|f| f.first_entry <= entry)
            .unwrap_or(&self.fragments[0])
    }

    /// Indexes into the fragment's ensemble that store `entry`.
    pub fn write_set(&self, entry: u64) -> Vec<usize> {
        (0..self.write_quorum)
            .map(|k| (entry as usize + k) % self.ensemble_size)
            .collect()
    }

    /// Every bookie that ever held part of this ledger.
    pub fn all_bookies(&self) -> Vec<String> {
        let mut all: Vec<String> = self
            .fragments
            .iter()
            .flat_map(|f| f.bookies.iter().cloned())
            .collect();
        all.sort();
        all.dedup();
        all
    }
}

/// A ledger's metadata and the version it was read at.
#[derive(Debug, Clone)]
pub struct Versioned {
    pub metadata: LedgerMetadata,
    pub version: u64,
}

/// The version of a ledger's metadata just created (the metadata service numbers a key's
/// versions from 1), e.g. by [`super::NewLedger::put`] in someone else's transaction.
pub const CREATED_VERSION: u64 = 1;

pub async fn allocate_id(client: &MetadataClient) -> Result<u64, LedgerError> {
    Ok(client.put(COUNTER_KEY, Vec::new(), Expected::Any).await?)
}

/// The stored form of `metadata`.
pub fn encode(metadata: &LedgerMetadata) -> Result<Vec<u8>, LedgerError> {
    serde_json::to_vec(metadata).map_err(|e| LedgerError::Internal(e.to_string()))
}

pub async fn read(client: &MetadataClient, ledger_id: u64) -> Result<Versioned, LedgerError> {
    let record = client
        .get(&key(ledger_id))
        .await?
        .ok_or(LedgerError::NoSuchLedger(ledger_id))?;
    let metadata =
        serde_json::from_slice(&record.value).map_err(|e| LedgerError::CorruptMetadata {
            ledger_id,
            reason: e.to_string(),
        })?;
    Ok(Versioned {
        metadata,
        version: record.version,
    })
}

pub async fn create(
    client: &MetadataClient,
    ledger_id: u64,
    metadata: &LedgerMetadata,
) -> Result<u64, LedgerError> {
    Ok(client
        .put(&key(ledger_id), encode(metadata)?, Expected::Absent)
        .await?)
}

/// Replaces the metadata if it is still at `version`; returns the new version.
pub async fn update(
    client: &MetadataClient,
    ledger_id: u64,
    metadata: &LedgerMetadata,
    version: u64,
) -> Result<u64, LedgerError> {
    let value = serde_json::to_vec(metadata).map_err(|e| LedgerError::Internal(e.to_string()))?;
    Ok(client
        .put(&key(ledger_id), value, Expected::Version(version))
        .await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn striping_and_fragments() {
        let metadata = LedgerMetadata {
            ensemble_size: 3,
            write_quorum: 2,
            ack_quorum: 2,
            state: LedgerState::Open,
            last_entry_id: -1,
            length: 0,
            fragments: vec![
                Fragment {
                    first_entry: 0,
                    bookies: vec!["a".into(), "b".into(), "c".into()],
                },
                Fragment {
                    first_entry: 10,
                    bookies: vec!["a".into(), "d".into(), "c".into()],
                },
            ],
            created_ms: 0,
            closed_ms: 0,
            custom: BTreeMap::new(),
        };
        assert_eq!(metadata.write_set(0), vec![0, 1]);
        assert_eq!(metadata.write_set(2), vec![2, 0]);
        assert_eq!(metadata.fragment_for(9).bookies[1], "b");
        assert_eq!(metadata.fragment_for(10).bookies[1], "d");
        assert_eq!(metadata.all_bookies(), vec!["a", "b", "c", "d"]);
    }
}
