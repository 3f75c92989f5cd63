use super::*;

fn p(l: i64, e: i64) -> Position {
    Position::new(l, e)
}

/// Ledger 1 (3 entries), ledger 2 (empty), ledger 4 (3 entries), ledger 6 open (2 entries).
fn layout() -> LedgerLayout {
    LedgerLayout::new([(1, 3), (2, 0), (4, 3), (6, 2)]).expect("valid layout")
}

fn acked(e: AckEffect) -> bool {
    e.entry_acked
}

#[test]
fn earliest_and_latest_initial_positions() {
    let l = layout();
    assert_eq!(Cursor::earliest(&l).mark_delete(), p(1, -1));
    assert_eq!(Cursor::earliest(&l).next_unacked(&l), p(1, 0));
    assert_eq!(Cursor::latest(&l).mark_delete(), p(6, 1));
    assert_eq!(Cursor::latest(&l).next_unacked(&l), p(6, 2));
    let empty = LedgerLayout::single(3);
    assert_eq!(Cursor::earliest(&empty).mark_delete(), p(3, -1));
    assert_eq!(Cursor::latest(&empty).mark_delete(), p(3, -1));
}

#[test]
fn individual_acks_advance_mark_delete_when_contiguous() {
    let l = layout();
    let mut c = Cursor::earliest(&l);
    let e = c.ack(&l, p(1, 1)).expect("exists");
    assert!(acked(e) && !e.mark_delete_moved);
    assert_eq!(c.mark_delete(), p(1, -1));
    assert_eq!(
        c.acked_ranges().iter().collect::<Vec<_>>(),
        vec![(p(1, 0), p(1, 1))]
    );
    let e = c.ack(&l, p(1, 0)).expect("exists");
    assert!(e.mark_delete_moved);
    assert_eq!(c.mark_delete(), p(1, 1));
    assert!(c.acked_ranges().is_empty());
    // Acking again changes nothing.
    assert_eq!(c.ack(&l, p(1, 0)), Ok(AckEffect::default()));
}

#[test]
fn ranges_merge_and_mark_delete_advances_across_ledgers() {
    let l = layout();
    let mut c = Cursor::earliest(&l);
    for e in [p(4, 0), p(4, 1), p(1, 2), p(4, 2), p(6, 0)] {
        c.ack(&l, e).expect("exists");
    }
    // 1:2 and 4:0 are contiguous although ledger 2 is empty in between.
    assert_eq!(
        c.acked_ranges().iter().collect::<Vec<_>>(),
        vec![(p(1, 1), p(6, 0))]
    );
    assert_eq!(c.mark_delete(), p(1, -1));
    c.ack(&l, p(1, 1)).expect("exists");
    assert_eq!(c.mark_delete(), p(1, -1));
    let e = c.ack(&l, p(1, 0)).expect("exists");
    assert!(e.mark_delete_moved);
    assert_eq!(c.mark_delete(), p(6, 0));
    assert_eq!(c.next_unacked(&l), p(6, 1));
}

#[test]
fn mark_delete_in_a_trimmed_ledger_still_advances() {
    let mut l = layout();
    let mut c = Cursor::new(p(1, 2));
    l.remove_ledger(1).expect("closed ledger");
    l.remove_ledger(2).expect("closed ledger");
    c.ack(&l, p(4, 0)).expect("exists");
    assert_eq!(c.mark_delete(), p(4, 0));
}

#[test]
fn ack_of_unknown_position_is_rejected() {
    let l = layout();
    let mut c = Cursor::earliest(&l);
    assert_eq!(c.ack(&l, p(6, 2)), Err(AckError::UnknownPosition(p(6, 2))));
    assert_eq!(c.ack(&l, p(2, 0)), Err(AckError::UnknownPosition(p(2, 0))));
    assert_eq!(
        c.ack_cumulative(&l, p(9, 0), None),
        Err(AckError::UnknownPosition(p(9, 0)))
    );
    assert_eq!(
        c.ack_batch_indexes(&l, p(3, 0), &[1]),
        Err(AckError::UnknownPosition(p(3, 0)))
    );
    assert!(c.acked_ranges().is_empty());
}

