//! `magnetar broker` (a stateless broker of a cluster) and `magnetar cluster init` (the
//! cluster's first records, like `pulsar initialize-cluster-metadata`).
//!
//! A broker's settings are layered: defaults, then the TOML file (`--config`), then
//! environment variables and flags. The file looks like `deploy/broker.toml`:
//!
//! ```toml
//! metadata_servers = ["10.0.0.1:6690", "10.0.0.2:6690", "10.0.0.3:6690"]
//! broker_addr = "0.0.0.0:6650"
//! http_addr = "0.0.0.0:8080"
//!
//! [broker]
//! cluster = "prod"
//! advertised_address = "broker-1.example.com"
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use magnetar_admin_api::models::{BundlesData, ClusterData, Policies, TenantInfo};
use magnetar_admin_api::{NamespaceName, ResourceError, Resources};
use magnetar_bookie::autorecovery::{self, AutoRecoveryConfig};
use magnetar_metadata::MetadataClient;
use magnetar_metadata::client::ClientOptions;
use magnetar_protocol::{ClusterToken, ClusterTokenError};
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use crate::broker::{Broker, BrokerListeners};
use crate::config::BrokerConfig;
use crate::listen;
use crate::managed_ledger::ManagedLedgerConfig;
use crate::metrics::{Kind, Sample};
use crate::security_config::AuthFlags;

/// The broker's TOML file: listeners and metadata servers at the top, `[broker]` for the rest.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BrokerFile {
    pub metadata_servers: Vec<String>,
    pub broker_addr: SocketAddr,
    pub http_addr: SocketAddr,
    pub broker_tls_addr: SocketAddr,
    pub https_addr: SocketAddr,
    pub broker: BrokerConfig,
}

impl Default for BrokerFile {
    fn default() -> BrokerFile {
        BrokerFile {
            metadata_servers: vec!["127.0.0.1:6690".into()],
            broker_addr: SocketAddr::from(([0, 0, 0, 0], 6650)),
            http_addr: SocketAddr::from(([0, 0, 0, 0], 8080)),
            broker_tls_addr: SocketAddr::from(([0, 0, 0, 0], 6651)),
            https_addr: SocketAddr::from(([0, 0, 0, 0], 8443)),
            broker: BrokerConfig::default(),
        }
    }
}

impl BrokerFile {
    pub fn read(path: &Path) -> anyhow::Result<BrokerFile> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
        toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
    }
}

