//! What a topic keeps for geo-replication, as plain state: its replicators' handles and
//! figures, what it received from each cluster, and its replicated subscriptions with the
//! checkpoints they need. The `replication` module does the work; the topic only holds this
//! (so the topic does not depend on the replication machinery).

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::dedup::Mark;
use crate::managed_ledger::ManagedLedger;
use crate::position::Position;

/// How long a stopping replicator may take to persist and release its cursor.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// What stats and metrics show of a replicator.
#[derive(Debug, Default)]
pub struct ReplicatorStats {
    /// Messages and bytes the remote acknowledged.
    pub msg_out: AtomicU64,
    pub bytes_out: AtomicU64,
    /// The stream to the remote is up.
    pub connected: AtomicBool,
    /// The cursor's mark-delete (the backlog is counted from it).
    mark_delete: Mutex<Option<Position>>,
    /// Publish time (ms since the epoch) of the oldest entry not yet acknowledged by the
    /// remote; 0 when caught up.
    pub oldest_pending_publish_ms: AtomicU64,
    /// When the current stream came up (ms since the epoch), 0 while down.
    pub connected_since_ms: AtomicU64,
    /// Why the last stream ended.
    last_error: Mutex<Option<String>>,
}

impl ReplicatorStats {
    /// Entries after the cursor's mark-delete: what is left to replicate.
    pub fn backlog(&self, ml: &ManagedLedger) -> u64 {
        let mark_delete = *self
            .mark_delete
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match (mark_delete, ml.last_confirmed()) {
            (Some(md), Some(last)) => ml.layout().count_between(md, last),
            _ => 0,
        }
    }

    pub(crate) fn set_mark_delete(&self, p: Position) {
        *self
            .mark_delete
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(p);
    }

    /// `replicationDelayInSeconds`: how old the oldest unreplicated message is.
    pub fn delay_secs(&self) -> f64 {
        match self.oldest_pending_publish_ms.load(Ordering::Relaxed) {
            0 => 0.0,
            oldest => now_ms().saturating_sub(oldest) as f64 / 1000.0,
        }
    }

    pub fn last_error(&self) -> Option<String> {
        self.last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub(crate) fn set_last_error(&self, error: Option<String>) {
        *self
            .last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = error;
    }
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A running replicator.
#[derive(Debug)]
pub struct ReplicatorHandle {
    pub stats: Arc<ReplicatorStats>,
    cancel: CancellationToken,
    task: JoinHandle<()>,
}

impl ReplicatorHandle {
    pub(crate) fn new(
        stats: Arc<ReplicatorStats>,
        cancel: CancellationToken,
        task: JoinHandle<()>,
    ) -> ReplicatorHandle {
        ReplicatorHandle {
            stats,
            cancel,
            task,
        }
    }

    /// Stops it; its cursor is persisted and released when this returns. A replicator stuck
    /// writing to a remote that stopped reading is aborted after `STOP_GRACE` (its cursor, as
    /// last persisted, is at most a second behind; the remote deduplicates the re-sends).
    pub async fn stop(mut self) {
        self.cancel.cancel();
        if tokio::time::timeout(STOP_GRACE, &mut self.task)
            .await
            .is_err()
        {
            self.task.abort();
        }
    }
}

/// Replication into a topic from one source cluster.
#[derive(Debug, Default)]
pub struct InboundStats {
    pub msg_in: AtomicU64,
    pub bytes_in: AtomicU64,
    /// Streams from that cluster open now.
    pub streams: AtomicU64,
}

/// Checkpoints kept per origin cluster.
const MAX_CHECKPOINTS: usize = 10_000;
/// A checkpoint newer than this replaces the last one instead of adding another.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(50);

/// What a topic keeps for replicated subscriptions.
#[derive(Debug, Default)]
pub struct SubscriptionSync {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Subscriptions a consumer asked to replicate (since the topic was loaded).
    replicated: BTreeSet<String>,
    /// Per origin cluster: `(local position, source position)` of entries received from it,
    /// oldest first, and when the last was added.
    checkpoints: HashMap<String, Checkpoints>,
}

/// `(local position, source position)` pairs, oldest first, and when the last was added.
type Checkpoints = (VecDeque<(Position, Mark)>, Option<Instant>);

impl SubscriptionSync {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn mark_replicated(&self, subscription: &str) {
        self.lock().replicated.insert(subscription.to_string());
    }

    pub fn replicated(&self) -> Vec<String> {
        self.lock().replicated.iter().cloned().collect()
    }

    /// An entry from `origin` at `source` is stored here at `local`.
    pub fn checkpoint(&self, origin: &str, local: Position, source: Mark) {
        let mut inner = self.lock();
        let (list, last) = inner.checkpoints.entry(origin.to_string()).or_default();
        let now = Instant::now();
        if last.is_some_and(|t| now.duration_since(t) < CHECKPOINT_EVERY) && !list.is_empty() {
            list.pop_back();
        } else {
            *last = Some(now);
        }
        list.push_back((local, source));
        if list.len() > MAX_CHECKPOINTS {
            list.pop_front();
        }
    }

    /// Per origin cluster, the source position of the last entry received from it and stored
    /// at or before `local` here.
    pub fn sources_at_or_before(&self, local: Position) -> Vec<(String, Mark)> {
        self.lock()
            .checkpoints
            .iter()
            .filter_map(|(origin, (list, _))| {
                list.iter()
                    .rev()
                    .find(|(at, _)| *at <= local)
                    .map(|(_, source)| (origin.clone(), *source))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_come_from_the_last_checkpoint_at_or_before_a_position() {
        let sync = SubscriptionSync::default();
        sync.checkpoint("us", Position::new(5, 10), (3, 100));
        std::thread::sleep(CHECKPOINT_EVERY);
        sync.checkpoint("us", Position::new(5, 20), (3, 150));
        assert_eq!(
            sync.sources_at_or_before(Position::new(5, 15)),
            vec![("us".to_string(), (3, 100))]
        );
        assert_eq!(
            sync.sources_at_or_before(Position::new(5, 20)),
            vec![("us".to_string(), (3, 150))]
        );
        assert!(sync.sources_at_or_before(Position::new(5, 5)).is_empty());
    }
}
