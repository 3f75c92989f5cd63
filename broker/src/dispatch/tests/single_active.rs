//! Exclusive and Failover.

use super::*;

fn failover(partition: Option<u32>) -> Dispatcher {
    let mut config = DispatcherConfig::new(SubType::Failover, "persistent://public/default/t");
    config.partition_index = partition;
    Dispatcher::new(config, p(0))
}

#[test]
fn exclusive_refuses_second_consumer() {
    let mut d = dispatcher(SubType::Exclusive);
    assert_eq!(d.add_consumer(ConsumerInfo::new(1, "a")), Ok(vec![]));
    assert_eq!(d.active_consumer(), Some(1));
    assert_eq!(
        d.add_consumer(ConsumerInfo::new(2, "b")),
        Err(DispatchError::ConsumerBusy { existing: 1 })
    );
    assert_eq!(
        d.add_consumer(ConsumerInfo::new(1, "a")),
        Err(DispatchError::DuplicateConsumer(1))
    );
    // Once the first one is gone, another may come.
    d.remove_consumer(1).expect("attached");
    assert_eq!(d.add_consumer(ConsumerInfo::new(2, "b")), Ok(vec![]));
    assert_eq!(d.remove_consumer(9), Err(DispatchError::UnknownConsumer(9)));
}

#[test]
fn exclusive_delivers_in_order_within_permits() {
    let mut t = Topic::default();
    t.push_n(10, 1);
    let mut d = dispatcher(SubType::Exclusive);
    d.add_consumer(ConsumerInfo::new(1, "a")).expect("first");
    assert!(t.pump(&mut d).is_empty(), "no permits, nothing read");
    d.flow(1, 4).expect("attached");
    let first = t.pump(&mut d);
    assert_eq!(entry_ids(&first), vec![0, 1, 2, 3]);
    assert!(
        first
            .iter()
            .all(|x| x.consumer_id == 1 && x.redelivery_count == 0)
    );
    d.flow(1, 100).expect("attached");
    assert_eq!(entry_ids(&t.pump(&mut d)), (4..10).collect::<Vec<_>>());
    assert_eq!(d.pending(1).len(), 10);
    assert_eq!(d.read_position(), p(10));
    assert_eq!(d.next_read(t.end()), None, "nothing new to read");
}

#[test]
fn permits_go_negative_with_batches_and_block_delivery() {
    let mut t = Topic::default();
    t.push_n(4, 5);
    let mut d = dispatcher(SubType::Exclusive);
    d.add_consumer(ConsumerInfo::new(1, "a")).expect("first");
    d.flow(1, 7).expect("attached");
    // 7 → 2 after the first batch of 5, → -3 after the second; then nothing.
    assert_eq!(entry_ids(&t.pump(&mut d)), vec![0, 1]);
    assert_eq!(d.permits(1), Some(-3));
    assert_eq!(d.unacked_messages(1), 10);
    d.flow(1, 3).expect("attached");
    assert!(t.pump(&mut d).is_empty(), "zero permits deliver nothing");
    d.flow(1, 1).expect("attached");
    assert_eq!(entry_ids(&t.pump(&mut d)), vec![2]);
    assert_eq!(d.permits(1), Some(-4));
}

#[test]
fn failover_active_is_sorted_by_priority_then_name() {
    let mut d = failover(Some(1));
    d.add_consumer(ConsumerInfo::new(1, "b")).expect("added");
    d.add_consumer(ConsumerInfo::new(2, "a")).expect("added");
    d.add_consumer(ConsumerInfo::new(3, "0-low").with_priority(1))
        .expect("added");
    // Highest-priority group sorted by name is [a, b]; partition 1 % 2 picks b.
    assert_eq!(d.active_consumer(), Some(1));
    d.remove_consumer(1).expect("attached");
    assert_eq!(d.active_consumer(), Some(2));
    d.remove_consumer(2).expect("attached");
    assert_eq!(d.active_consumer(), Some(3));
}

