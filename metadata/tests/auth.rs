//! The cluster token on the metadata port: a node configured with one serves a connection only
//! after it has presented the token, first thing. Strangers — no token, or a wrong one — get
//! UNAUTHENTICATED and a closed connection for every kind of request (key-value calls, Raft
//! RPCs, membership changes), and nothing changes; clients and peers that hold the token work.

use std::future::ready;
use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use magnetar_metadata::client::ClientOptions;
use magnetar_metadata::testing::{ClusterOptions, LocalCluster, raft_rpc, wait_until};
use magnetar_metadata::{Expected, MetadataClient, MetadataError};
use magnetar_protocol::ClusterToken;
use magnetar_protocol::metadata::{self as pb, ErrorCode, Request, Response, request, response};
use prost::Message;
use tokio::net::TcpStream;
use tokio_util::codec::{Framed, LengthDelimitedCodec};

const WAIT: Duration = Duration::from_secs(30);

type Raw = Framed<TcpStream, LengthDelimitedCodec>;

async fn raw(addr: std::net::SocketAddr) -> Raw {
    let stream = TcpStream::connect(addr).await.expect("connect");
    Framed::new(stream, LengthDelimitedCodec::new())
}

async fn send(conn: &mut Raw, id: u64, body: request::Body) {
    let request = Request {
        id,
        body: Some(body),
    };
    // A node that has closed the connection may make this fail; reading tells.
    let _ = conn.send(Bytes::from(request.encode_to_vec())).await;
}

/// The next response, or `None` once the node has closed the connection.
async fn next(conn: &mut Raw) -> Option<Response> {
    let frame = tokio::time::timeout(WAIT, conn.next())
        .await
        .expect("the node answers or closes");
    match frame {
        Some(Ok(frame)) => Some(Response::decode(frame).expect("a response")),
        Some(Err(_)) | None => None,
    }
}

/// Sends one request; its answer, or `None` once the node has closed the connection.
async fn exchange(conn: &mut Raw, id: u64, body: request::Body) -> Option<Response> {
    send(conn, id, body).await;
    next(conn).await
}

/// The connection ends without another answer.
async fn assert_closed(conn: &mut Raw, what: &str) {
    let next = tokio::time::timeout(WAIT, conn.next())
        .await
        .unwrap_or_else(|_| panic!("{what}: the connection stays open"));
    assert!(
        matches!(next, None | Some(Err(_))),
        "{what}: the connection stays open"
    );
}

fn auth(token: &[u8]) -> request::Body {
    request::Body::Auth(pb::AuthRequest {
        token: token.to_vec(),
    })
}

fn options(token: Option<ClusterToken>) -> ClientOptions {
    ClientOptions {
        cluster_token: token,
        request_timeout: Duration::from_secs(10),
        ..ClientOptions::default()
    }
}

/// Everything a stranger might try, each of which would change the group if served.
fn attacks(term: u64) -> Vec<(&'static str, request::Body)> {
    vec![
        (
            "put",
            request::Body::Put(pb::PutRequest {
                key: "/admin/policies/public/default".into(),
                value: b"{\"grants\":\"everyone\"}".to_vec(),
                expected: None,
                session: 0,
            }),
        ),
        (
            "raft vote",
            request::Body::Raft(pb::RaftRequest {
                payload: raft_rpc::vote(term + 10, 7),
            }),
        ),
        (
            "raft append entries",
            request::Body::Raft(pb::RaftRequest {
                payload: raft_rpc::append_entries(term + 10, 7),
            }),
        ),
        (
            "add member",
            request::Body::AddMember(pb::AddMemberRequest {
                node_id: 7,
                addr: "127.0.0.1:9".into(),
            }),
        ),
        (
            "create session",
            request::Body::CreateSession(pb::CreateSessionRequest { ttl_ms: 10_000 }),
        ),
        (
            "watch",
            request::Body::Watch(pb::WatchRequest {
                prefix: "/".into(),
                from_revision: 1,
            }),
        ),
        ("status", request::Body::Status(pb::StatusRequest {})),
    ]
}

