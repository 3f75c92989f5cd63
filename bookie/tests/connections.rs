//! Connections to bookies: a client's queue is bounded, so a bookie that stops reading slows its
//! callers down; the ledger client keeps one slot per bookie, so a bookie that is slow to
//! connect holds up only its own callers.

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use common::{BlackHole, add, config};
use magnetar_bookie::client::{BookieClient, ConnectOptions};
use magnetar_bookie::ledger::{LedgerClient, LedgerOptions};
use magnetar_metadata::testing::{ClusterOptions, LocalCluster};
use magnetar_protocol::ClusterToken;
use magnetar_protocol::bookie::AddEntryRequest;
use magnetar_testkit::bookie::TestBookie;
use magnetar_testkit::wait_until;

/// Steps:
/// 1. A ledger client with the cluster token (connect timeout 60 s) starts connecting to a
///    wedged bookie — it accepts the connection and never answers the authentication.
/// 2. While that connect waits, the same client connects to a healthy bookie and adds an entry.
/// 3. The add is acknowledged while the connect to the wedged bookie is still waiting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wedged_bookie_does_not_hold_up_connections_to_others() {
    let token = ClusterToken::new("the-cluster-token-0123456789").expect("token");
    let cluster = LocalCluster::start(1, ClusterOptions::default())
        .await
        .expect("metadata");
    let dir = tempfile::tempdir().expect("tempdir");
    let healthy = TestBookie::start(magnetar_bookie::BookieConfig {
        cluster_token: Some(token.clone()),
        ..config(dir.path())
    })
    .await;
    let hole = BlackHole::bind("127.0.0.1:0").await;
    let ledgers = LedgerClient::new(
        cluster.client(),
        LedgerOptions {
            cluster_token: Some(token),
            connect_timeout: Duration::from_secs(60),
            ..LedgerOptions::default()
        },
    );

    let wedged = hole.addr.to_string();
    let stuck = tokio::spawn({
        let ledgers = ledgers.clone();
        async move { ledgers.bookie(&wedged).await.map(|_| ()) }
    });
    wait_until(
        "the wedged bookie to be connecting",
        Duration::from_secs(10),
        || {
            let accepted = hole.accepted() > 0;
            async move { accepted }
        },
    )
    .await;

    let conn = tokio::time::timeout(
        Duration::from_secs(30),
        ledgers.bookie(&healthy.addr.to_string()),
    )
    .await
    .expect("the healthy bookie was held up behind the wedged one")
    .expect("connect to the healthy bookie");
    conn.add_entry(add(1, 0, false)).await.expect("add");
    assert!(
        !stuck.is_finished(),
        "the connect to the wedged bookie was still waiting"
    );
    stuck.abort();
    healthy.stop().await;
    cluster.shutdown().await;
}

/// Steps:
/// 1. A peer accepts a connection and never reads from it; a client connects with a 1 MiB queue.
/// 2. 400 adds of 60 KiB (24 MB) are called at once.
/// 3. Once the socket's buffers are full, the queue fills up to its bound and no further; the
///    other calls wait for room (backpressure) instead of queuing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_stops_reading_fills_the_queue_only_to_its_bound() {
    const BOUND: usize = 1024 * 1024;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let peer = tokio::spawn(async move { listener.accept().await.map(|(socket, _)| socket) });
    let options = ConnectOptions {
        max_queued_bytes: BOUND,
        write_timeout: Duration::from_secs(120),
        ..ConnectOptions::default()
    };
    let client = Arc::new(
        BookieClient::connect_with(addr, &options)
            .await
            .expect("connect"),
    );
    let _socket = peer.await.expect("accept task").expect("accepted");
    let calls: Vec<_> = (0..400u64)
        .map(|entry_id| {
            let client = client.clone();
            tokio::spawn(async move {
                let add = AddEntryRequest {
                    ledger_id: 1,
                    entry_id,
                    last_add_confirmed: None,
                    payload: vec![7; 60 * 1024],
                    recovery: false,
                };
                client.add_entry(add).await
            })
        })
        .collect();
    wait_until("the queue to fill up", Duration::from_secs(20), || {
        let queued = client.queued_bytes();
        assert!(queued <= BOUND, "{queued} bytes queued, over the bound");
        async move { queued > BOUND - 100 * 1024 }
    })
    .await;
    assert!(client.queued_bytes() <= BOUND);
    assert!(calls.iter().all(|call| !call.is_finished()));
    for call in calls {
        call.abort();
    }
}

/// Steps: three callers ask a ledger client (connect timeout 1 s) for a connection to a wedged
/// bookie at once. All three fail, after one connection attempt between them: callers that
/// queued behind an attempt share its outcome rather than each waiting out a timeout of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callers_waiting_on_a_failing_connect_share_its_outcome() {
    let cluster = LocalCluster::start(1, ClusterOptions::default())
        .await
        .expect("metadata");
    let hole = BlackHole::bind("127.0.0.1:0").await;
    let ledgers = LedgerClient::new(
        cluster.client(),
        LedgerOptions {
            cluster_token: Some(ClusterToken::new("the-cluster-token-0123456789").expect("token")),
            connect_timeout: Duration::from_secs(1),
            ..LedgerOptions::default()
        },
    );
    let wedged = hole.addr.to_string();
    let results = futures::future::join_all((0..3).map(|_| ledgers.bookie(&wedged))).await;
    assert!(results.iter().all(Result::is_err));
    assert_eq!(
        hole.accepted(),
        1,
        "one connection attempt for the three callers"
    );
    cluster.shutdown().await;
}
