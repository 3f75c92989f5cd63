//! `magnetar perf consume`: consumers on one or more topics, acking every message, reporting
//! throughput and end-to-end latency (receive time minus the message's publish time, to the
//! millisecond). With `--subscription-position earliest` on a topic with a backlog, and
//! `--num-messages`, it measures catch-up reads.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use tokio_util::sync::CancellationToken;

use super::{Run, Stats, report, topic_names};
use crate::client_cli::{Position, SubscriptionType};
use crate::pulsar::Client;

#[derive(Debug, Args)]
pub struct ConsumeArgs {
    /// Topic (with --topics N: `<topic>-0` … `<topic>-{N-1}`).
    pub topic: String,
    #[arg(short = 't', long, default_value_t = 1)]
    pub topics: usize,
    /// Consumers per topic (use a shared type for more than one).
    #[arg(short = 'n', long, default_value_t = 1)]
    pub consumers: usize,
    #[arg(short = 's', long, default_value = "perf-sub")]
    pub subscription: String,
    #[arg(long, value_enum, default_value = "exclusive")]
    pub subscription_type: SubscriptionType,
    /// Where a new subscription starts; `earliest` on a backlog measures catch-up.
    #[arg(short = 'p', long, value_enum, default_value = "latest")]
    pub subscription_position: Position,
    #[arg(long, default_value_t = 1000)]
    pub receiver_queue_size: u32,
    /// Stop after this many messages in all (0 = no limit).
    #[arg(short = 'm', long, default_value_t = 0)]
    pub num_messages: u64,
    /// Stop after this many seconds (0 = until Ctrl-C).
    #[arg(long, default_value_t = 0)]
    pub time: u64,
}

pub(super) async fn run(
    url: &str,
    args: ConsumeArgs,
    json: bool,
    stop: CancellationToken,
) -> anyhow::Result<Run> {
    let client = Client::connect(url)
        .await
        .with_context(|| format!("connecting to {url}"))?;
    let mut consumers = Vec::new();
    for topic in topic_names(&args.topic, args.topics) {
        for _ in 0..args.consumers.max(1) {
            let consumer = client
                .consumer(&topic, &args.subscription)
                .sub_type(args.subscription_type.into())
                .initial_position(args.subscription_position.into())
                .receiver_queue_size(args.receiver_queue_size)
                .subscribe()
                .await
                .with_context(|| format!("subscribing to {topic}"))?;
            consumers.push(consumer);
        }
    }
    if !json {
        println!(
            "{} consumers on {} topics",
            consumers.len(),
            args.topics.max(1)
        );
    }
    let stats = Arc::new(Stats::default());
    let receiving = stop.child_token();
    let mut tasks = tokio::task::JoinSet::new();
    for mut consumer in consumers {
        let (stats, receiving) = (stats.clone(), receiving.clone());
        let limit = args.num_messages;
        tasks.spawn(async move {
            loop {
                let message = tokio::select! {
                    m = consumer.receive() => m,
                    _ = receiving.cancelled() => break,
                };
                match message {
                    Ok(message) => {
                        let now = crate::pulsar::now_millis();
                        let e2e = Duration::from_millis(now.saturating_sub(message.publish_time));
                        stats.record(message.payload.len(), e2e);
                        if consumer.ack(&message).is_err() {
                            stats.error();
                        }
                        if limit > 0 && stats.messages() >= limit {
                            receiving.cancel();
                        }
                    }
                    Err(e) => {
                        stats.error();
                        tracing::warn!(error = %e, "receive failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
            let _ = consumer.close().await;
        });
    }
    let report_stop = CancellationToken::new();
    let reporter = {
        let (stats, report_stop) = (stats.clone(), report_stop.clone());
        tokio::spawn(
            async move { report(&stats, "consumed", "end-to-end", json, report_stop).await },
        )
    };
    if args.time > 0 {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(args.time)) => receiving.cancel(),
            _ = receiving.cancelled() => {}
        }
    }
    while tasks.join_next().await.is_some() {}
    report_stop.cancel();
    let run = reporter.await?;
    client.close().await;
    Ok(run)
}
