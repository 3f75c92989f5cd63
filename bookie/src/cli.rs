//! `magnetar bookie …`: the arguments of the bookie's subcommands and what each runs. The binary
//! only parses, starts tracing and calls [`run`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use magnetar_metadata::MetadataClient;
use magnetar_metadata::client::ClientOptions;
use magnetar_protocol::{ClusterToken, ClusterTokenError};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::autorecovery::{self, AutoRecoveryConfig};
use crate::bench::{self, BenchOptions};
use crate::config::{BookieConfig, ConfigError};
use crate::error::BookieError;
use crate::ledger::{LedgerClient, LedgerConfig, LedgerOptions};
use crate::registry;
use crate::server::BookieServer;
use crate::simpletest::{self, SimpletestOptions};

#[derive(Debug, clap::Args)]
pub struct BookieArgs {
    #[command(subcommand)]
    pub command: BookieCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum BookieCommand {
    /// Run a bookie: journal + ledger storage, serving the bookie protocol.
    Serve(ServeArgs),
    /// Load a running bookie with pipelined adds; print throughput and latency.
    Bench(BenchArgs),
    /// Write a ledger through the ledger client, read it back and verify it, delete it; print
    /// throughput and add latency.
    Simpletest(SimpletestArgs),
    /// List the registered (live) bookies with their read-only state and free disk.
    List(ListArgs),
    /// Run autorecovery: take part in the auditor election and, while elected, copy the entries
    /// of bookies lost for good to other bookies (brokers run this too, unless disabled).
    Autorecovery(AutorecoveryArgs),
    /// List the ledgers the auditor found under-replicated, with their damaged fragments.
    Underreplicated(ListArgs),
}

#[derive(Debug, clap::Args)]
pub struct AutorecoveryArgs {
    #[command(flatten)]
    pub metadata: MetadataArgs,
    /// Milliseconds a bookie must stay unregistered before its copies are made elsewhere.
    #[arg(long, default_value_t = 60_000)]
    pub lost_bookie_delay_ms: u64,
    /// Milliseconds between audits.
    #[arg(long, default_value_t = 10_000)]
    pub audit_interval_ms: u64,
    /// Milliseconds the open tail of a ledger may stay on a lost bookie before the auditor
    /// fences and closes the ledger to repair it (`openLedgerRereplicationGracePeriod`).
    #[arg(long, default_value_t = 30_000)]
    pub open_ledger_grace_ms: u64,
    /// Name of this process in the auditor election (default: autorecovery-PID).
    #[arg(long)]
    pub name: Option<String>,
}

/// Where the metadata service is.
#[derive(Debug, clap::Args)]
pub struct MetadataArgs {
    /// Metadata nodes (any of them; the leader is found).
    #[arg(
        long = "metadata",
        env = "MAGNETAR_METADATA_SERVERS",
        value_delimiter = ',',
        default_value = "127.0.0.1:6690"
    )]
    pub servers: Vec<String>,
    /// The cluster token, presented to the metadata service and to bookies.
    #[command(flatten)]
    pub token: ClusterTokenArgs,
}

impl MetadataArgs {
    fn client(&self) -> Result<MetadataClient, BookieError> {
        let options = ClientOptions {
            cluster_token: self.token.cluster_token.clone(),
            ..ClientOptions::default()
        };
        Ok(MetadataClient::new(self.servers.clone(), options)?)
    }
}

/// The cluster token bookies require (`cluster_token` of their config).
#[derive(Debug, Clone, clap::Args)]
pub struct ClusterTokenArgs {
    /// The cluster's shared secret, presented first on every bookie connection (or, for
    /// `serve`, required of every connection): `file:///path` to a file holding it, or the
    /// token itself (at least 16 bytes).
    #[arg(
        long = "cluster-token",
        env = "MAGNETAR_CLUSTER_TOKEN",
        hide_env_values = true,
        value_parser = parse_cluster_token
    )]
    pub cluster_token: Option<ClusterToken>,
}

