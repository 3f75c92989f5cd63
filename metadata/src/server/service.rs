//! Answers one request: validates it, routes writes through the proposer and linearizable reads
//! through the read barrier, and maps results to the wire.

use std::collections::BTreeSet;
use std::time::Duration;

use magnetar_protocol::ClusterToken;
use magnetar_protocol::metadata::{self as pb, request, response};
use openraft::ChangeMembers;

use super::batching::{Linearizer, Proposer};
use super::raft_errors;
use super::sessions::SessionTracker;
use super::watch::to_kv;
use crate::error::MetadataError;
use crate::keys::{MAX_TXN_OPS, validate_key, validate_prefix, validate_value};
use crate::store::StateReader;
use crate::types::{Command, CommandResult, Expected, Node, NodeId, Op, Raft};

/// Most keys one list page returns.
const MAX_LIST_PAGE: usize = 10_000;
/// Sessions live at least this long, at most this long.
const MIN_TTL: Duration = Duration::from_millis(500);
const MAX_TTL: Duration = Duration::from_secs(3600);

pub(crate) struct Service {
    pub(crate) id: NodeId,
    pub(crate) raft: Raft,
    pub(crate) reader: StateReader,
    pub(crate) proposer: Proposer,
    pub(crate) linearizer: Linearizer,
    pub(crate) sessions: SessionTracker,
    /// What every connection must present first (`None`: anyone is served).
    pub(crate) cluster_token: Option<ClusterToken>,
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// A write's expectation from the wire; version 0 and session 0 are refused.
pub fn expected_from_proto(expected: Option<pb::Expected>) -> Result<Expected, MetadataError> {
    Ok(match expected.and_then(|e| e.kind) {
        None | Some(pb::expected::Kind::Any(_)) => Expected::Any,
        Some(pb::expected::Kind::Absent(_)) => Expected::Absent,
        Some(pb::expected::Kind::Version(0)) => {
            return Err(MetadataError::InvalidArgument(
                "expected version 0 does not exist; use absent".into(),
            ));
        }
        Some(pb::expected::Kind::Version(v)) => Expected::Version(v),
        Some(pb::expected::Kind::Session(0)) => {
            return Err(MetadataError::InvalidArgument(
                "session 0 owns no key".into(),
            ));
        }
        Some(pb::expected::Kind::Session(s)) => Expected::Session(s),
    })
}

/// A put as a node accepts it: key and value checked, expectation converted.
pub fn put_op(put: pb::PutRequest) -> Result<Op, MetadataError> {
    validate_key(&put.key)?;
    validate_value(&put.key, &put.value)?;
    Ok(Op::Put {
        expected: expected_from_proto(put.expected)?,
        session: (put.session != 0).then_some(put.session),
        key: put.key,
        value: put.value,
    })
}

/// A delete as a node accepts it: key checked, expectation converted.
pub fn delete_op(delete: pb::DeleteRequest) -> Result<Op, MetadataError> {
    validate_key(&delete.key)?;
    Ok(Op::Delete {
        expected: expected_from_proto(delete.expected)?,
        key: delete.key,
    })
}

impl Service {
    pub(crate) async fn handle(
        &self,
        body: request::Body,
    ) -> Result<response::Body, MetadataError> {
        match body {
            request::Body::Get(get) => {
                validate_key(&get.key)?;
                self.linearizer.barrier().await?;
                let kv = self
                    .reader
                    .get(&get.key)?
                    .map(|v| to_kv(&get.key, &v, true));
                Ok(response::Body::Get(pb::GetResponse {
                    kv,
                    revision: self.reader.revision(),
                }))
            }
            request::Body::List(list) => {
                validate_prefix(&list.prefix)?;
                self.linearizer.barrier().await?;
                let limit = if list.limit == 0 {
                    MAX_LIST_PAGE
                } else {
                    (list.limit as usize).min(MAX_LIST_PAGE)
                };
                let (kvs, more) = self.reader.list(&list.prefix, &list.start_after, limit)?;
                let kvs = kvs
                    .iter()
                    .map(|(k, v)| to_kv(k, v, !list.keys_only))
                    .collect();
                Ok(response::Body::List(pb::ListResponse {
                    kvs,
                    more,
                    revision: self.reader.revision(),
                }))
            }
            request::Body::Children(children) => {
                if children.path != "/" {
                    validate_key(&children.path)?;
                }
                self.linearizer.barrier().await?;
                let names = self.reader.children(&children.path)?;
                Ok(response::Body::Children(pb::ChildrenResponse {
                    names,
                    revision: self.reader.revision(),
                }))
            }
            request::Body::Put(put) => {
                let op = put_op(put)?;
                let revision_and_versions = self.txn(Vec::new(), vec![op]).await?;
                let version = revision_and_versions.1.first().copied().unwrap_or(0);
                Ok(response::Body::Put(pb::PutResponse {
                    version,
                    revision: revision_and_versions.0,
                }))
            }
            request::Body::Delete(delete) => {
                let op = delete_op(delete)?;
                let (revision, results) = self.txn(Vec::new(), vec![op]).await?;
                Ok(response::Body::Delete(pb::DeleteResponse {
                    deleted: results.first() == Some(&1),
                    revision,
                }))
            }
            request::Body::Txn(txn) => {
                if txn.ops.len() + txn.compares.len() > MAX_TXN_OPS {
                    return Err(MetadataError::TooLarge(format!(
                        "a transaction holds at most {MAX_TXN_OPS} operations"
                    )));
                }
                let compares = txn
                    .compares
                    .into_iter()
                    .map(|c| {
                        validate_key(&c.key)?;
                        Ok((c.key, expected_from_proto(c.expected)?))
                    })
                    .collect::<Result<Vec<_>, MetadataError>>()?;
                let ops = txn
                    .ops
                    .into_iter()
                    .map(|op| match op.op {
                        Some(pb::txn_op::Op::Put(put)) => put_op(put),
                        Some(pb::txn_op::Op::Delete(delete)) => delete_op(delete),
                        None => Err(MetadataError::InvalidArgument(
                            "transaction op without a body".into(),
                        )),
                    })
                    .collect::<Result<Vec<_>, MetadataError>>()?;
                let total: usize = ops
                    .iter()
                    .map(|op| match op {
                        Op::Put { value, .. } => value.len(),
                        Op::Delete { .. } => 0,
                    })
                    .sum();
                if total > 2 * crate::keys::MAX_VALUE_SIZE {
                    return Err(MetadataError::TooLarge(format!(
                        "a transaction writes at most {} bytes",
                        2 * crate::keys::MAX_VALUE_SIZE
                    )));
                }
                let (revision, results) = self.txn(compares, ops).await?;
                Ok(response::Body::Txn(pb::TxnResponse { results, revision }))
            }
            request::Body::CreateSession(create) => {
                let ttl = Duration::from_millis(create.ttl_ms).clamp(MIN_TTL, MAX_TTL);
                let ttl_ms = ttl.as_millis() as u64;
                match self
                    .proposer
                    .propose(Command::CreateSession { ttl_ms })
                    .await?
                {
                    CommandResult::Session { session, ttl_ms } => {
                        self.sessions
                            .created(session, Duration::from_millis(ttl_ms));
                        Ok(response::Body::CreateSession(pb::CreateSessionResponse {
                            session,
                            ttl_ms,
                        }))
                    }
                    other => Err(MetadataError::Internal(format!(
                        "unexpected result {other:?}"
                    ))),
                }
            }
            request::Body::KeepAlive(keep_alive) => {
                self.require_leader()?;
                self.sessions.keep_alive(keep_alive.session)?;
                Ok(response::Body::Empty(pb::Empty {}))
            }
            request::Body::CloseSession(close) => {
                self.proposer
                    .propose(Command::ExpireSession {
                        session: close.session,
                    })
                    .await?;
                self.sessions.closed(close.session);
                Ok(response::Body::Empty(pb::Empty {}))
            }
            request::Body::Status(_) => Ok(response::Body::Status(self.status())),
            request::Body::AddMember(add) => {
                if add.node_id == 0 || add.addr.is_empty() {
                    return Err(MetadataError::InvalidArgument(
                        "a member needs a positive id and an address".into(),
                    ));
                }
                self.raft
                    .add_learner(add.node_id, Node { addr: add.addr }, true)
                    .await
                    .map_err(raft_errors::from_write)?;
                let ids: BTreeSet<NodeId> = [add.node_id].into();
                self.raft
                    .change_membership(ChangeMembers::AddVoterIds(ids), false)
                    .await
                    .map_err(raft_errors::from_write)?;
                Ok(response::Body::Status(self.status()))
            }
            request::Body::RemoveMember(remove) => {
                let known = self
                    .raft
                    .metrics()
                    .borrow()
                    .membership_config
                    .membership()
                    .get_node(&remove.node_id)
                    .is_some();
                if !known {
                    return Err(MetadataError::InvalidArgument(format!(
                        "node {} is not a member",
                        remove.node_id
                    )));
                }
                let ids: BTreeSet<NodeId> = [remove.node_id].into();
                self.raft
                    .change_membership(ChangeMembers::RemoveVoters(ids.clone()), false)
                    .await
                    .map_err(raft_errors::from_write)?;
                self.raft
                    .change_membership(ChangeMembers::RemoveNodes(ids), false)
                    .await
                    .map_err(raft_errors::from_write)?;
                Ok(response::Body::Status(self.status()))
            }
            request::Body::Watch(_)
            | request::Body::CancelWatch(_)
            | request::Body::Raft(_)
            | request::Body::Auth(_) => {
                Err(MetadataError::Internal("handled by the connection".into()))
            }
        }
    }

