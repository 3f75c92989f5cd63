//! Non-persistent dispatch without a connection: consumers are links whose outbound queue the
//! test reads.

use magnetar_protocol::pulsar::MessageMetadata;
use magnetar_protocol::{Frame, Payload, TopicName};
use tokio::sync::mpsc;

use super::*;
use crate::topic_producers::{AccessMode, ProducerOwner};

fn topic() -> NpTopic {
    let guards = limits::GuardMetrics::register(&prometheus::Registry::new()).expect("metrics");
    let name = TopicName::parse("non-persistent://public/default/t").expect("name");
    NpTopic::new(name, TopicLimits::default(), guards)
}

struct Client {
    out: mpsc::Receiver<Box<Frame>>,
    evicted: mpsc::UnboundedReceiver<(u64, u64)>,
}

fn link(id: u64, name: &str, queue: usize) -> (ConsumerLink, Client) {
    let (out, rx) = mpsc::channel(queue);
    let (evicted, evicted_rx) = mpsc::unbounded_channel();
    let link = ConsumerLink {
        id,
        client_consumer_id: id + 100,
        name: name.to_string(),
        priority_level: 0,
        out,
        protocol_version: 21,
        partition: -1,
        hash_ranges: Vec::new(),
        evicted,
    };
    (
        link,
        Client {
            out: rx,
            evicted: evicted_rx,
        },
    )
}

fn publish(topic: &NpTopic, key: &str, body: &[u8]) {
    let metadata = MessageMetadata {
        producer_name: "p".into(),
        partition_key: Some(key.into()),
        ..Default::default()
    };
    topic.publish(Payload::new(&metadata, body), &metadata, 1);
}

/// Bodies of the MESSAGE frames queued for a client (other frames skipped).
fn received(client: &mut Client) -> Vec<Vec<u8>> {
    let mut bodies = Vec::new();
    while let Ok(frame) = client.out.try_recv() {
        if let (Some(message), Some(payload)) = (&frame.command.message, &frame.payload) {
            assert_eq!(
                (message.message_id.ledger_id, message.message_id.entry_id),
                (0, 0)
            );
            bodies.push(payload.body().to_vec());
        }
    }
    bodies
}

#[test]
fn messages_without_permits_are_dropped_and_counted() {
    let topic = topic();
    let (l, mut client) = link(1, "c", 64);
    let sub = topic
        .subscribe("s", SubType::Exclusive, false, l)
        .expect("subscribe");
    publish(&topic, "k", b"before-flow");
    sub.flow(1, 2);
    for body in [b"a", b"b", b"c"] {
        publish(&topic, "k", body);
    }
    assert_eq!(received(&mut client), vec![b"a".to_vec(), b"b".to_vec()]);
    assert_eq!(sub.dropped.load(Ordering::Relaxed), 2);
    assert_eq!(topic.dropped(), 2);
    assert_eq!(topic.counters.msg_in.load(Ordering::Relaxed), 4);
    assert_eq!(topic.counters.msg_out.load(Ordering::Relaxed), 2);
}

#[test]
fn a_full_connection_loses_the_message_not_the_topic() {
    let topic = topic();
    let (l, mut client) = link(1, "c", 1);
    let sub = topic
        .subscribe("s", SubType::Exclusive, false, l)
        .expect("subscribe");
    sub.flow(1, 100);
    for body in [b"a", b"b", b"c"] {
        publish(&topic, "k", body);
    }
    assert_eq!(received(&mut client), vec![b"a".to_vec()]);
    assert_eq!(sub.dropped.load(Ordering::Relaxed), 2);
}

#[test]
fn shared_goes_round_robin_over_consumers_with_permits() {
    let topic = topic();
    let (a, mut ca) = link(1, "a", 64);
    let (b, mut cb) = link(2, "b", 64);
    let sub = topic.subscribe("s", SubType::Shared, false, a).expect("a");
    topic.subscribe("s", SubType::Shared, false, b).expect("b");
    sub.flow(1, 10);
    sub.flow(2, 1);
    for i in 0..5u8 {
        publish(&topic, "k", &[i]);
    }
    assert_eq!(received(&mut ca), vec![vec![0], vec![2], vec![3], vec![4]]);
    assert_eq!(received(&mut cb), vec![vec![1]]);
    assert_eq!(sub.dropped.load(Ordering::Relaxed), 0);
}

#[test]
fn key_shared_keeps_each_key_on_one_consumer() {
    let topic = topic();
    let (a, mut ca) = link(1, "a", 256);
    let (b, mut cb) = link(2, "b", 256);
    let sub = topic
        .subscribe("s", SubType::KeyShared, false, a)
        .expect("a");
    topic
        .subscribe("s", SubType::KeyShared, false, b)
        .expect("b");
    sub.flow(1, 1000);
    sub.flow(2, 1000);
    for i in 0..100u8 {
        publish(&topic, &format!("key-{}", i % 10), &[i % 10]);
    }
    let (ra, rb) = (received(&mut ca), received(&mut cb));
    assert_eq!(ra.len() + rb.len(), 100);
    for key in 0..10u8 {
        let on_a = ra.iter().any(|m| m[0] == key);
        let on_b = rb.iter().any(|m| m[0] == key);
        assert!(on_a ^ on_b, "key {key} went to both consumers or none");
    }
    assert!(
        !ra.is_empty() && !rb.is_empty(),
        "ten keys all on one consumer"
    );
}

