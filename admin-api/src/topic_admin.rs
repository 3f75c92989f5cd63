//! The seam between the admin router and the broker. Routes that need live broker state
//! (topics, subscriptions, stats, lookup, brokers) call a [`TopicAdmin`] found in the
//! [`AdminState`](crate::AdminState); the broker implements it and attaches it with
//! [`AdminState::with_topic_admin`](crate::AdminState::with_topic_admin). Every method has a
//! default answering 501, so the broker can fill them in one at a time. Errors are
//! [`ApiError`]s so the implementation picks Pulsar's status (404 no topic, 409 exists, 412 in
//! use, 307 redirect to the owner, …).
//!
//! Metadata-only topic state (partitioned topic metadata, topic-level grants) is in the
//! resources layer, not here.

use async_trait::async_trait;
use magnetar_protocol::topic::TopicName;
use serde_json::Value;

use crate::error::ApiError;
use crate::models::{
    CompactionStatus, LeaderBroker, LookupData, MessageIdBody, OffloadProcessStatus,
};
use crate::names::NamespaceName;

fn not_yet(what: &str) -> ApiError {
    ApiError::not_implemented(format!("{what} is not implemented by this broker"))
}

/// Where a subscription's cursor is put: a message id or a publish time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CursorPosition {
    Earliest,
    Latest,
    /// On this message, or just after it when `excluded`.
    MessageId {
        ledger_id: i64,
        entry_id: i64,
        partition: i32,
        batch_index: i32,
        excluded: bool,
    },
    PublishTime {
        millis: u64,
    },
}

