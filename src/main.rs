//! The `magnetar` binary: parses arguments and hands over to the library crate of each role.
//! Roles are added here as they become real (see README.md for the status of each).

use std::sync::Arc;

use clap::{Parser, Subcommand};
use magnetar_broker::role_http;
use tokio_util::sync::CancellationToken;

/// mimalloc rather than glibc's malloc: closing 100,000 topics at shutdown spent a third of its
/// CPU in glibc's allocator (free-list searches, consolidation, arena locks between the tokio
/// workers); see docs/perf.md.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(
    name = "magnetar",
    version,
    about = "Pulsar-compatible messaging in one binary"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Metadata service, bookie and broker in one process, data under one directory.
    Standalone(Box<StandaloneArgs>),
    /// The metadata service: run a node, or inspect and change a group (etcdctl-like).
    Metadata(magnetar_metadata::cli::MetadataArgs),
    /// A storage node (bookie): serve, or load one with a benchmark.
    Bookie(magnetar_bookie::cli::BookieArgs),
    /// A stateless broker of a cluster: Pulsar protocol, admin REST API and /metrics.
    Broker(Box<magnetar_broker::cli::BrokerArgs>),
    /// Cluster set-up: `cluster init` creates the cluster, tenant public, public/default.
    Cluster(magnetar_broker::cli::ClusterArgs),
    /// Administer clusters, tenants, namespaces, topics, subscriptions and schemas over the
    /// admin REST API (pulsar-admin-like).
    Admin(magnetar_clients::admin::AdminArgs),
    /// Print a shell completion script: `magnetar completions bash > /etc/bash_completion.d/magnetar`.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Create and check JWT tokens and their keys (pulsar tokens-like).
    Tokens(magnetar_clients::tokens::TokensArgs),
    /// Produce and consume messages (pulsar-client-like).
    Client(magnetar_clients::client_cli::ClientArgs),
    /// Load generators: publish and consume throughput and latency (pulsar-perf-like).
    Perf(magnetar_clients::perf::PerfArgs),
}

