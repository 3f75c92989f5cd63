//! The async shell of one subscription: a task that owns the sans-IO [`Subscription`] (cursor +
//! dispatcher), reads entries from the managed ledger as consumers' permits allow, sends them as
//! MESSAGE frames to the consumers' connections, records acknowledgements and persists the
//! cursor at a bounded rate. Everything that touches the subscription goes through its queue,
//! so its state needs no locks.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};
use magnetar_protocol::pulsar::command_ack::AckType;
use magnetar_protocol::pulsar::{
    CommandAck, CommandActiveConsumerChange, CommandCloseConsumer, CommandMessage, MessageIdData,
};
use magnetar_protocol::{Frame, MessageId, Payload};
use tokio::sync::mpsc::OwnedPermit;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::compaction::{CompactedLedger, select};
use crate::cursor::AckSet;
use crate::cursor::Cursor;
use crate::dispatch::{
    ActiveConsumerChange, ConsumerInfo, Delivery, DispatchError, DispatcherConfig, EntryMeta,
    ReadRequest, SubType, hash,
};
use crate::error::BrokerError;
use crate::limits::{self, GuardMetrics};
use crate::managed_ledger::{
    InitialPosition as MlInitialPosition, ManagedCursor, ManagedLedger, MlError,
};
use crate::position::{LedgerLayout, Position};
use crate::publish_time;
use crate::subscription::{AckKind, AckReport, AckedMessage, Subscription};
use crate::topic_context::{Outbound, SharedCounters, TopicLimits};
use magnetar_protocol::TopicName;

mod actor;
mod compacted;

use actor::Actor;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InitialPosition {
    Latest,
    Earliest,
}

#[derive(Debug, Clone)]
pub struct SubscriptionOptions {
    pub sub_type: SubType,
    /// Read the topic's compacted view up to its horizon (Exclusive and Failover only).
    pub read_compacted: bool,
    /// Durable subscriptions keep a persisted cursor; readers do not.
    pub durable: bool,
    pub initial_position: InitialPosition,
    /// Readers: where to start.
    pub start_message_id: Option<MessageId>,
    pub key_shared_allow_out_of_order: bool,
    /// Key_Shared STICKY (consumers name their hash ranges) rather than AUTO_SPLIT.
    pub key_shared_sticky: bool,
    pub partition_index: Option<u32>,
}

/// What a consumer must agree with to join a running subscription: its type and, for
/// Key_Shared, the key-shared mode and ordering (Java's `hasSameKeySharedPolicy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubscriptionKind {
    pub sub_type: SubType,
    pub key_shared_sticky: bool,
    pub key_shared_allow_out_of_order: bool,
    pub read_compacted: bool,
}

