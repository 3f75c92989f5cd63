//! Fuzzing for Magnetar on stable Rust, runnable by anyone with `scripts/fuzz`: structure-aware
//! targets over everything that reads bytes or text from outside (Pulsar frames, batches and
//! compressed payloads, the bookie and metadata wires with the Raft RPCs, JWTs and key URLs,
//! the admin REST router, topic names and the keys they map to), a deterministic mutation
//! engine, and a short pass that CI runs as a test.
//!
//! - [`engine`]: the loop (corpus, mutation, `catch_unwind`, time and allocation limits, crash
//!   files); [`mutate`]: the mutations; [`rng`]: the seeded generator;
//! - [`input`]: reading structured values from bytes; [`proto_gen`]: random valid protobuf
//!   messages for seeds;
//! - [`targets`]: one file per target, each documenting its input layout and its checks;
//! - [`alloc_limit`]: the counting allocator behind the allocation limit.
//!
//! `docs/fuzzing.md` tells how to run it and what the long runs found.

pub mod alloc_limit;
pub mod engine;
pub mod input;
pub mod mutate;
pub mod proto_gen;
pub mod rng;
pub mod targets;

pub use engine::{Report, RunOptions, Signal, Target};