#[derive(Debug, clap::Args)]
struct StandaloneArgs {
    /// Where metadata, journal and ledgers are kept.
    #[arg(long, default_value = "data", env = "MAGNETAR_DATA_DIR")]
    data_dir: std::path::PathBuf,
    /// Pulsar protocol listener.
    #[arg(long, default_value = "0.0.0.0:6650")]
    broker_addr: std::net::SocketAddr,
    /// Metadata service listener (for `magnetar metadata …`).
    #[arg(long, default_value = "127.0.0.1:6690")]
    metadata_addr: std::net::SocketAddr,
    /// Bookie listener.
    #[arg(long, default_value = "127.0.0.1:3181")]
    bookie_addr: std::net::SocketAddr,
    /// Host name clients are told to connect to.
    #[arg(long, default_value = "127.0.0.1")]
    advertised_address: String,
    /// Admin REST API, HTTP lookup and /metrics.
    #[arg(long, default_value = "0.0.0.0:8080")]
    http_addr: std::net::SocketAddr,
    /// pulsar+ssl:// listener (with --tls-cert-file).
    #[arg(long, default_value = "0.0.0.0:6651")]
    broker_tls_addr: std::net::SocketAddr,
    /// HTTPS listener (with --tls-cert-file).
    #[arg(long, default_value = "0.0.0.0:8443")]
    https_addr: std::net::SocketAddr,
    /// TOML file with the [auth] settings (see docs/auth.md).
    #[arg(long, value_name = "FILE", env = "MAGNETAR_AUTH_CONFIG")]
    auth_config: Option<std::path::PathBuf>,
    /// Turns token authentication and authorization on with this HMAC key (a key URL such as
    /// file:///path/secret.key).
    #[arg(long, value_name = "KEY_URL", conflicts_with = "token_public_key")]
    token_secret_key: Option<String>,
    /// Turns token authentication and authorization on with this public key (a key URL).
    #[arg(long, value_name = "KEY_URL")]
    token_public_key: Option<String>,
    /// Roles allowed everything (comma separated).
    #[arg(long, value_delimiter = ',')]
    superuser_roles: Vec<String>,
    /// Seconds between checks of connected clients' token expiry.
    #[arg(long, default_value_t = 60)]
    auth_refresh_check_secs: u64,
    /// PEM certificate chain: turns on pulsar+ssl:// and HTTPS.
    #[arg(long, value_name = "FILE", requires = "tls_key_file")]
    tls_cert_file: Option<std::path::PathBuf>,
    /// PEM private key of --tls-cert-file.
    #[arg(long, value_name = "FILE", requires = "tls_cert_file")]
    tls_key_file: Option<std::path::PathBuf>,
    /// PEM CA certificates client certificates are checked against.
    #[arg(long, value_name = "FILE")]
    tls_trust_certs_file: Option<std::path::PathBuf>,
    /// Refuse TLS clients without a certificate signed by --tls-trust-certs-file (mTLS).
    #[arg(long, requires = "tls_trust_certs_file")]
    tls_require_trusted_client_cert: bool,
    /// The bookie turns read-only (publishes fail) when the data disk is fuller than this
    /// fraction; 1.0 turns the check off.
    #[arg(long, default_value_t = 0.95, env = "MAGNETAR_DISK_USAGE_THRESHOLD")]
    disk_usage_threshold: f64,
    /// TOML file with the broker's limits (the `[broker.limits]` keys of deploy/broker.toml:
    /// connections, producers, publish buffer, idle topics, HTTP…; docs/operations.md).
    #[arg(long, value_name = "FILE")]
    limits: Option<std::path::PathBuf>,
    /// The cluster this standalone is; two standalones with different names replicate to
    /// each other (docs/geo-replication.md).
    #[arg(long, default_value = "standalone", env = "MAGNETAR_CLUSTER")]
    cluster: String,
    /// UDP address of the geo-replication endpoint (QUIC), or `off`.
    #[arg(long, default_value = "0.0.0.0:6652", value_parser = magnetar_broker::cli::optional_addr)]
    replication_addr: OptionalAddr,
    /// PEM certificate the replication endpoint presents (default: --tls-cert-file, else a
    /// self-signed one made in the data directory).
    #[arg(long, value_name = "FILE", requires = "replication_key_file")]
    replication_cert_file: Option<std::path::PathBuf>,
    #[arg(long, value_name = "FILE", requires = "replication_cert_file")]
    replication_key_file: Option<std::path::PathBuf>,
    #[command(flatten)]
    offload: magnetar_broker::tiered::OffloadFlags,
}

type OptionalAddr = Option<std::net::SocketAddr>;

/// A token cancelled on Ctrl-C or SIGTERM, for graceful shutdown.
/// `magnetar bookie serve`, with its health and metrics listener when `--http-addr` is given.
async fn bookie_serve(serve: magnetar_bookie::cli::ServeArgs) -> anyhow::Result<()> {
    let http_addr = serve.http_addr;
    let shutdown = shutdown_on_signal();
    let server = magnetar_bookie::cli::start(serve, shutdown.clone()).await?;
    if let Some(addr) = http_addr {
        let bookie = server.bookie().clone();
        let metrics_bookie = bookie.clone();
        let app = role_http::router(
            Arc::new(move || {
                match bookie.is_read_only() {
                false => Ok(()),
                true => Err("the bookie is read-only (its disk is over disk_usage_threshold, or it is closing)".into()),
            }
            }),
            Arc::new(move || {
                magnetar_bookie::metrics::families(&metrics_bookie, &Default::default())
            }),
        );
        let what = "the bookie's health and metrics (HTTP)";
        role_http::serve(addr, what, "--http-addr", app, shutdown).await?;
    }
    Ok(server.wait().await?)
}

