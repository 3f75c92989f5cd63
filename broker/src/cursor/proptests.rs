//! Property tests: random acknowledgements against a plain set model.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;

use super::*;

#[derive(Clone, Debug)]
enum Op {
    Ack(usize),
    /// Position index and a random unacked bitset for a batch of up to 8 messages.
    BatchAck(usize, u8),
    Cumulative(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => any::<usize>().prop_map(Op::Ack),
        2 => (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Op::BatchAck(i, b)),
        1 => any::<usize>().prop_map(Op::Cumulative),
    ]
}

/// Up to 5 ledgers with increasing, gapped ids and 0..6 entries each.
fn layout() -> impl Strategy<Value = LedgerLayout> {
    proptest::collection::vec((1i64..4, 0i64..6), 1..6).prop_map(|v| {
        let mut id = 0;
        let ledgers: Vec<(i64, i64)> = v
            .into_iter()
            .map(|(gap, n)| {
                id += gap;
                (id, n)
            })
            .collect();
        LedgerLayout::new(ledgers).expect("increasing ids")
    })
}

fn all_positions(l: &LedgerLayout) -> Vec<Position> {
    l.ledgers()
        .iter()
        .flat_map(|li| (0..li.entries).map(move |e| Position::new(li.ledger_id, e)))
        .collect()
}

struct Model {
    acked: BTreeSet<Position>,
    batches: BTreeMap<Position, AckSet>,
}

impl Model {
    fn ack(&mut self, p: Position) {
        self.acked.insert(p);
        self.batches.remove(&p);
    }
    fn batch_ack(&mut self, p: Position, bits: u8) {
        if self.acked.contains(&p) {
            return;
        }
        let given = AckSet::from_words(&[bits as i64]);
        let set = self.batches.entry(p).or_insert_with(|| given.clone());
        set.and(&given);
        if set.is_empty() {
            self.ack(p);
        }
    }
}

fn check(c: &Cursor, m: &Model, l: &LedgerLayout, all: &[Position]) {
    for q in all {
        assert_eq!(c.is_entry_acked(*q), m.acked.contains(q), "entry {q}");
        if *q <= c.mark_delete() {
            assert!(
                m.acked.contains(q),
                "mark-delete {} passed unacked {q}",
                c.mark_delete()
            );
        }
        for i in 0..8 {
            let model = m.acked.contains(q) || m.batches.get(q).is_some_and(|s| !s.is_unacked(i));
            assert_eq!(c.is_acked(*q, Some(i)), model, "{q} index {i}");
        }
    }
    let next = l.next(c.mark_delete());
    assert!(
        !m.acked.contains(&next),
        "mark-delete stopped before acked {next}"
    );
    let unacked = all.iter().filter(|q| !m.acked.contains(q)).count() as u64;
    assert_eq!(c.backlog(l), unacked);
}

proptest! {
    #[test]
    fn random_acks_match_the_model(l in layout(), ops in proptest::collection::vec(op(), 0..60)) {
        let all = all_positions(&l);
        let mut c = Cursor::earliest(&l);
        let mut m = Model { acked: BTreeSet::new(), batches: BTreeMap::new() };
        for op in ops {
            if all.is_empty() {
                break;
            }
            match op {
                Op::Ack(i) => {
                    let p = all[i % all.len()];
                    c.ack(&l, p).expect("existing position");
                    m.ack(p);
                }
                Op::BatchAck(i, bits) => {
                    let p = all[i % all.len()];
                    c.ack_batch_indexes(&l, p, &[bits as i64]).expect("existing position");
                    m.batch_ack(p, bits);
                }
                Op::Cumulative(i) => {
                    let p = all[i % all.len()];
                    c.ack_cumulative(&l, p, None).expect("existing position");
                    for q in all.iter().filter(|q| **q <= p) {
                        m.ack(*q);
                    }
                }
            }
            check(&c, &m, &l, &all);
        }
    }

    #[test]
    fn restored_snapshots_never_ack_more_than_the_cursor(
        l in layout(),
        ops in proptest::collection::vec(op(), 0..60),
        max_ranges in 0usize..4,
        max_batch_acks in 0usize..3,
    ) {
        let all = all_positions(&l);
        let mut c = Cursor::earliest(&l);
        for op in ops {
            if all.is_empty() {
                break;
            }
            let _ = match op {
                Op::Ack(i) => c.ack(&l, all[i % all.len()]),
                Op::BatchAck(i, bits) => c.ack_batch_indexes(&l, all[i % all.len()], &[bits as i64]),
                Op::Cumulative(i) => c.ack_cumulative(&l, all[i % all.len()], None),
            };
        }
        let snap = c.snapshot(SnapshotLimits { max_ranges, max_batch_acks });
        let r = Cursor::restore(&snap).expect("own snapshot is valid");
        prop_assert_eq!(r.mark_delete(), c.mark_delete());
        prop_assert_eq!(snap.is_truncated(), r != c);
        for q in &all {
            for i in 0..8 {
                prop_assert!(!r.is_acked(*q, Some(i)) || c.is_acked(*q, Some(i)));
            }
        }
    }
}
