//! `magnetar standalone`: one metadata node (a single-node Raft group), one bookie (E=Qw=Qa=1)
//! and one broker in one process, with data under one directory. On first start it creates
//! cluster `standalone`, tenant `public` and namespace `public/default`, as Pulsar's standalone
//! does.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use magnetar_bookie::registry::{self, BookieInfo};
use magnetar_bookie::{BookieConfig, BookieServer};
use magnetar_metadata::{Expected, MetadataClient, MetadataError, MetadataNode, NodeConfig};
use serde_json::json;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::broker::Broker;
use crate::config::BrokerConfig;
use crate::managed_ledger::ManagedLedgerConfig;

#[derive(Debug, Clone)]
pub struct StandaloneConfig {
    pub data_dir: PathBuf,
    /// Pulsar protocol (default 6650).
    pub broker_addr: SocketAddr,
    /// Metadata service, for `magnetar metadata …` (default 127.0.0.1:6690).
    pub metadata_addr: SocketAddr,
    /// Bookie protocol (default 127.0.0.1:3181).
    pub bookie_addr: SocketAddr,
    /// Host name put in service URLs.
    pub advertised_address: String,
}

impl Default for StandaloneConfig {
    fn default() -> StandaloneConfig {
        StandaloneConfig {
            data_dir: PathBuf::from("data"),
            broker_addr: SocketAddr::from(([0, 0, 0, 0], 6650)),
            metadata_addr: SocketAddr::from(([127, 0, 0, 1], 6690)),
            bookie_addr: SocketAddr::from(([127, 0, 0, 1], 3181)),
            advertised_address: "127.0.0.1".into(),
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
    _bookie_session: magnetar_metadata::Session,
}

impl Standalone {
    pub async fn start(config: StandaloneConfig) -> anyhow::Result<Standalone> {
        let started = Instant::now();
        std::fs::create_dir_all(&config.data_dir)?;
        let metadata_listener = TcpListener::bind(config.metadata_addr).await?;
        let metadata_addr = metadata_listener.local_addr()?;
        let node_config = NodeConfig {
            node_id: 1,
            listen: metadata_addr,
            data_dir: config.data_dir.join("metadata"),
            heartbeat_ms: 50,
            election_timeout_min_ms: 150,
            election_timeout_max_ms: 300,
            ..NodeConfig::default()
        };
        let metadata_node = MetadataNode::start(node_config, metadata_listener).await?;
        let metadata = MetadataClient::connect([metadata_addr.to_string()]).await?;

        let bookie_listener = TcpListener::bind(config.bookie_addr).await?;
        let bookie_addr = bookie_listener.local_addr()?;
        let bookie_config = BookieConfig {
            listen: bookie_addr,
            journal_dir: config.data_dir.join("bookie/journal"),
            ledger_dir: config.data_dir.join("bookie/ledgers"),
            ..BookieConfig::default()
        };
        let bookie_stop = CancellationToken::new();
        let bookie =
            BookieServer::start(bookie_config, bookie_listener, bookie_stop.clone()).await?;
        let bookie_task = tokio::spawn(bookie.wait());
        let bookie_session = metadata.create_session(Duration::from_secs(10)).await?;
        let info = BookieInfo {
            address: bookie_addr.to_string(),
            read_only: false,
            free_disk_bytes: 0,
            total_disk_bytes: 0,
        };
        registry::register(&metadata, &bookie_session, &info).await?;

        bootstrap(&metadata, &config).await?;

        let broker_config = BrokerConfig {
            advertised_address: config.advertised_address.clone(),
            ensemble_size: 1,
            write_quorum: 1,
            ack_quorum: 1,
            ..BrokerConfig::default()
        };
        let ml_config = ManagedLedgerConfig {
            ensemble: 1,
            write_quorum: 1,
            ack_quorum: 1,
            ..ManagedLedgerConfig::default()
        };
        let broker_listener = TcpListener::bind(config.broker_addr).await?;
        let broker =
            Broker::start(broker_config, ml_config, metadata.clone(), broker_listener).await?;
        tracing::info!(elapsed = ?started.elapsed(), "standalone ready");
        Ok(Standalone {
            broker,
            metadata,
            metadata_node,
            bookie_stop,
            bookie_task,
            _bookie_session: bookie_session,
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

/// Creates what Pulsar's standalone has from the start; leaves existing records alone.
async fn bootstrap(metadata: &MetadataClient, config: &StandaloneConfig) -> anyhow::Result<()> {
    let service_url = format!(
        "pulsar://{}:{}",
        config.advertised_address,
        config.broker_addr.port()
    );
    let records = [
        (
            "/admin/clusters/standalone",
            json!({ "serviceUrl": "http://127.0.0.1:8080", "brokerServiceUrl": service_url }),
        ),
        (
            "/admin/policies/public",
            json!({ "adminRoles": [], "allowedClusters": ["standalone"] }),
        ),
        (
            "/admin/policies/public/default",
            json!({ "replication_clusters": ["standalone"] }),
        ),
    ];
    for (key, value) in records {
        match metadata
            .put(key, serde_json::to_vec(&value)?, Expected::Absent)
            .await
        {
            Ok(_) | Err(MetadataError::BadVersion { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Runs standalone until `shutdown` is cancelled.
pub async fn run(config: StandaloneConfig, shutdown: CancellationToken) -> anyhow::Result<()> {
    let standalone = Standalone::start(config.clone()).await?;
    println!("Magnetar standalone is ready");
    println!("  Pulsar protocol : {}", standalone.broker.service_url());
    println!("  metadata service: {}", config.metadata_addr);
    println!("  data directory  : {}", config.data_dir.display());
    shutdown.cancelled().await;
    standalone.shutdown().await;
    Ok(())
}