#[derive(Debug, clap::Args)]
pub struct BrokerArgs {
    /// TOML file with the broker's settings (see deploy/broker.toml); flags override it.
    #[arg(long, env = "MAGNETAR_BROKER_CONFIG")]
    pub config: Option<PathBuf>,
    /// Metadata nodes (any of them; the leader is found).
    #[arg(long, env = "MAGNETAR_METADATA_SERVERS", value_delimiter = ',')]
    pub metadata: Vec<String>,
    /// The cluster this broker serves (`clusterName`).
    #[arg(long, env = "MAGNETAR_CLUSTER")]
    pub cluster: Option<String>,
    /// Pulsar protocol listener.
    #[arg(long)]
    pub broker_addr: Option<SocketAddr>,
    /// Admin REST API, HTTP lookup and /metrics.
    #[arg(long)]
    pub http_addr: Option<SocketAddr>,
    /// pulsar+ssl:// listener (with TLS settings).
    #[arg(long)]
    pub broker_tls_addr: Option<SocketAddr>,
    /// HTTPS listener (with TLS settings).
    #[arg(long)]
    pub https_addr: Option<SocketAddr>,
    /// Host name clients and other brokers reach this broker by.
    #[arg(long, env = "MAGNETAR_ADVERTISED_ADDRESS")]
    pub advertised_address: Option<String>,
    /// Metadata session TTL in milliseconds: how soon a dead broker's topics move.
    #[arg(long)]
    pub session_timeout_ms: Option<u64>,
    /// Default bookies per ledger, copies per entry and acknowledged copies (E, Qw, Qa).
    #[arg(long)]
    pub ensemble_size: Option<usize>,
    #[arg(long)]
    pub write_quorum: Option<usize>,
    #[arg(long)]
    pub ack_quorum: Option<usize>,
    /// TOML file with the [auth] settings (see docs/auth.md).
    #[arg(long, value_name = "FILE", env = "MAGNETAR_AUTH_CONFIG")]
    pub auth_config: Option<PathBuf>,
    /// Turns token authentication and authorization on with this HMAC key (a key URL).
    #[arg(long, value_name = "KEY_URL", conflicts_with = "token_public_key")]
    pub token_secret_key: Option<String>,
    /// Turns token authentication and authorization on with this public key (a key URL).
    #[arg(long, value_name = "KEY_URL")]
    pub token_public_key: Option<String>,
    /// Roles allowed everything (comma separated).
    #[arg(long, value_delimiter = ',')]
    pub superuser_roles: Vec<String>,
    /// PEM certificate chain: turns on pulsar+ssl:// and HTTPS.
    #[arg(long, value_name = "FILE", requires = "tls_key_file")]
    pub tls_cert_file: Option<PathBuf>,
    /// PEM private key of --tls-cert-file.
    #[arg(long, value_name = "FILE", requires = "tls_cert_file")]
    pub tls_key_file: Option<PathBuf>,
    /// PEM CA certificates client certificates are checked against.
    #[arg(long, value_name = "FILE")]
    pub tls_trust_certs_file: Option<PathBuf>,
    /// Refuse TLS clients without a certificate signed by --tls-trust-certs-file (mTLS).
    #[arg(long, requires = "tls_trust_certs_file")]
    pub tls_require_trusted_client_cert: bool,
    /// The cluster's shared secret for the metadata service and the bookies: `file:///path`
    /// or the token itself.
    #[arg(long, env = "MAGNETAR_CLUSTER_TOKEN", hide_env_values = true, value_parser = cluster_token)]
    pub cluster_token: Option<ClusterToken>,
    /// UDP address of this broker's geo-replication endpoint (QUIC), e.g. 0.0.0.0:6652, or
    /// `off`. Needs a certificate: --replication-cert-file or --tls-cert-file.
    #[arg(long, value_parser = optional_addr)]
    pub replication_addr: Option<Option<SocketAddr>>,
    /// PEM certificate chain the replication endpoint presents.
    #[arg(long, value_name = "FILE", requires = "replication_key_file")]
    pub replication_cert_file: Option<PathBuf>,
    /// PEM private key of --replication-cert-file.
    #[arg(long, value_name = "FILE", requires = "replication_cert_file")]
    pub replication_key_file: Option<PathBuf>,
}

/// An address, or `off` for none.
pub fn optional_addr(setting: &str) -> Result<Option<SocketAddr>, String> {
    match setting {
        "off" | "none" | "" => Ok(None),
        addr => addr
            .parse()
            .map(Some)
            .map_err(|e| format!("{addr:?} is not host:port or `off`: {e}")),
    }
}

fn cluster_token(setting: &str) -> Result<ClusterToken, ClusterTokenError> {
    ClusterToken::from_setting(setting)
}

/// The metadata client of a broker or tool: `servers`, presenting `token`.
fn metadata_client(
    servers: &[String],
    token: Option<ClusterToken>,
) -> anyhow::Result<MetadataClient> {
    let options = ClientOptions {
        cluster_token: token,
        ..ClientOptions::default()
    };
    Ok(MetadataClient::new(servers.to_vec(), options)?)
}

