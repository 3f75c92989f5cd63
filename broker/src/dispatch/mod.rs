//! Consumer selection and delivery bookkeeping for one subscription, without I/O.
//!
//! A [`Dispatcher`] knows the subscription's consumers (ids, names, priority levels, permits
//! counted in messages), what each has been sent and not yet acknowledged, and the queue of
//! entries waiting for redelivery. The async shell drives it:
//!
//! 1. consumer events: [`Dispatcher::add_consumer`] (may refuse with `ConsumerBusy`, may return
//!    `ACTIVE_CONSUMER_CHANGE` notifications), [`Dispatcher::remove_consumer`] (its unacked
//!    entries go back for redelivery), [`Dispatcher::flow`], [`Dispatcher::redeliver`]
//!    (negative acks), and acknowledgements as the cursor reports them
//!    ([`Dispatcher::entry_acked`], [`Dispatcher::mark_delete_moved`]);
//! 2. [`Dispatcher::next_read`] says what to fetch: exact positions to replay, or a run of new
//!    entries from the read position, sized by the permits;
//! 3. the shell reads and hands back each entry's position, batch size and Key_Shared slot
//!    ([`EntryMeta`]); [`Dispatcher::read_complete`] / [`Dispatcher::replay_complete`] answer
//!    which consumer gets which entry ([`Delivery`], with the redelivery count to put in
//!    `MESSAGE`). Entries that cannot go out now wait in the redelivery queue.
//!
//! Subscription types follow Java's dispatchers: Exclusive and Failover have one active consumer
//! (see `selection`), Shared goes round-robin by priority, Key_Shared routes by a consistent
//! hash of the sticky key and never lets a key's messages overtake each other (see
//! `key_shared`).

mod delayed;
mod dispatcher;
pub mod hash;
pub(crate) mod key_shared;
mod read;
mod redelivery;
pub(crate) mod selection;

#[cfg(test)]
mod tests;

pub use dispatcher::Dispatcher;

use serde::{Deserialize, Serialize};

use crate::position::Position;

/// The client's consumer id on its connection; the shell makes it unique per subscription.
pub type ConsumerId = u64;

/// Pulsar's subscription types (`CommandSubscribe.SubType`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SubType {
    Exclusive,
    Shared,
    Failover,
    KeyShared,
}

impl SubType {
    /// From the wire value: Exclusive 0, Shared 1, Failover 2, Key_Shared 3.
    pub fn from_wire(value: i32) -> Option<Self> {
        match value {
            0 => Some(Self::Exclusive),
            1 => Some(Self::Shared),
            2 => Some(Self::Failover),
            3 => Some(Self::KeyShared),
            _ => None,
        }
    }

    /// One consumer receives everything (Exclusive, Failover).
    pub fn is_single_active(self) -> bool {
        matches!(self, Self::Exclusive | Self::Failover)
    }

    /// Cumulative acks are honoured only here; Java ignores them on Shared and Key_Shared.
    pub fn accepts_cumulative_ack(self) -> bool {
        self.is_single_active()
    }
}

/// A consumer as SUBSCRIBE describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsumerInfo {
    pub id: ConsumerId,
    pub name: String,
    pub priority_level: i32,
    /// Key_Shared STICKY: the hash ranges `[start, end]` it takes (`KeySharedMeta.hashRanges`).
    pub hash_ranges: Vec<(u32, u32)>,
}

impl ConsumerInfo {
    pub fn new(id: ConsumerId, name: impl Into<String>) -> Self {
        Self {
            id,
            name: name.into(),
            priority_level: 0,
            hash_ranges: Vec::new(),
        }
    }

    pub fn with_hash_ranges(mut self, hash_ranges: Vec<(u32, u32)>) -> Self {
        self.hash_ranges = hash_ranges;
        self
    }

    pub fn with_priority(mut self, priority_level: i32) -> Self {
        self.priority_level = priority_level;
        self
    }
}

