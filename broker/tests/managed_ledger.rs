//! Managed ledgers against a real metadata node and real in-process bookies: appends and reads
//! across rollovers, ownership changes (fencing), write failures, the entry cache.
//! Cursor persistence and trimming are in `managed_ledger_cursors.rs`.

use std::time::Duration;

use bytes::Bytes;
use magnetar_broker::managed_ledger::{
    InitialPosition, ManagedLedger, ManagedLedgerConfig, MlError,
};
use magnetar_broker::position::Position;
use magnetar_testkit::bookie::Storage;
use magnetar_testkit::wait_until;

const TIMEOUT: Duration = Duration::from_secs(30);

fn payload(i: u64) -> Bytes {
    Bytes::from(format!("message-{i:06}-{}", "p".repeat((i % 40) as usize)))
}

/// Small ledgers and infinite retention: these topics have no cursors, and without retention
/// every ledger but the open one would count as consumed and be trimmed (as in Pulsar).
fn small_ledgers(max_entries: u64) -> ManagedLedgerConfig {
    ManagedLedgerConfig {
        max_entries_per_ledger: max_entries,
        min_rollover: Duration::ZERO,
        cursor_persist_interval: Duration::from_millis(50),
        retention_time: Some(Duration::MAX),
        retention_size: Some(u64::MAX),
        ..ManagedLedgerConfig::default()
    }
}

async fn read_all(ml: &ManagedLedger) -> Vec<(Position, Bytes)> {
    let mut out: Vec<(Position, Bytes)> = Vec::new();
    let mut from = Position::new(0, 0);
    loop {
        let batch = ml.read(from, 37).await.expect("read");
        let Some((last, _)) = batch.last() else {
            return out;
        };
        from = Position::new(last.ledger_id, last.entry_id + 1);
        out.extend(batch);
    }
}

/// 1. Max 100 entries per ledger, no minimum age; 350 appends pipelined.
/// 2. Positions come back in call order, spread over 4 ledgers, the last one confirmed.
/// 3. Reading from the start in batches returns every entry, in order, with its payload;
///    `read_positions` picks out single entries; a read past the end is empty.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_and_reads_back_across_rollovers() {
    let storage = Storage::start(2).await;
    let ml = ManagedLedger::open(
        "t/ns/persistent/rollover",
        storage.ledger_client(),
        small_ledgers(100),
    )
    .await
    .expect("open");
    let mut watch = ml.watch_appends();
    let appends: Vec<_> = (0..350).map(|i| ml.append(payload(i))).collect();
    let positions: Vec<Position> = futures::future::try_join_all(appends)
        .await
        .expect("appends");
    assert!(
        positions.windows(2).all(|w| w[0] < w[1]),
        "positions in call order"
    );
    let layout = ml.layout();
    assert_eq!(layout.ledgers().len(), 4, "{layout:?}");
    assert!(layout.ledgers()[..3].iter().all(|l| l.entries == 100));
    assert_eq!(ml.entries(), 350);
    assert_eq!(ml.last_confirmed(), positions.last().copied());
    watch
        .wait_for(|last| *last == positions.last().copied())
        .await
        .expect("watch");

    let all = read_all(&ml).await;
    assert_eq!(all.len(), 350);
    for (i, (position, data)) in all.iter().enumerate() {
        assert_eq!(*position, positions[i]);
        assert_eq!(*data, payload(i as u64));
    }
    let picked = ml
        .read_positions(&[
            positions[5],
            positions[150],
            positions[151],
            Position::new(999_999, 0),
        ])
        .await
        .expect("read positions");
    assert_eq!(
        picked.iter().map(|p| p.0).collect::<Vec<_>>(),
        vec![positions[5], positions[150], positions[151]]
    );
    assert_eq!(picked[1].1, payload(150));
    let end = ml.layout().end_position();
    assert!(ml.read(end, 10).await.expect("read at end").is_empty());
    ml.close().await.expect("close");
    assert_eq!(ml.append(payload(0)).await, Err(MlError::Closed));
    storage.shutdown().await;
}

