use std::collections::{BTreeMap, HashSet, VecDeque};

use proptest::prelude::*;

use super::*;
use crate::ledger::metadata::LedgerState;

fn metadata(ensemble: usize, write_quorum: usize, ack_quorum: usize) -> LedgerMetadata {
    LedgerMetadata {
        ensemble_size: ensemble,
        write_quorum,
        ack_quorum,
        state: LedgerState::Open,
        last_entry_id: -1,
        length: 0,
        fragments: vec![Fragment {
            first_entry: 0,
            bookies: (0..ensemble).map(|i| format!("b{i}")).collect(),
        }],
        created_ms: 0,
        closed_ms: 0,
        custom: BTreeMap::new(),
    }
}

/// Copies of `entry` on bookies that `meta` names for it.
fn copies(meta: &LedgerMetadata, stored: &HashSet<(String, u64)>, entry: u64) -> usize {
    let bookies = &meta.fragment_for(entry).bookies;
    meta.write_set(entry)
        .into_iter()
        .filter(|&slot| stored.contains(&(bookies[slot].clone(), entry)))
        .count()
}

/// The writer's side of a ledger with bookies that store what reaches them and answer in any
/// order, fail at any point, and whose ensemble changes take any time to be recorded.
struct Sim {
    quorum: Quorum,
    /// Requests sent and not yet answered.
    inflight: Vec<Send>,
    /// What each bookie made durable (and acknowledged).
    stored: HashSet<(String, u64)>,
    /// Failed requests whose ensemble change has not started (one change at a time).
    failures: VecDeque<(usize, String)>,
    /// The metadata an ensemble change under way is writing.
    changing: Option<LedgerMetadata>,
    completed: Vec<u64>,
    appended: u64,
    replacements: usize,
}

#[derive(Debug, Clone, Copy)]
enum Step {
    Append,
    Ack(usize),
    Fail(usize),
    BeginChange,
    FinishChange,
}

impl Sim {
    fn new(meta: LedgerMetadata) -> Sim {
        Sim {
            quorum: Quorum::new(meta),
            inflight: Vec::new(),
            stored: HashSet::new(),
            failures: VecDeque::new(),
            changing: None,
            completed: Vec::new(),
            appended: 0,
            replacements: 0,
        }
    }

    fn step(&mut self, step: Step) {
        match step {
            Step::Append => {
                let (entry, sends) = self.quorum.append(Bytes::from_static(b"x"));
                assert_eq!(entry, self.appended);
                self.appended += 1;
                self.inflight.extend(sends);
            }
            Step::Ack(i) if !self.inflight.is_empty() => {
                let send = self.inflight.swap_remove(i % self.inflight.len());
                self.stored.insert((send.bookie.clone(), send.entry));
                let done = self.quorum.ack(send.entry, send.slot, &send.bookie);
                self.completed.extend(done);
            }
            Step::Fail(i) if !self.inflight.is_empty() => {
                let send = self.inflight.swap_remove(i % self.inflight.len());
                self.failures.push_back((send.slot, send.bookie));
            }
            Step::BeginChange if self.changing.is_none() => {
                let Some((slot, failed)) = self.failures.pop_front() else {
                    return;
                };
                if let Some(change) = self.quorum.begin_change(slot, &failed) {
                    self.replacements += 1;
                    let replacement = format!("r{}", self.replacements);
                    let meta = self.quorum.meta();
                    self.changing = Some(with_replacement(
                        meta,
                        change.slot,
                        change.first_entry,
                        &replacement,
                    ));
                }
            }
            Step::FinishChange => {
                if let Some(meta) = self.changing.take() {
                    let (resend, done) = self.quorum.finish_change(meta);
                    self.inflight.extend(resend);
                    self.completed.extend(done);
                }
            }
            _ => {}
        }
    }

    /// Lets every change finish and every request succeed.
    fn settle(&mut self) {
        loop {
            if self.changing.is_some() {
                self.step(Step::FinishChange);
            } else if !self.failures.is_empty() {
                self.step(Step::BeginChange);
            } else if !self.inflight.is_empty() {
                self.step(Step::Ack(0));
            } else {
                return;
            }
        }
    }

