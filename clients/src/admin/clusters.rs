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
}

impl ClusterUrls {
    fn data(self) -> ClusterData {
        ClusterData {
            service_url: self.url,
            service_url_tls: self.url_secure,
            broker_service_url: self.broker_url,
            broker_service_url_tls: self.broker_url_secure,
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