impl BrokerArgs {
    /// Defaults, then the file, then the flags.
    pub fn resolve(self) -> anyhow::Result<BrokerFile> {
        let mut file = match &self.config {
            Some(path) => BrokerFile::read(path)?,
            None => BrokerFile::default(),
        };
        if !self.metadata.is_empty() {
            file.metadata_servers = self.metadata;
        }
        let broker = &mut file.broker;
        if let Some(cluster) = self.cluster {
            broker.cluster = cluster;
        }
        if let Some(host) = self.advertised_address {
            broker.advertised_address = host;
        }
        if let Some(ms) = self.session_timeout_ms {
            broker.metadata_session_timeout_ms = ms;
        }
        if let Some(e) = self.ensemble_size {
            broker.ensemble_size = e;
        }
        if let Some(w) = self.write_quorum {
            broker.write_quorum = w;
        }
        if let Some(a) = self.ack_quorum {
            broker.ack_quorum = a;
        }
        let auth_flags = AuthFlags {
            config_file: self.auth_config,
            token_secret_key: self.token_secret_key,
            token_public_key: self.token_public_key,
            superuser_roles: self.superuser_roles,
        };
        if auth_flags.config_file.is_some()
            || auth_flags.token_secret_key.is_some()
            || auth_flags.token_public_key.is_some()
            || !auth_flags.superuser_roles.is_empty()
        {
            broker.auth = auth_flags.resolve()?;
        }
        if self.tls_cert_file.is_some() {
            broker.tls.cert_file = self.tls_cert_file;
            broker.tls.key_file = self.tls_key_file;
        }
        if self.tls_trust_certs_file.is_some() {
            broker.tls.trust_certs_file = self.tls_trust_certs_file;
        }
        if self.tls_require_trusted_client_cert {
            broker.tls.require_trusted_client_cert = true;
        }
        if let Some(token) = self.cluster_token {
            broker.cluster_token = Some(token);
        }
        if let Some(addr) = self.replication_addr {
            broker.replication.addr = addr;
        }
        if self.replication_cert_file.is_some() {
            broker.replication.cert_file = self.replication_cert_file;
            broker.replication.key_file = self.replication_key_file;
        }
        for (addr, flag) in [
            (&mut file.broker_addr, self.broker_addr),
            (&mut file.http_addr, self.http_addr),
            (&mut file.broker_tls_addr, self.broker_tls_addr),
            (&mut file.https_addr, self.https_addr),
        ] {
            if let Some(flag) = flag {
                *addr = flag;
            }
        }
        if file.metadata_servers.is_empty() {
            anyhow::bail!("no metadata servers: pass --metadata or set metadata_servers");
        }
        file.broker
            .validate()
            .map_err(|e| anyhow::anyhow!("invalid broker settings: {e}"))?;
        Ok(file)
    }
}

/// The managed-ledger settings a broker's config implies.
pub fn ml_config(config: &BrokerConfig) -> anyhow::Result<ManagedLedgerConfig> {
    Ok(ManagedLedgerConfig {
        ensemble: config.ensemble_size,
        write_quorum: config.write_quorum,
        ack_quorum: config.ack_quorum,
        offloader: crate::tiered::Offloader::open(&config.offload).map_err(anyhow::Error::msg)?,
        ..ManagedLedgerConfig::default()
    })
}