    /// Every completed entry is on at least `Qa` bookies the metadata names for it, and
    /// entries complete in order.
    fn check(&self) {
        let meta = self.quorum.meta();
        for (i, &entry) in self.completed.iter().enumerate() {
            assert_eq!(entry, i as u64, "entries complete in order");
            let copies = copies(meta, &self.stored, entry);
            assert!(
                copies >= meta.ack_quorum,
                "entry {entry} completed with {copies} copies on the bookies the metadata names: {meta:?}"
            );
        }
    }
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => Just(Step::Append),
        6 => any::<usize>().prop_map(Step::Ack),
        1 => any::<usize>().prop_map(Step::Fail),
        1 => Just(Step::BeginChange),
        1 => Just(Step::FinishChange),
    ]
}

fn quorums() -> impl Strategy<Value = (usize, usize, usize)> {
    (1usize..=5)
        .prop_flat_map(|e| (Just(e), 1..=e))
        .prop_flat_map(|(e, qw)| (Just(e), Just(qw), 1..=qw))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// For any ack order, failure points and time an ensemble change takes to be recorded:
    /// every completed entry has `Qa` copies on bookies the final metadata names for it, and
    /// once the bookies answer, every entry completes.
    #[test]
    fn completed_entries_are_on_the_bookies_the_metadata_names(
        (e, qw, qa) in quorums(),
        steps in prop::collection::vec(step(), 0..300),
    ) {
        let mut sim = Sim::new(metadata(e, qw, qa));
        for step in steps {
            sim.step(step);
        }
        sim.check();
        sim.settle();
        sim.check();
        prop_assert_eq!(sim.completed.len() as u64, sim.appended);
    }
}

/// The review's case: E=Qw=3, Qa=2. Bookie b2 fails entry 0; while the ensemble change is being
/// recorded, b0 and b1 acknowledge entry 0, and b2 still acknowledges entry 1 (written before it
/// failed), b0 too. Entry 1 must not complete on b2's ack: the new fragment (from entry 0, the
/// last-add-confirmed + 1 when the change began) names b2's replacement instead.
#[test]
fn acks_of_the_replaced_bookie_do_not_complete_entries_during_a_change() {
    let mut sim = Sim::new(metadata(3, 3, 2));
    sim.step(Step::Append); // entry 0 → b0, b1, b2
    sim.step(Step::Append); // entry 1 → b0, b1, b2
    let position = |sim: &Sim, entry: u64, bookie: &str| {
        sim.inflight
            .iter()
            .position(|s| s.entry == entry && s.bookie == bookie)
            .expect("in flight")
    };
    let i = position(&sim, 0, "b2");
    sim.step(Step::Fail(i));
    sim.step(Step::BeginChange);
    for (entry, bookie) in [(0, "b0"), (0, "b1"), (1, "b2"), (1, "b0")] {
        let i = position(&sim, entry, bookie);
        sim.step(Step::Ack(i));
    }
    sim.check();
    sim.step(Step::FinishChange);
    sim.check();
    sim.settle();
    sim.check();
    assert_eq!(sim.completed, vec![0, 1]);
    assert_eq!(
        sim.quorum.meta().fragments.len(),
        1,
        "the change rewrote fragment 0"
    );
    assert_eq!(sim.quorum.meta().fragments[0].bookies, ["b0", "b1", "r1"]);
}

/// An ack from a bookie after it was replaced in its slot does not count.
#[test]
fn acks_from_a_replaced_bookie_are_ignored() {
    let mut quorum = Quorum::new(metadata(2, 2, 2));
    let (entry, _) = quorum.append(Bytes::from_static(b"a"));
    let change = quorum.begin_change(1, "b1").expect("b1 is in the ensemble");
    let next = with_replacement(quorum.meta(), 1, change.first_entry, "r");
    let (resend, done) = quorum.finish_change(next);
    assert!(done.is_empty());
    assert_eq!(resend.len(), 1);
    assert_eq!((resend[0].entry, resend[0].bookie.as_str()), (entry, "r"));
    assert!(quorum.ack(entry, 1, "b1").is_empty());
    assert!(quorum.ack(entry, 0, "b0").is_empty());
    assert_eq!(quorum.ack(entry, 1, "r"), vec![entry]);
    assert!(quorum.begin_change(1, "b1").is_none(), "b1 is already out");
}
