//! The bookie over TCP, in process: pipelined adds, restart, fencing, deletion.

use crate::common;

use common::{add, config, payload};
use futures::future::try_join_all;
use magnetar_protocol::bookie::StatusCode;
use magnetar_testkit::bookie::TestBookie;

/// Steps: pipeline adds to three ledgers; fence one; restart the bookie; every acknowledged
/// entry reads back intact with its LAC; the fence survived (normal adds refused, recovery adds
/// accepted).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_keeps_every_acknowledged_entry_and_the_fence() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bookie = TestBookie::start(config(dir.path())).await;
    let client = bookie.client().await;
    let per_ledger = 400u64;
    let adds = (0..per_ledger).flat_map(|e| (1..=3).map(move |l| add(l, e, false)));
    try_join_all(adds.map(|a| client.add_entry(a)))
        .await
        .expect("adds acknowledged");
    assert_eq!(
        client.fence_ledger(2).await.expect("fence"),
        Some(per_ledger - 2)
    );
    client.close().await;
    bookie.stop().await;

    let bookie = TestBookie::start(config(dir.path())).await;
    let client = bookie.client().await;
    for ledger_id in 1..=3 {
        let reads = (0..per_ledger).map(|e| client.read_entry(ledger_id, e, false));
        for (entry_id, read) in try_join_all(reads).await.expect("reads").iter().enumerate() {
            let entry_id = entry_id as u64;
            assert_eq!(read.payload, payload(ledger_id, entry_id));
            assert_eq!(read.last_add_confirmed, entry_id.checked_sub(1));
        }
        let lac = client
            .read_last_add_confirmed(ledger_id)
            .await
            .expect("lac");
        assert_eq!(lac.last_add_confirmed, Some(per_ledger - 2));
        assert_eq!(lac.fenced, ledger_id == 2);
    }
    let refused = client.add_entry(add(2, per_ledger, false)).await;
    assert_eq!(
        refused.expect_err("fenced").status(),
        Some(StatusCode::Fenced)
    );
    client
        .add_entry(add(2, per_ledger, true))
        .await
        .expect("recovery add on a fenced ledger");
    client
        .add_entry(add(1, per_ledger, false))
        .await
        .expect("other ledgers still writable");
    client.close().await;
    bookie.stop().await;
}

/// Steps: write a ledger; fence it with a recovery read; normal adds are refused, recovery adds
/// accepted and readable; fencing a ledger the bookie never saw still refuses later adds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fenced_ledger_refuses_normal_adds_and_accepts_recovery_adds() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bookie = TestBookie::start(config(dir.path())).await;
    let client = bookie.client().await;
    for e in 0..5 {
        client.add_entry(add(7, e, false)).await.expect("add");
    }
    let read = client.read_entry(7, 4, true).await.expect("fencing read");
    assert_eq!(read.payload, payload(7, 4));

    let refused = client
        .add_entry(add(7, 5, false))
        .await
        .expect_err("fenced");
    assert_eq!(refused.status(), Some(StatusCode::Fenced));
    client
        .add_entry(add(7, 5, true))
        .await
        .expect("recovery add");
    let read = client
        .read_entry(7, 5, false)
        .await
        .expect("read recovered");
    assert_eq!(read.payload, payload(7, 5));

    assert_eq!(client.fence_ledger(99).await.expect("fence unknown"), None);
    let refused = client
        .add_entry(add(99, 0, false))
        .await
        .expect_err("fenced");
    assert_eq!(refused.status(), Some(StatusCode::Fenced));
    client.close().await;
    bookie.stop().await;
}

/// Steps: write two ledgers; delete one; its entries and state are gone, the other's are not;
/// after a restart (which replays the deletion) the same holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_ledger_is_gone_also_after_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bookie = TestBookie::start(config(dir.path())).await;
    let client = bookie.client().await;
    for e in 0..20 {
        client.add_entry(add(1, e, false)).await.expect("add");
        client.add_entry(add(2, e, false)).await.expect("add");
    }
    client.fence_ledger(1).await.expect("fence");
    client.delete_ledger(1).await.expect("delete");
    let check = |client: magnetar_bookie::BookieClient| async move {
        let missing = client.read_entry(1, 3, false).await.expect_err("deleted");
        assert_eq!(missing.status(), Some(StatusCode::NoSuchLedger));
        let missing = client
            .read_last_add_confirmed(1)
            .await
            .expect_err("deleted");
        assert_eq!(missing.status(), Some(StatusCode::NoSuchLedger));
        let kept = client.read_entry(2, 3, false).await.expect("kept");
        assert_eq!(kept.payload, payload(2, 3));
        client.close().await;
    };
    check(client).await;
    bookie.stop().await;
    let bookie = TestBookie::start(config(dir.path())).await;
    check(bookie.client().await).await;
    bookie.stop().await;
}
