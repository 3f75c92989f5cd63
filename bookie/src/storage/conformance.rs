//! The behaviour every [`LedgerStorage`] must have, run against each implementation.

use bytes::Bytes;

use super::{LedgerMeta, LedgerStorage, MemoryStorage, RocksStorage, StorageConfig};
use crate::journal::{Position, Record};

fn entry(ledger_id: u64, entry_id: u64, lac: Option<u64>) -> Record {
    Record::Entry {
        ledger_id,
        entry_id,
        last_add_confirmed: lac,
        data: Bytes::from(format!("ledger {ledger_id} entry {entry_id}")),
    }
}

fn data(storage: &dyn LedgerStorage, ledger_id: u64, entry_id: u64) -> Option<Bytes> {
    (storage.read_entry(ledger_id, entry_id))
        .expect("read")
        .map(|e| e.data)
}

fn suite(storage: &dyn LedgerStorage) {
    assert_eq!(storage.checkpoint_position().expect("checkpoint"), None);
    assert_eq!(storage.ledger(1).expect("ledger"), None);
    assert_eq!(storage.list_ledgers().expect("list"), Vec::<u64>::new());
    assert_eq!(data(storage, 1, 0), None);

    // Entries are readable, with their piggybacked LAC; the ledger's LAC is the highest seen.
    let batch = [
        entry(1, 0, None),
        entry(1, 2, Some(1)),
        entry(1, 1, Some(0)),
    ];
    storage.apply(&batch).expect("apply");
    assert_eq!(data(storage, 1, 1), Some(Bytes::from("ledger 1 entry 1")));
    let stored = storage.read_entry(1, 2).expect("read").expect("present");
    assert_eq!(stored.last_add_confirmed, Some(1));
    assert_eq!(data(storage, 1, 3), None);
    let meta = LedgerMeta {
        fenced: false,
        last_add_confirmed: Some(1),
    };
    assert_eq!(storage.ledger(1).expect("ledger"), Some(meta));

    // Applying again (replay) changes nothing.
    storage.apply(&batch).expect("apply again");
    assert_eq!(storage.ledger(1).expect("ledger"), Some(meta));

    // Fencing sets the flag, also on a ledger with no entries, and keeps the LAC.
    storage
        .apply(&[
            Record::Fence { ledger_id: 1 },
            Record::Fence { ledger_id: 5 },
        ])
        .expect("fence");
    assert_eq!(
        storage.ledger(1).expect("ledger"),
        Some(LedgerMeta {
            fenced: true,
            ..meta
        })
    );
    assert!(storage.ledger(5).expect("ledger").is_some_and(|m| m.fenced));
    assert_eq!(storage.fenced_ledgers().expect("fenced"), vec![1, 5]);
    assert_eq!(storage.list_ledgers().expect("list"), vec![1, 5]);

    // Deleting removes entries and state of that ledger only, including the last entry id.
    storage
        .apply(&[entry(2, 0, None), entry(1, u64::MAX, Some(2))])
        .expect("apply");
    storage
        .apply(&[Record::DeleteLedger { ledger_id: 1 }])
        .expect("delete");
    assert_eq!(storage.ledger(1).expect("ledger"), None);
    assert_eq!(data(storage, 1, 0), None);
    assert_eq!(data(storage, 1, u64::MAX), None);
    assert!(data(storage, 2, 0).is_some());
    assert_eq!(storage.fenced_ledgers().expect("fenced"), vec![5]);
    assert_eq!(storage.list_ledgers().expect("list"), vec![2, 5]);

    // Within one batch, records apply in order: delete then re-add leaves the re-added entry.
    storage
        .apply(&[
            entry(3, 0, None),
            Record::DeleteLedger { ledger_id: 3 },
            entry(3, 1, Some(0)),
        ])
        .expect("apply");
    assert_eq!(data(storage, 3, 0), None);
    assert!(data(storage, 3, 1).is_some());
    assert!(
        storage
            .ledger(3)
            .expect("ledger")
            .is_some_and(|m| !m.fenced)
    );

    // Ids list in numeric order, also past the first byte of their big-endian keys.
    storage
        .apply(&[entry(300, 0, None), entry(256, 0, None)])
        .expect("apply");
    assert_eq!(
        storage.list_ledgers().expect("list"),
        vec![2, 3, 5, 256, 300]
    );

    let position = Position {
        segment: 4,
        offset: 1234,
    };
    storage.checkpoint(position).expect("checkpoint");
    assert_eq!(
        storage.checkpoint_position().expect("checkpoint"),
        Some(position)
    );
}

#[test]
fn memory_storage_conforms() {
    suite(&MemoryStorage::new());
}

#[test]
fn rocks_storage_conforms() {
    let dir = tempfile::tempdir().expect("tempdir");
    suite(&RocksStorage::open(dir.path(), &StorageConfig::default()).expect("open"));
}

#[test]
fn rocks_storage_keeps_checkpointed_state_across_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = StorageConfig::default();
    let position = Position {
        segment: 2,
        offset: 99,
    };
    {
        let storage = RocksStorage::open(dir.path(), &config).expect("open");
        storage
            .apply(&[entry(7, 0, None), Record::Fence { ledger_id: 7 }])
            .expect("apply");
        storage.checkpoint(position).expect("checkpoint");
    }
    let storage = RocksStorage::open(dir.path(), &config).expect("reopen");
    assert_eq!(
        storage.checkpoint_position().expect("checkpoint"),
        Some(position)
    );
    assert!(data(&storage, 7, 0).is_some());
    assert_eq!(storage.fenced_ledgers().expect("fenced"), vec![7]);
}

fn dir_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .expect("read dir")
        .filter_map(|e| e.ok()?.metadata().ok())
        .filter(|m| m.is_file())
        .map(|m| m.len())
        .sum()
}

/// A deleted ledger's space comes back without any other write: 64 MiB of entries, flushed to
/// blob files, then the ledger deleted; the reclaim thread compacts its range and RocksDB drops
/// the blob files (waited on, not assumed).
#[test]
fn rocks_storage_gives_a_deleted_ledgers_space_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = RocksStorage::open(dir.path(), &StorageConfig::default()).expect("open");
    let chunk = Bytes::from(vec![7u8; 1024 * 1024]);
    for entry_id in 0..64 {
        let record = Record::Entry {
            ledger_id: 3,
            entry_id,
            last_add_confirmed: None,
            data: chunk.clone(),
        };
        storage.apply(&[record]).expect("apply");
    }
    let keep = entry(4, 0, None);
    storage.apply(&[keep]).expect("apply");
    storage
        .checkpoint(Position {
            segment: 1,
            offset: 1,
        })
        .expect("checkpoint");
    let written = dir_bytes(dir.path());
    assert!(written > 60 * 1024 * 1024, "{written} bytes on disk");
    storage
        .apply(&[Record::DeleteLedger { ledger_id: 3 }])
        .expect("delete");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while dir_bytes(dir.path()) > 16 * 1024 * 1024 {
        assert!(
            std::time::Instant::now() < deadline,
            "{} bytes still on disk 30 s after the deletion",
            dir_bytes(dir.path())
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(storage.read_entry(3, 0).expect("read"), None);
    assert!(storage.read_entry(4, 0).expect("read").is_some());
}