/// Runs a broker until `shutdown`, then hands its bundles over and leaves.
pub async fn run(args: BrokerArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    let file = args.resolve()?;
    let metadata = metadata_client(&file.metadata_servers, file.broker.cluster_token.clone())?;
    let cluster = file.broker.cluster.clone();
    let resources = Resources::new(metadata.clone());
    let unreachable = |why: String| {
        anyhow::anyhow!(
            "cannot reach the metadata service at {} ({why}): is it running, with a leader? \
             Its addresses come from --metadata, `metadata_servers` in the config file or \
             MAGNETAR_METADATA_SERVERS",
            file.metadata_servers.join(",")
        )
    };
    let known =
        match tokio::time::timeout(Duration::from_secs(30), resources.clusters.exists(&cluster))
            .await
        {
            Err(_) => return Err(unreachable("no answer within 30 s".into())),
            Ok(Err(e)) => return Err(unreachable(e.to_string())),
            Ok(Ok(known)) => known,
        };
    if !known {
        anyhow::bail!(
            "cluster {cluster:?} is not initialized: run `magnetar cluster init --cluster {cluster} …` first"
        );
    }
    let tls = file.broker.tls.is_enabled();
    let listeners = BrokerListeners {
        pulsar: listen::bind(
            file.broker_addr,
            "the Pulsar protocol",
            "`broker_addr` in the config file",
        )
        .await?,
        pulsar_tls: match tls {
            true => Some(
                listen::bind(
                    file.broker_tls_addr,
                    "the Pulsar protocol over TLS",
                    "`broker_tls_addr` in the config file",
                )
                .await?,
            ),
            false => None,
        },
        http: Some(
            listen::bind(
                file.http_addr,
                "the admin API and metrics (HTTP)",
                "`http_addr` in the config file",
            )
            .await?,
        ),
        https: match tls {
            true => Some(
                listen::bind(
                    file.https_addr,
                    "the admin API and metrics (HTTPS)",
                    "`https_addr` in the config file",
                )
                .await?,
            ),
            false => None,
        },
    };
    let ml = ml_config(&file.broker)?;
    let autorecovery = file
        .broker
        .autorecovery_enabled
        .then(|| AutoRecoveryConfig {
            lost_bookie_delay: Duration::from_millis(file.broker.lost_bookie_delay_ms),
            audit_interval: Duration::from_millis(file.broker.auditor_interval_ms.max(100)),
            open_ledger_grace: Duration::from_millis(
                file.broker.open_ledger_rereplication_grace_ms,
            ),
            session_ttl: file.broker.session_ttl(),
        });
    let broker = Broker::start(file.broker, ml, metadata, listeners, async |_| Ok(())).await?;
    let service = broker.service();
    let stop_autorecovery = CancellationToken::new();
    let auditor = autorecovery.map(|config| {
        let stats = Arc::new(autorecovery::Stats::default());
        service
            .ctx()
            .metrics
            .add_source(autorecovery_metrics(stats.clone()));
        tokio::spawn(autorecovery::run(
            service.ctx().ledgers.clone(),
            service.ctx().namespaces.broker_id().to_string(),
            config,
            stats,
            stop_autorecovery.clone(),
        ))
    });
    println!("Magnetar broker is ready");
    println!(
        "  broker id       : {}",
        service.ctx().namespaces.broker_id()
    );
    println!("  cluster         : {cluster}");
    println!("  Pulsar protocol : {}", service.ctx().urls.service_url);
    if let Some(url) = &service.ctx().urls.service_url_tls {
        println!("  Pulsar over TLS : {url}");
    }
    if let Some(url) = &service.ctx().urls.web_url {
        println!("  admin API       : {url}/admin/v2");
    }
    if let Some(url) = service.replication_url() {
        println!("  replication     : {url}");
    }
    println!("  metadata        : {}", file.metadata_servers.join(","));
    shutdown.cancelled().await;
    stop_autorecovery.cancel();
    if let Some(auditor) = auditor {
        let _ = auditor.await;
    }
    broker.shutdown().await;
    Ok(())
}

