//! `magnetar standalone`: one metadata node (a single-node Raft group), one bookie (E=Qw=Qa=1)
//! and one broker in one process, with data under one directory. On first start it creates
//! cluster `standalone`, tenant `public` and namespace `public/default`, as Pulsar's standalone
//! does. The broker serves the admin API and metrics on HTTP, and with TLS settings also
//! `pulsar+ssl://` and HTTPS; the metrics include the bookie's journal and the Raft node.

use std::io::Write;
use std::net::SocketAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use magnetar_admin_api::models::{BundlesData, ClusterData, Policies, TenantInfo};
use magnetar_admin_api::{NamespaceName, ResourceError, Resources};
use magnetar_auth::AuthConfig;
use magnetar_bookie::registry;
use magnetar_bookie::{BookieConfig, BookieServer};
use magnetar_metadata::client::ClientOptions;
use magnetar_metadata::{MetadataClient, MetadataNode, NodeConfig};
use magnetar_protocol::ClusterToken;
use tokio_util::sync::CancellationToken;

use crate::broker::{Broker, BrokerListeners};
use crate::config::BrokerConfig;
use crate::limits::Limits;
use crate::listen;
use crate::managed_ledger::ManagedLedgerConfig;
use crate::service::BrokerService;
use crate::tls::TlsConfig;

#[derive(Debug, Clone)]
pub struct StandaloneConfig {
    pub data_dir: PathBuf,
    /// Pulsar protocol (default 6650).
    pub broker_addr: SocketAddr,
    /// Metadata service, for `magnetar metadata …` (default 127.0.0.1:6690).
    pub metadata_addr: SocketAddr,
    /// Bookie protocol (default 127.0.0.1:3181).
    pub bookie_addr: SocketAddr,
    /// Admin REST API, lookup and metrics over HTTP (default 0.0.0.0:8080).
    pub http_addr: SocketAddr,
    /// `pulsar+ssl://` (default 0.0.0.0:6651), served when `tls` is on.
    pub broker_tls_addr: SocketAddr,
    /// HTTPS (default 0.0.0.0:8443), served when `tls` is on.
    pub https_addr: SocketAddr,
    /// Host name put in service URLs.
    pub advertised_address: String,
    /// Token authentication and authorization (off by default).
    pub auth: AuthConfig,
    /// Seconds between checks of live connections' token expiry.
    pub auth_refresh_check_secs: u64,
    /// TLS certificate and key (off by default).
    pub tls: TlsConfig,
    /// The bookie turns read-only when its disk is fuller than this (0.95; tests use 1.0 so a
    /// crowded build machine cannot fail them).
    pub disk_usage_threshold: f64,
    /// The broker's limits (connections, producers, publish memory, HTTP…).
    pub limits: Limits,
    /// How often namespace policies (retention, TTL) and backlog quotas are applied.
    pub policy_check_interval_ms: u64,
    pub backlog_quota_check_interval_ms: u64,
    /// The cluster this standalone is (`standalone` by default): two standalones with
    /// different names replicate to each other.
    pub cluster: String,
    /// UDP address of the geo-replication endpoint (QUIC), `None` for none. Its certificate
    /// is `replication.cert_file`/`key_file`, else the `[tls]` one, else a self-signed one
    /// made once in the data directory (`replication/cert.pem`).
    pub replication: crate::config::ReplicationConfig,
    /// Tiered storage (off unless a driver is set).
    pub offload: crate::tiered::OffloadConfig,
}

impl Default for StandaloneConfig {
    fn default() -> StandaloneConfig {
        StandaloneConfig {
            data_dir: PathBuf::from("data"),
            broker_addr: SocketAddr::from(([0, 0, 0, 0], 6650)),
            metadata_addr: SocketAddr::from(([127, 0, 0, 1], 6690)),
            bookie_addr: SocketAddr::from(([127, 0, 0, 1], 3181)),
            http_addr: SocketAddr::from(([0, 0, 0, 0], 8080)),
            broker_tls_addr: SocketAddr::from(([0, 0, 0, 0], 6651)),
            https_addr: SocketAddr::from(([0, 0, 0, 0], 8443)),
            advertised_address: "127.0.0.1".into(),
            auth: AuthConfig::default(),
            auth_refresh_check_secs: 60,
            tls: TlsConfig::default(),
            disk_usage_threshold: BookieConfig::default().disk_usage_threshold,
            limits: Limits::default(),
            policy_check_interval_ms: BrokerConfig::default().policy_check_interval_ms,
            backlog_quota_check_interval_ms: BrokerConfig::default()
                .backlog_quota_check_interval_ms,
            cluster: BrokerConfig::default().cluster,
            replication: crate::config::ReplicationConfig {
                addr: Some(SocketAddr::from(([0, 0, 0, 0], 6652))),
                ..Default::default()
            },
            offload: crate::tiered::OffloadConfig::default(),
        }
    }
}