/// A close records only the sealed ledger's own metadata (one metadata write per topic, what a
/// shutdown of many topics waits on); the next owner finds the ledger's entries, bytes and
/// close time there:
/// 1. 150 entries in two ledgers (the second one open); close.
/// 2. Reopened: both ledgers with their entry counts and sizes, the second one's timestamp its
///    close time (not the reopen's); every entry reads back; a new ledger is open after them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reopen_finds_the_sealed_ledger_from_its_own_metadata() {
    let storage = Storage::start(2).await;
    let name = "t/ns/persistent/sealed";
    let ml = ManagedLedger::open(name, storage.ledger_client(), small_ledgers(100))
        .await
        .expect("open");
    for i in 0..150 {
        ml.append(payload(i)).await.expect("append");
    }
    let size: u64 = (0..150).map(|i| payload(i).len() as u64).sum();
    assert_eq!(ml.size_bytes(), size);
    let before_close = now_ms();
    ml.close().await.expect("close");
    let after_close = now_ms();
    // The clock moves on, so that a timestamp taken at the reopen would fall outside the
    // close's window.
    wait_until("the clock to move on", TIMEOUT, || async {
        now_ms() > after_close + 20
    })
    .await;

    let reopened = ManagedLedger::open(name, storage.ledger_client(), small_ledgers(100))
        .await
        .expect("reopen");
    let after_reopen = now_ms();
    let info = reopened.info();
    let sealed: Vec<_> = info.ledgers.iter().filter(|l| l.entries > 0).collect();
    assert_eq!(
        sealed.iter().map(|l| l.entries).collect::<Vec<_>>(),
        vec![100, 50],
        "{info:?}"
    );
    assert_eq!(sealed.iter().map(|l| l.size).sum::<u64>(), size, "{info:?}");
    assert_eq!(reopened.size_bytes(), size);
    let closed_at = sealed[1].timestamp;
    assert!(
        (before_close..=after_close).contains(&closed_at),
        "close time {closed_at} not in {before_close}..={after_close} (reopened at {after_reopen})"
    );
    assert_eq!(reopened.entries(), 150);
    let all = read_all(&reopened).await;
    assert_eq!(all.len(), 150);
    for (i, (_, data)) in all.iter().enumerate() {
        assert_eq!(*data, payload(i as u64), "entry {i}");
    }
    assert_eq!(
        info.ledgers.len(),
        3,
        "a new ledger after the sealed ones: {info:?}"
    );
    reopened.close().await.expect("close");
    storage.shutdown().await;
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// 1. A 4 KiB cache; 200 entries of ~1 KiB appended (most evicted), in two ledgers.
/// 2. Reading them all serves the old ones from bookies (closed ledger and open ledger alike),
///    the recent ones from the cache, with the right payloads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catch_up_reads_come_from_bookies_after_eviction() {
    let storage = Storage::start(2).await;
    let config = ManagedLedgerConfig {
        cache_bytes: 4096,
        ..small_ledgers(120)
    };
    let ml = ManagedLedger::open("t/ns/persistent/catch-up", storage.ledger_client(), config)
        .await
        .expect("open");
    let big = |i: u64| Bytes::from(vec![(i % 251) as u8; 1000 + i as usize]);
    let appends: Vec<_> = (0..200).map(|i| ml.append(big(i))).collect();
    futures::future::try_join_all(appends)
        .await
        .expect("appends");
    let stats = ml.stats();
    assert!(
        stats.cache_bytes <= 4096 && stats.cache_entries < 5,
        "{stats:?}"
    );
    let all = read_all(&ml).await;
    assert_eq!(all.len(), 200);
    for (i, (_, data)) in all.iter().enumerate() {
        assert_eq!(*data, big(i as u64));
    }
    let stats = ml.stats();
    assert!(stats.cache_misses >= 195, "{stats:?}");
    assert!(stats.cache_hits >= 1, "{stats:?}");
    ml.close().await.expect("close");
    storage.shutdown().await;
}

