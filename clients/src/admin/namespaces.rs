//! `magnetar admin namespaces …`: namespaces and their policies.

use std::collections::BTreeSet;

use anyhow::Context;
use clap::Subcommand;
use magnetar_admin_api::models::{
    AuthAction, BacklogQuota, BacklogQuotaType, Policies, RetentionPolicies, RetentionPolicy,
};

use super::split_list;
use crate::admin_client::AdminClient;
use crate::output;
use crate::units::{parse_duration_secs, parse_size_bytes};

#[derive(Debug, Subcommand)]
pub enum NamespacesCommand {
    /// Namespaces of a tenant.
    List {
        tenant: String,
    },
    /// Create TENANT/NAMESPACE.
    Create {
        namespace: String,
        /// Comma-separated replication clusters (default: the broker's cluster).
        #[arg(short = 'c', long)]
        clusters: Option<String>,
    },
    Delete {
        namespace: String,
    },
    /// All policies of a namespace (JSON).
    Policies {
        namespace: String,
    },
    Permissions {
        namespace: String,
    },
    GrantPermission {
        namespace: String,
        #[arg(long)]
        role: String,
        /// Comma-separated: produce, consume, functions, sources, sinks, packages.
        #[arg(long)]
        actions: String,
    },
    RevokePermission {
        namespace: String,
        #[arg(long)]
        role: String,
    },
    /// Let only these roles (and admins) use a subscription.
    GrantSubscriptionPermission {
        namespace: String,
        #[arg(long)]
        subscription: String,
        /// Comma-separated roles.
        #[arg(long)]
        roles: String,
    },
    RevokeSubscriptionPermission {
        namespace: String,
        #[arg(long)]
        subscription: String,
        #[arg(long)]
        role: String,
    },
    SubscriptionPermissions {
        namespace: String,
    },
    /// Keep acknowledged messages for --time and up to --size (-1: unlimited).
    SetRetention {
        namespace: String,
        /// e.g. 60m, 12h, 7d, -1.
        #[arg(short, long, allow_hyphen_values = true)]
        time: String,
        /// e.g. 500M, 1G, -1.
        #[arg(short, long, allow_hyphen_values = true)]
        size: String,
    },
    GetRetention {
        namespace: String,
    },
    /// Bookies per ledger (E), copies written (Qw) and acknowledged (Qa) for new ledgers.
    SetPersistence {
        namespace: String,
        #[arg(short = 'e', long)]
        bookkeeper_ensemble: i32,
        #[arg(short = 'w', long)]
        bookkeeper_write_quorum: i32,
        #[arg(short = 'a', long)]
        bookkeeper_ack_quorum: i32,
        /// Cursor writes per second at most (0: the broker's default).
        #[arg(short = 'r', long, default_value_t = 0.0)]
        ml_mark_delete_max_rate: f64,
    },
    GetPersistence {
        namespace: String,
    },
    RemoveRetention {
        namespace: String,
    },
    SetMessageTtl {
        namespace: String,
        /// Seconds, or a duration like 1h.
        #[arg(short, long)]
        ttl: String,
    },
    GetMessageTtl {
        namespace: String,
    },
    RemoveMessageTtl {
        namespace: String,
    },
    SetBacklogQuota {
        namespace: String,
        #[command(flatten)]
        quota: super::QuotaArgs,
    },
    GetBacklogQuotas {
        namespace: String,
    },
    RemoveBacklogQuota {
        namespace: String,
        #[arg(long = "type", default_value = "destination_storage")]
        kind: String,
    },
    #[command(alias = "set-clusters")]
    SetReplicationClusters {
        namespace: String,
        #[arg(short, long)]
        clusters: String,
    },
    #[command(alias = "get-clusters")]
    GetReplicationClusters {
        namespace: String,
    },
    /// Turn message deduplication on (--enable) or off (--disable) for the namespace.
    SetDeduplication {
        namespace: String,
        #[command(flatten)]
        switch: super::Switch,
    },
    GetDeduplication {
        namespace: String,
    },
    /// Back to the broker's default (`deduplication_enabled`).
    RemoveDeduplication {
        namespace: String,
    },
    /// Bundle boundaries, with the broker owning each bundle.
    Bundles {
        namespace: String,
    },
    /// Hand a namespace's bundles (or one: TENANT/NS/0x…_0x…) over to other brokers.
    Unload {
        /// TENANT/NAMESPACE or TENANT/NAMESPACE/BUNDLE.
        target: String,
        /// The bundle (instead of appending it to the namespace).
        #[arg(short, long)]
        bundle: Option<String>,
    },
    /// Split a bundle at its midpoint.
    SplitBundle {
        namespace: String,
        #[arg(short, long)]
        bundle: String,
    },
    #[command(flatten)]
    Policy(super::schemas::NamespacePolicyCommand),
    #[command(flatten)]
    Offload(super::offload::NamespaceOffloadCommand),
}

