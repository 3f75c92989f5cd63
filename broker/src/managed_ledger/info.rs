//! The managed ledger's record in the metadata service and where its cursors live.
//!
//! `/managed-ledgers/{name}` holds, as JSON, Pulsar's `ManagedLedgerInfo`:
//! `{"ledgers":[{"ledgerId","entries","size","timestamp"}…],"properties":{…}}`, ledgers ascending
//! by id. The last ledger is the one being written: its `entries`/`size` are 0 until it is
//! closed; a new owner recovers it to learn them. `timestamp` is when a ledger was closed (ms
//! since the epoch; retention counts from it). The record changes only by compare-and-set.
//!
//! `/managed-ledgers/{name}/cursors/{cursor}` holds each cursor's state (see `persist`); cursor
//! names are escaped so that one is always one path segment.

use std::collections::BTreeMap;

use magnetar_metadata::{Expected, MetadataClient, MetadataError, Txn};
use serde::{Deserialize, Serialize};

use super::{MlError, OwnershipGuard};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LedgerRecord {
    pub ledger_id: u64,
    pub entries: u64,
    pub size: u64,
    #[serde(default)]
    pub timestamp: u64,
    /// Set once an offload of this ledger to tiered storage started (Pulsar's `offloadContext`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offload_context: Option<OffloadContext>,
}

impl LedgerRecord {
    /// Whether its entries are in tiered storage (an offload finished).
    pub fn offloaded(&self) -> bool {
        self.offload_context.is_some_and(|c| c.complete)
    }
}

/// Where a ledger's offloaded copy is and how far its offload got. Recorded (not complete)
/// before anything is uploaded, so the objects of an offload that never finished are known and
/// deleted; complete once both objects are written; `bookkeeperDeleted` once the bookies'
/// copy is gone, after the deletion lag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OffloadContext {
    pub uid_msb: u64,
    pub uid_lsb: u64,
    pub complete: bool,
    #[serde(default)]
    pub bookkeeper_deleted: bool,
    /// When the offload completed (ms since the epoch); the deletion lag counts from it.
    #[serde(default)]
    pub timestamp: u64,
}

impl OffloadContext {
    pub fn started(uid: u128) -> OffloadContext {
        OffloadContext {
            uid_msb: (uid >> 64) as u64,
            uid_lsb: uid as u64,
            complete: false,
            bookkeeper_deleted: false,
            timestamp: 0,
        }
    }

