//! A bookie's Prometheus metrics, read at scrape time: journal counters, the fsync latency of
//! group commits, and whether the bookie is read-only. The standalone serves them within the
//! broker's `/metrics`; `magnetar bookie serve` on its own HTTP port (`--http-addr`).

use std::collections::HashMap;

use prometheus::proto::MetricFamily;
use prometheus::{Gauge, Histogram, HistogramOpts, IntCounter, Registry};

use crate::bookie::Bookie;

/// Fsync latency buckets, in seconds: 50 µs to 1 s (a good NVMe disk syncs in ~50–200 µs, a
/// cloud volume in 0.5–5 ms).
const FSYNC_BUCKETS: &[f64] = &[
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
];

/// The journal's write + fdatasync time per group commit.
#[derive(Debug, Clone)]
pub struct FsyncLatency(pub Histogram);

impl Default for FsyncLatency {
    fn default() -> FsyncLatency {
        let opts = HistogramOpts::new(
            "bookie_journal_fsync_latency_seconds",
            "Time to write and fdatasync one journal group commit",
        )
        .buckets(FSYNC_BUCKETS.to_vec());
        FsyncLatency(Histogram::with_opts(opts).expect("fixed, valid histogram options"))
    }
}

/// Every bookie metric, as of now, each series with `labels` (a standalone adds its cluster's).
pub fn families(bookie: &Bookie, labels: &HashMap<String, String>) -> Vec<MetricFamily> {
    let registry = Registry::new_custom(None, Some(labels.clone())).unwrap_or_default();
    let stats = bookie.journal_stats();
    let counters = [
        (
            "bookie_journal_fsyncs_total",
            "Journal fsyncs (group commits)",
            stats.fsyncs,
        ),
        (
            "bookie_journal_adds_total",
            "Entries written to the journal",
            stats.records,
        ),
        (
            "bookie_journal_bytes_total",
            "Bytes written to the journal",
            stats.bytes,
        ),
    ];
    for (name, help, value) in counters {
        if let Ok(counter) = IntCounter::new(name, help) {
            counter.inc_by(value);
            let _ = registry.register(Box::new(counter));
        }
    }
    if let Ok(gauge) = Gauge::new(
        "bookie_read_only",
        "1 while the bookie refuses writes (disk over its usage threshold, or closing)",
    ) {
        gauge.set(f64::from(u8::from(bookie.is_read_only())));
        let _ = registry.register(Box::new(gauge));
    }
    let _ = registry.register(Box::new(bookie.fsync_latency().0.clone()));
    registry.gather()
}
