//! Ledger recovery: what a new owner does before trusting a ledger another writer may still
//! hold. Steps:
//! 1. mark the metadata `InRecovery` (compare-and-set), so the old writer's ensemble changes fail;
//! 2. fence the ledger on the last fragment's bookies — the first `E − Qa + 1` to answer are
//!    enough (no write set can still gather `Qa` acknowledgements for the old writer), so one
//!    wedged bookie does not hold recovery up;
//! 3. from the highest last-add-confirmed reported, read entry after entry: an entry any bookie
//!    has may have been acknowledged, so it is written again to its whole write set (recovery
//!    adds pass the fence); stop at the first entry that enough bookies (`Qw − Qa + 1` of its write
//!    set) say they do not have — it cannot have been acknowledged;
//!    A bookie of the write set that cannot take a re-written entry (gone with the writer, as
//!    when a broker and a bookie are lost together) is replaced, as a writer would: the entry
//!    goes to a spare bookie chosen by the placement policy, and a new fragment from that entry
//!    on is recorded in the metadata (compare-and-set; the ledger stays `InRecovery`). Reads
//!    keep using the ensembles the writer left, where the entries are;
//! 4. close the ledger at the last entry kept.
//!
//! Every request to a bookie is bounded: connecting by the options' `connect_timeout`, fences
//! and reads by `read_timeout`, re-writes by `add_timeout` (each counted from when the request
//! is written), so a bookie that accepts connections and never answers cannot hang recovery.

use std::sync::Arc;

use futures::StreamExt;
use futures::future::join_all;
use futures::stream::FuturesUnordered;
use magnetar_metadata::MetadataError;
use magnetar_protocol::bookie::{AddEntryRequest, StatusCode};

