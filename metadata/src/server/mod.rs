//! A metadata node: the Raft group member, its storage, and the TCP service that answers
//! clients and peers on one port (behind the cluster token, when the node has one).

mod auth;
mod batching;
mod raft_errors;
pub(crate) mod service;
mod sessions;
mod watch;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use magnetar_protocol::metadata::{RaftResponse, Request, Response, request, response};
use prost::Message;
use tokio::io::{AsyncRead, AsyncWrite, DuplexStream};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::codec::Framed;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::NodeConfig;
use crate::conn::{LocalConnector, codec};
use crate::error::MetadataError;
use crate::network::{Network, RaftRpc};
use crate::store::{LogStore, StateMachine, StateReader, open_db};
use crate::types::{Node, NodeId, Raft};
use batching::{Linearizer, Proposer};
use service::Service;
use sessions::SessionTracker;

/// How long shutdown waits for in-flight work.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// A running metadata node.
pub struct MetadataNode {
    id: NodeId,
    addr: SocketAddr,
    raft: Raft,
    reader: StateReader,
    cancel: CancellationToken,
    tasks: TaskTracker,
    /// Held to know when everything else has let go of the database (see `shutdown`).
    db: Arc<rocksdb::DB>,
    local: LocalConnector,
}

impl std::fmt::Debug for MetadataNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetadataNode")
            .field("id", &self.id)
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl MetadataNode {
    /// Opens the node's storage, joins (or bootstraps) its Raft group and serves on `listener`.
    pub async fn start(config: NodeConfig, listener: TcpListener) -> anyhow::Result<MetadataNode> {
        config.validate()?;
        std::fs::create_dir_all(&config.data_dir)?;
        let db = open_db(&config.data_dir).map_err(|e| {
            anyhow::anyhow!(
                "cannot open metadata store in {}: {e}",
                config.data_dir.display()
            )
        })?;
        let state_machine = StateMachine::open(db.clone(), config.history_revisions)?;
        let db_handle = db.clone();
        let reader = state_machine.reader();
        let raft_config = openraft::Config {
            cluster_name: "magnetar-metadata".into(),
            heartbeat_interval: config.heartbeat_ms,
            election_timeout_min: config.election_timeout_min_ms,
            election_timeout_max: config.election_timeout_max_ms,
            max_payload_entries: 64,
            snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(config.snapshot_after_logs),
            max_in_snapshot_log_to_keep: config.logs_kept_after_snapshot,
            ..Default::default()
        }
        .validate()?;
        let raft = Raft::new(
            config.node_id,
            Arc::new(raft_config),
            Network {
                cluster_token: config.cluster_token.clone(),
            },
            LogStore::new(db),
            state_machine,
        )
        .await?;

        if !raft.is_initialized().await? {
            let members: BTreeMap<NodeId, Node> = if config.peers.is_empty() {
                [(
                    config.node_id,
                    Node {
                        addr: config.advertised_addr(),
                    },
                )]
                .into()
            } else {
                config
                    .peers
                    .iter()
                    .map(|p| {
                        (
                            p.id,
                            Node {
                                addr: p.addr.clone(),
                            },
                        )
                    })
                    .collect()
            };
            if members.keys().next() == Some(&config.node_id) {
                tracing::info!(members = ?members.keys().collect::<Vec<_>>(), "bootstrapping the metadata group");
                raft.initialize(members).await?;
            }
        }

        let addr = listener.local_addr()?;
        let cancel = CancellationToken::new();
        let tasks = TaskTracker::new();
        let proposer = Proposer::start(raft.clone(), cancel.clone(), &tasks);
        let linearizer = Linearizer::start(raft.clone(), cancel.clone(), &tasks);
        let sessions = SessionTracker::start(
            config.node_id,
            raft.clone(),
            reader.clone(),
            proposer.clone(),
            cancel.clone(),
            &tasks,
        );
        let service = Arc::new(Service {
            id: config.node_id,
            raft: raft.clone(),
            reader: reader.clone(),
            proposer,
            linearizer,
            sessions,
            cluster_token: config.cluster_token.clone(),
        });
        let (local, pipes) = LocalConnector::new(addr.to_string());
        tasks.spawn(serve_pipes(
            pipes,
            addr,
            service.clone(),
            cancel.clone(),
            tasks.clone(),
        ));
        tasks.spawn(accept_loop(
            listener,
            service,
            cancel.clone(),
            tasks.clone(),
        ));
        tracing::info!(node_id = config.node_id, %addr, "metadata node serving");
        Ok(MetadataNode {
            id: config.node_id,
            addr,
            raft,
            reader,
            cancel,
            tasks,
            db: db_handle,
            local,
        })
    }

    pub fn id(&self) -> NodeId {
        self.id
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// For clients in this process ([`ClientOptions::local`](crate::ClientOptions)): they
    /// reach this node through in-memory pipes instead of loopback TCP.
    pub fn local_connector(&self) -> LocalConnector {
        self.local.clone()
    }

    pub fn raft(&self) -> &Raft {
        &self.raft
    }

    /// Read access to this node's applied state (not linearizable: for tests and diagnostics).
    pub fn reader(&self) -> &StateReader {
        &self.reader
    }

    /// A reader of this node's Raft state as it is at each call (metrics, readiness).
    pub fn status(&self) -> impl Fn() -> RaftStatus + Send + Sync + 'static {
        let metrics = self.raft.metrics();
        move || {
            let m = metrics.borrow();
            RaftStatus {
                id: m.id,
                term: m.current_term,
                last_log_index: m.last_log_index.unwrap_or(0),
                leader: m.current_leader,
            }
        }
    }

    /// Stops serving, stops Raft, and waits for every task so that the storage is closed when
    /// this returns.
    pub async fn shutdown(self) {
        self.cancel.cancel();
        if let Err(e) = self.raft.shutdown().await {
            tracing::warn!(error = %e, "raft did not shut down cleanly");
        }
        self.tasks.close();
        if tokio::time::timeout(SHUTDOWN_GRACE, self.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!("metadata tasks still running after the shutdown grace period");
        }
        let MetadataNode {
            raft, reader, db, ..
        } = self;
        drop(raft);
        drop(reader);
        // The log's sync thread may hold the database for a last WAL sync; return only once
        // RocksDB is closed, so the same data directory can be opened again right away.
        let deadline = tokio::time::Instant::now() + SHUTDOWN_GRACE;
        while Arc::strong_count(&db) > 1 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        if Arc::strong_count(&db) > 1 {
            tracing::warn!("metadata store still referenced after shutdown");
        }
    }
}

