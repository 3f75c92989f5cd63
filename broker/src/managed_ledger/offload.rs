//! Offloading closed ledgers to tiered storage (Pulsar's `ManagedLedgerImpl.offloadPrefix` and
//! its automatic trigger), and deleting their bookie copies after the deletion lag.
//!
//! One task per managed ledger does both, every `cursor_persist_interval` or when woken (an
//! admin's request, a policy change). A ledger's offload is three steps, each safe to stop
//! after:
//! 1. record a not-complete offload context with a fresh uid (compare-and-set of the list);
//! 2. copy the entries from the bookies to `{ledger}-{uid}/data` and write `…/index`;
//! 3. record the context complete.
//!
//! A context left not complete (a crash, a store error) names the objects to delete before the
//! next attempt, which uses a new uid. Once complete and older than the deletion lag, the
//! ledger is deleted from the bookies and the context says so; reads then come from the store.
//! Trimming a ledger deletes its objects too. The open ledger is never offloaded.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::info::{LedgerRecord, OffloadContext};
use super::ledgers::now_ms;
use super::offload_status::OffloadProgress;
use super::read::bookie_read;
use super::shared::{Shared, Status, lock};
use super::{MlError, OffloadPolicy};
use crate::position::Position;
use crate::tiered::{Offloader, new_uid};

fn wants_offload(l: &LedgerRecord) -> bool {
    l.entries > 0 && !l.offloaded()
}

/// Closed ledgers the policy offloads, oldest first: by size, every ledger older than the
/// newest ones that together hold more than the threshold (the open ledger counts, as Pulsar
/// counts it); by age, every ledger closed longer ago than the threshold.
pub(super) fn by_policy(
    ledgers: &[LedgerRecord],
    open: i64,
    open_size: u64,
    policy: &OffloadPolicy,
    now_ms: u64,
) -> Vec<u64> {
    let closed = || ledgers.iter().filter(|l| (l.ledger_id as i64) < open);
    let mut out: Vec<u64> = Vec::new();
    if let Some(threshold) = policy.threshold_bytes {
        let mut kept = open_size;
        let mut over = false;
        for l in closed().collect::<Vec<_>>().into_iter().rev() {
            if !over && !l.offloaded() {
                kept += l.size;
                over = kept > threshold;
            }
            if over && wants_offload(l) {
                out.push(l.ledger_id);
            }
        }
        out.reverse();
    }
    if let Some(age) = policy.threshold_age {
        for l in closed() {
            let closed_for = Duration::from_millis(now_ms.saturating_sub(l.timestamp));
            if wants_offload(l) && closed_for > age && !out.contains(&l.ledger_id) {
                out.push(l.ledger_id);
            }
        }
        out.sort_unstable();
    }
    out
}

/// Closed ledgers before the ledger of `until` that are not offloaded yet.
pub(super) fn before(ledgers: &[LedgerRecord], open: i64, until: Position) -> Vec<u64> {
    ledgers
        .iter()
        .filter(|l| (l.ledger_id as i64) < open.min(until.ledger_id) && wants_offload(l))
        .map(|l| l.ledger_id)
        .collect()
}

/// Asks the task to offload every closed ledger before `until`'s; false if an offload is
/// already running (Pulsar answers 409).
pub(super) fn request(shared: &Shared, until: Position) -> Result<bool, MlError> {
    if shared.config.offloader.is_none() {
        return Err(MlError::Offload(
            "no offload driver is configured on this broker (offload `driver`, \
             --offload-driver)"
                .into(),
        ));
    }
    let mut state = lock(&shared.offload);
    if state.status.progress == OffloadProgress::Running {
        return Ok(false);
    }
    state.requested = Some(until);
    state.status.progress = OffloadProgress::Running;
    state.status.last_error.clear();
    drop(state);
    shared.offload_wake.notify_one();
    Ok(true)
}

