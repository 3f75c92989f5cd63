//! The in-process cluster harness: a metadata group, bookies and brokers in this process, each
//! with its own sockets and metadata client, with handles to kill and restart them.
//!
//! ```text
//! let cluster = Cluster::builder().metadata(3).bookies(3).brokers(2).build().await;
//! cluster.kill_broker(0);                 // as kill -9 looks to the cluster: no hand-over
//! cluster.restart_broker(0).await;
//! ```
//!
//! Killing a broker here stops its listeners and connections and leaves its metadata session
//! to expire, exactly what another broker sees of a `kill -9`; the real-process version of the
//! same tests is in the repository's `tests/compat/test_cluster.py`.

use std::net::SocketAddr;
use std::time::Duration;

use magnetar_admin_api::models::{BundlesData, ClusterData, Policies, TenantInfo};
use magnetar_admin_api::{NamespaceName, Resources};
use magnetar_broker::managed_ledger::ManagedLedgerConfig;
use magnetar_broker::{Broker, BrokerConfig, BrokerListeners};
use magnetar_metadata::MetadataClient;
use magnetar_metadata::testing::{ClusterOptions, LocalCluster};
use tokio::net::TcpListener;

use crate::bookie::TestBookie;
use crate::wait::wait_until;

pub const CLUSTER: &str = "test";
/// Short, so failover tests finish quickly.
pub const SESSION_TTL_MS: u64 = 1500;

#[derive(Debug, Clone, Copy)]
pub struct ClusterBuilder {
    metadata: usize,
    bookies: usize,
    brokers: usize,
    quorum: usize,
    bundles: u32,
    shedding: Option<(u64, u64)>,
    replication: bool,
}

impl ClusterBuilder {
    /// Every broker gets a geo-replication endpoint on `127.0.0.1:0`, presenting one
    /// self-signed certificate ([`Cluster::replication_cert`]).
    pub fn replication(mut self) -> ClusterBuilder {
        self.replication = true;
        self
    }

    /// Automatic load shedding every `interval_ms`, with a `grace_ms` grace period (default:
    /// off, so tests place bundles themselves).
    pub fn shedding(mut self, interval_ms: u64, grace_ms: u64) -> ClusterBuilder {
        self.shedding = Some((interval_ms, grace_ms));
        self
    }
    pub fn metadata(mut self, n: usize) -> ClusterBuilder {
        self.metadata = n;
        self
    }
    pub fn bookies(mut self, n: usize) -> ClusterBuilder {
        self.bookies = n;
        self
    }
    pub fn brokers(mut self, n: usize) -> ClusterBuilder {
        self.brokers = n;
        self
    }
    /// E = Qw = Qa of every ledger (default: 2, capped by the bookies).
    pub fn quorum(mut self, n: usize) -> ClusterBuilder {
        self.quorum = n;
        self
    }
    /// Bundles of `public/default` (default 4).
    pub fn bundles(mut self, n: u32) -> ClusterBuilder {
        self.bundles = n;
        self
    }

    pub async fn build(self) -> Cluster {
        let group = LocalCluster::start(self.metadata, ClusterOptions::default())
            .await
            .expect("metadata group");
        group
            .wait_for_leader(Duration::from_secs(20))
            .await
            .expect("a metadata leader");
        let metadata = group.client();
        init(&metadata, self.bundles).await;
        let mut bookies = Vec::new();
        for _ in 0..self.bookies {
            bookies.push(Some(TestBookie::registered(&metadata).await));
        }
        let certs = match self.replication {
            true => {
                let dir = tempfile::tempdir().expect("tempdir");
                magnetar_broker::replication::ensure_self_signed(
                    &dir.path().join("cert.pem"),
                    &dir.path().join("key.pem"),
                    &["127.0.0.1".into(), "localhost".into()],
                )
                .expect("replication certificate");
                Some(dir)
            }
            false => None,
        };
        let mut cluster = Cluster {
            group,
            metadata,
            bookies,
            brokers: Vec::new(),
            quorum: self.quorum.min(self.bookies).max(1),
            shedding: self.shedding,
            certs,
        };
        for _ in 0..self.brokers {
            let broker = cluster.start_broker(None).await;
            cluster.brokers.push(broker);
        }
        cluster
    }
}

