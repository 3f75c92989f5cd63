//! The subscription's task: owns the sans-IO [`Subscription`], reads entries as permits allow,
//! sends MESSAGE frames, records acknowledgements, applies message TTL and persists the cursor
//! at a bounded rate.

use super::*;

/// How often a changed cursor is persisted (Pulsar's mark-delete rate limit is 1/s).
const PERSIST_EVERY: Duration = Duration::from_secs(1);
/// How often message TTL is applied.
const TTL_CHECK_EVERY: Duration = Duration::from_secs(5);
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
    /// For reading namespace policies (message TTL).
    pub(super) metadata: Option<magnetar_metadata::MetadataClient>,
}

fn entry_meta(position: Position, bytes: &Bytes) -> EntryMeta {
    let metadata = Payload::parse(bytes.clone())
        .ok()
        .and_then(|p| p.metadata().ok());
    let Some(metadata) = metadata else {
        return EntryMeta::new(position, 1);
    };
    let messages = metadata.num_messages_in_batch.unwrap_or(1).max(1) as u32;
    let key = hash::sticky_key(
        metadata.ordering_key.as_deref(),
        metadata.partition_key.as_deref().map(str::as_bytes),
    );
    EntryMeta::new(position, messages).with_sticky_key(key)
}

impl Actor {
    pub(super) async fn run(
        mut self,
        mut rx: mpsc::UnboundedReceiver<Msg>,
        stopped: CancellationToken,
    ) {
        let mut appends = self.ml.watch_appends();
        let mut persist = tokio::time::interval(PERSIST_EVERY);
        let mut ttl_check = tokio::time::interval(TTL_CHECK_EVERY);
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
                _ = persist.tick() => self.persist().await,
                _ = ttl_check.tick() => self.expire_by_ttl().await,
            }
            self.pump().await;
        }
        self.persist().await;
        stopped.cancel();
    }

    /// Returns false when the subscription ends.
    async fn handle(&mut self, msg: Msg) -> bool {
        match msg {
            Msg::Add(link, reply) => {
                let info = ConsumerInfo::new(link.id, link.name.clone())
                    .with_priority(link.priority_level);
                let layout = self.ml.layout();
                let sub_type = self.subscription.sub_type();
                let result = match self.subscription.add_consumer(&layout, sub_type, info) {
                    Ok(changes) => {
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
                let consumers = self
                    .consumers
                    .values()
                    .map(|link| ConsumerStats {
                        name: link.name.clone(),
                        available_permits: dispatcher.permits(link.id).unwrap_or(0),
                        unacked_messages: dispatcher.unacked_messages(link.id),
                    })
                    .collect();
                let _ = reply.send(SubscriptionStats {
                    backlog: self.subscription.backlog(&self.ml.layout()),
                    mark_delete: self.subscription.cursor().mark_delete(),
                    consumers,
                });
            }
            Msg::Close(reply) => {
                self.persist().await;
                let _ = reply.send(());
                return false;
            }
        }
        true
    }

    async fn remove(&mut self, id: u64) {
        if self.consumers.remove(&id).is_some()
            && let Ok(changes) = self.subscription.remove_consumer(id)
        {
            self.announce(changes).await;
        }
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
            let _ = link.out.send(close.into()).await;
        }
        self.remove(id).await;
    }

    async fn announce(&self, changes: Vec<ActiveConsumerChange>) {
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
            let _ = link.out.send(frame.into()).await;
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
        if report.ignored_cumulative {
            tracing::warn!(subscription = self.name, topic = %self.topic.name, "cumulative ack on a shared subscription ignored");
        }
        if !report.unknown.is_empty() {
            tracing::debug!(subscription = self.name, unknown = ?report.unknown, "acks for unknown positions ignored");
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
            SeekTarget::PublishTime(time) => self.find_by_publish_time(&layout, time).await?,
        };
        self.subscription.seek(&layout, position);
        self.dirty = true;
        self.persist().await;
        Ok(())
    }

    /// Acknowledges, for this subscription, every message older than the namespace's TTL.
    async fn expire_by_ttl(&mut self) {
        let Some(metadata) = &self.metadata else {
            return;
        };
        let Some(ttl) = message_ttl(metadata, &self.topic.name).await else {
            return;
        };
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let cutoff = now_ms.saturating_sub(ttl.as_millis() as u64);
        let layout = self.ml.layout();
        let Ok(first_live) = self.find_by_publish_time(&layout, cutoff).await else {
            return;
        };
        let last_expired = layout.prev(first_live);
        if last_expired > self.subscription.cursor().mark_delete()
            && self.subscription.expire_through(&layout, last_expired)
        {
            tracing::info!(subscription = self.name, topic = %self.topic.name, through = %last_expired, "messages expired by TTL");
            self.dirty = true;
        }
    }

    /// The first entry published at or after `time` (binary search over the topic).
    async fn find_by_publish_time(
        &self,
        layout: &LedgerLayout,
        time: u64,
    ) -> Result<Position, BrokerError> {
        let positions: Vec<Position> = layout
            .ledgers()
            .iter()
            .flat_map(|l| (0..l.entries).map(move |e| Position::new(l.ledger_id, e)))
            .collect();
        let (mut low, mut high) = (0usize, positions.len());
        while low < high {
            let mid = (low + high) / 2;
            let entries = self
                .ml
                .read_positions(&positions[mid..=mid])
                .await
                .map_err(|e| BrokerError::Persistence(e.to_string()))?;
            let published = entries
                .first()
                .and_then(|(_, bytes)| Payload::parse(bytes.clone()).ok())
                .and_then(|p| p.metadata().ok())
                .map_or(0, |m| m.publish_time);
            if published < time {
                low = mid + 1
            } else {
                high = mid
            }
        }
        Ok(positions
            .get(low)
            .copied()
            .unwrap_or_else(|| layout.end_position()))
    }

    async fn persist(&mut self) {
        if !self.dirty {
            return;
        }
        if let Some(cursor) = &self.persisted {
            // The subscription's cursor is the live state; the managed cursor persists a copy.
            let state = self.subscription.cursor().clone();
            let result = match cursor.update(|persisted, _| *persisted = state) {
                Ok(()) => cursor.flush().await,
                Err(e) => Err(e),
            };
            match result {
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
                    let entries = match self.ml.read(from, max_entries as usize).await {
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
                    let metas: Vec<EntryMeta> =
                        entries.iter().map(|(p, b)| entry_meta(*p, b)).collect();
                    let deliveries = self.subscription.read_complete(&layout, epoch, &metas);
                    self.deliver(deliveries, &entries).await;
                }
                ReadRequest::Replay { epoch, positions } => {
                    let entries = match self.ml.read_positions(&positions).await {
                        Ok(entries) => entries,
                        Err(e) => {
                            tracing::warn!(subscription = self.name, error = %e, "replay read failed");
                            self.subscription.read_failed(epoch);
                            return;
                        }
                    };
                    let metas: Vec<EntryMeta> =
                        entries.iter().map(|(p, b)| entry_meta(*p, b)).collect();
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
            let ack_set = self
                .subscription
                .cursor()
                .batch_ack_set(delivery.position)
                .map(|set| set.to_words())
                .unwrap_or_default();
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
            let _ = link.out.send(Frame::with_payload(message, payload)).await;
        }
    }
}
