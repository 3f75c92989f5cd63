//! `magnetar admin tenants …`.

use clap::Subcommand;
use magnetar_admin_api::models::TenantInfo;

use super::split_list;
use crate::admin_client::AdminClient;
use crate::output;

#[derive(Debug, Subcommand)]
pub enum TenantsCommand {
    List,
    Get {
        tenant: String,
    },
    /// Create a tenant; without --allowed-clusters it may use every cluster.
    Create {
        tenant: String,
        /// Comma-separated admin roles.
        #[arg(short = 'r', long, default_value = "")]
        admin_roles: String,
        /// Comma-separated clusters; all clusters when omitted.
        #[arg(short = 'c', long)]
        allowed_clusters: Option<String>,
    },
    /// Replace a tenant's admin roles and/or allowed clusters (what is not given is kept).
    Update {
        tenant: String,
        #[arg(short = 'r', long)]
        admin_roles: Option<String>,
        #[arg(short = 'c', long)]
        allowed_clusters: Option<String>,
    },
    Delete {
        tenant: String,
    },
}

pub(super) async fn run(
    client: &AdminClient,
    command: TenantsCommand,
    json: bool,
) -> anyhow::Result<()> {
    match command {
        TenantsCommand::List => {
            let names = client.tenants().await?;
            if json {
                output::json(&names)?
            } else {
                output::names(&names)
            }
        }
        TenantsCommand::Get { tenant } => {
            let info = client.tenant(&tenant).await?;
            if json {
                output::json(&info)?
            } else {
                output::fields(&info)
            }
        }
        TenantsCommand::Create {
            tenant,
            admin_roles,
            allowed_clusters,
        } => {
            let allowed_clusters = match allowed_clusters {
                Some(list) => split_list(&list).into_iter().collect(),
                None => client.clusters().await?.into_iter().collect(),
            };
            let info = TenantInfo {
                admin_roles: split_list(&admin_roles).into_iter().collect(),
                allowed_clusters,
            };
            client.create_tenant(&tenant, &info).await?;
        }
        TenantsCommand::Update {
            tenant,
            admin_roles,
            allowed_clusters,
        } => {
            let mut info = client.tenant(&tenant).await?;
            if let Some(roles) = admin_roles {
                info.admin_roles = split_list(&roles).into_iter().collect();
            }
            if let Some(clusters) = allowed_clusters {
                info.allowed_clusters = split_list(&clusters).into_iter().collect();
            }
            client.update_tenant(&tenant, &info).await?;
        }
        TenantsCommand::Delete { tenant } => client.delete_tenant(&tenant).await?,
    }
    Ok(())
}
