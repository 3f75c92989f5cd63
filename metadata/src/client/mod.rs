//! The metadata client: connects to any node of a group, follows the leader on `NotLeader`,
//! retries what is safe to retry (reads, keep-alives, unconditional writes that were not
//! answered) and surfaces what is not (a compare-and-set whose outcome is unknown comes back as
//! `Indeterminate`, for the caller to re-read).

mod cache;
mod keeper;
mod record;
mod session;
mod watch;

use std::sync::Arc;
use std::time::Duration;

use magnetar_protocol::ClusterToken;
use magnetar_protocol::metadata::{self as pb, request, response};
use tokio::sync::Mutex;
use tokio::time::Instant;

pub use cache::PrefixCache;
pub use keeper::SessionKeeper;
use record::expected_to_proto;
pub use record::{Record, Txn};
pub use session::{Session, SessionState};
pub use watch::{Change, Watch, WatchEvent};

use crate::conn::{Connection, LocalConnector};
use crate::error::MetadataError;
use crate::types::{EventKind, Expected};

#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// How long one call keeps retrying (leader changes, unreachable nodes) before it fails.
    pub request_timeout: Duration,
    /// How long one attempt waits for a node's answer before the call goes on elsewhere
    /// (adding a member waits up to `request_timeout`: it is answered once the member has
    /// caught up).
    pub attempt_timeout: Duration,
    pub connect_timeout: Duration,
    /// Presented first on every connection; needed by nodes that have one configured.
    pub cluster_token: Option<ClusterToken>,
    /// A node of this process (the standalone's): reached in memory rather than over TCP.
    pub local: Option<LocalConnector>,
}

impl Default for ClientOptions {
    fn default() -> ClientOptions {
        ClientOptions {
            request_timeout: Duration::from_secs(15),
            attempt_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(1),
            cluster_token: None,
            local: None,
        }
    }
}

#[derive(Debug)]
struct Route {
    /// Index into `servers` used when no leader is known.
    next_server: usize,
    target: String,
    conn: Option<Arc<Connection>>,
}

#[derive(Debug)]
struct Inner {
    servers: Vec<String>,
    options: ClientOptions,
    route: Mutex<Route>,
}

/// A handle to a metadata group; cheap to clone, one connection shared by all clones.
#[derive(Debug, Clone)]
pub struct MetadataClient {
    inner: Arc<Inner>,
}

impl MetadataClient {
    /// A client of the group reachable at `servers` (any of its nodes); connects lazily.
    pub fn new(
        servers: impl IntoIterator<Item = impl Into<String>>,
        options: ClientOptions,
    ) -> Result<MetadataClient, MetadataError> {
        let servers: Vec<String> = servers
            .into_iter()
            .map(Into::into)
            .filter(|s: &String| !s.is_empty())
            .collect();
        let Some(first) = servers.first().cloned() else {
            return Err(MetadataError::InvalidArgument(
                "no metadata servers given".into(),
            ));
        };
        let route = Mutex::new(Route {
            next_server: 1 % servers.len(),
            target: first,
            conn: None,
        });
        Ok(MetadataClient {
            inner: Arc::new(Inner {
                servers,
                options,
                route,
            }),
        })
    }

    /// Like [`MetadataClient::new`] with default options, then waits until the group answers.
    pub async fn connect(
        servers: impl IntoIterator<Item = impl Into<String>>,
    ) -> Result<MetadataClient, MetadataError> {
        MetadataClient::connect_with(servers, ClientOptions::default()).await
    }

    /// Like [`MetadataClient::new`], then waits until the group answers.
    pub async fn connect_with(
        servers: impl IntoIterator<Item = impl Into<String>>,
        options: ClientOptions,
    ) -> Result<MetadataClient, MetadataError> {
        let client = MetadataClient::new(servers, options)?;
        client
            .call(request::Body::Status(pb::StatusRequest {}), true)
            .await?;
        Ok(client)
    }

    pub fn servers(&self) -> &[String] {
        &self.inner.servers
    }

