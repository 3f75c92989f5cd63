//! Magnetar's Rust client for the Pulsar binary protocol: [`Client`] (one connection per broker,
//! lookups, partitioned-topic metadata), [`Producer`] (batching, compression, pipelined sends,
//! partition routing), [`Consumer`] (all four subscription types, permits, acks, negative acks,
//! seek) and [`Reader`]. Used by `magnetar client`, `magnetar perf` and the tests; it speaks
//! the same protocol as Pulsar's own clients, so it works against Pulsar brokers too.
//!
//! ```no_run
//! # async fn demo() -> Result<(), magnetar_clients::pulsar::ClientError> {
//! use magnetar_clients::pulsar::{Client, InitialPosition};
//! let client = Client::connect("pulsar://127.0.0.1:6650").await?;
//! let producer = client.producer("my-topic").create().await?;
//! producer.send("hello").await?;
//! let mut consumer = client
//!     .consumer("my-topic", "my-sub")
//!     .initial_position(InitialPosition::Earliest)
//!     .subscribe()
//!     .await?;
//! let message = consumer.receive().await?;
//! consumer.ack(&message)?;
//! # Ok(()) }
//! ```

mod client;
mod connection;
mod consumer;
mod error;
mod message;
mod partition_producer;
mod producer;
mod raw_producer;
mod reader;

pub use client::{Client, ClientOptions};
pub use consumer::{Consumer, ConsumerBuilder, InitialPosition, SubType};
pub use error::{ClientError, Result};
pub use magnetar_protocol::MessageId;
pub use magnetar_protocol::pulsar::{CompressionType, ServerError};
pub use message::{Message, ProducerMessage};
pub use partition_producer::Batching;
pub(crate) use partition_producer::now_millis;
pub use producer::{Producer, ProducerBuilder, Receipt};
pub use raw_producer::RawProducer;
pub use reader::{Reader, ReaderBuilder};
