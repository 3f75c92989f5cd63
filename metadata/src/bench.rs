//! `magnetar metadata bench`: puts/s and put latency with N concurrent clients, and
//! linearizable gets/s, against a fresh local 3-node group (or given servers). Prints figures;
//! asserts nothing.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Args;
use serde_json::json;

use crate::client::{ClientOptions, MetadataClient};
use crate::testing::{ClusterOptions, LocalCluster};
use crate::types::Expected;

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Concurrent clients, one run per value.
    #[arg(long, value_delimiter = ',', default_value = "1,64")]
    pub clients: Vec<usize>,
    /// Seconds each phase runs.
    #[arg(long, default_value_t = 5)]
    pub seconds: u64,
    #[arg(long, default_value_t = 100)]
    pub value_size: usize,
    /// Benchmark the group at --servers instead of starting a local 3-node group.
    #[arg(long)]
    pub use_servers: bool,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

struct Phase {
    ops: u64,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

async fn phase(
    clients: &[MetadataClient],
    seconds: u64,
    value_size: usize,
    puts: bool,
) -> anyhow::Result<Phase> {
    let stop_at = Instant::now() + Duration::from_secs(seconds);
    let counter = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for (i, client) in clients.iter().enumerate() {
        let client = client.clone();
        let counter = counter.clone();
        tasks.push(tokio::spawn(async move {
            let value = vec![b'x'; value_size];
            let mut latencies = Vec::new();
            let mut n = 0u64;
            while Instant::now() < stop_at {
                let key = format!("/bench/c{i}/k{}", n % 1000);
                let began = Instant::now();
                if puts {
                    client.put(&key, value.clone(), Expected::Any).await?;
                } else {
                    client.get(&key).await?;
                }
                latencies.push(began.elapsed());
                counter.fetch_add(1, Ordering::Relaxed);
                n += 1;
            }
            anyhow::Ok(latencies)
        }));
    }
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await??);
    }
    latencies.sort_unstable();
    Ok(Phase {
        ops: counter.load(Ordering::Relaxed),
        elapsed: start.elapsed(),
        latencies,
    })
}

/// Runs the benchmark with clients made with `options` (a local group requires their cluster
/// token, if any).
pub async fn run(
    args: BenchArgs,
    servers: Option<Vec<String>>,
    options: ClientOptions,
    json_out: bool,
) -> anyhow::Result<()> {
    let local = match servers {
        Some(_) => None,
        None => {
            eprintln!("starting a local 3-node metadata group in a temporary directory…");
            let cluster_options = ClusterOptions {
                cluster_token: options.cluster_token.clone(),
                ..ClusterOptions::default()
            };
            Some(LocalCluster::start(3, cluster_options).await?)
        }
    };
    let servers = match (&local, servers) {
        (Some(cluster), _) => cluster.addrs(),
        (None, Some(servers)) => servers,
        (None, None) => unreachable!("one of them is set above"),
    };
    let mut report = Vec::new();
    for &n in &args.clients {
        let clients = (0..n)
            .map(|_| MetadataClient::new(servers.clone(), options.clone()))
            .collect::<Result<Vec<_>, _>>()?;
        eprintln!("{n} client(s): puts for {}s…", args.seconds);
        let puts = phase(&clients, args.seconds, args.value_size, true).await?;
        eprintln!("{n} client(s): linearizable gets for {}s…", args.seconds);
        let gets = phase(&clients, args.seconds, args.value_size, false).await?;
        let rate = |p: &Phase| p.ops as f64 / p.elapsed.as_secs_f64();
        let row = json!({
            "clients": n,
            "puts_per_sec": rate(&puts).round(),
            "put_p50_ms": percentile(&puts.latencies, 0.50).as_secs_f64() * 1e3,
            "put_p99_ms": percentile(&puts.latencies, 0.99).as_secs_f64() * 1e3,
            "gets_per_sec": rate(&gets).round(),
            "get_p50_ms": percentile(&gets.latencies, 0.50).as_secs_f64() * 1e3,
            "get_p99_ms": percentile(&gets.latencies, 0.99).as_secs_f64() * 1e3,
        });
        if !json_out {
            println!(
                "clients={n:<3} puts/s={:>8.0}  put p50={:>6.2}ms p99={:>6.2}ms  gets/s={:>8.0}  get p50={:>6.2}ms p99={:>6.2}ms",
                rate(&puts),
                row["put_p50_ms"].as_f64().unwrap_or(0.0),
                row["put_p99_ms"].as_f64().unwrap_or(0.0),
                rate(&gets),
                row["get_p50_ms"].as_f64().unwrap_or(0.0),
                row["get_p99_ms"].as_f64().unwrap_or(0.0),
            );
        }
        report.push(row);
    }
    if json_out {
        println!("{}", serde_json::Value::Array(report));
    }
    if let Some(cluster) = local {
        cluster.shutdown().await;
    }
    Ok(())
}
