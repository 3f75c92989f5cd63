use std::sync::mpsc;

use super::*;
use crate::storage::MemoryStorage;

fn open(dir: &Path) -> Bookie {
    let storage = Arc::new(MemoryStorage::new());
    Bookie::open_with(dir, &JournalConfig::default(), storage, 1024).expect("open bookie")
}

fn add(ledger_id: u64, entry_id: u64, recovery: bool) -> AddEntry {
    AddEntry {
        ledger_id,
        entry_id,
        last_add_confirmed: entry_id.checked_sub(1),
        data: Bytes::from(format!("{ledger_id}:{entry_id}")),
        recovery,
    }
}

/// The fencing guarantee recovery relies on: once `fence` returns, every add queued before it
/// is durable and readable, and every later normal add is refused.
#[tokio::test]
async fn adds_queued_before_a_fence_are_readable_when_it_returns() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bookie = open(dir.path());
    let (tx, rx) = mpsc::channel();
    for entry_id in 0..500 {
        let tx = tx.clone();
        bookie.add_entry(add(1, entry_id, false), move |r| {
            let _ = tx.send(r.is_ok());
        });
    }
    bookie.fence(1).await.expect("fence");
    for entry_id in 0..500 {
        let entry = bookie
            .read_entry(1, entry_id)
            .expect("queued before the fence");
        assert_eq!(entry.data, Bytes::from(format!("1:{entry_id}")));
    }
    drop(tx);
    assert!(rx.iter().take(500).all(|ok| ok));

    let (tx, rx) = mpsc::channel();
    let refused = tx.clone();
    bookie.add_entry(add(1, 500, false), move |r| {
        let _ = refused.send(r.map_err(|e| e.status()));
    });
    bookie.add_entry(add(1, 500, true), move |r| {
        let _ = tx.send(r.map_err(|e| e.status()));
    });
    let results: Vec<_> = rx.iter().take(2).collect();
    assert!(results.contains(&Err(magnetar_protocol::bookie::StatusCode::Fenced)));
    assert!(results.contains(&Ok(())));
    assert!(bookie.ledger(1).expect("ledger").fenced);
}

#[tokio::test]
async fn read_only_and_oversized_adds_are_refused_before_the_journal() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bookie = open(dir.path());
    let (tx, rx) = mpsc::channel();
    let big = AddEntry {
        data: Bytes::from(vec![0; 1025]),
        ..add(1, 0, false)
    };
    let t = tx.clone();
    bookie.add_entry(big, move |r| {
        let _ = t.send(r.map_err(|e| e.status()));
    });
    bookie.set_read_only(true);
    bookie.add_entry(add(1, 0, false), move |r| {
        let _ = tx.send(r.map_err(|e| e.status()));
    });
    use magnetar_protocol::bookie::StatusCode;
    let results: Vec<_> = rx.iter().take(2).collect();
    assert_eq!(
        results,
        [Err(StatusCode::TooLarge), Err(StatusCode::ReadOnly)]
    );
    assert_eq!(bookie.journal_stats().records, 0);
}
