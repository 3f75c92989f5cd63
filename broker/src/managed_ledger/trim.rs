//! Trimming: deleting ledgers that every cursor has consumed and retention no longer keeps
//! (Pulsar's `internalTrimLedgers`).
//!
//! The boundary is the ledger of the first entry not acknowledged by the slowest cursor, using
//! each cursor's *persisted* mark-delete (a restart must not land in a deleted ledger); with no
//! cursors it is the open ledger. Going from the oldest ledger up to the boundary, a ledger is
//! deleted if it is older than the retention time or the topic stays at least the retention size
//! without it; the first ledger retention keeps stops the walk. The open ledger is never deleted.
//! The list is updated by compare-and-set first, then the ledgers are deleted from the bookies.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::info::LedgerRecord;
use super::ledgers::{delete_ledger, now_ms};
use super::shared::{Shared, Status, lock};
use super::stored_cursor;
use super::{ManagedLedgerConfig, MlError};
use crate::position::{LedgerLayout, Position};

/// Ledgers to delete, oldest first.
pub(super) fn candidates(
    ledgers: &[LedgerRecord],
    layout: &LedgerLayout,
    slowest: Option<Position>,
    total_size: u64,
    config: &ManagedLedgerConfig,
    now_ms: u64,
) -> Vec<u64> {
    let open = layout.open_ledger_id();
    let boundary = match slowest {
        Some(mark_delete) => layout.next(mark_delete).ledger_id,
        None => open,
    };
    let mut out = Vec::new();
    let mut size_to_delete = 0u64;
    for ledger in ledgers {
        let id = ledger.ledger_id as i64;
        if id >= boundary || id >= open {
            break;
        }
        size_to_delete += ledger.size;
        let over_size = config
            .retention_size
            .is_none_or(|keep| total_size.saturating_sub(size_to_delete) >= keep);
        let expired = config.retention_time.is_none_or(|keep| {
            let age = Duration::from_millis(now_ms.saturating_sub(ledger.timestamp));
            age > keep
        });
        if over_size || expired {
            out.push(ledger.ledger_id);
        } else {
            break;
        }
    }
    out
}

/// Deletes what [`candidates`] allows; returns the ledgers deleted.
pub(super) async fn trim(shared: &Shared) -> Result<Vec<u64>, MlError> {
    let cores = shared.cursor_cores();
    let ids = {
        let state = shared.lock();
        let slowest = cores
            .iter()
            .map(|core| lock(&core.record).persisted_mark_delete)
            .min();
        let total = state.info.ledgers.iter().map(|l| l.size).sum::<u64>() + state.current_size;
        let retention = *lock(&shared.retention);
        let config = ManagedLedgerConfig {
            retention_time: retention.time,
            retention_size: retention.size,
            ..shared.config.clone()
        };
        candidates(
            &state.info.ledgers,
            &state.layout,
            slowest,
            total,
            &config,
            now_ms(),
        )
    };
    if ids.is_empty() {
        return Ok(ids);
    }
    let records: Vec<LedgerRecord> = shared
        .lock()
        .info
        .ledgers
        .iter()
        .filter(|l| ids.contains(&l.ledger_id))
        .copied()
        .collect();
    shared
        .update_info(
            |info| info.ledgers.retain(|l| !ids.contains(&l.ledger_id)),
            |state| {
                for id in &ids {
                    let _ = state.layout.remove_ledger(*id as i64);
                }
            },
        )
        .await?;
    for record in &records {
        lock(&shared.cache).remove_ledger(record.ledger_id as i64);
        lock(&shared.read_ahead).remove_ledger(record.ledger_id);
        lock(&shared.readers).remove(&record.ledger_id);
        delete_ledger(shared, record).await;
    }
    tracing::info!(managed_ledger = %shared.name, ledgers = ?ids, "trimmed consumed ledgers");
    Ok(ids)
}

