//! A bookie with a cluster token serves only connections that present it first; everyone else
//! gets one refusal and a closed connection, and the ledgers stay as they were.

use crate::common;

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use common::{add, config, payload};
use futures::{SinkExt, StreamExt};
use magnetar_bookie::client::{BookieClient, ConnectOptions};
use magnetar_bookie::ledger::{LedgerClient, LedgerConfig, LedgerError, LedgerOptions};
use magnetar_bookie::wire;
use magnetar_metadata::testing::{ClusterOptions, LocalCluster};
use magnetar_protocol::ClusterToken;
use magnetar_protocol::bookie::{
    AuthenticateRequest, DeleteLedgerRequest, FenceLedgerRequest, ReadEntryRequest, Request,
    Response, StatusCode, request,
};
use magnetar_testkit::bookie::TestBookie;
use prost::Message;
use tokio::net::TcpStream;
use tokio_util::codec::{Framed, LengthDelimitedCodec};

fn token() -> ClusterToken {
    ClusterToken::new("the-cluster-token-0123456789").expect("token")
}

fn with_token() -> ConnectOptions {
    ConnectOptions {
        cluster_token: Some(token()),
        ..ConnectOptions::default()
    }
}

/// Every request a stranger could use to read, damage or take over a ledger.
fn attacks(ledger_id: u64) -> Vec<request::Op> {
    vec![
        request::Op::DeleteLedger(DeleteLedgerRequest { ledger_id }),
        request::Op::FenceLedger(FenceLedgerRequest { ledger_id }),
        request::Op::ReadEntry(ReadEntryRequest {
            ledger_id,
            entry_id: 0,
            fence: true,
        }),
        request::Op::AddEntry(add(ledger_id, 10, false)),
    ]
}

async fn raw(addr: std::net::SocketAddr) -> Framed<TcpStream, LengthDelimitedCodec> {
    let socket = TcpStream::connect(addr).await.expect("connect");
    Framed::new(socket, wire::codec(1024 * 1024))
}

/// Sends `ops` pipelined on a fresh connection; returns the responses until the bookie closed it.
async fn send_all(addr: std::net::SocketAddr, ops: Vec<request::Op>) -> Vec<Response> {
    let mut raw = raw(addr).await;
    for (i, op) in ops.into_iter().enumerate() {
        let request = Request {
            request_id: i as u64 + 1,
            op: Some(op),
        };
        // The bookie may close before it has read everything.
        if raw.send(wire::encode(&request)).await.is_err() {
            break;
        }
    }
    let mut responses = Vec::new();
    while let Some(Ok(frame)) = raw.next().await {
        responses.push(Response::decode(frame.freeze()).expect("response"));
    }
    responses
}

fn refused(responses: &[Response]) -> bool {
    matches!(responses, [only] if only.status == StatusCode::Unauthenticated as i32)
}