/// Broker operations behind the topic, subscription, lookup and broker routes.
#[async_trait]
pub trait TopicAdmin: Send + Sync + std::fmt::Debug + 'static {
    /// Full names of a namespace's topics, partitions included.
    async fn list_topics(&self, namespace: &NamespaceName) -> Result<Vec<String>, ApiError> {
        let _ = namespace;
        Err(not_yet("listing topics"))
    }

    /// Full names of a namespace's non-persistent topics loaded on the cluster's brokers.
    async fn list_non_persistent_topics(
        &self,
        namespace: &NamespaceName,
    ) -> Result<Vec<String>, ApiError> {
        let _ = namespace;
        Err(not_yet("listing non-persistent topics"))
    }

    async fn create_topic(&self, topic: &TopicName) -> Result<(), ApiError> {
        let _ = topic;
        Err(not_yet("creating topics"))
    }

    /// 412 while producers, consumers or subscriptions are active, unless `force`.
    async fn delete_topic(&self, topic: &TopicName, force: bool) -> Result<(), ApiError> {
        let _ = (topic, force);
        Err(not_yet("deleting topics"))
    }

    /// Pulsar's `TopicStats` JSON (rates, counters, publishers, subscriptions…).
    async fn topic_stats(&self, topic: &TopicName) -> Result<Value, ApiError> {
        let _ = topic;
        Err(not_yet("topic stats"))
    }

    /// Pulsar's `PersistentTopicInternalStats` JSON (ledgers, cursors).
    async fn internal_stats(&self, topic: &TopicName) -> Result<Value, ApiError> {
        let _ = topic;
        Err(not_yet("internal stats"))
    }

    async fn list_subscriptions(&self, topic: &TopicName) -> Result<Vec<String>, ApiError> {
        let _ = topic;
        Err(not_yet("listing subscriptions"))
    }

    async fn create_subscription(
        &self,
        topic: &TopicName,
        subscription: &str,
        at: CursorPosition,
    ) -> Result<(), ApiError> {
        let _ = (topic, subscription, at);
        Err(not_yet("creating subscriptions"))
    }

    async fn delete_subscription(
        &self,
        topic: &TopicName,
        subscription: &str,
        force: bool,
    ) -> Result<(), ApiError> {
        let _ = (topic, subscription, force);
        Err(not_yet("deleting subscriptions"))
    }

    /// Skips `count` messages, or the whole backlog when None.
    async fn skip_messages(
        &self,
        topic: &TopicName,
        subscription: &str,
        count: Option<u64>,
    ) -> Result<(), ApiError> {
        let _ = (topic, subscription, count);
        Err(not_yet("skipping messages"))
    }

    async fn reset_cursor(
        &self,
        topic: &TopicName,
        subscription: &str,
        to: CursorPosition,
    ) -> Result<(), ApiError> {
        let _ = (topic, subscription, to);
        Err(not_yet("resetting cursors"))
    }

    /// Acknowledges every message of the subscription published more than `age_secs` ago,
    /// and returns once the cursor has moved.
    async fn expire_messages(
        &self,
        topic: &TopicName,
        subscription: &str,
        age_secs: u64,
    ) -> Result<(), ApiError> {
        let _ = (topic, subscription, age_secs);
        Err(not_yet("expiring messages"))
    }

    /// Closes the topic on this broker (its clients reconnect); 307 to the broker serving it.
    async fn unload_topic(&self, topic: &TopicName) -> Result<(), ApiError> {
        let _ = topic;
        Err(not_yet("unloading topics"))
    }

    /// Starts compacting the topic in the background; 409 while a compaction runs.
    async fn compact(&self, topic: &TopicName) -> Result<(), ApiError> {
        let _ = topic;
        Err(not_yet("compaction"))
    }

    async fn compaction_status(&self, topic: &TopicName) -> Result<CompactionStatus, ApiError> {
        let _ = topic;
        Err(not_yet("compaction"))
    }

    /// Starts offloading the topic's closed ledgers before `until`'s ledger to tiered storage;
    /// 409 while an offload runs.
    async fn offload(&self, topic: &TopicName, until: &MessageIdBody) -> Result<(), ApiError> {
        let _ = (topic, until);
        Err(not_yet("offloading"))
    }

    async fn offload_status(&self, topic: &TopicName) -> Result<OffloadProcessStatus, ApiError> {
        let _ = topic;
        Err(not_yet("offloading"))
    }

    /// `{"brokerUrl","brokerUrlTls","httpUrl","httpUrlTls"}` of the topic's owner, or a 307
    /// to the broker chosen to own it (which, asked with `authoritative`, must take it).
    async fn lookup(&self, topic: &TopicName, authoritative: bool) -> Result<LookupData, ApiError> {
        let _ = (topic, authoritative);
        Err(not_yet("lookup"))
    }

    /// Unloads one bundle (`0x…_0x…`) of the namespace, or every bundle this broker owns when
    /// `bundle` is `None`; 307 to the owner of a bundle another broker holds.
    async fn unload_bundle(
        &self,
        namespace: &NamespaceName,
        bundle: Option<&str>,
    ) -> Result<(), ApiError> {
        let _ = (namespace, bundle);
        Err(not_yet("unloading bundles"))
    }

    /// Splits a bundle at its midpoint and unloads it; 307 to its owner.
    async fn split_bundle(&self, namespace: &NamespaceName, bundle: &str) -> Result<(), ApiError> {
        let _ = (namespace, bundle);
        Err(not_yet("splitting bundles"))
    }

    /// Owners of the namespace's bundles: range → the owner's broker id (unowned ones absent).
    async fn bundle_owners(
        &self,
        namespace: &NamespaceName,
    ) -> Result<std::collections::BTreeMap<String, String>, ApiError> {
        let _ = namespace;
        Err(not_yet("bundle owners"))
    }

    /// Active brokers of `cluster` (`host:port` of their HTTP service).
    async fn active_brokers(&self, cluster: &str) -> Result<Vec<String>, ApiError> {
        let _ = cluster;
        Err(not_yet("listing brokers"))
    }

    /// The broker running the cluster's elected duties; 404 when none is elected.
    async fn leader_broker(&self) -> Result<LeaderBroker, ApiError> {
        Err(not_yet("the leader broker"))
    }

    /// Ok when the broker can serve (Pulsar's health check produces and consumes a message).
    async fn health_check(&self) -> Result<(), ApiError> {
        Err(not_yet("the health check"))
    }

    /// The `n`-th entry (1-based) from `from`: after a subscription's mark-delete position
    /// (Pulsar's peek), from the first entry, or back from the last (examine). 404 past the end.
    async fn peek_entry(
        &self,
        topic: &TopicName,
        from: PeekFrom,
        n: u64,
    ) -> Result<PeekedEntry, ApiError> {
        let _ = (topic, from, n);
        Err(not_yet("peeking messages"))
    }
}

/// Where [`TopicAdmin::peek_entry`] counts from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeekFrom {
    /// After the subscription's mark-delete position.
    Subscription(String),
    /// The first entry still stored.
    Earliest,
    /// The last entry, counting backwards.
    Latest,
}

/// One stored entry: its position, its metadata and its payload, decompressed (a batch's is
/// the batch's messages as the batch format lays them out).
#[derive(Debug, Clone)]
pub struct PeekedEntry {
    pub ledger_id: u64,
    pub entry_id: u64,
    pub metadata: magnetar_protocol::pulsar::MessageMetadata,
    pub payload: Vec<u8>,
}
