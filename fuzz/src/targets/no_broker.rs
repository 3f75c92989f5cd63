//! The broker the `rest` target puts behind the topic, subscription, bundle and broker routes:
//! it knows no topic (404 where a topic is needed) and answers the rest with empty success, so
//! those routes run their extractors and access checks and never answer 501.

use async_trait::async_trait;
use magnetar_admin_api::models::LookupData;
use magnetar_admin_api::{ApiError, CursorPosition, NamespaceName, TopicAdmin};
use magnetar_protocol::TopicName;
use serde_json::Value;

/// The broker behind topic routes: it knows no topic, no bundle owner, no broker.
#[derive(Debug)]
pub struct NoBroker;

fn nothing() -> ApiError {
    ApiError::not_found("no such topic on this (fuzzing) broker")
}

#[async_trait]
impl TopicAdmin for NoBroker {
    async fn list_topics(&self, _: &NamespaceName) -> Result<Vec<String>, ApiError> {
        Ok(Vec::new())
    }
    async fn create_topic(&self, _: &TopicName) -> Result<(), ApiError> {
        Ok(())
    }
    async fn delete_topic(&self, _: &TopicName, _: bool) -> Result<(), ApiError> {
        Err(nothing())
    }
    async fn topic_stats(&self, _: &TopicName) -> Result<Value, ApiError> {
        Err(nothing())
    }
    async fn internal_stats(&self, _: &TopicName) -> Result<Value, ApiError> {
        Err(nothing())
    }
    async fn list_subscriptions(&self, _: &TopicName) -> Result<Vec<String>, ApiError> {
        Err(nothing())
    }
    async fn create_subscription(
        &self,
        _: &TopicName,
        _: &str,
        _: CursorPosition,
    ) -> Result<(), ApiError> {
        Err(nothing())
    }
    async fn delete_subscription(&self, _: &TopicName, _: &str, _: bool) -> Result<(), ApiError> {
        Err(nothing())
    }
    async fn skip_messages(&self, _: &TopicName, _: &str, _: Option<u64>) -> Result<(), ApiError> {
        Err(nothing())
    }
    async fn reset_cursor(
        &self,
        _: &TopicName,
        _: &str,
        _: CursorPosition,
    ) -> Result<(), ApiError> {
        Err(nothing())
    }
    async fn lookup(&self, _: &TopicName, _: bool) -> Result<LookupData, ApiError> {
        Ok(LookupData {
            broker_url: "pulsar://127.0.0.1:6650".into(),
            broker_url_tls: None,
            http_url: "http://127.0.0.1:8080".into(),
            http_url_tls: None,
        })
    }
    async fn unload_bundle(&self, _: &NamespaceName, _: Option<&str>) -> Result<(), ApiError> {
        Ok(())
    }
    async fn split_bundle(&self, _: &NamespaceName, _: &str) -> Result<(), ApiError> {
        Ok(())
    }
    async fn bundle_owners(
        &self,
        _: &NamespaceName,
    ) -> Result<std::collections::BTreeMap<String, String>, ApiError> {
        Ok(Default::default())
    }
    async fn active_brokers(&self, _: &str) -> Result<Vec<String>, ApiError> {
        Ok(vec!["127.0.0.1:8080".into()])
    }
    async fn health_check(&self) -> Result<(), ApiError> {
        Ok(())
    }
}
