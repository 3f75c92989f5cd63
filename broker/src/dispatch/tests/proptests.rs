//! Property tests: random consumer events, acks, nacks and reads for every subscription type.
//! After each read: no delivery to a consumer without permits, single-active types deliver only
//! to the active consumer, Key_Shared never lets a key overtake itself or sit at two consumers;
//! after each step, every entry read is acked, pending at exactly one consumer, or queued.

use std::collections::{BTreeSet, HashMap};

use proptest::prelude::*;

use super::*;

#[derive(Clone, Debug)]
enum Op {
    Add(u8, i32),
    Remove(usize),
    Flow(usize, u8),
    Ack(usize),
    Nack(usize, bool),
    Append(u8, u8),
    Pump,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => (0u8..6, 0i32..2).prop_map(|(n, l)| Op::Add(n, l)),
        1 => any::<usize>().prop_map(Op::Remove),
        3 => (any::<usize>(), 0u8..12).prop_map(|(c, n)| Op::Flow(c, n)),
        3 => any::<usize>().prop_map(Op::Ack),
        1 => (any::<usize>(), any::<bool>()).prop_map(|(c, all)| Op::Nack(c, all)),
        4 => (0u8..5, 1u8..4).prop_map(|(k, n)| Op::Append(k, n)),
        4 => Just(Op::Pump),
    ]
}

fn sub_type() -> impl Strategy<Value = SubType> {
    prop_oneof![
        Just(SubType::Exclusive),
        Just(SubType::Failover),
        Just(SubType::Shared),
        Just(SubType::KeyShared),
    ]
}

struct Sim {
    d: Dispatcher,
    t: Topic,
    acked: BTreeSet<Position>,
    mark_delete: i64,
    next_id: ConsumerId,
}

impl Sim {
    fn live(&self) -> Vec<ConsumerId> {
        self.d.consumer_ids().to_vec()
    }

    fn pick(&self, i: usize) -> Option<ConsumerId> {
        let live = self.live();
        (!live.is_empty()).then(|| live[i % live.len()])
    }

    fn ack(&mut self, q: Position) {
        self.acked.insert(q);
        self.d.entry_acked(q);
        let before = self.mark_delete;
        while self.acked.contains(&p(self.mark_delete + 1)) {
            self.mark_delete += 1;
        }
        if self.mark_delete != before {
            self.d.mark_delete_moved(p(self.mark_delete));
        }
    }

    fn pump(&mut self) {
        for _ in 0..1000 {
            let Some(req) = self.d.next_read(self.t.end()) else {
                return;
            };
            let mut permits: HashMap<ConsumerId, i64> = self
                .live()
                .iter()
                .map(|c| (*c, self.d.permits(*c).unwrap_or(0)))
                .collect();
            let active = self.d.active_consumer();
            let got = self.t.serve(&mut self.d, req);
            for x in &got {
                let left = permits
                    .get_mut(&x.consumer_id)
                    .expect("delivered to a live consumer");
                assert!(*left > 0, "delivery to {} without permits", x.consumer_id);
                *left -= i64::from(x.num_messages);
                if self.d.sub_type().is_single_active() {
                    assert_eq!(Some(x.consumer_id), active);
                }
            }
            if self.d.sub_type() == SubType::KeyShared {
                self.check_key_order(&got);
            }
        }
        panic!("endless reads");
    }

    fn check_key_order(&self, got: &[Delivery]) {
        let queued = self.d.redelivery_queue();
        for x in got {
            let slot = self.t.get(x.position).slot;
            for c in self.live().into_iter().filter(|c| *c != x.consumer_id) {
                assert!(
                    self.d
                        .pending(c)
                        .iter()
                        .all(|q| self.t.get(*q).slot != slot),
                    "slot {slot} held by {c} while {} received {}",
                    x.consumer_id,
                    x.position
                );
            }
            assert!(
                queued
                    .iter()
                    .all(|q| self.t.get(*q).slot != slot || *q > x.position),
                "{} overtook a queued entry of its key",
                x.position
            );
        }
    }

    fn check_conservation(&self) {
        let queued: BTreeSet<Position> = self.d.redelivery_queue().into_iter().collect();
        let mut holders: HashMap<Position, usize> = HashMap::new();
        for c in self.live() {
            for q in self.d.pending(c) {
                *holders.entry(q).or_default() += 1;
            }
        }
        let read_to = self.d.read_position().entry_id;
        for e in 0..self.t.end().entry_id {
            let q = p(e);
            let places = usize::from(self.acked.contains(&q))
                + usize::from(queued.contains(&q))
                + holders.get(&q).copied().unwrap_or(0);
            let expected = usize::from(e < read_to);
            assert_eq!(
                places, expected,
                "entry {q} is in {places} places (read up to {read_to})"
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]
    #[test]
    fn dispatch_keeps_its_invariants(sub in sub_type(), ops in proptest::collection::vec(op(), 1..80)) {
        let mut config = DispatcherConfig::new(sub, "persistent://public/default/t");
        config.max_read_batch = 4;
        config.max_round_robin_batch = 2;
        config.partition_index = Some(0);
        let mut s = Sim {
            d: Dispatcher::new(config, p(0)),
            t: Topic::default(),
            acked: BTreeSet::new(),
            mark_delete: -1,
            next_id: 0,
        };
        for op in ops {
            match op {
                Op::Add(name, level) => {
                    let info = ConsumerInfo::new(s.next_id, format!("c{name}")).with_priority(level);
                    s.next_id += 1;
                    let _ = s.d.add_consumer(info);
                }
                Op::Remove(i) => {
                    if let Some(c) = s.pick(i) {
                        s.d.remove_consumer(c).expect("live");
                    }
                }
                Op::Flow(i, n) => {
                    if let Some(c) = s.pick(i) {
                        s.d.flow(c, u32::from(n)).expect("live");
                    }
                }
                Op::Ack(i) => {
                    let candidates: Vec<Position> = (0..s.d.read_position().entry_id)
                        .map(p)
                        .filter(|q| !s.acked.contains(q))
                        .collect();
                    if !candidates.is_empty() {
                        s.ack(candidates[i % candidates.len()]);
                    }
                }
                Op::Nack(i, all) => {
                    if let Some(c) = s.pick(i) {
                        let pending = s.d.pending(c);
                        let some: Vec<Position> = pending.iter().step_by(2).copied().collect();
                        s.d.redeliver(c, if all { None } else { Some(&some) }).expect("live");
                    }
                }
                Op::Append(key, n) => {
                    s.t.push(u32::from(n), Some(&format!("k{key}")));
                }
                Op::Pump => s.pump(),
            }
            s.check_conservation();
        }
    }
}
