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
    /// The metadata service: run a node, or inspect and change a group (etcdctl-like).
    Metadata(magnetar_metadata::cli::MetadataArgs),
    /// A storage node (bookie): serve, or load one with a benchmark.
    Bookie(magnetar_bookie::cli::BookieArgs),
    /// Administer clusters, tenants and namespaces over the admin REST API (pulsar-admin-like).
    Admin(magnetar_clients::admin::AdminArgs),
    /// Create and check JWT tokens and their keys (pulsar tokens-like).
    Tokens(magnetar_clients::tokens::TokensArgs),
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
