//! What the connection holds per producer and consumer id: a creation under way, or the
//! producer or consumer on a persistent or a non-persistent topic.

use std::sync::Arc;

use magnetar_protocol::TopicName;
use tokio_util::sync::CancellationToken;

use crate::error::BrokerError;
use crate::non_persistent::{NpSubscription, NpTopic};
use crate::server::producer::Producer;
use crate::subscription_actor::SubscriptionHandle;
use crate::topic::{ProducerOwner, Topic};

/// A producer id on this connection. `Creating` remembers the PRODUCER request it answers, so
/// that a creation finishing after its id was closed (and perhaps reused) is told apart.
pub(super) enum ProducerSlot {
    /// `cancel` ends the creation early (CLOSE_PRODUCER while it waits for exclusive access).
    Creating {
        request_id: u64,
        cancel: CancellationToken,
    },
    Ready(Producer),
    /// On a non-persistent topic: its SENDs are answered at once.
    NonPersistent {
        topic: Arc<NpTopic>,
        name: String,
        owner: ProducerOwner,
    },
}

impl ProducerSlot {
    /// Leaves the topic (or stops being created).
    pub(super) fn close(self) {
        match self {
            ProducerSlot::Ready(producer) => producer.close(),
            ProducerSlot::Creating { cancel, .. } => cancel.cancel(),
            ProducerSlot::NonPersistent { topic, name, owner } => {
                topic.remove_producer(&name, owner)
            }
        }
    }
}

pub(super) enum ConsumerSlot {
    Creating {
        request_id: u64,
    },
    Ready {
        topic: Arc<Topic>,
        subscription: SubscriptionHandle,
        id: u64,
    },
    NonPersistent {
        topic: Arc<NpTopic>,
        subscription: Arc<NpSubscription>,
        id: u64,
    },
}

impl ConsumerSlot {
    /// The broker's id of a ready consumer.
    pub(super) fn broker_id(&self) -> Option<u64> {
        match self {
            ConsumerSlot::Creating { .. } => None,
            ConsumerSlot::Ready { id, .. } | ConsumerSlot::NonPersistent { id, .. } => Some(*id),
        }
    }

    /// Leaves the subscription (a persistent one hands its unacknowledged messages to others).
    pub(super) async fn close(self) {
        match self {
            ConsumerSlot::Creating { .. } => {}
            ConsumerSlot::Ready {
                subscription, id, ..
            } => subscription.remove_consumer(id).await,
            ConsumerSlot::NonPersistent {
                topic,
                subscription,
                id,
            } => topic.remove_consumer(&subscription, id),
        }
    }
}

/// The topic a producer is created on.
#[derive(Clone)]
pub(super) enum TopicRef {
    Persistent(Arc<Topic>),
    NonPersistent(Arc<NpTopic>),
}

impl TopicRef {
    pub(super) fn name(&self) -> &TopicName {
        match self {
            TopicRef::Persistent(topic) => topic.name(),
            TopicRef::NonPersistent(topic) => topic.name(),
        }
    }

    pub(super) fn add_producer(
        &self,
        join: crate::topic_producers::Join,
    ) -> Result<crate::topic_producers::Joined, BrokerError> {
        match self {
            TopicRef::Persistent(topic) => topic.add_producer(join),
            TopicRef::NonPersistent(topic) => topic.add_producer(join),
        }
    }

    pub(super) fn remove_producer(&self, name: &str, owner: ProducerOwner) {
        match self {
            TopicRef::Persistent(topic) => topic.remove_producer(name, owner),
            TopicRef::NonPersistent(topic) => topic.remove_producer(name, owner),
        }
    }

    /// Records an exclusive takeover's epoch (a non-persistent topic keeps it in memory).
    pub(super) async fn persist_epoch(&self, epoch: u64) -> Result<(), BrokerError> {
        match self {
            TopicRef::Persistent(topic) => topic.persist_epoch(epoch).await,
            TopicRef::NonPersistent(_) => Ok(()),
        }
    }
}
