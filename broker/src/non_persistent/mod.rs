//! Non-persistent topics (`non-persistent://`): messages are fanned out in memory to the
//! subscriptions' consumers as they arrive and never stored. A producer's receipt comes as soon
//! as the message was handed to the subscriptions, with Pulsar's message id `0:0`; a consumer
//! without permits, or whose connection cannot take more, loses the message (counted as
//! dropped); a subscription lives as long as it has consumers; nothing survives the broker or a
//! handover of the topic's bundle. Producers follow the same access modes as on persistent
//! topics, and the topic is opened only on the broker owning its bundle.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use magnetar_protocol::TopicName;
use magnetar_protocol::pulsar::MessageMetadata;

use crate::dispatch::{SubType, hash};
use crate::error::BrokerError;
use crate::limits;
use crate::subscription_actor::ConsumerLink;
use crate::topic_context::{TopicCounters, TopicLimits};
use crate::topic_producers::{Join, Joined, Producers};

mod stats;
mod subscription;

pub use stats::{snapshot, stats_json};
pub use subscription::{Dispatched, NpConsumer, NpSubscription, Outgoing};

/// A non-persistent topic loaded on this broker.
#[derive(Debug)]
pub struct NpTopic {
    name: TopicName,
    producers: Mutex<Producers>,
    subscriptions: Mutex<BTreeMap<String, Arc<NpSubscription>>>,
    unloading: AtomicBool,
    pub counters: Arc<TopicCounters>,
    /// Messages published while the topic had no subscription (nobody could get them).
    pub unrouted: AtomicU64,
    limits: TopicLimits,
    guards: limits::GuardMetrics,
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl NpTopic {
    /// A topic under the broker's per-topic `limits`, counting refusals in `guards`.
    pub fn new(name: TopicName, limits: TopicLimits, guards: limits::GuardMetrics) -> NpTopic {
        NpTopic {
            name,
            producers: Mutex::default(),
            subscriptions: Mutex::default(),
            unloading: AtomicBool::default(),
            counters: Arc::default(),
            unrouted: AtomicU64::default(),
            limits,
            guards,
        }
    }

    pub fn name(&self) -> &TopicName {
        &self.name
    }

    fn producers(&self) -> MutexGuard<'_, Producers> {
        self.producers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn subscriptions_lock(&self) -> MutexGuard<'_, BTreeMap<String, Arc<NpSubscription>>> {
        self.subscriptions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    pub fn is_unloading(&self) -> bool {
        self.unloading.load(Ordering::Acquire)
    }

    fn unloading_error(&self) -> BrokerError {
        BrokerError::ServiceNotReady(format!("topic {} is being unloaded", self.name))
    }

    /// Registers a producer as its access mode allows (as on a persistent topic; the epoch is
    /// kept in memory only, as the topic is).
    pub fn add_producer(&self, join: Join) -> Result<Joined, BrokerError> {
        let max = TopicCounters::tighter(
            self.limits.max_producers,
            &self.counters.policy_max_producers,
        );
        let fits = |n| {
            let fits = !limits::reached(n, max);
            if !fits {
                self.guards.refused("max_producers_per_topic");
            }
            fits
        };
        // Checked under the lock `unload` takes after setting the flag: no producer joins a
        // topic already emptied.
        let mut producers = self.producers();
        if self.is_unloading() {
            return Err(self.unloading_error());
        }
        producers.join(join, fits).map_err(|e| match e {
            BrokerError::ProducerBusy(m) => {
                BrokerError::ProducerBusy(format!("{}: {m}", self.name))
            }
            BrokerError::ProducerFenced(m) => {
                BrokerError::ProducerFenced(format!("{}: {m}", self.name))
            }
            other => other,
        })
    }

    pub fn remove_producer(&self, name: &str, owner: crate::topic_producers::ProducerOwner) {
        self.producers().leave(name, owner);
    }

    pub fn producer_count(&self) -> usize {
        self.producers().len()
    }

    pub fn producer_names(&self) -> Vec<String> {
        self.producers().names()
    }

    /// Hands a published message (its payload as the producer sent it) to every subscription.
    pub fn publish(
        &self,
        payload: magnetar_protocol::Payload,
        metadata: &MessageMetadata,
        num_messages: u32,
    ) {
        let key = hash::sticky_key(
            metadata.ordering_key.as_deref(),
            metadata.partition_key.as_deref().map(str::as_bytes),
        );
        let message = Outgoing::new(payload, num_messages, key);
        self.counters
            .msg_in
            .fetch_add(u64::from(num_messages), Ordering::Relaxed);
        self.counters
            .bytes_in
            .fetch_add(message.bytes, Ordering::Relaxed);
        let subscriptions: Vec<Arc<NpSubscription>> =
            self.subscriptions_lock().values().cloned().collect();
        if subscriptions.is_empty() {
            self.unrouted
                .fetch_add(u64::from(num_messages), Ordering::Relaxed);
        }
        for subscription in subscriptions {
            match subscription.dispatch(&message) {
                Dispatched::Sent => {
                    self.counters
                        .msg_out
                        .fetch_add(u64::from(num_messages), Ordering::Relaxed);
                    self.counters
                        .bytes_out
                        .fetch_add(message.bytes, Ordering::Relaxed);
                }
                Dispatched::Dropped => {}
                Dispatched::ConsumerGone(id) => self.remove_consumer(&subscription, id),
            }
        }
    }

    /// Attaches a consumer to the named subscription, creating it; a subscription of another
    /// type with consumers refuses it.
    pub fn subscribe(
        &self,
        name: &str,
        sub_type: SubType,
        key_shared_sticky: bool,
        link: ConsumerLink,
    ) -> Result<Arc<NpSubscription>, BrokerError> {
        if self.is_unloading() {
            return Err(self.unloading_error());
        }
        let consumers = self.counters.consumers.load(Ordering::Relaxed) as usize;
        let max_consumers = TopicCounters::tighter(
            self.limits.max_consumers,
            &self.counters.policy_max_consumers,
        );
        if limits::reached(consumers, max_consumers) {
            self.guards.refused("max_consumers_per_topic");
            return Err(BrokerError::ConsumerBusy(format!(
                "topic {} reached the maximum of {max_consumers} consumers",
                self.name
            )));
        }
        let mut subscriptions = self.subscriptions_lock();
        // Again under the lock `unload` takes after setting the flag.
        if self.is_unloading() {
            return Err(self.unloading_error());
        }
        let subscription = match subscriptions.get(name) {
            Some(existing) if existing.accepts(sub_type, key_shared_sticky) => existing.clone(),
            Some(existing) if !existing.is_empty() => {
                return Err(BrokerError::ConsumerBusy(format!(
                    "subscription {name} is {:?}, not {sub_type:?} (type and Key_Shared policy must match)",
                    existing.sub_type()
                )));
            }
            _ => {
                if !subscriptions.contains_key(name)
                    && limits::reached(subscriptions.len(), self.limits.max_subscriptions)
                {
                    self.guards.refused("max_subscriptions_per_topic");
                    return Err(BrokerError::NotAllowed(format!(
                        "topic {} reached the maximum of {} subscriptions (limits.max_subscriptions_per_topic)",
                        self.name, self.limits.max_subscriptions
                    )));
                }
                let created = Arc::new(NpSubscription::new(
                    name.to_string(),
                    sub_type,
                    key_shared_sticky,
                    self.name.to_string(),
                    self.name.partition(),
                ));
                subscriptions.insert(name.to_string(), created.clone());
                created
            }
        };
        let joined = match limits::reached(
            subscription.consumer_count(),
            self.limits.max_consumers_per_subscription,
        ) {
            true => {
                self.guards.refused("max_consumers_per_subscription");
                Err(BrokerError::ConsumerBusy(format!(
                    "subscription {name} reached the maximum of {} consumers",
                    self.limits.max_consumers_per_subscription
                )))
            }
            false => subscription.add_consumer(link, now_ms()),
        };
        if let Err(e) = joined {
            // A subscription made for a consumer it refused goes with the refusal.
            if subscription.is_empty()
                && subscriptions
                    .get(name)
                    .is_some_and(|s| Arc::ptr_eq(s, &subscription))
            {
                subscriptions.remove(name);
            }
            return Err(e);
        }
        self.counters.consumers.fetch_add(1, Ordering::Relaxed);
        Ok(subscription)
    }

    /// A consumer left; its subscription goes with its last consumer (as in Pulsar: nothing
    /// is kept for a subscription nobody reads).
    pub fn remove_consumer(&self, subscription: &NpSubscription, id: u64) {
        if subscription.remove_consumer(id) {
            self.counters.consumers.fetch_sub(1, Ordering::Relaxed);
        }
        let mut subscriptions = self.subscriptions_lock();
        if subscription.is_empty()
            && subscriptions
                .get(subscription.name())
                .is_some_and(|s| std::ptr::eq(s.as_ref(), subscription))
        {
            subscriptions.remove(subscription.name());
        }
    }

    pub fn subscriptions(&self) -> Vec<Arc<NpSubscription>> {
        self.subscriptions_lock().values().cloned().collect()
    }

    pub fn subscription(&self, name: &str) -> Option<Arc<NpSubscription>> {
        self.subscriptions_lock().get(name).cloned()
    }

    /// Removes a subscription, closing its consumers.
    pub fn delete_subscription(&self, name: &str) -> bool {
        let Some(subscription) = self.subscriptions_lock().remove(name) else {
            return false;
        };
        let closed = subscription.disconnect_all() as u64;
        self.counters.consumers.fetch_sub(closed, Ordering::Relaxed);
        true
    }

    /// Removes this very subscription (not a newer one of the same name), closing its
    /// consumers.
    pub fn delete_subscription_if(&self, subscription: &Arc<NpSubscription>) {
        let removed = {
            let mut subscriptions = self.subscriptions_lock();
            let same = subscriptions
                .get(subscription.name())
                .is_some_and(|s| Arc::ptr_eq(s, subscription));
            same && subscriptions.remove(subscription.name()).is_some()
        };
        if removed {
            let closed = subscription.disconnect_all() as u64;
            self.counters.consumers.fetch_sub(closed, Ordering::Relaxed);
        }
    }

    /// No producer and no subscription.
    pub fn is_idle(&self) -> bool {
        self.producer_count() == 0 && self.subscriptions_lock().is_empty()
    }

    /// Stops the topic: new producers and consumers are refused, the attached ones are closed
    /// from the broker's side so their clients look the topic up again.
    pub fn unload(&self) {
        self.unloading.store(true, Ordering::Release);
        let why = self.unloading_error();
        self.producers().disconnect_all(&why);
        let subscriptions = std::mem::take(&mut *self.subscriptions_lock());
        for subscription in subscriptions.values() {
            let closed = subscription.disconnect_all() as u64;
            self.counters.consumers.fetch_sub(closed, Ordering::Relaxed);
        }
    }

    /// Messages the current subscriptions dropped.
    pub fn dropped(&self) -> u64 {
        self.subscriptions_lock()
            .values()
            .map(|s| s.dropped.load(Ordering::Relaxed))
            .sum()
    }
}

#[cfg(test)]
mod tests;