fn parse_cluster_token(setting: &str) -> Result<ClusterToken, ClusterTokenError> {
    ClusterToken::from_setting(setting)
}

impl ClusterTokenArgs {
    /// Ledger client options that present the token.
    fn ledger_options(&self) -> LedgerOptions {
        LedgerOptions {
            cluster_token: self.cluster_token.clone(),
            ..LedgerOptions::default()
        }
    }
}

/// Flags override the config file, which overrides the defaults.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on (port 0 picks a free port; the bound address is printed).
    #[arg(long, env = "MAGNETAR_BOOKIE_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Directory of the journal segments.
    #[arg(long, env = "MAGNETAR_BOOKIE_JOURNAL_DIR")]
    pub journal_dir: Option<PathBuf>,
    /// Directory of the RocksDB ledger storage.
    #[arg(long, env = "MAGNETAR_BOOKIE_LEDGER_DIR")]
    pub ledger_dir: Option<PathBuf>,
    /// Address to register for clients (`host:port`, or `host` with the listen port).
    #[arg(long, env = "MAGNETAR_BOOKIE_ADVERTISE")]
    pub advertise: Option<String>,
    /// Metadata nodes to register in (comma-separated); without them the bookie runs
    /// unregistered and collects no garbage.
    #[arg(long, env = "MAGNETAR_METADATA_SERVERS", value_delimiter = ',')]
    pub metadata: Vec<String>,
    /// TOML config file (see deploy/bookie.toml).
    #[arg(long, env = "MAGNETAR_BOOKIE_CONFIG")]
    pub config: Option<PathBuf>,
    /// HTTP listener for `/health/live`, `/health/ready` and `/metrics` (e.g. 0.0.0.0:8000);
    /// none when left out.
    #[arg(long, env = "MAGNETAR_BOOKIE_HTTP_ADDR")]
    pub http_addr: Option<SocketAddr>,
    /// Turn read-only when the fuller of the journal's and ledgers' disks is used beyond this
    /// share (`disk_usage_threshold`; the low-water mark is lowered to it if above).
    #[arg(long)]
    pub disk_usage_threshold: Option<f64>,
    #[command(flatten)]
    pub token: ClusterTokenArgs,
}

impl ServeArgs {
    /// The file layer (or defaults), flags on top, validated.
    pub fn into_config(self) -> Result<BookieConfig, ConfigError> {
        let mut config = match &self.config {
            Some(path) => BookieConfig::from_file(path)?,
            None => BookieConfig::default(),
        };
        if let Some(listen) = self.listen {
            config.listen = listen;
        }
        if let Some(dir) = self.journal_dir {
            config.journal_dir = dir;
        }
        if let Some(dir) = self.ledger_dir {
            config.ledger_dir = dir;
        }
        if let Some(advertise) = self.advertise {
            config.advertise = Some(advertise);
        }
        if let Some(threshold) = self.disk_usage_threshold {
            config.disk_usage_threshold = threshold;
            config.disk_usage_lwm_threshold = config.disk_usage_lwm_threshold.min(threshold);
        }
        if !self.metadata.is_empty() {
            config.metadata_servers = self.metadata;
        }
        if let Some(token) = self.token.cluster_token {
            config.cluster_token = Some(token);
        }
        config.validate()?;
        Ok(config)
    }
}

#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// The bookie to load.
    #[arg(long)]
    pub bookie: SocketAddr,
    /// Adds to send.
    #[arg(long, default_value_t = 200_000)]
    pub entries: u64,
    /// Payload bytes per entry.
    #[arg(long, default_value_t = 1024)]
    pub entry_size: usize,
    /// Adds outstanding at once.
    #[arg(long, default_value_t = 10_000)]
    pub inflight: usize,
    /// Adds per second to send at (open loop); unlimited when absent.
    #[arg(long)]
    pub rate: Option<u64>,
    /// Ledger id to write (entries are numbered from 0).
    #[arg(long, default_value_t = 1)]
    pub ledger: u64,
    #[command(flatten)]
    pub token: ClusterTokenArgs,
}

