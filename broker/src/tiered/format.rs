//! How an offloaded ledger is laid out in object storage (sans-IO).
//!
//! A ledger becomes two objects under `{prefix}/{managed ledger}/{ledger}-{uid}/`:
//!
//! - `data`: the entries' bytes, one after the other, nothing in between, so that any run of
//!   consecutive entries is one ranged GET;
//! - `index`: `MGTI`, a format version (u16), the ledger id, the entry count and the data length
//!   (u64 each), then for every entry its offset in `data` (u64) and the CRC32C of its bytes
//!   (u32), all big-endian. Reads check each entry's CRC: a damaged object is an error, never
//!   wrong messages.
//!
//! The index is written last: an offload that stopped half-way leaves no index, and the ledger
//! record never says "complete" for it (the managed ledger deletes such leftovers).

use std::ops::Range;

use bytes::{Buf, BufMut, Bytes, BytesMut};

const MAGIC: &[u8; 4] = b"MGTI";
const VERSION: u16 = 1;
const HEADER: usize = 4 + 2 + 8 + 8 + 8;
const PER_ENTRY: usize = 8 + 4;

/// Builds the index while the data object is written.
#[derive(Debug, Default)]
pub struct IndexBuilder {
    offsets: Vec<u64>,
    crcs: Vec<u32>,
    len: u64,
}

impl IndexBuilder {
    /// Records the next entry (entry ids are consecutive from 0).
    pub fn push(&mut self, entry: &[u8]) {
        self.offsets.push(self.len);
        self.crcs.push(crc32c::crc32c(entry));
        self.len += entry.len() as u64;
    }

    pub fn entries(&self) -> u64 {
        self.offsets.len() as u64
    }

    pub fn data_len(&self) -> u64 {
        self.len
    }

    pub fn finish(self, ledger_id: u64) -> Bytes {
        let mut out = BytesMut::with_capacity(HEADER + self.offsets.len() * PER_ENTRY);
        out.put_slice(MAGIC);
        out.put_u16(VERSION);
        out.put_u64(ledger_id);
        out.put_u64(self.offsets.len() as u64);
        out.put_u64(self.len);
        for (offset, crc) in self.offsets.iter().zip(&self.crcs) {
            out.put_u64(*offset);
            out.put_u32(*crc);
        }
        out.freeze()
    }
}

/// A decoded index: where each entry of the data object is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Index {
    pub ledger_id: u64,
    offsets: Vec<u64>,
    crcs: Vec<u32>,
    data_len: u64,
}

impl Index {
    pub fn decode(mut bytes: &[u8]) -> Result<Index, String> {
        if bytes.len() < HEADER || &bytes[..4] != MAGIC {
            return Err("not an offloaded-ledger index (bad magic or too short)".into());
        }
        bytes.advance(4);
        let version = bytes.get_u16();
        if version != VERSION {
            return Err(format!("index format version {version} is not known"));
        }
        let ledger_id = bytes.get_u64();
        let count = bytes.get_u64();
        let data_len = bytes.get_u64();
        if count.checked_mul(PER_ENTRY as u64) != Some(bytes.len() as u64) {
            return Err(format!(
                "index says {count} entries but holds {} bytes of them",
                bytes.len()
            ));
        }
        let mut offsets = Vec::with_capacity(count as usize);
        let mut crcs = Vec::with_capacity(count as usize);
        for _ in 0..count {
            let offset = bytes.get_u64();
            if offset > data_len || offsets.last().is_some_and(|prev| *prev > offset) {
                return Err(format!(
                    "index offsets out of order or past the data ({offset})"
                ));
            }
            offsets.push(offset);
            crcs.push(bytes.get_u32());
        }
        Ok(Index {
            ledger_id,
            offsets,
            crcs,
            data_len,
        })
    }

    pub fn entries(&self) -> u64 {
        self.offsets.len() as u64
    }

    pub fn data_len(&self) -> u64 {
        self.data_len
    }

    /// Memory this index takes (for the cache's budget).
    pub fn footprint(&self) -> usize {
        self.offsets.len() * PER_ENTRY + 64
    }

    fn end_of(&self, entry: usize) -> u64 {
        self.offsets
            .get(entry + 1)
            .copied()
            .unwrap_or(self.data_len)
    }

