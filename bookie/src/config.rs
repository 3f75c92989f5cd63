//! The bookie's configuration: a TOML file layer with defaults for every field, command-line
//! flags applied on top by the binary, then [`BookieConfig::validate`].

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use magnetar_protocol::ClusterToken;
use serde::{Deserialize, Serialize};

use crate::journal::JournalConfig;
use crate::storage::StorageConfig;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BookieConfig {
    /// Where the binary binds the bookie protocol listener (tests pass their own listener).
    /// Loopback by default: listen on other interfaces only with a `cluster_token`.
    pub listen: SocketAddr,
    /// The address clients are told to use, registered in the metadata service: `host:port`,
    /// or `host` with the listener's port. Default: the listen address, with an unspecified
    /// IP (`0.0.0.0`, `::`) replaced by loopback; set it when clients run elsewhere.
    pub advertise: Option<String>,
    /// Metadata service nodes (any of them). Empty: the bookie runs unregistered, without
    /// garbage collection (tests, benchmarks).
    pub metadata_servers: Vec<String>,
    /// TTL of the metadata session owning the registration: how long a dead bookie stays listed.
    pub session_ttl_ms: u64,
    /// Journal segments; ideally a disk of their own.
    pub journal_dir: PathBuf,
    /// RocksDB ledger storage.
    pub ledger_dir: PathBuf,
    /// Largest entry payload accepted, in bytes.
    pub max_entry_size: usize,
    /// Largest protocol frame accepted, in bytes; a larger one closes the connection.
    pub max_frame_size: usize,
    /// Bytes of requests one connection may have in process at once (each request counts at
    /// least 1 KiB); the bookie stops reading the connection beyond it.
    pub max_inflight_bytes: usize,
    /// Milliseconds between checkpoints (RocksDB flush, then old journal segments removed).
    pub checkpoint_interval_ms: u64,
    /// Milliseconds shutdown waits for connections to finish their in-flight requests.
    pub shutdown_grace_ms: u64,
    /// Milliseconds between disk-usage checks (and refreshes of the registered disk figures).
    pub disk_check_interval_ms: u64,
    /// Fraction of the journal's or ledgers' disk in use (as `df` counts) at which the bookie
    /// turns read-only; 0 makes it read-only at once.
    pub disk_usage_threshold: f64,
    /// A read-only bookie turns writable again below this fraction.
    pub disk_usage_lwm_threshold: f64,
    /// Milliseconds between garbage-collection passes (ledgers deleted from metadata); 0 turns
    /// collection off. A ledger goes after two passes have found its metadata missing.
    pub gc_interval_ms: u64,
    /// The cluster's shared secret, which every connection must present before anything else
    /// (`file:///path`, or the token itself; at least 16 bytes). None: connections are not
    /// authenticated, which is safe only on a listener no stranger can reach.
    #[serde(
        skip_serializing,
        deserialize_with = "magnetar_protocol::cluster_token::deserialize_setting"
    )]
    pub cluster_token: Option<ClusterToken>,
    pub journal: JournalConfig,
    pub storage: StorageConfig,
}

impl Default for BookieConfig {
    fn default() -> Self {
        let max_entry_size = 5 * 1024 * 1024 + 10 * 1024;
        BookieConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 3181)),
            advertise: None,
            metadata_servers: Vec::new(),
            session_ttl_ms: 10_000,
            journal_dir: PathBuf::from("data/bookie/journal"),
            ledger_dir: PathBuf::from("data/bookie/ledgers"),
            max_entry_size,
            max_frame_size: max_entry_size + 64 * 1024,
            max_inflight_bytes: 64 * 1024 * 1024,
            checkpoint_interval_ms: 10_000,
            shutdown_grace_ms: 10_000,
            disk_check_interval_ms: 10_000,
            disk_usage_threshold: 0.95,
            disk_usage_lwm_threshold: 0.90,
            gc_interval_ms: 60_000,
            cluster_token: None,
            journal: JournalConfig::default(),
            storage: StorageConfig::default(),
        }
    }
}

/// A configuration that cannot work.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading config file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("parsing config file {path}: {source}")]
    Parse {
        path: PathBuf,
        #[source]
        source: Box<toml::de::Error>,
    },
    #[error("invalid bookie config: {0}")]
    Invalid(String),
}