#[test]
fn batch_index_acks_clear_bits_until_entry_acked() {
    let l = layout();
    let mut c = Cursor::earliest(&l);
    // A batch of 3: client acks index 1 (bits 0 and 2 still set), then index 0, then 2.
    assert!(!acked(
        c.ack_batch_indexes(&l, p(1, 0), &[0b101]).expect("exists")
    ));
    assert!(c.is_acked(p(1, 0), Some(1)));
    assert!(!c.is_acked(p(1, 0), Some(0)));
    assert!(!c.is_acked(p(1, 0), None));
    assert_eq!(
        c.batch_ack_set(p(1, 0)).map(AckSet::to_words),
        Some(vec![0b101])
    );
    // The client's later ack_set is intersected with what is known.
    assert!(!acked(
        c.ack_batch_indexes(&l, p(1, 0), &[0b110]).expect("exists")
    ));
    assert_eq!(
        c.batch_ack_set(p(1, 0)).map(AckSet::to_words),
        Some(vec![0b100])
    );
    let e = c.ack_batch_indexes(&l, p(1, 0), &[0b011]).expect("exists");
    assert!(e.entry_acked && e.mark_delete_moved);
    assert_eq!(c.mark_delete(), p(1, 0));
    assert!(c.batch_ack_set(p(1, 0)).is_none());
    assert!(c.is_acked(p(1, 0), Some(2)));
}

#[test]
fn whole_entry_ack_replaces_partial_batch_state() {
    let l = layout();
    let mut c = Cursor::earliest(&l);
    c.ack_batch_indexes(&l, p(1, 1), &[0b10]).expect("exists");
    c.ack(&l, p(1, 1)).expect("exists");
    assert!(c.batch_ack_set(p(1, 1)).is_none());
    assert!(c.is_acked(p(1, 1), Some(1)));
}

#[test]
fn cumulative_ack_moves_mark_delete_and_clears_ranges_and_batches() {
    let l = layout();
    let mut c = Cursor::earliest(&l);
    c.ack(&l, p(1, 2)).expect("exists");
    c.ack(&l, p(4, 2)).expect("exists");
    c.ack_batch_indexes(&l, p(4, 0), &[0b1]).expect("exists");
    let e = c.ack_cumulative(&l, p(4, 1), None).expect("exists");
    assert!(e.entry_acked && e.mark_delete_moved);
    // 4:2 was acked individually, so mark-delete runs on through it.
    assert_eq!(c.mark_delete(), p(4, 2));
    assert!(c.acked_ranges().is_empty());
    assert_eq!(c.batch_acks().count(), 0);
    // A cumulative ack below mark-delete is a no-op.
    assert_eq!(
        c.ack_cumulative(&l, p(1, 0), None),
        Ok(AckEffect::default())
    );
}

#[test]
fn cumulative_ack_with_partial_batch_stops_before_the_entry() {
    let l = layout();
    let mut c = Cursor::earliest(&l);
    let e = c
        .ack_cumulative(&l, p(4, 1), Some(&[0b1100]))
        .expect("exists");
    assert!(!e.entry_acked && e.mark_delete_moved);
    assert_eq!(c.mark_delete(), p(4, 0));
    assert!(c.is_acked(p(4, 1), Some(0)) && !c.is_acked(p(4, 1), Some(2)));
    let e = c.ack_cumulative(&l, p(4, 1), Some(&[0])).expect("exists");
    assert!(e.entry_acked && e.mark_delete_moved);
    assert_eq!(c.mark_delete(), p(4, 1));
}

