//! Managed cursors against a real metadata node and real bookies: persistence across owners,
//! bounded (truncated) snapshots, trimming of consumed ledgers, topic deletion. The test holds
//! each cursor's state, as a subscription does, and hands it to the managed cursor to write.

use std::time::Duration;

use bytes::Bytes;
use magnetar_bookie::ledger::LedgerError;
use magnetar_broker::managed_ledger::{
    InitialPosition, ManagedLedger, ManagedLedgerConfig, MlError,
};
use magnetar_broker::position::Position;
use magnetar_testkit::bookie::Storage;
use magnetar_testkit::wait_until;

const TIMEOUT: Duration = Duration::from_secs(30);

fn config(max_entries: u64) -> ManagedLedgerConfig {
    ManagedLedgerConfig {
        max_entries_per_ledger: max_entries,
        min_rollover: Duration::ZERO,
        cursor_persist_interval: Duration::from_millis(50),
        ..ManagedLedgerConfig::default()
    }
}

async fn append_n(ml: &ManagedLedger, n: u64) -> Vec<Position> {
    let appends: Vec<_> = (0..n)
        .map(|i| ml.append(Bytes::from(format!("entry-{i}"))))
        .collect();
    futures::future::try_join_all(appends)
        .await
        .expect("appends")
}

/// 1. Cursor `sub` from Earliest over 100 entries: cumulative ack to 9, individual acks of
///    20..=30 and 50, batch-index acks of indexes 0 and 2 of entry 60; persisted.
/// 2. Entry 70 is acked without a write, then the broker "crashes" (dropped, not closed).
/// 3. A new owner finds `sub` where the write left it (70 not kept), not at its initial
///    position; a new cursor from Latest starts at the end; a second open of a held cursor is
///    refused.
/// 4. An ack released unwritten before a clean close survives the next reopen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cursor_state_survives_reopen() {
    let storage = Storage::start(2).await;
    let name = "t/ns/persistent/cursor-reopen";
    let a = ManagedLedger::open(name, storage.ledger_client(), config(50_000))
        .await
        .expect("open");
    let (managed, mut cursor) = a
        .open_cursor("sub", InitialPosition::Earliest)
        .await
        .expect("cursor");
    let p = append_n(&a, 100).await;
    let layout = a.layout();
    assert_eq!(cursor.backlog(&layout), 100);
    cursor
        .ack_cumulative(&layout, p[9], None)
        .expect("cumulative");
    for position in &p[20..=30] {
        cursor.ack(&layout, *position).expect("ack");
    }
    cursor.ack(&layout, p[50]).expect("ack");
    let unacked = ((1i64 << 10) - 1) & !0b101;
    cursor
        .ack_batch_indexes(&layout, p[60], &[unacked])
        .expect("batch ack");
    managed.persist(&cursor).await.expect("persist");
    assert_eq!(managed.stats().persisted_mark_delete, p[9]);
    cursor.ack(&layout, p[70]).expect("ack");
    drop(managed);
    drop(a);

    let b = ManagedLedger::open(name, storage.ledger_client(), config(50_000))
        .await
        .expect("reopen");
    assert_eq!(b.cursor_names(), vec!["sub".to_string()]);
    let idle = b.cursor("sub").expect("cursor").stats().idle;
    assert_eq!(idle.map(|i| i.mark_delete), Some(p[9]));
    let (managed, mut cursor) = b
        .open_cursor("sub", InitialPosition::Latest)
        .await
        .expect("cursor");
    assert_eq!(
        b.open_cursor("sub", InitialPosition::Latest).await.err(),
        Some(MlError::CursorInUse("sub".into()))
    );
    let layout = b.layout();
    assert_eq!(cursor.mark_delete(), p[9]);
    assert!(!cursor.is_acked(p[10], None));
    assert!((20..=30).all(|e| cursor.is_acked(p[e], None)));
    assert!(!cursor.is_acked(p[31], None) && cursor.is_acked(p[50], None));
    assert!(cursor.is_acked(p[60], Some(0)) && cursor.is_acked(p[60], Some(2)));
    assert!(!cursor.is_acked(p[60], Some(1)) && !cursor.is_acked(p[60], None));
    assert!(!cursor.is_acked(p[70], None), "never written");
    assert_eq!(cursor.backlog(&layout), 78);
    assert_eq!(cursor.next_unacked(&layout), p[10]);
    let (_late, latest) = b
        .open_cursor("late", InitialPosition::Latest)
        .await
        .expect("cursor");
    assert_eq!(latest.mark_delete(), p[99]);
    assert_eq!(latest.backlog(&layout), 0);
    cursor.ack(&layout, p[80]).expect("ack");
    managed.release(cursor, true);
    b.close().await.expect("close");

    let c = ManagedLedger::open(name, storage.ledger_client(), config(50_000))
        .await
        .expect("reopen");
    let (_, cursor) = c
        .open_cursor("sub", InitialPosition::Earliest)
        .await
        .expect("cursor");
    assert!(cursor.is_acked(p[80], None));
    assert_eq!(
        c.cursor_names(),
        vec!["late".to_string(), "sub".to_string()]
    );
    c.close().await.expect("close");
    storage.shutdown().await;
}

