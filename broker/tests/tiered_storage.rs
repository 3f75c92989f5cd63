//! Tiered storage at the managed-ledger level, against a real metadata node, real in-process
//! bookies and a real local-directory object store: offload on demand and by policy, the
//! bookie copy deleted after the lag, reads served from the store (also by a new owner), a
//! damaged object refused, a failed offload redone, trimming deleting the objects.
//! The S3 driver is exercised end to end by tests/compat/test_tiered_storage.py (moto's server).

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use magnetar_broker::managed_ledger::{
    ManagedLedger, ManagedLedgerConfig, MlError, OffloadPolicy, OffloadProgress, Retention,
};
use magnetar_broker::position::Position;
use magnetar_broker::tiered::{OffloadConfig, Offloader};
use magnetar_testkit::bookie::Storage;
use magnetar_testkit::wait_until;

const TIMEOUT: Duration = Duration::from_secs(30);
const END: Position = Position::new(i64::MAX, 0);

fn payload(i: u64) -> Bytes {
    Bytes::from(format!("entry-{i:06}-{}", "x".repeat((i % 50) as usize)))
}

fn offloader(dir: &Path) -> Offloader {
    Offloader::open(&OffloadConfig {
        driver: "filesystem".into(),
        path: Some(dir.to_path_buf()),
        prefix: "cluster-a".into(),
        ..OffloadConfig::default()
    })
    .expect("offloader")
    .expect("a driver is set")
}

/// 100 entries per ledger, everything retained, offloaded ledgers deleted from the bookies at
/// once.
fn config(offloader: Offloader) -> ManagedLedgerConfig {
    ManagedLedgerConfig {
        max_entries_per_ledger: 100,
        min_rollover: Duration::ZERO,
        cursor_persist_interval: Duration::from_millis(50),
        retention_time: Some(Duration::MAX),
        retention_size: Some(u64::MAX),
        offloader: Some(offloader),
        offload: OffloadPolicy {
            deletion_lag: Duration::ZERO,
            ..OffloadPolicy::default()
        },
        ..ManagedLedgerConfig::default()
    }
}

async fn append(ml: &ManagedLedger, n: u64) {
    let appends: Vec<_> = (0..n).map(|i| ml.append(payload(i))).collect();
    futures::future::try_join_all(appends)
        .await
        .expect("appends");
}

async fn read_all(ml: &ManagedLedger) -> Result<Vec<(Position, Bytes)>, MlError> {
    let mut out: Vec<(Position, Bytes)> = Vec::new();
    let mut from = Position::new(0, 0);
    loop {
        let batch = ml.read(from, 64).await?;
        let Some((last, _)) = batch.last() else {
            return Ok(out);
        };
        from = Position::new(last.ledger_id, last.entry_id + 1);
        out.extend(batch);
    }
}

fn assert_all(read: &[(Position, Bytes)], n: u64) {
    assert_eq!(read.len() as u64, n, "every entry comes back");
    for (i, (_, data)) in read.iter().enumerate() {
        assert_eq!(data, &payload(i as u64), "entry {i}");
    }
}

/// Files under `dir` (the objects of the store).
fn objects(dir: &Path) -> Vec<String> {
    fn walk(dir: &Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, out);
            } else {
                out.push(path.display().to_string());
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, &mut out);
    out.sort();
    out
}