/// Settings, with Java's broker defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DispatcherConfig {
    pub sub_type: SubType,
    /// The full topic name (`persistent://tenant/ns/topic[-partition-i]`); Failover hashes it.
    pub topic_name: String,
    /// `Some(i)` for partition `i` of a partitioned topic.
    pub partition_index: Option<u32>,
    /// `activeConsumerFailoverConsistentHashing` (false): hash even on partitions.
    pub failover_consistent_hashing: bool,
    /// `dispatcherMaxRoundRobinBatchSize` (20): messages given to one Shared consumer per turn.
    pub max_round_robin_batch: u32,
    /// `dispatcherMaxReadBatchSize` (100): entries per read.
    pub max_read_batch: u32,
    /// `subscriptionKeySharedConsistentHashingReplicaPoints` (100).
    pub key_shared_replica_points: u32,
    /// `KeySharedMeta.allowOutOfOrderDelivery` (false).
    pub key_shared_allow_out_of_order: bool,
    /// `KeySharedMeta.keySharedMode == STICKY`: consumers name their hash ranges.
    pub key_shared_sticky: bool,
    /// `keySharedLookAheadMsgInReplayThresholdPerConsumer` (2000) and `…PerSubscription`
    /// (20000): Key_Shared stops reading new entries while this many wait for redelivery.
    pub key_shared_look_ahead_per_consumer: usize,
    pub key_shared_look_ahead_per_subscription: usize,
    /// `delayedDeliveryEnabled` (true): Shared and Key_Shared hold entries whose
    /// `deliver_at_time` is in the future (Exclusive and Failover deliver them at once).
    pub delayed_delivery: bool,
    /// Delayed entries indexed in memory at most; more are read again from the ledger later.
    pub delayed_index_capacity: usize,
}

impl DispatcherConfig {
    pub fn new(sub_type: SubType, topic_name: impl Into<String>) -> Self {
        Self {
            sub_type,
            topic_name: topic_name.into(),
            partition_index: None,
            failover_consistent_hashing: false,
            max_round_robin_batch: 20,
            max_read_batch: 100,
            key_shared_replica_points: 100,
            key_shared_allow_out_of_order: false,
            key_shared_sticky: false,
            key_shared_look_ahead_per_consumer: 2000,
            key_shared_look_ahead_per_subscription: 20_000,
            delayed_delivery: true,
            delayed_index_capacity: delayed::DEFAULT_CAPACITY,
        }
    }
}

/// What the dispatcher needs to know of an entry read from storage.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EntryMeta {
    pub position: Position,
    /// `num_messages_in_batch` (1 when absent); each message uses one permit.
    pub num_messages: u32,
    /// Key_Shared slot of the sticky key, see [`hash::sticky_key_hash`].
    pub slot: u32,
    /// The same key's hash for STICKY subscriptions, see [`hash::sticky_range_hash`].
    pub range_hash: u32,
    /// `deliver_at_time` (ms since the epoch), for delayed delivery.
    pub deliver_at: Option<u64>,
}

impl EntryMeta {
    /// An entry without ordering or partition key (slot of `"NONE_KEY"`, as Java).
    pub fn new(position: Position, num_messages: u32) -> Self {
        Self {
            position,
            num_messages: num_messages.max(1),
            slot: hash::sticky_key_hash(hash::NONE_KEY),
            range_hash: hash::sticky_range_hash(hash::NONE_KEY),
            deliver_at: None,
        }
    }

    /// Sets `deliver_at_time`.
    pub fn with_deliver_at(mut self, deliver_at: Option<u64>) -> Self {
        self.deliver_at = deliver_at;
        self
    }

    /// Sets the sticky key (ordering key, else partition key; see [`hash::sticky_key`]).
    pub fn with_sticky_key(mut self, key: &[u8]) -> Self {
        self.slot = hash::sticky_key_hash(key);
        self.range_hash = hash::sticky_range_hash(key);
        self
    }
}

/// What to fetch next from the cache or the bookies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReadRequest {
    /// These entries, for [`Dispatcher::replay_complete`].
    Replay {
        epoch: u64,
        positions: Vec<Position>,
    },
    /// Up to `max_entries` entries from `from` on, for [`Dispatcher::read_complete`].
    Read {
        epoch: u64,
        from: Position,
        max_entries: u32,
    },
}

/// Send this entry to this consumer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Delivery {
    pub consumer_id: ConsumerId,
    pub position: Position,
    pub num_messages: u32,
    /// For `MESSAGE.redelivery_count`.
    pub redelivery_count: u32,
}

/// `ACTIVE_CONSUMER_CHANGE{consumer_id, is_active}` to send (to clients at protocol ≥ v12).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ActiveConsumerChange {
    pub consumer_id: ConsumerId,
    pub is_active: bool,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DispatchError {
    /// Wire error `ConsumerBusy`.
    #[error("exclusive subscription already has consumer {existing}")]
    ConsumerBusy { existing: ConsumerId },
    #[error("consumer id {0} is already attached to this subscription")]
    DuplicateConsumer(ConsumerId),
    #[error("consumer id {0} is not attached to this subscription")]
    UnknownConsumer(ConsumerId),
    /// Wire error `ConsumerAssignError`: a STICKY consumer's hash ranges cannot be given.
    #[error("{0}")]
    ConsumerAssign(String),
}