    pub(crate) async fn connection(&self) -> Result<Arc<Connection>, MetadataError> {
        let mut route = self.inner.route.lock().await;
        if let Some(conn) = &route.conn
            && !conn.is_closed()
        {
            return Ok(conn.clone());
        }
        let options = &self.inner.options;
        let conn = Connection::connect(
            &route.target,
            options.connect_timeout,
            options.cluster_token.as_ref(),
            options.local.as_ref(),
        )
        .await?;
        let conn = Arc::new(conn);
        route.conn = Some(conn.clone());
        Ok(conn)
    }

    /// Points the client at `leader`, or at the next listed server when none is known.
    pub(crate) async fn retarget(&self, leader: Option<String>, failed: &str) {
        let mut route = self.inner.route.lock().await;
        if route.target != failed && leader.is_none() {
            return; // someone else moved on already
        }
        route.target = match leader {
            Some(leader) => leader,
            None => {
                let next = self.inner.servers[route.next_server % self.inner.servers.len()].clone();
                route.next_server = (route.next_server + 1) % self.inner.servers.len();
                next
            }
        };
        route.conn = None;
    }

    /// One call, retried while that is safe and `request_timeout` allows. Each attempt waits
    /// at most `attempt_timeout` for its answer; a node that gives none is left for the next
    /// listed one.
    pub(crate) async fn call(
        &self,
        body: request::Body,
        idempotent: bool,
    ) -> Result<response::Body, MetadataError> {
        let options = &self.inner.options;
        let deadline = Instant::now() + options.request_timeout;
        let reads = is_read(&body);
        // A new member is answered once it has caught up, which may rightly take a while.
        let per_attempt = if matches!(body, request::Body::AddMember(_)) {
            options.request_timeout
        } else {
            options.attempt_timeout
        };
        let mut attempt: u32 = 0;
        loop {
            let attempt_deadline = deadline.min(Instant::now() + per_attempt);
            let (addr, result) = self.attempt(&body, attempt_deadline).await;
            let error = match result {
                Ok(body) => return Ok(body),
                // A read that got no answer changed nothing: it is simply unavailable.
                Err(MetadataError::Indeterminate(why)) if reads => MetadataError::Unavailable(why),
                Err(e) => e,
            };
            let leader = match &error {
                MetadataError::NotLeader { leader_addr, .. } => {
                    leader_addr.clone().filter(|a| *a != addr)
                }
                MetadataError::Unavailable(_) => None,
                MetadataError::Indeterminate(_) if idempotent => None,
                MetadataError::Indeterminate(_) => {
                    // Whatever became of this call, the next one goes elsewhere.
                    self.retarget(None, &addr).await;
                    return Err(error);
                }
                _ => return Err(error),
            };
            let jump = leader.is_some();
            self.retarget(leader, &addr).await;
            if Instant::now() >= deadline {
                return Err(error);
            }
            if !jump {
                attempt += 1;
                let backoff = Duration::from_millis(20u64.saturating_mul(1 << attempt.min(5)))
                    .min(Duration::from_millis(500));
                tokio::time::sleep(backoff.min(deadline.saturating_duration_since(Instant::now())))
                    .await;
            }
        }
    }

    /// Sends `body` once over the current connection (opened if need be), giving up at
    /// `deadline`; says which node it went to.
    async fn attempt(
        &self,
        body: &request::Body,
        deadline: Instant,
    ) -> (String, Result<response::Body, MetadataError>) {
        match tokio::time::timeout_at(deadline, self.connection()).await {
            Ok(Ok(conn)) => (
                conn.addr().to_string(),
                conn.call(body.clone(), deadline).await,
            ),
            Ok(Err(e)) => (self.target().await, Err(e)),
            Err(_) => {
                let target = self.target().await;
                let e = MetadataError::Unavailable(format!("connecting to {target} timed out"));
                (target, Err(e))
            }
        }
    }

    /// The node calls go to now.
    pub(crate) async fn target(&self) -> String {
        self.inner.route.lock().await.target.clone()
    }

    pub async fn get(&self, key: &str) -> Result<Option<Record>, MetadataError> {
        Ok(self.get_with_revision(key).await?.0)
    }

