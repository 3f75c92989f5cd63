//! The ledger client against real in-process bookies registered in a real metadata node.

use crate::common;

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use common::{BlackHole, Throttle};
use magnetar_bookie::ledger::{
    LedgerClient, LedgerConfig, LedgerError, LedgerOptions, LedgerState,
};
use magnetar_bookie::registry::{self, BookieInfo};
use magnetar_metadata::MetadataClient;
use magnetar_metadata::testing::{ClusterOptions, LocalCluster};
use magnetar_testkit::bookie::TestBookie;
use magnetar_testkit::wait_for;

struct Bookies {
    _dirs: Vec<tempfile::TempDir>,
    bookies: Vec<Option<TestBookie>>,
    addrs: Vec<String>,
}

impl Bookies {
    async fn start(n: usize, metadata: &MetadataClient) -> Bookies {
        let mut dirs = Vec::new();
        let mut bookies = Vec::new();
        let mut addrs = Vec::new();
        for _ in 0..n {
            let dir = tempfile::tempdir().expect("tempdir");
            let bookie = TestBookie::start(common::config(dir.path()))
                .await
                .register(metadata)
                .await;
            addrs.push(bookie.addr.to_string());
            bookies.push(Some(bookie));
            dirs.push(dir);
        }
        Bookies {
            _dirs: dirs,
            bookies,
            addrs,
        }
    }

    /// Stops a bookie the hard way for its clients: the server goes away mid-stream, its
    /// registration is left to expire.
    async fn kill(&mut self, address: &str) {
        let index = self
            .addrs
            .iter()
            .position(|a| a == address)
            .expect("known bookie");
        if let Some(bookie) = self.bookies[index].take() {
            bookie.kill().await;
        }
    }
}

fn payload(i: u64) -> Bytes {
    Bytes::from(format!("entry-{i:06}-{}", "x".repeat((i % 50) as usize)))
}

async fn setup(bookies: usize) -> (LocalCluster, MetadataClient, Bookies, LedgerClient) {
    let cluster = LocalCluster::start(1, ClusterOptions::default())
        .await
        .expect("metadata");
    let metadata = cluster.client();
    let bookies = Bookies::start(bookies, &metadata).await;
    let ledgers = LedgerClient::new(
        metadata.clone(),
        LedgerOptions {
            add_timeout: Duration::from_secs(2),
            ..Default::default()
        },
    );
    (cluster, metadata, bookies, ledgers)
}

/// 1. E=3, Qw=2, Qa=2 on four bookies; 2000 entries pipelined.
/// 2. After 500 are acknowledged, one bookie of the ensemble stops.
/// 3. Every add completes (an ensemble change brings in the fourth bookie) and every entry reads back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_continue_through_an_ensemble_change() {
    let (cluster, _metadata, mut bookies, ledgers) = setup(4).await;
    let config = LedgerConfig {
        ensemble: 3,
        write_quorum: 2,
        ack_quorum: 2,
    };
    let writer = ledgers
        .create(config, BTreeMap::new())
        .await
        .expect("create");
    let victim = writer.metadata().fragments[0].bookies[1].clone();
    let mut adds = Vec::new();
    for i in 0..500 {
        adds.push(writer.append(payload(i)));
    }
    for (i, add) in adds.drain(..).enumerate() {
        assert_eq!(add.await.expect("acked"), i as u64);
    }
    bookies.kill(&victim).await;
    for i in 500..2000 {
        adds.push(writer.append(payload(i)));
    }
    for (i, add) in adds.into_iter().enumerate() {
        assert_eq!(
            add.await.expect("acked after ensemble change"),
            500 + i as u64
        );
    }
    let meta = writer.metadata();
    assert!(meta.fragments.len() >= 2, "an ensemble change was recorded");
    assert!(
        !meta
            .fragments
            .last()
            .expect("fragment")
            .bookies
            .contains(&victim)
    );
    assert_eq!(writer.close().await.expect("close"), 1999);
    let reader = ledgers.open(writer.id()).await.expect("open");
    assert_eq!(reader.metadata().state, LedgerState::Closed);
    let entries = reader.read(0, 1999).await.expect("read all");
    for (i, entry) in entries.iter().enumerate() {
        assert_eq!(*entry, payload(i as u64));
    }
    cluster.shutdown().await;
}

