//! `magnetar admin` against a real admin server (metadata node + router on 127.0.0.1:0) with
//! authentication on: the CLI's commands change what the REST API then reports.

use clap::Parser;
use magnetar_admin_api::models::{AuthAction, BacklogQuotaType};
use magnetar_admin_api::{AdminSettings, AdminState, Resources};
use magnetar_auth::keys::data_url;
use magnetar_auth::{Algorithm, AuthConfig, SignKey, TokenSettings, TokenSigner};
use magnetar_clients::AdminClient;
use magnetar_clients::admin::AdminArgs;

#[derive(Debug, Parser)]
struct Cli {
    #[command(flatten)]
    args: AdminArgs,
}

async fn admin(url: &str, token: &str, args: &[&str]) -> anyhow::Result<()> {
    let mut argv = vec!["admin", "--admin-url", url, "--token", token];
    argv.extend_from_slice(args);
    magnetar_clients::admin::run(Cli::try_parse_from(argv)?.args).await
}

/// Steps: start metadata + admin API with auth; with a superuser token run clusters create,
/// tenants create, namespaces create, grant-permission, set-retention, set-message-ttl,
/// set-backlog-quota, set-replication-clusters, and the list/get commands; check the results
/// through the typed client; a wrong role's command fails with 403.
#[tokio::test]
async fn admin_cli_drives_the_rest_api() -> anyhow::Result<()> {
    let secret = b"an hmac secret of thirty-two b!!".to_vec();
    let auth = AuthConfig {
        authentication_enabled: true,
        authorization_enabled: true,
        superuser_roles: vec!["root".into()],
        token: TokenSettings {
            secret_key: Some(data_url(&secret)),
            ..TokenSettings::default()
        },
        ..AuthConfig::default()
    };
    let metadata = magnetar_metadata::testing::LocalCluster::start(1, Default::default()).await?;
    let settings = AdminSettings {
        cluster_name: "local".into(),
        default_bundles: 2,
        ..AdminSettings::default()
    };
    let state = AdminState::new(
        Resources::new(metadata.client()),
        auth.authenticator()?,
        auth.authorizer(),
        settings,
    );
    let (listener, addr) = magnetar_admin_api::bind("127.0.0.1:0".parse()?).await?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(magnetar_admin_api::serve(
        listener,
        magnetar_admin_api::router(state),
        async {
            let _ = stopped.await;
        },
    ));
    let url = format!("http://{addr}");
    let signer = TokenSigner::new(&SignKey::Secret(secret), Algorithm::HS256)?;
    let root = signer.create("root", Some(600))?;
    let app = signer.create("app", Some(600))?;

    admin(
        &url,
        &root,
        &[
            "clusters",
            "create",
            "local",
            "--url",
            "http://127.0.0.1:8080",
            "--broker-url",
            "pulsar://127.0.0.1:6650",
        ],
    )
    .await?;
    admin(&url, &root, &["clusters", "list"]).await?;
    admin(&url, &root, &["--json", "clusters", "get", "local"]).await?;
    admin(
        &url,
        &root,
        &["tenants", "create", "acme", "--admin-roles", "boss"],
    )
    .await?;
    admin(&url, &root, &["tenants", "get", "acme"]).await?;
    admin(&url, &root, &["namespaces", "create", "acme/ns"]).await?;
    admin(&url, &root, &["namespaces", "list", "acme"]).await?;
    admin(
        &url,
        &root,
        &[
            "namespaces",
            "grant-permission",
            "acme/ns",
            "--role",
            "app",
            "--actions",
            "produce,consume",
        ],
    )
    .await?;
    admin(&url, &root, &["namespaces", "permissions", "acme/ns"]).await?;
    admin(
        &url,
        &root,
        &[
            "namespaces",
            "grant-subscription-permission",
            "acme/ns",
            "--subscription",
            "audit",
            "--roles",
            "app,auditor",
        ],
    )
    .await?;
    admin(
        &url,
        &root,
        &["namespaces", "subscription-permissions", "acme/ns"],
    )
    .await?;
    admin(
        &url,
        &root,
        &[
            "namespaces",
            "revoke-subscription-permission",
            "acme/ns",
            "--subscription",
            "audit",
            "--role",
            "app",
        ],
    )
    .await?;
    admin(
        &url,
        &root,
        &[
            "namespaces",
            "set-retention",
            "acme/ns",
            "--time",
            "60m",
            "--size",
            "1G",
        ],
    )
    .await?;
    admin(&url, &root, &["namespaces", "get-retention", "acme/ns"]).await?;
    admin(
        &url,
        &root,
        &["namespaces", "set-message-ttl", "acme/ns", "--ttl", "3600"],
    )
    .await?;
    admin(&url, &root, &["namespaces", "get-message-ttl", "acme/ns"]).await?;
    admin(
        &url,
        &root,
        &[
            "namespaces",
            "set-backlog-quota",
            "acme/ns",
            "--limit",
            "100M",
            "--policy",
            "producer_exception",
        ],
    )
    .await?;
    admin(
        &url,
        &root,
        &["namespaces", "get-backlog-quotas", "acme/ns"],
    )
    .await?;
    admin(
        &url,
        &root,
        &[
            "namespaces",
            "set-replication-clusters",
            "acme/ns",
            "--clusters",
            "local",
        ],
    )
    .await?;
    admin(
        &url,
        &root,
        &["namespaces", "get-replication-clusters", "acme/ns"],
    )
    .await?;
    admin(&url, &root, &["namespaces", "policies", "acme/ns"]).await?;

    let client = AdminClient::new(&url, Some(root.clone()), None)?;
    assert_eq!(client.clusters().await?, vec!["local".to_string()]);
    assert_eq!(
        client.cluster("local").await?.broker_service_url.as_deref(),
        Some("pulsar://127.0.0.1:6650")
    );
    let tenant = client.tenant("acme").await?;
    assert!(tenant.admin_roles.contains("boss") && tenant.allowed_clusters.contains("local"));
    let policies = client.policies("acme/ns").await?;
    assert_eq!(
        policies.auth_policies.namespace_auth["app"],
        [AuthAction::Produce, AuthAction::Consume].into()
    );
    let retention = policies.retention_policies.expect("retention set");
    assert_eq!(
        (
            retention.retention_time_in_minutes,
            retention.retention_size_in_mb
        ),
        (60, 1024)
    );
    assert_eq!(policies.message_ttl_in_seconds, Some(3600));
    assert_eq!(
        policies.auth_policies.subscription_auth_roles["audit"],
        ["auditor".to_string()].into()
    );
    assert_eq!(
        policies.backlog_quota_map[&BacklogQuotaType::DestinationStorage].limit_size,
        100 << 20
    );
    assert_eq!(policies.bundles.expect("bundles").num_bundles, 2);

    let denied = admin(&url, &app, &["tenants", "list"])
        .await
        .expect_err("app is no superuser");
    assert!(denied.to_string().contains("403"), "{denied}");

    admin(
        &url,
        &root,
        &[
            "namespaces",
            "revoke-permission",
            "acme/ns",
            "--role",
            "app",
        ],
    )
    .await?;
    admin(
        &url,
        &root,
        &["namespaces", "remove-message-ttl", "acme/ns"],
    )
    .await?;
    assert_eq!(client.message_ttl("acme/ns").await?, None);
    admin(&url, &root, &["namespaces", "delete", "acme/ns"]).await?;
    admin(&url, &root, &["tenants", "delete", "acme"]).await?;
    admin(&url, &root, &["clusters", "delete", "local"]).await?;
    assert!(client.tenants().await?.is_empty());

    let _ = stop.send(());
    server.await??;
    metadata.shutdown().await;
    Ok(())
}