/// The background task: every `cursor_persist_interval` (or when woken), write idle cursors
/// whose last holder could not, then trim — only persisted positions move the trim boundary,
/// so there is nothing to trim more often than cursors are written.
///
/// The task runs only while there is something to do: with nothing to trim (no ledger but the
/// open one) and no idle cursor left to write it stops, and [`start`] or [`wake`] starts it
/// again — after a new ledger, a released, moved or deleted cursor. With 100,000 idle topics
/// the per-topic ticks kept a core busy and the tasks took half a KiB each.
pub(super) async fn run(shared: Arc<Shared>, cancel: CancellationToken) {
    let interval = shared.config.cursor_persist_interval;
    loop {
        if !has_work(&shared) && !shared.trim_may_stop(|| has_work(&shared)) {
            return;
        }
        tokio::select! {
            biased;
            _ = cancel.cancelled() => return,
            _ = shared.wake.notified() => {}
            _ = tokio::time::sleep(interval) => {}
        }
        if shared.status() == Status::Fenced {
            return;
        }
        if Box::pin(stored_cursor::write_idle(&shared)).await == Err(MlError::Fenced) {
            return;
        }
        if let Err(e) = Box::pin(trim(&shared)).await {
            tracing::warn!(managed_ledger = %shared.name, error = %e, "trimming failed");
        }
    }
}

/// Something to trim or write may have appeared (a cursor released, moved or deleted): wakes
/// the trim task for a round now, or starts it if it had stopped for want of work. Call after
/// the change is visible to [`has_work`].
pub(super) fn wake(shared: &Arc<Shared>) {
    // The permit makes a new task's first round start at once, as a woken task's does.
    shared.wake.notify_one();
    start(shared);
}

/// Starts the trim task unless it runs; its first round comes a `cursor_persist_interval`
/// later, like every other (a round the moment a topic opens would trim ledgers before its
/// subscriptions are back). Nothing starts once the managed ledger is closing (no round may
/// run after `close`), nor where there is no runtime (the running flag stays clear).
pub(super) fn start(shared: &Arc<Shared>) {
    if shared.cancel.is_cancelled() || tokio::runtime::Handle::try_current().is_err() {
        return;
    }
    if shared.begin_trim() {
        shared
            .tasks
            .spawn(run(shared.clone(), shared.cancel.child_token()));
    }
}

/// Whether a round could do anything now or later without being woken: a ledger other than the
/// open one may become trimmable (as cursors are persisted or retention expires), and an idle
/// cursor whose write failed is retried.
fn has_work(shared: &Shared) -> bool {
    let closed = {
        let state = shared.lock();
        let open = state.layout.open_ledger_id();
        state
            .info
            .ledgers
            .iter()
            .any(|l| l.ledger_id as i64 != open)
    };
    closed
        || shared
            .cursor_cores()
            .iter()
            .any(|core| lock(&core.record).idle_unwritten)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(ts: u64) -> Vec<LedgerRecord> {
        [(1, 10), (2, 10), (3, 10), (4, 0)]
            .into_iter()
            .map(|(ledger_id, entries)| LedgerRecord {
                ledger_id,
                entries,
                size: entries * 100,
                timestamp: ts,
                offload_context: None,
            })
            .collect()
    }

    fn layout() -> LedgerLayout {
        LedgerLayout::new([(1, 10), (2, 10), (3, 10), (4, 0)]).expect("layout")
    }

    #[test]
    fn consumed_ledgers_go_without_retention() {
        let config = ManagedLedgerConfig::default();
        let l = records(1_000);
        let at = |ledger, entry| Some(Position::new(ledger, entry));
        assert_eq!(
            candidates(&l, &layout(), at(1, 8), 3000, &config, 2_000),
            Vec::<u64>::new()
        );
        assert_eq!(
            candidates(&l, &layout(), at(1, 9), 3000, &config, 2_000),
            vec![1]
        );
        assert_eq!(
            candidates(&l, &layout(), at(3, 9), 3000, &config, 2_000),
            vec![1, 2, 3]
        );
        // No cursor: everything but the open ledger.
        assert_eq!(
            candidates(&l, &layout(), None, 3000, &config, 2_000),
            vec![1, 2, 3]
        );
    }

    #[test]
    fn retention_keeps_by_time_and_size() {
        let l = records(1_000);
        let all = Some(Position::new(3, 9));
        let by_time = ManagedLedgerConfig {
            retention_time: Some(Duration::from_secs(60)),
            retention_size: Some(u64::MAX),
            ..Default::default()
        };
        assert!(candidates(&l, &layout(), all, 3000, &by_time, 30_000).is_empty());
        assert_eq!(
            candidates(&l, &layout(), all, 3000, &by_time, 62_000),
            vec![1, 2, 3]
        );
        let by_size = ManagedLedgerConfig {
            retention_time: Some(Duration::MAX),
            retention_size: Some(1500),
            ..Default::default()
        };
        // Deleting ledger 1 leaves 2000 >= 1500; deleting 2 as well would leave 1000.
        assert_eq!(
            candidates(&l, &layout(), all, 3000, &by_size, 62_000),
            vec![1]
        );
    }
}
