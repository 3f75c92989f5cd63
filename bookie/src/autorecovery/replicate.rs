//! Copying one damaged fragment's lost copies to a new bookie, then pointing the ledger's
//! metadata at it.
//!
//! For the lost ensemble slot `s` of fragment `[first, last]`: a replacement bookie is chosen by
//! the placement policy (writable, not in the fragment's ensemble); every entry the slot stored is
//! read from another bookie of its write set and written to the replacement as a recovery add
//! (which a fenced ledger accepts); only when every entry is there is the slot switched, by
//! compare-and-set on the ledger's metadata. A reader using the old metadata meanwhile falls over
//! from the lost bookie to the next one of the write set, as for any dead bookie. A pass that
//! fails halfway leaves the metadata unchanged; the next pass copies again (adds are idempotent).

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use futures::StreamExt;
use magnetar_metadata::MetadataError;
use magnetar_protocol::bookie::AddEntryRequest;

use super::audit::{self, DamagedFragment};
use crate::ledger::metadata::{self, Versioned};
use crate::ledger::{LedgerClient, LedgerError, LedgerState};
use crate::registry;

/// Entries copied concurrently.
const COPY_PARALLELISM: usize = 32;
/// Attempts at the metadata compare-and-set before the pass gives up on a fragment.
const CAS_ATTEMPTS: usize = 5;

/// Running totals, shared with metrics.
#[derive(Debug, Default)]
pub struct CopyCounters {
    pub entries: AtomicU64,
    pub bytes: AtomicU64,
}

/// What copying one slot of one fragment did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Copied {
    pub replacement: String,
    pub entries: u64,
    pub bytes: u64,
}

/// Copies the entries of `fragment`'s lost `slot` to a new bookie and records it in the
/// ledger's metadata. `lost` are the bookies not to read from.
pub async fn repair_slot(
    ledgers: &LedgerClient,
    ledger_id: u64,
    fragment: &DamagedFragment,
    slot: usize,
    lost: &HashSet<String>,
    counters: &Arc<CopyCounters>,
) -> Result<Copied, LedgerError> {
    let client = ledgers.metadata();
    let versioned = metadata::read(client, ledger_id).await?;
    let meta = &versioned.metadata;
    if meta.state != LedgerState::Closed {
        return Err(LedgerError::Internal(format!(
            "ledger {ledger_id} is not closed; its writer repairs it"
        )));
    }
    let Some(last) = fragment.last_entry else {
        return Err(LedgerError::Internal("fragment is still open".into()));
    };
    let ensemble = meta
        .fragments
        .get(fragment.index)
        .filter(|f| f.first_entry == fragment.first_entry)
        .map(|f| f.bookies.clone())
        .ok_or_else(|| LedgerError::Internal("fragment changed since the audit".into()))?;
    let candidates = registry::writable(client).await?;
    let replacement = ledgers
        .placement()
        .replacement(&ensemble, &candidates, &mut rand::rng())
        .ok_or(LedgerError::NotEnoughBookies {
            needed: ensemble.len() + 1,
            available: candidates.len(),
        })?;

    let entries = audit::entries_on_slot(meta, fragment.first_entry, last, slot);
    let lac = u64::try_from(meta.last_entry_id).ok();
    let copies = futures::stream::iter(entries)
        .map(|entry| {
            let ensemble = &ensemble;
            let replacement = &replacement;
            async move {
                let mut sources = meta
                    .write_set(entry)
                    .into_iter()
                    .filter(|&k| k != slot)
                    .map(|k| &ensemble[k])
                    .filter(|b| !lost.contains(*b));
                let data = loop {
                    let Some(source) = sources.next() else {
                        return Err(LedgerError::Internal(format!(
                            "entry {entry} of ledger {ledger_id} has no readable copy left"
                        )));
                    };
                    match read(ledgers, source, ledger_id, entry).await {
                        Ok(data) => break data,
                        Err(e) => {
                            tracing::debug!(ledger_id, entry, source, error = %e, "copy source failed");
                        }
                    }
                };
                let bytes = data.len() as u64;
                let conn = ledgers.bookie(replacement).await?;
                let add = AddEntryRequest {
                    ledger_id,
                    entry_id: entry,
                    last_add_confirmed: lac,
                    payload: data,
                    recovery: true,
                };
                let timeout = ledgers.options().add_timeout;
                if let Err(e) = conn.within(timeout).add_entry(add).await {
                    ledgers.forget_bookie(replacement).await;
                    return Err(LedgerError::BookieUnavailable {
                        bookie: replacement.clone(),
                        reason: e.to_string(),
                    });
                }
                counters.entries.fetch_add(1, Ordering::Relaxed);
                counters.bytes.fetch_add(bytes, Ordering::Relaxed);
                Ok(bytes)
            }
        })
        .buffer_unordered(COPY_PARALLELISM)
        .collect::<Vec<_>>()
        .await;
    let mut copied = Copied {
        replacement: replacement.clone(),
        entries: 0,
        bytes: 0,
    };
    for result in copies {
        copied.bytes += result?;
        copied.entries += 1;
    }

    // Switch the slot, unless someone else changed the fragment.
    let lost_bookie = ensemble[slot].clone();
    let mut current = versioned;
    for _ in 0..CAS_ATTEMPTS {
        let mut next = current.metadata.clone();
        let Some(target) = next.fragments.get_mut(fragment.index) else {
            return Err(LedgerError::Internal("fragment vanished".into()));
        };
        if target.bookies.get(slot) != Some(&lost_bookie) {
            return Err(LedgerError::Internal(
                "fragment was re-replicated by someone else".into(),
            ));
        }
        target.bookies[slot] = replacement.clone();
        match metadata::update(client, ledger_id, &next, current.version).await {
            Ok(_) => return Ok(copied),
            Err(LedgerError::Metadata(MetadataError::BadVersion { .. })) => {
                current = reread(ledgers, ledger_id).await?;
            }
            Err(e) => return Err(e),
        }
    }
    Err(LedgerError::Internal(
        "ledger metadata kept changing under re-replication".into(),
    ))
}

async fn reread(ledgers: &LedgerClient, ledger_id: u64) -> Result<Versioned, LedgerError> {
    metadata::read(ledgers.metadata(), ledger_id).await
}

async fn read(
    ledgers: &LedgerClient,
    bookie: &str,
    ledger_id: u64,
    entry: u64,
) -> Result<Vec<u8>, LedgerError> {
    let conn = ledgers.bookie(bookie).await?;
    let timeout = ledgers.options().read_timeout;
    match conn
        .within(timeout)
        .read_entry(ledger_id, entry, false)
        .await
    {
        Ok(reply) => Ok(reply.payload),
        Err(e) => {
            if conn.is_closed() {
                ledgers.forget_bookie(bookie).await;
            }
            Err(LedgerError::BookieUnavailable {
                bookie: bookie.to_string(),
                reason: e.to_string(),
            })
        }
    }
}