/// Offloads `ids` in order, recording the outcome in the status; stops at the first failure.
pub(super) async fn offload(shared: &Shared, ids: &[u64]) -> Result<(), MlError> {
    let Some(offloader) = shared.config.offloader.clone() else {
        return Ok(());
    };
    let _turn = shared.offload_turn.lock().await;
    lock(&shared.offload).status.progress = OffloadProgress::Running;
    let mut result = Ok(());
    for id in ids {
        result = offload_one(shared, &offloader, *id).await;
        if result.is_err() {
            break;
        }
    }
    let first_unoffloaded = {
        let state = shared.lock();
        let ledger = state
            .info
            .ledgers
            .iter()
            .find(|l| !l.offloaded() && l.entries > 0)
            .map_or(state.layout.open_ledger_id(), |l| l.ledger_id as i64);
        Position::new(ledger, 0)
    };
    let mut state = lock(&shared.offload);
    state.status.first_unoffloaded = Some(first_unoffloaded);
    match &result {
        Ok(()) => {
            state.status.progress = OffloadProgress::Success;
            state.status.last_error.clear();
        }
        Err(e) => {
            state.status.progress = OffloadProgress::Error;
            state.status.last_error = e.to_string();
        }
    }
    result
}

async fn offload_one(shared: &Shared, offloader: &Offloader, id: u64) -> Result<(), MlError> {
    let Some(record) = shared
        .lock()
        .info
        .ledgers
        .iter()
        .find(|l| l.ledger_id == id)
        .copied()
    else {
        return Ok(()); // trimmed meanwhile
    };
    if !wants_offload(&record) {
        return Ok(());
    }
    if let Some(stale) = record.offload_context {
        offloader.delete(&shared.name, id, stale.uid()).await;
    }
    let uid = new_uid();
    shared
        .update_info(
            |info| {
                if let Some(l) = info.ledger_mut(id) {
                    l.offload_context = Some(OffloadContext::started(uid));
                }
            },
            |_| {},
        )
        .await?;
    let written = offloader
        .write_ledger(
            &shared.name,
            id,
            uid,
            record.entries,
            |first, last| async move {
                bookie_read(shared, id, first, last)
                    .await
                    .map_err(|e| format!("reading ledger {id} from the bookies: {e}"))
            },
        )
        .await
        .map_err(MlError::Offload)?;
    let mut recorded = false;
    shared
        .update_info(
            |info| {
                if let Some(l) = info.ledger_mut(id)
                    && let Some(context) = l.offload_context.as_mut()
                    && context.uid() == uid
                {
                    context.complete = true;
                    context.timestamp = now_ms();
                    recorded = true;
                }
            },
            |_| {},
        )
        .await?;
    if !recorded {
        // Trimmed while it was being copied: nothing refers to the objects.
        offloader.delete(&shared.name, id, uid).await;
        return Ok(());
    }
    tracing::info!(
        managed_ledger = %shared.name,
        ledger = id,
        entries = written.entries,
        bytes = written.bytes,
        mb_per_sec = format!("{:.1}", written.mb_per_sec()),
        to = offloader.location(),
        "ledger offloaded to tiered storage"
    );
    Ok(())
}

/// Deletes from the bookies the offloaded ledgers whose deletion lag has passed.
async fn delete_lagged(shared: &Shared) -> Result<(), MlError> {
    let _turn = shared.offload_turn.lock().await;
    let lag = lock(&shared.offload_policy).deletion_lag;
    let now = now_ms();
    let due: Vec<u64> = {
        let state = shared.lock();
        let open = state.layout.open_ledger_id();
        state
            .info
            .ledgers
            .iter()
            .filter(|l| (l.ledger_id as i64) < open)
            .filter(|l| {
                l.offload_context.is_some_and(|c| {
                    c.complete
                        && !c.bookkeeper_deleted
                        && Duration::from_millis(now.saturating_sub(c.timestamp)) >= lag
                })
            })
            .map(|l| l.ledger_id)
            .collect()
    };
    for id in due {
        {
            let mut state = shared.lock();
            state.writers.retain(|w| w.id() != id);
        }
        lock(&shared.readers).remove(&id);
        shared.ledgers.delete(id).await?;
        shared
            .update_info(
                |info| {
                    if let Some(c) = info.ledger_mut(id).and_then(|l| l.offload_context.as_mut()) {
                        c.bookkeeper_deleted = true;
                    }
                },
                |_| {},
            )
            .await?;
        tracing::info!(managed_ledger = %shared.name, ledger = id,
            "offloaded ledger deleted from the bookies (deletion lag passed)");
    }
    Ok(())
}