#[test]
fn failover_moves_to_the_next_consumer_when_the_active_one_leaves() {
    let topic = topic();
    let (a, mut ca) = link(1, "a", 64);
    let (b, mut cb) = link(2, "b", 64);
    let sub = topic
        .subscribe("s", SubType::Failover, false, a)
        .expect("a");
    topic
        .subscribe("s", SubType::Failover, false, b)
        .expect("b");
    sub.flow(1, 10);
    sub.flow(2, 10);
    publish(&topic, "k", b"1");
    let (ra, rb) = (received(&mut ca), received(&mut cb));
    assert_eq!(ra.len() + rb.len(), 1, "one active consumer gets it");
    let (gone, mut stays) = if ra.len() == 1 { (1, cb) } else { (2, ca) };
    topic.remove_consumer(&sub, gone);
    publish(&topic, "k", b"2");
    assert_eq!(received(&mut stays), vec![b"2".to_vec()]);
}

#[test]
fn subscriptions_end_with_their_last_consumer_and_types_must_match() {
    let topic = topic();
    let (a, _ca) = link(1, "a", 8);
    let sub = topic.subscribe("s", SubType::Shared, false, a).expect("a");
    let (b, _cb) = link(2, "b", 8);
    let refused = topic.subscribe("s", SubType::Exclusive, false, b);
    assert!(matches!(refused, Err(BrokerError::ConsumerBusy(_))));
    topic.remove_consumer(&sub, 1);
    assert!(topic.subscriptions().is_empty());
    assert!(topic.is_idle());
    publish(&topic, "k", b"nobody");
    assert_eq!(topic.unrouted.load(Ordering::Relaxed), 1);
    let (c, _cc) = link(3, "c", 8);
    topic
        .subscribe("s", SubType::Exclusive, false, c)
        .expect("a new subscription of another type");
}

#[test]
fn unloading_closes_consumers_and_producers_and_refuses_new_ones() {
    let topic = topic();
    let (a, mut ca) = link(1, "a", 8);
    topic.subscribe("s", SubType::Shared, false, a).expect("a");
    let (closer_out, mut producer_rx) = mpsc::channel(8);
    let (evicted, mut producer_evicted) = mpsc::unbounded_channel();
    let join = Join {
        name: "p".into(),
        owner: ProducerOwner {
            connection: 1,
            producer_id: 7,
        },
        closer: Some(crate::topic_producers::ProducerCloser {
            out: closer_out,
            evicted,
        }),
        mode: AccessMode::Shared,
        epoch: None,
    };
    assert!(matches!(topic.add_producer(join), Ok(Joined::Ready { .. })));
    topic.unload();
    assert_eq!(ca.evicted.try_recv().ok(), Some((101, 1)));
    let close = ca.out.try_recv().expect("CLOSE_CONSUMER");
    assert!(close.command.close_consumer.is_some());
    assert_eq!(producer_evicted.try_recv().ok(), Some(7));
    assert!(
        producer_rx
            .try_recv()
            .expect("CLOSE_PRODUCER")
            .command
            .close_producer
            .is_some()
    );
    let (b, _cb) = link(2, "b", 8);
    assert!(matches!(
        topic.subscribe("s", SubType::Shared, false, b),
        Err(BrokerError::ServiceNotReady(_))
    ));
}

#[test]
fn a_refused_consumer_leaves_no_subscription_behind() {
    let topic = topic();
    // A STICKY Key_Shared consumer without hash ranges is refused.
    let (l, _client) = link(1, "c", 8);
    let refused = topic.subscribe("s", SubType::KeyShared, true, l);
    assert!(matches!(refused, Err(BrokerError::ConsumerAssign(_))));
    assert!(topic.subscriptions().is_empty());
    assert!(topic.is_idle());
    assert_eq!(topic.counters.consumers.load(Ordering::Relaxed), 0);
}

#[test]
fn a_consumer_whose_connection_is_gone_is_dropped_on_the_next_message() {
    let topic = topic();
    let (l, client) = link(1, "gone", 8);
    let sub = topic
        .subscribe("s", SubType::Exclusive, false, l)
        .expect("subscribe");
    sub.flow(1, 10);
    drop(client);
    publish(&topic, "k", b"x");
    assert!(
        topic.subscriptions().is_empty(),
        "the dead consumer held the subscription"
    );
    assert_eq!(topic.counters.consumers.load(Ordering::Relaxed), 0);
    let (l, mut next) = link(2, "next", 8);
    let sub = topic
        .subscribe("s", SubType::Exclusive, false, l)
        .expect("the exclusive slot is free");
    sub.flow(2, 10);
    publish(&topic, "k", b"y");
    assert_eq!(received(&mut next), vec![b"y".to_vec()]);
}

#[test]
fn deleting_a_subscription_counts_each_consumer_once() {
    let topic = topic();
    let (a, _ca) = link(1, "a", 8);
    let (b, _cb) = link(2, "b", 8);
    let sub = topic.subscribe("s", SubType::Shared, false, a).expect("a");
    topic.subscribe("s", SubType::Shared, false, b).expect("b");
    assert!(topic.delete_subscription("s"));
    // A consumer closing after the deletion is not counted again.
    topic.remove_consumer(&sub, 1);
    assert_eq!(topic.counters.consumers.load(Ordering::Relaxed), 0);
}
