//! An in-process metadata group for tests and benchmarks (`magnetar metadata bench` starts one):
//! nodes on ephemeral loopback ports with data in a temporary directory, which can be stopped
//! and restarted (from the same data) one by one. Crash tests that need `kill -9` run the real
//! binary instead.
//!
//! Also the one way every Magnetar test waits ([`wait_until`], [`wait_for`],
//! [`try_wait_for`]): poll a condition against a deadline, never a fixed sleep. They live here,
//! at the bottom of the crate graph, so every crate's tests can use them; `magnetar-testkit`
//! re-exports them.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use magnetar_protocol::ClusterToken;
use tokio::net::TcpListener;
use tokio::time::Instant;

use crate::client::{ClientOptions, MetadataClient};
use crate::config::{NodeConfig, PeerConfig};
use crate::server::MetadataNode;
use crate::types::NodeId;

/// Settings that change how a test group behaves.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    pub snapshot_after_logs: u64,
    pub logs_kept_after_snapshot: u64,
    pub history_revisions: u64,
    /// Every node requires it, and presents it to its peers; [`LocalCluster::client`] too.
    pub cluster_token: Option<ClusterToken>,
}

impl Default for ClusterOptions {
    fn default() -> ClusterOptions {
        let defaults = NodeConfig::default();
        ClusterOptions {
            snapshot_after_logs: defaults.snapshot_after_logs,
            logs_kept_after_snapshot: defaults.logs_kept_after_snapshot,
            history_revisions: defaults.history_revisions,
            cluster_token: None,
        }
    }
}

#[derive(Debug)]
pub struct LocalCluster {
    _dir: tempfile::TempDir,
    configs: Vec<NodeConfig>,
    nodes: Vec<Option<MetadataNode>>,
}

impl LocalCluster {
    /// Starts `size` nodes and waits until they have a leader.
    pub async fn start(size: usize, options: ClusterOptions) -> anyhow::Result<LocalCluster> {
        let dir = tempfile::tempdir()?;
        let mut listeners = Vec::new();
        for _ in 0..size {
            listeners.push(TcpListener::bind("127.0.0.1:0").await?);
        }
        let peers: Vec<PeerConfig> = listeners
            .iter()
            .enumerate()
            .map(|(i, l)| {
                Ok(PeerConfig {
                    id: i as u64 + 1,
                    addr: l.local_addr()?.to_string(),
                })
            })
            .collect::<std::io::Result<_>>()?;
        let mut configs = Vec::new();
        let mut nodes = Vec::new();
        for (i, listener) in listeners.into_iter().enumerate() {
            let config = NodeConfig {
                node_id: i as u64 + 1,
                listen: listener.local_addr()?,
                advertise: None,
                data_dir: dir.path().join(format!("node-{}", i + 1)),
                peers: if size == 1 { Vec::new() } else { peers.clone() },
                snapshot_after_logs: options.snapshot_after_logs,
                logs_kept_after_snapshot: options.logs_kept_after_snapshot,
                history_revisions: options.history_revisions,
                cluster_token: options.cluster_token.clone(),
                ..NodeConfig::default()
            };
            nodes.push(Some(MetadataNode::start(config.clone(), listener).await?));
            configs.push(config);
        }
        let cluster = LocalCluster {
            _dir: dir,
            configs,
            nodes,
        };
        cluster.wait_for_leader(Duration::from_secs(30)).await?;
        Ok(cluster)
    }

    pub fn addrs(&self) -> Vec<String> {
        self.configs.iter().map(|c| c.listen.to_string()).collect()
    }

    pub fn addr(&self, index: usize) -> SocketAddr {
        self.configs[index].listen
    }

    pub fn data_dir(&self, index: usize) -> PathBuf {
        self.configs[index].data_dir.clone()
    }

    pub fn node(&self, index: usize) -> Option<&MetadataNode> {
        self.nodes[index].as_ref()
    }

    /// A client that knows every node (and the group's cluster token).
    pub fn client(&self) -> MetadataClient {
        let options = ClientOptions {
            cluster_token: self.configs[0].cluster_token.clone(),
            ..ClientOptions::default()
        };
        MetadataClient::new(self.addrs(), options).expect("addresses are given")
    }

    /// Index of the node that is leader as seen by a majority of running nodes, if any.
    pub fn leader(&self) -> Option<usize> {
        let running: Vec<&MetadataNode> = self.nodes.iter().flatten().collect();
        for node in &running {
            let metrics = node.raft().metrics().borrow().clone();
            if metrics.current_leader == Some(node.id()) && metrics.state.is_leader() {
                return Some(node.id() as usize - 1);
            }
        }
        None
    }