/// `t/ns` and an optional bundle from `t/ns[/bundle]`.
fn namespace_and_bundle(target: &str, bundle: Option<String>) -> (String, Option<String>) {
    let mut parts = target.splitn(3, '/');
    let (t, ns, rest) = (parts.next(), parts.next(), parts.next());
    match (t, ns, rest) {
        (Some(t), Some(ns), Some(b)) => (format!("{t}/{ns}"), Some(b.to_string()).or(bundle)),
        _ => (target.to_string(), bundle),
    }
}

/// Retention from `--time` and `--size` (durations and sizes, -1 unlimited).
pub(super) fn retention_from(time: &str, size: &str) -> anyhow::Result<RetentionPolicies> {
    let secs = parse_duration_secs(time).map_err(anyhow::Error::msg)?;
    let bytes = parse_size_bytes(size).map_err(anyhow::Error::msg)?;
    Ok(RetentionPolicies {
        retention_time_in_minutes: if secs < 0 {
            -1
        } else {
            i32::try_from(secs / 60).context("--time is too large")?
        },
        retention_size_in_mb: if bytes < 0 { -1 } else { bytes / (1 << 20) },
    })
}

/// A backlog quota and its type from the `set-backlog-quota` flags.
pub(super) fn quota_from(
    args: &super::QuotaArgs,
) -> anyhow::Result<(BacklogQuotaType, BacklogQuota)> {
    let kind: BacklogQuotaType = args.kind.parse().map_err(anyhow::Error::msg)?;
    let policy: RetentionPolicy =
        serde_json::from_value(serde_json::Value::String(args.policy.clone()))
            .with_context(|| format!("unknown policy {:?}", args.policy))?;
    let quota = BacklogQuota {
        limit_size: args
            .limit
            .as_deref()
            .map(parse_size_bytes)
            .transpose()
            .map_err(anyhow::Error::msg)?
            .unwrap_or(-1),
        limit_time: args
            .limit_time
            .as_deref()
            .map(parse_duration_secs)
            .transpose()
            .map_err(anyhow::Error::msg)?
            .unwrap_or(-1),
        policy,
    };
    Ok((kind, quota))
}

/// Backlog quotas as a table (or JSON).
pub(super) fn print_quotas(
    quotas: &std::collections::BTreeMap<BacklogQuotaType, BacklogQuota>,
    json: bool,
) -> anyhow::Result<()> {
    if json {
        return output::json(quotas);
    }
    let rows: Vec<Vec<String>> = quotas
        .iter()
        .map(|(kind, q)| {
            let policy = serde_json::to_value(q.policy)
                .map(|v| v.as_str().unwrap_or("").to_string())
                .unwrap_or_default();
            vec![
                kind.as_str().to_string(),
                q.limit_size.to_string(),
                q.limit_time.to_string(),
                policy,
            ]
        })
        .collect();
    output::table(&["TYPE", "LIMIT_BYTES", "LIMIT_SECONDS", "POLICY"], &rows);
    Ok(())
}

