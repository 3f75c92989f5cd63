//! `magnetar bookie simpletest`: an end-to-end check of a bookie cluster through the ledger
//! client, as BookKeeper's `shell simpletest`. It creates a ledger on `E` writable bookies,
//! appends `N` entries pipelined (a bounded number in flight, optionally at a fixed rate), closes
//! the ledger, reads every entry back and compares it with what was written, then deletes the
//! ledger. Entries are verifiable by content: each payload starts with its entry id and is filled
//! with a byte derived from it.
//!
//! A bookie failing mid-run is survived the way brokers survive it: by an ensemble change (the
//! report counts them), provided a spare writable bookie is registered.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use serde::Serialize;

use crate::ledger::{LedgerClient, LedgerConfig, LedgerError};

/// Entries per read request batch during verification.
const READ_CHUNK: u64 = 1000;

#[derive(Debug, Clone)]
pub struct SimpletestOptions {
    pub ledger: LedgerConfig,
    pub entries: u64,
    pub entry_size: usize,
    /// Most adds outstanding at once.
    pub inflight: usize,
    /// Adds per second (open loop); `None`: as fast as the window allows.
    pub rate: Option<u64>,
}

/// Written so far, reported about once a second while writing.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    pub acked: u64,
    pub entries: u64,
    /// Acks per second since the previous report.
    pub rate: f64,
}