/// 1. A one-node group with a cluster token; note its term, members, log and revision.
/// 2. For each request a stranger might send (put, Raft vote and append entries with a higher
///    term, add member, session, watch, status): sent first on a connection it is answered
///    UNAUTHENTICATED and the connection closed; sent right behind a wrong token, the token is
///    refused the same way and the request never read.
/// 3. Nothing changed: same term, members, log and revision, the key absent.
/// 4. The same frames after the right token are served (so the refusals above were the
///    token's doing, not malformed requests).
/// 5. Clients without the token, or with a wrong one, get `Unauthenticated` at once; a client
///    with the token works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strangers_are_refused_and_change_nothing() {
    let token = ClusterToken::generate();
    let cluster = LocalCluster::start(
        1,
        ClusterOptions {
            cluster_token: Some(token.clone()),
            ..ClusterOptions::default()
        },
    )
    .await
    .expect("cluster");
    let node = cluster.node(0).expect("running");
    let before = node.raft().metrics().borrow().clone();
    let revision = node.reader().revision();
    let wrong = ClusterToken::generate();

    for (what, body) in attacks(before.current_term) {
        let mut conn = raw(cluster.addr(0)).await;
        let response = exchange(&mut conn, 1, body.clone())
            .await
            .unwrap_or_else(|| panic!("{what}: closed without an answer"));
        let error = response
            .error
            .unwrap_or_else(|| panic!("{what}: served without a token"));
        assert_eq!(error.code, ErrorCode::Unauthenticated as i32, "{what}");
        assert_closed(&mut conn, what).await;

        // A wrong token with the request right behind it: the token is refused, the request
        // never read.
        let mut conn = raw(cluster.addr(0)).await;
        send(&mut conn, 1, auth(wrong.as_bytes())).await;
        send(&mut conn, 2, body).await;
        let response = next(&mut conn)
            .await
            .unwrap_or_else(|| panic!("{what}: closed without an answer"));
        assert_eq!(response.id, 1, "{what}: only the token is answered");
        let error = response.error.expect("a wrong token is refused");
        assert_eq!(error.code, ErrorCode::Unauthenticated as i32, "{what}");
        assert_closed(&mut conn, what).await;
    }

    let after = node.raft().metrics().borrow().clone();
    assert_eq!(after.current_term, before.current_term, "term unchanged");
    assert_eq!(
        after.current_leader, before.current_leader,
        "leader unchanged"
    );
    assert_eq!(after.last_log_index, before.last_log_index, "log unchanged");
    assert_eq!(
        after.membership_config.membership().nodes().count(),
        1,
        "no member added"
    );
    assert_eq!(node.reader().revision(), revision, "no state changed");
    assert!(
        node.reader()
            .get("/admin/policies/public/default")
            .expect("read")
            .is_none()
    );

    // The same kinds of frames, after the right token, are served.
    let mut conn = raw(cluster.addr(0)).await;
    let response = exchange(&mut conn, 1, auth(token.as_bytes()))
        .await
        .expect("answered");
    assert!(response.error.is_none(), "{:?}", response.error);
    let stale_vote = request::Body::Raft(pb::RaftRequest {
        payload: raft_rpc::vote(0, 7),
    });
    let response = exchange(&mut conn, 2, stale_vote).await.expect("answered");
    assert!(
        matches!(response.body, Some(response::Body::Raft(_))),
        "{response:?}"
    );
    let stale_append = request::Body::Raft(pb::RaftRequest {
        payload: raft_rpc::append_entries(0, 7),
    });
    let response = exchange(&mut conn, 3, stale_append)
        .await
        .expect("answered");
    assert!(
        matches!(response.body, Some(response::Body::Raft(_))),
        "{response:?}"
    );
    let put = request::Body::Put(pb::PutRequest {
        key: "/served".into(),
        value: b"1".to_vec(),
        expected: None,
        session: 0,
    });
    let response = exchange(&mut conn, 4, put).await.expect("answered");
    assert!(
        matches!(response.body, Some(response::Body::Put(_))),
        "{response:?}"
    );

    for (who, presented) in [("no token", None), ("a wrong token", Some(wrong))] {
        let stranger = MetadataClient::new(cluster.addrs(), options(presented)).expect("client");
        let err = stranger
            .get("/served")
            .await
            .expect_err("a stranger is refused");
        assert!(
            matches!(err, MetadataError::Unauthenticated(_)),
            "{who}: {err:?}"
        );
    }
    let member = MetadataClient::new(cluster.addrs(), options(Some(token))).expect("client");
    let got = member.get("/served").await.expect("get");
    assert_eq!(got.expect("written").value, b"1");
    cluster.shutdown().await;
}

