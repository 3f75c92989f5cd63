//! A subscription of a non-persistent topic: its consumers, who gets each message, and what it
//! dropped. Nothing is stored, so there is no cursor, no backlog and no redelivery: a message
//! goes to the consumer the subscription type picks if that consumer has a permit and room on
//! its connection, and is dropped otherwise (Pulsar's `NonPersistentDispatcher*`).
//!
//! - Exclusive and Failover: the active consumer (Failover's pick as for persistent topics,
//!   announced with ACTIVE_CONSUMER_CHANGE).
//! - Shared: priority round-robin over the consumers that have permits.
//! - Key_Shared: the consumer owning the message key's hash (auto-split ring, or the STICKY
//!   ranges the consumers gave).

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use magnetar_protocol::pulsar::{
    CommandActiveConsumerChange, CommandCloseConsumer, CommandMessage, MessageIdData,
};
use magnetar_protocol::{Frame, Payload};
use tokio::sync::mpsc::error::TrySendError;

use crate::dispatch::key_shared::{HashRing, StickyRanges};
use crate::dispatch::selection::{Candidate, insertion_index, next_round_robin, pick_active};
use crate::dispatch::{ConsumerId, SubType, hash};
use crate::error::BrokerError;
use crate::subscription_actor::ConsumerLink;

/// Clients older than this do not understand ACTIVE_CONSUMER_CHANGE.
const ACTIVE_CONSUMER_CHANGE_VERSION: i32 = 12;
/// Points per consumer on the auto-split Key_Shared ring (the persistent default).
const RING_POINTS: u32 = 100;

/// One consumer: its link to the connection, its permits and its figures.
#[derive(Debug)]
pub struct NpConsumer {
    pub link: ConsumerLink,
    permits: AtomicI64,
    pub msg_out: AtomicU64,
    pub bytes_out: AtomicU64,
    /// Messages dropped because this consumer had no permit or no room.
    pub dropped: AtomicU64,
    /// Milliseconds since the epoch.
    pub connected_since_ms: u64,
}

impl NpConsumer {
    pub fn permits(&self) -> i64 {
        self.permits.load(Ordering::Relaxed)
    }
}

/// What a message carries for the subscriptions to route it.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub payload: Payload,
    pub num_messages: u32,
    /// Key_Shared slot and STICKY range hash of its key.
    pub slot: u32,
    pub range_hash: u32,
    pub bytes: u64,
}

impl Outgoing {
    pub fn new(payload: Payload, num_messages: u32, key: &[u8]) -> Outgoing {
        Outgoing {
            bytes: payload.as_bytes().len() as u64,
            payload,
            num_messages,
            slot: hash::sticky_key_hash(key),
            range_hash: hash::sticky_range_hash(key),
        }
    }
}

#[derive(Debug)]
struct Consumers {
    /// In arrival order.
    arrival: Vec<Arc<NpConsumer>>,
    /// By priority level, then arrival (Shared's round-robin order).
    order: Vec<(ConsumerId, i32)>,
    rr_index: usize,
    active: Option<ConsumerId>,
    ring: HashRing,
    sticky: StickyRanges,
}

/// What became of a message in one subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dispatched {
    Sent,
    Dropped,
    /// Dropped, and the chosen consumer's connection is gone.
    ConsumerGone(ConsumerId),
}

/// A subscription of a non-persistent topic.
#[derive(Debug)]
pub struct NpSubscription {
    name: String,
    sub_type: SubType,
    key_shared_sticky: bool,
    topic: String,
    partition: Option<u32>,
    consumers: Mutex<Consumers>,
    pub msg_out: AtomicU64,
    pub bytes_out: AtomicU64,
    pub dropped: AtomicU64,
}

