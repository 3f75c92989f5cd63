//! SUBSCRIBE, ACK, UNSUBSCRIBE, SEEK and GET_LAST_MESSAGE_ID: consumers join their
//! subscription's actor, which dispatches, tracks acknowledgements and persists the cursor.
//! Whatever waits on the subscription or on storage runs off the command loop and answers by
//! itself (or through a completion when the connection's state must change first).

use super::*;

impl Connection {
    pub(super) async fn subscribe(&mut self, request: CommandSubscribe) -> Result<(), Closed> {
        let consumer_id = request.consumer_id;
        let request_id = request.request_id;
        if self.consumers.contains_key(&consumer_id) {
            let error = BrokerError::ConsumerBusy(format!(
                "consumer id {consumer_id} is already in use on this connection"
            ));
            return self.send_error(request_id, &error).await;
        }
        let limits = &self.service.ctx().config.limits;
        if self.consumers.len() >= limits.max_consumers_per_connection {
            self.service
                .ctx()
                .metrics
                .guards
                .refused("max_consumers_per_connection");
            let error = BrokerError::NotAllowed(format!(
                "the connection holds {} consumers, the limit (limits.max_consumers_per_connection)",
                self.consumers.len()
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
        let Some(sub_type) = SubType::from_wire(request.sub_type) else {
            return self
                .send_error(
                    request_id,
                    &BrokerError::NotAllowed("unknown subscription type".into()),
                )
                .await;
        };
        if request.subscription.is_empty() {
            return self
                .send_error(
                    request_id,
                    &BrokerError::NotAllowed("empty subscription name".into()),
                )
                .await;
        }
        let read_compacted = request.read_compacted.unwrap_or(false);
        if read_compacted && matches!(sub_type, SubType::Shared | SubType::KeyShared) {
            let error = BrokerError::NotAllowed(
                "read compacted is only allowed on exclusive and failover subscriptions".into(),
            );
            return self.send_error(request_id, &error).await;
        }
        let options = SubscriptionOptions {
            sub_type,
            read_compacted,
            durable: request.durable(),
            initial_position: if request.initial_position()
                == command_subscribe::InitialPosition::Earliest
            {
                InitialPosition::Earliest
            } else {
                InitialPosition::Latest
            },
            start_message_id: request.start_message_id.as_ref().map(MessageId::from),
            key_shared_allow_out_of_order: request
                .key_shared_meta
                .as_ref()
                .is_some_and(|m| m.allow_out_of_order_delivery()),
            key_shared_sticky: request
                .key_shared_meta
                .as_ref()
                .is_some_and(|m| m.key_shared_mode() == KeySharedMode::Sticky),
            partition_index: topic.partition(),
        };
        self.consumers
            .insert(consumer_id, ConsumerSlot::Creating { request_id });
        let service = self.service.clone();
        let completions = self.completions.clone();
        let out = self.out.clone();
        let evicted = self.evictions.clone();
        let protocol_version = self.protocol_version;
        let partition = topic.partition().map_or(-1, |p| p as i32);
        let role = self.auth.role.clone();
        let hash_ranges: Vec<(u32, u32)> = request
            .key_shared_meta
            .as_ref()
            .map(|m| {
                m.hash_ranges
                    .iter()
                    .map(|r| {
                        // A negative bound is out of range: the dispatcher refuses it.
                        let bound = |v: i32| u32::try_from(v).unwrap_or(u32::MAX);
                        (bound(r.start), bound(r.end))
                    })
                    .collect()
            })
            .unwrap_or_default();
        tokio::spawn(async move {
            let result = async {
                let consume = TopicOperation::Consume {
                    subscription: &request.subscription,
                };
                auth::authorize(&service.ctx().admin, role.as_deref(), &topic, consume).await?;
                let link = ConsumerLink {
                    id: service.next_id(),
                    client_consumer_id: consumer_id,
                    name: request.consumer_name.clone().unwrap_or_default(),
                    priority_level: request.priority_level.unwrap_or(0),
                    out,
                    protocol_version,
                    partition,
                    hash_ranges,
                    evicted,
                };
                if !topic.is_persistent() {
                    return subscribe_non_persistent(&service, &topic, &request, options, link)
                        .await;
                }
                let topic = service
                    .topic(&topic, request.force_topic_creation())
                    .await?;
                let idle = topic.producer_count() == 0 && topic.managed_ledger().entries() == 0;
                schema::for_consumer(service.ctx(), topic.name(), request.schema.as_ref(), idle)
                    .await?;
                let subscription = topic.subscription(&request.subscription, options).await?;
                if request.replicate_subscription_state == Some(true) {
                    topic
                        .subscription_sync()
                        .mark_replicated(&request.subscription);
                }
                let id = link.id;
                subscription.add_consumer(link).await?;
                Ok(ConsumerSlot::Ready {
                    topic,
                    subscription,
                    id,
                })
            }
            .await;
            let completion = Completion::Consumer {
                consumer_id,
                request_id,
                result,
            };
            if let Err(unsent) = completions.send(completion) {
                // The connection is gone: the consumer must not stay attached.
                if let Completion::Consumer {
                    result: Ok(slot), ..
                } = unsent.0
                {
                    slot.close().await;
                }
            }
        });
        Ok(())
    }

    pub(super) async fn ack(&mut self, ack: CommandAck) -> Result<(), Closed> {
        let request_id = ack.request_id;
        let consumer_id = ack.consumer_id;
        let result = match self.consumers.get(&consumer_id) {
            Some(ConsumerSlot::Ready { subscription, .. }) => {
                subscription.ack(ack);
                Ok(())
            }
            // Nothing is kept to acknowledge.
            Some(ConsumerSlot::NonPersistent { .. }) => Ok(()),
            _ => Err(BrokerError::NotAllowed(format!(
                "consumer {consumer_id} is not ready"
            ))),
        };
        // Only an ACK with a request id asks for a receipt.
        if let Some(request_id) = request_id {
            let response = CommandAckResponse {
                consumer_id,
                request_id: Some(request_id),
                error: result.as_ref().err().map(|e| e.code() as i32),
                message: result.err().map(|e| e.to_string()),
                ..Default::default()
            };
            return self.send(response.into()).await;
        }
        Ok(())
    }

    pub(super) async fn unsubscribe(&mut self, request: CommandUnsubscribe) -> Result<(), Closed> {
        if let Some(ConsumerSlot::NonPersistent {
            topic,
            subscription,
            id,
        }) = self.consumers.get(&request.consumer_id)
        {
            // The subscription ends with its last consumer; `force` closes the others.
            if subscription.consumer_count() > 1 && !request.force() {
                let error = BrokerError::ConsumerBusy(format!(
                    "subscription {} has other consumers",
                    subscription.name()
                ));
                return self.send_error(request.request_id, &error).await;
            }
            topic.remove_consumer(subscription, *id);
            topic.delete_subscription_if(subscription);
            self.consumers.remove(&request.consumer_id);
            return self
                .send(commands::success(request.request_id).into())
                .await;
        }
        let Some(ConsumerSlot::Ready {
            subscription,
            id,
            topic,
        }) = self.consumers.get(&request.consumer_id)
        else {
            let error =
                BrokerError::NotAllowed(format!("consumer {} is not ready", request.consumer_id));
            return self.send_error(request.request_id, &error).await;
        };
        let (subscription, id, topic) = (subscription.clone(), *id, topic.clone());
        let completions = self.completions.clone();
        let consumer_id = request.consumer_id;
        let slot = self.background_slot().await;
        tokio::spawn(async move {
            let _slot = slot;
            let result = match subscription.unsubscribe(id, request.force()).await {
                Ok(()) => topic
                    .remove_subscription(subscription.name())
                    .await
                    .map(|()| true),
                Err(e) => Err(e),
            };
            let (frame, forget) = match result {
                Ok(_) => (commands::success(request.request_id).into(), true),
                // The subscription ended even if its cursor could not be deleted.
                Err(e) => (
                    commands::error(request.request_id, e.code(), e.to_string()).into(),
                    subscription.is_closed(),
                ),
            };
            let forget = forget.then_some((consumer_id, id));
            let frame = Box::new(frame);
            let _ = completions.send(Completion::Reply { frame, forget });
        });
        Ok(())
    }

    pub(super) async fn seek(&mut self, request: CommandSeek) -> Result<(), Closed> {
        if let Some(ConsumerSlot::NonPersistent { .. }) = self.consumers.get(&request.consumer_id) {
            let error =
                BrokerError::NotAllowed("seek is not supported on non-persistent topics".into());
            return self.send_error(request.request_id, &error).await;
        }
        let Some(ConsumerSlot::Ready { subscription, .. }) =
            self.consumers.get(&request.consumer_id)
        else {
            let error =
                BrokerError::NotAllowed(format!("consumer {} is not ready", request.consumer_id));
            return self.send_error(request.request_id, &error).await;
        };
        let target = match (&request.message_id, request.message_publish_time) {
            (Some(id), _) => SeekTarget::MessageId(MessageId::from(id)),
            (None, Some(time)) => SeekTarget::PublishTime(time),
            (None, None) => {
                let error =
                    BrokerError::NotAllowed("SEEK needs a message id or a publish time".into());
                return self.send_error(request.request_id, &error).await;
            }
        };
        let subscription = subscription.clone();
        let out = self.out.clone();
        let slot = self.background_slot().await;
        tokio::spawn(async move {
            let _slot = slot;
            match subscription.seek(target).await {
                // SUCCESS first; the subscription then closes its consumers so they
                // re-subscribe with fresh permits, as Java does.
                Ok(()) => {
                    if out
                        .send(Box::new(commands::success(request.request_id).into()))
                        .await
                        .is_ok()
                    {
                        subscription.disconnect_consumers();
                    }
                }
                Err(e) => {
                    let error = commands::error(request.request_id, e.code(), e.to_string());
                    let _ = out.send(Box::new(error.into())).await;
                }
            }
        });
        Ok(())
    }

    pub(super) async fn last_message_id(
        &mut self,
        request: CommandGetLastMessageId,
    ) -> Result<(), Closed> {
        if let Some(ConsumerSlot::NonPersistent { .. }) = self.consumers.get(&request.consumer_id) {
            let error = BrokerError::NotAllowed(
                "non-persistent topics store no messages: they have no last message id".into(),
            );
            return self.send_error(request.request_id, &error).await;
        }
        let Some(ConsumerSlot::Ready {
            topic,
            subscription,
            ..
        }) = self.consumers.get(&request.consumer_id)
        else {
            let error =
                BrokerError::NotAllowed(format!("consumer {} is not ready", request.consumer_id));
            return self.send_error(request.request_id, &error).await;
        };
        let (topic, subscription) = (topic.clone(), subscription.clone());
        let out = self.out.clone();
        let slot = self.background_slot().await;
        tokio::spawn(async move {
            let _slot = slot;
            let frame: Frame =
                match last_message_id(&topic, &subscription, request.request_id).await {
                    Ok(response) => response.into(),
                    Err(e) => commands::error(request.request_id, e.code(), e.to_string()).into(),
                };
            let _ = out.send(Box::new(frame)).await;
        });
        Ok(())
    }
}

/// GET_LAST_MESSAGE_ID's answer: the topic's last entry (read back from storage) and the
/// subscription's mark-delete position.
async fn last_message_id(
    topic: &Topic,
    subscription: &SubscriptionHandle,
    request_id: u64,
) -> Result<CommandGetLastMessageIdResponse, BrokerError> {
    let partition = topic.name().partition().map(|p| p as i32);
    let id = |position: Position, batch_index: Option<i32>| MessageIdData {
        ledger_id: position.ledger_id as u64,
        entry_id: position.entry_id as u64,
        partition,
        batch_index,
        ..Default::default()
    };
    let none = MessageIdData {
        ledger_id: u64::MAX,
        entry_id: u64::MAX,
        partition,
        ..Default::default()
    };
    let compacted = match subscription.kind().read_compacted {
        true => topic
            .compacted()
            .view(topic.managed_ledger(), topic.compaction_limit())
            .await
            .map_err(|e| BrokerError::Persistence(e.to_string()))?,
        false => None,
    };
    let last_confirmed = topic.managed_ledger().last_confirmed();
    let last_message_id = match compacted {
        // Everything is compacted: the last message a compacted read delivers (the topic's last
        // may have been a deletion or superseded).
        Some(view) if last_confirmed.is_none_or(|last| last <= view.horizon) => {
            match view.last_message() {
                Some((position, batch_index)) => id(position, batch_index.map(|i| i as i32)),
                None => none,
            }
        }
        _ => match topic.last_entry().await? {
            Some((position, messages)) => id(position, (messages > 1).then(|| messages as i32 - 1)),
            None => none,
        },
    };
    let mark_delete = subscription.mark_delete().await;
    Ok(CommandGetLastMessageIdResponse {
        last_message_id,
        request_id,
        consumer_mark_delete_position: mark_delete.map(|p| MessageIdData {
            ledger_id: p.ledger_id as u64,
            entry_id: p.entry_id as u64,
            ..Default::default()
        }),
    })
}

/// SUBSCRIBE to a non-persistent topic: no cursor, no compacted view; the subscription is made
/// (or joined) in memory.
async fn subscribe_non_persistent(
    service: &BrokerService,
    name: &TopicName,
    request: &CommandSubscribe,
    options: SubscriptionOptions,
    link: ConsumerLink,
) -> Result<ConsumerSlot, BrokerError> {
    if options.read_compacted {
        return Err(BrokerError::NotAllowed(
            "read compacted is only valid on persistent topics".into(),
        ));
    }
    let create = request.force_topic_creation() && service.ctx().config.allow_auto_topic_creation;
    let topic = service.np_topic(name, create).await?;
    let idle = topic.producer_count() == 0;
    schema::for_consumer(service.ctx(), name, request.schema.as_ref(), idle).await?;
    let id = link.id;
    let subscription = topic.subscribe(
        &request.subscription,
        options.sub_type,
        options.key_shared_sticky,
        link,
    )?;
    Ok(ConsumerSlot::NonPersistent {
        topic,
        subscription,
        id,
    })
}
