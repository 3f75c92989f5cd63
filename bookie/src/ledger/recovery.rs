//! Ledger recovery: what a new owner does before trusting a ledger another writer may still
//! hold. Steps:
//! 1. mark the metadata `InRecovery` (compare-and-set), so the old writer's ensemble changes fail;
//! 2. fence the ledger on the last fragment's bookies — at least `E − Qa + 1` of them, so that no
//!    write set can still gather `Qa` acknowledgements for the old writer;
//! 3. from the highest last-add-confirmed reported, read entry after entry: an entry any bookie
//!    has may have been acknowledged, so it is written again to its whole write set (recovery
//!    adds pass the fence); stop at the first entry that enough bookies (`Qw − Qa + 1` of its write
//!    set) say they do not have — it cannot have been acknowledged;
//! 4. close the ledger at the last entry kept.

use std::sync::Arc;

use futures::future::join_all;
use magnetar_metadata::MetadataError;
use magnetar_protocol::bookie::{AddEntryRequest, StatusCode};

use super::metadata::{self, LedgerMetadata, LedgerState};
use super::{ClientInner, LedgerError, LedgerReader};

pub(super) async fn recover(
    client: Arc<ClientInner>,
    id: u64,
) -> Result<LedgerReader, LedgerError> {
    let failed = |reason: String| LedgerError::RecoveryFailed {
        ledger_id: id,
        reason,
    };
    let mut versioned = metadata::read(&client.metadata, id).await?;
    if versioned.metadata.state == LedgerState::Closed {
        return Ok(LedgerReader::closed(id, client, versioned.metadata));
    }
    if versioned.metadata.state == LedgerState::Open {
        versioned.metadata.state = LedgerState::InRecovery;
        versioned.version =
            metadata::update(&client.metadata, id, &versioned.metadata, versioned.version).await?;
    }
    let meta = versioned.metadata.clone();

    // Fence.
    let bookies = meta
        .fragments
        .last()
        .map(|f| f.bookies.clone())
        .unwrap_or_default();
    let replies = join_all(bookies.iter().map(|bookie| {
        let client = client.clone();
        async move {
            let conn = client.pool.get(bookie).await?;
            conn.fence_ledger(id)
                .await
                .map_err(|e| LedgerError::BookieUnavailable {
                    bookie: bookie.clone(),
                    reason: e.to_string(),
                })
        }
    }))
    .await;
    let fenced: Vec<Option<u64>> = replies.into_iter().filter_map(Result::ok).collect();
    let needed = meta.ensemble_size - meta.ack_quorum + 1;
    if fenced.len() < needed {
        return Err(failed(format!(
            "fenced on {} of {} bookies, need {needed}",
            fenced.len(),
            bookies.len()
        )));
    }
    let mut last = fenced
        .iter()
        .map(|lac| lac.map_or(-1, |l| l as i64))
        .max()
        .unwrap_or(-1);

    // Re-replicate every entry past the highest LAC that any bookie still has.
    let mut length = 0u64;
    loop {
        let entry = (last + 1) as u64;
        match recovery_read(&client, id, &meta, entry).await? {
            Some(data) => {
                rewrite(&client, id, &meta, entry, &data, last)
                    .await
                    .map_err(|e| failed(e.to_string()))?;
                length += data.len() as u64;
                last = entry as i64;
            }
            None => break,
        }
    }
    // The writer's byte count died with it; recovery records only the bytes of the tail it
    // re-wrote (`length` is exact only for ledgers their writer closed).
    let mut closed = meta.clone();
    closed.state = LedgerState::Closed;
    closed.last_entry_id = last;
    closed.length = length;
    match metadata::update(&client.metadata, id, &closed, versioned.version).await {
        Ok(_) => Ok(LedgerReader::closed(id, client, closed)),
        Err(LedgerError::Metadata(MetadataError::BadVersion { .. })) => {
            // Another recovery closed it first: trust its result.
            let current = metadata::read(&client.metadata, id).await?;
            if current.metadata.state == LedgerState::Closed {
                Ok(LedgerReader::closed(id, client, current.metadata))
            } else {
                Err(failed("ledger metadata changed during recovery".into()))
            }
        }
        Err(e) => Err(e),
    }
}

/// `Some(data)` if any bookie of the write set has the entry; `None` if enough of them say they
/// do not that it cannot have been acknowledged.
async fn recovery_read(
    client: &ClientInner,
    id: u64,
    meta: &LedgerMetadata,
    entry: u64,
) -> Result<Option<bytes::Bytes>, LedgerError> {
    let fragment = meta.fragment_for(entry);
    let mut missing = 0;
    for slot in meta.write_set(entry) {
        let bookie = &fragment.bookies[slot];
        let Ok(conn) = client.pool.get(bookie).await else {
            continue;
        };
        match conn.read_entry(id, entry, true).await {
            Ok(reply) => return Ok(Some(bytes::Bytes::from(reply.payload))),
            Err(e)
                if matches!(
                    e.status(),
                    Some(StatusCode::NoSuchEntry | StatusCode::NoSuchLedger)
                ) =>
            {
                missing += 1
            }
            Err(_) => {}
        }
    }
    if missing > meta.write_quorum - meta.ack_quorum {
        Ok(None)
    } else {
        Err(LedgerError::RecoveryFailed {
            ledger_id: id,
            reason: format!(
                "cannot tell whether entry {entry} was acknowledged: too few bookies answered"
            ),
        })
    }
}

/// Writes a recovered entry to every bookie of its write set (recovery adds pass the fence);
/// at least `Qa` must take it.
async fn rewrite(
    client: &ClientInner,
    id: u64,
    meta: &LedgerMetadata,
    entry: u64,
    data: &bytes::Bytes,
    lac: i64,
) -> Result<(), LedgerError> {
    let fragment = meta.fragment_for(entry);
    let results = join_all(meta.write_set(entry).into_iter().map(|slot| {
        let bookie = fragment.bookies[slot].clone();
        let add = AddEntryRequest {
            ledger_id: id,
            entry_id: entry,
            last_add_confirmed: u64::try_from(lac).ok(),
            payload: data.to_vec(),
            recovery: true,
        };
        async move {
            let conn = client.pool.get(&bookie).await?;
            conn.add_entry(add)
                .await
                .map_err(|e| LedgerError::BookieUnavailable {
                    bookie,
                    reason: e.to_string(),
                })
        }
    }))
    .await;
    let ok = results.iter().filter(|r| r.is_ok()).count();
    if ok >= meta.ack_quorum {
        Ok(())
    } else {
        Err(LedgerError::RecoveryFailed {
            ledger_id: id,
            reason: format!(
                "entry {entry} re-written to {ok} bookies, need {}",
                meta.ack_quorum
            ),
        })
    }
}