    pub async fn wait_for_leader(&self, timeout: Duration) -> anyhow::Result<usize> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(leader) = self.leader() {
                return Ok(leader);
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "no leader elected within {timeout:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until node `index` has applied at least `index_at_least` log entries.
    pub async fn wait_applied(
        &self,
        index: usize,
        log_index: u64,
        timeout: Duration,
    ) -> anyhow::Result<()> {
        let node = self.nodes[index]
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("node {index} is stopped"))?;
        let mut metrics = node.raft().metrics();
        tokio::time::timeout(
            timeout,
            metrics.wait_for(|m| m.last_applied.is_some_and(|id| id.index >= log_index)),
        )
        .await
        .map_err(|_| {
            anyhow::anyhow!("node {index} did not apply index {log_index} within {timeout:?}")
        })??;
        Ok(())
    }

    /// Stops node `index` (its data stays).
    pub async fn stop(&mut self, index: usize) {
        if let Some(node) = self.nodes[index].take() {
            node.shutdown().await;
        }
    }

    /// Starts node `index` again from its data, on its old address.
    pub async fn restart(&mut self, index: usize) -> anyhow::Result<()> {
        anyhow::ensure!(self.nodes[index].is_none(), "node {index} is running");
        let config = self.configs[index].clone();
        let deadline = Instant::now() + Duration::from_secs(10);
        let listener = loop {
            match TcpListener::bind(config.listen).await {
                Ok(listener) => break listener,
                Err(e) if Instant::now() < deadline => {
                    tracing::debug!(error = %e, "port not free yet");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => return Err(e.into()),
            }
        };
        self.nodes[index] = Some(MetadataNode::start(config, listener).await?);
        Ok(())
    }

    pub fn node_id(index: usize) -> NodeId {
        index as NodeId + 1
    }

    pub async fn shutdown(mut self) {
        for index in 0..self.nodes.len() {
            self.stop(index).await;
        }
    }
}

/// Raft RPCs as a peer sends them (the payload of a `RaftRequest`), for tests of what a node
/// does with Raft traffic from a connection.
pub mod raft_rpc {
    use openraft::Vote;
    use openraft::raft::{AppendEntriesRequest, VoteRequest};

    use crate::network::RaftRpc;
    use crate::types::NodeId;

    /// `candidate` asks for votes in `term`, with an empty log.
    pub fn vote(term: u64, candidate: NodeId) -> Vec<u8> {
        let rpc = RaftRpc::Vote(VoteRequest::new(Vote::new(term, candidate), None));
        postcard::to_allocvec(&rpc).expect("a vote request encodes")
    }

    /// `leader`, elected in `term`, sends a heartbeat (no entries, nothing committed).
    pub fn append_entries(term: u64, leader: NodeId) -> Vec<u8> {
        let rpc = RaftRpc::AppendEntries(AppendEntriesRequest {
            vote: Vote::new_committed(term, leader),
            prev_log_id: None,
            entries: Vec::new(),
            leader_commit: None,
        });
        postcard::to_allocvec(&rpc).expect("an append request encodes")
    }
}

/// How often the waits poll.
const POLL: Duration = Duration::from_millis(20);

/// Polls `check` until it holds; panics after `timeout`, naming `what`.
pub async fn wait_until<F, Fut>(what: &str, timeout: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    wait_for(what, timeout, || {
        let holds = check();
        async move { holds.await.then_some(()) }
    })
    .await
}

/// Polls `check` until it yields a value; panics after `timeout`, naming `what`.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// Polls `check` until it yields a value; its error, or passing `timeout`, is an error.
pub async fn try_wait_for<T, F, Fut>(
    what: &str,
    timeout: Duration,
    mut check: F,
) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<Option<T>>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await? {
            return Ok(value);
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(POLL).await;
    }
}

#[cfg(test)]
mod wait_tests {
    use super::*;

    #[tokio::test]
    async fn waits_until_the_condition_holds_and_yields_its_value() {
        let mut polls = 0;
        let value = wait_for("the third poll", Duration::from_secs(5), || {
            polls += 1;
            let n = polls;
            async move { (n == 3).then_some(n * 10) }
        })
        .await;
        assert_eq!(value, 30);
    }

    #[tokio::test]
    async fn a_deadline_is_an_error_naming_what_was_awaited() {
        let err = try_wait_for("never", Duration::from_millis(50), || async {
            Ok::<Option<()>, anyhow::Error>(None)
        })
        .await
        .expect_err("times out");
        assert!(err.to_string().contains("never"), "{err}");
    }

    #[tokio::test]
    #[should_panic(expected = "waiting for nothing to hold")]
    async fn wait_until_panics_at_the_deadline() {
        wait_until("nothing to hold", Duration::from_millis(50), || async {
            false
        })
        .await;
    }
}
