//! Delayed delivery.

use super::*;

fn shared(capacity: usize) -> Dispatcher {
    let mut config = DispatcherConfig::new(SubType::Shared, "persistent://public/default/t");
    config.delayed_index_capacity = capacity;
    let mut d = Dispatcher::new(config, p(0));
    d.add_consumer(ConsumerInfo::new(1, "c")).expect("added");
    d.flow(1, 1_000_000).expect("attached");
    d.set_clock(1_000);
    d
}

#[test]
fn delayed_entries_wait_until_due_and_others_do_not() {
    let mut t = Topic::default();
    let mut d = shared(100);
    t.push_delayed(5_000);
    t.push(1, None);
    t.push_delayed(3_000);
    t.push_delayed(900); // already due
    assert_eq!(entry_ids(&t.pump(&mut d)), vec![1, 3]);
    assert_eq!((d.delayed_entries(), d.next_delayed_at()), (2, Some(3_000)));
    d.set_clock(2_999);
    assert!(t.pump(&mut d).is_empty());
    d.set_clock(3_000);
    assert_eq!(entry_ids(&t.pump(&mut d)), vec![2]);
    d.set_clock(10_000);
    assert_eq!(entry_ids(&t.pump(&mut d)), vec![0]);
    assert_eq!((d.delayed_entries(), d.next_delayed_at()), (0, None));
}

#[test]
fn exclusive_and_failover_deliver_at_once() {
    for sub_type in [SubType::Exclusive, SubType::Failover] {
        let mut t = Topic::default();
        let mut d = dispatcher(sub_type);
        d.add_consumer(ConsumerInfo::new(1, "c")).expect("added");
        d.flow(1, 100).expect("attached");
        d.set_clock(1_000);
        t.push_delayed(5_000);
        t.push(1, None);
        assert_eq!(entry_ids(&t.pump(&mut d)), vec![0, 1], "{sub_type:?}");
    }
}

#[test]
fn acknowledged_delayed_entries_are_never_delivered() {
    let mut t = Topic::default();
    let mut d = shared(100);
    t.push_delayed(5_000);
    t.push_delayed(5_000);
    t.push_delayed(5_000);
    assert!(t.pump(&mut d).is_empty());
    d.mark_delete_moved(p(0)); // skipped by an admin, say
    d.entry_acked(p(2));
    d.set_clock(6_000);
    assert_eq!(entry_ids(&t.pump(&mut d)), vec![1]);
}

#[test]
fn turning_delayed_delivery_off_releases_everything() {
    let mut t = Topic::default();
    let mut d = shared(100);
    t.push_delayed(50_000);
    t.push_delayed(60_000);
    assert!(t.pump(&mut d).is_empty());
    d.set_delayed_delivery(false);
    t.push_delayed(70_000);
    assert_eq!(entry_ids(&t.pump(&mut d)), vec![0, 1, 2]);
}

#[test]
fn over_capacity_every_delayed_entry_still_arrives_once_in_due_order() {
    let mut t = Topic::default();
    let mut d = shared(4);
    // 40 delayed entries due in reverse order of position, with plain ones in between.
    let mut plain = Vec::new();
    for i in 0..40u64 {
        t.push_delayed(100_000 - i * 1_000);
        if i % 10 == 0 {
            plain.push(t.push(1, None).entry_id);
        }
    }
    assert_eq!(
        entry_ids(&t.pump(&mut d)),
        plain,
        "plain entries are not held back"
    );
    assert!(d.delayed_entries() <= 4);
    let mut delivered = Vec::new();
    let mut now = 1_000;
    while now <= 100_000 {
        now += 500;
        d.set_clock(now);
        for x in t.pump(&mut d) {
            let due = t.get(x.position).deliver_at.expect("delayed");
            assert!(
                due <= now,
                "entry {} delivered before it was due",
                x.position
            );
            delivered.push(due);
        }
        assert!(
            d.delayed_entries() <= 4,
            "the index stays within its capacity"
        );
    }
    assert_eq!(delivered.len(), 40, "each delayed entry once");
    let mut sorted = delivered.clone();
    sorted.sort_unstable();
    assert_eq!(delivered, sorted, "in due order");
}
