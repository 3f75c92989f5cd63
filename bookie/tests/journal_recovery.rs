//! Journal replay after damage: torn, corrupt or zeroed tails lose nothing written before them.
//!
//! Each test: write records through a real journal (group commit, fdatasync), close it, damage
//! the segment file the way a crash or a bad disk would, replay, and check that every record
//! before the damage comes back, nothing after it does, and the tail was cut so that a second
//! replay agrees.

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use magnetar_bookie::journal::{Journal, JournalConfig, JournalError, Position, Record, replay};

fn record(i: u64) -> Record {
    Record::Entry {
        ledger_id: 1 + i % 3,
        entry_id: i,
        last_add_confirmed: i.checked_sub(1),
        data: Bytes::from(format!("entry {i} ").repeat(1 + (i as usize % 7))),
    }
}

fn config() -> JournalConfig {
    JournalConfig {
        segment_size: 256 * 1024,
        max_batch_bytes: 64 * 1024,
        ..JournalConfig::default()
    }
}

fn segment_path(dir: &Path, segment: u64) -> PathBuf {
    dir.join(format!("{segment:020}.journal"))
}

/// Writes `n` records into segment 0, one durable append at a time; returns each one's offset.
async fn write_records(dir: &Path, n: u64) -> Vec<u64> {
    let applied = Arc::new(Mutex::new(0usize));
    let counter = applied.clone();
    let journal = Journal::start(
        dir,
        &config(),
        0,
        Box::new(move |records| {
            *counter.lock().expect("lock") += records.len();
            Ok(())
        }),
    )
    .expect("start journal");
    let mut offsets = Vec::new();
    let mut offset = 0;
    for i in 0..n {
        offsets.push(offset);
        let r = record(i);
        offset += r.encoded_len() as u64;
        journal.append_durable(r).await.expect("append");
    }
    assert_eq!(*applied.lock().expect("lock"), n as usize);
    assert_eq!(journal.applied_position(), Position { segment: 0, offset });
    journal.close();
    offsets
}

fn replay_all(dir: &Path) -> (Vec<Record>, magnetar_bookie::journal::ReplayOutcome) {
    let mut records = Vec::new();
    let outcome = replay(dir, Position::default(), |r| {
        records.push(r);
        Ok::<(), std::convert::Infallible>(())
    })
    .expect("replay");
    (records, outcome)
}

/// Damages segment 0 with `damage`, then checks replay keeps exactly the first `kept` records.
fn check_recovery(dir: &Path, kept: u64, expect_truncation: bool) {
    let (records, outcome) = replay_all(dir);
    let expected: Vec<Record> = (0..kept).map(record).collect();
    assert_eq!(records, expected);
    assert_eq!(
        outcome.truncated.is_some(),
        expect_truncation,
        "{outcome:?}"
    );
    // The cut is durable: a second replay finds the same records and nothing left to cut.
    let (again, outcome) = replay_all(dir);
    assert_eq!(again, expected);
    assert_eq!(outcome.truncated, None);
}

fn write_at(path: &Path, offset: u64, bytes: &[u8]) {
    let file = OpenOptions::new().write(true).open(path).expect("open");
    file.write_all_at(bytes, offset).expect("write");
    file.sync_all().expect("sync");
}

#[tokio::test]
async fn intact_journal_replays_everything() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_records(dir.path(), 50).await;
    check_recovery(dir.path(), 50, false);
}

#[tokio::test]
async fn torn_last_record_is_truncated_and_the_rest_kept() {
    let dir = tempfile::tempdir().expect("tempdir");
    let offsets = write_records(dir.path(), 50).await;
    // The file ends in the middle of the last record, as after a crash mid-write.
    let file = OpenOptions::new()
        .write(true)
        .open(segment_path(dir.path(), 0))
        .expect("open");
    file.set_len(offsets[49] + 11).expect("truncate");
    check_recovery(dir.path(), 49, true);
}

#[tokio::test]
async fn corrupt_payload_of_a_tail_record_is_truncated() {
    let dir = tempfile::tempdir().expect("tempdir");
    let offsets = write_records(dir.path(), 50).await;
    // A bit flipped inside record 45's data: its CRC fails; 45..50 are lost, 0..45 kept.
    write_at(&segment_path(dir.path(), 0), offsets[45] + 40, b"X");
    check_recovery(dir.path(), 45, true);
}

#[tokio::test]
async fn garbage_length_after_the_last_record_is_truncated() {
    let dir = tempfile::tempdir().expect("tempdir");
    let offsets = write_records(dir.path(), 20).await;
    let end = offsets[19] + record(19).encoded_len() as u64;
    // Half-written header in the preallocated space: an absurd length, no valid body.
    write_at(
        &segment_path(dir.path(), 0),
        end,
        &[0xff, 0xff, 0xff, 0x7f, 1, 2],
    );
    check_recovery(dir.path(), 20, true);
}

#[tokio::test]
async fn zeroed_record_ends_replay_without_damage() {
    let dir = tempfile::tempdir().expect("tempdir");
    let offsets = write_records(dir.path(), 20).await;
    // A tail that never reached the disk reads as the zeroed preallocated space.
    let len = record(19).encoded_len();
    write_at(&segment_path(dir.path(), 0), offsets[19], &vec![0; len]);
    check_recovery(dir.path(), 19, false);
}

#[tokio::test]
async fn damage_in_an_earlier_segment_is_corruption_not_a_tail() {
    let dir = tempfile::tempdir().expect("tempdir");
    let offsets = write_records(dir.path(), 20).await;
    write_at(&segment_path(dir.path(), 0), offsets[5] + 40, b"X");
    // A later segment exists, so segment 0 was complete and durable: this is not a torn tail.
    let journal = Journal::start(dir.path(), &config(), 1, Box::new(|_| Ok(()))).expect("start");
    journal.close();
    let result = replay(dir.path(), Position::default(), |_| {
        Ok::<(), std::convert::Infallible>(())
    });
    match result {
        Err(magnetar_bookie::journal::ReplayError::Journal(JournalError::Corrupt {
            position,
            ..
        })) => assert_eq!(
            position,
            Position {
                segment: 0,
                offset: offsets[5]
            }
        ),
        other => panic!("expected corruption, got {other:?}"),
    }
}

#[tokio::test]
async fn concurrent_appends_share_fsyncs_and_roll_segments() {
    let dir = tempfile::tempdir().expect("tempdir");
    let journal = Arc::new(
        Journal::start(dir.path(), &config(), 0, Box::new(|_| Ok(()))).expect("start journal"),
    );
    let n = 4000u64;
    let appends: Vec<_> = (0..n)
        .map(|i| {
            let journal = journal.clone();
            tokio::spawn(async move { journal.append_durable(record(i)).await })
        })
        .collect();
    for append in appends {
        append.await.expect("task").expect("append");
    }
    let stats = journal.stats();
    assert_eq!(stats.records, n);
    assert!(stats.fsyncs < n, "no group commit: {stats:?}");
    assert!(stats.segments_created > 1, "no segment roll: {stats:?}");
    journal.close();
    // Replay sees every record, across segments, each exactly once.
    let (records, _) = replay_all(dir.path());
    let mut ids: Vec<u64> = records
        .iter()
        .map(|r| match r {
            Record::Entry { entry_id, .. } => *entry_id,
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    ids.sort_unstable();
    assert_eq!(ids, (0..n).collect::<Vec<_>>());
}