#[derive(Debug, clap::Args)]
pub struct SimpletestArgs {
    #[command(flatten)]
    pub metadata: MetadataArgs,
    /// Bookies the ledger is striped over (E).
    #[arg(long, default_value_t = 3)]
    pub ensemble: usize,
    /// Copies of each entry (Qw).
    #[arg(long, default_value_t = 2)]
    pub write_quorum: usize,
    /// Copies acknowledged before an add completes (Qa).
    #[arg(long, default_value_t = 2)]
    pub ack_quorum: usize,
    /// Entries to write.
    #[arg(long, default_value_t = 100_000)]
    pub entries: u64,
    /// Payload bytes per entry.
    #[arg(long, default_value_t = 1024)]
    pub entry_size: usize,
    /// Adds outstanding at once.
    #[arg(long, default_value_t = 1000)]
    pub inflight: usize,
    /// Adds per second to send at (open loop); unlimited when absent.
    #[arg(long)]
    pub rate: Option<u64>,
    /// Print the report as JSON (progress still goes to stderr).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub metadata: MetadataArgs,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Starts `magnetar bookie serve` (its `--http-addr` is left to the caller) and prints the
/// bound address.
pub async fn start(
    serve: ServeArgs,
    shutdown: CancellationToken,
) -> Result<BookieServer, BookieError> {
    let config = serve.into_config()?;
    let listener =
        TcpListener::bind(config.listen)
            .await
            .map_err(|source| BookieError::Listen {
                addr: config.listen,
                source,
            })?;
    let server = BookieServer::start(config, listener, shutdown).await?;
    // On stdout, for scripts and tests that start the bookie on port 0.
    println!("bookie serving on {}", server.local_addr());
    Ok(server)
}

/// Runs one `magnetar bookie` subcommand until it ends or `shutdown` is cancelled.
pub async fn run(args: BookieArgs, shutdown: CancellationToken) -> Result<(), BookieError> {
    match args.command {
        BookieCommand::Serve(serve) => start(serve, shutdown).await?.wait().await,
        BookieCommand::Bench(bench) => {
            let options = BenchOptions {
                entries: bench.entries,
                entry_size: bench.entry_size,
                inflight: bench.inflight,
                rate: bench.rate,
                ledger_id: bench.ledger,
                cluster_token: bench.token.cluster_token,
            };
            let report = bench::run(bench.bookie, &options)
                .await
                .map_err(|e| BookieError::Task(format!("benchmark failed: {e}")))?;
            println!("{report}");
            Ok(())
        }
        BookieCommand::Simpletest(args) => run_simpletest(args).await,
        BookieCommand::List(args) => list(args).await,
        BookieCommand::Autorecovery(args) => {
            let ledgers = LedgerClient::new(
                args.metadata.client()?,
                args.metadata.token.ledger_options(),
            );
            let config = AutoRecoveryConfig {
                lost_bookie_delay: Duration::from_millis(args.lost_bookie_delay_ms),
                audit_interval: Duration::from_millis(args.audit_interval_ms.max(10)),
                open_ledger_grace: Duration::from_millis(args.open_ledger_grace_ms),
                ..AutoRecoveryConfig::default()
            };
            let name = args
                .name
                .unwrap_or_else(|| format!("autorecovery-{}", std::process::id()));
            println!("autorecovery running as {name}");
            autorecovery::run(ledgers, name, config, Arc::default(), shutdown).await;
            Ok(())
        }
        BookieCommand::Underreplicated(args) => list_under_replicated(args).await,
    }
}

async fn list_under_replicated(args: ListArgs) -> Result<(), BookieError> {
    let client = args.metadata.client()?;
    let auditor = autorecovery::auditor(&client).await?;
    let ledgers = autorecovery::under_replicated(&client).await?;
    if args.json {
        let json = serde_json::json!({ "auditor": auditor, "ledgers": ledgers });
        let json =
            serde_json::to_string_pretty(&json).map_err(|e| BookieError::Task(e.to_string()))?;
        println!("{json}");
        return Ok(());
    }
    match &auditor {
        Some(a) => println!("auditor: {}", a.owner),
        None => println!("auditor: none elected (no broker or `bookie autorecovery` running)"),
    }
    println!(
        "{:<12} {:<11} {:<24} {:>9}  LAST ERROR",
        "LEDGER", "STATE", "LOST BOOKIES", "FRAGMENTS"
    );
    for l in &ledgers {
        println!(
            "{:<12} {:<11} {:<24} {:>9}  {}",
            l.ledger.ledger_id,
            format!("{:?}", l.ledger.state),
            l.ledger.lost_bookies.join(","),
            l.ledger.fragments.len(),
            l.last_error.as_deref().unwrap_or("-"),
        );
    }
    println!("{} under-replicated ledger(s)", ledgers.len());
    Ok(())
}

async fn run_simpletest(args: SimpletestArgs) -> Result<(), BookieError> {
    let ledgers = LedgerClient::new(
        args.metadata.client()?,
        args.metadata.token.ledger_options(),
    );
    let options = SimpletestOptions {
        ledger: LedgerConfig {
            ensemble: args.ensemble,
            write_quorum: args.write_quorum,
            ack_quorum: args.ack_quorum,
        },
        entries: args.entries,
        entry_size: args.entry_size,
        inflight: args.inflight,
        rate: args.rate,
    };
    let report = simpletest::run(&ledgers, &options, |p| {
        eprintln!(
            "progress: {} of {} entries acknowledged, {:.0} entries/s",
            p.acked, p.entries, p.rate
        );
    })
    .await
    .map_err(|e| BookieError::Task(format!("simpletest failed: {e}")))?;
    if args.json {
        let json =
            serde_json::to_string_pretty(&report).map_err(|e| BookieError::Task(e.to_string()))?;
        println!("{json}");
    } else {
        println!("{report}");
    }
    Ok(())
}

async fn list(args: ListArgs) -> Result<(), BookieError> {
    let bookies = registry::list(&args.metadata.client()?).await?;
    if args.json {
        let json =
            serde_json::to_string_pretty(&bookies).map_err(|e| BookieError::Task(e.to_string()))?;
        println!("{json}");
        return Ok(());
    }
    println!(
        "{:<32} {:<10} {:>10} {:>10}",
        "ADDRESS", "STATE", "FREE GiB", "TOTAL GiB"
    );
    let gib = |bytes: u64| bytes as f64 / (1u64 << 30) as f64;
    for b in &bookies {
        println!(
            "{:<32} {:<10} {:>10.1} {:>10.1}",
            b.address,
            if b.read_only { "read-only" } else { "writable" },
            gib(b.free_disk_bytes),
            gib(b.total_disk_bytes),
        );
    }
    println!("{} bookie(s)", bookies.len());
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, clap::Parser)]
    struct Cli {
        #[command(subcommand)]
        command: BookieCommand,
    }

    #[test]
    fn serve_takes_the_cluster_token_from_its_flag_and_listens_on_loopback() {
        let cli = Cli::try_parse_from([
            "bookie",
            "serve",
            "--cluster-token",
            "flag-token-0123456789",
        ])
        .expect("parses");
        let BookieCommand::Serve(serve) = cli.command else {
            panic!("not serve: {cli:?}");
        };
        assert!(
            !format!("{serve:?}").contains("flag-token"),
            "never printed"
        );
        let config = serve.into_config().expect("valid");
        let token = config.cluster_token.expect("token");
        assert!(token.matches(b"flag-token-0123456789"));
        assert!(config.listen.ip().is_loopback());
        let short = Cli::try_parse_from(["bookie", "serve", "--cluster-token", "short"]);
        assert!(short.is_err(), "a short token is refused");
    }
}
