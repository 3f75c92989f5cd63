//! A producer on a connection: its entries are appended in arrival order and its receipts go
//! back in the same order (clients drop the connection on a receipt out of order).

use std::sync::Arc;

use futures::future::BoxFuture;
use magnetar_protocol::Frame;
use magnetar_protocol::pulsar::{CommandSendError, CommandSendReceipt, MessageIdData};
use tokio::sync::mpsc;

use crate::error::BrokerError;
use crate::position::Position;
use crate::topic::{ProducerOwner, Topic};

/// One SEND waiting for its entry to be durable.
pub(super) struct Receipt {
    pub sequence_id: u64,
    pub highest_sequence_id: Option<u64>,
    pub append: BoxFuture<'static, Result<Position, BrokerError>>,
}

#[derive(Debug)]
pub(super) struct Producer {
    pub topic: Arc<Topic>,
    pub name: String,
    pub owner: ProducerOwner,
    receipts: mpsc::UnboundedSender<Receipt>,
}

impl Producer {
    pub fn new(
        topic: Arc<Topic>,
        name: String,
        owner: ProducerOwner,
        out: mpsc::Sender<Frame>,
    ) -> Producer {
        let (receipts, mut queue) = mpsc::unbounded_channel::<Receipt>();
        let producer_id = owner.producer_id;
        tokio::spawn(async move {
            while let Some(receipt) = queue.recv().await {
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
                if out.send(frame).await.is_err() {
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
        let _ = self.receipts.send(receipt);
    }

    pub fn close(&self) {
        self.topic.remove_producer(&self.name, self.owner);
    }
}
