//! `magnetar perf produce`: producers on one or more topics publishing fixed-size messages at a
//! total rate (or as fast as they can), with publish latency measured from `send` to receipt.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use clap::Args;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{Run, Stats, report, topic_names};
use crate::client_cli::Codec;
use crate::pulsar::{Batching, Client, Producer, Receipt};

#[derive(Debug, Args)]
pub struct ProduceArgs {
    /// Topic (with --topics N: `<topic>-0` … `<topic>-{N-1}`).
    pub topic: String,
    /// Messages per second over all producers; 0 = as fast as possible.
    #[arg(short = 'r', long, default_value_t = 100.0)]
    pub rate: f64,
    /// Message size in bytes.
    #[arg(short = 's', long, default_value_t = 1024)]
    pub size: usize,
    #[arg(short = 't', long, default_value_t = 1)]
    pub topics: usize,
    /// Producers per topic.
    #[arg(short = 'n', long, default_value_t = 1)]
    pub producers: usize,
    /// Stop after this many messages in all (0 = no limit).
    #[arg(short = 'm', long, default_value_t = 0)]
    pub num_messages: u64,
    /// Stop after this many seconds (0 = until Ctrl-C).
    #[arg(long, default_value_t = 0)]
    pub time: u64,
    #[arg(long)]
    pub disable_batching: bool,
    #[arg(long, default_value_t = 1000)]
    pub batch_max_messages: usize,
    #[arg(long, default_value_t = 128 * 1024)]
    pub batch_max_bytes: usize,
    #[arg(long, default_value_t = 1)]
    pub batch_max_delay_ms: u64,
    /// Messages per producer waiting for receipts before sends wait.
    #[arg(long, default_value_t = 50_000)]
    pub max_pending: usize,
    #[arg(long, value_enum)]
    pub compression: Option<Codec>,
}

pub(super) async fn run(
    url: &str,
    args: ProduceArgs,
    json: bool,
    stop: CancellationToken,
) -> anyhow::Result<Run> {
    let client = Client::connect(url)
        .await
        .with_context(|| format!("connecting to {url}"))?;
    let mut producers = Vec::new();
    for topic in topic_names(&args.topic, args.topics) {
        for _ in 0..args.producers.max(1) {
            let mut builder = client
                .producer(&topic)
                .max_pending_messages(args.max_pending);
            if !args.disable_batching {
                builder = builder.batching(Batching {
                    max_messages: args.batch_max_messages.max(1),
                    max_bytes: args.batch_max_bytes,
                    max_delay: Duration::from_millis(args.batch_max_delay_ms),
                });
            }
            if let Some(codec) = args.compression {
                builder = builder.compression(codec.into());
            }
            producers.push(
                builder
                    .create()
                    .await
                    .with_context(|| format!("producer on {topic}"))?,
            );
        }
    }
    if !json {
        println!(
            "{} producers on {} topics, {}-byte messages, rate {}",
            producers.len(),
            args.topics.max(1),
            args.size,
            if args.rate > 0.0 {
                format!("{} msg/s", args.rate)
            } else {
                "max".into()
            }
        );
    }
    let stats = Arc::new(Stats::default());
    let payload = Bytes::from((0..args.size).map(|i| (i % 251) as u8).collect::<Vec<u8>>());
    let n = producers.len();
    let per_producer_rate = args.rate / n as f64;
    let per_producer_limit = (args.num_messages > 0).then(|| args.num_messages.div_ceil(n as u64));
    let sending = stop.child_token();
    let mut tasks = tokio::task::JoinSet::new();
    for producer in producers {
        let (stats, payload, sending) = (stats.clone(), payload.clone(), sending.clone());
        let max_pending = args.max_pending.max(1);
        tasks.spawn(async move {
            let (tx, rx) = mpsc::channel(max_pending);
            let collector = tokio::spawn(collect(rx, stats.clone(), payload.len()));
            let sent = send_loop(
                &producer,
                payload,
                per_producer_rate,
                per_producer_limit,
                &tx,
                &stats,
                sending,
            )
            .await;
            drop(tx);
            let _ = collector.await;
            let _ = producer.close().await;
            sent
        });
    }
    let report_stop = CancellationToken::new();
    let reporter = {
        let (stats, report_stop) = (stats.clone(), report_stop.clone());
        tokio::spawn(async move { report(&stats, "produced", "publish", json, report_stop).await })
    };
    if args.time > 0 {
        let timer = sending.clone();
        let time = Duration::from_secs(args.time);
        tasks.spawn(async move {
            tokio::select! {
                _ = tokio::time::sleep(time) => timer.cancel(),
                _ = timer.cancelled() => {}
            }
            0
        });
    }
    while tasks.join_next().await.is_some() {
        if tasks.len() == 1 && args.time > 0 {
            sending.cancel(); // only the timer is left: every producer is done
        }
    }
    report_stop.cancel();
    let run = reporter.await?;
    client.close().await;
    Ok(run)
}

/// Sends at `rate` messages per second (0 = unthrottled) until `stop` or `limit`.
async fn send_loop(
    producer: &Producer,
    payload: Bytes,
    rate: f64,
    limit: Option<u64>,
    receipts: &mpsc::Sender<(Instant, Receipt)>,
    stats: &Stats,
    stop: CancellationToken,
) -> u64 {
    let start = Instant::now();
    let mut sent = 0u64;
    while !stop.is_cancelled() && limit.is_none_or(|l| sent < l) {
        if rate > 0.0 {
            // Bursts of whatever fell due since the last timer tick (about a millisecond).
            let due = start + Duration::from_secs_f64(sent as f64 / rate);
            if due > Instant::now() {
                tokio::select! {
                    _ = tokio::time::sleep_until(due.into()) => {}
                    _ = stop.cancelled() => break,
                }
            }
        }
        let at = Instant::now();
        let send = tokio::select! {
            send = producer.send_async(payload.clone()) => send,
            _ = stop.cancelled() => break,
        };
        match send {
            Ok(receipt) => {
                let _ = receipts.send((at, receipt)).await;
                sent += 1;
            }
            Err(e) => {
                stats.error();
                tracing::warn!(error = %e, "send failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    sent
}

/// Awaits receipts in send order, recording each message's publish latency (from `send` to
/// the receipt's arrival, however late this task looks at it).
async fn collect(mut rx: mpsc::Receiver<(Instant, Receipt)>, stats: Arc<Stats>, size: usize) {
    while let Some((at, receipt)) = rx.recv().await {
        match receipt.timed().await {
            (Ok(_), done) => stats.record(size, done.saturating_duration_since(at)),
            (Err(_), _) => stats.error(),
        }
    }
}