    /// The key and the store's revision when it was read: a watch from `revision + 1` misses
    /// no later change of it.
    pub async fn get_with_revision(
        &self,
        key: &str,
    ) -> Result<(Option<Record>, u64), MetadataError> {
        match self
            .call(
                request::Body::Get(pb::GetRequest {
                    key: key.to_string(),
                }),
                true,
            )
            .await?
        {
            response::Body::Get(get) => Ok((get.kv.map(Record::from), get.revision)),
            other => Err(unexpected(other)),
        }
    }

    /// Writes `value` if the key is as `expected`; returns the key's new version.
    pub async fn put(
        &self,
        key: &str,
        value: impl Into<Vec<u8>>,
        expected: Expected,
    ) -> Result<u64, MetadataError> {
        self.put_in_session(key, value.into(), expected, 0).await
    }

    /// Writes a key owned by `session`: it is deleted when the session expires or closes.
    pub async fn put_ephemeral(
        &self,
        key: &str,
        value: impl Into<Vec<u8>>,
        expected: Expected,
        session: &Session,
    ) -> Result<u64, MetadataError> {
        self.put_in_session(key, value.into(), expected, session.id())
            .await
    }

    /// Writes a key owned by the session with this id (0: no session).
    pub async fn put_in_session(
        &self,
        key: &str,
        value: Vec<u8>,
        expected: Expected,
        session: u64,
    ) -> Result<u64, MetadataError> {
        let put = pb::PutRequest {
            key: key.to_string(),
            value,
            expected: Some(expected_to_proto(expected)),
            session,
        };
        // An unconditional put that went unanswered can simply be sent again.
        match self
            .call(request::Body::Put(put), expected == Expected::Any)
            .await?
        {
            response::Body::Put(put) => Ok(put.version),
            other => Err(unexpected(other)),
        }
    }

    /// Deletes the key if it is as `expected`; says whether it existed.
    pub async fn delete(&self, key: &str, expected: Expected) -> Result<bool, MetadataError> {
        let delete = pb::DeleteRequest {
            key: key.to_string(),
            expected: Some(expected_to_proto(expected)),
        };
        match self
            .call(request::Body::Delete(delete), expected == Expected::Any)
            .await?
        {
            response::Body::Delete(delete) => Ok(delete.deleted),
            other => Err(unexpected(other)),
        }
    }

    /// Applies a transaction; per op, the new version of a put or 1/0 for a delete.
    pub async fn txn(&self, txn: Txn) -> Result<Vec<u64>, MetadataError> {
        match self.call(request::Body::Txn(txn.request), false).await? {
            response::Body::Txn(txn) => Ok(txn.results),
            other => Err(unexpected(other)),
        }
    }

    /// One page of keys under `prefix` after `start_after`; the flag says whether more follow.
    pub async fn list_page(
        &self,
        prefix: &str,
        start_after: &str,
        limit: u32,
    ) -> Result<(Vec<Record>, bool), MetadataError> {
        let (records, more, _) = self.list_page_at(prefix, start_after, limit).await?;
        Ok((records, more))
    }

    /// One page, with the store's revision when it was read.
    async fn list_page_at(
        &self,
        prefix: &str,
        start_after: &str,
        limit: u32,
    ) -> Result<(Vec<Record>, bool, u64), MetadataError> {
        let list = pb::ListRequest {
            prefix: prefix.to_string(),
            start_after: start_after.to_string(),
            limit,
            keys_only: false,
        };
        match self.call(request::Body::List(list), true).await? {
            response::Body::List(list) => Ok((
                list.kvs.into_iter().map(Record::from).collect(),
                list.more,
                list.revision,
            )),
            other => Err(unexpected(other)),
        }
    }

    /// Every key under `prefix`, in key order (paged underneath).
    pub async fn list(&self, prefix: &str) -> Result<Vec<Record>, MetadataError> {
        Ok(self.list_with_revision(prefix).await?.0)
    }

    /// Every key under `prefix` and the revision the listing started at: a watch from
    /// `revision + 1` sees every change the listing may have missed (changes between pages may
    /// be seen twice; each event carries its key's `mod_revision` to tell).
    pub async fn list_with_revision(
        &self,
        prefix: &str,
    ) -> Result<(Vec<Record>, u64), MetadataError> {
        let mut all = Vec::new();
        let mut after = String::new();
        let mut first_revision = None;
        loop {
            let (page, more, revision) = self.list_page_at(prefix, &after, 0).await?;
            first_revision.get_or_insert(revision);
            if let Some(last) = page.last() {
                after = last.key.clone();
            }
            all.extend(page);
            if !more {
                return Ok((all, first_revision.unwrap_or(revision)));
            }
        }
    }