/// 1. 350 entries make 3 closed ledgers and an open one; an offload up to the end copies the 3
///    closed ones (index + data each under the prefix), status SUCCESS, first unoffloaded
///    entry the open ledger's.
/// 2. A round with deletion lag 0 deletes them from the bookies (opening one now fails).
/// 3. Every entry reads back, now from the store; and again through a new owner with a new
///    offloader (cold index cache), which fences the first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offloaded_ledgers_read_back_after_the_bookies_deleted_them() {
    let storage = Storage::start(2).await;
    let dir = tempfile::tempdir().expect("dir");
    let name = "t/ns/persistent/tiered";
    let ml = ManagedLedger::open(name, storage.ledger_client(), config(offloader(dir.path())))
        .await
        .expect("open");
    append(&ml, 350).await;
    assert_eq!(ml.layout().ledgers().len(), 4);
    ml.offload_until(END).await.expect("offload");
    let status = ml.offload_status();
    assert_eq!(status.progress, OffloadProgress::Success, "{status:?}");
    let open = ml.layout().open_ledger_id();
    assert_eq!(status.first_unoffloaded, Some(Position::new(open, 0)));
    let info = ml.info();
    let closed: Vec<_> = info.ledgers.iter().filter(|l| l.entries > 0).collect();
    assert_eq!(closed.len(), 3);
    assert!(closed.iter().all(|l| l.offloaded()), "{info:?}");
    let files = objects(dir.path());
    assert_eq!(files.len(), 6, "{files:?}");
    assert!(
        files
            .iter()
            .all(|f| f.contains("/cluster-a/t/ns/persistent/tiered/"))
    );
    assert_eq!(
        ml.offloaded_size(),
        closed.iter().map(|l| l.size).sum::<u64>()
    );

    ml.offload_round().await.expect("deletion round");
    let info = ml.info();
    for l in info.ledgers.iter().filter(|l| l.entries > 0) {
        assert!(
            l.offload_context.is_some_and(|c| c.bookkeeper_deleted),
            "{l:?}"
        );
        assert!(
            storage.ledger_client().open(l.ledger_id).await.is_err(),
            "ledger {} is gone from the bookies",
            l.ledger_id
        );
    }
    assert_all(&read_all(&ml).await.expect("read"), 350);

    let second = ManagedLedger::open(name, storage.ledger_client(), config(offloader(dir.path())))
        .await
        .expect("reopen");
    assert_all(
        &read_all(&second).await.expect("read by the new owner"),
        350,
    );
    assert!(ml.is_fenced() || ml.append(payload(0)).await.is_err());
}

/// A flipped byte in an offloaded data object is a read error, never a wrong entry (read by
/// a new owner, whose entry cache is empty).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_object_is_an_error_not_wrong_entries() {
    let storage = Storage::start(2).await;
    let dir = tempfile::tempdir().expect("dir");
    let ml = ManagedLedger::open(
        "t/ns/persistent/damaged",
        storage.ledger_client(),
        config(offloader(dir.path())),
    )
    .await
    .expect("open");
    append(&ml, 150).await;
    ml.offload_until(END).await.expect("offload");
    ml.offload_round().await.expect("deletion round");
    let data = objects(dir.path())
        .into_iter()
        .find(|f| f.ends_with("/data"))
        .expect("a data object");
    let mut bytes = std::fs::read(&data).expect("read object");
    bytes[10] ^= 0x40;
    std::fs::write(&data, bytes).expect("write object");
    // A new owner: nothing in its entry cache, every read goes to the store.
    let ml = ManagedLedger::open(
        "t/ns/persistent/damaged",
        storage.ledger_client(),
        config(offloader(dir.path())),
    )
    .await
    .expect("reopen");
    let first = ml.layout().ledgers()[0].ledger_id;
    match ml.read(Position::new(first, 0), 10).await {
        Err(MlError::Offload(why)) => assert!(why.contains("checksum"), "{why}"),
        other => panic!("expected a checksum error, got {other:?}"),
    }
}

