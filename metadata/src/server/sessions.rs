//! Session leases. Only the leader tracks deadlines, in memory: keep-alives go to it and never
//! touch the log. When a session misses its TTL the leader proposes its expiry through the log,
//! so every node deletes its ephemeral keys at the same point in the history. A new leader
//! grants every session a fresh TTL, as it cannot know when the old leader last heard from it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::batching::Proposer;
use crate::error::MetadataError;
use crate::store::StateReader;
use crate::types::{Command, NodeId, Raft};

const TICK: Duration = Duration::from_millis(100);
/// How often the leader re-reads the sessions of the state machine.
const RECONCILE_EVERY: u32 = 10;

#[derive(Debug, Clone)]
pub(crate) struct SessionTracker {
    deadlines: Arc<Mutex<HashMap<u64, (Instant, Duration)>>>,
    reader: StateReader,
}

impl SessionTracker {
    pub(crate) fn start(
        id: NodeId,
        raft: Raft,
        reader: StateReader,
        proposer: Proposer,
        cancel: CancellationToken,
        tasks: &TaskTracker,
    ) -> SessionTracker {
        let tracker = SessionTracker {
            deadlines: Arc::default(),
            reader,
        };
        let this = tracker.clone();
        tasks.spawn(async move {
            let mut ticks = 0u32;
            let mut interval = tokio::time::interval(TICK);
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    _ = interval.tick() => {}
                }
                let leading = raft.metrics().borrow().current_leader == Some(id)
                    && raft.metrics().borrow().state.is_leader();
                if !leading {
                    this.lock().clear();
                    ticks = 0;
                    continue;
                }
                if ticks.is_multiple_of(RECONCILE_EVERY) {
                    this.reconcile();
                }
                ticks = ticks.wrapping_add(1);
                let now = Instant::now();
                let expired: Vec<u64> =
                    this.lock().iter().filter(|(_, (deadline, _))| *deadline <= now).map(|(id, _)| *id).collect();
                for session in expired {
                    tracing::info!(session, "session expired, deleting its ephemeral keys");
                    match proposer.propose(Command::ExpireSession { session }).await {
                        Ok(_) => {
                            this.lock().remove(&session);
                        }
                        Err(e) => tracing::warn!(session, error = %e, "could not expire session; will retry"),
                    }
                }
            }
        });
        tracker
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, (Instant, Duration)>> {
        self.deadlines
            .lock()
            .expect("session map lock is never poisoned")
    }

    /// Adds sessions the state machine has and the tracker does not (after winning an election,
    /// or created through an earlier leader), each with a full TTL; drops ended ones.
    fn reconcile(&self) {
        let Ok(sessions) = self.reader.sessions() else {
            return;
        };
        let now = Instant::now();
        let mut deadlines = self.lock();
        let live: std::collections::HashSet<u64> = sessions.iter().map(|(id, _)| *id).collect();
        deadlines.retain(|id, _| live.contains(id));
        for (id, info) in sessions {
            let ttl = Duration::from_millis(info.ttl_ms);
            deadlines.entry(id).or_insert((now + ttl, ttl));
        }
    }

    /// Registers a session just created on this leader.
    pub(crate) fn created(&self, session: u64, ttl: Duration) {
        self.lock().insert(session, (Instant::now() + ttl, ttl));
    }

    /// Extends a session's lease. Called on the leader only.
    pub(crate) fn keep_alive(&self, session: u64) -> Result<(), MetadataError> {
        if !self.reader.session_exists(session)? {
            self.lock().remove(&session);
            return Err(MetadataError::SessionExpired(session));
        }
        let mut deadlines = self.lock();
        match deadlines.get_mut(&session) {
            Some((deadline, ttl)) => *deadline = Instant::now() + *ttl,
            None => {
                drop(deadlines);
                self.reconcile();
            }
        }
        Ok(())
    }

    pub(crate) fn closed(&self, session: u64) {
        self.lock().remove(&session);
    }
}
