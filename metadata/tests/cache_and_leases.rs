//! The pieces cluster mode stands on: a watched copy of a prefix, compares on an ephemeral
//! key's owning session, the local lease deadline, and the session keeper.

use std::future::ready;
use std::time::Duration;

use magnetar_metadata::testing::{ClusterOptions, LocalCluster, wait_until};
use magnetar_metadata::{Expected, MetadataError, PrefixCache, SessionKeeper, SessionState, Txn};

const WAIT: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prefix_cache_follows_puts_and_deletes_from_its_listing_revision() {
    let cluster = LocalCluster::start(1, ClusterOptions::default())
        .await
        .expect("cluster");
    let client = cluster.client();
    client
        .put("/cache/a", "1", Expected::Any)
        .await
        .expect("put");
    client
        .put("/other/x", "1", Expected::Any)
        .await
        .expect("put");
    let cache = PrefixCache::start(client.clone(), "/cache/")
        .await
        .expect("cache");
    assert_eq!(cache.len(), 1);
    assert_eq!(cache.get("/cache/a").expect("listed").value, b"1");

    client
        .put("/cache/b", "2", Expected::Absent)
        .await
        .expect("put");
    client
        .put("/cache/a", "3", Expected::Any)
        .await
        .expect("put");
    let (_, revision) = client.get_with_revision("/cache/a").await.expect("get");
    tokio::time::timeout(WAIT, cache.wait_for_revision(revision))
        .await
        .expect("the copy catches up");
    assert_eq!(cache.get("/cache/a").expect("a").value, b"3");
    assert_eq!(cache.get("/cache/b").expect("b").value, b"2");
    assert!(cache.get("/other/x").is_none(), "outside the prefix");

    client
        .delete("/cache/b", Expected::Any)
        .await
        .expect("delete");
    wait_until("the delete reaches the copy", WAIT, || {
        ready(cache.get("/cache/b").is_none())
    })
    .await;
    assert_eq!(
        cache
            .records()
            .iter()
            .map(|r| r.key.as_str())
            .collect::<Vec<_>>(),
        ["/cache/a"]
    );
    drop(cache);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_can_be_conditional_on_the_owning_session_of_a_key() {
    let cluster = LocalCluster::start(1, ClusterOptions::default())
        .await
        .expect("cluster");
    let client = cluster.client();
    let first = client
        .create_session(Duration::from_secs(10))
        .await
        .expect("session");
    let second = client
        .create_session(Duration::from_secs(10))
        .await
        .expect("session");
    client
        .put_ephemeral("/owner", "first", Expected::Absent, &first)
        .await
        .expect("claim");

    let guarded = |session: u64| {
        Txn::new()
            .compare("/owner", Expected::Session(session))
            .put("/guarded", "written", Expected::Any)
    };
    client
        .txn(guarded(first.id()))
        .await
        .expect("the owner writes");
    let refused = client.txn(guarded(second.id())).await;
    assert!(
        matches!(refused, Err(MetadataError::BadVersion { .. })),
        "{refused:?}"
    );

    // Re-created by the second session: version 1 again, but the first session's guard fails.
    first.close().await.expect("close");
    client
        .put_ephemeral("/owner", "second", Expected::Absent, &second)
        .await
        .expect("claim again");
    let record = client.get("/owner").await.expect("get").expect("exists");
    assert_eq!(record.version, 1);
    assert!(matches!(
        client.txn(guarded(first.id())).await,
        Err(MetadataError::BadVersion { .. })
    ));
    client
        .txn(guarded(second.id()))
        .await
        .expect("the new owner writes");
    // Session 0 owns nothing.
    assert!(matches!(
        client.txn(guarded(0)).await,
        Err(MetadataError::InvalidArgument(_))
    ));
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_cut_off_from_the_group_expires_locally_within_its_ttl() {
    let mut cluster = LocalCluster::start(1, ClusterOptions::default())
        .await
        .expect("cluster");
    let client = cluster.client();
    let ttl = Duration::from_secs(1);
    let session = client.create_session(ttl).await.expect("session");
    assert!(session.is_live());
    cluster.stop(0).await;
    let cut_off = tokio::time::Instant::now();
    tokio::time::timeout(ttl * 5, session.expired())
        .await
        .expect("the local lease runs out without the group");
    assert_eq!(session.state(), SessionState::Expired);
    assert!(!session.is_live());
    // The lease ran from the last answered keep-alive, sent before the cut: it ended at most
    // a TTL after the cut, before the group (counting from when it heard that keep-alive) could
    // have expired the session.
    assert!(session.lease_deadline() <= cut_off + ttl);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_session_keeper_opens_a_new_session_after_one_is_lost() {
    let mut cluster = LocalCluster::start(1, ClusterOptions::default())
        .await
        .expect("cluster");
    let client = cluster.client();
    let keeper = SessionKeeper::start(client.clone(), Duration::from_secs(1), "test");
    let first = tokio::time::timeout(WAIT, keeper.wait())
        .await
        .expect("a session");
    cluster.stop(0).await;
    tokio::time::timeout(WAIT, first.expired())
        .await
        .expect("lost");
    cluster.restart(0).await.expect("restart");
    let second = tokio::time::timeout(WAIT, keeper.wait())
        .await
        .expect("a new session");
    assert_ne!(first.id(), second.id());
    assert!(second.is_live());
    keeper.close().await;
    assert!(keeper.current().is_none());
    let closed = client
        .put_ephemeral("/after-close", "x", Expected::Any, &second)
        .await;
    assert!(
        matches!(closed, Err(MetadataError::SessionExpired(_))),
        "{closed:?}"
    );
    cluster.shutdown().await;
}
