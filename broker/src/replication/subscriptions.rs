//! Replicated subscriptions (`replicate_subscription_state`), by position watermarks instead of
//! Pulsar's marker snapshots.
//!
//! Every second, a replicator sends, for each replicated subscription of its topic, the
//! subscription's mark-delete `M` as *watermarks*: per origin cluster, a position in that
//! cluster's own ledger below which every entry of that origin is stored here at or before `M`.
//! For this cluster that is `M` itself; for each cluster this topic receives from, it is the
//! source position of the last entry from it stored at or before `M` (the topic keeps recent
//! `(local, source)` checkpoints of what it received). Entries only ever travel in order, so
//! an origin's entries up to that source position all precede it here.
//!
//! The remote walks its own copy of the topic from the subscription's mark-delete and
//! acknowledges every entry whose origin position is below its origin's watermark, stopping at
//! the first that is not. Whatever it acknowledges was consumed in the source cluster. A
//! consumer that fails over re-reads at most what was consumed since the last update (about
//! one second), plus entries that had not replicated yet; never less than it should.

use std::collections::HashMap;

use bytes::Bytes;
use magnetar_protocol::Payload;

use super::wire::{SubscriptionUpdate, Watermark};
use crate::cursor::Cursor;
use crate::dedup::{self, Mark};
use crate::managed_ledger::{InitialPosition, MlError};
use crate::position::Position;
use crate::topic::Topic;

/// Entries one update may walk over.
const MAX_WALK: usize = 200_000;

/// An exclusive upper bound: entries strictly below it are covered.
fn bound(ledger: i64, entry: i64) -> Mark {
    (ledger as u64, (entry + 1) as u64)
}

/// The watermarks of a mark-delete at `mark_delete` here.
fn watermarks(topic: &Topic, local_cluster: &str, mark_delete: Position) -> Vec<Watermark> {
    let (l, e) = bound(mark_delete.ledger_id, mark_delete.entry_id);
    let mut out = vec![Watermark {
        cluster: local_cluster.to_string(),
        ledger_id: l,
        entry_id: e,
    }];
    for (origin, source) in topic.subscription_sync().sources_at_or_before(mark_delete) {
        out.push(Watermark {
            cluster: origin,
            ledger_id: source.0,
            entry_id: source.1 + 1,
        });
    }
    out.sort_by(|a, b| a.cluster.cmp(&b.cluster));
    out
}

/// The updates to send for `topic`'s replicated subscriptions.
pub(super) async fn updates(topic: &Topic, local_cluster: &str) -> Vec<SubscriptionUpdate> {
    let mut out = Vec::new();
    for name in topic.subscription_sync().replicated() {
        let Some(mark_delete) = mark_delete(topic, &name).await else {
            continue;
        };
        if mark_delete.ledger_id < 0 {
            continue;
        }
        out.push(SubscriptionUpdate {
            subscription: name,
            watermarks: watermarks(topic, local_cluster, mark_delete),
        });
    }
    out
}

async fn mark_delete(topic: &Topic, name: &str) -> Option<Position> {
    if let Some(handle) = topic.loaded_subscription(name).await {
        return handle.mark_delete().await;
    }
    let stats = topic.managed_ledger().cursor(name)?.stats();
    Some(
        stats
            .idle
            .map_or(stats.persisted_mark_delete, |i| i.mark_delete),
    )
}

/// Where an entry comes from and its position there.
fn origin_of(data: &Bytes, local_cluster: &str, at: Position) -> (String, Mark) {
    let local = (
        local_cluster.to_string(),
        (at.ledger_id as u64, at.entry_id as u64),
    );
    let Some(metadata) = Payload::parse(data.clone())
        .ok()
        .and_then(|p| p.metadata().ok())
    else {
        return local;
    };
    match metadata.replicated_from {
        Some(from) => {
            let source = metadata
                .properties
                .iter()
                .find(|kv| kv.key == dedup::REPL_SOURCE_POSITION)
                .and_then(|kv| dedup::parse_position_mark(&kv.value));
            match source {
                Some(source) => (from, source),
                None => (from, (u64::MAX, u64::MAX)), // unknown: never covered
            }
        }
        None => local,
    }
}

/// Moves this cluster's copy of a replicated subscription forward over everything the
/// watermarks cover (creating the subscription if it does not exist here).
pub(super) async fn apply(
    topic: &Topic,
    local_cluster: &str,
    update: &SubscriptionUpdate,
) -> Result<(), MlError> {
    if dedup::is_system_cursor(&update.subscription) {
        return Ok(());
    }
    let watermarks: HashMap<&str, Mark> = update
        .watermarks
        .iter()
        .map(|w| (w.cluster.as_str(), (w.ledger_id, w.entry_id)))
        .collect();
    let ml = topic.managed_ledger();
    let Some(end) = ml.last_confirmed() else {
        return Ok(());
    };
    let after = match mark_delete(topic, &update.subscription).await {
        Some(p) => p,
        None => Cursor::earliest(&ml.layout()).mark_delete(),
    };
    let mut from = ml.layout().next(after);
    let mut through = None;
    let mut walked = 0;
    'walk: while from <= end && walked < MAX_WALK {
        let entries = ml.read(from, 500).await?;
        let Some((last, _)) = entries.last() else {
            break;
        };
        let next = ml.layout().next(*last);
        for (p, data) in entries {
            if p > end {
                break 'walk;
            }
            let (origin, position) = origin_of(&data, local_cluster, p);
            let covered = watermarks
                .get(origin.as_str())
                .is_some_and(|w| (position.0, position.1.saturating_add(1)) <= *w);
            if !covered {
                break 'walk;
            }
            through = Some(p);
            walked += 1;
        }
        from = next;
    }
    let Some(through) = through else {
        return Ok(());
    };
    if let Some(handle) = topic.loaded_subscription(&update.subscription).await {
        handle.skip_through(through);
    } else if ml.cursor(&update.subscription).is_some() {
        ml.skip_idle_cursor(&update.subscription, through);
    } else {
        let (cursor, mut state) = ml
            .open_cursor(&update.subscription, InitialPosition::Earliest)
            .await?;
        let _ = state.ack_cumulative(&ml.layout(), through, None);
        let written = cursor.persist(&state).await;
        cursor.release(state, written.is_err());
        written?;
    }
    tracing::debug!(topic = %topic.name(), subscription = update.subscription, %through, "replicated subscription moved");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_consumed_in_a_ledger_covers_none_of_it() {
        assert_eq!(bound(7, -1), (7, 0));
        assert_eq!(bound(7, 4), (7, 5));
    }
}
