//! The subscription's task: owns the sans-IO [`Subscription`], reads entries as permits allow,
//! sends MESSAGE frames, records acknowledgements, expires messages when told (message TTL and
//! backlog quotas, applied by the broker's policy check) and persists the cursor
//! at the namespace's mark-delete rate. The subscription is the cursor state's only owner: the
//! managed cursor writes the snapshots it is given and gets the state back when the task ends.

use super::compacted::{compacted_start, read_positions};
use super::*;

/// How often a reader's (non-persisted) cursor would be written: never, but the timer needs one.
const READER_PERSIST_EVERY: Duration = Duration::from_secs(3600);
/// `ACTIVE_CONSUMER_CHANGE` exists from protocol v12.
const ACTIVE_CONSUMER_CHANGE_VERSION: i32 = 12;

pub(super) struct Actor {
    pub(super) topic: TopicView,
    pub(super) ml: ManagedLedger,
    pub(super) name: String,
    pub(super) subscription: Subscription,
    pub(super) persisted: Option<ManagedCursor>,
    pub(super) dirty: bool,
    pub(super) consumers: HashMap<u64, ConsumerLink>,
    /// Frames for consumers whose connection queue was full, in order; such a consumer is
    /// paused in the dispatcher until they are all queued.
    pub(super) outboxes: HashMap<u64, VecDeque<Box<Frame>>>,
    /// One wait for room per paused consumer.
    pub(super) writable: FuturesUnordered<WaitForRoom>,
    /// Reads the compacted view up to its horizon (see `compacted_read`).
    pub(super) read_compacted: bool,
    /// Where the next compacted read starts while the subscription is at the start of what the
    /// topic retains: compacted entries may sit in ledgers trimmed long ago.
    pub(super) compacted_next: Position,
    /// The horizon of the compacted view the last read used: entries up to it came from the
    /// compacted ledger and may have messages compacted out.
    pub(super) compacted_horizon: Option<Position>,
}

/// A paused consumer's wait for room in its connection's queue: its id, and a slot (none if the
/// connection is gone).
pub(super) type WaitForRoom = BoxFuture<'static, (u64, Option<OwnedPermit<Box<Frame>>>)>;

