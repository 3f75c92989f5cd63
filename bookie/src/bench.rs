//! A load generator for one bookie: pipelined adds over one connection, with per-add latency.
//! Used by `magnetar bookie bench` and by `cargo bench -p magnetar-bookie`.

use std::fmt;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use magnetar_protocol::ClusterToken;
use magnetar_protocol::bookie::AddEntryRequest;

use crate::client::{BookieClient, ClientError, ConnectOptions};

#[derive(Debug, Clone)]
pub struct BenchOptions {
    pub entries: u64,
    pub entry_size: usize,
    /// Most adds outstanding at once.
    pub inflight: usize,
    /// Open-loop rate in adds per second; `None` sends as fast as the window allows.
    pub rate: Option<u64>,
    pub ledger_id: u64,
    /// The bookie's cluster token, if it has one.
    pub cluster_token: Option<ClusterToken>,
}

/// What a run measured.
#[derive(Debug, Clone)]
pub struct BenchReport {
    pub entries: u64,
    pub entry_size: usize,
    pub elapsed: Duration,
    /// Add latencies, sorted.
    latencies: Vec<Duration>,
}

impl BenchReport {
    pub fn adds_per_sec(&self) -> f64 {
        self.entries as f64 / self.elapsed.as_secs_f64()
    }

    pub fn mb_per_sec(&self) -> f64 {
        self.adds_per_sec() * self.entry_size as f64 / 1e6
    }

    /// Latency at quantile `q` (0..=1).
    pub fn latency(&self, q: f64) -> Duration {
        let last = self.latencies.len().saturating_sub(1);
        let index = ((last as f64) * q).round() as usize;
        self.latencies.get(index).copied().unwrap_or_default()
    }
}

impl fmt::Display for BenchReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        write!(
            f,
            "{} adds of {} B in {:.2} s: {:.0} adds/s, {:.1} MB/s; latency ms p50 {:.2} p99 {:.2} p99.9 {:.2} max {:.2}",
            self.entries,
            self.entry_size,
            self.elapsed.as_secs_f64(),
            self.adds_per_sec(),
            self.mb_per_sec(),
            ms(self.latency(0.5)),
            ms(self.latency(0.99)),
            ms(self.latency(0.999)),
            ms(self.latency(1.0)),
        )
    }
}

/// Connects to `addr` and sends `options.entries` adds; every one must succeed.
pub async fn run(addr: SocketAddr, options: &BenchOptions) -> Result<BenchReport, ClientError> {
    let connect = ConnectOptions {
        cluster_token: options.cluster_token.clone(),
        ..ConnectOptions::default()
    };
    let client = BookieClient::connect_with(addr, &connect).await?;
    let payload = vec![0x5a; options.entry_size];
    let add = |entry_id: u64| {
        let request = AddEntryRequest {
            ledger_id: options.ledger_id,
            entry_id,
            last_add_confirmed: entry_id.checked_sub(1),
            payload: payload.clone(),
            recovery: false,
        };
        let client = &client;
        async move {
            let started = Instant::now();
            client.add_entry(request).await.map(|()| started.elapsed())
        }
    };
    let mut ticker = options.rate.map(|rate| {
        let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / rate.max(1) as f64));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        ticker
    });
    let window = options.inflight.max(1);
    let mut inflight = FuturesUnordered::new();
    let mut latencies = Vec::with_capacity(options.entries as usize);
    let started = Instant::now();
    let mut next = 0;
    while next < options.entries || !inflight.is_empty() {
        let can_send = next < options.entries && inflight.len() < window;
        tokio::select! {
            biased;
            Some(done) = inflight.next() => latencies.push(done?),
            _ = async {
                if let Some(ticker) = ticker.as_mut() {
                    ticker.tick().await;
                }
            }, if can_send => {
                inflight.push(add(next));
                next += 1;
            }
        }
    }
    let elapsed = started.elapsed();
    latencies.sort_unstable();
    drop(inflight);
    client.close().await;
    Ok(BenchReport {
        entries: options.entries,
        entry_size: options.entry_size,
        elapsed,
        latencies,
    })
}
