//! Helpers shared by the bookie's integration tests: an in-process bookie on an ephemeral port
//! in a temporary directory, and deterministic entry payloads to verify reads against.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::Path;

use magnetar_bookie::journal::JournalConfig;
use magnetar_bookie::{BookieClient, BookieConfig, BookieServer};
use magnetar_protocol::bookie::AddEntryRequest;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Small segments and frequent checkpoints, so tests roll segments and remove old ones.
pub fn config(dir: &Path) -> BookieConfig {
    BookieConfig {
        journal_dir: dir.join("journal"),
        ledger_dir: dir.join("ledgers"),
        max_entry_size: 64 * 1024,
        max_frame_size: 128 * 1024,
        checkpoint_interval_ms: 200,
        // Read-only only on a completely full disk: the development disk may be nearly full.
        disk_usage_threshold: 1.0,
        disk_usage_lwm_threshold: 1.0,
        journal: JournalConfig {
            segment_size: 2 * 1024 * 1024,
            max_batch_bytes: 256 * 1024,
            ..JournalConfig::default()
        },
        ..BookieConfig::default()
    }
}

/// A bookie server running in this process.
pub struct TestBookie {
    pub addr: SocketAddr,
    shutdown: CancellationToken,
    task: JoinHandle<Result<(), magnetar_bookie::BookieError>>,
}

impl TestBookie {
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
        }
    }

    pub async fn client(&self) -> BookieClient {
        BookieClient::connect(self.addr).await.expect("connect")
    }

    /// Graceful shutdown: drain, close the journal, checkpoint.
    pub async fn stop(self) {
        self.shutdown.cancel();
        self.task
            .await
            .expect("bookie task")
            .expect("bookie shut down");
    }
}

pub fn payload(ledger_id: u64, entry_id: u64) -> Vec<u8> {
    let len = 100 + (entry_id as usize * 37 + ledger_id as usize) % 900;
    (0..len)
        .map(|i| (ledger_id as usize * 31 + entry_id as usize * 7 + i) as u8)
        .collect()
}

pub fn add(ledger_id: u64, entry_id: u64, recovery: bool) -> AddEntryRequest {
    AddEntryRequest {
        ledger_id,
        entry_id,
        last_add_confirmed: entry_id.checked_sub(1),
        payload: payload(ledger_id, entry_id),
        recovery,
    }
}