/// What `magnetar cluster init` creates.
async fn init(metadata: &MetadataClient, bundles: u32) {
    let resources = Resources::new(metadata.clone());
    let data = ClusterData {
        service_url: Some("http://127.0.0.1:8080".into()),
        broker_service_url: Some("pulsar://127.0.0.1:6650".into()),
        ..ClusterData::default()
    };
    resources
        .clusters
        .create(CLUSTER, &data)
        .await
        .expect("cluster");
    let tenant = TenantInfo {
        admin_roles: Default::default(),
        allowed_clusters: [CLUSTER.to_string()].into(),
    };
    resources
        .tenants
        .create("public", &tenant)
        .await
        .expect("tenant");
    let policies = Policies {
        replication_clusters: [CLUSTER.to_string()].into(),
        bundles: Some(BundlesData::even(bundles)),
        ..Policies::default()
    };
    let ns = NamespaceName::new("public", "default").expect("name");
    resources
        .namespaces
        .create(&ns, &policies)
        .await
        .expect("namespace");
}

/// A broker of the harness and the ports it keeps across restarts.
#[derive(Debug)]
pub struct TestBroker {
    pub broker: Option<Broker>,
    pub pulsar: SocketAddr,
    pub http: SocketAddr,
}

impl TestBroker {
    pub fn get(&self) -> &Broker {
        self.broker.as_ref().expect("the broker is running")
    }
    pub fn id(&self) -> String {
        format!("127.0.0.1:{}", self.http.port())
    }
    pub fn service_url(&self) -> String {
        format!("pulsar://127.0.0.1:{}", self.pulsar.port())
    }
    pub fn web_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.http.port())
    }
}

/// A running cluster of the harness; see the module docs.
#[derive(Debug)]
pub struct Cluster {
    pub group: LocalCluster,
    pub metadata: MetadataClient,
    pub bookies: Vec<Option<TestBookie>>,
    pub brokers: Vec<TestBroker>,
    quorum: usize,
    shedding: Option<(u64, u64)>,
    /// The replication certificate and key, when brokers replicate.
    certs: Option<tempfile::TempDir>,
}

impl Cluster {
    /// `n` topics `persistent://public/default/{prefix}-{i}`, each in a bundle of its own.
    pub async fn topics_in_distinct_bundles(
        &self,
        prefix: &str,
        n: usize,
    ) -> Vec<(String, magnetar_broker::cluster::BundleName)> {
        let namespaces = self.broker(0).get().service().ctx().namespaces.clone();
        let mut topics: Vec<(String, magnetar_broker::cluster::BundleName)> = Vec::new();
        for i in 0.. {
            if topics.len() == n {
                break;
            }
            let topic = format!("persistent://public/default/{prefix}-{i}");
            let name = magnetar_protocol::TopicName::parse(&topic).expect("topic name");
            let bundle = namespaces.bundle_of(&name).await.expect("bundle");
            if topics.iter().all(|(_, b)| *b != bundle) {
                topics.push((topic, bundle));
            }
        }
        topics
    }

    /// The PEM certificate every broker's replication endpoint presents.
    pub fn replication_cert(&self) -> Option<std::path::PathBuf> {
        self.certs.as_ref().map(|d| d.path().join("cert.pem"))
    }

    pub fn builder() -> ClusterBuilder {
        ClusterBuilder {
            metadata: 1,
            bookies: 2,
            brokers: 2,
            quorum: 2,
            bundles: 4,
            shedding: None,
            replication: false,
        }
    }