/// 1. Broker A opens a topic and writes 300 acknowledged entries, then 300 more pipelined.
/// 2. Broker B (its own ledger client) opens the same topic while A's appends are in flight.
/// 3. A's cursor can no longer be persisted (`Fenced`).
/// 4. Every entry A was acknowledged for is readable from B with its payload, B holds a prefix
///    of A's appends in order; A's appends that failed failed with `Fenced`, and A's next
///    append fails `Fenced`.
/// 5. B appends into a new ledger after A's; B reopened later sees everything again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reopening_fences_the_previous_owner_and_keeps_acknowledged_entries() {
    let storage = Storage::start(3).await;
    let name = "t/ns/persistent/fenced";
    let a = ManagedLedger::open(name, storage.ledger_client(), small_ledgers(50_000))
        .await
        .expect("open A");
    let (a_cursor, mut a_state) = a
        .open_cursor("sub", InitialPosition::Earliest)
        .await
        .expect("cursor");
    let first: Vec<_> = (0..300).map(|i| a.append(payload(i))).collect();
    let mut acked: Vec<(Position, u64)> = futures::future::try_join_all(first)
        .await
        .expect("appends")
        .into_iter()
        .zip(0..)
        .collect();
    let inflight: Vec<_> = (300..600).map(|i| a.append(payload(i))).collect();
    let in_flight = tokio::spawn(futures::future::join_all(inflight));

    let b = ManagedLedger::open(name, storage.ledger_client(), small_ledgers(50_000))
        .await
        .expect("open B");
    for (i, result) in (300..).zip(in_flight.await.expect("join")) {
        match result {
            Ok(position) => acked.push((position, i)),
            Err(e) => assert_eq!(e, MlError::Fenced),
        }
    }
    assert_eq!(a.append(payload(9999)).await, Err(MlError::Fenced));
    // A's cursor writes are refused too: they would overwrite B's state.
    let initial = a_state.mark_delete();
    a_state.ack(&a.layout(), acked[0].0).expect("in-memory ack");
    assert_eq!(a_cursor.persist(&a_state).await, Err(MlError::Fenced));
    let b_cursor = b.cursor("sub").expect("B loaded the cursor").stats();
    assert_eq!(b_cursor.persisted_mark_delete, initial);
    assert_eq!(b_cursor.idle.map(|i| i.acked_ranges), Some(0));
    let seen = read_all(&b).await;
    let by_position: std::collections::BTreeMap<Position, Bytes> = seen.iter().cloned().collect();
    for (position, i) in &acked {
        assert_eq!(
            by_position.get(position),
            Some(&payload(*i)),
            "acknowledged entry {i} at {position}"
        );
    }
    // Recovery may also keep entries whose append failed once fenced (they had reached the
    // bookies): what B sees is a prefix of A's appends in call order, at least the acknowledged.
    assert!(seen.len() >= acked.len());
    for (i, (_, data)) in seen.iter().enumerate() {
        assert_eq!(*data, payload(i as u64), "entry {i} in A's order");
    }

    let position = b.append(payload(7)).await.expect("B appends");
    assert!(position.ledger_id > acked.iter().map(|(p, _)| p.ledger_id).max().unwrap_or(0));
    b.close().await.expect("close B");
    let c = ManagedLedger::open(name, storage.ledger_client(), small_ledgers(50_000))
        .await
        .expect("open C");
    assert_eq!(c.entries(), seen.len() as u64 + 1);
    assert_eq!(
        c.read_positions(&[position]).await.expect("read")[0].1,
        payload(7)
    );
    c.close().await.expect("close C");
    let _ = a.close().await;
    storage.shutdown().await;
}

/// The metadata-level fence: a managed ledger opened under an ownership guard (the bundle's
/// ephemeral ownership key and the session holding it) writes its metadata only while that
/// session still holds the key.
/// 1. Opening under a guard whose session does not hold the key is refused (`Fenced`), and
///    leaves no ledger behind.
/// 2. A opens under a held key, appends 20 entries, acknowledges 5 and persists the cursor.
/// 3. The session ends (as when a broker's lease expires while it still thinks it serves): A's
///    ledger-list update (a rollover) is refused and fences A; appends and cursor writes after
///    it are refused too, and so is deleting the topic.
/// 4. B opens under its own session's key: all 20 entries are there, the cursor is where A last
///    persisted it while it still owned the topic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lapsed_ownership_record_fences_every_metadata_write() {
    use magnetar_broker::managed_ledger::OwnershipGuard;
    use magnetar_metadata::Expected;

    let storage = Storage::start(2).await;
    let metadata = storage.ledger_client().metadata().clone();
    let key = "/namespace/t/ns/0x00000000_0xffffffff";
    let guarded = |session: u64| ManagedLedgerConfig {
        ownership: Some(OwnershipGuard {
            key: key.to_string(),
            session,
        }),
        ..small_ledgers(50_000)
    };
    let name = "t/ns/persistent/ownership";
    let first = metadata
        .create_session(Duration::from_secs(30))
        .await
        .expect("session");
    assert_eq!(
        ManagedLedger::open(name, storage.ledger_client(), guarded(first.id()))
            .await
            .err(),
        Some(MlError::Fenced),
        "opened without holding the ownership key"
    );
    // Its new ledger's metadata was to be written in the refused transaction: none is left.
    assert!(
        metadata.list("/ledgers/").await.expect("list").is_empty(),
        "a refused open leaves no ledger behind"
    );
    metadata
        .put_ephemeral(key, b"a".to_vec(), Expected::Absent, &first)
        .await
        .expect("claim");
    let a = ManagedLedger::open(name, storage.ledger_client(), guarded(first.id()))
        .await
        .expect("open A");
    let (cursor, mut state) = a
        .open_cursor("sub", InitialPosition::Earliest)
        .await
        .expect("cursor");
    let appends: Vec<_> = (0..20).map(|i| a.append(payload(i))).collect();
    let positions = futures::future::try_join_all(appends)
        .await
        .expect("appends");
    for p in &positions[..5] {
        state.ack(&a.layout(), *p).expect("ack");
    }
    cursor
        .persist(&state)
        .await
        .expect("cursor persisted while owned");

    first.close().await.expect("session closed");
    wait_until("the ownership key to go", TIMEOUT, || {
        let metadata = metadata.clone();
        async move { metadata.get(key).await.ok().flatten().is_none() }
    })
    .await;
    assert_eq!(a.roll_over().await, Err(MlError::Fenced));
    assert_eq!(a.append(payload(99)).await, Err(MlError::Fenced));
    state
        .ack(&a.layout(), positions[10])
        .expect("in-memory ack");
    assert_eq!(cursor.persist(&state).await, Err(MlError::Fenced));
    assert_eq!(a.delete().await, Err(MlError::Fenced));

    let second = metadata
        .create_session(Duration::from_secs(30))
        .await
        .expect("session");
    metadata
        .put_ephemeral(key, b"b".to_vec(), Expected::Absent, &second)
        .await
        .expect("claim");
    let b = ManagedLedger::open(name, storage.ledger_client(), guarded(second.id()))
        .await
        .expect("open B");
    let seen = read_all(&b).await;
    assert_eq!(seen.len(), 20);
    for ((position, data), (expected, i)) in seen.iter().zip(positions.iter().zip(0..)) {
        assert_eq!((position, data), (expected, &payload(i)));
    }
    let (_, b_state) = b
        .open_cursor("sub", InitialPosition::Earliest)
        .await
        .expect("B loaded the cursor");
    assert!(b_state.is_acked(positions[4], None));
    assert!(!b_state.is_acked(positions[10], None));
    b.close().await.expect("close B");
    second.close().await.expect("close");
    storage.shutdown().await;
}

