//! The Pulsar binary protocol server: accepts connections (plain TCP, or TLS for
//! `pulsar+ssl://`) and serves each with its own task.

mod auth;
mod connection;
mod limiter;
mod producer;

pub(crate) use auth::authorize;
pub use limiter::{ConnectionCounter, ConnectionSlot};

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::service::BrokerService;
use crate::tls::TlsListener;

/// Serves `listener` until `shutdown` is cancelled; connections end with it.
pub async fn serve(
    listener: TcpListener,
    service: Arc<BrokerService>,
    counter: Arc<ConnectionCounter>,
    shutdown: CancellationToken,
    tasks: TaskTracker,
) {
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => {
                let slot = match counter.admit(peer.ip()) {
                    Ok(slot) => slot,
                    Err(limit) => {
                        tracing::debug!(%peer, limit, "connection refused by a limit");
                        continue;
                    }
                };
                stream.set_nodelay(true).ok();
                let id = service.next_id();
                let (read, write) = stream.into_split();
                let connection = connection::run(
                    id,
                    read,
                    write,
                    peer,
                    service.clone(),
                    shutdown.child_token(),
                );
                tasks.spawn(async move {
                    connection.await;
                    drop(slot);
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Serves TLS connections (their handshakes done by `listener`) until `shutdown` is cancelled.
pub async fn serve_tls(
    mut listener: TlsListener,
    service: Arc<BrokerService>,
    counter: Arc<ConnectionCounter>,
    shutdown: CancellationToken,
    tasks: TaskTracker,
) {
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => return,
            accepted = listener.next() => accepted,
        };
        let Some((stream, peer)) = accepted else {
            return;
        };
        let slot = match counter.admit(peer.ip()) {
            Ok(slot) => slot,
            Err(limit) => {
                tracing::debug!(%peer, limit, "connection refused by a limit");
                continue;
            }
        };
        let id = service.next_id();
        let (read, write) = tokio::io::split(stream);
        let connection = connection::run(
            id,
            read,
            write,
            peer,
            service.clone(),
            shutdown.child_token(),
        );
        tasks.spawn(async move {
            connection.await;
            drop(slot);
        });
    }
}

/// The address a broker is reached at, as LOOKUP answers: `pulsar://host:port`.
pub fn service_url(advertised_host: &str, addr: SocketAddr) -> String {
    format!("pulsar://{advertised_host}:{}", addr.port())
}
