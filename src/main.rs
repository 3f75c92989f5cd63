//! The `magnetar` binary: parses arguments and hands over to the library crate of each role.
//! Roles are added here as they become real (see README.md for the status of each).

use clap::Parser;

#[derive(Debug, Parser)]
#[command(
    name = "magnetar",
    version,
    about = "Pulsar-compatible messaging in one binary"
)]
enum Command {}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    match Command::parse() {}
}