impl SubscriptionOptions {
    pub fn kind(&self) -> SubscriptionKind {
        let key_shared = self.sub_type == SubType::KeyShared;
        SubscriptionKind {
            sub_type: self.sub_type,
            key_shared_sticky: key_shared && self.key_shared_sticky,
            key_shared_allow_out_of_order: key_shared && self.key_shared_allow_out_of_order,
            read_compacted: self.read_compacted,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeekTarget {
    MessageId(MessageId),
    /// Milliseconds since the epoch: the first message published at or after it.
    PublishTime(u64),
}

/// A consumer as the subscription sees it: where its messages go.
#[derive(Debug, Clone)]
pub struct ConsumerLink {
    /// Unique across the broker.
    pub id: u64,
    /// The id the client chose on its connection.
    pub client_consumer_id: u64,
    pub name: String,
    pub priority_level: i32,
    pub out: Outbound,
    pub protocol_version: i32,
    /// Partition index for message ids, −1 when not partitioned.
    pub partition: i32,
    /// Key_Shared STICKY: the hash ranges it takes.
    pub hash_ranges: Vec<(u32, u32)>,
    /// Told `(client id, broker id)` before the broker closes this consumer itself.
    pub evicted: mpsc::UnboundedSender<(u64, u64)>,
}

enum Msg {
    Add(ConsumerLink, oneshot::Sender<Result<(), BrokerError>>),
    Remove(u64, oneshot::Sender<()>),
    Flow(u64, u32),
    Ack(CommandAck),
    Redeliver(u64, Option<Vec<Position>>),
    Unsubscribe(u64, bool, oneshot::Sender<Result<(), BrokerError>>),
    Seek(SeekTarget, oneshot::Sender<Result<(), BrokerError>>),
    DisconnectConsumers,
    HasConsumers(oneshot::Sender<bool>),
    MarkDelete(oneshot::Sender<Position>),
    Backlog(oneshot::Sender<(u64, usize)>),
    Stats(oneshot::Sender<SubscriptionStats>),
    /// Backlog eviction: acknowledge everything through this position.
    SkipThrough(Position),
    /// Backlog eviction by age: acknowledge everything published before this time (ms).
    ExpireBefore(u64),
    Close(oneshot::Sender<()>),
}

/// A subscription's figures for the admin API's stats and the metrics.
#[derive(Debug, Clone)]
pub struct SubscriptionStats {
    /// Entries after mark-delete not yet acknowledged.
    pub backlog: u64,
    pub mark_delete: Position,
    /// The first entry not acknowledged.
    pub read_position: Position,
    /// Ranges acknowledged above mark-delete.
    pub acked_ranges: usize,
    /// Delayed entries waiting to be due.
    pub delayed: usize,
    pub consumers: Vec<ConsumerStats>,
}

#[derive(Debug, Clone)]
pub struct ConsumerStats {
    pub name: String,
    pub available_permits: i64,
    pub unacked_messages: u64,
    /// Key_Shared: the hash ranges it serves (empty otherwise).
    pub key_hash_ranges: Vec<(u32, u32)>,
}

/// A handle to a subscription's task.
#[derive(Debug, Clone)]
pub struct SubscriptionHandle {
    name: Arc<str>,
    sub_type: SubType,
    kind: SubscriptionKind,
    tx: mpsc::UnboundedSender<Msg>,
    stopped: CancellationToken,
}

impl std::fmt::Debug for Msg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Msg")
    }
}

fn gone() -> BrokerError {
    BrokerError::ServiceNotReady("the subscription is closed".into())
}

/// The topic as its subscriptions see it: its name, its managed ledger and its counters.
#[derive(Debug, Clone)]
pub struct TopicView {
    pub name: TopicName,
    pub ml: ManagedLedger,
    pub counters: SharedCounters,
    /// The largest frame a connection sends (`max_message_size` + padding).
    pub max_frame_size: usize,
    pub limits: TopicLimits,
    pub guards: GuardMetrics,
    /// The namespace's delayed-delivery policy.
    pub delayed_delivery: Arc<DelayedDelivery>,
    /// The compacted view `read_compacted` subscriptions read up to its horizon.
    pub compacted: Arc<crate::compaction::CompactedTopic>,
}

/// A namespace's delayed-delivery policy as its topics' subscriptions apply it.
#[derive(Debug)]
pub struct DelayedDelivery {
    /// On unless the namespace turned it off.
    pub enabled: AtomicBool,
    /// `maxDeliveryDelayInMillis` (0: no limit): a message asking for more is delivered that
    /// long after it was published.
    pub max_delay_ms: AtomicU64,
}

impl Default for DelayedDelivery {
    fn default() -> Self {
        Self {
            enabled: AtomicBool::new(true),
            max_delay_ms: AtomicU64::new(0),
        }
    }
}

impl SubscriptionHandle {
    /// Opens (or creates) the subscription's cursor and starts its task.
    pub async fn start(
        topic: TopicView,
        name: String,
        options: SubscriptionOptions,
    ) -> Result<SubscriptionHandle, BrokerError> {
        let ml = topic.ml.clone();
        let layout = ml.layout();
        let (cursor, persisted) = if options.durable {
            let initial = match options.initial_position {
                InitialPosition::Earliest => MlInitialPosition::Earliest,
                InitialPosition::Latest => MlInitialPosition::Latest,
            };
            let (managed, state) = ml
                .open_cursor(&name, initial)
                .await
                .map_err(|e| BrokerError::Persistence(e.to_string()))?;
            (state, Some(managed))
        } else {
            (
                reader_cursor(&layout, options.start_message_id, options.initial_position),
                None,
            )
        };
        let mut config = DispatcherConfig::new(options.sub_type, topic.name.to_string());
        config.partition_index = options.partition_index;
        config.key_shared_allow_out_of_order = options.key_shared_allow_out_of_order;
        config.key_shared_sticky = options.key_shared_sticky;
        config.delayed_index_capacity = topic.limits.delayed_index_entries;
        let compacted_next = compacted::compacted_start(cursor.mark_delete());
        let subscription = Subscription::new(config, cursor, &layout);
        let (tx, rx) = mpsc::unbounded_channel();
        let stopped = CancellationToken::new();
        let actor = Actor {
            topic,
            ml,
            name: name.clone(),
            subscription,
            persisted,
            dirty: false,
            consumers: HashMap::new(),
            outboxes: HashMap::new(),
            writable: FuturesUnordered::new(),
            read_compacted: options.read_compacted,
            compacted_next,
            compacted_horizon: None,
        };
        tokio::spawn(actor.run(rx, stopped.clone()));
        Ok(SubscriptionHandle {
            name: name.into(),
            sub_type: options.sub_type,
            kind: options.kind(),
            tx,
            stopped,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn kind(&self) -> SubscriptionKind {
        self.kind
    }

    pub fn sub_type(&self) -> SubType {
        self.sub_type
    }

    pub fn is_closed(&self) -> bool {
        self.stopped.is_cancelled()
    }

    async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Msg) -> Option<T> {
        let (tx, rx) = oneshot::channel();
        self.tx.send(make(tx)).ok()?;
        rx.await.ok()
    }

    pub async fn add_consumer(&self, link: ConsumerLink) -> Result<(), BrokerError> {
        self.ask(|tx| Msg::Add(link, tx))
            .await
            .unwrap_or_else(|| Err(gone()))
    }

    pub async fn remove_consumer(&self, id: u64) {
        let _ = self.ask(|tx| Msg::Remove(id, tx)).await;
    }

    pub fn flow(&self, id: u64, permits: u32) {
        let _ = self.tx.send(Msg::Flow(id, permits));
    }

    pub fn ack(&self, ack: CommandAck) {
        let _ = self.tx.send(Msg::Ack(ack));
    }

    pub fn redeliver(&self, id: u64, positions: Option<Vec<Position>>) {
        let _ = self.tx.send(Msg::Redeliver(id, positions));
    }

    pub async fn unsubscribe(&self, id: u64, force: bool) -> Result<(), BrokerError> {
        self.ask(|tx| Msg::Unsubscribe(id, force, tx))
            .await
            .unwrap_or_else(|| Err(gone()))
    }

    pub async fn seek(&self, target: SeekTarget) -> Result<(), BrokerError> {
        self.ask(|tx| Msg::Seek(target, tx))
            .await
            .unwrap_or_else(|| Err(gone()))
    }

    /// Closes every consumer (they re-subscribe), as after a seek.
    pub fn disconnect_consumers(&self) {
        let _ = self.tx.send(Msg::DisconnectConsumers);
    }

    pub async fn has_consumers(&self) -> bool {
        self.ask(Msg::HasConsumers).await.unwrap_or(false)
    }

    pub async fn mark_delete(&self) -> Option<Position> {
        self.ask(Msg::MarkDelete).await
    }

    /// Backlog in entries and the number of consumers.
    pub async fn backlog(&self) -> Option<(u64, usize)> {
        self.ask(Msg::Backlog).await
    }

    /// Backlog, mark-delete and consumers, for stats and metrics.
    pub async fn stats(&self) -> Option<SubscriptionStats> {
        self.ask(Msg::Stats).await
    }

    /// Acknowledges everything through `position` (backlog quota eviction).
    pub fn skip_through(&self, position: Position) {
        let _ = self.tx.send(Msg::SkipThrough(position));
    }

    /// Acknowledges everything published before `time_ms` (message-age quota eviction).
    pub fn expire_before(&self, time_ms: u64) {
        let _ = self.tx.send(Msg::ExpireBefore(time_ms));
    }

    /// Persists the cursor, gives its state back to the managed ledger and stops the task
    /// (consumers are not told; used on topic close and before a subscription is replaced).
    pub async fn close(&self) {
        let _ = self.ask(Msg::Close).await;
        self.stopped.cancelled().await;
    }
}

/// Where a reader (non-durable subscription) starts: from a message id, else the initial position.
fn reader_cursor(
    layout: &LedgerLayout,
    start: Option<MessageId>,
    initial: InitialPosition,
) -> Cursor {
    match start {
        Some(id) if id.ledger_id == i64::MAX => Cursor::latest(layout),
        Some(id) if id.ledger_id < 0 => Cursor::earliest(layout),
        Some(id) => {
            let position = Position::new(id.ledger_id, id.entry_id);
            // Inside a batch the entry is delivered again and the client skips what it saw.
            let mark_delete = if id.batch_index >= 0 {
                layout.prev(position)
            } else {
                position
            };
            Cursor::new(mark_delete)
        }
        None if initial == InitialPosition::Earliest => Cursor::earliest(layout),
        None => Cursor::latest(layout),
    }
}
