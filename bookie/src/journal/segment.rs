//! Segment files of the journal: naming, listing, creation with preallocated space, removal.
//!
//! Segment `N` is the file `{N:020}.journal` in the journal directory; ids only grow, and a
//! segment is written only after every lower one has stopped being written. A new segment is
//! preallocated (so later appends neither allocate blocks nor change the file size, and reads of
//! its unwritten part return zeros) and made durable, with its directory entry, before any record
//! goes into it.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

const SUFFIX: &str = ".journal";

/// A place in the journal: byte `offset` of segment `segment`. Ordered as the journal is written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Position {
    pub segment: u64,
    pub offset: u64,
}

impl std::fmt::Display for Position {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.segment, self.offset)
    }
}

pub fn path(dir: &Path, segment: u64) -> PathBuf {
    dir.join(format!("{segment:020}{SUFFIX}"))
}

/// Ids of the segments in `dir`, ascending. Other files are ignored.
pub fn list(dir: &Path) -> io::Result<Vec<u64>> {
    let mut ids = Vec::new();
    for dir_entry in fs::read_dir(dir)? {
        let name = dir_entry?.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(id) = name.strip_suffix(SUFFIX).and_then(|s| s.parse().ok()) {
            ids.push(id);
        }
    }
    ids.sort_unstable();
    Ok(ids)
}

/// Creates segment `segment` with `size` bytes preallocated, durably.
pub fn create(dir: &Path, segment: u64, size: u64) -> io::Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(path(dir, segment))?;
    preallocate(&file, size)?;
    file.sync_all()?;
    sync_dir(dir)?;
    Ok(file)
}

/// Reserves blocks with `fallocate`; where the file system cannot, falls back to a sparse file
/// of the same length (reads of the hole are zeros all the same).
fn preallocate(file: &File, size: u64) -> io::Result<()> {
    match rustix::fs::fallocate(file, rustix::fs::FallocateFlags::empty(), 0, size) {
        Ok(()) => Ok(()),
        Err(rustix::io::Errno::OPNOTSUPP) => file.set_len(size),
        Err(e) => Err(e.into()),
    }
}

/// Cuts segment `segment` at `len` bytes, durably: the bytes of a torn tail are gone, so nothing
/// left of them can look like a record later.
pub fn truncate(dir: &Path, segment: u64, len: u64) -> io::Result<()> {
    let file = OpenOptions::new().write(true).open(path(dir, segment))?;
    file.set_len(len)?;
    file.sync_all()
}

/// Removes the segments whose id is below `segment`. Returns how many were removed.
pub fn remove_before(dir: &Path, segment: u64) -> io::Result<usize> {
    let mut removed = 0;
    for id in list(dir)?.into_iter().take_while(|id| *id < segment) {
        fs::remove_file(path(dir, id))?;
        removed += 1;
    }
    if removed > 0 {
        sync_dir(dir)?;
    }
    Ok(removed)
}

pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}
