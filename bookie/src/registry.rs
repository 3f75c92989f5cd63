//! Live bookies in the metadata service. Each bookie keeps an ephemeral key
//! `/bookies/{address}` (owned by its session, so it vanishes when the bookie dies) holding a
//! JSON [`BookieInfo`]; ledger clients pick ensembles from the writable ones.

use magnetar_metadata::{Expected, MetadataClient, MetadataError, Record, Session};
use serde::{Deserialize, Serialize};

/// Where bookie registrations live.
pub const BOOKIES_PREFIX: &str = "/bookies/";

/// What a bookie says about itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BookieInfo {
    /// `host:port` the bookie protocol is served at; also the bookie's id.
    pub address: String,
    /// A read-only bookie serves reads but takes no new entries (its disk is nearly full).
    pub read_only: bool,
    pub free_disk_bytes: u64,
    pub total_disk_bytes: u64,
}

fn key(address: &str) -> String {
    format!("{BOOKIES_PREFIX}{address}")
}

/// Writes (or updates) this bookie's registration, owned by `session`.
pub async fn register(
    client: &MetadataClient,
    session: &Session,
    info: &BookieInfo,
) -> Result<(), MetadataError> {
    let value = serde_json::to_vec(info).map_err(|e| MetadataError::Internal(e.to_string()))?;
    client
        .put_ephemeral(&key(&info.address), value, Expected::Any, session)
        .await
        .map(|_| ())
}

/// Every registered bookie, in address order. Unreadable registrations are skipped with a warning.
pub async fn list(client: &MetadataClient) -> Result<Vec<BookieInfo>, MetadataError> {
    Ok(parse(client.list(BOOKIES_PREFIX).await?))
}

fn parse(records: Vec<Record>) -> Vec<BookieInfo> {
    records
        .into_iter()
        .filter_map(|record| match serde_json::from_slice(&record.value) {
            Ok(info) => Some(info),
            Err(e) => {
                tracing::warn!(key = record.key, error = %e, "ignoring unreadable bookie registration");
                None
            }
        })
        .collect()
}

/// Writable bookies only.
pub async fn writable(client: &MetadataClient) -> Result<Vec<BookieInfo>, MetadataError> {
    Ok(writable_of(client.list(BOOKIES_PREFIX).await?))
}

/// The writable bookies among registration records (e.g. a cached copy of `/bookies/`).
pub fn writable_of(records: Vec<Record>) -> Vec<BookieInfo> {
    parse(records)
        .into_iter()
        .filter(|b| !b.read_only)
        .collect()
}
