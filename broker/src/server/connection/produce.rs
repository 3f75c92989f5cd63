//! PRODUCER and SEND: producers are created off the command loop (the topic may have to be
//! loaded), and entries go to the topic's managed ledger with receipts in order per producer.

use super::*;

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
        let topic = match TopicName::parse(&request.topic) {
            Ok(topic) => topic,
            Err(e) => {
                return self
                    .send_error(request_id, &BrokerError::InvalidTopicName(e.to_string()))
                    .await;
            }
        };
        if request
            .producer_access_mode
            .is_some_and(|m| m > ProducerAccessMode::Exclusive as i32)
        {
            let error = BrokerError::NotAllowed(
                "only Shared and Exclusive producer access modes are supported".into(),
            );
            return self.send_error(request_id, &error).await;
        }
        self.producers.insert(producer_id, ProducerSlot::Creating);
        let service = self.service.clone();
        let completions = self.completions.clone();
        let owner = ProducerOwner {
            connection: self.id,
            producer_id,
        };
        let exclusive = request.producer_access_mode == Some(ProducerAccessMode::Exclusive as i32);
        let role = self.auth.role.clone();
        self.closed_by_broker.remove(&producer_id);
        let closer = crate::topic::ProducerCloser {
            out: self.out.clone(),
            evicted: self.producer_evictions.clone(),
        };
        tokio::spawn(async move {
            let result = async {
                auth::authorize(
                    &service.admin,
                    role.as_deref(),
                    &topic,
                    TopicOperation::Produce,
                )
                .await?;
                let topic = service.topic(&topic, true).await?;
                let schema_version = match request.schema.as_ref().filter(|s| !schema::is_none(s)) {
                    Some(s) => Some(schema::version_bytes(
                        schema::get_or_create(&service.metadata, topic.name(), s).await?,
                    )),
                    None => None,
                };
                let name = match request.producer_name.filter(|n| !n.is_empty()) {
                    Some(name) => name,
                    // Unique across the cluster: the broker's id is part of it.
                    None => format!(
                        "{}-{}-{}",
                        service.config.cluster,
                        service.namespaces.broker_id(),
                        service.next_id(),
                    ),
                };
                if exclusive && topic.producer_count() > 0 {
                    return Err(BrokerError::ProducerBusy(format!(
                        "topic {} already has a producer",
                        topic.name()
                    )));
                }
                topic.add_producer(&name, owner, Some(closer))?;
                Ok((topic, name, schema_version))
            }
            .await;
            let _ = completions.send(Completion::Producer {
                producer_id,
                request_id,
                result,
            });
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
        let Some(ProducerSlot::Ready(producer)) = self.producers.get(&send.producer_id) else {
            // A SEND racing with CLOSE_PRODUCER: Java ignores it too.
            tracing::debug!(peer = %self.peer, producer_id = send.producer_id, "SEND for an unknown producer ignored");
            return Ok(());
        };
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
        let num_messages = send
            .num_messages
            .unwrap_or(1)
            .max(metadata.num_messages_in_batch.unwrap_or(1))
            .max(1) as u32;
        let append = producer.topic.publish(payload.to_entry(), num_messages);
        producer.enqueue(Receipt {
            sequence_id: send.sequence_id,
            highest_sequence_id: send.highest_sequence_id,
            append: append.boxed(),
        });
        Ok(())
    }
}