/// 1. A state released with unwritten changes is written by the background task, unasked.
/// 2. With at most 5 ranges persisted, 15 scattered acks are written truncated: counted in
///    stats; after a restart the 5 lowest ranges are acknowledged and the others redelivered,
///    none skipped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn background_persistence_and_truncated_snapshots() {
    let storage = Storage::start(2).await;
    let name = "t/ns/persistent/cursor-bounded";
    let config = ManagedLedgerConfig {
        max_unacked_ranges_persisted: 5,
        ..config(50_000)
    };
    let a = ManagedLedger::open(name, storage.ledger_client(), config.clone())
        .await
        .expect("open");
    let (managed, mut cursor) = a
        .open_cursor("sub", InitialPosition::Earliest)
        .await
        .expect("cursor");
    let p = append_n(&a, 40).await;
    let layout = a.layout();
    cursor.ack(&layout, p[0]).expect("ack");
    managed.release(cursor, true);
    wait_until("background persistence", TIMEOUT, || async {
        managed.stats().persisted_mark_delete == p[0]
    })
    .await;
    let (managed, mut cursor) = a
        .open_cursor("sub", InitialPosition::Earliest)
        .await
        .expect("cursor");
    for e in (2..32).step_by(2) {
        cursor.ack(&layout, p[e]).expect("ack");
    }
    managed.persist(&cursor).await.expect("persist");
    assert_eq!(cursor.acked_ranges().len(), 15);
    let stats = managed.stats();
    assert!(stats.truncated_persists >= 1, "{stats:?}");
    assert_eq!(stats.dropped_ranges, 10);
    managed.release(cursor, false);
    a.close().await.expect("close");

    let b = ManagedLedger::open(name, storage.ledger_client(), config)
        .await
        .expect("reopen");
    let (_, cursor) = b
        .open_cursor("sub", InitialPosition::Earliest)
        .await
        .expect("cursor");
    for (e, position) in p.iter().enumerate().skip(1) {
        let acked = cursor.is_acked(*position, None);
        let expected = e % 2 == 0 && e <= 10;
        assert_eq!(acked, expected, "entry {e}");
    }
    b.close().await.expect("close");
    storage.shutdown().await;
}

/// Ledgers roll over long before the minimum age once the consumers keep up:
/// 1. 10 entries per ledger, a minimum age of an hour, `consumed_rollover_floor` 100 ms; a
///    cursor from Earliest. 10 entries fill the first ledger, which rolls over (nothing before
///    it to consume); 15 more go to the second, which stays open past its size while the
///    cursor has not consumed the first.
/// 2. The cursor consumes everything: the second ledger rolls over, both are trimmed.
/// 3. 5 entries in the third ledger, not full but over 1/64 of the size limit, consumed: once
///    idle it rolls over and goes too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumed_ledgers_roll_over_before_the_minimum_age_and_go() {
    let storage = Storage::start(2).await;
    let config = ManagedLedgerConfig {
        max_entries_per_ledger: 10,
        // Entries are 7-8 bytes: the idle rule needs 1/64 of this (16 bytes).
        max_size_per_ledger: 1024,
        min_rollover: Duration::from_secs(3600),
        consumed_rollover_floor: Duration::from_millis(100),
        cursor_persist_interval: Duration::from_millis(50),
        ..ManagedLedgerConfig::default()
    };
    let ml = ManagedLedger::open(
        "t/ns/persistent/consumed-rollover",
        storage.ledger_client(),
        config,
    )
    .await
    .expect("open");
    let (managed, mut cursor) = ml
        .open_cursor("sub", InitialPosition::Earliest)
        .await
        .expect("cursor");
    let mut p = append_n(&ml, 10).await;
    wait_until("the first ledger rolls over", TIMEOUT, || async {
        ml.layout().ledgers().len() == 2
    })
    .await;
    p.extend(append_n(&ml, 15).await);
    assert_eq!(ml.entries(), 25);
    cursor
        .ack_cumulative(&ml.layout(), p[24], None)
        .expect("ack");
    managed.persist(&cursor).await.expect("persist");
    wait_until("every consumed ledger trimmed", TIMEOUT, || async {
        let layout = ml.layout();
        layout.ledgers().len() == 1 && ml.entries() == 0
    })
    .await;
    let ids: Vec<i64> = ml.layout().ledgers().iter().map(|l| l.ledger_id).collect();
    assert!(ids[0] > p[24].ledger_id, "{ids:?} {:?}", p[24]);
    assert_eq!(
        p[10].ledger_id, p[24].ledger_id,
        "the second ledger held 15 entries"
    );

    let q = append_n(&ml, 5).await;
    assert_eq!(q[0].ledger_id, ids[0]);
    cursor
        .ack_cumulative(&ml.layout(), q[4], None)
        .expect("ack");
    managed.persist(&cursor).await.expect("persist");
    wait_until("the idle consumed ledger trimmed", TIMEOUT, || async {
        let layout = ml.layout();
        layout.ledgers().len() == 1 && layout.ledgers()[0].ledger_id > ids[0]
    })
    .await;
    assert_eq!(ml.entries(), 0);
    assert_eq!(cursor.backlog(&ml.layout()), 0);
}