#[test]
fn failover_switch_notifies_every_consumer() {
    let mut d = failover(Some(0));
    assert_eq!(
        d.add_consumer(ConsumerInfo::new(1, "b")),
        Ok(vec![change(1, true)])
    );
    // "a" sorts first and takes over: everybody hears about it.
    assert_eq!(
        d.add_consumer(ConsumerInfo::new(2, "a")),
        Ok(vec![change(1, false), change(2, true)])
    );
    // "c" does not change the active consumer: only the newcomer is told.
    assert_eq!(
        d.add_consumer(ConsumerInfo::new(3, "c")),
        Ok(vec![change(3, false)])
    );
    // Closing a standby changes nothing.
    assert_eq!(d.remove_consumer(3), Ok(vec![]));
    // Closing the active one hands over to the next.
    assert_eq!(d.remove_consumer(2), Ok(vec![change(1, true)]));
    assert_eq!(d.remove_consumer(1), Ok(vec![]));
}

#[test]
fn exclusive_sends_no_active_consumer_change() {
    let mut d = dispatcher(SubType::Exclusive);
    assert_eq!(d.add_consumer(ConsumerInfo::new(1, "a")), Ok(vec![]));
}

#[test]
fn non_partitioned_failover_picks_by_topic_hash_not_arrival() {
    let names = ["consumer-1", "consumer-2", "consumer-3"];
    let mut forward = failover(None);
    let mut backward = failover(None);
    for (i, n) in names.iter().enumerate() {
        forward
            .add_consumer(ConsumerInfo::new(i as u64, *n))
            .expect("added");
    }
    for (i, n) in names.iter().enumerate().rev() {
        backward
            .add_consumer(ConsumerInfo::new(i as u64, *n))
            .expect("added");
    }
    assert!(forward.active_consumer().is_some());
    assert_eq!(forward.active_consumer(), backward.active_consumer());
}

#[test]
fn failover_switch_redelivers_unacked_in_order() {
    let mut t = Topic::default();
    t.push_n(8, 1);
    let mut d = failover(Some(0));
    d.add_consumer(ConsumerInfo::new(1, "b")).expect("added");
    d.flow(1, 5).expect("attached");
    assert_eq!(entry_ids(&t.pump(&mut d)), vec![0, 1, 2, 3, 4]);
    d.entry_acked(p(1));
    d.add_consumer(ConsumerInfo::new(2, "a")).expect("added");
    assert_eq!(d.active_consumer(), Some(2));
    assert!(d.pending(1).is_empty());
    assert_eq!(d.redelivery_queue(), vec![p(0), p(2), p(3), p(4)]);
    d.flow(2, 100).expect("attached");
    let got = t.pump(&mut d);
    assert!(
        got.iter()
            .all(|x| x.consumer_id == 2 && x.redelivery_count == 0)
    );
    assert_eq!(entry_ids(&got), vec![0, 2, 3, 4, 5, 6, 7]);
    // The old consumer's late ack still counts.
    d.entry_acked(p(0));
    assert_eq!(d.pending(2), vec![p(2), p(3), p(4), p(5), p(6), p(7)]);
}

#[test]
fn redeliver_without_ids_redelivers_all_pending_with_count() {
    let mut t = Topic::default();
    t.push_n(6, 1);
    let mut d = dispatcher(SubType::Exclusive);
    d.add_consumer(ConsumerInfo::new(1, "a")).expect("first");
    d.flow(1, 3).expect("attached");
    t.pump(&mut d);
    d.entry_acked(p(1));
    assert_eq!(d.redeliver(1, None), Ok(2));
    d.flow(1, 10).expect("attached");
    let got = t.pump(&mut d);
    assert_eq!(entry_ids(&got), vec![0, 2, 3, 4, 5]);
    let counts: Vec<u32> = got.iter().map(|x| x.redelivery_count).collect();
    assert_eq!(counts, vec![1, 1, 0, 0, 0]);
    // Exclusive ignores listed ids, as Java: everything pending comes back.
    assert_eq!(d.redeliver(1, Some(&[p(3)])), Ok(5));
    assert_eq!(d.redelivery_count(p(0)), 2);
    assert_eq!(d.redeliver(7, None), Err(DispatchError::UnknownConsumer(7)));
}

