//! `magnetar perf topics`: opens `--count` topics, each with one producer that publishes one
//! message, then keeps them all idle so the broker's memory per topic can be read (for example
//! `VmRSS` in `/proc/<broker pid>/status`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use crate::pulsar::Client;

/// Topics (producers) per client connection, under the broker's default limit of 10,000.
const PRODUCERS_PER_CLIENT: usize = 5_000;

#[derive(Debug, Args)]
pub struct TopicsArgs {
    #[arg(long, default_value_t = 10_000)]
    pub count: usize,
    /// Topic names are `<prefix>-<i>`.
    #[arg(long, default_value = "perf-idle")]
    pub prefix: String,
    /// Producers created at a time.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Seconds to hold the topics open after creating them (0 = until Ctrl-C).
    #[arg(long, default_value_t = 0)]
    pub hold: u64,
}

pub(super) async fn run(
    url: &str,
    args: TopicsArgs,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    // A broker takes at most `max_producers_per_connection` (10,000 by default) producers on
    // one connection, and a client keeps one connection per broker: one client per
    // PRODUCERS_PER_CLIENT topics.
    let mut clients = Vec::new();
    for _ in 0..args.count.div_ceil(PRODUCERS_PER_CLIENT).max(1) {
        clients.push(
            Client::connect(url)
                .await
                .with_context(|| format!("connecting to {url}"))?,
        );
    }
    let started = Instant::now();
    let created = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let producers: Vec<_> = futures::stream::iter(0..args.count)
        .map(|i| {
            let client = clients[i % clients.len()].clone();
            let (prefix, created) = (args.prefix.clone(), created.clone());
            async move {
                let producer = client.producer(&format!("{prefix}-{i}")).create().await?;
                producer.send(format!("hello {i}").into_bytes()).await?;
                let n = created.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                if n % 1000 == 0 {
                    println!("{n} topics open ({:.1}s)", started.elapsed().as_secs_f64());
                }
                anyhow::Ok(producer)
            }
        })
        .buffer_unordered(args.concurrency.max(1))
        .collect()
        .await;
    let producers: Vec<_> = producers.into_iter().collect::<Result<_, _>>()?;
    println!(
        "{} topics, each with one producer, open in {:.1}s; idling (read the broker's RSS now)",
        producers.len(),
        started.elapsed().as_secs_f64()
    );
    if args.hold > 0 {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(args.hold)) => {}
            _ = stop.cancelled() => {}
        }
    } else {
        stop.cancelled().await;
    }
    for producer in producers {
        let _ = producer.close().await;
    }
    for client in clients {
        client.close().await;
    }
    Ok(())
}