/// 1. Ten entries per ledger, 35 entries (four ledgers), cursor `sub` from Earliest.
/// 2. A cumulative ack through the second ledger: the first two are deleted from the list and
///    from the bookies by the background task.
/// 3. Deleting the cursor leaves no reader: every ledger but the open one goes.
/// 4. With infinite retention nothing consumed is deleted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trimming_deletes_consumed_ledgers() {
    let storage = Storage::start(2).await;
    let ledgers = storage.ledger_client();
    let ml = ManagedLedger::open("t/ns/persistent/trim", ledgers.clone(), config(10))
        .await
        .expect("open");
    let (managed, mut cursor) = ml
        .open_cursor("sub", InitialPosition::Earliest)
        .await
        .expect("cursor");
    let p = append_n(&ml, 35).await;
    let ids: Vec<i64> = ml.layout().ledgers().iter().map(|l| l.ledger_id).collect();
    assert_eq!(ids.len(), 4);
    assert_eq!(
        ml.trim().await.expect("trim"),
        Vec::<u64>::new(),
        "nothing consumed yet"
    );

    cursor
        .ack_cumulative(&ml.layout(), p[19], None)
        .expect("ack");
    managed.persist(&cursor).await.expect("persist");
    wait_until("two ledgers trimmed", TIMEOUT, || async {
        ml.layout().ledgers()[0].ledger_id == ids[2]
    })
    .await;
    assert_eq!(ml.info().ledgers.len(), 2);
    assert_eq!(ml.entries(), 15);
    assert_eq!(cursor.backlog(&ml.layout()), 15);
    for id in &ids[..2] {
        // The list changes first, then the ledgers are deleted from the bookies.
        wait_until("ledger deletion", TIMEOUT, || async {
            matches!(
                ledgers.open(*id as u64).await,
                Err(LedgerError::NoSuchLedger(_))
            )
        })
        .await;
    }
    let rest = ml.read(Position::new(0, 0), 100).await.expect("read");
    assert_eq!(rest.first().map(|e| e.0), Some(p[20]));
    assert_eq!(rest.len(), 15);

    ml.delete_cursor("sub").await.expect("delete cursor");
    wait_until("all but the open ledger trimmed", TIMEOUT, || async {
        ml.layout().ledgers().len() == 1
    })
    .await;
    assert_eq!(ml.layout().open_ledger_id(), ids[3]);
    ml.close().await.expect("close");

    let keep = ManagedLedgerConfig {
        retention_time: Some(Duration::MAX),
        retention_size: Some(u64::MAX),
        ..config(10)
    };
    let kept = ManagedLedger::open("t/ns/persistent/retained", ledgers, keep)
        .await
        .expect("open");
    append_n(&kept, 25).await;
    assert_eq!(kept.trim().await.expect("trim"), Vec::<u64>::new());
    assert_eq!(kept.entries(), 25);
    kept.close().await.expect("close");
    storage.shutdown().await;
}

/// 1. A topic with entries in two ledgers and two cursors is deleted.
/// 2. Its ledger list, its cursors and its ledgers are gone; opening the name again starts empty.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_topic_removes_ledgers_cursors_and_metadata() {
    let storage = Storage::start(2).await;
    let ledgers = storage.ledger_client();
    let name = "t/ns/persistent/deleted";
    let ml = ManagedLedger::open(name, ledgers.clone(), config(10))
        .await
        .expect("open");
    let (held, state) = ml
        .open_cursor("a", InitialPosition::Earliest)
        .await
        .expect("cursor");
    ml.open_cursor("b/with/slashes", InitialPosition::Latest)
        .await
        .expect("cursor");
    append_n(&ml, 15).await;
    let ids: Vec<i64> = ml.layout().ledgers().iter().map(|l| l.ledger_id).collect();
    ml.delete().await.expect("delete");
    // A holder that has not let go yet writes nothing more (a late write would leave a cursor
    // key behind for the topic's next incarnation).
    assert_eq!(held.persist(&state).await, Err(MlError::CursorClosed));
    let key = format!("/managed-ledgers/{name}");
    assert!(storage.metadata.get(&key).await.expect("get").is_none());
    assert!(
        storage
            .metadata
            .list(&format!("{key}/"))
            .await
            .expect("list")
            .is_empty()
    );
    for id in ids {
        assert!(matches!(
            ledgers.open(id as u64).await,
            Err(LedgerError::NoSuchLedger(_))
        ));
    }
    let again = ManagedLedger::open(name, ledgers.clone(), config(10))
        .await
        .expect("open again");
    assert_eq!(again.entries(), 0);
    assert!(again.cursor_names().is_empty());
    again.close().await.expect("close");
    // Opened again (the list exists now, so its cursors are listed): still none.
    let third = ManagedLedger::open(name, ledgers.clone(), config(10))
        .await
        .expect("open a third time");
    assert!(third.cursor_names().is_empty());
    third.close().await.expect("close");
    storage.shutdown().await;
}
