use std::collections::BTreeSet;

use proptest::prelude::*;

use super::*;

fn p(l: i64, e: i64) -> Position {
    Position::new(l, e)
}

/// Ledger 1 (4 entries), ledger 2 (empty), ledger 5 open (4 entries); batch sizes from `batch`.
fn layout() -> LedgerLayout {
    LedgerLayout::new([(1, 4), (2, 0), (5, 4)]).expect("valid layout")
}

fn meta(pos: Position, batch: u32) -> EntryMeta {
    EntryMeta::new(pos, batch)
}

/// Serves reads like the shell: sequential reads follow the layout.
fn pump(s: &mut Subscription, l: &LedgerLayout, batch: u32) -> Vec<Delivery> {
    let mut out = Vec::new();
    for _ in 0..1000 {
        let Some(req) = s.next_read(l) else {
            return out;
        };
        match req {
            ReadRequest::Replay { epoch, positions } => {
                let es: Vec<EntryMeta> = positions.iter().map(|q| meta(*q, batch)).collect();
                out.extend(s.replay_complete(epoch, &es));
            }
            ReadRequest::Read {
                epoch,
                from,
                max_entries,
            } => {
                let mut es = Vec::new();
                let mut q = from;
                while l.contains(q) && es.len() < max_entries as usize {
                    es.push(meta(q, batch));
                    q = l.next(q);
                }
                out.extend(s.read_complete(l, epoch, &es));
            }
        }
    }
    panic!("endless reads");
}

fn subscription(sub_type: SubType, l: &LedgerLayout) -> Subscription {
    let config = DispatcherConfig::new(sub_type, "persistent://public/default/t");
    Subscription::new(config, Cursor::earliest(l), l)
}

fn attach(s: &mut Subscription, l: &LedgerLayout, id: ConsumerId, permits: u32) {
    let sub_type = s.sub_type();
    s.add_consumer(l, sub_type, ConsumerInfo::new(id, format!("c{id}")))
        .expect("attached");
    s.flow(id, permits).expect("attached");
}

fn positions(ds: &[Delivery]) -> Vec<Position> {
    ds.iter().map(|d| d.position).collect()
}

#[test]
fn cumulative_ack_on_shared_is_ignored() {
    let l = layout();
    for sub_type in [SubType::Shared, SubType::KeyShared] {
        let mut s = subscription(sub_type, &l);
        attach(&mut s, &l, 1, 100);
        pump(&mut s, &l, 1);
        let r = s.ack(&l, AckKind::Cumulative, &[AckedMessage::entry(p(5, 0))]);
        assert!(r.ignored_cumulative && !r.mark_delete_moved);
        assert_eq!(s.cursor().mark_delete(), p(1, -1));
        assert_eq!(s.dispatcher().pending(1).len(), 8);
    }
}

#[test]
fn cumulative_ack_on_failover_moves_mark_delete_across_ledgers() {
    let l = layout();
    let mut s = subscription(SubType::Failover, &l);
    attach(&mut s, &l, 1, 100);
    assert_eq!(pump(&mut s, &l, 1).len(), 8);
    let r = s.ack(&l, AckKind::Cumulative, &[AckedMessage::entry(p(5, 1))]);
    assert!(r.mark_delete_moved && !r.ignored_cumulative);
    assert_eq!(s.cursor().mark_delete(), p(5, 1));
    assert_eq!(s.dispatcher().pending(1), vec![p(5, 2), p(5, 3)]);
    assert_eq!(s.backlog(&l), 2);
}

#[test]
fn ack_without_ack_set_acks_the_whole_batch() {
    let l = layout();
    let mut s = subscription(SubType::Shared, &l);
    attach(&mut s, &l, 1, 100);
    pump(&mut s, &l, 10);
    // pulsar-rs acks each message with a batch index and no ack_set: the entry is acked.
    let r = s.ack(&l, AckKind::Individual, &[AckedMessage::entry(p(1, 0))]);
    assert!(r.mark_delete_moved);
    assert!(s.cursor().is_acked(p(1, 0), Some(7)));
    assert!(!s.dispatcher().pending(1).contains(&p(1, 0)));
}