fn shutdown_on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let cancel = token.clone();
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .expect("installing a SIGTERM handler");
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
        tracing::info!("shutting down");
        cancel.cancel();
    });
    token
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,openraft=warn")),
        )
        .init();
    match Cli::parse().command {
        Command::Standalone(args) => {
            let args = *args;
            let auth = magnetar_broker::security_config::AuthFlags {
                config_file: args.auth_config,
                token_secret_key: args.token_secret_key,
                token_public_key: args.token_public_key,
                superuser_roles: args.superuser_roles,
            }
            .resolve()?;
            let config = magnetar_broker::standalone::StandaloneConfig {
                data_dir: args.data_dir,
                broker_addr: args.broker_addr,
                metadata_addr: args.metadata_addr,
                bookie_addr: args.bookie_addr,
                http_addr: args.http_addr,
                broker_tls_addr: args.broker_tls_addr,
                https_addr: args.https_addr,
                advertised_address: args.advertised_address,
                auth,
                auth_refresh_check_secs: args.auth_refresh_check_secs,
                tls: magnetar_broker::tls::TlsConfig {
                    cert_file: args.tls_cert_file,
                    key_file: args.tls_key_file,
                    trust_certs_file: args.tls_trust_certs_file,
                    require_trusted_client_cert: args.tls_require_trusted_client_cert,
                },
                disk_usage_threshold: args.disk_usage_threshold,
                limits: match &args.limits {
                    Some(path) => magnetar_broker::limits::Limits::read(path)?,
                    None => Default::default(),
                },
                cluster: args.cluster,
                replication: magnetar_broker::replication::ReplicationConfig {
                    addr: args.replication_addr,
                    cert_file: args.replication_cert_file,
                    key_file: args.replication_key_file,
                    ..Default::default()
                },
                offload: args.offload.into_config(),
                ..magnetar_broker::standalone::StandaloneConfig::default()
            };
            magnetar_broker::standalone::run(config, shutdown_on_signal()).await
        }
        Command::Metadata(args) => match args.command {
            magnetar_metadata::cli::MetadataCommand::Serve(serve) => {
                let http_addr = serve.http_addr;
                let config = serve.into_config()?;
                let listener = magnetar_broker::listen::bind(
                    config.listen,
                    "the metadata service",
                    "--listen",
                )
                .await?;
                let node = magnetar_metadata::MetadataNode::start(config, listener).await?;
                let shutdown = shutdown_on_signal();
                if let Some(addr) = http_addr {
                    let status = Arc::new(node.status());
                    let ready = status.clone();
                    let app = role_http::router(
                        Arc::new(move || role_http::raft_ready(&ready())),
                        Arc::new(move || role_http::raft_families(&status())),
                    );
                    let what = "the metadata node's health and metrics (HTTP)";
                    role_http::serve(addr, what, "--http-addr", app, shutdown.clone()).await?;
                }
                shutdown.cancelled().await;
                node.shutdown().await;
                Ok(())
            }
            _ => magnetar_metadata::cli::run(args).await,
        },
        Command::Bookie(args) => match args.command {
            magnetar_bookie::cli::BookieCommand::Serve(serve) => bookie_serve(serve).await,
            command => Ok(magnetar_bookie::cli::run(
                magnetar_bookie::cli::BookieArgs { command },
                shutdown_on_signal(),
            )
            .await?),
        },
        Command::Broker(args) => magnetar_broker::cli::run(*args, shutdown_on_signal()).await,
        Command::Cluster(args) => match args.command {
            magnetar_broker::cli::ClusterCommand::Init(init) => {
                magnetar_broker::cli::cluster_init(init).await
            }
        },
        Command::Admin(args) => magnetar_clients::admin::run(args).await,
        Command::Completions { shell } => {
            let mut command = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut command, "magnetar", &mut std::io::stdout());
            Ok(())
        }
        Command::Tokens(args) => magnetar_clients::tokens::run(args),
        Command::Client(args) => magnetar_clients::client_cli::run(args).await,
        Command::Perf(args) => magnetar_clients::perf::run(args).await,
    }
}