use super::metadata::{self, Fragment, LedgerMetadata, LedgerState, Versioned};
use super::{ClientInner, LedgerError, LedgerReader};
use crate::registry;

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

    // Fence, on the first `E − Qa + 1` bookies to answer.
    let bookies = meta
        .fragments
        .last()
        .map(|f| f.bookies.clone())
        .unwrap_or_default();
    let needed = meta.ensemble_size - meta.ack_quorum + 1;
    let mut fences: FuturesUnordered<_> = bookies
        .iter()
        .map(|bookie| fence(&client, id, bookie))
        .collect();
    let mut fenced: Vec<Option<u64>> = Vec::new();
    let mut errors = Vec::new();
    while fenced.len() < needed
        && let Some(reply) = fences.next().await
    {
        match reply {
            Ok(lac) => fenced.push(lac),
            Err(e) => errors.push(e.to_string()),
        }
    }
    drop(fences);
    if fenced.len() < needed {
        return Err(failed(format!(
            "fenced on {} of {} bookies, need {needed}: {}",
            fenced.len(),
            bookies.len(),
            errors.join("; ")
        )));
    }
    let mut last = fenced
        .iter()
        .map(|lac| lac.map_or(-1, |l| l as i64))
        .max()
        .unwrap_or(-1);

    // Re-replicate every entry past the highest LAC that any bookie still has. Reads follow
    // `meta` (where the writer put the entries); writes follow `current`, whose ensemble
    // changes if a bookie cannot take them.
    let mut current = versioned.clone();
    let mut length = 0u64;
    loop {
        let entry = (last + 1) as u64;
        match recovery_read(&client, id, &meta, entry).await? {
            Some(data) => {
                rewrite(&client, id, &mut current, entry, &data, last)
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
    let mut closed = current.metadata.clone();
    closed.state = LedgerState::Closed;
    closed.last_entry_id = last;
    closed.length = length;
    closed.closed_ms = super::now_ms();
    match metadata::update(&client.metadata, id, &closed, current.version).await {
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

/// Fences the ledger on one bookie; returns the last-add-confirmed it reports.
async fn fence(client: &ClientInner, id: u64, bookie: &str) -> Result<Option<u64>, LedgerError> {
    let conn = client.pool.get(bookie).await?;
    conn.within(client.options.read_timeout)
        .fence_ledger(id)
        .await
        .map_err(|e| LedgerError::BookieUnavailable {
            bookie: bookie.to_string(),
            reason: e.to_string(),
        })
}

/// `Some(data)` if a bookie of the write set has the entry; `None` if enough of them say they
/// do not that it cannot have been acknowledged. Asks the whole write set at once.
async fn recovery_read(
    client: &ClientInner,
    id: u64,
    meta: &LedgerMetadata,
    entry: u64,
) -> Result<Option<bytes::Bytes>, LedgerError> {
    let fragment = meta.fragment_for(entry);
    let timeout = client.options.read_timeout;
    let mut reads: FuturesUnordered<_> = meta
        .write_set(entry)
        .into_iter()
        .map(|slot| {
            let bookie = &fragment.bookies[slot];
            async move {
                let Ok(conn) = client.pool.get(bookie).await else {
                    return Err(None);
                };
                conn.within(timeout)
                    .read_entry(id, entry, true)
                    .await
                    .map_err(|e| e.status())
            }
        })
        .collect();
    let mut missing = 0;
    while let Some(reply) = reads.next().await {
        match reply {
            Ok(reply) => return Ok(Some(bytes::Bytes::from(reply.payload))),
            Err(Some(StatusCode::NoSuchEntry | StatusCode::NoSuchLedger)) => {
                missing += 1;
                if missing > meta.write_quorum - meta.ack_quorum {
                    return Ok(None);
                }
            }
            Err(_) => {}
        }
    }
    Err(LedgerError::RecoveryFailed {
        ledger_id: id,
        reason: format!(
            "cannot tell whether entry {entry} was acknowledged: too few bookies answered"
        ),
    })
}

/// Writes a recovered entry to every bookie of its write set in `current` (recovery adds pass
/// the fence); a bookie that fails is replaced by a spare, with the ensemble change recorded
/// in `current`. At least `Qa` must take it.
async fn rewrite(
    client: &ClientInner,
    id: u64,
    current: &mut Versioned,
    entry: u64,
    data: &bytes::Bytes,
    lac: i64,
) -> Result<(), LedgerError> {
    let fragment = current.metadata.fragment_for(entry).clone();
    let slots = current.metadata.write_set(entry);
    let results = join_all(slots.iter().map(|&slot| {
        let bookie = fragment.bookies[slot].clone();
        async move {
            let result = add(client, id, &bookie, entry, data, lac).await;
            (slot, result)
        }
    }))
    .await;
    let mut ok = 0;
    for (slot, result) in results {
        match result {
            Ok(()) => ok += 1,
            Err(e) => {
                tracing::warn!(ledger_id = id, entry, bookie = fragment.bookies[slot], error = %e, "recovery write failed; replacing the bookie");
                if replace_and_add(client, id, current, slot, entry, data, lac).await? {
                    ok += 1;
                }
            }
        }
    }
    if ok >= current.metadata.ack_quorum {
        Ok(())
    } else {
        Err(LedgerError::RecoveryFailed {
            ledger_id: id,
            reason: format!(
                "entry {entry} re-written to {ok} bookies, need {}",
                current.metadata.ack_quorum
            ),
        })
    }
}

/// One recovery add.
async fn add(
    client: &ClientInner,
    id: u64,
    bookie: &str,
    entry: u64,
    data: &bytes::Bytes,
    lac: i64,
) -> Result<(), LedgerError> {
    let request = AddEntryRequest {
        ledger_id: id,
        entry_id: entry,
        last_add_confirmed: u64::try_from(lac).ok(),
        payload: data.to_vec(),
        recovery: true,
    };
    let unavailable = |reason: String| LedgerError::BookieUnavailable {
        bookie: bookie.to_string(),
        reason,
    };
    let conn = client.pool.get(bookie).await?;
    conn.within(client.options.add_timeout)
        .add_entry(request)
        .await
        .map_err(|e| unavailable(e.to_string()))
}

/// Writes `entry` to a spare bookie in place of the one in `slot` and records the ensemble
/// change (a fragment from `entry` on) in `current`. `Ok(false)` when no spare took it.
async fn replace_and_add(
    client: &ClientInner,
    id: u64,
    current: &mut Versioned,
    slot: usize,
    entry: u64,
    data: &bytes::Bytes,
    lac: i64,
) -> Result<bool, LedgerError> {
    let ensemble = current.metadata.fragment_for(entry).bookies.clone();
    client.pool.forget(&ensemble[slot]).await;
    let mut candidates = registry::writable(&client.metadata).await?;
    loop {
        let Some(spare) = client
            .placement
            .replacement(&ensemble, &candidates, &mut rand::rng())
        else {
            return Ok(false);
        };
        if let Err(e) = add(client, id, &spare, entry, data, lac).await {
            tracing::warn!(ledger_id = id, entry, bookie = spare, error = %e, "spare bookie refused a recovery write");
            client.pool.forget(&spare).await;
            candidates.retain(|b| b.address != spare);
            continue;
        }
        let mut next = current.metadata.clone();
        let mut bookies = ensemble.clone();
        bookies[slot] = spare.clone();
        match next.fragments.last_mut() {
            Some(last) if last.first_entry == entry => last.bookies = bookies,
            _ => next.fragments.push(Fragment {
                first_entry: entry,
                bookies,
            }),
        }
        current.version = metadata::update(&client.metadata, id, &next, current.version).await?;
        current.metadata = next;
        tracing::warn!(
            ledger_id = id,
            failed = ensemble[slot],
            replacement = spare,
            first_entry = entry,
            "bookie lost during recovery; ensemble changed"
        );
        return Ok(true);
    }
}
