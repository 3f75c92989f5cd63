//! A node that accepts connections and never answers (a "black hole": a wedged process, a
//! half-open connection) costs a client at most one attempt per call, never the call itself:
//! calls go on through the nodes that answer, and a client with nothing but black holes gets an
//! error within its request timeout instead of hanging.

use std::time::Duration;

use magnetar_metadata::client::ClientOptions;
use magnetar_metadata::testing::{ClusterOptions, LocalCluster};
use magnetar_metadata::{Expected, MetadataClient, MetadataError};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// Far above every request timeout below: reaching it means a call hung.
const HANG: Duration = Duration::from_secs(60);

/// A listener that accepts every connection and keeps it open without reading or answering.
async fn black_hole() -> (String, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    (addr, task)
}

fn options(request_timeout: Duration) -> ClientOptions {
    ClientOptions {
        request_timeout,
        attempt_timeout: Duration::from_millis(500),
        ..ClientOptions::default()
    }
}

async fn bounded<T>(what: &str, call: impl Future<Output = T>) -> T {
    tokio::time::timeout(HANG, call)
        .await
        .unwrap_or_else(|_| panic!("{what} hung"))
}

/// 1. A one-node group; a client that lists a black hole before the real node.
/// 2. Reads and unconditional writes succeed (the black hole costs one attempt, then the
///    client moves on); a compare-and-set that was sent into the black hole comes back
///    `Indeterminate` (its outcome is unknown to the client) and the next one succeeds.
/// 3. A watch and a session can be set up through the same client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_go_around_a_node_that_never_answers() {
    let cluster = LocalCluster::start(1, ClusterOptions::default())
        .await
        .expect("cluster");
    let (hole, hole_task) = black_hole().await;
    let servers = [hole.clone(), cluster.addrs()[0].clone()];

    let client =
        MetadataClient::new(servers.clone(), options(Duration::from_secs(15))).expect("client");
    bounded("an unconditional put", client.put("/a", "1", Expected::Any))
        .await
        .expect("the put goes to the node that answers");
    let got = bounded("a get", client.get("/a")).await.expect("get");
    assert_eq!(got.expect("written").value, b"1");

    let fresh =
        MetadataClient::new(servers.clone(), options(Duration::from_secs(15))).expect("client");
    let err = bounded("a compare-and-set", fresh.put("/b", "1", Expected::Absent))
        .await
        .expect_err("sent into the black hole");
    assert!(matches!(err, MetadataError::Indeterminate(_)), "{err:?}");
    bounded(
        "the next compare-and-set",
        fresh.put("/b", "1", Expected::Absent),
    )
    .await
    .expect("the client has moved on to the node that answers");

    let watcher =
        MetadataClient::new(servers.clone(), options(Duration::from_secs(15))).expect("client");
    let mut watch = bounded("a watch", watcher.watch("/w/", 0))
        .await
        .expect("the watch is established on the node that answers");
    client.put("/w/x", "1", Expected::Any).await.expect("put");
    let event = bounded("a watch event", watch.next())
        .await
        .expect("watch open")
        .expect("event");
    assert_eq!(event.changes[0].record.key, "/w/x");

    let sessions = MetadataClient::new(servers, options(Duration::from_secs(15))).expect("client");
    let session = bounded(
        "a session",
        sessions.create_session(Duration::from_secs(10)),
    )
    .await;
    // Creating a session is not idempotent: sent into the black hole it is indeterminate,
    // and the next attempt gets one.
    let session = match session {
        Ok(session) => session,
        Err(MetadataError::Indeterminate(_)) => bounded(
            "a second session",
            sessions.create_session(Duration::from_secs(10)),
        )
        .await
        .expect("session"),
        Err(e) => panic!("unexpected {e:?}"),
    };
    session.close().await.expect("close");

    hole_task.abort();
    cluster.shutdown().await;
}

/// A client whose only server is a black hole: every kind of call fails within the request
/// timeout (reads `Unavailable`, writes `Indeterminate`) instead of hanging.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_with_only_a_black_hole_gets_errors_not_hangs() {
    let (hole, hole_task) = black_hole().await;
    let client = MetadataClient::new([hole], options(Duration::from_secs(2))).expect("client");

    let err = bounded("a get", client.get("/a"))
        .await
        .expect_err("nobody answers");
    assert!(matches!(err, MetadataError::Unavailable(_)), "{err:?}");
    // Writes were sent and never answered: whether they applied is unknown.
    let err = bounded("an unconditional put", client.put("/a", "1", Expected::Any))
        .await
        .expect_err("nobody answers");
    assert!(matches!(err, MetadataError::Indeterminate(_)), "{err:?}");
    let err = bounded("a compare-and-set", client.put("/a", "1", Expected::Absent))
        .await
        .expect_err("nobody answers");
    assert!(matches!(err, MetadataError::Indeterminate(_)), "{err:?}");
    let err = bounded("a watch", client.watch("/w/", 0))
        .await
        .expect_err("nobody answers");
    assert!(matches!(err, MetadataError::Unavailable(_)), "{err:?}");
    let err = bounded("status", client.status_of(client.servers()[0].as_str()))
        .await
        .expect_err("nobody answers");
    assert!(matches!(err, MetadataError::Unavailable(_)), "{err:?}");

    hole_task.abort();
}