/// One round: what an admin asked for, what the policy wants, then the deletion lag.
pub(super) async fn round(shared: &Shared) -> Result<(), MlError> {
    if shared.config.offloader.is_none() {
        return Ok(());
    }
    let requested = lock(&shared.offload).requested.take();
    let policy = *lock(&shared.offload_policy);
    let ids = {
        let state = shared.lock();
        let open = state.layout.open_ledger_id();
        let mut ids = by_policy(
            &state.info.ledgers,
            open,
            state.current_size,
            &policy,
            now_ms(),
        );
        if let Some(until) = requested {
            ids.extend(before(&state.info.ledgers, open, until));
            ids.sort_unstable();
            ids.dedup();
        }
        ids
    };
    if !ids.is_empty() || requested.is_some() {
        offload(shared, &ids).await?;
    }
    delete_lagged(shared).await
}

/// The task: a round every `cursor_persist_interval` or when woken, until cancelled.
pub(super) async fn run(shared: Arc<Shared>, cancel: CancellationToken) {
    if shared.config.offloader.is_none() {
        return;
    }
    let interval = shared.config.cursor_persist_interval;
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(interval) => {}
            _ = shared.offload_wake.notified() => {}
        }
        if shared.status() != Status::Open {
            return;
        }
        let done = tokio::select! {
            _ = cancel.cancelled() => return,
            done = round(&shared) => done,
        };
        if let Err(e) = done {
            tracing::warn!(managed_ledger = %shared.name, error = %e, "offloading failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(offloaded: &[u64]) -> Vec<LedgerRecord> {
        (1..=4)
            .map(|id| LedgerRecord {
                ledger_id: id,
                entries: if id == 4 { 0 } else { 10 },
                size: if id == 4 { 0 } else { 1000 },
                timestamp: id * 1000,
                offload_context: offloaded.contains(&id).then(|| OffloadContext {
                    complete: true,
                    ..OffloadContext::started(id as u128)
                }),
            })
            .collect()
    }

    fn policy(bytes: Option<u64>, age: Option<u64>) -> OffloadPolicy {
        OffloadPolicy {
            threshold_bytes: bytes,
            threshold_age: age.map(Duration::from_millis),
            ..OffloadPolicy::default()
        }
    }

    #[test]
    fn size_threshold_keeps_the_newest_bytes_on_the_bookies() {
        let l = records(&[]);
        assert_eq!(
            by_policy(&l, 4, 0, &policy(Some(0), None), 0),
            vec![1, 2, 3]
        );
        assert_eq!(
            by_policy(&l, 4, 0, &policy(Some(1500), None), 0),
            vec![1, 2]
        );
        assert_eq!(
            by_policy(&l, 4, 600, &policy(Some(1500), None), 0),
            vec![1, 2, 3]
        );
        assert!(by_policy(&l, 4, 0, &policy(Some(3000), None), 0).is_empty());
        assert!(by_policy(&l, 4, 0, &policy(None, None), 0).is_empty());
        // Offloaded ledgers no longer count as kept, and are not offloaded twice.
        let l = records(&[1, 2]);
        assert!(by_policy(&l, 4, 0, &policy(Some(1000), None), 0).is_empty());
        assert_eq!(by_policy(&l, 4, 0, &policy(Some(999), None), 0), vec![3]);
    }

    #[test]
    fn age_threshold_counts_from_the_close() {
        let l = records(&[1]);
        assert_eq!(
            by_policy(&l, 4, 0, &policy(None, Some(1500)), 4000),
            vec![2]
        );
        assert_eq!(
            by_policy(&l, 4, 0, &policy(None, Some(500)), 4000),
            vec![2, 3]
        );
        assert_eq!(
            by_policy(&l, 4, 0, &policy(Some(1500), Some(1500)), 4000),
            vec![2]
        );
    }

    #[test]
    fn a_request_offloads_the_closed_ledgers_before_its_position() {
        let l = records(&[1]);
        assert_eq!(before(&l, 4, Position::new(3, 5)), vec![2]);
        assert_eq!(before(&l, 4, Position::new(9, 0)), vec![2, 3]);
        assert!(before(&l, 4, Position::new(1, 0)).is_empty());
    }
}
