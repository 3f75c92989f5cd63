//! One bookie on this machine (journal and RocksDB in a temporary directory on the same disk),
//! loaded over TCP by one pipelined client with 1 KiB entries:
//!
//! 1. light load (1,000 adds/s, open loop): latency, to compare with one fdatasync;
//! 2. deep pipelining (10,000 adds outstanding): throughput, latency, fsyncs/s, entries per fsync.
//!
//! `cargo bench -p magnetar-bookie`; env `BENCH_ENTRIES` overrides the deep run's add count and
//! `BENCH_GROUP_WAIT_US` the journal's `max_group_wait_us`.

use std::time::{Duration, Instant};

use magnetar_bookie::bench::{self, BenchOptions};
use magnetar_bookie::{BookieConfig, BookieServer};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

fn main() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(run())
}

async fn run() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut config = BookieConfig {
        journal_dir: dir.path().join("journal"),
        ledger_dir: dir.path().join("ledgers"),
        // A nearly full development disk must not turn the measured bookie read-only.
        disk_usage_threshold: 1.0,
        disk_usage_lwm_threshold: 1.0,
        ..BookieConfig::default()
    };
    if let Some(wait) = env_u64("BENCH_GROUP_WAIT_US") {
        config.journal.max_group_wait_us = wait;
    }
    println!(
        "journal: max_group_wait_us {}, max_batch_bytes {}",
        config.journal.max_group_wait_us, config.journal.max_batch_bytes
    );
    println!("fdatasync on this disk: {}", fdatasync_probe(dir.path())?);
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let shutdown = CancellationToken::new();
    let server = BookieServer::start(config, listener, shutdown.clone()).await?;
    let addr = server.local_addr();
    let bookie = server.bookie().clone();
    let serving = tokio::spawn(server.wait());

    let entries = env_u64("BENCH_ENTRIES").unwrap_or(1_000_000);
    // Light load first: after the deep run RocksDB is still flushing a gigabyte in the
    // background, which is a different measurement.
    let runs = [
        ("light load 1000 adds/s", 10_000, 10_000, Some(1_000), 2),
        ("deep pipeline", entries, 10_000, None, 1),
    ];
    for (name, entries, inflight, rate, ledger_id) in runs {
        let options = BenchOptions {
            entries,
            entry_size: 1024,
            inflight,
            rate,
            ledger_id,
            cluster_token: None,
        };
        let before = bookie.journal_stats();
        let report = bench::run(addr, &options).await?;
        let after = bookie.journal_stats();
        let fsyncs = after.fsyncs - before.fsyncs;
        let records = after.records - before.records;
        println!("{name}: {report}");
        println!(
            "{name}: {} fsyncs, {:.0} fsyncs/s, {:.1} entries per fsync, {:.1} MB journal written",
            fsyncs,
            fsyncs as f64 / report.elapsed.as_secs_f64(),
            records as f64 / fsyncs.max(1) as f64,
            (after.bytes - before.bytes) as f64 / 1e6,
        );
    }
    shutdown.cancel();
    serving.await??;
    Ok(())
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

/// p50 and p99 of 500 write + fdatasync pairs of one 1 KiB record each into a preallocated
/// file, as the journal does for a lone add: the floor of an add's latency on this disk.
fn fdatasync_probe(dir: &std::path::Path) -> anyhow::Result<String> {
    use std::os::unix::fs::FileExt;
    let path = dir.join("probe");
    let file = std::fs::File::create(&path)?;
    rustix::fs::fallocate(&file, rustix::fs::FallocateFlags::empty(), 0, 1 << 20)?;
    file.sync_all()?;
    let mut latencies: Vec<Duration> = (0..500u64)
        .map(|i| {
            let started = Instant::now();
            file.write_all_at(&[1; 1057], i * 1057)?;
            file.sync_data()?;
            Ok(started.elapsed())
        })
        .collect::<std::io::Result<_>>()?;
    latencies.sort_unstable();
    std::fs::remove_file(&path)?;
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    Ok(format!(
        "p50 {:.2} ms, p99 {:.2} ms",
        ms(latencies[250]),
        ms(latencies[495])
    ))
}
