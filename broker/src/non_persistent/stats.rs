//! Pulsar's `NonPersistentTopicStats` for a non-persistent topic: the persistent topic's
//! figures without storage or backlog, plus what was dropped (`msgDropRate` per topic,
//! subscription and consumer; `msgDropCount` counters).

use std::sync::atomic::Ordering::Relaxed;

use serde_json::{Map, Value, json};

use super::NpTopic;
use crate::position::Position;
use crate::stats::{RateTracker, SubscriptionSnapshot, TopicSnapshot, type_name};
use crate::subscription_actor::{ConsumerStats, SubscriptionStats};

/// The topic's stats; rates come from the counters sampled by `rates`.
pub fn stats_json(topic: &NpTopic, rates: &RateTracker) -> Value {
    let name = topic.name().to_string();
    let c = &topic.counters;
    let (msg_in, msg_out, bytes_in, bytes_out) = (
        c.msg_in.load(Relaxed),
        c.msg_out.load(Relaxed),
        c.bytes_in.load(Relaxed),
        c.bytes_out.load(Relaxed),
    );
    let topic_rates = rates.rates(&name, [msg_in, msg_out, bytes_in, bytes_out]);
    // A drop rate is a rate of a counter: sampled like the others, under a key of its own.
    // Every key sampled for a subscription or consumer this time: the others are gone.
    let live = std::cell::RefCell::new(std::collections::HashSet::new());
    let drop_rate = |key: String, dropped: u64| {
        let rate = rates.rates(&key, [dropped, 0, 0, 0]).msg_in;
        live.borrow_mut().insert(key);
        rate
    };
    let mut subscriptions = Map::new();
    for sub in topic.subscriptions() {
        let sub_key = format!("{name}\u{0}np-sub\u{0}{}", sub.name());
        live.borrow_mut().insert(sub_key.clone());
        let sub_rates = rates.rates(
            &sub_key,
            [0, sub.msg_out.load(Relaxed), 0, sub.bytes_out.load(Relaxed)],
        );
        let consumers: Vec<Value> = sub
            .consumers()
            .iter()
            .map(|consumer| {
                let key = format!("{sub_key}\u{0}{}", consumer.link.id);
                live.borrow_mut().insert(key.clone());
                let r = rates.rates(
                    &key,
                    [
                        0,
                        consumer.msg_out.load(Relaxed),
                        0,
                        consumer.bytes_out.load(Relaxed),
                    ],
                );
                json!({
                    "consumerName": consumer.link.name,
                    "availablePermits": consumer.permits().max(0),
                    "unackedMessages": 0,
                    "msgRateOut": r.msg_out,
                    "msgThroughputOut": r.bytes_out,
                    "msgOutCounter": consumer.msg_out.load(Relaxed),
                    "bytesOutCounter": consumer.bytes_out.load(Relaxed),
                    "msgDropCount": consumer.dropped.load(Relaxed),
                    "msgDropRate": drop_rate(format!("{key}\u{0}drop"), consumer.dropped.load(Relaxed)),
                    "connectedSince": consumer.connected_since_ms.to_string(),
                })
            })
            .collect();
        let dropped = sub.dropped.load(Relaxed);
        subscriptions.insert(
            sub.name().to_string(),
            json!({
                "type": type_name(Some(sub.sub_type())),
                "msgRateOut": sub_rates.msg_out,
                "msgThroughputOut": sub_rates.bytes_out,
                "msgOutCounter": sub.msg_out.load(Relaxed),
                "bytesOutCounter": sub.bytes_out.load(Relaxed),
                "msgDropCount": dropped,
                "msgDropRate": drop_rate(format!("{sub_key}\u{0}drop"), dropped),
                "msgBacklog": 0,
                "unackedMessages": 0,
                "isDurable": false,
                "consumers": consumers,
            }),
        );
    }
    let publishers: Vec<Value> = topic
        .producer_names()
        .into_iter()
        .map(|name| json!({ "producerName": name }))
        .collect();
    let average = if msg_in > 0 {
        bytes_in as f64 / msg_in as f64
    } else {
        0.0
    };
    let dropped = topic.dropped();
    rates.retain_under(&format!("{name}\u{0}np-sub\u{0}"), &live.borrow());
    json!({
        "msgRateIn": topic_rates.msg_in,
        "msgRateOut": topic_rates.msg_out,
        "msgThroughputIn": topic_rates.bytes_in,
        "msgThroughputOut": topic_rates.bytes_out,
        "msgInCounter": msg_in,
        "msgOutCounter": msg_out,
        "bytesInCounter": bytes_in,
        "bytesOutCounter": bytes_out,
        "averageMsgSize": average,
        "msgDropRate": drop_rate(format!("{name}\u{0}drop"), dropped),
        "msgDropCount": dropped,
        "msgWithoutSubscriptionCount": topic.unrouted.load(Relaxed),
        "storageSize": 0,
        "backlogSize": 0,
        "publishers": publishers,
        "subscriptions": subscriptions,
        "replication": {},
        "deduplicationStatus": "Disabled",
    })
}

/// The topic's figures as the metrics render them (no storage, no backlog).
pub fn snapshot(topic: &NpTopic, rates: &RateTracker) -> TopicSnapshot {
    let c = &topic.counters;
    let counts = [
        c.msg_in.load(Relaxed),
        c.msg_out.load(Relaxed),
        c.bytes_in.load(Relaxed),
        c.bytes_out.load(Relaxed),
    ];
    let name = topic.name().to_string();
    let none = Position::new(-1, -1);
    let subscriptions = topic
        .subscriptions()
        .iter()
        .map(|sub| SubscriptionSnapshot {
            name: sub.name().to_string(),
            sub_type: Some(sub.sub_type()),
            backlog: 0,
            stats: Some(SubscriptionStats {
                backlog: 0,
                mark_delete: none,
                read_position: none,
                acked_ranges: 0,
                delayed: 0,
                consumers: sub
                    .consumers()
                    .iter()
                    .map(|consumer| ConsumerStats {
                        name: consumer.link.name.clone(),
                        available_permits: consumer.permits(),
                        unacked_messages: 0,
                        key_hash_ranges: Vec::new(),
                    })
                    .collect(),
            }),
        })
        .collect();
    TopicSnapshot {
        rates: rates.rates(&name, counts),
        namespace: topic.name().namespace(),
        name,
        msg_in: counts[0],
        msg_out: counts[1],
        bytes_in: counts[2],
        bytes_out: counts[3],
        storage_size: 0,
        offloaded_storage_size: 0,
        entries: 0,
        producers: topic.producer_names(),
        subscriptions,
        deduplication_status: "Disabled",
        compaction: Default::default(),
        replication: Vec::new(),
    }
}
