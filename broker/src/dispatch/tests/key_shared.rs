//! Key_Shared.

use super::*;

fn key_shared() -> Dispatcher {
    dispatcher(SubType::KeyShared)
}

fn add(d: &mut Dispatcher, id: ConsumerId, name: &str, permits: u32) {
    d.add_consumer(ConsumerInfo::new(id, name)).expect("added");
    d.flow(id, permits).expect("attached");
}

fn owner(d: &Dispatcher, key: &str) -> ConsumerId {
    let slot = hash::sticky_key_hash(key.as_bytes());
    d.key_hash_ranges()
        .iter()
        .find(|(start, end, _)| (*start..=*end).contains(&slot))
        .map(|r| r.2)
        .expect("ranges cover every slot")
}

fn keys(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("key-{i}")).collect()
}

/// Entries per key, in delivery order, with the consumer they went to.
fn per_key(t: &Topic, ds: &[Delivery]) -> BTreeMap<u32, Vec<(ConsumerId, i64)>> {
    let mut m: BTreeMap<u32, Vec<(ConsumerId, i64)>> = BTreeMap::new();
    for x in ds {
        m.entry(t.get(x.position).slot)
            .or_default()
            .push((x.consumer_id, x.position.entry_id));
    }
    m
}

#[test]
fn same_key_goes_to_same_consumer() {
    let mut t = Topic::default();
    let mut d = key_shared();
    for (id, name) in [(1, "a"), (2, "b"), (3, "c")] {
        add(&mut d, id, name, 1000);
    }
    let ks = keys(30);
    for round in 0..3 {
        for k in &ks {
            t.push(1 + round, Some(k));
        }
    }
    let got = t.pump(&mut d);
    assert_eq!(got.len(), 90);
    for x in &got {
        let e = t.get(x.position);
        let k = &ks[(x.position.entry_id % 30) as usize];
        assert_eq!(x.consumer_id, owner(&d, k), "entry {} of {k}", x.position);
        assert_eq!(e.slot, hash::sticky_key_hash(k.as_bytes()));
    }
    let used: std::collections::BTreeSet<ConsumerId> = got.iter().map(|x| x.consumer_id).collect();
    assert_eq!(used.len(), 3, "30 keys spread over all consumers");
}

#[test]
fn messages_without_key_use_the_none_key_slot() {
    let mut t = Topic::default();
    let mut d = key_shared();
    add(&mut d, 1, "a", 100);
    add(&mut d, 2, "b", 100);
    t.push_n(10, 1);
    let got = t.pump(&mut d);
    let target = owner(&d, "NONE_KEY");
    assert!(got.iter().all(|x| x.consumer_id == target));
    assert_eq!(got.len(), 10);
}

#[test]
fn join_blocks_moved_keys_until_the_previous_owner_acks() {
    let mut t = Topic::default();
    let mut d = key_shared();
    add(&mut d, 1, "a", 1000);
    let ks = keys(20);
    for k in ks.iter().chain(ks.iter()) {
        t.push(1, Some(k));
    }
    assert_eq!(t.pump(&mut d).len(), 40);
    add(&mut d, 2, "b", 1000);
    let moved: Vec<usize> = (0..20).filter(|i| owner(&d, &ks[*i]) == 2).collect();
    assert!(
        !moved.is_empty() && moved.len() < 20,
        "some keys move to the newcomer"
    );
    for k in &ks {
        t.push(1, Some(k));
    }
    let got = t.pump(&mut d);
    // Keys that stayed with "a" flow on; moved keys wait while "a" holds their entries.
    assert!(got.iter().all(|x| x.consumer_id == 1));
    assert_eq!(got.len(), 20 - moved.len());
    let waiting: Vec<i64> = moved.iter().map(|i| 40 + *i as i64).collect();
    assert_eq!(entry_ids_of(&d.redelivery_queue()), waiting);
    // "a" acks both entries of the first moved key: only that key is released to "b".
    let k = moved[0] as i64;
    d.entry_acked(p(k));
    assert!(
        t.pump(&mut d).is_empty(),
        "one entry of the key is still unacked"
    );
    d.entry_acked(p(20 + k));
    let released = t.pump(&mut d);
    assert_eq!(
        released,
        vec![Delivery {
            consumer_id: 2,
            position: p(40 + k),
            num_messages: 1,
            redelivery_count: 0
        }]
    );
}

fn entry_ids_of(ps: &[Position]) -> Vec<i64> {
    ps.iter().map(|q| q.entry_id).collect()
}

#[test]
fn leave_redelivers_the_keys_in_order_before_newer_entries() {
    let mut t = Topic::default();
    let mut d = key_shared();
    add(&mut d, 1, "a", 1000);
    add(&mut d, 2, "b", 1000);
    let ks = keys(20);
    for k in &ks {
        t.push(1, Some(k));
        t.push(1, Some(k));
    }
    t.pump(&mut d);
    let held_by_b = d.pending(2);
    assert!(!held_by_b.is_empty());
    d.entry_acked(held_by_b[0]);
    d.remove_consumer(2).expect("attached");
    for k in &ks {
        t.push(1, Some(k));
    }
    let got = t.pump(&mut d);
    assert!(got.iter().all(|x| x.consumer_id == 1));
    for (slot, seq) in per_key(&t, &got) {
        let ids: Vec<i64> = seq.iter().map(|(_, e)| *e).collect();
        let mut sorted = ids.clone();
        sorted.sort_unstable();
        assert_eq!(ids, sorted, "slot {slot} out of order");
    }
    assert_eq!(got.len(), held_by_b.len() - 1 + 20);
}

