//! PRODUCER and SEND: producers are created off the command loop (the topic may have to be
//! loaded), and entries go to the topic's managed ledger with receipts in order per producer.
//! A SEND holds a slot of the connection's pending publishes and its bytes of the broker's
//! publish buffer until its receipt is queued; while either is exhausted the command loop waits,
//! so the connection is not read (Pulsar's auto-read off).

use super::*;
use crate::topic_producers::{AccessMode, Join, Joined};

impl Connection {
    pub(super) async fn producer(&mut self, request: CommandProducer) -> Result<(), Closed> {
        let producer_id = request.producer_id;
        let request_id = request.request_id;
        if self.producers.contains_key(&producer_id) {
            let error = BrokerError::ProducerBusy(format!(
                "producer id {producer_id} is already in use on this connection"
            ));
            return self.send_error(request_id, &error).await;
        }
        let limits = &self.service.ctx().config.limits;
        if self.producers.len() >= limits.max_producers_per_connection {
            self.service
                .ctx()
                .metrics
                .guards
                .refused("max_producers_per_connection");
            let error = BrokerError::NotAllowed(format!(
                "the connection holds {} producers, the limit (limits.max_producers_per_connection)",
                self.producers.len()
            ));
            return self.send_error(request_id, &error).await;
        }
        let topic = match TopicName::parse(&request.topic) {
            Ok(topic) => topic,
            Err(e) => {
                return self
                    .send_error(request_id, &BrokerError::InvalidTopicName(e.to_string()))
                    .await;
            }
        };
        let Some(mode) = AccessMode::from_wire(request.producer_access_mode) else {
            let error = BrokerError::NotAllowed(format!(
                "unknown producer access mode {:?}",
                request.producer_access_mode
            ));
            return self.send_error(request_id, &error).await;
        };
        let cancel = self.cancel.child_token();
        self.producers.insert(
            producer_id,
            ProducerSlot::Creating {
                request_id,
                cancel: cancel.clone(),
            },
        );
        let service = self.service.clone();
        let completions = self.completions.clone();
        let owner = ProducerOwner {
            connection: self.id,
            producer_id,
        };
        let role = self.auth.role.clone();
        self.closed_by_broker.remove(&producer_id);
        let closer = crate::topic::ProducerCloser {
            out: self.out.clone(),
            evicted: self.producer_evictions.clone(),
        };
        tokio::spawn(async move {
            let result = async {
                auth::authorize(
                    &service.ctx().admin,
                    role.as_deref(),
                    &topic,
                    TopicOperation::Produce,
                )
                .await?;
                let topic = match topic.is_persistent() {
                    true => TopicRef::Persistent(service.topic(&topic, true).await?),
                    false => {
                        let create = service.ctx().config.allow_auto_topic_creation;
                        TopicRef::NonPersistent(service.np_topic(&topic, create).await?)
                    }
                };
                let schema_version =
                    schema::for_producer(service.ctx(), topic.name(), request.schema.as_ref())
                        .await?
                        .map(schema::version_bytes);
                let name = match request.producer_name.filter(|n| !n.is_empty()) {
                    Some(name) => name,
                    // Unique across the cluster: the broker's id is part of it.
                    None => format!(
                        "{}-{}-{}",
                        service.ctx().config.cluster,
                        service.ctx().namespaces.broker_id(),
                        service.next_id(),
                    ),
                };
                if name.starts_with(crate::dedup::REPL_PREFIX)
                    && let TopicRef::Persistent(topic) = &topic
                {
                    // Another cluster's replicator (over the Pulsar protocol): its entries are
                    // deduplicated by their source positions, whatever the dedup policy.
                    topic
                        .dedup()
                        .ensure_tracking(topic.managed_ledger())
                        .await
                        .map_err(|e| BrokerError::Persistence(e.to_string()))?;
                }
                let join = Join {
                    name: name.clone(),
                    owner,
                    closer: Some(closer.clone()),
                    mode,
                    epoch: request.topic_epoch,
                };
                let topic_epoch = match topic.add_producer(join)? {
                    Joined::Ready { epoch } => epoch,
                    Joined::Queued(promoted) => {
                        // Java's answer to a queued WaitForExclusive producer: not ready yet.
                        let queued = CommandProducerSuccess {
                            request_id,
                            producer_name: name.clone(),
                            last_sequence_id: Some(-1),
                            schema_version: schema_version.clone(),
                            topic_epoch: None,
                            producer_ready: Some(false),
                        };
                        let _ = closer.out.send(Box::new(queued.into())).await;
                        tokio::select! {
                            biased;
                            answer = promoted => Some(answer.map_err(|_| {
                                BrokerError::ServiceNotReady(format!(
                                    "topic {} was unloaded",
                                    topic.name()
                                ))
                            })??),
                            // Closed by its client, or the connection is gone: dropping the
                            // answer takes it out of the queue.
                            () = cancel.cancelled() => {
                                topic.remove_producer(&name, owner);
                                return Err(BrokerError::ServiceNotReady(
                                    "producer closed while waiting for exclusive access".into(),
                                ));
                            }
                        }
                    }
                };
                if let Some(epoch) = topic_epoch
                    && let Err(e) = topic.persist_epoch(epoch).await
                {
                    topic.remove_producer(&name, owner);
                    return Err(e);
                }
                Ok(ProducerCreated {
                    topic,
                    name,
                    schema_version,
                    topic_epoch,
                })
            }
            .await;
            let completion = Completion::Producer {
                producer_id,
                request_id,
                result,
            };
            if let Err(unsent) = completions.send(completion) {
                // The connection is gone: the producer must not hold the topic.
                if let Completion::Producer {
                    result: Ok(created),
                    ..
                } = unsent.0
                {
                    created.topic.remove_producer(&created.name, owner);
                }
            }
        });
        Ok(())
    }

