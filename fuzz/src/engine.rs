//! The fuzzing loop: a corpus of inputs (the target's seeds, plus every mutant whose outcome
//! signature was new), mutation of a random entry, one run of the target per input under
//! `catch_unwind`, a time limit and an allocation limit, and crash files to reproduce from.
//!
//! There is no coverage instrumentation (that needs nightly): what decides whether a mutant
//! joins the corpus is its [`Signal`], a hash of what the target says it did (which decoder
//! stage it reached, which error variant, which message kind) and of its length bucket.

use std::collections::{HashMap, HashSet};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Once, PoisonError};
use std::time::{Duration, Instant};

use crate::alloc_limit;
use crate::mutate::mutate;
use crate::rng::{Rng, fnv1a};

/// What a run of a target did, as far as the corpus cares: a hash of a kind name and details.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Signal(u64);

impl Signal {
    pub fn new(kind: &str) -> Signal {
        Signal(fnv1a(kind.as_bytes()))
    }

    /// Mixes in a detail (an error variant, a count bucket, a command type…).
    pub fn with(self, detail: impl AsRef<[u8]>) -> Signal {
        let mut bytes = self.0.to_le_bytes().to_vec();
        bytes.extend_from_slice(detail.as_ref());
        Signal(fnv1a(&bytes))
    }

    pub fn with_num(self, n: u64) -> Signal {
        self.with(n.to_le_bytes())
    }

    /// Mixes in the variant name of an error (its `Debug` up to the first field).
    pub fn with_variant(self, error: &impl std::fmt::Debug) -> Signal {
        self.with(variant_name(error))
    }
}

/// `Malformed("…")` → `Malformed`; `TooLarge { .. }` → `TooLarge`. Formats only the first
/// characters of the `Debug` output (the writer refuses the rest), so large values cost little.
pub fn variant_name(value: &impl std::fmt::Debug) -> String {
    use std::fmt::Write as _;

    struct Name(String);

    impl std::fmt::Write for Name {
        fn write_str(&mut self, s: &str) -> std::fmt::Result {
            for c in s.chars() {
                if !(c.is_alphanumeric() || c == '_') || self.0.len() >= 64 {
                    return Err(std::fmt::Error);
                }
                self.0.push(c);
            }
            Ok(())
        }
    }

    let mut name = Name(String::new());
    let _ = write!(name, "{value:?}");
    name.0
}

/// A bucket of a length: 0, 1, 2–3, 4–7, … (its bit length).
pub fn len_bucket(len: usize) -> u64 {
    u64::from(usize::BITS - len.leading_zeros())
}

/// One thing a fuzz target checks. `run` must not panic, must return within
/// [`time_limit`](Target::time_limit) and must not allocate more than the engine's limit at once;
/// invariant violations are reported by panicking.
pub trait Target: Send {
    fn name(&self) -> &'static str;
    /// Where the corpus starts: valid and near-valid inputs in this target's layout.
    fn seeds(&mut self) -> Vec<Vec<u8>>;
    fn run(&mut self, input: &[u8]) -> Signal;
    /// Longest input the mutator makes.
    fn max_len(&self) -> usize {
        4096
    }
    /// An input slower than this is a finding.
    fn time_limit(&self) -> Duration {
        Duration::from_secs(1)
    }
    /// Whether the allocation limit applies (off where other threads do the target's work).
    fn watch_allocations(&self) -> bool {
        true
    }
}

#[derive(Debug, Clone)]
pub struct RunOptions {
    pub iterations: u64,
    pub seed: u64,
    pub crash_dir: PathBuf,
    /// Largest single allocation one input may cause.
    pub alloc_limit: usize,
    pub max_corpus: usize,
    /// Prints a progress line to stderr this often.
    pub progress: Option<Duration>,
}

impl RunOptions {
    pub fn new(iterations: u64, seed: u64) -> RunOptions {
        RunOptions {
            iterations,
            seed,
            crash_dir: default_crash_dir(),
            alloc_limit: 64 << 20,
            max_corpus: 4096,
            progress: None,
        }
    }
}

/// `fuzz/crashes` of the checkout being run (cargo sets `CARGO_MANIFEST_DIR` for `cargo run`
/// and `cargo test`), else of the checkout this binary was built from.
pub fn default_crash_dir() -> PathBuf {
    let dir =
        std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into());
    Path::new(&dir).join("crashes")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashKind {
    Panic,
    Slow,
    Allocation,
}

