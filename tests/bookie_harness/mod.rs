//! Shared by the bookie end-to-end tests: a metadata node in this process, real
//! `magnetar bookie serve` processes registered in it (which tests `kill -9` and restart), the
//! `magnetar bookie` operator commands as child processes, and waiting on conditions.

#![allow(dead_code)]

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use magnetar_bookie::registry::BookieInfo;
use magnetar_metadata::MetadataClient;
use magnetar_metadata::testing::{ClusterOptions, LocalCluster};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// Taken by the tests that start three bookies or more: one of them at a time on a shared
/// machine (they share one test binary with the rest).
pub static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Deadline of every wait; generous, since the machine is shared with builds.
pub const TIMEOUT: Duration = Duration::from_secs(60);

/// Small memtables and segments, frequent checkpoints; a short session TTL so a killed bookie
/// leaves the registry quickly; quick disk checks and garbage-collection passes.
pub const BASE_CONFIG: &str = r#"
checkpoint_interval_ms = 500
max_entry_size = 65536
max_frame_size = 131072
session_ttl_ms = 2000
disk_check_interval_ms = 200
gc_interval_ms = 300
[journal]
segment_size = 8388608
max_batch_bytes = 262144
[storage]
write_buffer_size = 4194304
"#;

/// Read-only only on a completely full disk (the development disk may be nearly full), unless a
/// test sets the thresholds itself.
const DISK_THRESHOLDS: &str = "disk_usage_threshold = 1.0\ndisk_usage_lwm_threshold = 1.0\n";

/// One metadata node in this process.
pub async fn metadata() -> anyhow::Result<(LocalCluster, MetadataClient, String)> {
    let cluster = LocalCluster::start(1, ClusterOptions::default()).await?;
    let client = cluster.client();
    let servers = cluster.addrs().join(",");
    Ok((cluster, client, servers))
}

/// Polls `check` until it yields a value; fails after [`TIMEOUT`].
pub async fn wait_until<T, F, Fut>(what: &str, check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<Option<T>>>,
{
    magnetar_testkit::try_wait_for(what, TIMEOUT, check).await
}

/// A `magnetar bookie serve` process with its data directory; restartable on the same address.
pub struct BookieProcess {
    pub addr: SocketAddr,
    pub dir: PathBuf,
    servers: String,
    child: Option<Child>,
    starts: usize,
}

impl BookieProcess {
    /// Starts a bookie in `dir` on an ephemeral port, registered in `servers`, with `extra`
    /// top-level settings followed by [`BASE_CONFIG`].
    pub async fn start(dir: &Path, servers: &str, extra: &str) -> anyhow::Result<BookieProcess> {
        std::fs::create_dir_all(dir)?;
        let disk = if extra.contains("disk_usage") {
            ""
        } else {
            DISK_THRESHOLDS
        };
        let config = format!("{extra}\n{disk}{BASE_CONFIG}");
        std::fs::write(dir.join("bookie.toml"), config)?;
        let mut bookie = BookieProcess {
            addr: "127.0.0.1:0".parse()?,
            dir: dir.to_path_buf(),
            servers: servers.to_string(),
            child: None,
            starts: 0,
        };
        bookie.spawn().await?;
        Ok(bookie)
    }

    async fn spawn(&mut self) -> anyhow::Result<()> {
        let log = std::fs::File::create(self.dir.join(format!("bookie-{}.log", self.starts)))?;
        self.starts += 1;
        let mut child = Command::new(env!("CARGO_BIN_EXE_magnetar"))
            .args(["bookie", "serve", "--listen", &self.addr.to_string()])
            .args(["--metadata", &self.servers])
            .arg("--journal-dir")
            .arg(self.dir.join("journal"))
            .arg("--ledger-dir")
            .arg(self.dir.join("ledgers"))
            .arg("--config")
            .arg(self.dir.join("bookie.toml"))
            .stdout(Stdio::piped())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| anyhow::anyhow!("no stdout"))?;
        let mut lines = BufReader::new(stdout).lines();
        let dir = self.dir.display().to_string();
        self.addr = tokio::time::timeout(TIMEOUT, async {
            while let Some(line) = lines.next_line().await? {
                if let Some(addr) = line.strip_prefix("bookie serving on ") {
                    return Ok(addr.parse()?);
                }
            }
            anyhow::bail!("bookie exited before serving (see the log in {dir})")
        })
        .await??;
        self.child = Some(child);
        Ok(())
    }

    pub fn address(&self) -> String {
        self.addr.to_string()
    }

    /// SIGKILL, and wait for the process to be gone.
    pub async fn kill(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            child.start_kill()?;
            child.wait().await?;
        }
        Ok(())
    }

    /// Starts the bookie again on the same address and data.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.kill().await?;
        self.spawn().await
    }
}

/// Runs `magnetar bookie ARGS…` to completion; returns its stdout, failing on a non-zero exit.
pub async fn bookie_command(args: &[&str]) -> anyhow::Result<String> {
    let output = Command::new(env!("CARGO_BIN_EXE_magnetar"))
        .arg("bookie")
        .args(args)
        .output()
        .await?;
    anyhow::ensure!(
        output.status.success(),
        "magnetar bookie {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(String::from_utf8(output.stdout)?)
}

/// The registered bookies, as `magnetar bookie list --json` prints them.
pub async fn listed(servers: &str) -> anyhow::Result<Vec<BookieInfo>> {
    let json = bookie_command(&["list", "--metadata", servers, "--json"]).await?;
    Ok(serde_json::from_str(&json)?)
}

/// The registration of `address`, read from the metadata service.
pub async fn registration(
    metadata: &MetadataClient,
    address: &str,
) -> anyhow::Result<Option<(BookieInfo, u64)>> {
    let Some(record) = metadata.get(&format!("/bookies/{address}")).await? else {
        return Ok(None);
    };
    let session = record
        .session
        .ok_or_else(|| anyhow::anyhow!("registration of {address} is not ephemeral"))?;
    Ok(Some((serde_json::from_slice(&record.value)?, session)))
}
