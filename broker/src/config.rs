//! Broker settings, with Pulsar's broker.conf defaults where Pulsar has one.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use magnetar_auth::AuthConfig;
use magnetar_protocol::ClusterToken;
use serde::{Deserialize, Serialize};

use crate::limits::Limits;
use crate::tiered::OffloadConfig;
use crate::tls::TlsConfig;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BrokerConfig {
    /// `clusterName`.
    pub cluster: String,
    /// Host clients are told to connect to (`advertisedAddress`).
    pub advertised_address: String,
    /// `maxMessageSize` (5 MiB); frames may be 10 KiB larger.
    pub max_message_size: usize,
    /// `keepAliveIntervalSeconds`.
    pub keep_alive_secs: u64,
    /// `allowAutoTopicCreation`.
    pub allow_auto_topic_creation: bool,
    /// `allowAutoSubscriptionCreation`.
    pub allow_auto_subscription_creation: bool,
    /// `managedLedgerDefaultEnsembleSize` / `WriteQuorum` / `AckQuorum`.
    pub ensemble_size: usize,
    pub write_quorum: usize,
    pub ack_quorum: usize,
    /// Token authentication and authorization (the `[auth]` section; off by default).
    pub auth: AuthConfig,
    /// How often live connections' tokens are checked for expiry
    /// (`authenticationRefreshCheckSeconds`).
    pub auth_refresh_check_secs: u64,
    /// TLS for `pulsar+ssl://` and HTTPS (the `[tls]` section; off by default).
    pub tls: TlsConfig,
    /// The metadata session's TTL (`metadataStoreSessionTimeoutMillis`, 30 s in Pulsar): a
    /// dead broker's bundles move this long after its last keep-alive. The broker stops
    /// serving on its own once its local lease runs out, before anyone else can claim.
    pub metadata_session_timeout_ms: u64,
    /// Whether this broker takes part in the autorecovery auditor election (one elected
    /// process re-replicates the copies of lost bookies; `magnetar bookie autorecovery` can run
    /// it instead).
    pub autorecovery_enabled: bool,
    /// How long a bookie must stay unregistered before autorecovery copies its ledgers'
    /// entries elsewhere (`lostBookieRecoveryDelay`).
    pub lost_bookie_delay_ms: u64,
    /// Time between autorecovery audits.
    pub auditor_interval_ms: u64,
    /// How long the open tail of a ledger may stay on a lost bookie before the auditor fences
    /// and closes the ledger to repair it (`openLedgerRereplicationGracePeriod`).
    pub open_ledger_rereplication_grace_ms: u64,
    /// Automatic load shedding (`loadBalancerEnabled`): a broker far above the least loaded
    /// one unloads bundles so lookups move them there.
    pub load_balancer_enabled: bool,
    /// Time between shedding checks (`loadBalancerSheddingIntervalMinutes`).
    pub load_shedding_interval_ms: u64,
    /// A bundle is not shed again within this long of being acquired
    /// (`loadBalancerSheddingGracePeriodMinutes`).
    pub load_shedding_grace_ms: u64,
    /// Bundles one broker sheds per check, at most.
    pub load_shedding_max_bundles: usize,
    /// How often namespace policies are applied to loaded topics: retention changes and
    /// message TTL.
    pub policy_check_interval_ms: u64,
    /// How often backlog quotas are checked (`backlogQuotaCheckIntervalInSeconds`).
    pub backlog_quota_check_interval_ms: u64,
    /// Bounds on connections, producers, consumers, topics, publish memory and HTTP (the
    /// `[limits]` section).
    pub limits: Limits,
    /// Geo-replication: the QUIC endpoint and replicator settings (the `[replication]`
    /// section).
    pub replication: ReplicationConfig,
    /// Message deduplication where the namespace does not say (`brokerDeduplicationEnabled`).
    pub deduplication_enabled: bool,
    /// A deduplication snapshot after this many entries (`brokerDeduplicationEntriesInterval`).
    pub deduplication_entries_interval: u64,
    /// …and at least this often while entries arrive
    /// (`brokerDeduplicationSnapshotIntervalSeconds`).
    pub deduplication_snapshot_interval_secs: u64,
    /// The cluster's shared secret, presented on every connection to the metadata service and
    /// the bookies: `file:///path` or the token itself (docs/operations.md). Never printed.
    #[serde(
        skip_serializing,
        deserialize_with = "magnetar_protocol::cluster_token::deserialize_setting"
    )]
    pub cluster_token: Option<ClusterToken>,
    /// Tiered storage (`[broker.offload]`): where closed ledgers are offloaded to, and the
    /// defaults of the namespace offload policies (docs/tiered-storage.md).
    pub offload: OffloadConfig,
}