/// What the dispatcher needs of a stored entry. `max_delay_ms` (0: none) caps how long after its
/// publish time a delayed message is held (the namespace's `maxDeliveryDelayInMillis`).
fn entry_meta(position: Position, bytes: &Bytes, max_delay_ms: u64) -> EntryMeta {
    let metadata = Payload::parse(bytes.clone())
        .ok()
        .and_then(|p| p.metadata().ok());
    let Some(metadata) = metadata else {
        return EntryMeta::new(position, 1);
    };
    let messages = metadata.num_messages_in_batch.unwrap_or(1).max(1) as u32;
    let deliver_at = metadata
        .deliver_at_time
        .and_then(|at| u64::try_from(at).ok())
        .map(|at| match max_delay_ms {
            0 => at,
            max => at.min(metadata.publish_time.saturating_add(max)),
        });
    let key = hash::sticky_key(
        metadata.ordering_key.as_deref(),
        metadata.partition_key.as_deref().map(str::as_bytes),
    );
    EntryMeta::new(position, messages)
        .with_sticky_key(key)
        .with_deliver_at(deliver_at)
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Resolves when the first delayed entry is due (never when none waits).
async fn delayed_due(at_ms: Option<u64>) {
    match at_ms {
        Some(at) => {
            // At least 1 ms, so that a clock stepping back cannot spin this.
            let wait = at.saturating_sub(now_ms()).max(1);
            tokio::time::sleep(std::time::Duration::from_millis(wait)).await;
        }
        None => std::future::pending().await,
    }
}

impl Actor {
    pub(super) async fn run(
        mut self,
        mut rx: mpsc::UnboundedReceiver<Msg>,
        stopped: CancellationToken,
    ) {
        // Cancelled when this ends, by return or by panic: `close` never waits for a dead task.
        let _stopped = stopped.drop_guard();
        let mut appends = self.ml.watch_appends();
        let every = self
            .persisted
            .as_ref()
            .map_or(READER_PERSIST_EVERY, ManagedCursor::persist_interval);
        let mut persist = tokio::time::interval(every);
        persist.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        self.rewind_to_compacted().await;
        loop {
            tokio::select! {
                msg = rx.recv() => {
                    let Some(msg) = msg else { break };
                    if !self.handle(msg).await {
                        break;
                    }
                }
                changed = appends.changed() => {
                    if changed.is_err() {
                        break;
                    }
                }
                Some((id, permit)) = self.writable.next(), if !self.writable.is_empty() => {
                    self.room_for(id, permit);
                }
                _ = persist.tick() => self.persist().await,
                () = delayed_due(self.subscription.dispatcher().next_delayed_at()) => {}
            }
            self.pump().await;
        }
        self.persist().await;
        if let Some(cursor) = self.persisted.take() {
            cursor.release(self.subscription.into_cursor(), self.dirty);
        }
    }

    /// Returns false when the subscription ends.
    async fn handle(&mut self, msg: Msg) -> bool {
        match msg {
            Msg::Add(link, reply) => {
                if let Some(refusal) = self.consumer_limit() {
                    let _ = reply.send(Err(refusal));
                    return true;
                }
                let info = ConsumerInfo::new(link.id, link.name.clone())
                    .with_priority(link.priority_level)
                    .with_hash_ranges(link.hash_ranges.clone());
                let layout = self.ml.layout();
                let sub_type = self.subscription.sub_type();
                let result = match self.subscription.add_consumer(&layout, sub_type, info) {
                    Ok(changes) => {
                        self.topic
                            .counters
                            .consumers
                            .fetch_add(1, Ordering::Relaxed);
                        self.consumers.insert(link.id, link);
                        self.announce(changes).await;
                        Ok(())
                    }
                    Err(DispatchError::ConsumerBusy { .. }) => {
                        Err(BrokerError::ConsumerBusy(format!(
                            "exclusive subscription {} on {} already has a consumer",
                            self.name, self.topic.name
                        )))
                    }
                    Err(DispatchError::ConsumerAssign(why)) => {
                        Err(BrokerError::ConsumerAssign(format!(
                            "Key_Shared subscription {} on {}: {why}",
                            self.name, self.topic.name
                        )))
                    }
                    Err(e) => Err(BrokerError::ConsumerBusy(e.to_string())),
                };
                let _ = reply.send(result);
            }
            Msg::Remove(id, reply) => {
                self.remove(id).await;
                let _ = reply.send(());
                if self.persisted.is_none() && self.consumers.is_empty() {
                    return false; // a reader's subscription ends with its reader
                }
            }
            Msg::Flow(id, permits) => {
                let _ = self.subscription.flow(id, permits);
            }
            Msg::Ack(ack) => self.ack(ack),
            Msg::Redeliver(id, positions) => {
                let _ = self.subscription.redeliver(id, positions.as_deref());
            }
            Msg::Unsubscribe(id, force, reply) => {
                if !force && !self.subscription.can_unsubscribe(id) {
                    let error = BrokerError::ConsumerBusy(format!(
                        "subscription {} has other consumers",
                        self.name
                    ));
                    let _ = reply.send(Err(error));
                    return true;
                }
                let others: Vec<u64> = self
                    .consumers
                    .keys()
                    .copied()
                    .filter(|c| *c != id)
                    .collect();
                for other in others {
                    self.evict(other).await;
                }
                self.remove(id).await;
                self.persisted = None; // the topic deletes the cursor
                let _ = reply.send(Ok(()));
                return false;
            }
            Msg::Seek(target, reply) => {
                let result = self.seek(target).await;
                let _ = reply.send(result);
            }
            Msg::DisconnectConsumers => {
                let ids: Vec<u64> = self.consumers.keys().copied().collect();
                for id in ids {
                    self.evict(id).await;
                }
            }
            Msg::HasConsumers(reply) => {
                let _ = reply.send(!self.consumers.is_empty());
            }
            Msg::MarkDelete(reply) => {
                let _ = reply.send(self.subscription.cursor().mark_delete());
            }
            Msg::Backlog(reply) => {
                let _ = reply.send((
                    self.subscription.backlog(&self.ml.layout()),
                    self.consumers.len(),
                ));
            }
            Msg::Stats(reply) => {
                let dispatcher = self.subscription.dispatcher();
                let ranges = dispatcher.key_hash_ranges();
                let consumers = self
                    .consumers
                    .values()
                    .map(|link| ConsumerStats {
                        name: link.name.clone(),
                        available_permits: dispatcher.permits(link.id).unwrap_or(0),
                        unacked_messages: dispatcher.unacked_messages(link.id),
                        key_hash_ranges: ranges
                            .iter()
                            .filter(|(_, _, owner)| *owner == link.id)
                            .map(|(start, end, _)| (*start, *end))
                            .collect(),
                    })
                    .collect();
                let layout = self.ml.layout();
                let cursor = self.subscription.cursor();
                let _ = reply.send(SubscriptionStats {
                    backlog: self.subscription.backlog(&layout),
                    mark_delete: cursor.mark_delete(),
                    read_position: cursor.next_unacked(&layout),
                    acked_ranges: cursor.acked_ranges().len(),
                    delayed: dispatcher.delayed_entries(),
                    consumers,
                });
            }
            Msg::SkipThrough(position) => {
                let layout = self.ml.layout();
                if position > self.subscription.cursor().mark_delete()
                    && self.subscription.expire_through(&layout, position)
                {
                    tracing::info!(subscription = self.name, topic = %self.topic.name, through = %position, "backlog evicted (quota)");
                    self.dirty = true;
                }
            }
            Msg::ExpireBefore(time) => self.expire_before(time, "message age").await,
            Msg::Close(reply) => {
                self.persist().await;
                let _ = reply.send(());
                return false;
            }
        }
        true
    }

    async fn remove(&mut self, id: u64) {
        // Undelivered frames go with it: its unacked entries go back for redelivery below.
        self.outboxes.remove(&id);
        if self.consumers.remove(&id).is_none() {
            return;
        }
        self.topic
            .counters
            .consumers
            .fetch_sub(1, Ordering::Relaxed);
        if let Ok(changes) = self.subscription.remove_consumer(id) {
            self.announce(changes).await;
        }
    }

    /// The refusal of one more consumer, if a limit forbids it.
    fn consumer_limit(&self) -> Option<BrokerError> {
        let limits = self.topic.limits;
        if limits::reached(self.consumers.len(), limits.max_consumers_per_subscription) {
            self.topic.guards.refused("max_consumers_per_subscription");
            return Some(BrokerError::ConsumerBusy(format!(
                "subscription {} reached the maximum of {} consumers (limits.max_consumers_per_subscription)",
                self.name, limits.max_consumers_per_subscription
            )));
        }
        let on_topic = self.topic.counters.consumers.load(Ordering::Relaxed) as usize;
        let max = crate::topic_context::TopicCounters::tighter(
            limits.max_consumers,
            &self.topic.counters.policy_max_consumers,
        );
        if limits::reached(on_topic, max) {
            self.topic.guards.refused("max_consumers_per_topic");
            return Some(BrokerError::ConsumerBusy(format!(
                "topic {} reached the maximum of {max} consumers (limits.max_consumers_per_topic or the topic's maxConsumers policy)",
                self.topic.name
            )));
        }
        None
    }

    /// Closes a consumer from the broker's side: its connection forgets it first, then the
    /// client is told with CLOSE_CONSUMER and re-subscribes.
    async fn evict(&mut self, id: u64) {
        if let Some(link) = self.consumers.get(&id).cloned() {
            let _ = link.evicted.send((link.client_consumer_id, link.id));
            let close = CommandCloseConsumer {
                consumer_id: link.client_consumer_id,
                request_id: 0,
                ..Default::default()
            };
            // A connection too full to take it is closed by its write timeout anyway.
            let _ = link.out.try_send(Box::new(close.into()));
        }
        self.remove(id).await;
    }

    /// Queues `frame` for consumer `id` without waiting: behind its outbox if it has one, else
    /// on its connection; a full connection starts the outbox and pauses the consumer.
    fn push(&mut self, id: u64, frame: Frame) {
        let frame = Box::new(frame);
        if let Some(outbox) = self.outboxes.get_mut(&id) {
            outbox.push_back(frame);
            return;
        }
        let Some(link) = self.consumers.get(&id) else {
            return;
        };
        match link.out.try_send(frame) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(frame)) => {
                self.outboxes.entry(id).or_default().push_back(frame);
                let _ = self.subscription.set_paused(id, true);
                self.wait_for_room(id);
            }
            // The connection is closing; it removes its consumers.
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }

    fn wait_for_room(&mut self, id: u64) {
        if let Some(link) = self.consumers.get(&id) {
            let out = link.out.clone();
            self.writable
                .push(async move { (id, out.reserve_owned().await.ok()) }.boxed());
        }
    }

    /// Room on consumer `id`'s connection: queue its outbox; resume it once empty.
    fn room_for(&mut self, id: u64, permit: Option<OwnedPermit<Box<Frame>>>) {
        let Some(permit) = permit else {
            self.outboxes.remove(&id); // the connection is gone
            return;
        };
        let (Some(outbox), Some(link)) = (self.outboxes.get_mut(&id), self.consumers.get(&id))
        else {
            return;
        };
        if let Some(frame) = outbox.pop_front() {
            let _ = permit.send(frame);
        }
        while let Some(frame) = outbox.pop_front() {
            match link.out.try_send(frame) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(frame)) => {
                    outbox.push_front(frame);
                    self.wait_for_room(id);
                    return;
                }
                Err(mpsc::error::TrySendError::Closed(_)) => {
                    outbox.clear();
                    break;
                }
            }
        }
        self.outboxes.remove(&id);
        let _ = self.subscription.set_paused(id, false);
    }

    async fn announce(&mut self, changes: Vec<ActiveConsumerChange>) {
        for change in changes {
            let Some(link) = self.consumers.get(&change.consumer_id) else {
                continue;
            };
            if link.protocol_version < ACTIVE_CONSUMER_CHANGE_VERSION {
                continue;
            }
            let frame = CommandActiveConsumerChange {
                consumer_id: link.client_consumer_id,
                is_active: Some(change.is_active),
            };
            self.push(change.consumer_id, frame.into());
        }
    }

    fn ack(&mut self, ack: CommandAck) {
        let kind = if ack.ack_type == AckType::Cumulative as i32 {
            AckKind::Cumulative
        } else {
            AckKind::Individual
        };
        let messages: Vec<AckedMessage> = ack
            .message_id
            .iter()
            .map(|id| AckedMessage {
                position: Position::new(id.ledger_id as i64, id.entry_id as i64),
                ack_set: (!id.ack_set.is_empty()).then(|| id.ack_set.clone()),
            })
            .collect();
        let layout = self.ml.layout();
        let report = self.subscription.ack(&layout, kind, &messages);
        let report = self.ack_compacted(&layout, kind, &messages, report);
        if report.ignored_cumulative {
            tracing::warn!(subscription = self.name, topic = %self.topic.name, "cumulative ack on a shared subscription ignored");
        }
        if !report.unknown.is_empty() {
            tracing::debug!(subscription = self.name, unknown = ?report.unknown, "acks for unknown positions ignored");
        }
        if !report.oversized_ack_sets.is_empty() {
            tracing::info!(subscription = self.name, positions = ?report.oversized_ack_sets, "batch-index acks larger than any batch ignored");
        }
        self.dirty = true;
    }

    async fn seek(&mut self, target: SeekTarget) -> Result<(), BrokerError> {
        let layout = self.ml.layout();
        let position = match target {
            SeekTarget::MessageId(id) if id.ledger_id < 0 => layout
                .first_position()
                .unwrap_or_else(|| layout.end_position()),
            SeekTarget::MessageId(id) if id.ledger_id == i64::MAX => layout.end_position(),
            SeekTarget::MessageId(id) => Position::new(id.ledger_id, id.entry_id),
            SeekTarget::PublishTime(time) => {
                publish_time::first_at_or_after(&self.ml, &layout, time).await?
            }
        };
        self.subscription.seek(&layout, position);
        self.compacted_next = compacted_start(self.subscription.cursor().mark_delete());
        self.rewind_to_compacted().await;
        self.dirty = true;
        self.persist().await;
        Ok(())
    }

    /// Acknowledges every message published before `cutoff` (ms since the epoch).
    async fn expire_before(&mut self, cutoff: u64, why: &str) {
        let layout = self.ml.layout();
        let Ok(first_live) = publish_time::first_at_or_after(&self.ml, &layout, cutoff).await
        else {
            return;
        };
        let last_expired = layout.prev(first_live);
        if last_expired > self.subscription.cursor().mark_delete()
            && self.subscription.expire_through(&layout, last_expired)
        {
            tracing::info!(subscription = self.name, topic = %self.topic.name, through = %last_expired, why, "messages expired");
            self.dirty = true;
        }
    }

    async fn persist(&mut self) {
        if !self.dirty {
            return;
        }
        if let Some(cursor) = &self.persisted {
            match cursor.persist(self.subscription.cursor()).await {
                Ok(()) => self.dirty = false,
                Err(e) => {
                    tracing::warn!(subscription = self.name, error = %e, "persisting the cursor failed; will retry")
                }
            }
        } else {
            self.dirty = false;
        }
    }

    /// Reads and delivers as long as consumers can take more.
    async fn pump(&mut self) {
        loop {
            let enabled = self.topic.delayed_delivery.enabled.load(Ordering::Relaxed);
            let max_delay = self
                .topic
                .delayed_delivery
                .max_delay_ms
                .load(Ordering::Relaxed);
            self.subscription.set_delayed_delivery(now_ms(), enabled);
            let layout = self.ml.layout();
            let Some(request) = self.subscription.next_read(&layout) else {
                return;
            };
            match request {
                ReadRequest::Read {
                    epoch,
                    from,
                    max_entries,
                } => {
                    let entries = match self.read(&layout, from, max_entries as usize).await {
                        Ok(entries) => entries,
                        Err(e) => {
                            tracing::warn!(subscription = self.name, error = %e, "read failed");
                            self.subscription.read_failed(epoch);
                            return;
                        }
                    };
                    if entries.is_empty() {
                        self.subscription.read_failed(epoch);
                        return;
                    }
                    let metas: Vec<EntryMeta> = entries
                        .iter()
                        .map(|(p, b)| entry_meta(*p, b, max_delay))
                        .collect();
                    let deliveries = self.subscription.read_complete(&layout, epoch, &metas);
                    self.deliver(deliveries, &entries).await;
                }
                ReadRequest::Replay { epoch, positions } => {
                    let read =
                        read_positions(self.read_compacted, &self.topic, &self.ml, &positions);
                    let entries = match read.await {
                        Ok(entries) => entries,
                        Err(e) => {
                            tracing::warn!(subscription = self.name, error = %e, "replay read failed");
                            self.subscription.read_failed(epoch);
                            return;
                        }
                    };
                    let metas: Vec<EntryMeta> = entries
                        .iter()
                        .map(|(p, b)| entry_meta(*p, b, max_delay))
                        .collect();
                    let deliveries = self.subscription.replay_complete(epoch, &metas);
                    self.deliver(deliveries, &entries).await;
                }
            }
        }
    }

    async fn deliver(&mut self, deliveries: Vec<Delivery>, entries: &[(Position, Bytes)]) {
        let by_position: HashMap<Position, &Bytes> = entries.iter().map(|(p, b)| (*p, b)).collect();
        for delivery in deliveries {
            let (Some(link), Some(bytes)) = (
                self.consumers.get(&delivery.consumer_id),
                by_position.get(&delivery.position),
            ) else {
                continue;
            };
            let Ok(payload) = Payload::parse((*bytes).clone()) else {
                tracing::error!(position = %delivery.position, "stored entry is unreadable; skipping it");
                continue;
            };
            let acked = self.subscription.cursor().batch_ack_set(delivery.position);
            let compacted_out = self
                .compacted_horizon
                .filter(|h| self.read_compacted && delivery.position <= *h)
                .and_then(|_| {
                    let limit = self.topic.max_frame_size.saturating_mul(16);
                    select::live_mask(bytes, limit)
                });
            let ack_set = match (acked, compacted_out) {
                (Some(acked), Some(live)) => {
                    let mut set = acked.clone();
                    set.and(&AckSet::from_words(&live));
                    set.to_words()
                }
                (Some(acked), None) => acked.to_words(),
                (None, Some(live)) => live,
                (None, None) => Vec::new(),
            };
            let message = CommandMessage {
                consumer_id: link.client_consumer_id,
                message_id: MessageIdData {
                    ledger_id: delivery.position.ledger_id as u64,
                    entry_id: delivery.position.entry_id as u64,
                    partition: (link.partition >= 0).then_some(link.partition),
                    ..Default::default()
                },
                redelivery_count: (delivery.redelivery_count > 0)
                    .then_some(delivery.redelivery_count),
                ack_set,
                consumer_epoch: None,
            };
            let mut frame = Frame::with_payload(message, payload);
            if frame.encoded_len() > self.topic.max_frame_size
                && let Some(message) = frame.command.message.as_mut()
            {
                // Without the batch's acked indexes the client may see some of them again
                // (at-least-once), but the entry goes out.
                message.ack_set.clear();
            }
            self.topic
                .counters
                .msg_out
                .fetch_add(u64::from(delivery.num_messages), Ordering::Relaxed);
            self.topic
                .counters
                .bytes_out
                .fetch_add(bytes.len() as u64, Ordering::Relaxed);
            // A closed connection removes its consumers; its undelivered messages are
            // redelivered then.
            self.push(delivery.consumer_id, frame);
        }
    }
}
