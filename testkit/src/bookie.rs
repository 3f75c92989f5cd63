//! Real bookie servers in this process and the storage tier the broker's tests write to.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use magnetar_bookie::journal::JournalConfig;
use magnetar_bookie::ledger::{LedgerClient, LedgerOptions};
use magnetar_bookie::registry::{self, BookieInfo};
use magnetar_bookie::{BookieClient, BookieConfig, BookieError, BookieServer};
use magnetar_metadata::testing::{ClusterOptions, LocalCluster};
use magnetar_metadata::{MetadataClient, Session};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// TTL of a test bookie's registration session: a stopped bookie leaves the registry quickly.
pub const BOOKIE_SESSION_TTL: Duration = Duration::from_secs(2);

/// Small journal segments and frequent checkpoints, 1 MiB entries; read-only only on a
/// completely full disk (the development disk may be nearly full).
pub fn bookie_config(dir: &Path) -> BookieConfig {
    BookieConfig {
        journal_dir: dir.join("journal"),
        ledger_dir: dir.join("ledgers"),
        max_entry_size: 1024 * 1024,
        max_frame_size: 2 * 1024 * 1024,
        checkpoint_interval_ms: 200,
        disk_usage_threshold: 1.0,
        disk_usage_lwm_threshold: 1.0,
        journal: JournalConfig {
            segment_size: 8 * 1024 * 1024,
            max_batch_bytes: 256 * 1024,
            ..JournalConfig::default()
        },
        ..BookieConfig::default()
    }
}

/// A bookie server running in this process; registered in metadata (as `magnetar bookie
/// serve` registers) while its session lives, if started with [`TestBookie::registered`] or
/// [`TestBookie::register`].
#[derive(Debug)]
pub struct TestBookie {
    pub addr: SocketAddr,
    shutdown: CancellationToken,
    task: JoinHandle<Result<(), BookieError>>,
    session: Option<Session>,
    _dir: Option<tempfile::TempDir>,
}

impl TestBookie {
    /// Starts a bookie with `config` (its directories are the caller's) on an ephemeral port,
    /// registered nowhere.
    pub async fn start(config: BookieConfig) -> TestBookie {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let shutdown = CancellationToken::new();
        let server = BookieServer::start(config, listener, shutdown.clone())
            .await
            .expect("start bookie");
        let addr = server.local_addr();
        let task = tokio::spawn(server.wait());
        TestBookie {
            addr,
            shutdown,
            task,
            session: None,
            _dir: None,
        }
    }

    /// Starts a bookie in a fresh temporary directory ([`bookie_config`]) and registers it.
    pub async fn registered(metadata: &MetadataClient) -> TestBookie {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut bookie = TestBookie::start(bookie_config(dir.path()))
            .await
            .register(metadata)
            .await;
        bookie._dir = Some(dir);
        bookie
    }

    /// Registers the bookie in `metadata` under a session of its own.
    pub async fn register(mut self, metadata: &MetadataClient) -> TestBookie {
        let session = metadata
            .create_session(BOOKIE_SESSION_TTL)
            .await
            .expect("session");
        let info = BookieInfo {
            address: self.addr.to_string(),
            read_only: false,
            free_disk_bytes: 1 << 30,
            total_disk_bytes: 1 << 30,
        };
        registry::register(metadata, &session, &info)
            .await
            .expect("register");
        self.session = Some(session);
        self
    }

    pub async fn client(&self) -> BookieClient {
        BookieClient::connect(self.addr).await.expect("connect")
    }

    /// Graceful stop: unregisters (closes its session), drains, closes the journal and
    /// checkpoints; panics if the server did not shut down cleanly.
    pub async fn stop(mut self) {
        if let Some(session) = self.session.take()
            && let Err(e) = session.close().await
        {
            tracing::debug!(error = %e, "closing the bookie's session");
        }
        self.shutdown.cancel();
        self.task
            .await
            .expect("bookie task")
            .expect("bookie shut down");
    }

    /// Stops the server with its registration left to expire, as a crashed bookie's would.
    pub async fn kill(mut self) {
        drop(self.session.take());
        self.shutdown.cancel();
        let _ = self.task.await;
    }
}

/// A single-node metadata group, registered bookies and ledger clients over them: the
/// storage tier of the broker's managed-ledger tests.
#[derive(Debug)]
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
            started.push(Some(TestBookie::registered(&metadata).await));
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
                ..LedgerOptions::default()
            },
        )
    }

    /// Starts one more registered bookie.
    pub async fn add_bookie(&mut self) {
        self.bookies
            .push(Some(TestBookie::registered(&self.metadata).await));
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