    pub fn uid(&self) -> u128 {
        (u128::from(self.uid_msb) << 64) | u128::from(self.uid_lsb)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MlInfo {
    pub ledgers: Vec<LedgerRecord>,
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
}

impl MlInfo {
    pub fn decode(name: &str, bytes: &[u8]) -> Result<MlInfo, MlError> {
        let info: MlInfo = serde_json::from_slice(bytes)
            .map_err(|e| MlError::Corrupt(format!("managed ledger {name}: {e}")))?;
        for pair in info.ledgers.windows(2) {
            if pair[0].ledger_id >= pair[1].ledger_id {
                return Err(MlError::Corrupt(format!(
                    "managed ledger {name}: ledger ids not ascending ({} then {})",
                    pair[0].ledger_id, pair[1].ledger_id
                )));
            }
        }
        Ok(info)
    }

    pub fn encode(&self) -> Vec<u8> {
        // Plain structs of numbers and strings always serialize.
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn ledger_mut(&mut self, ledger_id: u64) -> Option<&mut LedgerRecord> {
        self.ledgers.iter_mut().find(|l| l.ledger_id == ledger_id)
    }
}

pub use magnetar_admin_api::keys::{
    cursor as cursor_key, cursors_prefix, managed_ledger as ml_key,
};

pub fn unescape(segment: &str) -> Result<String, MlError> {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = segment
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| MlError::Corrupt(format!("bad cursor key segment {segment:?}")))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| MlError::Corrupt(format!("bad cursor key {segment:?}")))
}

/// Writes `value` at `key` if it is still as `expected` and, with an `ownership` guard, only
/// while that ownership record is still held by its session; returns the new version. A
/// conflict on either is `Fenced`. When the outcome is unknown (connection lost), reads back to
/// find out.
pub async fn cas(
    metadata: &MetadataClient,
    key: &str,
    value: Vec<u8>,
    expected: Expected,
    ownership: Option<&OwnershipGuard>,
) -> Result<u64, MlError> {
    cas_with(metadata, key, value, expected, ownership, None).await
}

/// As [`cas`], with the writes `with` adds to the same transaction (a new ledger's metadata):
/// all apply or none.
pub async fn cas_with(
    metadata: &MetadataClient,
    key: &str,
    value: Vec<u8>,
    expected: Expected,
    ownership: Option<&OwnershipGuard>,
    with: Option<&(dyn Fn(Txn) -> Txn + Sync)>,
) -> Result<u64, MlError> {
    for _ in 0..5 {
        let written = match (ownership, with) {
            (None, None) => metadata.put(key, value.clone(), expected).await,
            _ => {
                let txn = match with {
                    Some(with) => with(guarded(Txn::new(), ownership)),
                    None => guarded(Txn::new(), ownership),
                };
                metadata
                    .txn(txn.put(key, value.clone(), expected))
                    .await
                    .and_then(|versions| {
                        // The list's own write is the transaction's last.
                        versions.last().copied().ok_or_else(|| {
                            MetadataError::Unavailable("a transaction answered no version".into())
                        })
                    })
            }
        };
        match written {
            Ok(version) => return Ok(version),
            Err(MetadataError::BadVersion { key: lost, .. })
                if ownership.is_some_and(|g| g.key == lost) =>
            {
                tracing::warn!(
                    key,
                    ownership = lost,
                    "the topic's ownership lapsed; fenced"
                );
                return Err(MlError::Fenced);
            }
            Err(MetadataError::Indeterminate(reason)) => {
                tracing::debug!(key, reason, "compare-and-set outcome unknown; reading back");
                let current = metadata.get(key).await?;
                match (&current, expected) {
                    (Some(r), _) if r.value == value => return Ok(r.version),
                    (None, Expected::Absent) => continue,
                    (Some(r), Expected::Version(v)) if r.version == v => continue,
                    _ => return Err(MlError::Fenced),
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(MlError::Metadata(MetadataError::Unavailable(format!(
        "could not write {key}"
    ))))
}

/// `txn` with the ownership compare added, if there is a guard.
pub fn guarded(txn: Txn, ownership: Option<&OwnershipGuard>) -> Txn {
    match ownership {
        Some(guard) => txn.compare(guard.key.clone(), Expected::Session(guard.session)),
        None => txn,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_names_escape_to_one_segment() {
        for name in ["sub", "a/b", "50%", "x\ny", "ünï/cødé"] {
            let escaped = magnetar_admin_api::keys::escape_segment(name);
            assert!(!escaped.contains('/'));
            assert_eq!(unescape(&escaped).expect("round trip"), name);
        }
        assert!(unescape("%zz").is_err());
        assert!(unescape("%4").is_err());
    }

    #[test]
    fn info_is_pulsar_shaped_json_and_checked() {
        let info = MlInfo {
            ledgers: vec![LedgerRecord {
                ledger_id: 3,
                entries: 10,
                size: 100,
                timestamp: 7,
                offload_context: Some(OffloadContext::started(u128::MAX - 5)),
            }],
            properties: BTreeMap::new(),
        };
        let json = String::from_utf8(info.encode()).expect("utf8");
        assert!(json.contains("\"ledgerId\":3"), "{json}");
        assert!(json.contains("\"offloadContext\":{\"uidMsb\""), "{json}");
        assert_eq!(
            info.ledgers[0].offload_context.map(|c| c.uid()),
            Some(u128::MAX - 5)
        );
        assert_eq!(MlInfo::decode("t", json.as_bytes()).expect("decode"), info);
        let bad = br#"{"ledgers":[{"ledgerId":5,"entries":0,"size":0},{"ledgerId":4,"entries":0,"size":0}]}"#;
        assert!(matches!(MlInfo::decode("t", bad), Err(MlError::Corrupt(_))));
        assert!(MlInfo::decode("t", b"not json").is_err());
    }
}