impl NpSubscription {
    pub fn new(
        name: String,
        sub_type: SubType,
        key_shared_sticky: bool,
        topic: String,
        partition: Option<u32>,
    ) -> NpSubscription {
        NpSubscription {
            name,
            sub_type,
            key_shared_sticky,
            topic,
            partition,
            consumers: Mutex::new(Consumers {
                arrival: Vec::new(),
                order: Vec::new(),
                rr_index: 0,
                active: None,
                ring: HashRing::new(RING_POINTS),
                sticky: StickyRanges::default(),
            }),
            msg_out: AtomicU64::default(),
            bytes_out: AtomicU64::default(),
            dropped: AtomicU64::default(),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn sub_type(&self) -> SubType {
        self.sub_type
    }

    pub fn key_shared_sticky(&self) -> bool {
        self.key_shared_sticky
    }

    fn lock(&self) -> MutexGuard<'_, Consumers> {
        self.consumers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    pub fn consumers(&self) -> Vec<Arc<NpConsumer>> {
        self.lock().arrival.clone()
    }

    pub fn consumer_count(&self) -> usize {
        self.lock().arrival.len()
    }

    pub fn is_empty(&self) -> bool {
        self.lock().arrival.is_empty()
    }

    /// Whether `sub_type` (and the Key_Shared mode) matches this subscription's.
    pub fn accepts(&self, sub_type: SubType, key_shared_sticky: bool) -> bool {
        self.sub_type == sub_type
            && (sub_type != SubType::KeyShared || self.key_shared_sticky == key_shared_sticky)
    }

    /// Attaches a consumer; an Exclusive subscription takes only one, STICKY ranges must not
    /// overlap.
    pub fn add_consumer(&self, link: ConsumerLink, now_ms: u64) -> Result<(), BrokerError> {
        let mut consumers = self.lock();
        if self.sub_type == SubType::Exclusive && !consumers.arrival.is_empty() {
            return Err(BrokerError::ConsumerBusy(format!(
                "exclusive subscription {} on {} already has a consumer",
                self.name, self.topic
            )));
        }
        let id = link.id;
        if self.sub_type == SubType::KeyShared {
            if self.key_shared_sticky {
                consumers.sticky.add(id, &link.hash_ranges).map_err(|why| {
                    BrokerError::ConsumerAssign(format!(
                        "Key_Shared subscription {} on {}: {why}",
                        self.name, self.topic
                    ))
                })?;
            } else {
                consumers.ring.add(id, &link.name);
            }
        }
        let at = insertion_index(consumers.order.iter().map(|(_, l)| *l), link.priority_level);
        consumers.order.insert(at, (id, link.priority_level));
        consumers.arrival.push(Arc::new(NpConsumer {
            link,
            permits: AtomicI64::default(),
            msg_out: AtomicU64::default(),
            bytes_out: AtomicU64::default(),
            dropped: AtomicU64::default(),
            connected_since_ms: now_ms,
        }));
        self.repick_active(&mut consumers, Some(id));
        Ok(())
    }

    /// Detaches a consumer; true when it was attached.
    pub fn remove_consumer(&self, id: ConsumerId) -> bool {
        let mut consumers = self.lock();
        let before = consumers.arrival.len();
        consumers.arrival.retain(|c| c.link.id != id);
        if consumers.arrival.len() == before {
            return false;
        }
        consumers.order.retain(|(c, _)| *c != id);
        consumers.ring.remove(id);
        consumers.sticky.remove(id);
        if consumers.active == Some(id) {
            consumers.active = None;
        }
        self.repick_active(&mut consumers, None);
        true
    }

    /// The client asked for `permits` more messages.
    pub fn flow(&self, id: ConsumerId, permits: u32) {
        if let Some(consumer) = self.lock().arrival.iter().find(|c| c.link.id == id) {
            consumer
                .permits
                .fetch_add(i64::from(permits), Ordering::Relaxed);
        }
    }

    /// Closes every consumer from the broker's side: each connection forgets its consumer,
    /// then the client hears CLOSE_CONSUMER and subscribes again (to the next owner). Returns
    /// how many it closed.
    pub fn disconnect_all(&self) -> usize {
        let consumers = {
            let mut state = self.lock();
            state.order.clear();
            state.active = None;
            std::mem::take(&mut state.arrival)
        };
        let closed = consumers.len();
        for consumer in consumers {
            let link = &consumer.link;
            let _ = link.evicted.send((link.client_consumer_id, link.id));
            let close = CommandCloseConsumer {
                consumer_id: link.client_consumer_id,
                request_id: 0,
                ..Default::default()
            };
            let _ = link.out.try_send(Box::new(close.into()));
        }
        closed
    }

    /// Hands one message to the consumer the subscription type picks, or drops it.
    pub fn dispatch(&self, message: &Outgoing) -> Dispatched {
        let consumer = {
            let mut consumers = self.lock();
            let has_permits = |c: &NpConsumer| c.permits() > 0;
            let id = match self.sub_type {
                SubType::Exclusive | SubType::Failover => consumers.active,
                SubType::Shared => {
                    let Consumers {
                        arrival,
                        order,
                        rr_index,
                        ..
                    } = &mut *consumers;
                    next_round_robin(order, rr_index, |id| {
                        arrival.iter().any(|c| c.link.id == id && has_permits(c))
                    })
                }
                SubType::KeyShared if self.key_shared_sticky => {
                    consumers.sticky.select(message.range_hash)
                }
                SubType::KeyShared => consumers.ring.select(message.slot),
            };
            id.and_then(|id| consumers.arrival.iter().find(|c| c.link.id == id).cloned())
        };
        let Some(consumer) = consumer else {
            self.dropped
                .fetch_add(u64::from(message.num_messages), Ordering::Relaxed);
            return Dispatched::Dropped;
        };
        let sent = match consumer.permits() > 0 {
            true => self.send(&consumer, message),
            false => Ok(false),
        };
        if sent != Ok(true) {
            consumer
                .dropped
                .fetch_add(u64::from(message.num_messages), Ordering::Relaxed);
            self.dropped
                .fetch_add(u64::from(message.num_messages), Ordering::Relaxed);
            // Its connection is gone: it must not hold the subscription.
            return match sent {
                Err(()) => Dispatched::ConsumerGone(consumer.link.id),
                _ => Dispatched::Dropped,
            };
        }
        let n = u64::from(message.num_messages);
        consumer
            .permits
            .fetch_sub(i64::from(message.num_messages), Ordering::Relaxed);
        consumer.msg_out.fetch_add(n, Ordering::Relaxed);
        consumer
            .bytes_out
            .fetch_add(message.bytes, Ordering::Relaxed);
        self.msg_out.fetch_add(n, Ordering::Relaxed);
        self.bytes_out.fetch_add(message.bytes, Ordering::Relaxed);
        Dispatched::Sent
    }

    /// Queues the MESSAGE unless the connection's queue is full (a slow consumer loses it);
    /// `Err` when the connection is gone.
    fn send(&self, consumer: &NpConsumer, message: &Outgoing) -> Result<bool, ()> {
        let link = &consumer.link;
        let command = CommandMessage {
            consumer_id: link.client_consumer_id,
            // Pulsar's id for every non-persistent message: nothing is stored to point at.
            message_id: MessageIdData {
                ledger_id: 0,
                entry_id: 0,
                partition: (link.partition >= 0).then_some(link.partition),
                ..Default::default()
            },
            redelivery_count: None,
            ack_set: Vec::new(),
            consumer_epoch: None,
        };
        let frame = Frame::with_payload(command, message.payload.clone());
        match link.out.try_send(Box::new(frame)) {
            Ok(()) => Ok(true),
            Err(TrySendError::Full(_)) => Ok(false),
            Err(TrySendError::Closed(_)) => Err(()),
        }
    }

    /// Re-elects Exclusive's and Failover's active consumer; Failover tells its consumers of a
    /// change (and a newcomer of the unchanged one).
    fn repick_active(&self, consumers: &mut Consumers, joined: Option<ConsumerId>) {
        if !self.sub_type.is_single_active() {
            return;
        }
        let candidates: Vec<Candidate<'_>> = consumers
            .arrival
            .iter()
            .map(|c| Candidate {
                id: c.link.id,
                name: &c.link.name,
                priority_level: c.link.priority_level,
            })
            .collect();
        let picked = pick_active(&candidates, self.partition, &self.topic, false);
        let changed = picked != consumers.active;
        consumers.active = picked;
        if self.sub_type != SubType::Failover {
            return;
        }
        for consumer in &consumers.arrival {
            let told = changed || joined == Some(consumer.link.id);
            if !told || consumer.link.protocol_version < ACTIVE_CONSUMER_CHANGE_VERSION {
                continue;
            }
            let change = CommandActiveConsumerChange {
                consumer_id: consumer.link.client_consumer_id,
                is_active: Some(picked == Some(consumer.link.id)),
            };
            let _ = consumer.link.out.try_send(Box::new(change.into()));
        }
    }
}
