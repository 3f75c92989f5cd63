//! The fuzz targets, by name. Each file holds one target: its input layout, what it runs, what
//! it checks beyond "no panic", and its seeds.

use crate::engine::Target;

pub mod batch;
pub mod bookie_wire;
pub mod compression;
pub mod metadata_wire;
mod no_broker;
pub mod pulsar_frame;
pub mod rest;
pub mod token;
pub mod topic_name;

/// Every target's name, in the order `all` runs them.
pub const NAMES: [&str; 8] = [
    "pulsar_frame",
    "batch",
    "compression",
    "bookie_wire",
    "metadata_wire",
    "token",
    "rest",
    "topic_name",
];

/// A target by name; `None` for an unknown name. Building `rest` starts a metadata node.
pub fn by_name(name: &str) -> anyhow::Result<Option<Box<dyn Target>>> {
    Ok(Some(match name {
        "pulsar_frame" => Box::new(pulsar_frame::PulsarFrame),
        "batch" => Box::new(batch::Batch),
        "compression" => Box::new(compression::Compression),
        "bookie_wire" => Box::new(bookie_wire::BookieWire),
        "metadata_wire" => Box::new(metadata_wire::MetadataWire),
        "token" => Box::new(token::Token::new()?),
        "rest" => Box::new(rest::Rest::start()?),
        "topic_name" => Box::new(topic_name::TopicNames),
        _ => return Ok(None),
    }))
}

/// The golden frames captured from the real Python client (`protocol/tests/golden/*.bin`), read
/// from the checkout; empty if it is not there.
pub fn golden_frames() -> Vec<Vec<u8>> {
    let root =
        std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into());
    let dir = std::path::Path::new(&root).join("../protocol/tests/golden");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|e| e == "bin"))
        .collect();
    files.sort();
    files
        .into_iter()
        .filter_map(|path| std::fs::read(path).ok())
        .collect()
}