    /// The byte range of `data` holding entries `first..=last`.
    pub fn range(&self, first: u64, last: u64) -> Result<Range<u64>, String> {
        if first > last || last >= self.entries() {
            return Err(format!(
                "entries {first}..={last} are not in ledger {} ({} entries)",
                self.ledger_id,
                self.entries()
            ));
        }
        Ok(self.offsets[first as usize]..self.end_of(last as usize))
    }

    /// The last entry to read from `first` so that one GET fetches about `min_bytes` (at
    /// least through `last`, at most to the ledger's end): sequential readers then make one
    /// request per block, not one per dispatch.
    pub fn extend(&self, first: u64, last: u64, min_bytes: u64) -> u64 {
        let Some(start) = self.offsets.get(first as usize).copied() else {
            return last;
        };
        let mut end = last;
        while end + 1 < self.entries() && self.end_of(end as usize + 1) - start <= min_bytes {
            end += 1;
        }
        end
    }

    /// Splits the bytes of [`Index::range`]`(first, last)` into entries, checking each CRC.
    pub fn split(&self, first: u64, last: u64, data: Bytes) -> Result<Vec<Bytes>, String> {
        let range = self.range(first, last)?;
        if data.len() as u64 != range.end - range.start {
            return Err(format!(
                "ledger {}: read {} bytes for entries {first}..={last}, expected {}",
                self.ledger_id,
                data.len(),
                range.end - range.start
            ));
        }
        let mut out = Vec::with_capacity((last - first + 1) as usize);
        for entry in first..=last {
            let i = entry as usize;
            let start = (self.offsets[i] - range.start) as usize;
            let end = (self.end_of(i) - range.start) as usize;
            let bytes = data.slice(start..end);
            if crc32c::crc32c(&bytes) != self.crcs[i] {
                return Err(format!(
                    "ledger {} entry {entry}: checksum mismatch in offloaded data",
                    self.ledger_id
                ));
            }
            out.push(bytes);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn built(entries: &[&[u8]]) -> (Bytes, Index) {
        let mut builder = IndexBuilder::default();
        let mut data = BytesMut::new();
        for e in entries {
            builder.push(e);
            data.put_slice(e);
        }
        let index = Index::decode(&builder.finish(7)).expect("decode");
        (data.freeze(), index)
    }

    #[test]
    fn entries_come_back_by_range_with_checksums() {
        let (data, index) = built(&[b"a", b"", b"ccc", b"dddd"]);
        assert_eq!(index.ledger_id, 7);
        assert_eq!(index.entries(), 4);
        assert_eq!(index.data_len(), 8);
        let r = index.range(1, 3).expect("range");
        assert_eq!(r, 1..8);
        let got = index
            .split(1, 3, data.slice(r.start as usize..r.end as usize))
            .expect("split");
        assert_eq!(got, vec![&b""[..], b"ccc", b"dddd"]);
        assert_eq!(
            index.split(0, 0, data.slice(0..1)).expect("one"),
            vec![&b"a"[..]]
        );
        assert!(index.range(2, 4).is_err());
        assert!(index.range(3, 2).is_err());
        // Read-ahead: from entry 0, blocks of up to 4 bytes reach entry 2; never past the end,
        // never short of what was asked.
        assert_eq!(index.extend(0, 0, 4), 2);
        assert_eq!(index.extend(0, 0, 100), 3);
        assert_eq!(index.extend(1, 3, 0), 3);
        assert_eq!(index.extend(0, 1, 0), 1);
    }

    #[test]
    fn damage_is_an_error_not_wrong_data() {
        let (data, index) = built(&[b"hello", b"world"]);
        let mut bad = data.to_vec();
        bad[6] ^= 1;
        assert!(index.split(0, 1, Bytes::from(bad)).is_err());
        assert!(index.split(0, 1, data.slice(0..9)).is_err());
        let mut builder = IndexBuilder::default();
        builder.push(b"x");
        let encoded = builder.finish(1);
        assert!(Index::decode(&encoded[..encoded.len() - 1]).is_err());
        assert!(Index::decode(b"NOPE").is_err());
        let mut wrong_version = encoded.to_vec();
        wrong_version[5] = 9;
        assert!(Index::decode(&wrong_version).is_err());
    }
}