/// 1. Client A writes 300 acknowledged entries (and leaves the ledger open).
/// 2. Client B recovers the ledger: fences it, closes it.
/// 3. B's closed ledger holds every entry A was acknowledged for; A's next add fails `Fenced`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovery_fences_the_old_writer_and_keeps_acknowledged_entries() {
    let (cluster, metadata, _bookies, ledgers_a) = setup(3).await;
    let ledgers_b = LedgerClient::new(metadata.clone(), LedgerOptions::default());
    let config = LedgerConfig {
        ensemble: 3,
        write_quorum: 3,
        ack_quorum: 2,
    };
    let writer = ledgers_a
        .create(config, BTreeMap::new())
        .await
        .expect("create");
    let adds: Vec<_> = (0..300).map(|i| writer.append(payload(i))).collect();
    for add in adds {
        add.await.expect("acked");
    }
    let recovered = ledgers_b
        .open_with_recovery(writer.id())
        .await
        .expect("recover");
    assert!(
        recovered.last_entry_id() >= 299,
        "every acknowledged entry kept"
    );
    assert_eq!(recovered.metadata().state, LedgerState::Closed);
    let entries = recovered.read(0, 299).await.expect("read");
    assert!(
        entries
            .iter()
            .enumerate()
            .all(|(i, e)| *e == payload(i as u64))
    );
    assert_eq!(
        writer.append(payload(300)).await,
        Err(LedgerError::Fenced(writer.id()))
    );
    assert_eq!(writer.close().await, Err(LedgerError::Fenced(writer.id())));
    // Recovering a closed ledger again changes nothing.
    let again = ledgers_b
        .open_with_recovery(writer.id())
        .await
        .expect("idempotent");
    assert_eq!(again.last_entry_id(), recovered.last_entry_id());
    cluster.shutdown().await;
}

/// Recovery when a bookie of the last ensemble is gone with the writer (a broker and a bookie
/// lost together):
/// 1. E=Qw=Qa=2 on three bookies; A's 100 adds are acknowledged; A stops writing.
/// 2. One bookie of the ensemble dies.
/// 3. B's recovery re-writes the tail past the last-add-confirmed to the third bookie (an
///    ensemble change in the metadata), closes the ledger, and every acknowledged entry reads
///    back; A's next add is `Fenced`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovery_replaces_a_bookie_of_the_tail_that_is_gone() {
    let (cluster, metadata, mut bookies, ledgers_a) = setup(3).await;
    let ledgers_b = LedgerClient::new(
        metadata.clone(),
        LedgerOptions {
            add_timeout: Duration::from_secs(2),
            ..Default::default()
        },
    );
    let config = LedgerConfig {
        ensemble: 2,
        write_quorum: 2,
        ack_quorum: 2,
    };
    let writer = ledgers_a
        .create(config, BTreeMap::new())
        .await
        .expect("create");
    let adds: Vec<_> = (0..100).map(|i| writer.append(payload(i))).collect();
    for add in adds {
        add.await.expect("acked");
    }
    let victim = writer.metadata().fragments[0].bookies[1].clone();
    bookies.kill(&victim).await;

    let recovered = ledgers_b
        .open_with_recovery(writer.id())
        .await
        .expect("recovery with a bookie of the ensemble gone");
    assert!(
        recovered.last_entry_id() >= 99,
        "every acknowledged entry kept"
    );
    let meta = recovered.metadata().clone();
    assert_eq!(meta.state, LedgerState::Closed);
    // The fragment holding the re-written tail (all of the ledger, if no bookie reported a
    // last-add-confirmed) names the replacement instead of the dead bookie.
    let tail = meta.fragments.last().expect("fragments");
    assert!(
        !tail.bookies.contains(&victim) && tail.first_entry <= 99,
        "the re-written tail went to a replacement: {meta:?}"
    );
    let entries = recovered.read(0, 99).await.expect("read");
    assert!(
        entries
            .iter()
            .enumerate()
            .all(|(i, e)| *e == payload(i as u64))
    );
    assert_eq!(
        writer.append(payload(100)).await,
        Err(LedgerError::Fenced(writer.id()))
    );
    cluster.shutdown().await;
}

