//! `magnetar perf`: load generators in the manner of `pulsar-perf`. `produce` publishes at a
//! rate (or as fast as receipts allow) and reports publish latency; `consume` reports
//! throughput and end-to-end latency (from each message's publish time), and drains a backlog
//! to measure catch-up; `topics` holds many idle topics open to measure broker memory.
//! Every two seconds a line of figures, then a summary; `--json` prints them as JSON lines.

mod consume;
pub mod html;
mod produce;
mod topics;

use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};
use tokio_util::sync::CancellationToken;

use hdrhistogram::Histogram;

pub use consume::ConsumeArgs;
pub use html::Run;
pub use produce::ProduceArgs;
pub use topics::TopicsArgs;

const REPORT_EVERY: Duration = Duration::from_secs(2);

#[derive(Debug, Args)]
pub struct PerfArgs {
    /// The broker's Pulsar protocol URL.
    #[arg(
        long,
        env = "MAGNETAR_SERVICE_URL",
        default_value = "pulsar://127.0.0.1:6650",
        global = true
    )]
    pub service_url: String,
    /// Print JSON lines instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    /// Also write a self-contained HTML report (throughput and latency over time, the
    /// percentile curve, settings, machine) of `produce` or `consume` to this file.
    #[arg(long, global = true, value_name = "FILE")]
    pub report: Option<PathBuf>,
    #[command(subcommand)]
    pub command: PerfCommand,
}

#[derive(Debug, Subcommand)]
pub enum PerfCommand {
    /// Publish load; report throughput and publish latency.
    Produce(ProduceArgs),
    /// Consume load; report throughput and end-to-end latency.
    Consume(ConsumeArgs),
    /// Create many topics, each with one producer, and keep them idle (broker memory).
    Topics(TopicsArgs),
}

pub async fn run(args: PerfArgs) -> anyhow::Result<()> {
    let stop = CancellationToken::new();
    let on_signal = stop.clone();
    let signal = tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        on_signal.cancel();
    });
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let result = match args.command {
        PerfCommand::Produce(p) => produce::run(&args.service_url, p, args.json, stop)
            .await
            .map(Some),
        PerfCommand::Consume(c) => consume::run(&args.service_url, c, args.json, stop)
            .await
            .map(Some),
        PerfCommand::Topics(t) => {
            if args.report.is_some() {
                anyhow::bail!("--report is for `perf produce` and `perf consume`");
            }
            topics::run(&args.service_url, t, stop).await.map(|()| None)
        }
    };
    signal.abort();
    if let (Some(path), Ok(Some(run))) = (&args.report, &result) {
        let mut words: Vec<String> = std::env::args().collect();
        if let Some(program) = words.first_mut() {
            // The program's name, not where it happens to be installed.
            if let Some(name) = std::path::Path::new(program.as_str()).file_name() {
                *program = name.to_string_lossy().into_owned();
            }
        }
        let command = words.join(" ");
        let page = html::render(run, &command, &html::machine(), &html::utc(started));
        std::fs::write(path, page)
            .map_err(|e| anyhow::anyhow!("writing the report {}: {e}", path.display()))?;
        if !args.json {
            println!("Report: {}", path.display());
        }
    }
    result.map(|_| ())
}

/// `name` for one topic, `name-0` … `name-{n-1}` for several.
pub(crate) fn topic_names(base: &str, n: usize) -> Vec<String> {
    if n <= 1 {
        vec![base.to_string()]
    } else {
        (0..n).map(|i| format!("{base}-{i}")).collect()
    }
}

/// Counters and latencies shared by the load tasks and the reporter.
#[derive(Debug)]
pub(crate) struct Stats {
    messages: AtomicU64,
    bytes: AtomicU64,
    errors: AtomicU64,
    /// (since the last report, since the start), in microseconds.
    latency: Mutex<(Histogram<u64>, Histogram<u64>)>,
}

/// The largest latency a histogram tells apart, in microseconds (an hour); longer ones count as
/// an hour.
const LATENCY_BOUND_MICROS: u64 = 3_600_000_000;

/// Microseconds, 1 µs to an hour, with three significant figures. The bounds are fixed: with an
/// auto-resizing histogram `saturating_record` clamps to the initial 2,047 µs instead of growing.
fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, LATENCY_BOUND_MICROS, 3).expect("valid histogram bounds")
}

impl Default for Stats {
    fn default() -> Stats {
        Stats {
            messages: AtomicU64::default(),
            bytes: AtomicU64::default(),
            errors: AtomicU64::default(),
            latency: Mutex::new((histogram(), histogram())),
        }
    }
}

impl Stats {
    pub(crate) fn record(&self, bytes: usize, latency: Duration) {
        self.messages.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
        let micros = latency.as_micros() as u64;
        let mut h = self.latency.lock().unwrap_or_else(|p| p.into_inner());
        h.0.saturating_record(micros);
        h.1.saturating_record(micros);
    }