    async fn txn(
        &self,
        compares: Vec<(String, Expected)>,
        ops: Vec<Op>,
    ) -> Result<(u64, Vec<u64>), MetadataError> {
        match self
            .proposer
            .propose(Command::Txn { compares, ops })
            .await?
        {
            CommandResult::Txn { revision, results } => Ok((revision, results)),
            CommandResult::CompareFailed {
                key,
                actual_version,
            } => Err(MetadataError::BadVersion {
                key,
                actual_version,
            }),
            CommandResult::SessionExpired { session } => {
                Err(MetadataError::SessionExpired(session))
            }
            other => Err(MetadataError::Internal(format!(
                "unexpected result {other:?}"
            ))),
        }
    }

    fn require_leader(&self) -> Result<(), MetadataError> {
        let metrics = self.raft.metrics().borrow().clone();
        if metrics.current_leader == Some(self.id) && metrics.state.is_leader() {
            return Ok(());
        }
        let leader_addr = metrics.current_leader.and_then(|leader| {
            metrics
                .membership_config
                .membership()
                .get_node(&leader)
                .map(|n| n.addr.clone())
        });
        Err(MetadataError::NotLeader {
            leader_id: metrics.current_leader,
            leader_addr,
        })
    }

    pub(crate) fn status(&self) -> pb::StatusResponse {
        let metrics = self.raft.metrics().borrow().clone();
        let membership = metrics.membership_config.membership();
        let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
        let members = membership
            .nodes()
            .map(|(id, node)| pb::Member {
                node_id: *id,
                addr: node.addr.clone(),
                voter: voters.contains(id),
            })
            .collect();
        let leader_addr = metrics
            .current_leader
            .and_then(|leader| membership.get_node(&leader).map(|n| n.addr.clone()))
            .unwrap_or_default();
        pb::StatusResponse {
            node_id: self.id,
            leader_id: metrics.current_leader.unwrap_or(0),
            leader_addr,
            term: metrics.current_term,
            state: format!("{:?}", metrics.state),
            last_log_index: metrics.last_log_index.unwrap_or(0),
            applied_index: metrics.last_applied.map_or(0, |id| id.index),
            revision: self.reader.revision(),
            members,
        }
    }
}