pub(super) fn print_optional<T: serde::Serialize>(
    value: Option<T>,
    json: bool,
    what: &str,
) -> anyhow::Result<()> {
    match value {
        Some(v) if json => output::json(&v),
        Some(v) => {
            output::fields(&v);
            Ok(())
        }
        None if json => output::json(&serde_json::Value::Null),
        None => {
            println!("{what} is not set");
            Ok(())
        }
    }
}

pub(super) async fn run(
    client: &AdminClient,
    command: NamespacesCommand,
    json: bool,
) -> anyhow::Result<()> {
    use NamespacesCommand as C;
    match command {
        C::Policy(command) => return super::schemas::run_namespace(client, command, json).await,
        C::Offload(command) => {
            return super::offload::run_namespace(client, command, json).await;
        }
        C::Bundles { namespace } => {
            let bundles = client.bundles(&namespace).await?;
            let owners = client.bundle_owners(&namespace).await?;
            if json {
                output::json(&serde_json::json!({
                    "boundaries": bundles.boundaries,
                    "numBundles": bundles.num_bundles,
                    "owners": owners,
                }))?;
            } else {
                let rows: Vec<Vec<String>> = bundles
                    .boundaries
                    .windows(2)
                    .map(|w| {
                        let range = format!("{}_{}", w[0], w[1]);
                        let owner = owners.get(&range).cloned().unwrap_or_else(|| "-".into());
                        vec![range, owner]
                    })
                    .collect();
                output::table(&["BUNDLE", "OWNER"], &rows);
            }
        }
        C::Unload { target, bundle } => {
            let (namespace, bundle) = namespace_and_bundle(&target, bundle);
            client.unload(&namespace, bundle.as_deref()).await?;
            if !json {
                match bundle {
                    Some(b) => println!("unloaded {namespace}/{b}"),
                    None => println!("unloaded {namespace}"),
                }
            }
        }
        C::SplitBundle { namespace, bundle } => {
            client.split_bundle(&namespace, &bundle).await?;
            if !json {
                println!("split {namespace}/{bundle}");
            }
        }
        C::List { tenant } => {
            let names = client.namespaces(&tenant).await?;
            if json {
                output::json(&names)?
            } else {
                output::names(&names)
            }
        }
        C::Create {
            namespace,
            clusters,
        } => {
            let policies = clusters.map(|list| Policies {
                replication_clusters: split_list(&list).into_iter().collect(),
                ..Policies::default()
            });
            client
                .create_namespace(&namespace, policies.as_ref())
                .await?;
        }
        C::Delete { namespace } => client.delete_namespace(&namespace).await?,
        C::Policies { namespace } => output::json(&client.policies(&namespace).await?)?,
        C::Permissions { namespace } => {
            let grants = client.permissions(&namespace).await?;
            if json {
                output::json(&grants)?;
            } else {
                let rows: Vec<Vec<String>> = grants
                    .iter()
                    .map(|(role, actions)| {
                        let actions: Vec<String> = actions
                            .iter()
                            .map(|a| {
                                serde_json::to_value(a)
                                    .map(|v| v.as_str().unwrap_or("").to_string())
                                    .unwrap_or_default()
                            })
                            .collect();
                        vec![role.clone(), actions.join(",")]
                    })
                    .collect();
                output::table(&["ROLE", "ACTIONS"], &rows);
            }
        }
        C::GrantPermission {
            namespace,
            role,
            actions,
        } => {
            let actions: BTreeSet<AuthAction> = split_list(&actions)
                .iter()
                .map(|a| a.parse().map_err(anyhow::Error::msg))
                .collect::<anyhow::Result<_>>()?;
            anyhow::ensure!(
                !actions.is_empty(),
                "--actions must name at least one action"
            );
            client.grant_permission(&namespace, &role, &actions).await?;
        }
        C::RevokePermission { namespace, role } => {
            client.revoke_permission(&namespace, &role).await?
        }
        C::GrantSubscriptionPermission {
            namespace,
            subscription,
            roles,
        } => {
            let roles: BTreeSet<String> = split_list(&roles).into_iter().collect();
            anyhow::ensure!(!roles.is_empty(), "--roles must name at least one role");
            client
                .grant_subscription_permission(&namespace, &subscription, &roles)
                .await?;
        }
        C::RevokeSubscriptionPermission {
            namespace,
            subscription,
            role,
        } => {
            client
                .revoke_subscription_permission(&namespace, &subscription, &role)
                .await?;
        }
        C::SubscriptionPermissions { namespace } => {
            let grants = client.subscription_permissions(&namespace).await?;
            if json {
                output::json(&grants)?;
            } else {
                let rows: Vec<Vec<String>> = grants
                    .iter()
                    .map(|(sub, roles)| {
                        vec![
                            sub.clone(),
                            roles.iter().cloned().collect::<Vec<_>>().join(","),
                        ]
                    })
                    .collect();
                output::table(&["SUBSCRIPTION", "ROLES"], &rows);
            }
        }
        C::SetRetention {
            namespace,
            time,
            size,
        } => {
            client
                .set_retention(&namespace, &retention_from(&time, &size)?)
                .await?;
        }
        C::SetPersistence {
            namespace,
            bookkeeper_ensemble,
            bookkeeper_write_quorum,
            bookkeeper_ack_quorum,
            ml_mark_delete_max_rate,
        } => {
            let rate = serde_json::Number::from_f64(ml_mark_delete_max_rate)
                .ok_or_else(|| anyhow::anyhow!("the mark-delete rate must be a number"))?;
            let persistence = magnetar_admin_api::models::PersistencePolicies {
                bookkeeper_ensemble,
                bookkeeper_write_quorum,
                bookkeeper_ack_quorum,
                managed_ledger_max_mark_delete_rate: rate,
            };
            client.set_persistence(&namespace, &persistence).await?;
        }
        C::GetPersistence { namespace } => {
            print_optional(client.persistence(&namespace).await?, json, "persistence")?
        }
        C::GetRetention { namespace } => {
            print_optional(client.retention(&namespace).await?, json, "retention")?
        }
        C::RemoveRetention { namespace } => client.remove_retention(&namespace).await?,
        C::SetMessageTtl { namespace, ttl } => {
            let secs = parse_duration_secs(&ttl).map_err(anyhow::Error::msg)?;
            client
                .set_message_ttl(
                    &namespace,
                    i32::try_from(secs).context("--ttl is too large")?,
                )
                .await?;
        }
        C::GetMessageTtl { namespace } => match client.message_ttl(&namespace).await? {
            Some(ttl) => println!("{ttl}"),
            None if json => println!("null"),
            None => println!("message TTL is not set"),
        },
        C::RemoveMessageTtl { namespace } => client.remove_message_ttl(&namespace).await?,
        C::SetDeduplication { namespace, switch } => {
            client.set_deduplication(&namespace, switch.enable).await?
        }
        C::GetDeduplication { namespace } => match client.deduplication(&namespace).await? {
            Some(enabled) => println!("{enabled}"),
            None if json => println!("null"),
            None => println!("(not set: the broker's default applies)"),
        },
        C::RemoveDeduplication { namespace } => client.remove_deduplication(&namespace).await?,
        C::SetBacklogQuota { namespace, quota } => {
            let (kind, quota) = quota_from(&quota)?;
            client.set_backlog_quota(&namespace, kind, &quota).await?;
        }
        C::GetBacklogQuotas { namespace } => {
            print_quotas(&client.backlog_quotas(&namespace).await?, json)?
        }
        C::RemoveBacklogQuota { namespace, kind } => {
            client
                .remove_backlog_quota(&namespace, kind.parse().map_err(anyhow::Error::msg)?)
                .await?;
        }
        C::SetReplicationClusters {
            namespace,
            clusters,
        } => {
            client
                .set_replication_clusters(&namespace, &split_list(&clusters).into_iter().collect())
                .await?;
        }
        C::GetReplicationClusters { namespace } => {
            let clusters = client.replication_clusters(&namespace).await?;
            if json {
                output::json(&clusters)?
            } else {
                output::names(&clusters)
            }
        }
    }
    Ok(())
}