    pub(super) async fn publish(
        &mut self,
        send: CommandSend,
        payload: Option<magnetar_protocol::Payload>,
    ) -> Result<(), Closed> {
        if self.closed_by_broker.contains(&send.producer_id) {
            tracing::info!(peer = %self.peer, producer_id = send.producer_id, "closing connection: SEND for a producer the broker closed (its topic moved)");
            return Err(Closed);
        }
        if !matches!(
            self.producers.get(&send.producer_id),
            Some(ProducerSlot::Ready(_) | ProducerSlot::NonPersistent { .. })
        ) {
            // A SEND racing with CLOSE_PRODUCER: Java ignores it too.
            tracing::debug!(peer = %self.peer, producer_id = send.producer_id, "SEND for an unknown producer ignored");
            return Ok(());
        }
        let error = |code: ServerError, message: String| -> Frame {
            CommandSendError {
                producer_id: send.producer_id,
                sequence_id: send.sequence_id,
                error: code as i32,
                message,
            }
            .into()
        };
        let Some(payload) = payload else {
            return self
                .send(error(
                    ServerError::UnknownError,
                    "SEND without a payload".into(),
                ))
                .await;
        };
        if let Err(mismatch) = payload.verify_checksum() {
            tracing::info!(peer = %self.peer, %mismatch, "SEND with a bad checksum");
            return self
                .send(error(ServerError::ChecksumError, mismatch.to_string()))
                .await;
        }
        let metadata = match payload.metadata() {
            Ok(metadata) => metadata,
            Err(e) => {
                return self
                    .send(error(
                        ServerError::UnknownError,
                        format!("unreadable message metadata: {e}"),
                    ))
                    .await;
            }
        };
        let entry = payload.to_entry();
        let max = self.service.ctx().config.max_message_size;
        // A chunk carries up to max_message_size of payload plus its metadata (the C++ client
        // fills chunks to the limit; Java skips the size check for chunks). Half the frame
        // padding for the metadata still leaves room for the MESSAGE command around it.
        let chunk = metadata.num_chunks_from_msg.is_some_and(|n| n > 1)
            && entry.len() <= max + magnetar_protocol::FRAME_PADDING / 2;
        if entry.len() > max && !chunk {
            // Stored, it could not be delivered in a MESSAGE frame.
            tracing::info!(peer = %self.peer, size = entry.len(), max, "SEND larger than max_message_size refused");
            return self
                .send(error(
                    ServerError::NotAllowedError,
                    format!(
                        "message of {} bytes exceeds the broker's max_message_size of {max} bytes",
                        entry.len()
                    ),
                ))
                .await;
        }
        let num_messages = send
            .num_messages
            .unwrap_or(1)
            .max(metadata.num_messages_in_batch.unwrap_or(1))
            .max(1) as u32;
        if let Some(ProducerSlot::NonPersistent { topic, .. }) =
            self.producers.get(&send.producer_id)
        {
            // Handed to the subscriptions now; the receipt follows at once, in order.
            // With the checksum the persistent path stores, which some clients expect.
            let payload = magnetar_protocol::Payload::parse(entry).unwrap_or(payload);
            topic.publish(payload, &metadata, num_messages);
            let receipt = CommandSendReceipt {
                producer_id: send.producer_id,
                sequence_id: send.sequence_id,
                message_id: Some(MessageIdData {
                    ledger_id: 0,
                    entry_id: 0,
                    ..Default::default()
                }),
                highest_sequence_id: send.highest_sequence_id,
            };
            return self.send(receipt.into()).await;
        }
        let permits = self.publish_permits(entry.len()).await?;
        let Some(ProducerSlot::Ready(producer)) = self.producers.get(&send.producer_id) else {
            return Ok(()); // closed by the broker while we waited
        };
        // A chunked message is checked once, on its last chunk.
        let last_chunk = match (metadata.chunk_id, metadata.num_chunks_from_msg) {
            (Some(id), Some(n)) => id + 1 >= n,
            _ => true,
        };
        let dedup = producer.topic.dedup();
        // An entry another cluster's replicator forwards counts by its source position (each
        // chunk has its own); a producer's by its sequence ids — a batch's increase, so the last
        // is at least first + count - 1 (the C++ client does not send highest_sequence_id; Java
        // does).
        let replicated = producer
            .name
            .starts_with(dedup::REPL_PREFIX)
            .then(|| dedup::metadata_mark(&metadata))
            .flatten();
        let is_replicated = replicated.is_some();
        let (key, lowest, highest, checked) = match replicated {
            Some((key, mark)) => (key, mark, mark, true),
            None => {
                let highest = send.highest_sequence_id.unwrap_or(0).max(
                    send.sequence_id
                        .saturating_add(u64::from(num_messages))
                        .saturating_sub(1),
                );
                let (name, first) = (producer.name.clone(), send.sequence_id);
                (name, (0, first), (0, highest), last_chunk)
            }
        };
        let tracked = checked && dedup.tracks(&key);
        let verdict = match tracked {
            true => dedup.check(&key, lowest, highest),
            false if is_replicated => Verdict::Unknown, // marks switched off meanwhile
            false => Verdict::New,
        };
        let append = match verdict {
            Verdict::New => {
                let tracked = tracked.then_some((key, highest));
                let bytes = entry.len() as u64;
                let write = producer.topic.publish(entry, num_messages, tracked);
                match metadata.replicated_from.clone().filter(|_| is_replicated) {
                    // Counted in the topic's replication stats, and a checkpoint for replicated
                    // subscriptions, as for an entry that came over the QUIC link.
                    Some(source) => {
                        let topic = producer.topic.clone();
                        async move {
                            let local = write.await?;
                            topic
                                .subscription_sync()
                                .checkpoint(&source, local, highest);
                            let inbound = topic.inbound(&source);
                            inbound.msg_in.fetch_add(
                                u64::from(num_messages),
                                std::sync::atomic::Ordering::Relaxed,
                            );
                            inbound
                                .bytes_in
                                .fetch_add(bytes, std::sync::atomic::Ordering::Relaxed);
                            Ok(local)
                        }
                        .boxed()
                    }
                    None => write.boxed(),
                }
            }
            // Pulsar's receipt for a duplicate: message id -1:-1, nothing stored.
            Verdict::Duplicate => futures::future::ready(Ok(Position::new(-1, -1))).boxed(),
            Verdict::Unknown => futures::future::ready(Err(BrokerError::Persistence(
                "Cannot determine whether the message is a duplicate at this time".into(),
            )))
            .boxed(),
        };
        producer.enqueue(Receipt {
            sequence_id: send.sequence_id,
            highest_sequence_id: send.highest_sequence_id,
            append,
            permits,
        });
        Ok(())
    }

