//! Helpers shared by the bookie's integration tests: the bookie settings they run with
//! (small limits, so oversized input is cheap to send) and deterministic entry payloads to
//! verify reads against. The in-process bookie itself is `magnetar_testkit::bookie::TestBookie`.

#![allow(dead_code)]

use std::path::Path;

use magnetar_bookie::BookieConfig;
use magnetar_bookie::journal::JournalConfig;
use magnetar_protocol::bookie::AddEntryRequest;

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

/// A wedged bookie: a listener that accepts connections and reads what they send, and never
/// answers. Dropping it closes the listener and the connections.
pub struct BlackHole {
    pub addr: std::net::SocketAddr,
    accepted: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl BlackHole {
    /// Binds `addr` (a port a bookie just left, or port 0).
    pub async fn bind(addr: &str) -> BlackHole {
        let listener = tokio::net::TcpListener::bind(addr).await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = accepted.clone();
        let task = tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            while let Ok((mut socket, _)) = listener.accept().await {
                count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                connections.spawn(async move {
                    let mut sink = tokio::io::sink();
                    let _ = tokio::io::copy(&mut socket, &mut sink).await;
                });
            }
        });
        BlackHole {
            addr,
            accepted,
            task,
        }
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Drop for BlackHole {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A TCP proxy to `target` that passes at most `bytes_per_sec` from clients to it (answers
/// pass unthrottled): a bookie behind a slow link. Dropping it stops it.
pub struct Throttle {
    pub addr: std::net::SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Throttle {
    pub async fn start(target: std::net::SocketAddr, bytes_per_sec: usize) -> Throttle {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        // A small receive window, so that what a client has written waits in its own socket
        // buffer (bounded) rather than here.
        socket.set_recv_buffer_size(64 * 1024).expect("rcvbuf");
        socket
            .bind("127.0.0.1:0".parse().expect("addr"))
            .expect("bind");
        let listener = socket.listen(16).expect("listen");
        let addr = listener.local_addr().expect("addr");
        let task = tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = tokio::net::TcpStream::connect(target).await else {
                    continue;
                };
                let (mut client_read, mut client_write) = client.into_split();
                let (mut server_read, mut server_write) = server.into_split();
                connections.spawn(async move {
                    let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
                });
                connections.spawn(async move {
                    let chunk = 16 * 1024;
                    let pause =
                        std::time::Duration::from_secs_f64(chunk as f64 / bytes_per_sec as f64);
                    let mut ticker = tokio::time::interval(pause);
                    let mut buf = vec![0u8; chunk];
                    loop {
                        ticker.tick().await;
                        match client_read.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => {
                                if server_write.write_all(&buf[..n]).await.is_err() {
                                    break;
                                }
                            }
                        }
                    }
                });
            }
        });
        Throttle { addr, task }
    }
}

impl Drop for Throttle {
    fn drop(&mut self) {
        self.task.abort();
    }
}