/// Reads of an open ledger stop at its last-add-confirmed; deletes remove the ledger; bad
/// requests get clear errors.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_deletes_and_errors() {
    let (cluster, _metadata, _bookies, ledgers) = setup(2).await;
    let too_big = LedgerConfig {
        ensemble: 3,
        write_quorum: 2,
        ack_quorum: 2,
    };
    assert!(matches!(
        ledgers.create(too_big, BTreeMap::new()).await,
        Err(LedgerError::NotEnoughBookies {
            needed: 3,
            available: 2
        })
    ));
    let invalid = LedgerConfig {
        ensemble: 1,
        write_quorum: 2,
        ack_quorum: 1,
    };
    assert!(matches!(
        ledgers.create(invalid, BTreeMap::new()).await,
        Err(LedgerError::InvalidConfig(_))
    ));

    let config = LedgerConfig {
        ensemble: 2,
        write_quorum: 2,
        ack_quorum: 2,
    };
    let writer = ledgers
        .create(config, BTreeMap::new())
        .await
        .expect("create");
    for i in 0..10 {
        writer.append(payload(i)).await.expect("acked");
    }
    assert_eq!(
        writer.read(3, 5).await.expect("read own"),
        vec![payload(3), payload(4), payload(5)]
    );
    assert!(matches!(
        writer.read(0, 10).await,
        Err(LedgerError::NoSuchEntry { entry_id: 10, .. })
    ));
    // A second reader sees the acknowledged prefix (LAC piggybacks on later adds, so at least 8).
    let open = ledgers.open(writer.id()).await.expect("open");
    assert!(
        open.last_entry_id() >= 8 && open.last_entry_id() <= 9,
        "lac {}",
        open.last_entry_id()
    );
    writer.close().await.expect("close");
    // Two deletes at once (the offload task and a trim round, say) both succeed.
    let (first, second) = tokio::join!(ledgers.delete(writer.id()), ledgers.delete(writer.id()));
    first.expect("delete");
    second.expect("a concurrent delete of the same ledger");
    assert_eq!(
        ledgers.open(writer.id()).await.err(),
        Some(LedgerError::NoSuchLedger(writer.id()))
    );
    assert!(matches!(
        ledgers.open_with_recovery(987_654).await,
        Err(LedgerError::NoSuchLedger(987_654))
    ));
    cluster.shutdown().await;
}

/// Opening and recovery go on past a wedged bookie (it accepts connections, never answers):
/// 1. E=Qw=3, Qa=2 on four bookies; A's 51 adds are acknowledged; A stops writing.
/// 2. A black hole takes the address of one bookie of the ensemble (still registered).
/// 3. B (1 s timeouts) opens the ledger for reading, then recovers it: fences on the two live
///    bookies, re-writes the tail (the black hole's share goes to the spare) and closes it;
///    every acknowledged entry reads back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovery_completes_with_a_wedged_bookie_in_the_ensemble() {
    let (cluster, metadata, mut bookies, ledgers_a) = setup(4).await;
    let config = LedgerConfig {
        ensemble: 3,
        write_quorum: 3,
        ack_quorum: 2,
    };
    let writer = ledgers_a
        .create(config, BTreeMap::new())
        .await
        .expect("create");
    let adds: Vec<_> = (0..50).map(|i| writer.append(payload(i))).collect();
    for add in adds {
        add.await.expect("acked");
    }
    // Entry 50 carries the last-add-confirmed 49 to the bookies.
    writer.append(payload(50)).await.expect("acked");
    let victim = writer.metadata().fragments[0].bookies[2].clone();
    bookies.kill(&victim).await;
    let hole = wait_for(
        "the bookie's port to free up",
        Duration::from_secs(10),
        || {
            let victim = victim.clone();
            async move { tokio::net::TcpListener::bind(&victim).await.ok() }
        },
    )
    .await;
    drop(hole);
    let hole = BlackHole::bind(&victim).await;

    let ledgers_b = LedgerClient::new(
        metadata.clone(),
        LedgerOptions {
            add_timeout: Duration::from_secs(1),
            read_timeout: Duration::from_secs(1),
            ..Default::default()
        },
    );
    let bound = Duration::from_secs(30);
    let open = tokio::time::timeout(bound, ledgers_b.open(writer.id()))
        .await
        .expect("opening did not hang on the wedged bookie")
        .expect("open");
    assert_eq!(
        open.last_entry_id(),
        49,
        "the last-add-confirmed the live bookies hold"
    );
    let recovered = tokio::time::timeout(bound, ledgers_b.open_with_recovery(writer.id()))
        .await
        .expect("recovery did not hang on the wedged bookie")
        .expect("recover");
    assert!(hole.accepted() > 0, "the black hole was asked");
    assert_eq!(recovered.last_entry_id(), 50);
    assert_eq!(recovered.metadata().state, LedgerState::Closed);
    let tail = recovered.metadata().fragments.last().expect("fragments");
    assert!(
        tail.first_entry == 50 && !tail.bookies.contains(&victim),
        "the re-written entry went to the spare: {:?}",
        recovered.metadata()
    );
    let entries = recovered.read(0, 50).await.expect("read");
    assert!(
        entries
            .iter()
            .enumerate()
            .all(|(i, e)| *e == payload(i as u64))
    );
    cluster.shutdown().await;
}