impl StandaloneConfig {
    /// Every listener on `127.0.0.1:0` (ports picked by the OS), for tests.
    pub fn ephemeral(data_dir: impl Into<PathBuf>) -> StandaloneConfig {
        let any = SocketAddr::from(([127, 0, 0, 1], 0));
        StandaloneConfig {
            data_dir: data_dir.into(),
            broker_addr: any,
            metadata_addr: any,
            bookie_addr: any,
            http_addr: any,
            broker_tls_addr: any,
            https_addr: any,
            disk_usage_threshold: 1.0,
            replication: crate::config::ReplicationConfig {
                addr: Some(any),
                ..Default::default()
            },
            ..StandaloneConfig::default()
        }
    }
}

/// The parts of a running standalone, for tests that start one in-process.
#[derive(Debug)]
pub struct Standalone {
    pub broker: Broker,
    pub metadata: MetadataClient,
    metadata_node: MetadataNode,
    bookie_stop: CancellationToken,
    bookie_task: tokio::task::JoinHandle<Result<(), magnetar_bookie::BookieError>>,
}

impl Standalone {
    pub async fn start(config: StandaloneConfig) -> anyhow::Result<Standalone> {
        let started = Instant::now();
        std::fs::create_dir_all(&config.data_dir).map_err(|e| {
            anyhow::anyhow!(
                "cannot create the data directory {}: {e}; choose another with --data-dir",
                config.data_dir.display()
            )
        })?;
        // The internal ports (metadata, bookie) are on loopback by default and, in any case,
        // serve only who presents this standalone's token (kept in the data directory).
        let token = cluster_token(&config.data_dir)?;
        let metadata_listener = listen::bind(
            config.metadata_addr,
            "the metadata service",
            "--metadata-addr",
        )
        .await?;
        let metadata_addr = metadata_listener.local_addr()?;
        let node_config = NodeConfig {
            node_id: 1,
            listen: metadata_addr,
            data_dir: config.data_dir.join("metadata"),
            heartbeat_ms: 50,
            election_timeout_min_ms: 150,
            election_timeout_max_ms: 300,
            cluster_token: Some(token.clone()),
            ..NodeConfig::default()
        };
        let metadata_node = MetadataNode::start(node_config, metadata_listener).await?;
        let metadata = MetadataClient::connect_with(
            [metadata_addr.to_string()],
            ClientOptions {
                cluster_token: Some(token.clone()),
                // The broker's calls to the metadata node stay in memory (same protocol).
                local: Some(metadata_node.local_connector()),
                ..ClientOptions::default()
            },
        )
        .await?;

        // The bookie registers itself and collects deleted ledgers, as in a cluster.
        let bookie_listener =
            listen::bind(config.bookie_addr, "the bookie", "--bookie-addr").await?;
        let bookie_addr = bookie_listener.local_addr()?;
        let bookie_config = BookieConfig {
            listen: bookie_addr,
            journal_dir: config.data_dir.join("bookie/journal"),
            ledger_dir: config.data_dir.join("bookie/ledgers"),
            disk_usage_threshold: config.disk_usage_threshold,
            disk_usage_lwm_threshold: BookieConfig::default()
                .disk_usage_lwm_threshold
                .min(config.disk_usage_threshold),
            metadata_servers: vec![metadata_addr.to_string()],
            cluster_token: Some(token.clone()),
            ..BookieConfig::default()
        };
        let bookie_stop = CancellationToken::new();
        let bookie =
            BookieServer::start(bookie_config, bookie_listener, bookie_stop.clone()).await?;
        let journal = bookie.bookie().clone();
        let address = bookie.info().address;
        let bookie_task = tokio::spawn(bookie.wait());
        wait_registered(&metadata, &address).await?;

        let mut replication = config.replication.clone();
        if replication.addr.is_some() && replication.cert_file.is_none() && !config.tls.is_enabled()
        {
            let (cert, key) = (
                config.data_dir.join("replication/cert.pem"),
                config.data_dir.join("replication/key.pem"),
            );
            let names = vec![
                config.advertised_address.clone(),
                "localhost".to_string(),
                "127.0.0.1".to_string(),
            ];
            crate::replication::ensure_self_signed(&cert, &key, &names)?;
            replication.cert_file = Some(cert);
            replication.key_file = Some(key);
        }
        let broker_config = BrokerConfig {
            cluster: config.cluster.clone(),
            replication,
            advertised_address: config.advertised_address.clone(),
            ensemble_size: 1,
            write_quorum: 1,
            ack_quorum: 1,
            auth: config.auth.clone(),
            auth_refresh_check_secs: config.auth_refresh_check_secs,
            tls: config.tls.clone(),
            limits: config.limits.clone(),
            cluster_token: Some(token),
            policy_check_interval_ms: config.policy_check_interval_ms,
            backlog_quota_check_interval_ms: config.backlog_quota_check_interval_ms,
            offload: config.offload.clone(),
            ..BrokerConfig::default()
        };
        let ml_config = ManagedLedgerConfig {
            ensemble: 1,
            write_quorum: 1,
            ack_quorum: 1,
            offloader: crate::tiered::Offloader::open(&config.offload)
                .map_err(anyhow::Error::msg)?,
            ..ManagedLedgerConfig::default()
        };
        let tls = config.tls.is_enabled();
        let listeners = BrokerListeners {
            pulsar: listen::bind(config.broker_addr, "the Pulsar protocol", "--broker-addr")
                .await?,
            pulsar_tls: match tls {
                true => Some(
                    listen::bind(
                        config.broker_tls_addr,
                        "the Pulsar protocol over TLS",
                        "--broker-tls-addr",
                    )
                    .await?,
                ),
                false => None,
            },
            http: Some(
                listen::bind(
                    config.http_addr,
                    "the admin API and metrics (HTTP)",
                    "--http-addr",
                )
                .await?,
            ),
            https: match tls {
                true => Some(
                    listen::bind(
                        config.https_addr,
                        "the admin API and metrics (HTTPS)",
                        "--https-addr",
                    )
                    .await?,
                ),
                false => None,
            },
        };
        // Clients that connect the moment the port opens find `public/default` already there.
        let broker = Broker::start(
            broker_config,
            ml_config,
            metadata.clone(),
            listeners,
            async |service| bootstrap(&metadata, service).await,
        )
        .await?;
        let metrics = &broker.service().ctx().metrics;
        // The bookie's series carry the cluster label, as the broker's do.
        let labels = [("cluster".to_string(), config.cluster.clone())].into();
        metrics.add_families(move || magnetar_bookie::metrics::families(&journal, &labels));
        let raft = metadata_node.status();
        metrics.add_source(move || crate::role_http::raft_samples(&raft()));
        tracing::info!(elapsed = ?started.elapsed(), "standalone ready");
        Ok(Standalone {
            broker,
            metadata,
            metadata_node,
            bookie_stop,
            bookie_task,
        })
    }