impl Default for BrokerConfig {
    fn default() -> BrokerConfig {
        BrokerConfig {
            cluster: "standalone".into(),
            advertised_address: "127.0.0.1".into(),
            max_message_size: magnetar_protocol::DEFAULT_MAX_MESSAGE_SIZE,
            keep_alive_secs: 30,
            allow_auto_topic_creation: true,
            allow_auto_subscription_creation: true,
            ensemble_size: 2,
            write_quorum: 2,
            ack_quorum: 2,
            auth: AuthConfig::default(),
            auth_refresh_check_secs: 60,
            tls: TlsConfig::default(),
            metadata_session_timeout_ms: 4000,
            autorecovery_enabled: true,
            lost_bookie_delay_ms: 60_000,
            auditor_interval_ms: 10_000,
            open_ledger_rereplication_grace_ms: 30_000,
            load_balancer_enabled: true,
            load_shedding_interval_ms: 60_000,
            load_shedding_grace_ms: 120_000,
            load_shedding_max_bundles: 4,
            policy_check_interval_ms: 5_000,
            backlog_quota_check_interval_ms: 60_000,
            limits: Limits::default(),
            replication: ReplicationConfig::default(),
            deduplication_enabled: false,
            deduplication_entries_interval: 1000,
            deduplication_snapshot_interval_secs: 120,
            cluster_token: None,
            offload: OffloadConfig::default(),
        }
    }
}

impl BrokerConfig {
    pub fn keep_alive(&self) -> Duration {
        Duration::from_secs(self.keep_alive_secs.max(1))
    }

    pub fn auth_refresh_check(&self) -> Duration {
        Duration::from_secs(self.auth_refresh_check_secs.max(1))
    }

    /// Shedding settings, or `None` when shedding is off.
    pub fn shedding(&self) -> Option<crate::cluster::shedding::SheddingSettings> {
        self.load_balancer_enabled
            .then(|| crate::cluster::shedding::SheddingSettings {
                interval: Duration::from_millis(self.load_shedding_interval_ms.max(100)),
                grace: Duration::from_millis(self.load_shedding_grace_ms),
                max_per_round: self.load_shedding_max_bundles,
            })
    }

    pub fn policy_check_interval(&self) -> Duration {
        Duration::from_millis(self.policy_check_interval_ms.max(10))
    }

    pub fn backlog_quota_check_interval(&self) -> Duration {
        Duration::from_millis(self.backlog_quota_check_interval_ms.max(10))
    }

    pub fn dedup_settings(&self) -> crate::dedup::DedupSettings {
        crate::dedup::DedupSettings {
            entries_interval: self.deduplication_entries_interval.max(1),
            snapshot_interval: Duration::from_secs(self.deduplication_snapshot_interval_secs),
        }
    }

    pub fn session_ttl(&self) -> Duration {
        Duration::from_millis(self.metadata_session_timeout_ms.max(500))
    }

    pub fn max_frame_size(&self) -> usize {
        self.max_message_size + magnetar_protocol::FRAME_PADDING
    }

    pub fn validate(&self) -> Result<(), String> {
        if self.cluster.is_empty() {
            return Err("cluster must be named".into());
        }
        if self.ack_quorum == 0
            || self.ack_quorum > self.write_quorum
            || self.write_quorum > self.ensemble_size
        {
            return Err("need 1 <= ack_quorum <= write_quorum <= ensemble_size".into());
        }
        if self.max_message_size < 1024 {
            return Err("max_message_size must be at least 1 KiB".into());
        }
        self.limits.validate(self.max_message_size)?;
        if self.auth.authorization_enabled && !self.auth.authentication_enabled {
            return Err("auth.authorization_enabled needs auth.authentication_enabled".into());
        }
        Ok(())
    }
}

/// The `[replication]` settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReplicationConfig {
    /// UDP address of the QUIC endpoint other clusters replicate into
    /// (`--replication-addr`; the CLI's default is `0.0.0.0:6652`). Without it this broker only
    /// sends.
    pub addr: Option<SocketAddr>,
    /// PEM certificate chain the endpoint presents (default: the `[tls]` certificate; the
    /// standalone makes a self-signed one in its data directory).
    pub cert_file: Option<PathBuf>,
    /// Its PEM private key.
    pub key_file: Option<PathBuf>,
    /// Entries a replicator sends ahead of the remote's acknowledgements.
    pub window_entries: usize,
    /// Bytes a replicator sends ahead of the remote's acknowledgements.
    pub window_bytes: usize,
    /// A connection attempt to a remote cluster gives up after this long.
    pub connect_timeout_ms: u64,
    /// A link with no packets for this long is dead (keep-alives every third of it).
    pub idle_timeout_ms: u64,
    /// The longest wait between reconnect attempts (backoff starts at 100 ms).
    pub max_backoff_ms: u64,
    /// How often replicated subscriptions' positions are sent
    /// (`replicatedSubscriptionsSnapshotFrequencyMillis`).
    pub subscription_update_interval_ms: u64,
    /// The QUIC links' congestion control: `wan` (Magnetar's, loss-tolerant), or quinn's `bbr`
    /// or `cubic`.
    pub congestion_control: String,
}

impl Default for ReplicationConfig {
    fn default() -> ReplicationConfig {
        ReplicationConfig {
            addr: None,
            cert_file: None,
            key_file: None,
            window_entries: 1000,
            window_bytes: 16 * 1024 * 1024,
            connect_timeout_ms: 10_000,
            idle_timeout_ms: 10_000,
            max_backoff_ms: 5_000,
            subscription_update_interval_ms: 1_000,
            congestion_control: "wan".into(),
        }
    }
}