#[derive(Debug, Clone)]
pub struct Crash {
    pub kind: CrashKind,
    pub message: String,
    /// Where the input was written (None if writing failed).
    pub file: Option<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct Report {
    pub target: &'static str,
    pub iterations: u64,
    pub seconds: f64,
    pub corpus: usize,
    pub signals: usize,
    /// Distinct crashes (by kind and panic location), each with one input written.
    pub crashes: Vec<Crash>,
    /// Inputs that crashed, duplicates included.
    pub crashing_inputs: u64,
    pub slowest: Duration,
    pub largest_allocation: usize,
}

impl Report {
    pub fn inputs_per_second(&self) -> f64 {
        if self.seconds > 0.0 {
            self.iterations as f64 / self.seconds
        } else {
            0.0
        }
    }
}

// --- panics --------------------------------------------------------------------------------

static LAST_PANIC: Mutex<Option<String>> = Mutex::new(None);
static QUIET_PANICS: AtomicBool = AtomicBool::new(false);
static HOOK: Once = Once::new();

/// Records every panic's message and location for the report; prints it only when not quiet
/// (fuzzing panics thousands of times on purpose, reproducing wants the full story).
fn install_panic_hook() {
    HOOK.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let mut last = LAST_PANIC.lock().unwrap_or_else(PoisonError::into_inner);
            *last = Some(info.to_string());
            drop(last);
            if !QUIET_PANICS.load(Ordering::Relaxed) {
                default(info);
            }
        }));
    });
}

fn take_panic() -> String {
    LAST_PANIC
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .take()
        .unwrap_or_else(|| "panic without a message".into())
}

// --- hangs ---------------------------------------------------------------------------------

/// What the watchdog sees: the input being run and since when.
#[derive(Debug, Default)]
struct Current {
    input: Vec<u8>,
    since: Option<Instant>,
}

