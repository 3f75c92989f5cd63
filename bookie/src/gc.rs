//! Garbage collection driven by the ledger metadata: every `gc_interval_ms` the bookie lists the
//! ledgers it holds and looks up each one's metadata key (`/ledgers/{id:020}`); a ledger whose
//! metadata is gone is deleted from the bookie's storage. This is how a bookie that missed the
//! ledger client's delete (it was down, or the client died halfway) gets its disk back.
//!
//! A ledger is only collected once its metadata was found missing in two consecutive passes, so
//! at least one interval apart; a failed lookup proves nothing and ends the pass. (The ledger
//! client creates a ledger's metadata before writing any entry, so a bookie holding entries of a
//! ledger without metadata should mean a deleted ledger; the second look guards against anything
//! that writes first, such as a create and a delete racing with a pass.)

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use magnetar_metadata::{MetadataClient, MetadataError};
use tokio_util::sync::CancellationToken;

use crate::bookie::Bookie;
use crate::error::OpError;
use crate::ledger::metadata;

/// Metadata lookups in flight at once during a pass.
const LOOKUP_PARALLELISM: usize = 16;

/// Which ledgers to collect, from the ledgers found without metadata pass after pass.
#[derive(Debug, Default)]
pub struct GcTracker {
    /// Found without metadata in the last complete pass.
    suspects: BTreeSet<u64>,
}

impl GcTracker {
    /// Records a complete pass; returns the ledgers missing in it and in the one before.
    /// Suspects that are no longer missing (metadata back, or the ledger gone) are forgotten.
    pub fn pass(&mut self, missing: BTreeSet<u64>) -> Vec<u64> {
        let collect = missing.intersection(&self.suspects).copied().collect();
        self.suspects = missing;
        collect
    }
}

/// Why a pass stopped early.
#[derive(Debug, thiserror::Error)]
pub(crate) enum GcError {
    #[error("listing local ledgers: {0}")]
    List(#[source] OpError),
    #[error("looking up ledger metadata: {0}")]
    Metadata(#[from] MetadataError),
    #[error("deleting ledger {ledger_id}: {source}")]
    Delete {
        ledger_id: u64,
        #[source]
        source: OpError,
    },
}

/// Runs a pass every `interval` until `shutdown`.
pub(crate) async fn run(
    bookie: Arc<Bookie>,
    client: MetadataClient,
    interval: Duration,
    shutdown: CancellationToken,
) {
    let mut tracker = GcTracker::default();
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let pass = tokio::select! {
            _ = shutdown.cancelled() => return,
            pass = pass(&bookie, &client, &mut tracker) => pass,
        };
        match pass {
            Ok(0) => tracing::trace!("gc pass collected nothing"),
            Ok(collected) => tracing::info!(collected, "gc pass collected ledgers"),
            Err(e) => tracing::warn!(error = %e, "gc pass stopped; trying again next interval"),
        }
    }
}

/// One pass; returns how many ledgers it deleted.
async fn pass(
    bookie: &Arc<Bookie>,
    client: &MetadataClient,
    tracker: &mut GcTracker,
) -> Result<usize, GcError> {
    let local = {
        let bookie = bookie.clone();
        tokio::task::spawn_blocking(move || bookie.ledger_ids())
            .await
            .map_err(|e| GcError::List(OpError::Internal(e.to_string())))?
            .map_err(GcError::List)?
    };
    let lookups = futures::stream::iter(local)
        .map(|ledger_id| async move {
            let found = client.get(&metadata::key(ledger_id)).await?;
            Ok::<_, MetadataError>((ledger_id, found.is_some()))
        })
        .buffer_unordered(LOOKUP_PARALLELISM)
        .collect::<Vec<_>>()
        .await;
    let mut missing = BTreeSet::new();
    for lookup in lookups {
        let (ledger_id, exists) = lookup?;
        if !exists {
            missing.insert(ledger_id);
        }
    }
    let collect = tracker.pass(missing);
    for &ledger_id in &collect {
        bookie
            .delete_ledger(ledger_id)
            .await
            .map_err(|source| GcError::Delete { ledger_id, source })?;
        tracing::info!(ledger_id, "collected a ledger deleted from metadata");
    }
    Ok(collect.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(ids: &[u64]) -> BTreeSet<u64> {
        ids.iter().copied().collect()
    }

    #[test]
    fn a_ledger_is_collected_only_when_missing_twice_in_a_row() {
        let mut tracker = GcTracker::default();
        assert!(tracker.pass(set(&[1, 2])).is_empty(), "first sighting");
        assert_eq!(
            tracker.pass(set(&[1, 3])),
            vec![1],
            "2 reappeared, 3 is new"
        );
        assert_eq!(tracker.pass(set(&[3])), vec![3]);
        assert!(tracker.pass(set(&[])).is_empty());
        assert!(tracker.pass(set(&[1])).is_empty(), "the streak starts over");
    }
}