impl BookieConfig {
    /// Reads a TOML file; fields it does not name keep their defaults.
    pub fn from_file(path: &Path) -> Result<BookieConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_toml(&text).map_err(|source| ConfigError::Parse {
            path: path.to_path_buf(),
            source: Box::new(source),
        })
    }

    pub fn from_toml(text: &str) -> Result<BookieConfig, toml::de::Error> {
        toml::from_str(text)
    }

    /// Checks the values against each other; the one step between "parsed" and "usable".
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |msg: String| Err(ConfigError::Invalid(msg));
        let j = &self.journal;
        if self.max_entry_size == 0 {
            return invalid("max_entry_size must be positive".into());
        }
        if self.max_inflight_bytes < self.max_frame_size || self.max_inflight_bytes > 1 << 31 {
            return invalid(format!(
                "max_inflight_bytes ({}) must be between max_frame_size ({}) and 2 GiB",
                self.max_inflight_bytes, self.max_frame_size
            ));
        }
        if self.max_frame_size < self.max_entry_size + 1024 {
            return invalid(format!(
                "max_frame_size ({}) must exceed max_entry_size ({}) by at least 1 KiB",
                self.max_frame_size, self.max_entry_size
            ));
        }
        if j.max_batch_bytes == 0 || j.max_batch_records == 0 {
            return invalid("journal batch limits must be positive".into());
        }
        let needed = (self.max_entry_size as u64 + 64) + j.max_batch_bytes as u64;
        if j.segment_size < needed {
            return invalid(format!(
                "journal.segment_size ({}) must hold a full batch plus the largest entry ({needed})",
                j.segment_size
            ));
        }
        if self.journal_dir == self.ledger_dir {
            return invalid("journal_dir and ledger_dir must differ".into());
        }
        let (high, low) = (self.disk_usage_threshold, self.disk_usage_lwm_threshold);
        if !(0.0..=1.0).contains(&high) || !(0.0..=high).contains(&low) {
            return invalid(format!(
                "need 0 <= disk_usage_lwm_threshold ({low}) <= disk_usage_threshold ({high}) <= 1"
            ));
        }
        if self.disk_check_interval_ms == 0 {
            return invalid("disk_check_interval_ms must be positive".into());
        }
        if self.session_ttl_ms < 300 {
            return invalid(format!(
                "session_ttl_ms ({}) must be at least 300",
                self.session_ttl_ms
            ));
        }
        if self.metadata_servers.iter().any(|s| s.trim().is_empty()) {
            return invalid("metadata_servers holds an empty address".into());
        }
        if matches!(&self.advertise, Some(a) if a.trim().is_empty()) {
            return invalid("advertise must not be empty".into());
        }
        Ok(())
    }

    pub fn checkpoint_interval(&self) -> Duration {
        Duration::from_millis(self.checkpoint_interval_ms.max(1))
    }

    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_millis(self.shutdown_grace_ms)
    }

    pub fn session_ttl(&self) -> Duration {
        Duration::from_millis(self.session_ttl_ms)
    }

    pub fn disk_check_interval(&self) -> Duration {
        Duration::from_millis(self.disk_check_interval_ms)
    }

    /// `None` when collection is off.
    pub fn gc_interval(&self) -> Option<Duration> {
        (self.gc_interval_ms > 0).then(|| Duration::from_millis(self.gc_interval_ms))
    }

    /// The `host:port` to register, given the address the listener is bound to.
    pub fn advertised_address(&self, bound: SocketAddr) -> String {
        let Some(advertise) = self.advertise.as_deref().map(str::trim) else {
            let ip = match bound.ip() {
                IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
                IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
                ip => ip,
            };
            return SocketAddr::new(ip, bound.port()).to_string();
        };
        if let Ok(ip) = advertise.trim_matches(['[', ']']).parse::<IpAddr>() {
            return SocketAddr::new(ip, bound.port()).to_string();
        }
        let has_port = advertise
            .rsplit_once(':')
            .is_some_and(|(_, port)| port.parse::<u16>().is_ok());
        if has_port {
            advertise.to_string()
        } else {
            format!("{advertise}:{}", bound.port())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_a_partial_file_keeps_them() {
        BookieConfig::default().validate().expect("defaults valid");
        let config =
            BookieConfig::from_toml("journal_dir = \"/j\"\n[journal]\nmax_group_wait_us = 1000\n")
                .expect("parses");
        assert_eq!(config.journal_dir, PathBuf::from("/j"));
        assert_eq!(config.journal.max_group_wait_us, 1000);
        assert_eq!(
            config.journal.segment_size,
            JournalConfig::default().segment_size
        );
        config.validate().expect("valid");
    }

    #[test]
    fn deploy_sample_is_the_defaults_with_a_token() {
        let dir = tempfile::tempdir().expect("tempdir");
        let token = dir.path().join("cluster.token");
        std::fs::write(&token, "sample-token-0123456789").expect("token");
        let sample = include_str!("../../deploy/bookie.toml")
            .replace("/etc/magnetar/cluster.token", &token.display().to_string());
        let config = BookieConfig::from_toml(&sample).expect("sample parses");
        config.validate().expect("sample valid");
        assert!(config.cluster_token.is_some(), "on in the sample");
        assert_eq!(
            BookieConfig {
                cluster_token: None,
                ..config
            },
            BookieConfig::default()
        );
    }

    #[test]
    fn the_kubernetes_config_loads() {
        let dir = tempfile::tempdir().expect("tempdir");
        let token = dir.path().join("cluster.token");
        std::fs::write(&token, "sample-token-0123456789").expect("token");
        let sample = include_str!("../../deploy/kubernetes/bookie.toml").replace(
            "/etc/magnetar/secret/cluster.token",
            &token.display().to_string(),
        );
        let config = BookieConfig::from_toml(&sample).expect("the ConfigMap's bookie.toml parses");
        config.validate().expect("valid");
        assert!(config.cluster_token.is_some());
    }

    #[test]
    fn the_advertised_address_defaults_to_a_reachable_listen_address() {
        let bound: SocketAddr = "0.0.0.0:4181".parse().expect("addr");
        let with = |advertise: Option<&str>| BookieConfig {
            advertise: advertise.map(String::from),
            ..BookieConfig::default()
        };
        assert_eq!(with(None).advertised_address(bound), "127.0.0.1:4181");
        let v6: SocketAddr = "[::]:4181".parse().expect("addr");
        assert_eq!(with(None).advertised_address(v6), "[::1]:4181");
        let local: SocketAddr = "10.1.2.3:4181".parse().expect("addr");
        assert_eq!(with(None).advertised_address(local), "10.1.2.3:4181");
        assert_eq!(with(Some("bk1")).advertised_address(bound), "bk1:4181");
        assert_eq!(with(Some("bk1:3181")).advertised_address(bound), "bk1:3181");
        assert_eq!(
            with(Some("10.0.0.7")).advertised_address(bound),
            "10.0.0.7:4181"
        );
        assert_eq!(
            with(Some("fd00::7")).advertised_address(bound),
            "[fd00::7]:4181"
        );
        assert_eq!(
            with(Some("[fd00::7]:1")).advertised_address(bound),
            "[fd00::7]:1"
        );
    }

    #[test]
    fn the_cluster_token_comes_from_a_file_or_the_setting_and_never_prints() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("token");
        std::fs::write(&path, "token-from-a-file-0123\n").expect("write");
        let text = format!("cluster_token = \"file://{}\"", path.display());
        let config = BookieConfig::from_toml(&text).expect("parses");
        let token = config.cluster_token.clone().expect("token");
        assert!(token.matches(b"token-from-a-file-0123"));
        assert!(!format!("{config:?}").contains("token-from-a-file"));
        let literal = BookieConfig::from_toml("cluster_token = \"literal-token-0123456789\"")
            .expect("parses");
        assert!(literal.cluster_token.is_some());
        assert!(BookieConfig::from_toml("cluster_token = \"short\"").is_err());
        assert!(BookieConfig::from_toml("cluster_token = \"file:///does/not/exist\"").is_err());
        assert_eq!(BookieConfig::default().cluster_token, None);
    }

    #[test]
    fn unknown_fields_and_impossible_values_are_refused() {
        assert!(BookieConfig::from_toml("jornal_dir = \"/j\"").is_err());
        let config = BookieConfig {
            journal: JournalConfig {
                segment_size: 1024,
                ..JournalConfig::default()
            },
            ..BookieConfig::default()
        };
        assert!(config.validate().is_err());
        let inverted = BookieConfig {
            disk_usage_threshold: 0.5,
            disk_usage_lwm_threshold: 0.6,
            ..BookieConfig::default()
        };
        assert!(inverted.validate().is_err());
        let zero = BookieConfig {
            disk_usage_threshold: 0.0,
            disk_usage_lwm_threshold: 0.0,
            ..BookieConfig::default()
        };
        zero.validate().expect("a zero threshold is allowed");
    }
}
