//! Metadata group behaviour on an in-process 3-node cluster (real TCP on loopback, real RocksDB
//! in temp dirs). Every wait is on a condition with a deadline; nothing sleeps a fixed time.

use std::future::ready;
use std::time::{Duration, Instant};

use magnetar_metadata::testing::{ClusterOptions, LocalCluster, wait_until};
use magnetar_metadata::{EventKind, Expected, MetadataError, Txn};

const WAIT: Duration = Duration::from_secs(30);

/// 1. Start 3 nodes, write 200 keys through a client (each acknowledged).
/// 2. Stop the leader; time until a new leader serves a write.
/// 3. Every acknowledged key is present; the stopped node rejoins and catches up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_leader_loss() {
    let mut cluster = LocalCluster::start(3, ClusterOptions::default())
        .await
        .expect("cluster");
    let client = cluster.client();
    for i in 0..200 {
        client
            .put(&format!("/keys/{i:03}"), format!("v{i}"), Expected::Any)
            .await
            .expect("put");
    }
    let leader = cluster.leader().expect("leader");
    let stopped_at = Instant::now();
    cluster.stop(leader).await;
    client
        .put("/after-failover", "yes", Expected::Absent)
        .await
        .expect("write after failover");
    eprintln!(
        "new leader served a write {:?} after the old one stopped",
        stopped_at.elapsed()
    );
    let records = client.list("/keys/").await.expect("list");
    assert_eq!(records.len(), 200);
    for (i, record) in records.iter().enumerate() {
        assert_eq!(record.key, format!("/keys/{i:03}"));
        assert_eq!(record.value, format!("v{i}").into_bytes());
    }
    cluster.restart(leader).await.expect("restart");
    let node = cluster.node(leader).expect("running");
    wait_until("the restarted node has every key", WAIT, || {
        ready({
            node.reader()
                .get("/after-failover")
                .ok()
                .flatten()
                .is_some()
                && node.reader().get("/keys/199").ok().flatten().is_some()
        })
    })
    .await;
    cluster.shutdown().await;
}

/// 1. Snapshots every 50 entries, keeping 10 log entries behind them.
/// 2. Stop a follower, write 300 keys (the log it missed is purged), restart it.
/// 3. It catches up through a snapshot (its history starts at the snapshot) with every key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lagging_follower_catches_up_from_a_snapshot() {
    let options = ClusterOptions {
        snapshot_after_logs: 50,
        logs_kept_after_snapshot: 10,
        ..Default::default()
    };
    let mut cluster = LocalCluster::start(3, options).await.expect("cluster");
    let client = cluster.client();
    client.put("/early", "1", Expected::Any).await.expect("put");
    let leader = cluster.leader().expect("leader");
    let follower = (leader + 1) % 3;
    cluster.stop(follower).await;
    for i in 0..300 {
        // One at a time, so that each is its own log entry and the log really grows.
        client
            .put(&format!("/bulk/{i}"), vec![b'x'; 64], Expected::Any)
            .await
            .expect("put");
    }
    cluster.restart(follower).await.expect("restart");
    let node = cluster.node(follower).expect("running");
    wait_until("the follower has every key", WAIT, || {
        ready({
            (0..300).all(|i| {
                node.reader()
                    .get(&format!("/bulk/{i}"))
                    .ok()
                    .flatten()
                    .is_some()
            })
        })
    })
    .await;
    assert!(
        node.reader().compacted() > 0,
        "caught up by installing a snapshot"
    );
    assert_eq!(
        node.reader()
            .get("/early")
            .expect("get")
            .expect("present")
            .value,
        b"1"
    );
    cluster.shutdown().await;
}