/// A thread that ends the process when one input runs for `limit` (a true hang cannot be
/// interrupted), after writing that input as a crash file.
struct Watchdog {
    current: Arc<Mutex<Current>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Watchdog {
    fn start(target: &'static str, limit: Duration, crash_dir: PathBuf) -> Watchdog {
        let current = Arc::new(Mutex::new(Current::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let current = current.clone();
            let stop = stop.clone();
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(100));
                    let current = current.lock().unwrap_or_else(PoisonError::into_inner);
                    if current.since.is_some_and(|since| since.elapsed() > limit) {
                        let file = write_crash(&crash_dir, target, "hang", &current.input);
                        eprintln!(
                            "magnetar-fuzz: {target}: an input has run for over {limit:?}; stopping"
                        );
                        print_reproduce(target, file.as_deref());
                        std::process::exit(3);
                    }
                }
            })
        };
        Watchdog {
            current,
            stop,
            thread: Some(thread),
        }
    }

    fn begin(&self, input: &[u8]) {
        let mut current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        current.input.clear();
        current.input.extend_from_slice(input);
        current.since = Some(Instant::now());
    }

    fn end(&self) {
        self.current
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .since = None;
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

// --- crash files ---------------------------------------------------------------------------

fn write_crash(dir: &Path, target: &str, kind: &str, input: &[u8]) -> Option<PathBuf> {
    let suffix = if kind == "panic" {
        String::new()
    } else {
        format!("-{kind}")
    };
    let path = dir.join(format!("{target}-{:016x}{suffix}.bin", fnv1a(input)));
    std::fs::create_dir_all(dir).ok()?;
    std::fs::write(&path, input).ok()?;
    Some(path)
}

fn print_reproduce(target: &str, file: Option<&Path>) {
    match file {
        Some(file) => eprintln!(
            "  reproduce: scripts/fuzz {target} --reproduce {}",
            file.display()
        ),
        None => eprintln!("  (the input could not be written)"),
    }
}

// --- running -------------------------------------------------------------------------------

/// The result of one input.
enum Outcome {
    Ok(Signal),
    Crash { kind: CrashKind, message: String },
}

/// Runs one input; panics are printed only when `verbose` (fuzzing panics on purpose).
fn execute(
    target: &mut dyn Target,
    input: &[u8],
    alloc_limit: usize,
    watchdog: Option<&Watchdog>,
    verbose: bool,
) -> (Outcome, Duration, usize) {
    if let Some(w) = watchdog {
        w.begin(input);
    }
    QUIET_PANICS.store(!verbose, Ordering::Relaxed);
    let watch_alloc = target.watch_allocations();
    if watch_alloc {
        alloc_limit::arm();
    }
    let start = Instant::now();
    let result = catch_unwind(AssertUnwindSafe(|| target.run(input)));
    let elapsed = start.elapsed();
    QUIET_PANICS.store(false, Ordering::Relaxed);
    let peak = if watch_alloc {
        alloc_limit::disarm()
    } else {
        0
    };
    if let Some(w) = watchdog {
        w.end();
    }
    let outcome = match result {
        Err(_) => Outcome::Crash {
            kind: CrashKind::Panic,
            message: take_panic(),
        },
        Ok(_) if elapsed > target.time_limit() => Outcome::Crash {
            kind: CrashKind::Slow,
            message: format!(
                "input took {elapsed:?}, over the limit of {:?}",
                target.time_limit()
            ),
        },
        Ok(_) if peak > alloc_limit => Outcome::Crash {
            kind: CrashKind::Allocation,
            message: format!(
                "one allocation of {peak} bytes, over the limit of {alloc_limit} bytes"
            ),
        },
        Ok(signal) => Outcome::Ok(signal),
    };
    (outcome, elapsed, peak)
}

/// The key crashes are told apart by: the kind, and for panics the location (`file:line:col`)
/// that the panic message starts with, so that one bug seen with many inputs is one crash.
fn dedup_key(kind: CrashKind, message: &str) -> String {
    let location = match message.strip_prefix("panicked at ") {
        Some(rest) => rest.splitn(4, ':').take(3).collect::<Vec<_>>().join(":"),
        None => message.lines().next().unwrap_or_default().to_string(),
    };
    format!("{kind:?} {location}")
}

/// Fuzzes `target` for `options.iterations` inputs (seeds included).
pub fn run(target: &mut dyn Target, options: &RunOptions) -> Report {
    install_panic_hook();
    let name = target.name();
    let hang_limit = (target.time_limit() * 10).max(Duration::from_secs(10));
    let watchdog = Watchdog::start(name, hang_limit, options.crash_dir.clone());
    let max_len = target.max_len();
    let mut rng = Rng::new(options.seed);
    let mut corpus: Vec<Vec<u8>> = Vec::new();
    let mut seen: HashSet<Signal> = HashSet::new();
    let mut crashes: Vec<Crash> = Vec::new();
    let mut crash_keys: HashMap<String, u64> = HashMap::new();
    let mut crashing_inputs = 0u64;
    let mut slowest = Duration::ZERO;
    let mut largest_allocation = 0usize;
    let start = Instant::now();
    let mut last_progress = Instant::now();

    let mut seeds = target.seeds();
    for seed in &mut seeds {
        seed.truncate(max_len);
    }
    let mut pending = seeds.into_iter();
    let mut input = Vec::with_capacity(max_len);
    let mut done = 0u64;
    // Seeds enter the corpus first: `corpus[..seeds_kept]` are seeds.
    let mut seeds_kept = 0usize;
    while done < options.iterations {
        let from_seed = match pending.next() {
            Some(seed) => {
                input = seed;
                true
            }
            None => {
                if corpus.is_empty() {
                    corpus.push(Vec::new());
                }
                // Half the time a seed: mutants of real inputs get further than mutants of
                // mutants, which drift towards what the target rejects first.
                let parent = if seeds_kept > 0 && rng.one_in(2) {
                    rng.below(seeds_kept)
                } else {
                    rng.below(corpus.len())
                };
                input.clear();
                input.extend_from_slice(&corpus[parent]);
                let other = &corpus[rng.below(corpus.len())];
                mutate(&mut rng, &mut input, other, max_len);
                false
            }
        };
        let (outcome, elapsed, peak) =
            execute(target, &input, options.alloc_limit, Some(&watchdog), false);
        done += 1;
        slowest = slowest.max(elapsed);
        largest_allocation = largest_allocation.max(peak);
        match outcome {
            Outcome::Ok(signal) => {
                let signal = signal.with_num(len_bucket(input.len()));
                if (seen.insert(signal) || from_seed) && corpus.len() < options.max_corpus {
                    corpus.push(input.clone());
                    if from_seed {
                        seeds_kept = corpus.len();
                    }
                }
            }
            Outcome::Crash { kind, message } => {
                crashing_inputs += 1;
                let key = dedup_key(kind, &message);
                let count = crash_keys.entry(key).or_insert(0);
                *count += 1;
                if *count == 1 {
                    let kind_name = match kind {
                        CrashKind::Panic => "panic",
                        CrashKind::Slow => "slow",
                        CrashKind::Allocation => "alloc",
                    };
                    let file = write_crash(&options.crash_dir, name, kind_name, &input);
                    eprintln!("magnetar-fuzz: {name}: {kind_name}: {message}");
                    print_reproduce(name, file.as_deref());
                    crashes.push(Crash {
                        kind,
                        message,
                        file,
                    });
                }
            }
        }
        if let Some(every) = options.progress
            && last_progress.elapsed() >= every
        {
            last_progress = Instant::now();
            let secs = start.elapsed().as_secs_f64();
            eprintln!(
                "magnetar-fuzz: {name}: {done} inputs, {:.0}/s, corpus {}, crashes {}",
                done as f64 / secs,
                corpus.len(),
                crashes.len()
            );
        }
    }
    Report {
        target: name,
        iterations: done,
        seconds: start.elapsed().as_secs_f64(),
        corpus: corpus.len(),
        signals: seen.len(),
        crashes,
        crashing_inputs,
        slowest,
        largest_allocation,
    }
}

/// Runs one input with panics printed in full: what a crash file is for.
pub fn reproduce(target: &mut dyn Target, input: &[u8], alloc_limit: usize) -> Result<(), Crash> {
    install_panic_hook();
    let (outcome, elapsed, peak) = execute(target, input, alloc_limit, None, true);
    eprintln!(
        "magnetar-fuzz: {}: ran {} bytes in {elapsed:?}, largest allocation {peak} bytes",
        target.name(),
        input.len()
    );
    match outcome {
        Outcome::Ok(_) => Ok(()),
        Outcome::Crash { kind, message } => Err(Crash {
            kind,
            message,
            file: None,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Panics on inputs starting with "bug" (which mutation must find from the seed "bux"),
    /// sleeps past the limit on "slow", allocates past it on "big" (both seeds).
    struct Buggy;

    impl Target for Buggy {
        fn name(&self) -> &'static str {
            "buggy"
        }
        fn seeds(&mut self) -> Vec<Vec<u8>> {
            vec![b"bux".to_vec(), b"slow".to_vec(), b"big".to_vec()]
        }
        fn run(&mut self, input: &[u8]) -> Signal {
            if input.starts_with(b"bug") {
                panic!("found the bug");
            }
            if input.starts_with(b"slow") {
                std::thread::sleep(Duration::from_millis(30));
            }
            if input.starts_with(b"big") {
                std::hint::black_box(vec![0u8; 1 << 20]);
            }
            Signal::new("ok").with(input.first().map_or(&[][..], std::slice::from_ref))
        }
        fn time_limit(&self) -> Duration {
            Duration::from_millis(20)
        }
    }

    #[test]
    fn finds_panics_slow_inputs_and_big_allocations_and_writes_them() {
        let dir = std::env::temp_dir().join(format!("magnetar-fuzz-engine-{}", std::process::id()));
        let mut options = RunOptions::new(300_000, 1);
        options.crash_dir = dir.clone();
        options.alloc_limit = 512 << 10;
        let report = run(&mut Buggy, &options);
        let kinds: HashSet<_> = report
            .crashes
            .iter()
            .map(|c| format!("{:?}", c.kind))
            .collect();
        assert!(kinds.contains("Panic"), "{report:?}");
        assert!(kinds.contains("Slow"), "{report:?}");
        assert!(kinds.contains("Allocation"), "{report:?}");
        let panic = report
            .crashes
            .iter()
            .find(|c| c.kind == CrashKind::Panic)
            .expect("a panic");
        assert!(panic.message.contains("found the bug"), "{}", panic.message);
        let file = panic.file.as_ref().expect("written");
        let input = std::fs::read(file).expect("crash file");
        assert!(input.starts_with(b"bug"));
        assert!(reproduce(&mut Buggy, &input, 1 << 30).is_err());
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn same_seed_same_run() {
        let run_once = |seed| {
            let mut options = RunOptions::new(2_000, seed);
            options.crash_dir = std::env::temp_dir().join("magnetar-fuzz-unused");
            let report = run(&mut Quiet, &options);
            (report.corpus, report.signals)
        };
        assert_eq!(run_once(5), run_once(5));
    }

    struct Quiet;

    impl Target for Quiet {
        fn name(&self) -> &'static str {
            "quiet"
        }
        fn seeds(&mut self) -> Vec<Vec<u8>> {
            vec![b"seed".to_vec()]
        }
        fn run(&mut self, input: &[u8]) -> Signal {
            Signal::new("len").with_num(input.len() as u64 % 7)
        }
    }
}
