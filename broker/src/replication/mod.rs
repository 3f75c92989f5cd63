//! Geo-replication between clusters over QUIC.
//!
//! Every broker has one QUIC endpoint (`replication.addr`, UDP, TLS 1.3 from rustls). For each
//! loaded topic of a namespace whose replication clusters name other clusters, a
//! [replicator](replicator) per remote cluster reads the topic from its durable cursor
//! `pulsar.repl.{remote}` and sends the entries, in order, on a QUIC stream of its own over the
//! one connection this broker keeps to that cluster (no head-of-line blocking between topics).
//! The remote's [receiver](receiver) stores each entry with `replicated_from` set (so it is never
//! replicated again: no loops in a full mesh) and acknowledges it once durable; only then does
//! the source cursor move. The remote deduplicates by the entry's source position, so the
//! re-sends that follow any failure (reconnect, partition, `kill -9` of either side) are
//! acknowledged without being stored twice: exactly once, in order.
//!
//! A source authenticates to a remote with the token in the remote's ClusterData
//! (`authenticationParameters`), checked like a client's token when the remote has
//! authentication on (the role needs produce permission on the topic, or to be a superuser), and
//! checks the remote's certificate against `brokerClientTrustCertsFilePath` (or accepts any with
//! `tlsAllowInsecureConnection`). See docs/geo-replication.md.

mod congestion;
mod receiver;
mod replicator;
mod subscriptions;
mod tls;
mod wire;

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use magnetar_admin_api::models::ClusterData;
use magnetar_admin_api::resources::Resources;
use magnetar_clients::AdminClient;
use magnetar_clients::pulsar::{Client, ClientOptions};
use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use tokio_util::sync::CancellationToken;

pub use crate::config::ReplicationConfig;
pub use tls::ensure_self_signed;

use crate::dedup::REPL_PREFIX;
use crate::error::BrokerError;
use crate::managed_ledger::InitialPosition;
use crate::service::{BrokerService, ReplicationHook};
use crate::topic::Topic;