/// Runs a node until `shutdown` is cancelled.
/// A metadata node's Raft state at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RaftStatus {
    pub id: NodeId,
    /// Grows by one at each election.
    pub term: u64,
    /// Index of the last log entry.
    pub last_log_index: u64,
    /// The leader this node knows of, if any.
    pub leader: Option<NodeId>,
}

pub async fn run(
    config: NodeConfig,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let node = MetadataNode::start(config, listener).await?;
    shutdown.cancelled().await;
    node.shutdown().await;
    Ok(())
}

/// Serves the in-memory connections of this process's clients (see [`LocalConnector`]) until
/// the node stops; then the connector's `connect` fails as a refused TCP connection would.
async fn serve_pipes(
    mut pipes: mpsc::UnboundedReceiver<DuplexStream>,
    addr: SocketAddr,
    service: Arc<Service>,
    cancel: CancellationToken,
    tasks: TaskTracker,
) {
    loop {
        let pipe = tokio::select! {
            _ = cancel.cancelled() => return,
            pipe = pipes.recv() => match pipe { Some(pipe) => pipe, None => return },
        };
        spawn_connection(pipe, addr, &service, &cancel, &tasks);
    }
}

/// Serves one connection (a socket or an in-process pipe) on its own tracked task.
fn spawn_connection<S>(
    stream: S,
    peer: SocketAddr,
    service: &Arc<Service>,
    cancel: &CancellationToken,
    tasks: &TaskTracker,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    tasks.spawn(serve_connection(
        stream,
        peer,
        service.clone(),
        cancel.child_token(),
        tasks.clone(),
    ));
}