    /// Names one level below `path`.
    pub async fn children(&self, path: &str) -> Result<Vec<String>, MetadataError> {
        match self
            .call(
                request::Body::Children(pb::ChildrenRequest {
                    path: path.to_string(),
                }),
                true,
            )
            .await?
        {
            response::Body::Children(children) => Ok(children.names),
            other => Err(unexpected(other)),
        }
    }

    /// The answering node's view of the group.
    pub async fn status(&self) -> Result<pb::StatusResponse, MetadataError> {
        match self
            .call(request::Body::Status(pb::StatusRequest {}), true)
            .await?
        {
            response::Body::Status(status) => Ok(status),
            other => Err(unexpected(other)),
        }
    }

    /// The status of one particular node, without following the leader.
    pub async fn status_of(&self, addr: &str) -> Result<pb::StatusResponse, MetadataError> {
        let options = &self.inner.options;
        let deadline = Instant::now() + options.attempt_timeout.min(options.request_timeout);
        let connect = Connection::connect(
            addr,
            options.connect_timeout,
            options.cluster_token.as_ref(),
            options.local.as_ref(),
        );
        let conn = tokio::time::timeout_at(deadline, connect)
            .await
            .map_err(|_| MetadataError::Unavailable(format!("connecting to {addr} timed out")))??;
        let status = request::Body::Status(pb::StatusRequest {});
        match conn.call(status, deadline).await {
            Ok(response::Body::Status(status)) => Ok(status),
            Ok(other) => Err(unexpected(other)),
            Err(MetadataError::Indeterminate(why)) => Err(MetadataError::Unavailable(why)),
            Err(e) => Err(e),
        }
    }

    /// Adds a voting member (as a learner first, until it has caught up).
    pub async fn add_member(
        &self,
        node_id: u64,
        addr: &str,
    ) -> Result<pb::StatusResponse, MetadataError> {
        let add = pb::AddMemberRequest {
            node_id,
            addr: addr.to_string(),
        };
        match self.call(request::Body::AddMember(add), false).await? {
            response::Body::Status(status) => Ok(status),
            other => Err(unexpected(other)),
        }
    }

    pub async fn remove_member(&self, node_id: u64) -> Result<pb::StatusResponse, MetadataError> {
        match self
            .call(
                request::Body::RemoveMember(pb::RemoveMemberRequest { node_id }),
                false,
            )
            .await?
        {
            response::Body::Status(status) => Ok(status),
            other => Err(unexpected(other)),
        }
    }

    /// Opens a session kept alive in the background until it is closed or dropped.
    pub async fn create_session(&self, ttl: Duration) -> Result<Session, MetadataError> {
        session::create(self.clone(), ttl).await
    }

    /// Ends a session by id, deleting its ephemeral keys; its owner is told it expired.
    pub async fn close_session(&self, session: u64) -> Result<(), MetadataError> {
        let close = request::Body::CloseSession(pb::CloseSessionRequest { session });
        self.call(close, true).await.map(|_| ())
    }

    /// Every change under `prefix` from `from_revision` (0: from now on), in order, exactly once,
    /// across reconnects and leader changes. Returns once the watch is established.
    pub async fn watch(&self, prefix: &str, from_revision: u64) -> Result<Watch, MetadataError> {
        watch::start(self.clone(), prefix.to_string(), from_revision).await
    }
}

/// Requests that change nothing, whatever became of them.
fn is_read(body: &request::Body) -> bool {
    matches!(
        body,
        request::Body::Get(_)
            | request::Body::List(_)
            | request::Body::Children(_)
            | request::Body::Status(_)
    )
}

pub(crate) fn unexpected(body: response::Body) -> MetadataError {
    MetadataError::Internal(format!("unexpected response {body:?}"))
}

pub(crate) fn event_kind(event_type: i32) -> EventKind {
    if event_type == pb::EventType::Delete as i32 {
        EventKind::Delete
    } else {
        EventKind::Put
    }
}