/// The autorecovery figures of this broker, for /metrics.
fn autorecovery_metrics(
    stats: Arc<autorecovery::Stats>,
) -> impl Fn() -> Vec<Sample> + Send + Sync + 'static {
    move || {
        let get = |v: &std::sync::atomic::AtomicU64| v.load(Ordering::Relaxed) as f64;
        let sample = |name, help, kind, value| Sample {
            name,
            help,
            kind,
            value,
        };
        vec![
            sample(
                "magnetar_autorecovery_is_auditor",
                "1 while this broker is the elected autorecovery auditor",
                Kind::Gauge,
                if stats.is_auditor.load(Ordering::Relaxed) {
                    1.0
                } else {
                    0.0
                },
            ),
            sample(
                "magnetar_autorecovery_under_replicated_ledgers",
                "Ledgers with copies on a lost bookie, at the last audit (auditor only)",
                Kind::Gauge,
                get(&stats.under_replicated_ledgers),
            ),
            sample(
                "magnetar_autorecovery_lost_bookies",
                "Bookies named by ledgers but unregistered for longer than the lost-bookie delay",
                Kind::Gauge,
                get(&stats.lost_bookies),
            ),
            sample(
                "magnetar_autorecovery_repaired_fragments_total",
                "Ledger fragment copies re-replicated to a new bookie",
                Kind::Counter,
                get(&stats.repaired_fragments),
            ),
            sample(
                "magnetar_autorecovery_failed_repairs_total",
                "Fragment re-replications that failed (retried at the next audit)",
                Kind::Counter,
                get(&stats.failed_repairs),
            ),
            sample(
                "magnetar_autorecovery_copied_entries_total",
                "Entries copied by re-replication",
                Kind::Counter,
                get(&stats.copied.entries),
            ),
            sample(
                "magnetar_autorecovery_copied_bytes_total",
                "Bytes copied by re-replication",
                Kind::Counter,
                get(&stats.copied.bytes),
            ),
        ]
    }
}

#[derive(Debug, clap::Args)]
pub struct ClusterArgs {
    #[command(subcommand)]
    pub command: ClusterCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum ClusterCommand {
    /// Creates the cluster record, tenant `public` and namespace `public/default` (idempotent).
    Init(ClusterInitArgs),
}

#[derive(Debug, clap::Args)]
pub struct ClusterInitArgs {
    /// Metadata nodes (any of them).
    #[arg(
        long,
        env = "MAGNETAR_METADATA_SERVERS",
        value_delimiter = ',',
        required = true
    )]
    pub metadata: Vec<String>,
    #[arg(long)]
    pub cluster: String,
    /// The cluster's admin URL (any broker's, or a load balancer in front of them).
    #[arg(long)]
    pub web_service_url: String,
    /// The cluster's Pulsar URL.
    #[arg(long)]
    pub broker_service_url: String,
    #[arg(long)]
    pub web_service_url_tls: Option<String>,
    #[arg(long)]
    pub broker_service_url_tls: Option<String>,
    /// Bundles of `public/default`.
    #[arg(long, default_value_t = 4)]
    pub default_bundles: u32,
    /// Give up when the metadata service does not answer within this many seconds.
    #[arg(long, default_value_t = 30)]
    pub timeout_secs: u64,
    /// Print what was done as JSON.
    #[arg(long)]
    pub json: bool,
    /// The cluster's shared secret (as the metadata nodes require it).
    #[arg(long, env = "MAGNETAR_CLUSTER_TOKEN", hide_env_values = true, value_parser = cluster_token)]
    pub cluster_token: Option<ClusterToken>,
}

/// What `cluster init` did to each record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum InitOutcome {
    Created,
    AlreadyThere,
}

fn outcome(result: Result<(), ResourceError>) -> Result<InitOutcome, ResourceError> {
    match result {
        Ok(()) => Ok(InitOutcome::Created),
        Err(ResourceError::Conflict(_)) => Ok(InitOutcome::AlreadyThere),
        Err(e) => Err(e),
    }
}

