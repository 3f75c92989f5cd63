//! `magnetar admin clusters …`.

use clap::{Args, Subcommand};
use magnetar_admin_api::models::ClusterData;

use crate::admin_client::AdminClient;
use crate::output;

#[derive(Debug, Subcommand)]
pub enum ClustersCommand {
    List,
    Get {
        cluster: String,
    },
    Create {
        cluster: String,
        #[command(flatten)]
        urls: ClusterUrls,
    },
    Update {
        cluster: String,
        #[command(flatten)]
        urls: ClusterUrls,
    },
    Delete {
        cluster: String,
    },
}

#[derive(Debug, Args)]
pub struct ClusterUrls {
    /// HTTP admin URL (serviceUrl).
    #[arg(long)]
    url: Option<String>,
    /// HTTPS admin URL (serviceUrlTls).
    #[arg(long)]
    url_secure: Option<String>,
    /// Binary protocol URL, pulsar://… (brokerServiceUrl).
    #[arg(long)]
    broker_url: Option<String>,
    /// TLS binary protocol URL, pulsar+ssl://… (brokerServiceUrlTls).
    #[arg(long)]
    broker_url_secure: Option<String>,
    /// Geo-replication endpoint, quic://host:port (replicationUrl). Without it, other clusters
    /// replicate into this one over the Pulsar protocol (--broker-url-secure, else --broker-url).
    #[arg(long)]
    replication_url: Option<String>,
    /// How other clusters authenticate to this one when replicating (authenticationPlugin),
    /// e.g. `token`.
    #[arg(long)]
    auth_plugin: Option<String>,
    /// The credentials for it (authenticationParameters), e.g. `token:eyJ…` or `file:///path`.
    #[arg(long)]
    auth_parameters: Option<String>,
    /// PEM file of the certificate (or CA) that this cluster's replication endpoint presents
    /// (brokerClientTrustCertsFilePath).
    #[arg(long)]
    tls_trust_certs_filepath: Option<String>,
    /// Accept any certificate from this cluster's replication endpoint
    /// (tlsAllowInsecureConnection; the token still authenticates us to it).
    #[arg(long)]
    tls_allow_insecure: bool,
}

impl ClusterUrls {
    fn data(self) -> ClusterData {
        ClusterData {
            service_url: self.url,
            service_url_tls: self.url_secure,
            broker_service_url: self.broker_url,
            broker_service_url_tls: self.broker_url_secure,
            replication_url: self.replication_url,
            authentication_plugin: self.auth_plugin,
            authentication_parameters: self.auth_parameters,
            broker_client_trust_certs_file_path: self.tls_trust_certs_filepath,
            tls_allow_insecure_connection: self.tls_allow_insecure.then_some(true),
            ..ClusterData::default()
        }
    }
}

pub(super) async fn run(
    client: &AdminClient,
    command: ClustersCommand,
    json: bool,
) -> anyhow::Result<()> {
    match command {
        ClustersCommand::List => {
            let names = client.clusters().await?;
            if json {
                output::json(&names)?
            } else {
                output::names(&names)
            }
        }
        ClustersCommand::Get { cluster } => {
            let data = client.cluster(&cluster).await?;
            if json {
                output::json(&data)?
            } else {
                output::fields(&data)
            }
        }
        ClustersCommand::Create { cluster, urls } => {
            client.create_cluster(&cluster, &urls.data()).await?
        }
        ClustersCommand::Update { cluster, urls } => {
            client.update_cluster(&cluster, &urls.data()).await?
        }
        ClustersCommand::Delete { cluster } => client.delete_cluster(&cluster).await?,
    }
    Ok(())
}