/// 1. E=Qw=Qa=2 on two bookies; 50 entries acknowledged.
/// 2. One bookie stops, 50 more appends are issued: the ledger write fails (no bookie to replace
///    it), the managed ledger retries creating a ledger; a new bookie joins.
/// 3. Every append of the second half completes, in call order, in a new ledger; all 100 read
///    back, also after a reopen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_failure_rolls_over_without_losing_or_reordering_appends() {
    let mut storage = Storage::start(2).await;
    let name = "t/ns/persistent/write-failure";
    let ml = ManagedLedger::open(name, storage.ledger_client(), small_ledgers(50_000))
        .await
        .expect("open");
    let first: Vec<_> = (0..50).map(|i| ml.append(payload(i))).collect();
    let before = futures::future::try_join_all(first).await.expect("appends");
    storage.stop_bookie(0).await;
    let second: Vec<_> = (50..100).map(|i| ml.append(payload(i))).collect();
    let second = tokio::spawn(futures::future::try_join_all(second));
    wait_until("the write failure", TIMEOUT, || async {
        ml.stats().write_failures >= 1
    })
    .await;
    storage.add_bookie().await;
    let after = second
        .await
        .expect("join")
        .expect("appends after the failure");
    assert!(after.windows(2).all(|w| w[0] < w[1]));
    let broken = before[0].ledger_id;
    assert!(after.iter().all(|p| p.ledger_id > broken), "{after:?}");
    let all = read_all(&ml).await;
    assert_eq!(all.len(), 100);
    for (i, (_, data)) in all.iter().enumerate() {
        assert_eq!(*data, payload(i as u64));
    }
    ml.close().await.expect("close");
    let reopened = ManagedLedger::open(name, storage.ledger_client(), small_ledgers(50_000))
        .await
        .expect("reopen");
    assert_eq!(read_all(&reopened).await, all);
    reopened.close().await.expect("close");
    storage.shutdown().await;
}

/// 1. Max ledger age 300 ms, no minimum: a ledger with entries rolls over on its own.
/// 2. An empty ledger does not; after closing, the empty current ledger leaves the list.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ledgers_roll_over_by_age_and_empty_ones_are_dropped() {
    let storage = Storage::start(2).await;
    let config = ManagedLedgerConfig {
        max_rollover: Duration::from_millis(300),
        ..small_ledgers(50_000)
    };
    let ml = ManagedLedger::open("t/ns/persistent/aged", storage.ledger_client(), config)
        .await
        .expect("open");
    ml.open_cursor("keep", InitialPosition::Earliest)
        .await
        .expect("cursor");
    let first = ml.append(payload(0)).await.expect("append");
    wait_until("an age rollover", TIMEOUT, || async {
        ml.layout().open_ledger_id() > first.ledger_id
    })
    .await;
    let ledgers = ml.layout().ledgers().len();
    assert_eq!(ledgers, 2);
    ml.close().await.expect("close");
    let info = ml.info();
    assert_eq!(
        info.ledgers.len(),
        1,
        "the empty current ledger was dropped: {info:?}"
    );
    assert_eq!(
        (info.ledgers[0].ledger_id as i64, info.ledgers[0].entries),
        (first.ledger_id, 1)
    );
    storage.shutdown().await;
}
