//! Client sessions: a lease kept alive by a background task at a third of its TTL.

use std::time::Duration;

use magnetar_protocol::metadata::{self as pb, request, response};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::{MetadataClient, unexpected};
use crate::error::MetadataError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionState {
    Alive,
    /// The group expired the session: its ephemeral keys are gone.
    Expired,
}

/// A live session. Dropping it stops the keep-alives (the keys go when the TTL runs out);
/// [`Session::close`] ends it at once.
#[derive(Debug)]
pub struct Session {
    id: u64,
    ttl: Duration,
    state: watch::Receiver<SessionState>,
    stop: CancellationToken,
    client: MetadataClient,
}

pub(super) async fn create(
    client: MetadataClient,
    ttl: Duration,
) -> Result<Session, MetadataError> {
    let create = pb::CreateSessionRequest {
        ttl_ms: ttl.as_millis() as u64,
    };
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
    let stop = CancellationToken::new();
    let keep_alive_client = client.clone();
    let keep_alive_stop = stop.clone();
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(ttl / 3);
        loop {
            tokio::select! {
                _ = keep_alive_stop.cancelled() => return,
                _ = interval.tick() => {}
            }
            let keep_alive = request::Body::KeepAlive(pb::KeepAliveRequest { session: id });
            let call = keep_alive_client.call(keep_alive, true);
            match tokio::time::timeout(ttl, call).await {
                Ok(Ok(_)) => {}
                Ok(Err(MetadataError::SessionExpired(_))) => {
                    tracing::warn!(session = id, "metadata session expired");
                    let _ = tx.send(SessionState::Expired);
                    return;
                }
                Ok(Err(e)) => {
                    tracing::warn!(session = id, error = %e, "session keep-alive failed; retrying")
                }
                Err(_) => tracing::warn!(session = id, "session keep-alive timed out; retrying"),
            }
        }
    });
    Ok(Session {
        id,
        ttl,
        state,
        stop,
        client,
    })
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

    /// Resolves when the group has expired this session.
    pub async fn expired(&self) {
        let mut state = self.state.clone();
        let _ = state.wait_for(|s| *s == SessionState::Expired).await;
    }

    /// Ends the session now, deleting its ephemeral keys.
    pub async fn close(self) -> Result<(), MetadataError> {
        self.stop.cancel();
        self.client.close_session(self.id).await
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}