    pub(crate) fn error(&self) {
        self.errors.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn messages(&self) -> u64 {
        self.messages.load(Ordering::Relaxed)
    }
}

/// Prints a line every [`REPORT_EVERY`] until `stop`, then the summary.
pub(crate) async fn report(
    stats: &Stats,
    what: &str,
    latency_kind: &str,
    json: bool,
    stop: CancellationToken,
) -> Run {
    let start = Instant::now();
    let mut points = Vec::new();
    let mut ticker =
        tokio::time::interval_at(tokio::time::Instant::now() + REPORT_EVERY, REPORT_EVERY);
    let (mut last_messages, mut last_bytes, mut last_at) = (0, 0, start);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stop.cancelled() => break,
        }
        let (messages, bytes) = (stats.messages(), stats.bytes.load(Ordering::Relaxed));
        let secs = last_at.elapsed().as_secs_f64();
        let interval = {
            let mut h = stats.latency.lock().unwrap_or_else(|p| p.into_inner());
            std::mem::replace(&mut h.0, histogram())
        };
        let line = Figures {
            what,
            latency_kind,
            elapsed: start.elapsed().as_secs_f64(),
            messages: messages - last_messages,
            rate: (messages - last_messages) as f64 / secs,
            mb_rate: (bytes - last_bytes) as f64 / secs / 1e6,
            errors: stats.errors.load(Ordering::Relaxed),
            latency: &interval,
        };
        line.print(json, false);
        points.push(line.point());
        (last_messages, last_bytes, last_at) = (messages, bytes, Instant::now());
    }
    let total = stats
        .latency
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .1
        .clone();
    let secs = start.elapsed().as_secs_f64();
    let messages = stats.messages();
    let summary = Figures {
        what,
        latency_kind,
        elapsed: secs,
        messages,
        rate: messages as f64 / secs,
        mb_rate: stats.bytes.load(Ordering::Relaxed) as f64 / secs / 1e6,
        errors: stats.errors.load(Ordering::Relaxed),
        latency: &total,
    };
    summary.print(json, true);
    Run {
        what: what.to_string(),
        latency_kind: latency_kind.to_string(),
        points,
        elapsed: summary.elapsed,
        messages,
        rate: summary.rate,
        mb_rate: summary.mb_rate,
        errors: summary.errors,
        total: total.clone(),
    }
}

struct Figures<'a> {
    what: &'a str,
    latency_kind: &'a str,
    elapsed: f64,
    messages: u64,
    rate: f64,
    mb_rate: f64,
    errors: u64,
    latency: &'a Histogram<u64>,
}

impl Figures<'_> {
    fn point(&self) -> html::Point {
        let ms = |q: f64| self.latency.value_at_quantile(q) as f64 / 1000.0;
        html::Point {
            elapsed: self.elapsed,
            rate: self.rate,
            mb_rate: self.mb_rate,
            p50_ms: ms(0.5),
            p99_ms: ms(0.99),
            p999_ms: ms(0.999),
        }
    }

    fn print(&self, json: bool, summary: bool) {
        let ms = |q: f64| self.latency.value_at_quantile(q) as f64 / 1000.0;
        if json {
            let value = serde_json::json!({
                "summary": summary,
                "what": self.what,
                "elapsed_s": round(self.elapsed),
                "messages": self.messages,
                "msg_per_s": round(self.rate),
                "mb_per_s": round(self.mb_rate),
                "errors": self.errors,
                "latency": self.latency_kind,
                "latency_samples": self.latency.len(),
                "p50_ms": ms(0.5),
                "p99_ms": ms(0.99),
                "p999_ms": ms(0.999),
                "max_ms": self.latency.max() as f64 / 1000.0,
            });
            println!("{value}");
            return;
        }
        let prefix = if summary {
            "Summary:".to_string()
        } else {
            format!("[{:>6.1}s]", self.elapsed)
        };
        println!(
            "{prefix} {} {:>10.0} msg/s {:>8.2} MB/s | {} latency ms p50 {:.2} p99 {:.2} p99.9 {:.2} max {:.2}{}{}",
            self.what,
            self.rate,
            self.mb_rate,
            self.latency_kind,
            ms(0.5),
            ms(0.99),
            ms(0.999),
            self.latency.max() as f64 / 1000.0,
            if summary {
                format!(" | {} messages in {:.1}s", self.messages, self.elapsed)
            } else {
                String::new()
            },
            if self.errors > 0 {
                format!(" | {} errors", self.errors)
            } else {
                String::new()
            },
        );
    }
}

fn round(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latencies_beyond_two_milliseconds_keep_their_size() {
        let stats = Stats::default();
        for ms in [1, 3, 500, 90_000] {
            stats.record(100, Duration::from_millis(ms));
        }
        let h = &stats.latency.lock().expect("not poisoned").1;
        assert_eq!(h.len(), 4);
        let near = |got: u64, want: u64| got.abs_diff(want) * 1000 <= want;
        assert!(near(h.value_at_quantile(0.25), 1_000));
        assert!(near(h.value_at_quantile(0.5), 3_000));
        assert!(near(h.value_at_quantile(0.75), 500_000));
        assert!(near(h.max(), 90_000_000));
        assert_eq!(stats.messages(), 4);
    }

    #[test]
    fn latencies_past_the_bound_count_as_the_bound() {
        let stats = Stats::default();
        stats.record(1, Duration::from_secs(10 * 3600));
        let h = &stats.latency.lock().expect("not poisoned").1;
        assert!(h.max().abs_diff(LATENCY_BOUND_MICROS) * 1000 <= LATENCY_BOUND_MICROS);
    }
}