#[test]
fn batch_index_acks_keep_the_entry_pending_until_complete() {
    let l = layout();
    let mut s = subscription(SubType::Shared, &l);
    attach(&mut s, &l, 1, 100);
    pump(&mut s, &l, 3);
    let partial = AckedMessage {
        position: p(1, 0),
        ack_set: Some(vec![0b110]),
    };
    let r = s.ack(&l, AckKind::Individual, &[partial]);
    assert!(!r.mark_delete_moved);
    assert!(s.dispatcher().pending(1).contains(&p(1, 0)));
    assert_eq!(
        s.cursor().batch_ack_set(p(1, 0)).map(|a| a.to_words()),
        Some(vec![0b110])
    );
    let rest = AckedMessage {
        position: p(1, 0),
        ack_set: Some(vec![0b001]),
    };
    let r = s.ack(&l, AckKind::Individual, &[rest]);
    assert!(r.mark_delete_moved);
    assert!(!s.dispatcher().pending(1).contains(&p(1, 0)));
}

#[test]
fn reads_skip_acked_entries_across_ledgers() {
    let l = layout();
    let mut cursor = Cursor::earliest(&l);
    for q in [p(1, 1), p(1, 3), p(5, 0)] {
        cursor.ack(&l, q).expect("exists");
    }
    let config = DispatcherConfig::new(SubType::Exclusive, "persistent://public/default/t");
    let mut s = Subscription::new(config, cursor, &l);
    attach(&mut s, &l, 1, 100);
    assert_eq!(
        positions(&pump(&mut s, &l, 1)),
        vec![p(1, 0), p(1, 2), p(5, 1), p(5, 2), p(5, 3)]
    );
}

#[test]
fn unknown_ids_are_reported_and_not_recorded() {
    let l = layout();
    let mut s = subscription(SubType::Shared, &l);
    let r = s.ack(
        &l,
        AckKind::Individual,
        &[AckedMessage::entry(p(5, 9)), AckedMessage::entry(p(1, 0))],
    );
    assert_eq!(r.unknown, vec![p(5, 9)]);
    assert!(r.mark_delete_moved);
    assert_eq!(s.cursor().mark_delete(), p(1, 0));
}

#[test]
fn seek_resets_the_cursor_and_drops_consumers() {
    let l = layout();
    let mut s = subscription(SubType::Shared, &l);
    attach(&mut s, &l, 1, 100);
    attach(&mut s, &l, 2, 100);
    pump(&mut s, &l, 1);
    s.ack(&l, AckKind::Individual, &[AckedMessage::entry(p(5, 3))]);
    assert_eq!(s.seek(&l, p(5, 1)), vec![1, 2]);
    assert_eq!(s.cursor().mark_delete(), p(5, 0));
    assert!(!s.cursor().is_entry_acked(p(5, 3)));
    assert!(!s.dispatcher().has_consumers());
    attach(&mut s, &l, 3, 100);
    assert_eq!(
        positions(&pump(&mut s, &l, 1)),
        vec![p(5, 1), p(5, 2), p(5, 3)]
    );
}

#[test]
fn another_subscription_type_is_refused_while_consumers_are_attached() {
    let l = layout();
    let mut s = subscription(SubType::Exclusive, &l);
    attach(&mut s, &l, 1, 100);
    pump(&mut s, &l, 1);
    let shared = ConsumerInfo::new(2, "c2");
    assert_eq!(
        s.add_consumer(&l, SubType::Shared, shared.clone()),
        Err(DispatchError::ConsumerBusy { existing: 1 })
    );
    assert!(s.can_unsubscribe(1) && !s.can_unsubscribe(2));
    s.ack(&l, AckKind::Individual, &[AckedMessage::entry(p(1, 0))]);
    s.remove_consumer(1).expect("attached");
    // With nobody attached the type may change; unacked entries are read again.
    s.add_consumer(&l, SubType::Shared, shared)
        .expect("type change");
    s.flow(2, 100).expect("attached");
    assert_eq!(s.sub_type(), SubType::Shared);
    assert_eq!(pump(&mut s, &l, 1).len(), 7);
}

