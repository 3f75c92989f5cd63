//! `ClusterData`: how to reach a cluster (stored at `/admin/clusters/{name}`).

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A cluster's service URLs and the settings brokers of other clusters use to reach it
/// (Pulsar's `ClusterData`, camelCase JSON). Unset fields are left out.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct ClusterData {
    /// HTTP admin URL, e.g. `http://broker:8080`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_url_tls: Option<String>,
    /// Binary protocol URL, e.g. `pulsar://broker:6650`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub broker_service_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub broker_service_url_tls: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proxy_service_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proxy_protocol: Option<String>,
    /// Authentication a remote broker uses towards this cluster (e.g. `token`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authentication_plugin: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authentication_parameters: Option<String>,
    /// Clusters that are peers of this one (replication between them is not allowed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer_cluster_names: Option<BTreeSet<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub broker_client_tls_enabled: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_allow_insecure_connection: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub broker_client_trust_certs_file_path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listener_name: Option<String>,
    /// The cluster's geo-replication endpoint, `quic://host:port` (its brokers'
    /// `replication_addr`). Other clusters replicate into it over QUIC; without it they use
    /// `brokerServiceUrl` (the Pulsar protocol).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replication_url: Option<String>,
}

/// The broker that runs the cluster's elected duties (`GET /admin/v2/brokers/leaderBroker`, as
/// Pulsar's `LeaderBroker`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LeaderBroker {
    pub broker_id: String,
    pub service_url: String,
}
