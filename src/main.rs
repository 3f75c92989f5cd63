//! The `magnetar` binary: parses arguments and hands over to the library crate of each role.
//! Roles are added here as they become real (see README.md for the status of each).

use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

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
    Standalone(StandaloneArgs),
    /// The metadata service: run a node, or inspect and change a group (etcdctl-like).
    Metadata(magnetar_metadata::cli::MetadataArgs),
    /// A storage node (bookie): serve, or load one with a benchmark.
    Bookie(magnetar_bookie::cli::BookieArgs),
    /// Administer clusters, tenants and namespaces over the admin REST API (pulsar-admin-like).
    Admin(magnetar_clients::admin::AdminArgs),
    /// Create and check JWT tokens and their keys (pulsar tokens-like).
    Tokens(magnetar_clients::tokens::TokensArgs),
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
}

/// A token cancelled on Ctrl-C or SIGTERM, for graceful shutdown.
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
            let config = magnetar_broker::standalone::StandaloneConfig {
                data_dir: args.data_dir,
                broker_addr: args.broker_addr,
                metadata_addr: args.metadata_addr,
                bookie_addr: args.bookie_addr,
                advertised_address: args.advertised_address,
            };
            magnetar_broker::standalone::run(config, shutdown_on_signal()).await
        }
        Command::Metadata(args) => match args.command {
            magnetar_metadata::cli::MetadataCommand::Serve(serve) => {
                let config = serve.into_config()?;
                let listener = tokio::net::TcpListener::bind(config.listen).await?;
                magnetar_metadata::run(config, listener, shutdown_on_signal()).await
            }
            _ => magnetar_metadata::cli::run(args).await,
        },
        Command::Bookie(args) => Ok(magnetar_bookie::cli::run(args, shutdown_on_signal()).await?),
        Command::Admin(args) => magnetar_clients::admin::run(args).await,
        Command::Tokens(args) => magnetar_clients::tokens::run(args),
    }
}
