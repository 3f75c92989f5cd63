//! Client sessions: a lease kept alive by a background task at a third of its TTL.
//!
//! The group expires a session a TTL after the last keep-alive it *received*; the client counts
//! its own lease from when it *sent* the last keep-alive that was answered, which is never
//! later. So when the local lease runs out with no answer (the client is cut off from the
//! group), the session turns [`SessionState::Expired`] here first — before the group can
//! expire it and hand what its ephemeral keys guard (a broker's bundles) to someone else.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use magnetar_protocol::metadata::{self as pb, request, response};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{MetadataClient, unexpected};
use crate::error::MetadataError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionState {
    Alive,
    /// The group expired the session, or its local lease ran out with no keep-alive answered:
    /// its ephemeral keys are gone or about to go, and it must not be used again.
    Expired,
}

/// A live session. Dropping it stops the keep-alives (the keys go when the TTL runs out);
/// [`Session::close`] ends it at once.
#[derive(Debug)]
pub struct Session {
    id: u64,
    ttl: Duration,
    state: watch::Receiver<SessionState>,
    /// When the local lease runs out unless a keep-alive is answered first.
    deadline: Arc<Mutex<Instant>>,
    stop: CancellationToken,
    keep_alive: Mutex<Option<JoinHandle<()>>>,
    client: MetadataClient,
}

pub(super) async fn create(
    client: MetadataClient,
    ttl: Duration,
) -> Result<Session, MetadataError> {
    let create = pb::CreateSessionRequest {
        ttl_ms: ttl.as_millis() as u64,
    };
    let sent = Instant::now();
    let (id, ttl) = match client
        .call(request::Body::CreateSession(create), false)
        .await?
    {
        response::Body::CreateSession(created) => {
            (created.session, Duration::from_millis(created.ttl_ms))
        }
        other => return Err(unexpected(other)),
    };
    let (tx, state) = watch::channel(SessionState::Alive);
    let deadline = Arc::new(Mutex::new(sent + ttl));
    let stop = CancellationToken::new();
    let task = tokio::spawn(keep_alive(
        client.clone(),
        id,
        ttl,
        tx,
        deadline.clone(),
        stop.clone(),
    ));
    Ok(Session {
        id,
        ttl,
        state,
        deadline,
        stop,
        keep_alive: Mutex::new(Some(task)),
        client,
    })
}

fn read(deadline: &Mutex<Instant>) -> Instant {
    *deadline.lock().unwrap_or_else(PoisonError::into_inner)
}

async fn keep_alive(
    client: MetadataClient,
    id: u64,
    ttl: Duration,
    state: watch::Sender<SessionState>,
    deadline: Arc<Mutex<Instant>>,
    stop: CancellationToken,
) {
    let mut interval = tokio::time::interval(ttl / 3);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let lease_end = read(&deadline);
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep_until(lease_end) => {
                tracing::warn!(session = id, ?ttl, "metadata session lease ran out locally: no keep-alive was answered in time");
                let _ = state.send(SessionState::Expired);
                return;
            }
            _ = interval.tick() => {}
        }
        let sent = Instant::now();
        let keep_alive = request::Body::KeepAlive(pb::KeepAliveRequest { session: id });
        let call = client.call(keep_alive, true);
        tokio::select! {
            _ = stop.cancelled() => return,
            answered = tokio::time::timeout_at(read(&deadline), call) => match answered {
                Ok(Ok(_)) => {
                    *deadline.lock().unwrap_or_else(PoisonError::into_inner) = sent + ttl;
                }
                Ok(Err(MetadataError::SessionExpired(_))) => {
                    tracing::warn!(session = id, "metadata session expired");
                    let _ = state.send(SessionState::Expired);
                    return;
                }
                Ok(Err(e)) => {
                    tracing::warn!(session = id, error = %e, "session keep-alive failed; retrying")
                }
                // The lease check at the top of the loop reports it.
                Err(_) => {}
            }
        }
    }
}

impl Session {
    pub fn id(&self) -> u64 {
        self.id
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    pub fn state(&self) -> SessionState {
        *self.state.borrow()
    }

    /// Alive, and its local lease has not run out.
    pub fn is_live(&self) -> bool {
        self.state() == SessionState::Alive && Instant::now() < read(&self.deadline)
    }

    /// When the local lease runs out unless a keep-alive is answered first.
    pub fn lease_deadline(&self) -> Instant {
        read(&self.deadline)
    }

    /// Resolves when the session has expired (on the group, or its local lease ran out).
    pub async fn expired(&self) {
        let mut state = self.state.clone();
        let _ = state.wait_for(|s| *s == SessionState::Expired).await;
    }

    /// Stops keeping the session alive without ending it: the group expires it (and its keys)
    /// a TTL after the last keep-alive, as if this process had died.
    pub fn abandon(&self) {
        self.stop.cancel();
    }

    /// Ends the session now, deleting its ephemeral keys, and waits for its keep-alive task.
    pub async fn close(&self) -> Result<(), MetadataError> {
        self.stop.cancel();
        let task = self
            .keep_alive
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(task) = task {
            let _ = task.await;
        }
        self.client.close_session(self.id).await
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}