#[test]
fn new_entries_read_during_a_redelivery_wait_behind_it() {
    let mut t = Topic::default();
    t.push_n(6, 1);
    let mut d = dispatcher(SubType::Exclusive);
    d.add_consumer(ConsumerInfo::new(1, "a")).expect("first");
    d.flow(1, 2).expect("attached");
    t.pump(&mut d);
    d.flow(1, 10).expect("attached");
    let req = d.next_read(t.end()).expect("a read of new entries");
    assert!(matches!(req, ReadRequest::Read { .. }));
    // The client asks for redelivery while the read is in flight.
    d.redeliver(1, None).expect("attached");
    assert!(
        t.serve(&mut d, req).is_empty(),
        "2.. must not overtake 0 and 1"
    );
    assert_eq!(entry_ids(&t.pump(&mut d)), vec![0, 1, 2, 3, 4, 5]);
}

#[test]
fn acks_and_mark_delete_clear_pending_and_queue() {
    let mut t = Topic::default();
    t.push_n(6, 1);
    let mut d = dispatcher(SubType::Exclusive);
    d.add_consumer(ConsumerInfo::new(1, "a")).expect("first");
    d.flow(1, 6).expect("attached");
    t.pump(&mut d);
    d.redeliver(1, None).expect("attached");
    d.mark_delete_moved(p(3));
    assert_eq!(d.redelivery_queue(), vec![p(4), p(5)]);
    assert_eq!(d.redelivery_count(p(2)), 0);
    d.entry_acked(p(5));
    assert_eq!(d.redelivery_queue(), vec![p(4)]);
}

#[test]
fn stale_read_results_are_ignored_after_reset() {
    let mut t = Topic::default();
    t.push_n(4, 1);
    let mut d = dispatcher(SubType::Exclusive);
    d.add_consumer(ConsumerInfo::new(1, "a")).expect("first");
    d.flow(1, 10).expect("attached");
    let req = d.next_read(t.end()).expect("a read");
    assert_eq!(d.next_read(t.end()), None, "one read at a time");
    assert_eq!(d.reset(p(2)), vec![1]);
    assert!(t.serve(&mut d, req).is_empty());
    d.add_consumer(ConsumerInfo::new(2, "b"))
        .expect("fresh consumer after seek");
    d.flow(2, 10).expect("attached");
    assert_eq!(entry_ids(&t.pump(&mut d)), vec![2, 3]);
}

#[test]
fn removing_a_standby_can_move_a_partition_to_another_consumer() {
    let mut t = Topic::default();
    t.push_n(3, 1);
    let mut d = failover(Some(1));
    for (id, name) in [(1, "a"), (2, "b"), (3, "c")] {
        d.add_consumer(ConsumerInfo::new(id, name)).expect("added");
    }
    assert_eq!(d.active_consumer(), Some(2));
    d.flow(2, 10).expect("attached");
    assert_eq!(entry_ids(&t.pump(&mut d)), vec![0, 1, 2]);
    // Group [b, c]: partition 1 now belongs to c; b's unacked entries move with it.
    assert_eq!(
        d.remove_consumer(1),
        Ok(vec![change(2, false), change(3, true)])
    );
    assert_eq!(d.redelivery_queue(), vec![p(0), p(1), p(2)]);
    d.flow(3, 10).expect("attached");
    let got = t.pump(&mut d);
    assert!(got.iter().all(|x| x.consumer_id == 3));
    assert_eq!(entry_ids(&got), vec![0, 1, 2]);
}