/// What a run measured.
#[derive(Debug, Clone, Serialize)]
pub struct SimpletestReport {
    pub ledger_id: u64,
    pub entries: u64,
    pub entry_size: usize,
    pub ensemble: usize,
    pub write_quorum: usize,
    pub ack_quorum: usize,
    /// Ensembles of the ledger's fragments, first to last.
    pub ensembles: Vec<Vec<String>>,
    pub ensemble_changes: usize,
    pub write_secs: f64,
    pub adds_per_sec: f64,
    pub write_mb_per_sec: f64,
    pub add_latency_ms: Percentiles,
    pub read_secs: f64,
    pub reads_per_sec: f64,
    pub read_mb_per_sec: f64,
    /// Every entry read back equal to what was written.
    pub verified: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Percentiles {
    pub p50: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

impl Percentiles {
    /// From sorted samples.
    fn of(sorted: &[Duration]) -> Percentiles {
        let at = |q: f64| {
            let index = ((sorted.len().saturating_sub(1)) as f64 * q).round() as usize;
            sorted.get(index).map_or(0.0, |d| d.as_secs_f64() * 1e3)
        };
        Percentiles {
            p50: at(0.5),
            p99: at(0.99),
            p999: at(0.999),
            max: at(1.0),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SimpletestError {
    #[error("{stage}: {source}")]
    Ledger {
        stage: &'static str,
        #[source]
        source: LedgerError,
    },
    #[error("entry {entry_id} of ledger {ledger_id} read back different from what was written")]
    Mismatch { ledger_id: u64, entry_id: u64 },
    #[error("ledger {ledger_id} closed at entry {last_entry_id}, expected {expected}")]
    WrongLength {
        ledger_id: u64,
        last_entry_id: i64,
        expected: i64,
    },
}

fn at(stage: &'static str) -> impl Fn(LedgerError) -> SimpletestError {
    move |source| SimpletestError::Ledger { stage, source }
}

/// The payload of entry `entry_id`: its id (big-endian, as far as it fits), then a fill byte.
pub fn payload(entry_id: u64, size: usize) -> Bytes {
    let mut data = vec![(entry_id % 251) as u8; size];
    let id = entry_id.to_be_bytes();
    let n = size.min(id.len());
    data[..n].copy_from_slice(&id[..n]);
    Bytes::from(data)
}

/// Runs the whole test; `progress` is called about once a second while writing.
pub async fn run(
    ledgers: &LedgerClient,
    options: &SimpletestOptions,
    mut progress: impl FnMut(Progress),
) -> Result<SimpletestReport, SimpletestError> {
    let mut custom = BTreeMap::new();
    custom.insert("application".to_string(), "simpletest".to_string());
    let writer = (ledgers.create(options.ledger, custom).await).map_err(at("creating a ledger"))?;
    let ledger_id = writer.id();
    let mut pacer = options.rate.map(|rate| {
        let mut pacer = tokio::time::interval(Duration::from_secs_f64(1.0 / rate.max(1) as f64));
        pacer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        pacer
    });
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    ticker.tick().await;
    let window = options.inflight.max(1);
    let mut inflight = FuturesUnordered::new();
    let mut latencies = Vec::with_capacity(options.entries as usize);
    let (mut next, mut reported, mut reported_at) = (0u64, 0u64, Instant::now());
    let started = Instant::now();
    while next < options.entries || !inflight.is_empty() {
        let can_send = next < options.entries && inflight.len() < window;
        tokio::select! {
            biased;
            Some(done) = inflight.next() => {
                let (result, latency): (Result<u64, LedgerError>, Duration) = done;
                result.map_err(at("appending"))?;
                latencies.push(latency);
            }
            _ = ticker.tick() => {
                let acked = latencies.len() as u64;
                let rate = (acked - reported) as f64 / reported_at.elapsed().as_secs_f64();
                progress(Progress { acked, entries: options.entries, rate });
                (reported, reported_at) = (acked, Instant::now());
            }
            _ = async {
                if let Some(pacer) = pacer.as_mut() {
                    pacer.tick().await;
                }
            }, if can_send => {
                let add = writer.append(payload(next, options.entry_size));
                let sent = Instant::now();
                inflight.push(async move { (add.await, sent.elapsed()) });
                next += 1;
            }
        }
    }
    let write_elapsed = started.elapsed();
    let fragments = writer.metadata().fragments;
    let last_entry_id = writer.close().await.map_err(at("closing"))?;
    let expected = options.entries as i64 - 1;
    if last_entry_id != expected {
        return Err(SimpletestError::WrongLength {
            ledger_id,
            last_entry_id,
            expected,
        });
    }

    let read_started = Instant::now();
    let reader = ledgers.open(ledger_id).await.map_err(at("opening"))?;
    let mut first = 0;
    while first < options.entries {
        let last = (first + READ_CHUNK).min(options.entries) - 1;
        let entries = reader.read(first, last).await.map_err(at("reading"))?;
        for (entry_id, data) in (first..=last).zip(&entries) {
            if *data != payload(entry_id, options.entry_size) {
                return Err(SimpletestError::Mismatch {
                    ledger_id,
                    entry_id,
                });
            }
        }
        first = last + 1;
    }
    let read_elapsed = read_started.elapsed();
    ledgers.delete(ledger_id).await.map_err(at("deleting"))?;

    latencies.sort_unstable();
    let per_sec = |n: u64, d: Duration| n as f64 / d.as_secs_f64().max(1e-9);
    let mb = |rate: f64| rate * options.entry_size as f64 / 1e6;
    let adds_per_sec = per_sec(options.entries, write_elapsed);
    let reads_per_sec = per_sec(options.entries, read_elapsed);
    Ok(SimpletestReport {
        ledger_id,
        entries: options.entries,
        entry_size: options.entry_size,
        ensemble: options.ledger.ensemble,
        write_quorum: options.ledger.write_quorum,
        ack_quorum: options.ledger.ack_quorum,
        ensemble_changes: fragments.len().saturating_sub(1),
        ensembles: fragments.into_iter().map(|f| f.bookies).collect(),
        write_secs: write_elapsed.as_secs_f64(),
        adds_per_sec,
        write_mb_per_sec: mb(adds_per_sec),
        add_latency_ms: Percentiles::of(&latencies),
        read_secs: read_elapsed.as_secs_f64(),
        reads_per_sec,
        read_mb_per_sec: mb(reads_per_sec),
        verified: true,
    })
}

impl std::fmt::Display for SimpletestReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let l = &self.add_latency_ms;
        writeln!(
            f,
            "ledger {} (E={} Qw={} Qa={}), {} entries of {} B, ensemble changes: {}",
            self.ledger_id,
            self.ensemble,
            self.write_quorum,
            self.ack_quorum,
            self.entries,
            self.entry_size,
            self.ensemble_changes
        )?;
        for (i, ensemble) in self.ensembles.iter().enumerate() {
            writeln!(f, "  fragment {i}: {}", ensemble.join(", "))?;
        }
        writeln!(
            f,
            "write: {:.2} s, {:.0} entries/s, {:.1} MB/s; add latency ms p50 {:.2} p99 {:.2} p99.9 {:.2} max {:.2}",
            self.write_secs, self.adds_per_sec, self.write_mb_per_sec, l.p50, l.p99, l.p999, l.max
        )?;
        write!(
            f,
            "read and verified: {:.2} s, {:.0} entries/s, {:.1} MB/s",
            self.read_secs, self.reads_per_sec, self.read_mb_per_sec
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_carry_their_entry_id() {
        assert_eq!(payload(258, 10)[..8], 258u64.to_be_bytes());
        assert_eq!(payload(258, 10)[8], 7);
        assert_eq!(payload(1, 3).len(), 3);
        assert_ne!(payload(1, 1024), payload(2, 1024));
    }

    #[test]
    fn percentiles_of_sorted_samples() {
        let samples: Vec<Duration> = (1..=1000).map(Duration::from_millis).collect();
        let p = Percentiles::of(&samples);
        assert_eq!((p.p50, p.p99, p.max), (501.0, 990.0, 1000.0));
        assert_eq!(Percentiles::of(&[]).p50, 0.0);
    }
}