/// Creates the cluster's first records; each one left alone if already there.
pub async fn cluster_init(args: ClusterInitArgs) -> anyhow::Result<()> {
    let metadata = metadata_client(&args.metadata, args.cluster_token.clone())?;
    let resources = Resources::new(metadata);
    let timeout = std::time::Duration::from_secs(args.timeout_secs.max(1));
    let unreachable = || {
        anyhow::anyhow!(
            "the metadata service at {} did not answer within {} s: is it running, and does it have a leader?",
            args.metadata.join(","),
            timeout.as_secs()
        )
    };
    let cluster = ClusterData {
        service_url: Some(args.web_service_url.clone()),
        service_url_tls: args.web_service_url_tls.clone(),
        broker_service_url: Some(args.broker_service_url.clone()),
        broker_service_url_tls: args.broker_service_url_tls.clone(),
        ..ClusterData::default()
    };
    let init = async {
        let cluster_outcome = outcome(resources.clusters.create(&args.cluster, &cluster).await)?;
        let tenant = TenantInfo {
            admin_roles: Default::default(),
            allowed_clusters: [args.cluster.clone()].into(),
        };
        let tenant_outcome = outcome(resources.tenants.create("public", &tenant).await)?;
        let policies = Policies {
            replication_clusters: [args.cluster.clone()].into(),
            bundles: Some(BundlesData::even(args.default_bundles)),
            ..Policies::default()
        };
        let ns = NamespaceName::new("public", "default")?;
        let ns_outcome = outcome(resources.namespaces.create(&ns, &policies).await)?;
        Ok::<_, anyhow::Error>((cluster_outcome, tenant_outcome, ns_outcome))
    };
    let (c, t, n) = tokio::time::timeout(timeout, init)
        .await
        .map_err(|_| unreachable())??;
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "cluster": {"name": args.cluster, "result": c},
                "tenant": {"name": "public", "result": t},
                "namespace": {"name": "public/default", "result": n},
            })
        );
    } else {
        let say = |o: InitOutcome| match o {
            InitOutcome::Created => "created",
            InitOutcome::AlreadyThere => "already there",
        };
        println!("cluster {:<16} {}", args.cluster, say(c));
        println!("tenant  {:<16} {}", "public", say(t));
        println!("namespace {:<14} {}", "public/default", say(n));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sample_deploy_file_loads() -> anyhow::Result<()> {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/broker.toml");
        // The sample names the token file of a real deployment: point it at a temporary one.
        let dir = tempfile::tempdir()?;
        let token = dir.path().join("cluster.token");
        std::fs::write(&token, "sample-token-0123456789")?;
        let text = std::fs::read_to_string(&path)?
            .replace("/etc/magnetar/cluster.token", &token.display().to_string());
        let copy = dir.path().join("broker.toml");
        std::fs::write(&copy, text)?;
        let file = BrokerFile::read(&copy)?;
        assert!(file.broker.cluster_token.is_some(), "on in the sample");
        assert_eq!(file.metadata_servers.len(), 3);
        assert_eq!(file.broker.ensemble_size, 2);
        // The sample lists every limit and replication setting at its default.
        assert_eq!(file.broker.limits, crate::limits::Limits::default());
        assert_eq!(
            file.broker.replication,
            crate::config::ReplicationConfig::default()
        );
        file.broker.validate().map_err(anyhow::Error::msg)?;
        Ok(())
    }

    #[test]
    fn the_kubernetes_config_loads() -> anyhow::Result<()> {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/kubernetes/broker.toml");
        let dir = tempfile::tempdir()?;
        let token = dir.path().join("cluster.token");
        std::fs::write(&token, "sample-token-0123456789")?;
        let text = std::fs::read_to_string(&path)?.replace(
            "/etc/magnetar/secret/cluster.token",
            &token.display().to_string(),
        );
        let copy = dir.path().join("broker.toml");
        std::fs::write(&copy, text)?;
        let file = BrokerFile::read(&copy)?;
        assert_eq!(file.broker.cluster, "prod");
        assert_eq!(file.broker.write_quorum, 2);
        file.broker.validate().map_err(anyhow::Error::msg)?;
        Ok(())
    }

    #[test]
    fn unknown_settings_are_refused() {
        assert!(toml::from_str::<BrokerFile>("nope = 1").is_err());
        assert!(toml::from_str::<BrokerFile>("[broker]\nclustr = \"x\"").is_err());
    }
}
