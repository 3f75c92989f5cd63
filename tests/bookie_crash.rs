//! Crash safety of a real bookie process: `kill -9` while a client pipelines adds loses nothing
//! that was acknowledged.
//!
//! Steps, for each of several rounds, on the same journal and ledger directories:
//! 1. start `magnetar bookie serve` on port 0 and read its address from its stdout;
//! 2. check that every entry acknowledged in earlier rounds reads back intact, and that the
//!    ledger fenced in the first round still refuses normal adds;
//! 3. pipeline adds from many tasks over one connection, recording exactly which were
//!    acknowledged;
//! 4. once enough are acknowledged (with more in flight), SIGKILL the process.
//!
//! A last start checks everything once more. Small journal segments, small memtables and
//! frequent checkpoints make the rounds cross segment rolls, RocksDB flushes and segment removal.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use magnetar_bookie::BookieClient;
use magnetar_protocol::bookie::{AddEntryRequest, StatusCode};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::watch;

const ROUNDS: u64 = 5;
const WRITERS: u64 = 128;
const FENCED_LEDGER: u64 = 1_000;
const TIMEOUT: Duration = Duration::from_secs(60);

fn payload(ledger_id: u64, entry_id: u64) -> Vec<u8> {
    let len = 64 + (entry_id as usize * 131 + ledger_id as usize) % 2000;
    (0..len)
        .map(|i| (ledger_id as usize * 17 + entry_id as usize * 13 + i) as u8)
        .collect()
}

fn add(ledger_id: u64, entry_id: u64) -> AddEntryRequest {
    AddEntryRequest {
        ledger_id,
        entry_id,
        last_add_confirmed: entry_id.checked_sub(1),
        payload: payload(ledger_id, entry_id),
        recovery: false,
    }
}

const CONFIG: &str = r#"
checkpoint_interval_ms = 100
max_entry_size = 65536
max_frame_size = 131072
[journal]
segment_size = 4194304
max_batch_bytes = 262144
[storage]
write_buffer_size = 4194304
"#;

/// Starts the bookie binary and waits for the address it prints.
async fn start_bookie(dir: &Path, round: u64) -> anyhow::Result<(Child, SocketAddr)> {
    let config = dir.join("bookie.toml");
    std::fs::write(&config, CONFIG)?;
    let log = std::fs::File::create(dir.join(format!("bookie-{round}.log")))?;
    let mut child = Command::new(env!("CARGO_BIN_EXE_magnetar"))
        .args(["bookie", "serve", "--listen", "127.0.0.1:0"])
        .arg("--journal-dir")
        .arg(dir.join("journal"))
        .arg("--ledger-dir")
        .arg(dir.join("ledgers"))
        .arg("--config")
        .arg(&config)
        .stdout(Stdio::piped())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| anyhow::anyhow!("no stdout"))?;
    let mut lines = BufReader::new(stdout).lines();
    let addr = tokio::time::timeout(TIMEOUT, async {
        while let Some(line) = lines.next_line().await? {
            if let Some(addr) = line.strip_prefix("bookie serving on ") {
                return Ok(addr.parse()?);
            }
        }
        anyhow::bail!("bookie exited before serving (see bookie-{round}.log)")
    })
    .await??;
    Ok((child, addr))
}

/// Reads back every acknowledged entry, pipelined.
async fn verify(client: &Arc<BookieClient>, acked: &[(u64, u64)]) -> anyhow::Result<()> {
    let mut tasks = tokio::task::JoinSet::new();
    for chunk in acked.chunks(acked.len().div_ceil(64).max(1)) {
        let (client, chunk) = (client.clone(), chunk.to_vec());
        tasks.spawn(async move {
            for (ledger_id, entry_id) in chunk {
                let read = client.read_entry(ledger_id, entry_id, false).await?;
                anyhow::ensure!(
                    read.payload == payload(ledger_id, entry_id),
                    "entry {ledger_id}:{entry_id} came back different"
                );
            }
            Ok(())
        });
    }
    while let Some(result) = tasks.join_next().await {
        result??;
    }
    Ok(())
}

/// Adds to `ledger_id` from many tasks until the connection dies; returns what was acked.
async fn write_until_killed(
    client: Arc<BookieClient>,
    ledger_id: u64,
    kill_after: usize,
    child: &mut Child,
) -> anyhow::Result<Vec<(u64, u64)>> {
    let acked = Arc::new(Mutex::new(Vec::new()));
    let (count_tx, mut count_rx) = watch::channel(0usize);
    let count_tx = Arc::new(count_tx);
    let mut writers = tokio::task::JoinSet::new();
    for writer in 0..WRITERS {
        let (client, acked, count_tx) = (client.clone(), acked.clone(), count_tx.clone());
        writers.spawn(async move {
            let mut entry_id = writer;
            // Any error ends the writer: the bookie is gone.
            while client.add_entry(add(ledger_id, entry_id)).await.is_ok() {
                acked.lock().expect("lock").push((ledger_id, entry_id));
                count_tx.send_modify(|n| *n += 1);
                entry_id += WRITERS;
            }
        });
    }
    tokio::time::timeout(TIMEOUT, count_rx.wait_for(|n| *n >= kill_after)).await??;
    child.start_kill()?; // SIGKILL
    child.wait().await?;
    tokio::time::timeout(TIMEOUT, async {
        while let Some(result) = writers.join_next().await {
            result?;
        }
        Ok::<_, anyhow::Error>(())
    })
    .await??;
    let acked = std::mem::take(&mut *acked.lock().expect("lock"));
    Ok(acked)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_loses_no_acknowledged_entry() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut acked: Vec<(u64, u64)> = Vec::new();
    for round in 0..=ROUNDS {
        let (mut child, addr) = start_bookie(dir.path(), round).await?;
        let client = Arc::new(BookieClient::connect(addr).await?);
        verify(&client, &acked).await?;
        if round == 0 {
            for entry_id in 0..3 {
                client.add_entry(add(FENCED_LEDGER, entry_id)).await?;
                acked.push((FENCED_LEDGER, entry_id));
            }
            client.fence_ledger(FENCED_LEDGER).await?;
        }
        let refused = client.add_entry(add(FENCED_LEDGER, 3)).await;
        anyhow::ensure!(
            refused.as_ref().err().and_then(|e| e.status()) == Some(StatusCode::Fenced),
            "round {round}: fenced ledger accepted an add: {refused:?}"
        );
        if round == ROUNDS {
            child.start_kill()?;
            child.wait().await?;
            break;
        }
        let kill_after = 2_000 + 1_500 * round as usize;
        let new = write_until_killed(client, round + 1, kill_after, &mut child).await?;
        anyhow::ensure!(new.len() >= kill_after, "round {round}: too few acks");
        acked.extend(new);
    }
    Ok(())
}
