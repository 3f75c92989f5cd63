//! A producer on a connection: its entries are appended in arrival order and its receipts go
//! back in the same order (clients drop the connection on a receipt out of order).

use std::sync::Arc;

use futures::StreamExt;
use futures::channel::mpsc;
use futures::future::BoxFuture;
use magnetar_protocol::Frame;
use magnetar_protocol::pulsar::{CommandSendError, CommandSendReceipt, MessageIdData};
use prometheus::IntGauge;
use tokio::sync::OwnedSemaphorePermit;

use crate::error::BrokerError;
use crate::position::Position;
use crate::topic::{ProducerOwner, Topic};
use crate::topic_context::Outbound;

/// What one SEND holds until its receipt is queued: a slot of its connection's pending
/// publishes and its bytes of the broker's publish buffer.
pub(super) struct PublishPermits {
    _slot: OwnedSemaphorePermit,
    buffer: OwnedSemaphorePermit,
    gauge: IntGauge,
}

impl PublishPermits {
    pub fn new(slot: OwnedSemaphorePermit, buffer: OwnedSemaphorePermit, gauge: IntGauge) -> Self {
        gauge.add(buffer.num_permits() as i64);
        PublishPermits {
            _slot: slot,
            buffer,
            gauge,
        }
    }
}

impl Drop for PublishPermits {
    fn drop(&mut self) {
        self.gauge.sub(self.buffer.num_permits() as i64);
    }
}

/// One SEND waiting for its entry to be durable.
pub(super) struct Receipt {
    pub sequence_id: u64,
    pub highest_sequence_id: Option<u64>,
    pub append: BoxFuture<'static, Result<Position, BrokerError>>,
    pub permits: PublishPermits,
}

#[derive(Debug)]
pub(super) struct Producer {
    pub topic: Arc<Topic>,
    pub name: String,
    pub owner: ProducerOwner,
    /// `futures`' unbounded channel: tokio's allocates about 800 bytes up front, for every
    /// producer.
    receipts: mpsc::UnboundedSender<Receipt>,
}

impl Producer {
    pub fn new(topic: Arc<Topic>, name: String, owner: ProducerOwner, out: Outbound) -> Producer {
        let (receipts, mut queue) = mpsc::unbounded::<Receipt>();
        let producer_id = owner.producer_id;
        tokio::spawn(async move {
            while let Some(receipt) = queue.next().await {
                let frame: Frame = match receipt.append.await {
                    Ok(position) => CommandSendReceipt {
                        producer_id,
                        sequence_id: receipt.sequence_id,
                        message_id: Some(MessageIdData {
                            ledger_id: position.ledger_id as u64,
                            entry_id: position.entry_id as u64,
                            ..Default::default()
                        }),
                        highest_sequence_id: receipt.highest_sequence_id,
                    }
                    .into(),
                    Err(e) => {
                        tracing::warn!(producer_id, error = %e, "publish failed");
                        CommandSendError {
                            producer_id,
                            sequence_id: receipt.sequence_id,
                            error: e.code() as i32,
                            message: e.to_string(),
                        }
                        .into()
                    }
                };
                let sent = out.send(Box::new(frame)).await;
                drop(receipt.permits);
                if sent.is_err() {
                    return;
                }
            }
        });
        Producer {
            topic,
            name,
            owner,
            receipts,
        }
    }

    pub fn enqueue(&self, receipt: Receipt) {
        // The receipt task ends only when the connection's writer is gone.
        let _ = self.receipts.unbounded_send(receipt);
    }

    pub fn close(&self) {
        self.topic.remove_producer(&self.name, self.owner);
    }
}