/// 1. The store's directory is replaced by a file: the offload fails, status ERROR with the
///    reason, the ledger's context recorded but not complete, the entries still on the bookies.
/// 2. With the directory back, the offload is redone under a new uid and succeeds; the
///    objects of the first attempt are gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_offload_is_reported_and_redone() {
    let storage = Storage::start(2).await;
    let dir = tempfile::tempdir().expect("dir");
    let root = dir.path().join("store");
    let ml = ManagedLedger::open(
        "t/ns/persistent/retry",
        storage.ledger_client(),
        config(offloader(&root)),
    )
    .await
    .expect("open");
    append(&ml, 150).await;
    let ledger = ml.layout().ledgers()[0].ledger_id as u64;
    std::fs::remove_dir_all(&root).expect("remove store");
    std::fs::write(&root, b"not a directory").expect("file in the way");
    assert!(ml.offload_until(END).await.is_err());
    let status = ml.offload_status();
    assert_eq!(status.progress, OffloadProgress::Error);
    assert!(!status.last_error.is_empty());
    let record = ml.info().ledgers[0];
    let first_uid = record.offload_context.expect("context recorded").uid();
    assert!(!record.offloaded());
    assert_all(&read_all(&ml).await.expect("read from the bookies"), 150);

    std::fs::remove_file(&root).expect("remove file");
    std::fs::create_dir_all(&root).expect("store back");
    ml.offload_until(END).await.expect("offload again");
    assert_eq!(ml.offload_status().progress, OffloadProgress::Success);
    let record = ml.info().ledgers[0];
    assert_eq!(record.ledger_id, ledger);
    let context = record.offload_context.expect("context");
    assert!(context.complete);
    assert_ne!(context.uid(), first_uid, "a new attempt, a new uid");
    let files = objects(&root);
    assert!(
        files
            .iter()
            .all(|f| !f.contains(&format!("{first_uid:032x}"))),
        "{files:?}"
    );
}

/// 1. With the namespace-style policy "offload at 0 bytes", the background task offloads every
///    closed ledger and (lag 0) deletes it from the bookies, without being asked.
/// 2. Once retention no longer keeps them, trimming deletes the ledgers and their objects.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_policy_offloads_in_the_background_and_trimming_deletes_the_objects() {
    let storage = Storage::start(2).await;
    let dir = tempfile::tempdir().expect("dir");
    let ml = ManagedLedger::open(
        "t/ns/persistent/auto",
        storage.ledger_client(),
        config(offloader(dir.path())),
    )
    .await
    .expect("open");
    append(&ml, 250).await;
    assert!(ml.set_offload_policy(OffloadPolicy {
        threshold_bytes: Some(0),
        threshold_age: None,
        deletion_lag: Duration::ZERO,
    }));
    wait_until(
        "closed ledgers offloaded and gone from the bookies",
        TIMEOUT,
        || async {
            let info = ml.info();
            let closed: Vec<_> = info.ledgers.iter().filter(|l| l.entries > 0).collect();
            closed.len() == 2
                && closed
                    .iter()
                    .all(|l| l.offload_context.is_some_and(|c| c.bookkeeper_deleted))
        },
    )
    .await;
    assert_eq!(objects(dir.path()).len(), 4);
    assert_all(&read_all(&ml).await.expect("read"), 250);

    ml.set_retention(Retention::default());
    wait_until(
        "consumed ledgers and their objects deleted",
        TIMEOUT,
        || async { ml.info().ledgers.len() == 1 && objects(dir.path()).is_empty() },
    )
    .await;
}

/// The last ledger of the list is an offloaded one that the bookies dropped (the ledger after it
/// was empty when the topic closed, so it was dropped): the next owner keeps it and reads it
/// from the store instead of taking it for a lost open ledger.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offloaded_last_ledger_survives_a_reopen() {
    let storage = Storage::start(2).await;
    let dir = tempfile::tempdir().expect("dir");
    let name = "t/ns/persistent/last";
    let ml = ManagedLedger::open(name, storage.ledger_client(), config(offloader(dir.path())))
        .await
        .expect("open");
    append(&ml, 150).await;
    ml.roll_over().await.expect("roll over");
    ml.offload_until(END).await.expect("offload");
    ml.offload_round().await.expect("deletion round");
    ml.close().await.expect("close");
    let reopened =
        ManagedLedger::open(name, storage.ledger_client(), config(offloader(dir.path())))
            .await
            .expect("reopen");
    assert_all(&read_all(&reopened).await.expect("read"), 150);
}
