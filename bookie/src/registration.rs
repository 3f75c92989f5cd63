//! Keeps a serving bookie registered in the metadata service: a session with a TTL owns the
//! ephemeral key `/bookies/{advertised address}` (see [`crate::registry`]), rewritten whenever
//! the disk monitor publishes a changed [`BookieInfo`]. If the group expires the session (the
//! bookie was cut off for longer than the TTL), the key is gone: a new session writes it again.
//! On shutdown the session is closed, so ledger clients stop choosing the bookie at once rather
//! than after the TTL.

use std::time::Duration;

use magnetar_metadata::{MetadataClient, MetadataError, Session};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::registry::{self, BookieInfo};

/// Pauses between failed attempts, doubling up to the last.
const RETRY_MIN: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(2);
/// How long shutdown waits to close the session before leaving the key to the TTL.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// Registers until `shutdown`, then deregisters.
pub(crate) async fn keep_registered(
    client: MetadataClient,
    ttl: Duration,
    mut info: watch::Receiver<BookieInfo>,
    shutdown: CancellationToken,
) {
    let address = info.borrow().address.clone();
    loop {
        let Some(session) = open_session(&client, ttl, &address, &shutdown).await else {
            return;
        };
        let mut retry = Duration::ZERO;
        let mut pending = true;
        let mut announced = false;
        loop {
            if pending {
                let current = info.borrow_and_update().clone();
                match registry::register(&client, &session, &current).await {
                    Ok(()) => {
                        if !announced {
                            tracing::info!(
                                address,
                                session = session.id(),
                                read_only = current.read_only,
                                "registered in the metadata service"
                            );
                            announced = true;
                        }
                        pending = false;
                        retry = Duration::ZERO;
                    }
                    Err(MetadataError::SessionExpired(_)) => break,
                    Err(e) => {
                        retry = (retry * 2).clamp(RETRY_MIN, RETRY_MAX);
                        tracing::warn!(address, error = %e, ?retry, "registration failed; retrying");
                    }
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => {
                    close(session, &address).await;
                    return;
                }
                _ = session.expired() => {
                    tracing::warn!(address, session = session.id(), "metadata session expired; registering again");
                    break;
                }
                changed = info.changed(), if !pending => {
                    if changed.is_err() {
                        // The monitor stopped: only shutdown is left to wait for.
                        shutdown.cancelled().await;
                        close(session, &address).await;
                        return;
                    }
                    pending = true;
                }
                _ = tokio::time::sleep(retry), if pending => {}
            }
        }
    }
}

/// Creates a session, retrying until it succeeds or `shutdown` comes first.
async fn open_session(
    client: &MetadataClient,
    ttl: Duration,
    address: &str,
    shutdown: &CancellationToken,
) -> Option<Session> {
    let mut retry = RETRY_MIN;
    loop {
        let created = tokio::select! {
            _ = shutdown.cancelled() => return None,
            created = client.create_session(ttl) => created,
        };
        match created {
            Ok(session) => return Some(session),
            Err(e) => {
                tracing::warn!(address, error = %e, ?retry, "creating a metadata session failed; retrying");
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return None,
            _ = tokio::time::sleep(retry) => {}
        }
        retry = (retry * 2).min(RETRY_MAX);
    }
}

async fn close(session: Session, address: &str) {
    match tokio::time::timeout(CLOSE_TIMEOUT, session.close()).await {
        Ok(Ok(())) => tracing::info!(address, "deregistered from the metadata service"),
        Ok(Err(e)) => {
            tracing::warn!(address, error = %e, "closing the metadata session failed; the registration lapses with its TTL")
        }
        Err(_) => tracing::warn!(
            address,
            "closing the metadata session timed out; the registration lapses with its TTL"
        ),
    }
}