#[test]
fn new_entry_waits_behind_a_queued_entry_of_its_key() {
    let mut t = Topic::default();
    let mut d = key_shared();
    add(&mut d, 1, "a", 100);
    t.push(1, Some("k"));
    t.push(1, Some("k"));
    assert_eq!(entry_ids(&t.pump(&mut d)), vec![0, 1]);
    t.push(1, Some("k"));
    let req = d.next_read(t.end()).expect("a read of the new entry");
    // The consumer nacks entry 1 while entry 2 is being read.
    d.redeliver(1, Some(&[p(1)])).expect("attached");
    assert!(t.serve(&mut d, req).is_empty(), "2 must not overtake 1");
    let got = t.pump(&mut d);
    assert_eq!(entry_ids(&got), vec![1, 2]);
    assert_eq!(got[0].redelivery_count, 1);
}

#[test]
fn busy_consumer_does_not_stall_other_keys_and_look_ahead_is_bounded() {
    let mut config = DispatcherConfig::new(SubType::KeyShared, "persistent://public/default/t");
    config.max_read_batch = 2;
    config.key_shared_look_ahead_per_consumer = 0;
    config.key_shared_look_ahead_per_subscription = 5;
    let mut d = Dispatcher::new(config, p(0));
    add(&mut d, 1, "a", 0);
    add(&mut d, 2, "b", 100);
    let busy = keys(50)
        .into_iter()
        .find(|k| owner(&d, k) == 1)
        .expect("a key of a");
    let free = keys(50)
        .into_iter()
        .find(|k| owner(&d, k) == 2)
        .expect("a key of b");
    let mut t = Topic::default();
    for i in 0..20 {
        t.push(1, Some(if i % 4 == 3 { &free } else { &busy }));
    }
    let got = t.pump(&mut d);
    assert_eq!(entry_ids(&got), vec![3]);
    assert!(got.iter().all(|x| x.consumer_id == 2));
    // Reading stops once 5 entries wait for the busy consumer.
    assert_eq!(entry_ids_of(&d.redelivery_queue()), vec![0, 1, 2, 4, 5]);
    assert_eq!(d.read_position(), p(6));
    d.flow(1, 100).expect("attached");
    let rest = t.pump(&mut d);
    assert_eq!(got.len() + rest.len(), 20);
}

#[test]
fn out_of_order_mode_does_not_wait_for_the_previous_owner() {
    let mut config = DispatcherConfig::new(SubType::KeyShared, "persistent://public/default/t");
    config.key_shared_allow_out_of_order = true;
    let mut d = Dispatcher::new(config, p(0));
    add(&mut d, 1, "a", 1000);
    let mut t = Topic::default();
    let ks = keys(20);
    for k in &ks {
        t.push(1, Some(k));
    }
    t.pump(&mut d);
    add(&mut d, 2, "b", 1000);
    for k in &ks {
        t.push(1, Some(k));
    }
    let got = t.pump(&mut d);
    assert_eq!(got.len(), 20);
    assert!(got.iter().any(|x| x.consumer_id == 2));
}

fn sticky() -> Dispatcher {
    let mut config = DispatcherConfig::new(SubType::KeyShared, "persistent://public/default/t");
    config.key_shared_sticky = true;
    Dispatcher::new(config, p(0))
}

#[test]
fn sticky_consumers_get_their_ranges_and_uncovered_keys_wait() {
    let mut t = Topic::default();
    let mut d = sticky();
    d.add_consumer(ConsumerInfo::new(1, "low").with_hash_ranges(vec![(0, 32767)]))
        .expect("low range");
    d.flow(1, 1000).expect("attached");
    assert!(matches!(
        d.add_consumer(ConsumerInfo::new(2, "clash").with_hash_ranges(vec![(32000, 40000)])),
        Err(DispatchError::ConsumerAssign(_))
    ));
    assert!(
        !d.consumer_ids().contains(&2),
        "a refused consumer is not attached"
    );
    let ks = keys(40);
    for k in &ks {
        t.push(1, Some(k));
    }
    let low = |k: &String| hash::sticky_range_hash(k.as_bytes()) <= 32767;
    let got = t.pump(&mut d);
    let expected: Vec<i64> = (0..40).filter(|i| low(&ks[*i as usize])).collect();
    assert!(!expected.is_empty() && expected.len() < 40);
    assert_eq!(entry_ids(&got), expected);
    // The other keys wait until a consumer takes their range.
    d.add_consumer(ConsumerInfo::new(3, "high").with_hash_ranges(vec![(32768, 65535)]))
        .expect("high range");
    d.flow(3, 1000).expect("attached");
    let later = t.pump(&mut d);
    assert!(later.iter().all(|x| x.consumer_id == 3));
    let expected: Vec<i64> = (0..40).filter(|i| !low(&ks[*i as usize])).collect();
    assert_eq!(entry_ids(&later), expected);
    assert_eq!(d.key_hash_ranges(), vec![(0, 32767, 1), (32768, 65535, 3)]);
}