proptest! {
    /// Restart from a bounded snapshot: everything unacknowledged is delivered again and nothing
    /// the restored cursor calls acknowledged is.
    #[test]
    fn restart_from_truncated_snapshot_never_skips(
        acks in proptest::collection::btree_set(0usize..8, 0..8),
        max_ranges in 0usize..3,
    ) {
        let l = layout();
        let all: Vec<Position> = (0..4).map(|e| p(1, e)).chain((0..4).map(|e| p(5, e))).collect();
        let mut s = subscription(SubType::Shared, &l);
        attach(&mut s, &l, 1, 100);
        pump(&mut s, &l, 1);
        let msgs: Vec<AckedMessage> = acks.iter().map(|i| AckedMessage::entry(all[*i])).collect();
        s.ack(&l, AckKind::Individual, &msgs);
        let snap = s.snapshot(SnapshotLimits { max_ranges, max_batch_acks: 10 });
        let cursor = Cursor::restore(&snap).expect("valid");
        let config = DispatcherConfig::new(SubType::Shared, "persistent://public/default/t");
        let mut restarted = Subscription::new(config, cursor, &l);
        attach(&mut restarted, &l, 7, 100);
        let again: BTreeSet<Position> = positions(&pump(&mut restarted, &l, 1)).into_iter().collect();
        for (i, q) in all.iter().enumerate() {
            if !acks.contains(&i) {
                prop_assert!(again.contains(q), "unacked {} skipped after restart", q);
            }
            prop_assert_eq!(again.contains(q), !restarted.cursor().is_entry_acked(*q));
        }
    }

    /// Whatever `ack_set` a client sends, the set stored for an entry of `batch` messages holds
    /// no index past the batch (so no MESSAGE of the entry grows from it), and an index the
    /// client left set stays unacknowledged.
    #[test]
    fn a_stored_ack_set_never_exceeds_the_batch(
        batch in 1u32..300,
        words in proptest::collection::vec(any::<i64>(), 0..40),
    ) {
        let l = layout();
        let mut s = subscription(SubType::Shared, &l);
        attach(&mut s, &l, 1, 10_000);
        pump(&mut s, &l, batch);
        let target = p(1, 2);
        let report = s.ack(&l, AckKind::Individual, &[AckedMessage {
            position: target,
            ack_set: Some(words.clone()),
        }]);
        prop_assert!(report.oversized_ack_sets.is_empty());
        let max_words = batch.div_ceil(64) as usize;
        match s.cursor().batch_ack_set(target) {
            Some(set) => {
                let stored = set.to_words();
                prop_assert!(stored.len() <= max_words, "{} words for a batch of {}", stored.len(), batch);
                for index in batch..(max_words as u32 * 64) {
                    prop_assert!(!set.is_unacked(index), "index {} past the batch kept", index);
                }
                for index in 0..batch {
                    let (word, bit) = ((index / 64) as usize, index % 64);
                    let sent = words.get(word).is_some_and(|w| (*w as u64) & (1 << bit) != 0);
                    prop_assert_eq!(set.is_unacked(index), sent);
                }
            }
            // Every index of the batch acknowledged: the entry is.
            None => prop_assert!(s.cursor().is_entry_acked(target)),
        }
    }
}

/// An entry the dispatcher has no size for (acked after a reload) keeps a plausible set; an
/// absurdly large one is ignored, not stored.
#[test]
fn an_oversized_ack_set_for_an_unknown_entry_is_ignored() {
    let l = layout();
    let mut s = subscription(SubType::Shared, &l);
    let huge = vec![-1i64; 100_000];
    let report = s.ack(
        &l,
        AckKind::Individual,
        &[AckedMessage {
            position: p(1, 0),
            ack_set: Some(huge),
        }],
    );
    assert_eq!(report.oversized_ack_sets, vec![p(1, 0)]);
    assert!(s.cursor().batch_ack_set(p(1, 0)).is_none());
    let report = s.ack(
        &l,
        AckKind::Individual,
        &[AckedMessage {
            position: p(1, 1),
            ack_set: Some(vec![0b110]),
        }],
    );
    assert!(report.oversized_ack_sets.is_empty());
    assert!(s.cursor().batch_ack_set(p(1, 1)).is_some());
}

/// A consumer whose connection is full is paused: Shared sends its share to the other
/// consumer; resumed, it gets entries again.
#[test]
fn a_paused_consumer_gets_nothing_until_resumed() {
    let l = layout();
    let mut s = subscription(SubType::Shared, &l);
    attach(&mut s, &l, 1, 100);
    attach(&mut s, &l, 2, 100);
    s.set_paused(1, true).expect("attached");
    let ds = pump(&mut s, &l, 1);
    assert_eq!(ds.len(), 8);
    assert!(ds.iter().all(|d| d.consumer_id == 2), "{ds:?}");
    let mut single = subscription(SubType::Exclusive, &l);
    attach(&mut single, &l, 1, 100);
    single.set_paused(1, true).expect("attached");
    assert!(pump(&mut single, &l, 1).is_empty());
    single.set_paused(1, false).expect("attached");
    assert_eq!(pump(&mut single, &l, 1).len(), 8);
}
