//! The bookie server: opens the bookie, accepts connections on a bound listener, checkpoints
//! periodically, watches its disks ([`crate::disk`]) and, given metadata servers, keeps itself
//! registered ([`crate::registration`]) and collects ledgers deleted from metadata
//! ([`crate::gc`]). On shutdown it deregisters, stops accepting, lets connections answer what
//! they took, then closes the journal and checkpoints.

use std::net::SocketAddr;
use std::sync::Arc;

use magnetar_metadata::MetadataClient;
use magnetar_metadata::client::ClientOptions;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::bookie::Bookie;
use crate::config::BookieConfig;
use crate::connection::{self, ConnectionContext};
use crate::disk::{DiskMonitor, ReadOnlyGate};
use crate::error::BookieError;
use crate::registry::BookieInfo;
use crate::{gc, registration};

/// Opens the bookie, serves `listener` until `shutdown` is cancelled, then drains and closes.
pub async fn run(
    config: BookieConfig,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> Result<(), BookieError> {
    BookieServer::start(config, listener, shutdown)
        .await?
        .wait()
        .await
}

/// A started bookie server.
#[derive(Debug)]
pub struct BookieServer {
    bookie: Arc<Bookie>,
    local_addr: SocketAddr,
    info: watch::Receiver<BookieInfo>,
    config: BookieConfig,
    shutdown: CancellationToken,
    tasks: TaskTracker,
}

impl BookieServer {
    /// Opens the bookie (replaying its journal) and starts serving; returns once it accepts.
    pub async fn start(
        config: BookieConfig,
        listener: TcpListener,
        shutdown: CancellationToken,
    ) -> Result<BookieServer, BookieError> {
        let local_addr = listener
            .local_addr()
            .map_err(|e| BookieError::io("reading the listener address", e))?;
        let open_config = config.clone();
        let bookie = tokio::task::spawn_blocking(move || Bookie::open(&open_config))
            .await
            .map_err(|e| BookieError::Task(e.to_string()))??;
        let bookie = Arc::new(bookie);
        let address = config.advertised_address(local_addr);
        // Measure before serving, so a full disk never takes an add nor registers writable.
        let mut monitor = DiskMonitor {
            bookie: bookie.clone(),
            address: address.clone(),
            dirs: vec![config.journal_dir.clone(), config.ledger_dir.clone()],
            gate: ReadOnlyGate {
                threshold: config.disk_usage_threshold,
                low_water_mark: config.disk_usage_lwm_threshold,
                read_only: false,
            },
        };
        let first = monitor.check().unwrap_or(BookieInfo {
            address: address.clone(),
            read_only: false,
            free_disk_bytes: 0,
            total_disk_bytes: 0,
        });
        let (info_tx, info) = watch::channel(first);
        let tasks = TaskTracker::new();
        let ctx = ConnectionContext {
            bookie: bookie.clone(),
            max_frame_size: config.max_frame_size,
            max_inflight_bytes: config.max_inflight_bytes,
            cluster_token: config.cluster_token.clone(),
            tasks: tasks.clone(),
        };
        if config.cluster_token.is_none() && !local_addr.ip().is_loopback() {
            tracing::warn!(%local_addr, "no cluster_token: anyone who reaches this address can read, fence and delete ledgers");
        }
        tasks.spawn(accept_loop(listener, ctx, shutdown.clone()));
        tasks.spawn(checkpoint_loop(
            bookie.clone(),
            config.checkpoint_interval(),
            shutdown.clone(),
        ));
        tasks.spawn(monitor.run(config.disk_check_interval(), info_tx, shutdown.clone()));
        if !config.metadata_servers.is_empty() {
            let metadata = MetadataClient::new(
                config.metadata_servers.clone(),
                ClientOptions {
                    cluster_token: config.cluster_token.clone(),
                    ..ClientOptions::default()
                },
            )?;
            tasks.spawn(registration::keep_registered(
                metadata.clone(),
                config.session_ttl(),
                info.clone(),
                shutdown.clone(),
            ));
            if let Some(interval) = config.gc_interval() {
                tasks.spawn(gc::run(
                    bookie.clone(),
                    metadata,
                    interval,
                    shutdown.clone(),
                ));
            }
        }
        tracing::info!(%local_addr, advertised = address, journal = %config.journal_dir.display(), ledgers = %config.ledger_dir.display(), "bookie serving");
        Ok(BookieServer {
            bookie,
            local_addr,
            info,
            config,
            shutdown,
            tasks,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub fn bookie(&self) -> &Arc<Bookie> {
        &self.bookie
    }

    /// What the bookie registers (or would): advertised address, read-only state, disk figures.
    pub fn info(&self) -> BookieInfo {
        self.info.borrow().clone()
    }

    /// Waits for the shutdown token, then drains connections (up to the configured grace),
    /// closes the journal and takes a last checkpoint.
    pub async fn wait(self) -> Result<(), BookieError> {
        self.shutdown.cancelled().await;
        self.tasks.close();
        if tokio::time::timeout(self.config.shutdown_grace(), self.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!("bookie connections did not drain in time; closing anyway");
        }
        let bookie = self.bookie;
        tokio::task::spawn_blocking(move || bookie.close())
            .await
            .map_err(|e| BookieError::Task(e.to_string()))??;
        tracing::info!("bookie stopped");
        Ok(())
    }
}

async fn accept_loop(listener: TcpListener, ctx: ConnectionContext, shutdown: CancellationToken) {
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((socket, _peer)) => {
                if let Err(e) = socket.set_nodelay(true) {
                    tracing::debug!(error = %e, "could not set TCP_NODELAY");
                }
                let tasks = ctx.tasks.clone();
                tasks.spawn(connection::serve(
                    socket,
                    ctx.clone(),
                    shutdown.child_token(),
                ));
            }
            // Per-connection failures (a peer resetting before accept, fd exhaustion) must not
            // end the server; pause so a persistent one does not spin.
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(std::time::Duration::from_millis(50)) => {}
                }
            }
        }
    }
}

async fn checkpoint_loop(
    bookie: Arc<Bookie>,
    interval: std::time::Duration,
    shutdown: CancellationToken,
) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await; // the first tick is immediate; the bookie checkpointed at open
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let b = bookie.clone();
        match tokio::task::spawn_blocking(move || b.checkpoint()).await {
            Ok(Ok(position)) => tracing::trace!(%position, "checkpoint"),
            Ok(Err(e)) => tracing::error!(error = %e, "checkpoint failed"),
            Err(e) => tracing::error!(error = %e, "checkpoint task failed"),
        }
    }
}