/// 1. Three nodes with a cluster token: they elect a leader (votes between peers carry the
///    token).
/// 2. A client with the token writes; every node applies it (append entries carry it too).
/// 3. A client without the token is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_with_a_token_elects_a_leader_and_serves() {
    let token = ClusterToken::generate();
    let cluster = LocalCluster::start(
        3,
        ClusterOptions {
            cluster_token: Some(token.clone()),
            ..ClusterOptions::default()
        },
    )
    .await
    .expect("a leader is elected");
    let client = cluster.client();
    client
        .put("/replicated", "yes", Expected::Absent)
        .await
        .expect("put");
    for index in 0..3 {
        let node = cluster.node(index).expect("running");
        wait_until("every node applies the write", WAIT, || {
            ready(node.reader().get("/replicated").ok().flatten().is_some())
        })
        .await;
    }
    let stranger = MetadataClient::new(cluster.addrs(), options(None)).expect("client");
    let err = stranger.get("/replicated").await.expect_err("refused");
    assert!(matches!(err, MetadataError::Unauthenticated(_)), "{err:?}");
    cluster.shutdown().await;
}

/// A node without a token (the embedded single node `standalone` and tests run) serves clients
/// with and without one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_without_a_token_serves_everyone() {
    let cluster = LocalCluster::start(1, ClusterOptions::default())
        .await
        .expect("cluster");
    let with = MetadataClient::new(cluster.addrs(), options(Some(ClusterToken::generate())))
        .expect("client");
    with.put("/a", "1", Expected::Any).await.expect("put");
    let without = MetadataClient::new(cluster.addrs(), options(None)).expect("client");
    assert!(without.get("/a").await.expect("get").is_some());
    cluster.shutdown().await;
}

/// A client of this process's node (the standalone's broker) reaches it through an in-memory
/// pipe: same protocol and token check; a wrong token is refused as over TCP; once the node
/// stops, calls fail as `Unavailable` instead of waiting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_process_clients_use_a_pipe_with_the_same_checks() {
    let token = ClusterToken::generate();
    let mut cluster = LocalCluster::start(
        1,
        ClusterOptions {
            cluster_token: Some(token.clone()),
            ..ClusterOptions::default()
        },
    )
    .await
    .expect("cluster");
    let local = cluster.node(0).expect("running").local_connector();
    assert_eq!(local.addr(), cluster.addr(0).to_string());
    let in_process = |token| {
        MetadataClient::new(
            cluster.addrs(),
            ClientOptions {
                local: Some(local.clone()),
                request_timeout: Duration::from_secs(2),
                ..options(token)
            },
        )
        .expect("client")
    };
    let client = in_process(Some(token.clone()));
    client
        .put("/piped", "yes", Expected::Absent)
        .await
        .expect("put");
    let record = client.get("/piped").await.expect("get").expect("stored");
    assert_eq!(record.value, b"yes");
    let stranger = in_process(Some(ClusterToken::generate()));
    let err = stranger.get("/piped").await.expect_err("refused");
    assert!(matches!(err, MetadataError::Unauthenticated(_)), "{err:?}");

    cluster.stop(0).await;
    let err = client.get("/piped").await.expect_err("stopped");
    assert!(matches!(err, MetadataError::Unavailable(_)), "{err:?}");
    cluster.shutdown().await;
}
