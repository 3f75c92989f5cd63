//! `magnetar-fuzz [TARGET|all] [--iterations N] [--seed S] [--json]`: fuzzes one target or all
//! of them, one after the other, and prints per target the inputs run, inputs per second, the
//! corpus size, the crashes and the slowest input. Exits 1 if anything crashed.
//! `--reproduce FILE` runs one crash file with the panic printed in full.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Parser;
use magnetar_fuzz::engine::{self, RunOptions};
use magnetar_fuzz::targets;
use serde_json::json;

#[derive(Debug, Parser)]
#[command(
    name = "magnetar-fuzz",
    about = "Fuzz Magnetar's decoders, auth and REST router"
)]
struct Args {
    /// A target name, or `all`.
    #[arg(default_value = "all")]
    target: String,
    /// Inputs per target, seeds included.
    #[arg(long, default_value_t = 100_000)]
    iterations: u64,
    /// Seed of the mutation engine: the same seed repeats the same run.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Prints the results as one JSON document.
    #[arg(long)]
    json: bool,
    /// Where crash inputs are written (default: fuzz/crashes of this checkout).
    #[arg(long)]
    crash_dir: Option<PathBuf>,
    /// Largest single allocation one input may cause, in MiB.
    #[arg(long, default_value_t = 64)]
    alloc_limit_mib: usize,
    /// Prints progress to stderr every this many seconds (0: never).
    #[arg(long, default_value_t = 30)]
    progress_secs: u64,
    /// Runs one input file against TARGET instead of fuzzing.
    #[arg(long)]
    reproduce: Option<PathBuf>,
    /// Lists the targets.
    #[arg(long)]
    list: bool,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.list {
        for name in targets::NAMES {
            println!("{name}");
        }
        return Ok(());
    }
    let alloc_limit = args.alloc_limit_mib << 20;
    if let Some(file) = &args.reproduce {
        let input = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
        let mut target = targets::by_name(&args.target)?
            .with_context(|| format!("no target {:?} (try --list)", args.target))?;
        return match engine::reproduce(target.as_mut(), &input, alloc_limit) {
            Ok(()) => {
                println!("{}: no crash", args.target);
                Ok(())
            }
            Err(crash) => {
                println!("{}: {:?}: {}", args.target, crash.kind, crash.message);
                std::process::exit(1);
            }
        };
    }
    let names: Vec<&str> = if args.target == "all" {
        targets::NAMES.to_vec()
    } else if targets::NAMES.contains(&args.target.as_str()) {
        vec![args.target.as_str()]
    } else {
        bail!(
            "no target {:?}; targets: all, {}",
            args.target,
            targets::NAMES.join(", ")
        );
    };
    let mut options = RunOptions::new(args.iterations, args.seed);
    options.alloc_limit = alloc_limit;
    if let Some(dir) = args.crash_dir {
        options.crash_dir = dir;
    }
    options.progress = (args.progress_secs > 0).then(|| Duration::from_secs(args.progress_secs));
    let mut reports = Vec::new();
    for name in names {
        let mut target = targets::by_name(name)?.context("listed target")?;
        let report = engine::run(target.as_mut(), &options);
        if !args.json {
            println!(
                "{:<14} {:>11} inputs {:>9.0}/s {:>8.1}s  corpus {:>5}  crashes {:>2}  slowest {:>8.1?}  largest alloc {} KiB",
                report.target,
                report.iterations,
                report.inputs_per_second(),
                report.seconds,
                report.corpus,
                report.crashes.len(),
                report.slowest,
                report.largest_allocation >> 10,
            );
        }
        reports.push(report);
    }
    let crashed = reports.iter().any(|r| !r.crashes.is_empty());
    if args.json {
        let results: Vec<_> = reports
            .iter()
            .map(|r| {
                json!({
                    "target": r.target,
                    "iterations": r.iterations,
                    "seconds": r.seconds,
                    "inputs_per_second": r.inputs_per_second(),
                    "corpus": r.corpus,
                    "signals": r.signals,
                    "crashes": r.crashes.iter().map(|c| json!({
                        "kind": format!("{:?}", c.kind),
                        "message": c.message,
                        "file": c.file.as_ref().map(|f| f.display().to_string()),
                    })).collect::<Vec<_>>(),
                    "crashing_inputs": r.crashing_inputs,
                    "slowest_ms": r.slowest.as_secs_f64() * 1000.0,
                    "largest_allocation": r.largest_allocation,
                })
            })
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({ "seed": args.seed, "results": results }))?
        );
    }
    if crashed {
        std::process::exit(1);
    }
    Ok(())
}