/// Compare-and-set and transactions: conflicts are `BadVersion`, a failing compare changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compare_and_set_and_transactions() {
    let cluster = LocalCluster::start(3, ClusterOptions::default())
        .await
        .expect("cluster");
    let client = cluster.client();
    assert_eq!(
        client
            .put("/cas", "a", Expected::Absent)
            .await
            .expect("create"),
        1
    );
    let err = client
        .put("/cas", "b", Expected::Absent)
        .await
        .expect_err("exists");
    assert_eq!(
        err,
        MetadataError::BadVersion {
            key: "/cas".into(),
            actual_version: 1
        }
    );
    let err = client
        .put("/cas", "b", Expected::Version(7))
        .await
        .expect_err("wrong version");
    assert!(matches!(
        err,
        MetadataError::BadVersion {
            actual_version: 1,
            ..
        }
    ));
    assert_eq!(
        client
            .put("/cas", "b", Expected::Version(1))
            .await
            .expect("cas"),
        2
    );
    assert!(matches!(
        client.delete("/cas", Expected::Version(1)).await,
        Err(MetadataError::BadVersion { .. })
    ));

    let before = client.status().await.expect("status").revision;
    let failing = Txn::new()
        .put("/t/1", "x", Expected::Absent)
        .put("/t/2", "y", Expected::Absent)
        .compare("/cas", Expected::Version(1))
        .delete("/cas", Expected::Any);
    let err = client.txn(failing).await.expect_err("compare fails");
    assert_eq!(
        err,
        MetadataError::BadVersion {
            key: "/cas".into(),
            actual_version: 2
        }
    );
    assert!(
        client.get("/t/1").await.expect("get").is_none(),
        "nothing applied"
    );
    assert_eq!(
        client.get("/cas").await.expect("get").expect("kept").value,
        b"b"
    );
    assert_eq!(
        client.status().await.expect("status").revision,
        before,
        "no revision consumed"
    );

    let ok = Txn::new()
        .put("/t/1", "x", Expected::Absent)
        .put("/t/2", "y", Expected::Absent)
        .delete("/cas", Expected::Version(2));
    assert_eq!(client.txn(ok).await.expect("txn"), vec![1, 1, 1]);
    assert!(client.get("/cas").await.expect("get").is_none());
    assert_eq!(
        client.status().await.expect("status").revision,
        before + 1,
        "one revision for the whole txn"
    );
    cluster.shutdown().await;
}

/// 1. A session with a 1 s TTL owns an ephemeral key; a watcher watches its prefix.
/// 2. The session stops sending keep-alives (dropped).
/// 3. The watcher sees the delete, every node loses the key, and writes in that session fail.
/// 4. A session closed by someone else is told it expired.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_sessions_delete_their_ephemeral_keys_everywhere() {
    let cluster = LocalCluster::start(3, ClusterOptions::default())
        .await
        .expect("cluster");
    let client = cluster.client();
    let session = client
        .create_session(Duration::from_secs(1))
        .await
        .expect("session");
    client
        .put_ephemeral("/live/broker-1", "addr", Expected::Absent, &session)
        .await
        .expect("ephemeral");
    client
        .put("/live/persistent", "stays", Expected::Any)
        .await
        .expect("put");
    let mut watch = client.watch("/live/", 0).await.expect("watch");
    let id = session.id();
    drop(session);
    let event = tokio::time::timeout(WAIT, watch.next())
        .await
        .expect("event in time")
        .expect("open")
        .expect("ok");
    assert_eq!(event.changes.len(), 1);
    assert_eq!(event.changes[0].kind, EventKind::Delete);
    assert_eq!(event.changes[0].record.key, "/live/broker-1");
    for index in 0..3 {
        let node = cluster.node(index).expect("running");
        wait_until("every node deleted the key", WAIT, || {
            ready(node.reader().get("/live/broker-1").ok().flatten().is_none())
        })
        .await;
        assert!(
            node.reader()
                .get("/live/persistent")
                .expect("get")
                .is_some()
        );
    }
    let txn = Txn::new().put_in_session("/live/late", "x", Expected::Any, id);
    assert_eq!(
        client.txn(txn).await.expect_err("expired"),
        MetadataError::SessionExpired(id)
    );

    let other = cluster.client();
    let session = client
        .create_session(Duration::from_secs(3))
        .await
        .expect("session");
    client
        .put_ephemeral("/live/broker-2", "addr", Expected::Absent, &session)
        .await
        .expect("ephemeral");
    other
        .close_session(session.id())
        .await
        .expect("close from elsewhere");
    tokio::time::timeout(WAIT, session.expired())
        .await
        .expect("told it expired");
    assert!(client.get("/live/broker-2").await.expect("get").is_none());
    cluster.shutdown().await;
}