#[test]
fn backlog_counts_unacked_entries_across_ledgers() {
    let l = layout();
    let mut c = Cursor::earliest(&l);
    assert_eq!(c.backlog(&l), 8);
    c.ack(&l, p(4, 1)).expect("exists");
    c.ack(&l, p(6, 1)).expect("exists");
    assert_eq!(c.backlog(&l), 6);
    c.ack_batch_indexes(&l, p(1, 0), &[0b10]).expect("exists");
    assert_eq!(c.backlog(&l), 6, "a partly acked batch is still backlog");
    c.ack_cumulative(&l, p(4, 0), None).expect("exists");
    assert_eq!(c.mark_delete(), p(4, 1));
    assert_eq!(c.backlog(&l), 2);
}

#[test]
fn reset_to_position_acks_before_and_unacks_after() {
    let l = layout();
    let mut c = Cursor::earliest(&l);
    c.ack(&l, p(6, 0)).expect("exists");
    c.ack_batch_indexes(&l, p(6, 1), &[1]).expect("exists");
    c.reset_to(&l, p(4, 0));
    assert_eq!(c.mark_delete(), p(1, 2));
    assert!(c.acked_ranges().is_empty() && c.batch_acks().count() == 0);
    assert!(c.is_entry_acked(p(1, 1)) && !c.is_entry_acked(p(6, 0)));
    // Seek past the end lands on the end.
    c.reset_to(&l, p(99, 0));
    assert_eq!(c.mark_delete(), p(6, 1));
    assert_eq!(c.backlog(&l), 0);
}

#[test]
fn snapshot_round_trips_through_serde() {
    let l = layout();
    let mut c = Cursor::earliest(&l);
    c.ack(&l, p(1, 2)).expect("exists");
    c.ack(&l, p(6, 0)).expect("exists");
    c.ack_batch_indexes(&l, p(4, 1), &[0b110]).expect("exists");
    let snap = c.snapshot(SnapshotLimits::default());
    assert!(!snap.is_truncated());
    let json = serde_json::to_string(&snap).expect("serializes");
    let back: CursorSnapshot = serde_json::from_str(&json).expect("deserializes");
    assert_eq!(back, snap);
    assert_eq!(Cursor::restore(&back), Ok(c));
}

#[test]
fn truncated_snapshot_reports_dropped_ranges_and_only_redelivers() {
    let l = layout();
    let mut c = Cursor::earliest(&l);
    for e in [p(1, 1), p(4, 0), p(4, 2), p(6, 1)] {
        c.ack(&l, e).expect("exists");
    }
    c.ack_batch_indexes(&l, p(6, 0), &[0b1]).expect("exists");
    let snap = c.snapshot(SnapshotLimits {
        max_ranges: 2,
        max_batch_acks: 0,
    });
    assert!(snap.is_truncated());
    assert_eq!((snap.dropped_ranges, snap.dropped_batch_acks), (2, 1));
    let restored = Cursor::restore(&snap).expect("valid");
    assert_eq!(restored.mark_delete(), c.mark_delete());
    // The lowest ranges survive; what was dropped comes back as unacked, nothing else does.
    assert!(restored.is_entry_acked(p(1, 1)) && restored.is_entry_acked(p(4, 0)));
    assert!(!restored.is_entry_acked(p(4, 2)) && !restored.is_entry_acked(p(6, 1)));
    assert!(!restored.is_acked(p(6, 0), Some(1)));
    for q in [p(1, 0), p(1, 2), p(4, 1)] {
        assert!(!restored.is_entry_acked(q), "{q} must stay unacked");
    }
    assert_eq!(restored.backlog(&l), c.backlog(&l) + 2);
}

#[test]
fn restore_rejects_invalid_range() {
    let snap = CursorSnapshot {
        mark_delete: p(1, -1),
        acked_ranges: vec![AckedRange {
            lower: p(1, 5),
            upper: p(1, 5),
        }],
        batch_acks: vec![],
        dropped_ranges: 0,
        dropped_batch_acks: 0,
        properties: Default::default(),
    };
    assert_eq!(
        Cursor::restore(&snap),
        Err(SnapshotError::InvalidRange {
            lower: p(1, 5),
            upper: p(1, 5)
        })
    );
}
