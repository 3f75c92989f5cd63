//! A metadata node's configuration: a TOML file layer with defaults, CLI flags on top, then one
//! validation step.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use magnetar_protocol::ClusterToken;
use serde::{Deserialize, Serialize};

/// Default port of the metadata service (clients and Raft peers).
pub const DEFAULT_PORT: u16 = 6690;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerConfig {
    pub id: u64,
    pub addr: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NodeConfig {
    pub node_id: u64,
    /// Where to listen for clients and peers.
    pub listen: SocketAddr,
    /// The address peers and clients reach this node at (default: `listen`).
    pub advertise: Option<String>,
    pub data_dir: PathBuf,
    /// Every voting member at first start, this node included. Empty: a single-node group.
    /// The member with the lowest id bootstraps the group.
    pub peers: Vec<PeerConfig>,
    pub heartbeat_ms: u64,
    pub election_timeout_min_ms: u64,
    pub election_timeout_max_ms: u64,
    /// Build a snapshot (and trim the log) after this many applied entries.
    pub snapshot_after_logs: u64,
    /// Log entries kept behind a snapshot, so that slightly lagging followers need no snapshot.
    pub logs_kept_after_snapshot: u64,
    /// Revisions of change history kept for watches that resume from the past.
    pub history_revisions: u64,
    /// The secret every connection (client, tool, peer node) must present first; this node
    /// also presents it to its peers. In a file as `file:///path` or given literally; `None`
    /// serves everyone (the embedded single node of `standalone` and tests). Never written out.
    #[serde(
        skip_serializing,
        deserialize_with = "magnetar_protocol::cluster_token::deserialize_setting"
    )]
    pub cluster_token: Option<ClusterToken>,
}

impl Default for NodeConfig {
    fn default() -> NodeConfig {
        NodeConfig {
            node_id: 1,
            listen: SocketAddr::from(([127, 0, 0, 1], DEFAULT_PORT)),
            advertise: None,
            data_dir: PathBuf::from("data/metadata"),
            peers: Vec::new(),
            heartbeat_ms: 150,
            election_timeout_min_ms: 1000,
            election_timeout_max_ms: 2000,
            snapshot_after_logs: 20_000,
            logs_kept_after_snapshot: 1_000,
            history_revisions: 100_000,
            cluster_token: None,
        }
    }
}

impl NodeConfig {
    pub fn from_toml_file(path: &Path) -> anyhow::Result<NodeConfig> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
        toml::from_str(&text).map_err(|e| anyhow::anyhow!("invalid config {}: {e}", path.display()))
    }

    /// Parses `1=host:port,2=host:port`.
    pub fn parse_peers(spec: &str) -> anyhow::Result<Vec<PeerConfig>> {
        spec.split(',')
            .filter(|part| !part.trim().is_empty())
            .map(|part| {
                let (id, addr) = part
                    .split_once('=')
                    .ok_or_else(|| anyhow::anyhow!("peer {part:?} is not ID=HOST:PORT"))?;
                let id = id
                    .trim()
                    .parse()
                    .map_err(|_| anyhow::anyhow!("peer id {id:?} is not a number"))?;
                Ok(PeerConfig {
                    id,
                    addr: addr.trim().to_string(),
                })
            })
            .collect()
    }

    pub fn advertised_addr(&self) -> String {
        self.advertise
            .clone()
            .unwrap_or_else(|| self.listen.to_string())
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(self.node_id != 0, "node_id must be positive");
        anyhow::ensure!(self.heartbeat_ms > 0, "heartbeat_ms must be positive");
        anyhow::ensure!(
            self.heartbeat_ms < self.election_timeout_min_ms
                && self.election_timeout_min_ms < self.election_timeout_max_ms,
            "need heartbeat_ms < election_timeout_min_ms < election_timeout_max_ms"
        );
        if !self.peers.is_empty() {
            anyhow::ensure!(
                self.peers.iter().any(|p| p.id == self.node_id),
                "peers must include this node (id {})",
                self.node_id
            );
            let mut ids: Vec<u64> = self.peers.iter().map(|p| p.id).collect();
            ids.sort_unstable();
            ids.dedup();
            anyhow::ensure!(ids.len() == self.peers.len(), "peer ids must be unique");
            anyhow::ensure!(!ids.contains(&0), "peer ids must be positive");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_config_loads_and_validates() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/metadata.toml");
        // The sample names the token file of a real deployment: point it at a temporary one.
        let dir = tempfile::tempdir().expect("tempdir");
        let token = dir.path().join("cluster.token");
        std::fs::write(&token, "sample-token-0123456789").expect("token");
        let text = std::fs::read_to_string(&path)
            .expect("sample")
            .replace("/etc/magnetar/cluster.token", &token.display().to_string());
        let copy = dir.path().join("metadata.toml");
        std::fs::write(&copy, text).expect("copy");
        let config = NodeConfig::from_toml_file(&copy).expect("sample config");
        assert!(config.cluster_token.is_some(), "on in the sample");
        config.validate().expect("valid");
        assert_eq!(config.peers.len(), 3);
    }

    #[test]
    fn peers_and_validation() {
        let peers = NodeConfig::parse_peers("1=a:1, 2=b:2").expect("peers");
        assert_eq!(
            peers[1],
            PeerConfig {
                id: 2,
                addr: "b:2".into()
            }
        );
        assert!(NodeConfig::parse_peers("x=a:1").is_err());
        assert!(NodeConfig::parse_peers("1").is_err());
        let config = NodeConfig {
            node_id: 3,
            peers,
            ..Default::default()
        };
        assert!(config.validate().is_err(), "peers without this node");
        assert!(
            toml::from_str::<NodeConfig>("nope = 1").is_err(),
            "unknown settings are refused"
        );
    }

    #[test]
    fn the_cluster_token_comes_from_a_file_or_literally_and_is_never_shown() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("token");
        std::fs::write(&path, "from-a-file-0123456789\n").expect("write");
        let text = format!("cluster_token = \"file://{}\"", path.display());
        let config: NodeConfig = toml::from_str(&text).expect("config");
        let token = config.cluster_token.clone().expect("a token");
        assert!(token.matches(b"from-a-file-0123456789"));
        assert!(!format!("{config:?}").contains("from-a-file"));
        assert!(
            !toml::to_string(&config)
                .expect("serializes")
                .contains("from-a-file")
        );

        let config: NodeConfig =
            toml::from_str("cluster_token = \"literal-token-0123456789\"").expect("config");
        assert!(config.cluster_token.is_some());
        assert!(toml::from_str::<NodeConfig>("cluster_token = \"short\"").is_err());
        assert!(
            toml::from_str::<NodeConfig>("cluster_token = \"file:///does/not/exist\"").is_err()
        );
        assert_eq!(NodeConfig::default().cluster_token, None);
    }
}
