//! Shared.

use super::*;

fn shared(round_robin_batch: u32) -> Dispatcher {
    let mut config = DispatcherConfig::new(SubType::Shared, "persistent://public/default/t");
    config.max_round_robin_batch = round_robin_batch;
    Dispatcher::new(config, p(0))
}

fn add(d: &mut Dispatcher, id: ConsumerId, permits: u32) {
    d.add_consumer(ConsumerInfo::new(id, format!("c{id}")))
        .expect("added");
    d.flow(id, permits).expect("attached");
}

#[test]
fn shared_round_robin_with_permits() {
    let mut t = Topic::default();
    t.push_n(8, 1);
    let mut d = shared(1);
    add(&mut d, 1, 2);
    add(&mut d, 2, 2);
    add(&mut d, 3, 1);
    let got = t.pump(&mut d);
    let order: Vec<ConsumerId> = got.iter().map(|x| x.consumer_id).collect();
    assert_eq!(order, vec![1, 2, 3, 1, 2]);
    assert_eq!(entry_ids(&got), vec![0, 1, 2, 3, 4]);
    // Out of permits: the rest waits until a FLOW.
    d.flow(3, 10).expect("attached");
    let rest = t.pump(&mut d);
    assert!(rest.iter().all(|x| x.consumer_id == 3));
    assert_eq!(entry_ids(&rest), vec![5, 6, 7]);
}

#[test]
fn shared_round_robin_batches_per_turn() {
    let mut t = Topic::default();
    t.push_n(50, 1);
    let mut d = shared(20);
    add(&mut d, 1, 100);
    add(&mut d, 2, 100);
    let got = by_consumer(&t.pump(&mut d));
    assert_eq!(got[&1], (0..20).chain(40..50).collect::<Vec<_>>());
    assert_eq!(got[&2], (20..40).collect::<Vec<_>>());
}

#[test]
fn shared_priority_levels_prefer_level_zero() {
    let mut t = Topic::default();
    t.push_n(6, 1);
    let mut d = shared(1);
    d.add_consumer(ConsumerInfo::new(1, "low").with_priority(1))
        .expect("added");
    d.flow(1, 10).expect("attached");
    d.add_consumer(ConsumerInfo::new(2, "high")).expect("added");
    d.flow(2, 2).expect("attached");
    let got = by_consumer(&t.pump(&mut d));
    assert_eq!(got[&2], vec![0, 1]);
    assert_eq!(got[&1], vec![2, 3, 4, 5]);
}

#[test]
fn shared_permits_go_negative_with_batches() {
    let mut t = Topic::default();
    t.push_n(3, 10);
    let mut d = shared(20);
    add(&mut d, 1, 5);
    add(&mut d, 2, 5);
    let got = t.pump(&mut d);
    // One batch each: both end at -5 and the third entry waits.
    assert_eq!(
        by_consumer(&got),
        BTreeMap::from([(1, vec![0]), (2, vec![1])])
    );
    assert_eq!((d.permits(1), d.permits(2)), (Some(-5), Some(-5)));
    assert_eq!(d.redelivery_queue(), vec![p(2)]);
}

#[test]
fn shared_close_redelivers_pending_to_others() {
    let mut t = Topic::default();
    t.push_n(6, 1);
    let mut d = shared(20);
    add(&mut d, 1, 4);
    assert_eq!(entry_ids(&t.pump(&mut d)), vec![0, 1, 2, 3]);
    d.entry_acked(p(1));
    add(&mut d, 2, 10);
    assert_eq!(entry_ids(&t.pump(&mut d)), vec![4, 5]);
    assert_eq!(d.remove_consumer(1), Ok(vec![]));
    assert_eq!(d.redelivery_queue(), vec![p(0), p(2), p(3)]);
    let again = t.pump(&mut d);
    assert!(
        again
            .iter()
            .all(|x| x.consumer_id == 2 && x.redelivery_count == 0)
    );
    assert_eq!(entry_ids(&again), vec![0, 2, 3]);
    assert_eq!(d.pending(2), vec![p(0), p(2), p(3), p(4), p(5)]);
}

#[test]
fn nack_with_ids_redelivers_only_those_with_incremented_count() {
    let mut t = Topic::default();
    t.push_n(5, 1);
    let mut d = shared(20);
    add(&mut d, 1, 5);
    t.pump(&mut d);
    // Ids the consumer does not hold are ignored.
    assert_eq!(d.redeliver(1, Some(&[p(1), p(3), p(9)])), Ok(2));
    assert_eq!(d.pending(1), vec![p(0), p(2), p(4)]);
    d.flow(1, 10).expect("attached");
    let got = t.pump(&mut d);
    assert_eq!(entry_ids(&got), vec![1, 3]);
    assert!(got.iter().all(|x| x.redelivery_count == 1));
    d.redeliver(1, Some(&[p(3)])).expect("attached");
    let again = t.pump(&mut d);
    assert_eq!((entry_ids(&again), again[0].redelivery_count), (vec![3], 2));
    // Acknowledged: the count is forgotten.
    d.entry_acked(p(3));
    assert_eq!(d.redelivery_count(p(3)), 0);
}

#[test]
fn redelivery_queue_is_served_before_new_reads_in_position_order() {
    let mut t = Topic::default();
    t.push_n(10, 1);
    let mut d = shared(20);
    add(&mut d, 1, 6);
    t.pump(&mut d);
    d.redeliver(1, Some(&[p(4), p(1), p(2)])).expect("attached");
    d.flow(1, 5).expect("attached");
    assert_eq!(entry_ids(&t.pump(&mut d)), vec![1, 2, 4, 6, 7]);
}

#[test]
fn reads_are_sized_by_permits_and_average_batch() {
    let mut t = Topic::default();
    t.push_n(300, 4);
    let mut d = shared(20);
    add(&mut d, 1, 30);
    add(&mut d, 2, 50);
    match d.next_read(t.end()) {
        Some(ReadRequest::Read {
            max_entries,
            from,
            epoch,
        }) => {
            assert_eq!((from, max_entries), (p(0), 80));
            d.read_failed(epoch);
        }
        other => panic!("expected a read, got {other:?}"),
    }
    let mut d = shared(20);
    add(&mut d, 1, 400);
    assert_eq!(t.pump(&mut d).len(), 100);
    d.flow(1, 400).expect("attached");
    match d.next_read(t.end()) {
        // At most 100 messages per read, now known to come about 4 to an entry.
        Some(ReadRequest::Read { max_entries, .. }) => assert!((25..100).contains(&max_entries)),
        other => panic!("expected a read, got {other:?}"),
    }
}
