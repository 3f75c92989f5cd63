//! One session kept alive for a process's whole life: opened at start, opened again whenever
//! the group expires it (or its local lease runs out), closed on shutdown. Brokers
//! hang their ephemeral registrations on it and re-create them on every new session.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::{MetadataClient, Session};

/// Pauses between failed attempts to open a session, doubling up to the last.
const RETRY_MIN: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(2);
/// How long shutdown waits to close the session before leaving its keys to the TTL.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// Keeps one live session; [`SessionKeeper::subscribe`] tells of every new one (`None` while
/// there is none).
#[derive(Debug)]
pub struct SessionKeeper {
    current: watch::Receiver<Option<Arc<Session>>>,
    stop: CancellationToken,
    task: std::sync::Mutex<Option<JoinHandle<()>>>,
}

impl SessionKeeper {
    /// Starts keeping a session with `ttl` for `owner` (named in logs).
    pub fn start(client: MetadataClient, ttl: Duration, owner: impl Into<String>) -> SessionKeeper {
        let (tx, current) = watch::channel(None);
        let stop = CancellationToken::new();
        let task = tokio::spawn(keep(client, ttl, owner.into(), tx, stop.clone()));
        SessionKeeper {
            current,
            stop,
            task: std::sync::Mutex::new(Some(task)),
        }
    }

    /// The live session, if there is one now.
    pub fn current(&self) -> Option<Arc<Session>> {
        self.current.borrow().clone().filter(|s| s.is_live())
    }

    /// Every change of session: a new one, or `None` after one expired.
    pub fn subscribe(&self) -> watch::Receiver<Option<Arc<Session>>> {
        self.current.clone()
    }

    /// Waits for a live session.
    pub async fn wait(&self) -> Arc<Session> {
        let mut current = self.current.clone();
        loop {
            if let Some(session) = current.borrow_and_update().clone().filter(|s| s.is_live()) {
                return session;
            }
            if current.changed().await.is_err() {
                // The keeper is gone: wait forever, as there will be no session.
                std::future::pending::<()>().await;
            }
        }
    }

    /// Stops keeping the session without closing it: it expires a TTL later, as a crashed
    /// process's would (failover tests).
    pub fn abandon(&self) {
        if let Some(task) = self.take_task() {
            task.abort();
        }
        if let Some(session) = self.current.borrow().as_ref() {
            session.abandon();
        }
    }

    /// Stops keeping the session and closes it (its ephemeral keys go at once).
    pub async fn close(&self) {
        self.stop.cancel();
        if let Some(task) = self.take_task() {
            let _ = task.await;
        }
    }

    fn take_task(&self) -> Option<JoinHandle<()>> {
        self.task
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
    }
}

async fn keep(
    client: MetadataClient,
    ttl: Duration,
    owner: String,
    current: watch::Sender<Option<Arc<Session>>>,
    stop: CancellationToken,
) {
    let mut retry = RETRY_MIN;
    loop {
        let created = tokio::select! {
            _ = stop.cancelled() => return,
            created = client.create_session(ttl) => created,
        };
        let session = match created {
            Ok(session) => Arc::new(session),
            Err(e) => {
                tracing::warn!(owner, error = %e, ?retry, "opening a metadata session failed; retrying");
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(retry) => {}
                }
                retry = (retry * 2).min(RETRY_MAX);
                continue;
            }
        };
        retry = RETRY_MIN;
        tracing::debug!(owner, session = session.id(), "metadata session opened");
        current.send_replace(Some(session.clone()));
        tokio::select! {
            _ = stop.cancelled() => {
                current.send_replace(None);
                match tokio::time::timeout(CLOSE_TIMEOUT, session.close()).await {
                    Ok(Ok(())) => tracing::debug!(owner, "metadata session closed"),
                    Ok(Err(e)) => tracing::warn!(owner, error = %e, "closing the metadata session failed; its keys lapse with its TTL"),
                    Err(_) => tracing::warn!(owner, "closing the metadata session timed out; its keys lapse with its TTL"),
                }
                return;
            }
            _ = session.expired() => {
                tracing::warn!(owner, session = session.id(), "metadata session lost; opening a new one");
                current.send_replace(None);
                // Best effort: if the group still has it (only the local lease ran out), end
                // it now so that its keys do not linger until the TTL.
                let stale = session.clone();
                tokio::spawn(async move {
                    let _ = tokio::time::timeout(CLOSE_TIMEOUT, stale.close()).await;
                });
            }
        }
    }
}
