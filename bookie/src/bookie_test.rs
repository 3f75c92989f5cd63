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

/// Queues every add at once (so group commit batches them) and waits until all succeeded.
fn add_all(bookie: &Bookie, adds: impl Iterator<Item = AddEntry>) {
    let (tx, rx) = mpsc::channel();
    for entry in adds {
        let tx = tx.clone();
        bookie.add_entry(entry, move |r| {
            let _ = tx.send(r);
        });
    }
    drop(tx);
    for result in rx {
        result.expect("add");
    }
}

async fn add_durably(bookie: &Bookie, entry: AddEntry) -> Result<(), OpError> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    bookie.add_entry(entry, move |r| {
        let _ = tx.send(r);
    });
    rx.await.expect("completed")
}

/// Steps: write, checkpoint, write more, fence one ledger and delete another after the
/// checkpoint; crash (storage keeps only the checkpoint, the journal keeps everything durable);
/// reopen: replay restores every acknowledged entry, the fence and the deletion.
#[tokio::test]
async fn crash_after_checkpoint_is_repaired_by_replay() {
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = Arc::new(MemoryStorage::new());
    let config = JournalConfig {
        segment_size: 64 * 1024,
        max_batch_bytes: 8 * 1024,
        ..JournalConfig::default()
    };
    let bookie = Bookie::open_with(dir.path(), &config, storage.clone(), 1024).expect("open");
    add_all(
        &bookie,
        (0..100).flat_map(|e| [add(1, e, false), add(2, e, false)]),
    );
    let checkpoint = bookie.checkpoint().expect("checkpoint");
    // Enough to roll several segments.
    add_all(&bookie, (100..3000).map(|e| add(1, e, false)));
    bookie.fence(1).await.expect("fence");
    bookie.delete_ledger(2).await.expect("delete");
    drop(bookie); // no close, no final checkpoint

    let storage = Arc::new(storage.after_crash());
    assert_eq!(storage.checkpoint_position().expect("cp"), Some(checkpoint));
    assert!(storage.read_entry(1, 100).expect("read").is_none());
    let bookie = Bookie::open_with(dir.path(), &config, storage, 1024).expect("reopen");
    for entry_id in 0..3000 {
        let entry = bookie.read_entry(1, entry_id).expect("replayed");
        assert_eq!(entry.data, Bytes::from(format!("1:{entry_id}")));
    }
    assert!(matches!(
        bookie.read_entry(2, 0),
        Err(OpError::NoSuchLedger { ledger_id: 2 })
    ));
    let refused = add_durably(&bookie, add(1, 3000, false)).await;
    assert!(matches!(refused, Err(OpError::Fenced { ledger_id: 1 })));
}
