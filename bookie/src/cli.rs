//! `magnetar bookie …`: the arguments of the bookie's subcommands and what each runs. The binary
//! only parses, starts tracing and calls [`run`].

use std::net::SocketAddr;
use std::path::PathBuf;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::bench::{self, BenchOptions};
use crate::config::{BookieConfig, ConfigError};
use crate::error::BookieError;
use crate::server::BookieServer;

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
    /// TOML config file (see deploy/bookie.toml).
    #[arg(long, env = "MAGNETAR_BOOKIE_CONFIG")]
    pub config: Option<PathBuf>,
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
}

/// Runs one `magnetar bookie` subcommand until it ends or `shutdown` is cancelled.
pub async fn run(args: BookieArgs, shutdown: CancellationToken) -> Result<(), BookieError> {
    match args.command {
        BookieCommand::Serve(serve) => {
            let config = serve.into_config()?;
            let listener = TcpListener::bind(config.listen)
                .await
                .map_err(|e| BookieError::io("binding the bookie listener", e))?;
            let server = BookieServer::start(config, listener, shutdown).await?;
            // On stdout, for scripts and tests that start the bookie on port 0.
            println!("bookie serving on {}", server.local_addr());
            server.wait().await
        }
        BookieCommand::Bench(bench) => {
            let options = BenchOptions {
                entries: bench.entries,
                entry_size: bench.entry_size,
                inflight: bench.inflight,
                rate: bench.rate,
                ledger_id: bench.ledger,
            };
            let report = bench::run(bench.bookie, &options)
                .await
                .map_err(|e| BookieError::Task(format!("benchmark failed: {e}")))?;
            println!("{report}");
            Ok(())
        }
    }
}
