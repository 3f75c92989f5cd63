//! The journal's on-disk record format, with no I/O: encoding into a buffer and decoding from a
//! byte slice, so that replay and its failure cases are testable on plain bytes.
//!
//! A segment file is a sequence of records followed by zeroed (preallocated) space. Every integer
//! is big-endian:
//!
//! ```text
//! record  = [u32 len][u32 crc32c(body)][body: len bytes]
//! body    = [u8 kind][u64 ledger_id][u64 entry_id][u64 last_add_confirmed][data]
//! kind    = 1 entry (data = the entry's payload)
//!         | 2 fence (entry_id, last_add_confirmed and data unused: 0, u64::MAX, empty)
//!         | 3 delete ledger (same unused fields as fence)
//! last_add_confirmed = u64::MAX when the writer had confirmed nothing yet
//! ```
//!
//! `len == 0` marks the end of the written part of a segment (preallocated space reads as zeros).
//! A length past the segment's end or above [`MAX_BODY_LEN`], a CRC mismatch or an unknown kind is
//! a torn or corrupt record: replay stops before it.

use bytes::{BufMut, Bytes};

/// Bytes in front of a record's body: length and CRC.
pub const HEADER_LEN: usize = 8;
/// Bytes of a body before the entry data.
pub const BODY_FIXED_LEN: usize = 1 + 8 + 8 + 8;
/// Largest body a record may have (guards replay against garbage lengths).
pub const MAX_BODY_LEN: usize = 256 * 1024 * 1024;

const KIND_ENTRY: u8 = 1;
const KIND_FENCE: u8 = 2;
const KIND_DELETE: u8 = 3;
const NO_LAC: u64 = u64::MAX;

/// One change to a bookie's state, as journaled and then applied to ledger storage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    Entry {
        ledger_id: u64,
        entry_id: u64,
        last_add_confirmed: Option<u64>,
        data: Bytes,
    },
    Fence {
        ledger_id: u64,
    },
    DeleteLedger {
        ledger_id: u64,
    },
}

impl Record {
    pub fn ledger_id(&self) -> u64 {
        match self {
            Record::Entry { ledger_id, .. }
            | Record::Fence { ledger_id }
            | Record::DeleteLedger { ledger_id } => *ledger_id,
        }
    }

    /// Bytes this record takes in a segment.
    pub fn encoded_len(&self) -> usize {
        HEADER_LEN + BODY_FIXED_LEN + self.data().len()
    }

    fn data(&self) -> &[u8] {
        match self {
            Record::Entry { data, .. } => data,
            _ => &[],
        }
    }

    /// Appends the record's bytes to `buf`.
    pub fn encode(&self, buf: &mut Vec<u8>) {
        let (kind, entry_id, lac) = match self {
            Record::Entry {
                entry_id,
                last_add_confirmed,
                ..
            } => (KIND_ENTRY, *entry_id, last_add_confirmed.unwrap_or(NO_LAC)),
            Record::Fence { .. } => (KIND_FENCE, 0, NO_LAC),
            Record::DeleteLedger { .. } => (KIND_DELETE, 0, NO_LAC),
        };
        let data = self.data();
        let body_len = BODY_FIXED_LEN + data.len();
        buf.reserve(HEADER_LEN + body_len);
        let start = buf.len();
        buf.put_u32(u32::try_from(body_len).unwrap_or(u32::MAX));
        buf.put_u32(0); // CRC, filled in below
        buf.put_u8(kind);
        buf.put_u64(self.ledger_id());
        buf.put_u64(entry_id);
        buf.put_u64(lac);
        buf.put_slice(data);
        let crc = crc32c::crc32c(&buf[start + HEADER_LEN..]);
        buf[start + 4..start + 8].copy_from_slice(&crc.to_be_bytes());
    }
}

/// What lies at the start of a byte slice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded {
    /// A valid record taking `len` bytes.
    Record { record: Record, len: usize },
    /// The zeroed space after the last record, or the end of the file.
    End,
    /// Bytes that are not a valid record: a torn write or corruption.
    Damaged(Damage),
}

/// Why bytes are not a valid record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Damage {
    #[error("record header cut short ({0} bytes left)")]
    ShortHeader(usize),
    #[error("record length {0} is out of range")]
    BadLength(usize),
    #[error("record body cut short: {needed} bytes needed, {left} left")]
    ShortBody { needed: usize, left: usize },
    #[error("record checksum mismatch: header says {expected:#010x}, body has {actual:#010x}")]
    Checksum { expected: u32, actual: u32 },
    #[error("unknown record kind {0}")]
    UnknownKind(u8),
}

/// Decodes the record at the start of `bytes`. `data` of an entry is copied out, so the slice may
/// be a reused read buffer.
pub fn decode(bytes: &[u8]) -> Decoded {
    if bytes.is_empty() {
        return Decoded::End;
    }
    if bytes.len() < HEADER_LEN {
        return if bytes.iter().all(|b| *b == 0) {
            Decoded::End
        } else {
            Decoded::Damaged(Damage::ShortHeader(bytes.len()))
        };
    }
    let body_len = be_u32(&bytes[0..4]) as usize;
    let expected = be_u32(&bytes[4..8]);
    if body_len == 0 {
        return if expected == 0 {
            Decoded::End
        } else {
            Decoded::Damaged(Damage::BadLength(0))
        };
    }
    if !(BODY_FIXED_LEN..=MAX_BODY_LEN).contains(&body_len) {
        return Decoded::Damaged(Damage::BadLength(body_len));
    }
    let left = bytes.len() - HEADER_LEN;
    if left < body_len {
        return Decoded::Damaged(Damage::ShortBody {
            needed: body_len,
            left,
        });
    }
    let body = &bytes[HEADER_LEN..HEADER_LEN + body_len];
    let actual = crc32c::crc32c(body);
    if actual != expected {
        return Decoded::Damaged(Damage::Checksum { expected, actual });
    }
    let ledger_id = be_u64(&body[1..9]);
    let entry_id = be_u64(&body[9..17]);
    let lac = be_u64(&body[17..25]);
    let record = match body[0] {
        KIND_ENTRY => Record::Entry {
            ledger_id,
            entry_id,
            last_add_confirmed: (lac != NO_LAC).then_some(lac),
            data: Bytes::copy_from_slice(&body[BODY_FIXED_LEN..]),
        },
        KIND_FENCE => Record::Fence { ledger_id },
        KIND_DELETE => Record::DeleteLedger { ledger_id },
        kind => return Decoded::Damaged(Damage::UnknownKind(kind)),
    };
    Decoded::Record {
        record,
        len: HEADER_LEN + body_len,
    }
}

fn be_u32(bytes: &[u8]) -> u32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&bytes[..4]);
    u32::from_be_bytes(b)
}

fn be_u64(bytes: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&bytes[..8]);
    u64::from_be_bytes(b)
}

#[cfg(test)]
#[path = "record_test.rs"]
mod tests;
