//! The JSON records brokers keep in the metadata service, in Pulsar's shapes: a broker's
//! registration under `/loadbalance/brokers/{id}` and a bundle owner's under
//! `/namespace/{tenant}/{ns}/{range}`. A leaf module: errors (`BrokerError::NotOwner`) and
//! the cluster service both use them.

use serde::{Deserialize, Serialize};

/// A broker's registration: who it is and where it is reached.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BrokerData {
    /// `advertised-host:http-port` (Pulsar's broker id), or `host:pulsar-port` without HTTP.
    pub broker_id: String,
    pub cluster: String,
    pub pulsar_service_url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pulsar_service_url_tls: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub web_service_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub web_service_url_tls: Option<String>,
    #[serde(default)]
    pub version: String,
    /// `quic://host:port` of its geo-replication endpoint, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replication_url: Option<String>,
}

/// A bundle owner's record (Pulsar's `NamespaceEphemeralData`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OwnerData {
    pub native_url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub native_url_tls: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_url_tls: Option<String>,
    #[serde(default)]
    pub disabled: bool,
    #[serde(default)]
    pub broker_id: String,
    /// The owner's geo-replication endpoint (replication streams for the bundle's topics are
    /// redirected there).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replication_url: Option<String>,
}

impl OwnerData {
    /// The owner record of a bundle `broker` claims.
    pub fn of(broker: &BrokerData) -> OwnerData {
        OwnerData {
            native_url: broker.pulsar_service_url.clone(),
            native_url_tls: broker.pulsar_service_url_tls.clone(),
            http_url: broker.web_service_url.clone(),
            http_url_tls: broker.web_service_url_tls.clone(),
            disabled: false,
            broker_id: broker.broker_id.clone(),
            replication_url: broker.replication_url.clone(),
        }
    }
}