    /// A slot of the connection's pending publishes and `bytes` of the broker's publish
    /// buffer, waiting (and so not reading the connection) while either is exhausted.
    async fn publish_permits(&self, bytes: usize) -> Result<PublishPermits, Closed> {
        let ctx = self.service.ctx();
        let bytes = u32::try_from(bytes).unwrap_or(u32::MAX);
        let slot = match self.pending_publish.clone().try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => {
                ctx.metrics.guards.publish_throttled.inc();
                tokio::select! {
                    slot = self.pending_publish.clone().acquire_owned() => slot.map_err(|_| Closed)?,
                    _ = self.cancel.cancelled() => return Err(Closed),
                }
            }
        };
        let buffer = match ctx.publish_buffer.clone().try_acquire_many_owned(bytes) {
            Ok(buffer) => buffer,
            Err(_) => {
                ctx.metrics.guards.publish_throttled.inc();
                tokio::select! {
                    buffer = ctx.publish_buffer.clone().acquire_many_owned(bytes) => buffer.map_err(|_| Closed)?,
                    _ = self.cancel.cancelled() => return Err(Closed),
                }
            }
        };
        Ok(PublishPermits::new(
            slot,
            buffer,
            ctx.metrics.guards.pending_publish_bytes.clone(),
        ))
    }
}
