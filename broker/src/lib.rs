//! Magnetar's broker: Pulsar protocol server, managed ledgers and cursors, subscriptions and
//! dispatch.
//!
//! So far this crate holds the sans-IO cores of subscriptions, plain structs that take events and
//! return decisions, tested without a runtime or sockets:
//! - [`position`]: entry positions and the ledger layout of a topic;
//! - [`cursor`]: a durable cursor's acknowledgement state and its persisted snapshot;
//! - [`dispatch`]: consumer selection and delivery bookkeeping for the four subscription types;
//! - [`subscription`]: a cursor and a dispatcher driven together, the shell's entry point.
//!
//! The async broker (connections, managed ledgers, persistence) wraps them.

pub mod cursor;
pub mod dispatch;
pub mod position;
pub mod subscription;