async fn accept_loop(
    listener: TcpListener,
    service: Arc<Service>,
    cancel: CancellationToken,
    tasks: TaskTracker,
) {
    loop {
        let accepted = tokio::select! {
            _ = cancel.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => {
                crate::conn::configure(&stream);
                spawn_connection(stream, peer, &service, &cancel, &tasks);
            }
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn serve_connection<S>(
    stream: S,
    peer: SocketAddr,
    service: Arc<Service>,
    cancel: CancellationToken,
    tasks: TaskTracker,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut wire = Framed::new(stream, codec());
    if let Some(token) = &service.cluster_token
        && !auth::authenticate(&mut wire, token, peer, &cancel).await
    {
        return;
    }
    let (mut sink, mut source) = wire.split();
    let (out, mut responses) = mpsc::channel::<Response>(1024);
    let watches: Arc<Mutex<HashMap<u64, CancellationToken>>> = Arc::default();
    let writer_cancel = cancel.clone();
    tasks.spawn(async move {
        loop {
            let response = tokio::select! {
                _ = writer_cancel.cancelled() => break,
                response = responses.recv() => match response { Some(r) => r, None => break },
            };
            if crate::conn::write_batch(&mut sink, response, &mut responses)
                .await
                .is_err()
            {
                break;
            }
        }
        writer_cancel.cancel();
    });
    loop {
        let frame = tokio::select! {
            _ = cancel.cancelled() => break,
            frame = source.next() => frame,
        };
        let request = match frame {
            None => break,
            Some(Err(e)) => {
                tracing::debug!(%peer, error = %e, "closing connection: unreadable frame");
                break;
            }
            Some(Ok(frame)) => match Request::decode(frame) {
                Ok(request) => request,
                Err(e) => {
                    // The frame boundary is intact, so answer and go on.
                    let error = MetadataError::InvalidArgument(format!("undecodable request: {e}"));
                    let _ = out
                        .send(Response {
                            id: 0,
                            error: Some(error.to_proto()),
                            body: None,
                        })
                        .await;
                    continue;
                }
            },
        };
        let id = request.id;
        let Some(body) = request.body else {
            let error = MetadataError::InvalidArgument("request without a body".into());
            let _ = out
                .send(Response {
                    id,
                    error: Some(error.to_proto()),
                    body: None,
                })
                .await;
            continue;
        };
        match body {
            request::Body::Watch(watch) => {
                if let Err(e) = crate::keys::validate_prefix(&watch.prefix) {
                    let _ = out
                        .send(Response {
                            id,
                            error: Some(e.to_proto()),
                            body: None,
                        })
                        .await;
                    continue;
                }
                let token = cancel.child_token();
                watches
                    .lock()
                    .expect("watch map lock is never poisoned")
                    .insert(id, token.clone());
                let reader = service.reader.clone();
                let out = out.clone();
                tasks.spawn(watch::serve(
                    reader,
                    id,
                    watch.prefix,
                    watch.from_revision,
                    out,
                    token,
                ));
            }
            request::Body::CancelWatch(cancel_watch) => {
                if let Some(token) = watches
                    .lock()
                    .expect("watch map lock is never poisoned")
                    .remove(&cancel_watch.watch_id)
                {
                    token.cancel();
                }
                let _ = out
                    .send(Response {
                        id,
                        error: None,
                        body: Some(response::Body::Empty(Default::default())),
                    })
                    .await;
            }
            request::Body::Auth(presented) => {
                // Already served (or no token needed): a later token changes nothing.
                let outcome = auth::check(service.cluster_token.as_ref(), &presented.token);
                let _ = out.send(auth::answer(id, outcome)).await;
            }
            request::Body::Raft(raft_request) => {
                let raft = service.raft.clone();
                let out = out.clone();
                tasks.spawn(async move {
                    let response = match handle_raft(&raft, &raft_request.payload).await {
                        Ok(payload) => Response {
                            id,
                            error: None,
                            body: Some(response::Body::Raft(RaftResponse { payload })),
                        },
                        Err(e) => Response {
                            id,
                            error: Some(e.to_proto()),
                            body: None,
                        },
                    };
                    let _ = out.send(response).await;
                });
            }
            body => {
                let service = service.clone();
                let out = out.clone();
                tasks.spawn(async move {
                    let response = match service.handle(body).await {
                        Ok(body) => Response {
                            id,
                            error: None,
                            body: Some(body),
                        },
                        Err(e) => Response {
                            id,
                            error: Some(e.to_proto()),
                            body: None,
                        },
                    };
                    let _ = out.send(response).await;
                });
            }
        }
    }
    cancel.cancel();
}

async fn handle_raft(raft: &Raft, payload: &[u8]) -> Result<Vec<u8>, MetadataError> {
    let rpc = crate::wire::decode_raft_rpc(payload)?;
    let encoded = match rpc {
        RaftRpc::AppendEntries(rpc) => postcard::to_allocvec(&raft.append_entries(rpc).await),
        RaftRpc::Vote(rpc) => postcard::to_allocvec(&raft.vote(rpc).await),
        RaftRpc::InstallSnapshot(rpc) => postcard::to_allocvec(&raft.install_snapshot(rpc).await),
    };
    encoded.map_err(|e| MetadataError::Internal(e.to_string()))
}