#[derive(Debug, thiserror::Error)]
pub enum ReplError {
    #[error("cluster {0} is not registered (admin clusters create)")]
    UnknownCluster(String),
    #[error("cluster {cluster}: {reason}")]
    Config { cluster: String, reason: String },
    #[error("connecting to cluster {cluster}: {reason}")]
    Connect { cluster: String, reason: String },
    #[error("refused by the remote cluster: {0}")]
    Refused(String),
    #[error("the topic is served by {0} in the remote cluster")]
    Redirect(String),
    #[error("the remote cluster could not store an entry: {0}")]
    Remote(String),
    #[error("link: {0}")]
    Wire(#[from] wire::WireError),
    #[error("link: {0}")]
    Connection(#[from] quinn::ConnectionError),
    #[error("remote broker: {0}")]
    Pulsar(#[from] magnetar_clients::pulsar::ClientError),
    #[error("storage: {0}")]
    Storage(#[from] crate::managed_ledger::MlError),
    #[error("metadata: {0}")]
    Metadata(String),
    #[error("the remote sent no answer within {0:?}")]
    Timeout(Duration),
}

/// A live link to a remote cluster and the credentials to present on it.
#[derive(Debug, Clone)]
struct Link {
    connection: quinn::Connection,
    token: String,
}

/// How entries reach a remote cluster: its QUIC replication endpoint (`replicationUrl`), or,
/// for a cluster without one, the Pulsar protocol to its brokers (`brokerServiceUrlTls`, else
/// `brokerServiceUrl`) — the way into a cluster that speaks only Pulsar.
enum Route {
    Quic(Link),
    Pulsar(PulsarRoute),
}

/// A Pulsar client of a remote cluster, and its admin endpoint to create partitioned topics.
#[derive(Debug, Clone)]
struct PulsarRoute {
    client: Client,
    admin: Option<AdminClient>,
}

/// A remote's Pulsar client and the settings it was made with.
type PulsarSlot = Arc<tokio::sync::Mutex<Option<(String, PulsarRoute)>>>;

/// A remote's connection and the URL it was made to, behind a lock held while connecting.
type LinkSlot = Arc<tokio::sync::Mutex<Option<(quinn::Connection, String)>>>;

/// This broker's replication endpoint and its links to remote clusters.
#[derive(Debug)]
pub struct Replication {
    endpoint: quinn::Endpoint,
    local_cluster: String,
    config: ReplicationConfig,
    resources: Resources,
    max_frame: usize,
    /// `quic://host:port` when this broker receives.
    url: Option<String>,
    /// Per remote cluster (and broker it redirected to): the connection and the URL it was
    /// made to.
    links: Mutex<HashMap<String, LinkSlot>>,
    /// Per remote cluster reached over the Pulsar protocol.
    pulsar: Mutex<HashMap<String, PulsarSlot>>,
    /// Itself, for the replicators it starts.
    me: Weak<Replication>,
}

fn transport(config: &ReplicationConfig) -> anyhow::Result<Arc<quinn::TransportConfig>> {
    let idle = Duration::from_millis(config.idle_timeout_ms.max(1000));
    let mut t = quinn::TransportConfig::default();
    t.keep_alive_interval(Some(idle / 3));
    t.max_idle_timeout(Some(idle.try_into()?));
    t.max_concurrent_bidi_streams(100_000u32.into());
    t.max_concurrent_uni_streams(0u32.into());
    t.stream_receive_window((8u32 * 1024 * 1024).into());
    t.receive_window((64u32 * 1024 * 1024).into());
    t.send_window(64 * 1024 * 1024);
    // Sized by measured bandwidth and round-trip time instead of backing off at every lost
    // packet: on a WAN link with random loss, loss-based control (NewReno, Cubic) collapses to
    // a fraction of the bandwidth (~100 KB/s at 2 % loss and 100 ms RTT). See `congestion`.
    match config.congestion_control.as_str() {
        "bbr" => t.congestion_controller_factory(Arc::new(quinn::congestion::BbrConfig::default())),
        "cubic" => {
            t.congestion_controller_factory(Arc::new(quinn::congestion::CubicConfig::default()))
        }
        "wan" => t.congestion_controller_factory(Arc::new(congestion::WanConfig)),
        other => anyhow::bail!(
            "replication.congestion_control = {other:?}: use \"wan\", \"bbr\" or \"cubic\""
        ),
    };
    Ok(Arc::new(t))
}

impl Replication {
    /// Opens the endpoint: a server on `config.addr` presenting `cert`/`key` (PEM files), or a
    /// client-only endpoint when there is no address.
    pub fn start(
        config: ReplicationConfig,
        tls_fallback: Option<(PathBuf, PathBuf)>,
        local_cluster: &str,
        advertised_host: &str,
        resources: Resources,
        max_message_size: usize,
    ) -> anyhow::Result<Arc<Replication>> {
        let (endpoint, url) = match config.addr {
            Some(addr) => {
                let (cert, key) = match (&config.cert_file, &config.key_file) {
                    (Some(c), Some(k)) => (c.clone(), k.clone()),
                    _ => tls_fallback.ok_or_else(|| {
                        anyhow::anyhow!(
                            "the replication endpoint needs a certificate: set replication.cert_file and key_file (or [tls])"
                        )
                    })?,
                };
                let crypto = tls::server_config(&cert, &key)?;
                let mut server =
                    quinn::ServerConfig::with_crypto(Arc::new(QuicServerConfig::try_from(crypto)?));
                server.transport_config(transport(&config)?);
                let endpoint = quinn::Endpoint::server(server, addr).map_err(|e| {
                    anyhow::anyhow!(
                        "replication endpoint on UDP {addr}: {e} (change it with --replication-addr)"
                    )
                })?;
                let port = endpoint.local_addr()?.port();
                (endpoint, Some(format!("quic://{advertised_host}:{port}")))
            }
            None => (
                quinn::Endpoint::client(SocketAddr::from(([0, 0, 0, 0], 0)))?,
                None,
            ),
        };
        Ok(Arc::new_cyclic(|me| Replication {
            endpoint,
            local_cluster: local_cluster.to_string(),
            config,
            resources,
            max_frame: max_message_size + 64 * 1024,
            url,
            links: Mutex::default(),
            pulsar: Mutex::default(),
            me: me.clone(),
        }))
    }

    /// `quic://host:port` of this broker's endpoint (the cluster's `replicationUrl`).
    pub fn url(&self) -> Option<&str> {
        self.url.as_deref()
    }

    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.url.as_ref()?;
        self.endpoint.local_addr().ok()
    }

    /// Accepts replication streams from other clusters until `cancel`.
    pub async fn serve(self: Arc<Self>, service: Arc<BrokerService>, cancel: CancellationToken) {
        if self.url.is_none() {
            return;
        }
        receiver::serve(self, service, cancel).await;
    }

    pub fn close(&self) {
        self.endpoint.close(0u32.into(), b"broker shutting down");
    }

    /// The way to `remote`: the link to its QUIC endpoint (connecting if there is none, or it
    /// died, or the cluster's `replicationUrl` changed), or a Pulsar client of its brokers. The
    /// cluster record is read each time, so a changed setting applies to the next stream.
    async fn route(&self, remote: &str, redirect: Option<&str>) -> Result<Route, ReplError> {
        let data = self
            .resources
            .clusters
            .get(remote)
            .await
            .map_err(|e| ReplError::Metadata(e.to_string()))?
            .ok_or_else(|| ReplError::UnknownCluster(remote.to_string()))?;
        let token = resolve_token(data.authentication_parameters.as_deref()).map_err(|e| {
            ReplError::Config {
                cluster: remote.to_string(),
                reason: format!("authenticationParameters: {e}"),
            }
        })?;
        let quic = data
            .replication_url
            .as_deref()
            .is_some_and(|u| !u.is_empty());
        if !quic && redirect.is_none() {
            return self
                .pulsar_route(remote, &data, token)
                .await
                .map(Route::Pulsar);
        }
        let url = match redirect {
            Some(url) => url.to_string(),
            None => data.replication_url.clone().unwrap_or_default(),
        };
        let slot = self
            .links
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(format!("{remote} {}", redirect.unwrap_or("")))
            .or_default()
            .clone();
        let mut slot = slot.lock().await;
        if let Some((connection, connected_to)) = slot.as_ref()
            && connection.close_reason().is_none()
            && *connected_to == url
        {
            return Ok(Route::Quic(Link {
                connection: connection.clone(),
                token,
            }));
        }
        if let Some((old, _)) = slot.take() {
            old.close(0u32.into(), b"replication url changed");
        }
        let connection = self.connect(remote, &data, &url).await?;
        *slot = Some((connection.clone(), url));
        Ok(Route::Quic(Link { connection, token }))
    }

    /// A Pulsar client of `remote`'s brokers, made again when its settings changed.
    async fn pulsar_route(
        &self,
        remote: &str,
        data: &ClusterData,
        token: String,
    ) -> Result<PulsarRoute, ReplError> {
        let config_error = |reason: String| ReplError::Config {
            cluster: remote.to_string(),
            reason,
        };
        let url = match (&data.broker_service_url_tls, &data.broker_service_url) {
            (Some(url), _) if !url.is_empty() => url.clone(),
            (_, Some(url)) if !url.is_empty() => url.clone(),
            _ => {
                return Err(config_error(
                    "no replicationUrl (quic://host:port) and no brokerServiceUrl (pulsar://host:port) in its cluster record".into(),
                ));
            }
        };
        let settings = format!(
            "{url} {token} {:?} {:?} {:?}",
            data.broker_client_trust_certs_file_path,
            data.tls_allow_insecure_connection,
            data.service_url
        );
        let slot = self
            .pulsar
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(remote.to_string())
            .or_default()
            .clone();
        let mut slot = slot.lock().await;
        if let Some((made_with, route)) = slot.as_ref()
            && *made_with == settings
        {
            return Ok(route.clone());
        }
        let tls = match url.starts_with("pulsar+ssl://") {
            true => Some(Arc::new(
                tls::client_config(trust_of(data).map_err(config_error)?, tls::Versions::Any)
                    .map_err(|e| config_error(e.to_string()))?,
            )),
            false => None,
        };
        let options = ClientOptions {
            auth_token: (!token.is_empty()).then(|| token.clone()),
            tls,
            connection_timeout: Duration::from_millis(self.config.connect_timeout_ms.max(100)),
            ..ClientOptions::default()
        };
        let client = Client::connect_with(&url, options)
            .await
            .map_err(|e| ReplError::Connect {
                cluster: remote.to_string(),
                reason: e.to_string(),
            })?;
        let admin = match data.service_url.as_deref().filter(|u| !u.is_empty()) {
            Some(http) => Some(
                AdminClient::new(http, (!token.is_empty()).then_some(token), None)
                    .map_err(|e| config_error(e.to_string()))?,
            ),
            None => None,
        };
        tracing::info!(remote, url, "replicating over the Pulsar protocol");
        let route = PulsarRoute { client, admin };
        if let Some((_, old)) = slot.replace((settings, route.clone())) {
            old.client.close().await;
        }
        Ok(route)
    }

    async fn connect(
        &self,
        remote: &str,
        data: &ClusterData,
        url: &str,
    ) -> Result<quinn::Connection, ReplError> {
        let config_error = |reason: String| ReplError::Config {
            cluster: remote.to_string(),
            reason,
        };
        if url.is_empty() {
            return Err(config_error(
                "no replicationUrl (quic://host:port) in its cluster record".into(),
            ));
        }
        let host_port = url
            .strip_prefix("quic://")
            .ok_or_else(|| config_error(format!("replicationUrl {url} is not quic://host:port")))?
            .trim_end_matches('/');
        let host = host_port
            .rsplit_once(':')
            .map(|(h, _)| h.trim_start_matches('[').trim_end_matches(']'))
            .ok_or_else(|| config_error(format!("replicationUrl {url} has no port")))?;
        let trust = trust_of(data).map_err(config_error)?;
        let mut crypto = tls::client_config(trust, tls::Versions::Tls13)
            .map_err(|e| config_error(e.to_string()))?;
        crypto.alpn_protocols = vec![wire::ALPN.to_vec()];
        let crypto = QuicClientConfig::try_from(crypto).map_err(|e| config_error(e.to_string()))?;
        let mut client = quinn::ClientConfig::new(Arc::new(crypto));
        client.transport_config(transport(&self.config).map_err(|e| config_error(e.to_string()))?);
        let connect_error = |reason: String| ReplError::Connect {
            cluster: remote.to_string(),
            reason,
        };
        let addr = tokio::net::lookup_host(host_port)
            .await
            .map_err(|e| connect_error(format!("resolving {host_port}: {e}")))?
            .next()
            .ok_or_else(|| connect_error(format!("{host_port} resolves to no address")))?;
        let connecting = self
            .endpoint
            .connect_with(client, addr, host)
            .map_err(|e| connect_error(e.to_string()))?;
        let timeout = Duration::from_millis(self.config.connect_timeout_ms.max(100));
        let connection = tokio::time::timeout(timeout, connecting)
            .await
            .map_err(|_| connect_error(format!("no handshake within {timeout:?}")))?
            .map_err(|e| connect_error(e.to_string()))?;
        tracing::info!(remote, %addr, "replication link up");
        Ok(connection)
    }

    /// Makes the topic's replicators match `clusters` (the namespace's replication clusters):
    /// one per cluster other than this one, started with their cursors opened before this
    /// returns (so no entry published after it is missed); replicators of clusters no longer
    /// listed stop and their cursors are deleted.
    pub async fn sync(
        &self,
        topic: &Arc<Topic>,
        clusters: &BTreeSet<String>,
        partitions: u32,
    ) -> Result<(), ReplError> {
        let Some(me) = self.me.upgrade() else {
            return Ok(()); // shutting down
        };
        let wanted: BTreeSet<&String> = clusters
            .iter()
            .filter(|c| **c != self.local_cluster)
            .collect();
        let ml = topic.managed_ledger();
        for remote in topic.replicator_remotes().await {
            if !wanted.contains(&remote) {
                if let Some(handle) = topic.remove_replicator(&remote).await {
                    handle.stop().await;
                }
                ml.delete_cursor(&format!("{REPL_PREFIX}{remote}")).await?;
                tracing::info!(topic = %topic.name(), remote, "replication stopped");
            }
        }
        for remote in wanted {
            if topic.has_replicator(remote).await || topic.is_unloading() {
                continue;
            }
            let (cursor, state) = ml
                .open_cursor(&format!("{REPL_PREFIX}{remote}"), InitialPosition::Latest)
                .await?;
            let handle = replicator::spawn(
                me.clone(),
                topic.clone(),
                remote.clone(),
                partitions,
                cursor,
                state,
            );
            if let Some(other) = topic.add_replicator(remote, handle).await {
                other.stop().await;
            }
            tracing::info!(topic = %topic.name(), remote, "replicating");
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl ReplicationHook for Replication {
    fn url(&self) -> Option<&str> {
        self.url.as_deref()
    }

    async fn sync(
        &self,
        topic: &Arc<Topic>,
        clusters: &BTreeSet<String>,
        partitions: u32,
    ) -> Result<(), BrokerError> {
        Replication::sync(self, topic, clusters, partitions)
            .await
            .map_err(|e| BrokerError::Persistence(e.to_string()))
    }
}

/// How a remote's certificate is checked: `brokerClientTrustCertsFilePath`, or any with
/// `tlsAllowInsecureConnection`.
fn trust_of(data: &ClusterData) -> Result<tls::Trust<'_>, String> {
    match (
        &data.broker_client_trust_certs_file_path,
        data.tls_allow_insecure_connection,
    ) {
        (Some(path), _) => Ok(tls::Trust::File(std::path::Path::new(path))),
        (None, Some(true)) => Ok(tls::Trust::Any),
        _ => Err("set brokerClientTrustCertsFilePath (the certificate the remote presents) or tlsAllowInsecureConnection".into()),
    }
}

/// `token:XYZ`, `file:///path` (the token in a file) or the token itself; empty when unset.
fn resolve_token(parameters: Option<&str>) -> Result<String, String> {
    let Some(p) = parameters.map(str::trim).filter(|p| !p.is_empty()) else {
        return Ok(String::new());
    };
    let p = p.strip_prefix("token:").unwrap_or(p);
    match p.strip_prefix("file://") {
        Some(path) => std::fs::read_to_string(path)
            .map(|t| t.trim().to_string())
            .map_err(|e| format!("{path}: {e}")),
        None => Ok(p.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_come_inline_or_from_a_file() {
        assert_eq!(resolve_token(None).as_deref(), Ok(""));
        assert_eq!(resolve_token(Some("token:abc")).as_deref(), Ok("abc"));
        assert_eq!(resolve_token(Some("abc")).as_deref(), Ok("abc"));
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("t");
        std::fs::write(&file, "xyz\n").expect("write");
        let setting = format!("token:file://{}", file.display());
        assert_eq!(resolve_token(Some(&setting)).as_deref(), Ok("xyz"));
        assert!(resolve_token(Some("file:///nonexistent/token")).is_err());
    }
}