    async fn start_broker(&self, ports: Option<(SocketAddr, SocketAddr)>) -> TestBroker {
        let any = SocketAddr::from(([127, 0, 0, 1], 0));
        let (pulsar_addr, http_addr) = ports.unwrap_or((any, any));
        let pulsar = bind(pulsar_addr).await;
        let http = bind(http_addr).await;
        let (pulsar_at, http_at) = (
            pulsar.local_addr().expect("addr"),
            http.local_addr().expect("addr"),
        );
        let config = BrokerConfig {
            cluster: CLUSTER.into(),
            ensemble_size: self.quorum,
            write_quorum: self.quorum,
            ack_quorum: self.quorum,
            metadata_session_timeout_ms: SESSION_TTL_MS,
            load_balancer_enabled: self.shedding.is_some(),
            load_shedding_interval_ms: self.shedding.map_or(0, |s| s.0),
            load_shedding_grace_ms: self.shedding.map_or(0, |s| s.1),
            replication: match &self.certs {
                Some(dir) => magnetar_broker::replication::ReplicationConfig {
                    addr: Some(any),
                    cert_file: Some(dir.path().join("cert.pem")),
                    key_file: Some(dir.path().join("key.pem")),
                    ..Default::default()
                },
                None => Default::default(),
            },
            ..BrokerConfig::default()
        };
        let ml = ManagedLedgerConfig {
            ensemble: self.quorum,
            write_quorum: self.quorum,
            ack_quorum: self.quorum,
            ..ManagedLedgerConfig::default()
        };
        let listeners = BrokerListeners {
            pulsar,
            pulsar_tls: None,
            http: Some(http),
            https: None,
        };
        let broker = Broker::start(config, ml, self.group.client(), listeners, async |_| Ok(()))
            .await
            .expect("broker");
        TestBroker {
            broker: Some(broker),
            pulsar: pulsar_at,
            http: http_at,
        }
    }

    pub fn broker(&self, index: usize) -> &TestBroker {
        &self.brokers[index]
    }

    /// The index of the broker with this id.
    pub fn index_of(&self, broker_id: &str) -> usize {
        self.brokers
            .iter()
            .position(|b| b.id() == broker_id)
            .unwrap_or_else(|| panic!("no broker {broker_id}"))
    }

    /// Waits until every running broker sees every running broker as live.
    pub async fn wait_all_registered(&self) {
        let running: Vec<&TestBroker> =
            self.brokers.iter().filter(|b| b.broker.is_some()).collect();
        let want = running.len();
        for broker in &running {
            let namespaces = broker.get().service().ctx().namespaces.clone();
            wait_until("every broker registered", Duration::from_secs(30), || {
                let n = namespaces.live_brokers().len();
                async move { n == want }
            })
            .await;
        }
    }

    /// Stops a broker the way `kill -9` looks to the others: no hand-over, its session left
    /// to expire.
    pub fn kill_broker(&mut self, index: usize) {
        if let Some(broker) = self.brokers[index].broker.take() {
            broker.abort();
        }
    }

    /// Stops a broker gracefully: bundles handed over, session closed.
    pub async fn stop_broker(&mut self, index: usize) {
        if let Some(broker) = self.brokers[index].broker.take() {
            broker.shutdown().await;
        }
    }

    /// Starts a stopped broker again on its old ports.
    pub async fn restart_broker(&mut self, index: usize) {
        let ports = (self.brokers[index].pulsar, self.brokers[index].http);
        let broker = self.start_broker(Some(ports)).await;
        self.brokers[index] = broker;
    }

    pub async fn stop_bookie(&mut self, index: usize) {
        if let Some(bookie) = self.bookies[index].take() {
            bookie.stop().await;
        }
    }

    pub async fn shutdown(mut self) {
        for index in 0..self.brokers.len() {
            self.stop_broker(index).await;
        }
        for index in 0..self.bookies.len() {
            self.stop_bookie(index).await;
        }
        self.group.shutdown().await;
    }
}

async fn bind(addr: SocketAddr) -> TcpListener {
    // A restarted broker's port may linger a moment in the kernel.
    for _ in 0..100 {
        match TcpListener::bind(addr).await {
            Ok(listener) => return listener,
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    panic!("could not bind {addr}");
}