/// Overload alone does not replace a healthy bookie: an add's timeout counts from when the
/// request reaches the socket, not from when it was queued behind others.
/// 1. One bookie, registered under the address of a proxy that passes it 8 MB/s.
/// 2. E=Qw=Qa=1 (no spare: a replacement would fail the ledger); 640 adds of 60 KiB (about
///    5 s of transfer) appended at once, with an add timeout of 2.5 s.
/// 3. Every add succeeds and the ledger keeps its one fragment.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_link_does_not_make_a_healthy_bookie_look_dead() {
    let cluster = LocalCluster::start(1, ClusterOptions::default())
        .await
        .expect("metadata");
    let metadata = cluster.client();
    let dir = tempfile::tempdir().expect("tempdir");
    let bookie = TestBookie::start(common::config(dir.path())).await;
    let proxy = Throttle::start(bookie.addr, 8_000_000).await;
    let session = metadata
        .create_session(Duration::from_secs(10))
        .await
        .expect("session");
    let info = BookieInfo {
        address: proxy.addr.to_string(),
        read_only: false,
        free_disk_bytes: 1 << 30,
        total_disk_bytes: 1 << 30,
    };
    registry::register(&metadata, &session, &info)
        .await
        .expect("register");
    let ledgers = LedgerClient::new(
        metadata.clone(),
        LedgerOptions {
            add_timeout: Duration::from_millis(2500),
            ..Default::default()
        },
    );
    let config = LedgerConfig {
        ensemble: 1,
        write_quorum: 1,
        ack_quorum: 1,
    };
    let writer = ledgers
        .create(config, BTreeMap::new())
        .await
        .expect("create");
    let entry = |i: u64| Bytes::from(vec![i as u8; 60 * 1024]);
    let adds: Vec<_> = (0..640).map(|i| writer.append(entry(i))).collect();
    for (i, add) in adds.into_iter().enumerate() {
        assert_eq!(add.await.expect("acknowledged"), i as u64);
    }
    assert_eq!(writer.metadata().fragments.len(), 1, "no ensemble change");
    assert_eq!(writer.close().await.expect("close"), 639);
    drop(proxy);
    bookie.stop().await;
    cluster.shutdown().await;
}

/// 1. Two clients (two brokers) create ledgers in turn: every id is above every id before it,
///    whichever client took it (managed ledgers and their cursors rely on it when a topic moves).
/// 2. A prepared ledger is not written until its `put` is committed in a transaction of the
///    caller's; then it takes entries and closes like any other, at its first version.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prepared_ledgers_are_written_by_the_callers_transaction() {
    use magnetar_bookie::ledger::metadata::{self, CREATED_VERSION};
    let (cluster, metadata_client, _bookies, first) = setup(1).await;
    let second = LedgerClient::new(metadata_client.clone(), LedgerOptions::default());
    let config = LedgerConfig {
        ensemble: 1,
        write_quorum: 1,
        ack_quorum: 1,
    };
    let mut writers = Vec::new();
    for client in [&first, &second, &first, &second] {
        writers.push(
            client
                .create(config, BTreeMap::new())
                .await
                .expect("create"),
        );
    }
    let ids: Vec<u64> = writers.iter().map(|w| w.id()).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");

    let new = first
        .prepare(config, BTreeMap::new())
        .await
        .expect("prepare");
    assert!(new.id > ids[3]);
    assert!(
        metadata_client
            .get(&metadata::key(new.id))
            .await
            .expect("get")
            .is_none(),
        "nothing written before the caller's transaction"
    );
    let versions = metadata_client
        .txn(new.put(magnetar_metadata::Txn::new()))
        .await
        .expect("txn");
    assert_eq!(versions, vec![CREATED_VERSION]);
    let writer = first.writer(new, CREATED_VERSION);
    assert_eq!(writer.append(payload(0)).await.expect("add"), 0);
    assert_eq!(
        writer.close().await.expect("close"),
        0,
        "closed (its metadata at the version the transaction gave) after entry 0"
    );
    for w in writers {
        w.close().await.expect("close");
    }
    cluster.shutdown().await;
}
