//! `magnetar perf … --report FILE.html`: one self-contained page (inline SVG and CSS, no script,
//! nothing fetched) with throughput and latency over time, the HDR percentile curve of the
//! whole run, the summary, the settings and the machine.

use std::fmt::Write as _;

use hdrhistogram::Histogram;

/// One reporting interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    /// Seconds since the start, at the end of the interval.
    pub elapsed: f64,
    pub rate: f64,
    pub mb_rate: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
}

/// A finished run, as the page shows it.
#[derive(Debug, Clone)]
pub struct Run {
    /// "produced" or "consumed".
    pub what: String,
    /// "publish" or "end-to-end".
    pub latency_kind: String,
    pub points: Vec<Point>,
    /// Latencies of the whole run, in microseconds.
    pub total: Histogram<u64>,
    pub elapsed: f64,
    pub messages: u64,
    pub rate: f64,
    pub mb_rate: f64,
    pub errors: u64,
}

const WIDTH: f64 = 760.0;
const HEIGHT: f64 = 300.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 36.0;
const TOP: f64 = 30.0;
const BOTTOM: f64 = 45.0;
const COLORS: [&str; 3] = ["#2563eb", "#dc2626", "#16a34a"];

/// The page for `run`, started with `command` (the arguments as typed) on this machine.
pub fn render(run: &Run, command: &str, machine: &[(String, String)], started_utc: &str) -> String {
    let mut page = String::new();
    let title = format!("magnetar perf: {} {}", run.what, started_utc);
    let _ = write!(
        page,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title>\n\
         <style>body{{font-family:system-ui,sans-serif;margin:2em;color:#111;max-width:820px}}\
         table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #ccc;padding:4px 10px;text-align:left}}\
         th{{background:#f3f4f6}}code{{background:#f3f4f6;padding:2px 4px}}svg{{margin:1em 0}}\
         .n{{text-align:right;font-variant-numeric:tabular-nums}}</style></head><body>\n<h1>{}</h1>\n",
        escape(&title),
        escape(&title)
    );
    let _ = writeln!(page, "<p><code>{}</code></p>", escape(command));
    page.push_str("<h2>Summary</h2>\n<table>\n");
    let ms = |q: f64| run.total.value_at_quantile(q) as f64 / 1000.0;
    let rows = [
        ("messages", format!("{}", run.messages)),
        ("duration", format!("{:.1} s", run.elapsed)),
        (
            "throughput",
            format!("{:.0} msg/s, {:.2} MB/s", run.rate, run.mb_rate),
        ),
        ("errors", format!("{}", run.errors)),
        (
            "latency",
            format!(
                "{}: p50 {:.3} ms, p99 {:.3} ms, p99.9 {:.3} ms, max {:.3} ms ({} samples)",
                run.latency_kind,
                ms(0.5),
                ms(0.99),
                ms(0.999),
                run.total.max() as f64 / 1000.0,
                run.total.len()
            ),
        ),
    ];
    for (name, value) in rows {
        let _ = writeln!(page, "<tr><th>{name}</th><td>{}</td></tr>", escape(&value));
    }
    page.push_str("</table>\n<h2>Throughput</h2>\n");
    let rate: Vec<(f64, f64)> = run.points.iter().map(|p| (p.elapsed, p.rate)).collect();
    page.push_str(&chart(
        "messages per second",
        "seconds",
        "msg/s",
        &[("msg/s", rate)],
        Axis::Linear,
    ));
    let _ = writeln!(
        page,
        "<h2>{} latency over time</h2>",
        escape(&capitalize(&run.latency_kind))
    );
    let pick = |f: fn(&Point) -> f64| -> Vec<(f64, f64)> {
        run.points.iter().map(|p| (p.elapsed, f(p))).collect()
    };
    page.push_str(&chart(
        "latency per interval",
        "seconds",
        "ms",
        &[
            ("p50", pick(|p| p.p50_ms)),
            ("p99", pick(|p| p.p99_ms)),
            ("p99.9", pick(|p| p.p999_ms)),
        ],
        Axis::Linear,
    ));
    page.push_str("<h2>Latency by percentile (whole run)</h2>\n");
    page.push_str(&chart(
        "HDR percentile distribution",
        "percentile",
        "ms",
        &[("latency", percentile_curve(&run.total))],
        Axis::Percentile,
    ));
    page.push_str("<table><tr><th>percentile</th><th class=\"n\">ms</th></tr>\n");
    for q in [0.5, 0.75, 0.9, 0.95, 0.99, 0.999, 0.9999, 1.0] {
        let _ = writeln!(
            page,
            "<tr><td>{}</td><td class=\"n\">{:.3}</td></tr>",
            percent(q),
            ms(q)
        );
    }
    page.push_str("</table>\n<h2>Machine</h2>\n<table>\n");
    for (name, value) in machine {
        let _ = writeln!(
            page,
            "<tr><th>{}</th><td>{}</td></tr>",
            escape(name),
            escape(value)
        );
    }
    page.push_str("</table>\n</body></html>\n");
    page
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Axis {
    Linear,
    /// x is a quantile q, drawn at −log10(1 − q): 0%, 90%, 99%, 99.9%… equally spaced.
    Percentile,
}

/// The HDR curve: latency (ms) at quantiles up to 99.999%, x as −log10(1 − q).
fn percentile_curve(h: &Histogram<u64>) -> Vec<(f64, f64)> {
    if h.is_empty() {
        return Vec::new();
    }
    (0..=100)
        .map(|k| {
            let x = f64::from(k) / 20.0; // up to 5 nines
            let q = 1.0 - 10f64.powf(-x);
            (x, h.value_at_quantile(q) as f64 / 1000.0)
        })
        .collect()
}

fn chart(
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[(&str, Vec<(f64, f64)>)],
    axis: Axis,
) -> String {
    let points = series.iter().flat_map(|(_, s)| s.iter());
    let (mut x_max, mut y_max) = (0f64, 0f64);
    for &(x, y) in points {
        x_max = x_max.max(x);
        y_max = y_max.max(y);
    }
    let x_max = if axis == Axis::Percentile {
        5.0
    } else {
        nice(x_max)
    };
    let y_max = nice(y_max);
    let (w, h) = (WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM);
    let sx = |x: f64| LEFT + x / x_max * w;
    let sy = |y: f64| TOP + h - y / y_max * h;
    let mut svg = String::new();
    let _ = write!(
        svg,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{HEIGHT}\" \
         viewBox=\"0 0 {WIDTH} {HEIGHT}\" role=\"img\" aria-label=\"{}\">\n\
         <rect x=\"{LEFT}\" y=\"{TOP}\" width=\"{w}\" height=\"{h}\" fill=\"#fafafa\" stroke=\"#999\"/>\n",
        escape(title)
    );
    for i in 0..=5 {
        let y = y_max * f64::from(i) / 5.0;
        let _ = writeln!(
            svg,
            "<line x1=\"{LEFT}\" x2=\"{:.1}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"#e5e7eb\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"end\">{}</text>",
            LEFT + w,
            LEFT - 6.0,
            sy(y) + 4.0,
            short(y),
            y = sy(y)
        );
    }
    for i in 0..=5 {
        let x = x_max * f64::from(i) / 5.0;
        let label = match axis {
            Axis::Linear => short(x),
            Axis::Percentile => percent(1.0 - 10f64.powf(-x)),
        };
        let _ = writeln!(
            svg,
            "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"middle\">{}</text>",
            sx(x),
            TOP + h + 16.0,
            escape(&label)
        );
    }
    let _ = write!(
        svg,
        "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"12\" text-anchor=\"middle\">{}</text>\n\
         <text x=\"14\" y=\"{:.1}\" font-size=\"12\" text-anchor=\"middle\" transform=\"rotate(-90 14 {:.1})\">{}</text>\n",
        LEFT + w / 2.0,
        HEIGHT - 8.0,
        escape(x_label),
        TOP + h / 2.0,
        TOP + h / 2.0,
        escape(y_label)
    );
    for (i, (name, data)) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let path: Vec<String> = data
            .iter()
            .map(|&(x, y)| format!("{:.1},{:.1}", sx(x), sy(y)))
            .collect();
        if !path.is_empty() {
            let _ = writeln!(
                svg,
                "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"2\" points=\"{}\"/>",
                path.join(" ")
            );
        }
        let lx = LEFT + 10.0 + 90.0 * i as f64;
        let _ = writeln!(
            svg,
            "<rect x=\"{lx:.1}\" y=\"8\" width=\"12\" height=\"12\" fill=\"{color}\"/>\
             <text x=\"{:.1}\" y=\"18\" font-size=\"12\">{}</text>",
            lx + 16.0,
            escape(name)
        );
    }
    svg.push_str("</svg>\n");
    svg
}

/// The next "round" number at or above `v` (1, 2, 5 × 10^k); 1 for nothing.
fn nice(v: f64) -> f64 {
    if v <= 0.0 || !v.is_finite() {
        return 1.0;
    }
    let magnitude = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * magnitude)
        .find(|c| *c >= v)
        .unwrap_or(10.0 * magnitude)
}

fn short(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.0}k", v / 1e3)
    } else if v >= 10.0 || v == 0.0 {
        format!("{v:.0}")
    } else {
        let text = format!("{v:.2}");
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

fn percent(q: f64) -> String {
    let text = format!("{:.5}", q * 100.0);
    let text = text.trim_end_matches('0').trim_end_matches('.');
    format!("{text}%")
}

fn capitalize(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) => c.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// What the page says about this machine: CPUs, model, memory, kernel, host.
pub fn machine() -> Vec<(String, String)> {
    let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
    let cpuinfo = read("/proc/cpuinfo");
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map_or("unknown".to_string(), |m| m.trim().to_string());
    let memory = read("/proc/meminfo")
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or("unknown".to_string(), |kb| {
            format!("{:.1} GiB", kb / 1024.0 / 1024.0)
        });
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    vec![
        ("CPUs".into(), cpus.to_string()),
        ("CPU model".into(), model),
        ("memory".into(), memory),
        (
            "kernel".into(),
            read("/proc/sys/kernel/osrelease").trim().to_string(),
        ),
        (
            "host".into(),
            read("/proc/sys/kernel/hostname").trim().to_string(),
        ),
        ("magnetar".into(), env!("CARGO_PKG_VERSION").to_string()),
    ]
}

/// `YYYY-MM-DD HH:MM:SS UTC` for a time since the epoch.
pub fn utc(since_epoch: std::time::Duration) -> String {
    let secs = since_epoch.as_secs();
    let (days, rest) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run() -> Run {
        let mut total = Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("bounds");
        for micros in 1..=10_000u64 {
            total.record(micros * 10).expect("in range");
        }
        Run {
            what: "produced".into(),
            latency_kind: "publish".into(),
            points: (1..=5)
                .map(|i| Point {
                    elapsed: 2.0 * f64::from(i),
                    rate: 1000.0 * f64::from(i),
                    mb_rate: 0.1,
                    p50_ms: 1.0,
                    p99_ms: 5.0,
                    p999_ms: 9.0,
                })
                .collect(),
            total,
            elapsed: 10.0,
            messages: 10_000,
            rate: 1000.0,
            mb_rate: 0.1,
            errors: 0,
        }
    }

    #[test]
    fn the_page_is_self_contained_and_shows_every_part() {
        let page = render(
            &run(),
            "magnetar perf produce t --report r.html <script>",
            &machine(),
            &utc(std::time::Duration::from_secs(1_780_000_000)),
        );
        assert!(page.starts_with("<!DOCTYPE html>"));
        assert_eq!(page.matches("<svg").count(), 3, "three charts");
        assert_eq!(page.matches("<polyline").count(), 5, "1 + 3 + 1 series");
        for part in [
            "Summary",
            "Throughput",
            "percentile",
            "Machine",
            "CPUs",
            "99.99%",
        ] {
            assert!(page.contains(part), "{part}");
        }
        assert!(
            !page.contains("<script"),
            "arguments are escaped, nothing runs"
        );
        assert!(
            !page.contains("http://") || !page.contains("src="),
            "nothing fetched"
        );
        assert!(page.contains("&lt;script&gt;"));
    }

    #[test]
    fn axes_round_up_and_dates_are_civil() {
        assert_eq!(nice(0.0), 1.0);
        assert_eq!(nice(730.0), 1000.0);
        assert_eq!(nice(0.031), 0.05);
        assert_eq!(percent(0.999), "99.9%");
        assert_eq!(percent(1.0 - 10f64.powf(-5.0)), "99.999%");
        assert_eq!(utc(std::time::Duration::ZERO), "1970-01-01 00:00:00 UTC");
        assert_eq!(
            utc(std::time::Duration::from_secs(1_796_515_200)),
            "2026-12-06 00:00:00 UTC"
        );
    }
}