/// Steps: a bookie with a cluster token holds ledger 1, written by a client with the token.
/// Strangers send DeleteLedger, FenceLedger, ReadEntry and AddEntry, each on a fresh
/// connection: first with no token, then after a wrong token, then pipelined after a wrong
/// token. Each connection gets exactly one UNAUTHENTICATED answer and is closed. Ledger 1 still
/// holds every entry, is not fenced, and the client with the token writes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strangers_are_refused_and_the_ledger_is_intact() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bookie = TestBookie::start(magnetar_bookie::BookieConfig {
        cluster_token: Some(token()),
        ..config(dir.path())
    })
    .await;
    let member = BookieClient::connect_with(bookie.addr, &with_token())
        .await
        .expect("a client with the token connects");
    for entry in 0..10 {
        member.add_entry(add(1, entry, false)).await.expect("add");
    }

    let wrong = || {
        request::Op::Authenticate(AuthenticateRequest {
            cluster_token: b"not-the-cluster-token-0000".to_vec(),
        })
    };
    for attack in attacks(1) {
        let responses = send_all(bookie.addr, vec![attack.clone()]).await;
        assert!(
            refused(&responses),
            "no token: {attack:?} got {responses:?}"
        );
        let responses = send_all(bookie.addr, vec![wrong()]).await;
        assert!(refused(&responses), "wrong token got {responses:?}");
        let responses = send_all(bookie.addr, vec![wrong(), attack.clone()]).await;
        assert!(
            refused(&responses),
            "pipelined after a wrong token: {attack:?} got {responses:?}"
        );
    }
    assert!(
        matches!(
            BookieClient::connect(bookie.addr).await,
            Ok(client) if client.read_entry(1, 0, false).await.is_err()
        ),
        "a client without the token reads nothing"
    );
    let wrong_token = ConnectOptions {
        cluster_token: Some(ClusterToken::new("not-the-cluster-token-0000").expect("token")),
        ..ConnectOptions::default()
    };
    assert!(
        BookieClient::connect_with(bookie.addr, &wrong_token)
            .await
            .is_err(),
        "a client with a wrong token does not connect"
    );

    let lac = member.read_last_add_confirmed(1).await.expect("lac");
    assert!(!lac.fenced, "no stranger fenced the ledger");
    assert_eq!(lac.last_add_confirmed, Some(8), "as entry 9 carried it");
    for entry in 0..10 {
        let read = member.read_entry(1, entry, false).await.expect("read");
        assert_eq!(read.payload, payload(1, entry));
    }
    assert!(
        member.read_entry(1, 10, false).await.is_err(),
        "no stranger's add landed"
    );
    member
        .add_entry(add(1, 10, false))
        .await
        .expect("the writer goes on");
    member.close().await;
    bookie.stop().await;
}

/// Steps: three registered bookies with the cluster token. A ledger client with the token
/// creates a ledger, writes and closes it, another recovers and reads it. A ledger client
/// without the token cannot write a ledger there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ledger_clients_with_the_token_work_and_others_do_not() {
    let cluster = LocalCluster::start(1, ClusterOptions::default())
        .await
        .expect("metadata");
    let metadata = cluster.client();
    let mut dirs = Vec::new();
    let mut bookies = Vec::new();
    for _ in 0..3 {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = magnetar_bookie::BookieConfig {
            cluster_token: Some(token()),
            ..config(dir.path())
        };
        bookies.push(TestBookie::start(config).await.register(&metadata).await);
        dirs.push(dir);
    }
    let options = LedgerOptions {
        cluster_token: Some(token()),
        add_timeout: Duration::from_secs(2),
        ..LedgerOptions::default()
    };
    let ledgers = LedgerClient::new(metadata.clone(), options.clone());
    let quorum = LedgerConfig {
        ensemble: 3,
        write_quorum: 2,
        ack_quorum: 2,
    };
    let writer = ledgers
        .create(quorum, BTreeMap::new())
        .await
        .expect("create");
    for i in 0..20u64 {
        let data = Bytes::from(payload(writer.id(), i));
        assert_eq!(writer.append(data).await.expect("acked"), i);
    }
    let recovered = LedgerClient::new(metadata.clone(), options)
        .open_with_recovery(writer.id())
        .await
        .expect("recover");
    assert_eq!(recovered.last_entry_id(), 19);
    let entries = recovered.read(0, 19).await.expect("read");
    for (i, entry) in entries.iter().enumerate() {
        assert_eq!(entry.as_ref(), payload(writer.id(), i as u64).as_slice());
    }

    let stranger = LedgerClient::new(
        metadata.clone(),
        LedgerOptions {
            add_timeout: Duration::from_secs(2),
            ..LedgerOptions::default()
        },
    );
    let result = match stranger.create(quorum, BTreeMap::new()).await {
        Ok(writer) => writer.append(Bytes::from_static(b"x")).await.map(|_| ()),
        Err(e) => Err(e),
    };
    assert!(
        matches!(
            result,
            Err(LedgerError::NotEnoughBookies { .. } | LedgerError::BookieUnavailable { .. })
        ),
        "a client without the token wrote: {result:?}"
    );
    for bookie in bookies {
        bookie.stop().await;
    }
    cluster.shutdown().await;
}
