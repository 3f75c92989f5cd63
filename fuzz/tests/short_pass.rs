//! The CI pass: every target for a bounded number of inputs, zero crashes. Steps:
//! 1. for each target, build it (`rest` starts a one-node metadata group);
//! 2. run its seeds and then mutants for its budget (together well under a minute in release
//!    on a 2-core machine);
//! 3. fail with the crash messages and files if any input panicked, was slow or allocated too
//!    much at once.

use magnetar_fuzz::engine::{self, RunOptions};
use magnetar_fuzz::targets;

/// Inputs per target (a few seconds each in release): the router, which goes through Raft,
/// gets fewer.
fn budget(target: &str) -> u64 {
    match target {
        "rest" => 40_000,
        "compression" | "token" | "topic_name" => 300_000,
        _ => 400_000,
    }
}

#[test]
fn every_target_runs_clean_for_a_short_while() {
    let mut failures = Vec::new();
    for name in targets::NAMES {
        let mut target = targets::by_name(name)
            .unwrap_or_else(|e| panic!("{name}: {e:#}"))
            .expect("a listed target");
        let options = RunOptions::new(budget(name), 20_260_101);
        let report = engine::run(target.as_mut(), &options);
        eprintln!(
            "{name}: {} inputs in {:.1}s, corpus {}, crashes {}",
            report.iterations,
            report.seconds,
            report.corpus,
            report.crashes.len()
        );
        for crash in report.crashes {
            failures.push(format!(
                "{name}: {:?}: {} (input: {:?})",
                crash.kind, crash.message, crash.file
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