/// 1. A watcher watches `/w/` from now on; a writer writes 150 keys.
/// 2. Midway the leader stops; the writer carries on through the new leader.
/// 3. The watcher's revisions are strictly increasing and equal a fresh replay of the history.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_sees_every_event_once_across_a_leader_change() {
    let mut cluster = LocalCluster::start(3, ClusterOptions::default())
        .await
        .expect("cluster");
    let client = cluster.client();
    let mut watch = client.watch("/w/", 0).await.expect("watch");
    let start = watch.start_revision();
    for i in 0..75 {
        client
            .put(&format!("/w/{i}"), "v", Expected::Any)
            .await
            .expect("put");
    }
    let leader = cluster.leader().expect("leader");
    cluster.stop(leader).await;
    for i in 75..150 {
        client
            .put(&format!("/w/{i}"), "v", Expected::Any)
            .await
            .expect("put after failover");
    }
    let last = client.status().await.expect("status").revision;
    let mut seen = Vec::new();
    while seen.last().is_none_or(|r: &(u64, String)| r.0 < last) {
        let event = tokio::time::timeout(WAIT, watch.next())
            .await
            .expect("event in time")
            .expect("open")
            .expect("ok");
        for change in event.changes {
            seen.push((event.revision, change.record.key));
        }
    }
    assert!(
        seen.windows(2).all(|w| w[0].0 < w[1].0),
        "revisions strictly increase"
    );
    let mut replay = client.watch("/w/", start + 1).await.expect("replay");
    let mut expected = Vec::new();
    while expected.len() < seen.len() {
        let event = tokio::time::timeout(WAIT, replay.next())
            .await
            .expect("event")
            .expect("open")
            .expect("ok");
        expected.extend(
            event
                .changes
                .into_iter()
                .map(|c| (event.revision, c.record.key)),
        );
    }
    assert_eq!(seen, expected);
    for i in 0..150 {
        assert!(
            seen.iter().any(|(_, key)| *key == format!("/w/{i}")),
            "/w/{i} seen"
        );
    }
    cluster.shutdown().await;
}

/// Ordered listing with paging, one-level children, and a single-node group's restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_children_and_single_node_restart() {
    let mut cluster = LocalCluster::start(1, ClusterOptions::default())
        .await
        .expect("single node");
    let client = cluster.client();
    for key in ["/p/c/x/y", "/p/a/2", "/p/b", "/p/a/1", "/pp"] {
        client.put(key, key, Expected::Any).await.expect("put");
    }
    assert_eq!(
        client.children("/p").await.expect("children"),
        vec!["a", "b", "c"]
    );
    let (page, more) = client.list_page("/p/", "", 2).await.expect("page");
    assert!(more);
    assert_eq!(
        page.iter().map(|r| r.key.as_str()).collect::<Vec<_>>(),
        ["/p/a/1", "/p/a/2"]
    );
    let (page, more) = client.list_page("/p/", "/p/a/2", 2).await.expect("page");
    assert!(!more);
    assert_eq!(
        page.iter().map(|r| r.key.as_str()).collect::<Vec<_>>(),
        ["/p/b", "/p/c/x/y"]
    );
    cluster.stop(0).await;
    cluster.restart(0).await.expect("restart");
    cluster.wait_for_leader(WAIT).await.expect("leader again");
    assert_eq!(client.list("/p/").await.expect("list").len(), 4);
    cluster.shutdown().await;
}