    /// Closes the broker (flushing cursors, sealing ledgers), then the bookie, then metadata.
    pub async fn shutdown(self) {
        self.broker.shutdown().await;
        self.bookie_stop.cancel();
        match self.bookie_task.await {
            Ok(Err(e)) => tracing::warn!(error = %e, "bookie shut down with an error"),
            Err(e) => tracing::warn!(error = %e, "bookie task failed"),
            Ok(Ok(())) => {}
        }
        self.metadata_node.shutdown().await;
    }
}

/// The file under the data directory holding this standalone's cluster token.
pub const TOKEN_FILE: &str = "cluster.token";

/// The standalone's cluster token: read from `data_dir/cluster.token`, or made and written
/// there (readable by its owner only) on first start.
fn cluster_token(data_dir: &Path) -> anyhow::Result<ClusterToken> {
    let path = data_dir.join(TOKEN_FILE);
    if path.exists() {
        return Ok(ClusterToken::from_setting(&format!(
            "file://{}",
            path.display()
        ))?);
    }
    let token = ClusterToken::generate();
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))?;
    file.write_all(token.as_bytes())?;
    file.sync_all()?;
    Ok(token)
}

/// Waits until the bookie at `address` is registered (it registers itself at start).
async fn wait_registered(metadata: &MetadataClient, address: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if registry::writable(metadata)
            .await?
            .iter()
            .any(|b| b.address == address)
        {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the bookie at {address} did not register within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Already there: a record a previous start (or an admin) created is left alone.
fn exists_ok(result: Result<(), ResourceError>) -> Result<(), ResourceError> {
    match result {
        Err(ResourceError::Conflict(_)) => Ok(()),
        other => other,
    }
}

/// Creates what Pulsar's standalone has from the start — cluster `standalone` with this
/// broker's URLs, tenant `public`, namespace `public/default` — through the admin resources, so
/// the records are exactly what the admin API reads and writes.
async fn bootstrap(metadata: &MetadataClient, service: &BrokerService) -> anyhow::Result<()> {
    let resources = Resources::new(metadata.clone());
    let cluster = service.ctx().config.cluster.clone();
    let data = ClusterData {
        service_url: service.ctx().urls.web_url.clone(),
        service_url_tls: service.ctx().urls.web_url_tls.clone(),
        broker_service_url: Some(service.ctx().urls.service_url.clone()),
        broker_service_url_tls: service.ctx().urls.service_url_tls.clone(),
        replication_url: service.replication_url(),
        ..ClusterData::default()
    };
    // On a restart with other addresses, the record follows (other fields set by an admin stay).
    match resources.clusters.get(&cluster).await? {
        None => exists_ok(resources.clusters.create(&cluster, &data).await)?,
        Some(old) => {
            let updated = ClusterData {
                service_url: data.service_url.clone(),
                service_url_tls: data.service_url_tls.clone(),
                broker_service_url: data.broker_service_url.clone(),
                broker_service_url_tls: data.broker_service_url_tls.clone(),
                replication_url: data.replication_url.clone(),
                ..old.clone()
            };
            if updated != old {
                resources.clusters.update(&cluster, &updated).await?;
            }
        }
    }
    let tenant = TenantInfo {
        admin_roles: Default::default(),
        allowed_clusters: [cluster.clone()].into(),
    };
    exists_ok(resources.tenants.create("public", &tenant).await)?;
    let policies = Policies {
        replication_clusters: [cluster].into(),
        bundles: Some(BundlesData::even(4)),
        ..Policies::default()
    };
    let ns = NamespaceName::new("public", "default")?;
    exists_ok(resources.namespaces.create(&ns, &policies).await)?;
    Ok(())
}

/// Runs standalone until `shutdown` is cancelled.
pub async fn run(config: StandaloneConfig, shutdown: CancellationToken) -> anyhow::Result<()> {
    let standalone = Standalone::start(config.clone()).await?;
    println!("Magnetar standalone is ready");
    let service = standalone.broker.service();
    println!("  Pulsar protocol : {}", standalone.broker.service_url());
    if let Some(url) = &service.ctx().urls.service_url_tls {
        println!("  Pulsar over TLS : {url}");
    }
    if let Some(url) = &service.ctx().urls.web_url {
        println!("  admin API       : {url}/admin/v2");
        println!("  metrics         : {url}/metrics");
    }
    if let Some(url) = &service.ctx().urls.web_url_tls {
        println!("  admin API (TLS) : {url}/admin/v2");
    }
    println!("  cluster         : {}", service.ctx().config.cluster);
    if let Some(url) = standalone.broker.replication_url() {
        println!("  replication     : {url}");
    }
    if config.auth.authentication_enabled {
        println!("  authentication  : token");
    }
    println!(
        "  metadata service: {} (cluster token in {})",
        config.metadata_addr,
        config.data_dir.join(TOKEN_FILE).display()
    );
    println!("  data directory  : {}", config.data_dir.display());
    shutdown.cancelled().await;
    standalone.shutdown().await;
    Ok(())
}
