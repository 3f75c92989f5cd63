//! `magnetar admin`: a pulsar-admin-like CLI over the admin REST API. Human-readable tables by
//! default, the server's JSON with `--json`.

mod clusters;
mod namespaces;
mod offload;
mod peek;
mod schemas;
mod subscriptions;
mod tenants;
mod topic_policies;
mod topics;

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};

use crate::admin_client::AdminClient;

#[derive(Debug, Args)]
pub struct AdminArgs {
    /// The admin service (a broker's HTTP or HTTPS URL).
    #[arg(
        long,
        env = "MAGNETAR_ADMIN_URL",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    pub admin_url: String,
    /// A JWT token sent as `Authorization: Bearer`.
    #[arg(long, env = "MAGNETAR_TOKEN", global = true, hide_env_values = true)]
    pub token: Option<String>,
    /// Read the token from this file instead.
    #[arg(long, global = true, conflicts_with = "token")]
    pub token_file: Option<PathBuf>,
    /// A PEM CA certificate to trust for HTTPS.
    #[arg(long, global = true)]
    pub tls_trust_cert: Option<PathBuf>,
    /// Print the JSON the server returned instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: AdminCommand,
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Clusters: list, get, create, update, delete.
    Clusters {
        #[command(subcommand)]
        command: clusters::ClustersCommand,
    },
    /// Tenants: list, get, create, update, delete.
    Tenants {
        #[command(subcommand)]
        command: tenants::TenantsCommand,
    },
    /// Namespaces and their policies.
    Namespaces {
        #[command(subcommand)]
        command: namespaces::NamespacesCommand,
    },
    /// Persistent topics: list, create, delete, stats, subscriptions, skip, reset-cursor,
    /// compact, lookup…
    Topics {
        #[command(subcommand)]
        command: topics::TopicsCommand,
    },
    /// Topic schemas: get, upload, delete, compatibility.
    Schemas {
        #[command(subcommand)]
        command: schemas::SchemasCommand,
    },
    /// Brokers of a cluster, and the health check.
    Brokers {
        #[command(subcommand)]
        command: BrokersCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum BrokersCommand {
    /// Live brokers of CLUSTER (their ids, `host:http-port`).
    List { cluster: String },
    /// Publish and consume one message on the broker's health-check topic (superuser).
    Healthcheck,
    /// The broker running the cluster's elected duties (the autorecovery auditor).
    LeaderBroker,
}

/// `--enable` or `--disable`, exactly one.
#[derive(Debug, clap::Args)]
pub struct Switch {
    #[arg(
        short,
        long,
        conflicts_with = "disable",
        required_unless_present = "disable"
    )]
    pub enable: bool,
    #[arg(short, long)]
    pub disable: bool,
}

/// The flags of `set-backlog-quota` (namespaces and topics).
#[derive(Debug, clap::Args)]
pub struct QuotaArgs {
    /// Size limit for destination_storage, e.g. 1G.
    #[arg(short, long, allow_hyphen_values = true)]
    pub limit: Option<String>,
    /// Age limit for message_age, e.g. 1h.
    #[arg(long, allow_hyphen_values = true)]
    pub limit_time: Option<String>,
    /// producer_request_hold, producer_exception or consumer_backlog_eviction.
    #[arg(short, long, default_value = "producer_request_hold")]
    pub policy: String,
    /// destination_storage or message_age.
    #[arg(long = "type", default_value = "destination_storage")]
    pub kind: String,
}

/// Comma-separated values, blanks dropped.
pub(crate) fn split_list(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

pub async fn run(args: AdminArgs) -> anyhow::Result<()> {
    let token = match (&args.token, &args.token_file) {
        (Some(token), _) => Some(token.trim().to_string()),
        (None, Some(path)) => Some(
            std::fs::read_to_string(path)
                .with_context(|| format!("reading token file {}", path.display()))?
                .trim()
                .to_string(),
        ),
        (None, None) => None,
    };
    let ca = match &args.tls_trust_cert {
        Some(path) => {
            Some(std::fs::read(path).with_context(|| format!("reading {}", path.display()))?)
        }
        None => None,
    };
    let client = AdminClient::new(&args.admin_url, token, ca.as_deref())?;
    match args.command {
        AdminCommand::Clusters { command } => clusters::run(&client, command, args.json).await,
        AdminCommand::Tenants { command } => tenants::run(&client, command, args.json).await,
        AdminCommand::Namespaces { command } => namespaces::run(&client, command, args.json).await,
        AdminCommand::Topics { command } => topics::run(&client, command, args.json).await,
        AdminCommand::Schemas { command } => schemas::run(&client, command, args.json).await,
        AdminCommand::Brokers {
            command: BrokersCommand::Healthcheck,
        } => {
            // Pulsar answers the text "ok".
            client.get_raw("/admin/v2/brokers/health").await?;
            if args.json {
                crate::output::json(&serde_json::json!({ "ok": true }))
            } else {
                println!("ok");
                Ok(())
            }
        }
        AdminCommand::Brokers {
            command: BrokersCommand::LeaderBroker,
        } => {
            let leader = client
                .get_json("/admin/v2/brokers/leaderBroker")
                .await?
                .unwrap_or_default();
            if args.json {
                crate::output::json(&leader)
            } else {
                crate::output::fields(&leader);
                Ok(())
            }
        }
        AdminCommand::Brokers {
            command: BrokersCommand::List { cluster },
        } => {
            let brokers = client.brokers(&cluster).await?;
            if args.json {
                crate::output::json(&brokers)
            } else {
                crate::output::names(&brokers);
                Ok(())
            }
        }
    }
}
