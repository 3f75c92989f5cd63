//! Harness for the broker's storage tests: a real single-node metadata group and real bookies
//! in this process, each registered in metadata with its own session (as `magnetar bookie`
//! does), and a ledger client over them. Copied in spirit from `bookie/tests/common`.

#![allow(dead_code)]

pub mod cluster;

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use magnetar_bookie::journal::JournalConfig;
use magnetar_bookie::ledger::{LedgerClient, LedgerOptions};
use magnetar_bookie::registry::{self, BookieInfo};
use magnetar_bookie::{BookieConfig, BookieServer};
use magnetar_metadata::testing::{ClusterOptions, LocalCluster};
use magnetar_metadata::{MetadataClient, Session};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Small journal segments and frequent checkpoints.
pub fn bookie_config(dir: &Path) -> BookieConfig {
    BookieConfig {
        journal_dir: dir.join("journal"),
        ledger_dir: dir.join("ledgers"),
        max_entry_size: 1024 * 1024,
        max_frame_size: 2 * 1024 * 1024,
        checkpoint_interval_ms: 200,
        journal: JournalConfig {
            segment_size: 8 * 1024 * 1024,
            max_batch_bytes: 256 * 1024,
            ..JournalConfig::default()
        },
        ..BookieConfig::default()
    }
}

/// A bookie server running in this process, registered in metadata while its session lives.
pub struct TestBookie {
    pub addr: SocketAddr,
    shutdown: CancellationToken,
    task: JoinHandle<Result<(), magnetar_bookie::BookieError>>,
    session: Session,
    _dir: tempfile::TempDir,
}

impl TestBookie {
    pub async fn start(metadata: &MetadataClient) -> TestBookie {
        let dir = tempfile::tempdir().expect("tempdir");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let shutdown = CancellationToken::new();
        let server = BookieServer::start(bookie_config(dir.path()), listener, shutdown.clone())
            .await
            .expect("start bookie");
        let addr = server.local_addr();
        let task = tokio::spawn(server.wait());
        let session = metadata
            .create_session(Duration::from_secs(2))
            .await
            .expect("session");
        let info = BookieInfo {
            address: addr.to_string(),
            read_only: false,
            free_disk_bytes: 1 << 30,
            total_disk_bytes: 1 << 30,
        };
        registry::register(metadata, &session, &info)
            .await
            .expect("register");
        TestBookie {
            addr,
            shutdown,
            task,
            session,
            _dir: dir,
        }
    }

    /// Unregisters (closes its session) and stops the server.
    pub async fn stop(self) {
        if let Err(e) = self.session.close().await {
            tracing::debug!(error = %e, "closing bookie session");
        }
        self.shutdown.cancel();
        let _ = self.task.await;
    }
}

/// Metadata, bookies and a ledger client for brokers.
pub struct Storage {
    pub cluster: LocalCluster,
    pub metadata: MetadataClient,
    pub bookies: Vec<Option<TestBookie>>,
}

impl Storage {
    pub async fn start(bookies: usize) -> Storage {
        let cluster = LocalCluster::start(1, ClusterOptions::default())
            .await
            .expect("metadata");
        let metadata = cluster.client();
        let mut started = Vec::new();
        for _ in 0..bookies {
            started.push(Some(TestBookie::start(&metadata).await));
        }
        Storage {
            cluster,
            metadata,
            bookies: started,
        }
    }

    /// A fresh ledger client, as a (new) broker would have.
    pub fn ledger_client(&self) -> LedgerClient {
        LedgerClient::new(
            self.metadata.clone(),
            LedgerOptions {
                add_timeout: Duration::from_secs(2),
                read_timeout: Duration::from_secs(5),
            },
        )
    }

    pub async fn stop_bookie(&mut self, index: usize) {
        if let Some(bookie) = self.bookies[index].take() {
            bookie.stop().await;
        }
    }

    pub async fn shutdown(mut self) {
        for index in 0..self.bookies.len() {
            self.stop_bookie(index).await;
        }
        self.cluster.shutdown().await;
    }
}

/// Polls `check` until it holds or `timeout` passes.
pub async fn wait_until<F, Fut>(what: &str, timeout: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if check().await {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
