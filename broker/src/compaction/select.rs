//! What compaction keeps, sans-IO: the latest message of every key, as Pulsar's two-phase
//! compactor decides it.
//!
//! - Phase one ([`Latest::observe`]) reads every entry up to the horizon and remembers, per
//!   key, the position (and batch index) of its last message. A message with an empty payload
//!   (or `null_value`) deletes its key.
//! - Phase two ([`Latest::rewrite`]) reads them again and says what each entry becomes in the
//!   compacted ledger: dropped (nothing in it is the latest of its key), kept as it is, or — a
//!   batch with some of its messages superseded — rewritten with those messages marked
//!   `compacted_out` and emptied, so the survivors keep their batch indexes (their message ids
//!   do not change).
//!
//! Messages without a key are dropped (Pulsar's default since 3.0). A chunked message (one
//! message split over several entries, tied by its `uuid`) counts as one message of its key once
//! its last chunk is seen: all its chunks are kept while it is the latest value of its key and
//! all are dropped once it is superseded, so a compacted topic never holds part of a message. A
//! chunked message not complete by the horizon (its producer died, or its last chunks come
//! later) is kept as it is. Entries compaction cannot look into — encrypted payloads,
//! unreadable entries — are kept as well: compaction never loses what it cannot judge.

use std::collections::{HashMap, HashSet};

use bytes::Bytes;
use magnetar_protocol::Payload;
use magnetar_protocol::batch::{self, BatchMessage};
use magnetar_protocol::compression;
use magnetar_protocol::pulsar::{CompressionType, MessageMetadata};

use crate::position::Position;

/// An entry as compaction sees it.
enum Parsed {
    /// One message: its key and whether its payload is empty (a deletion).
    Single { key: Option<String>, empty: bool },
    /// A batch, decompressed.
    Batch {
        metadata: Box<MessageMetadata>,
        messages: Vec<BatchMessage>,
    },
    /// One chunk of a chunked message.
    Chunk {
        uuid: String,
        key: Option<String>,
        chunk_id: i32,
        chunks: i32,
    },
    /// Kept whatever happens (encrypted, unreadable).
    Opaque,
}

fn parse(entry: &Bytes, limit: usize) -> Parsed {
    let Ok(payload) = Payload::parse(entry.clone()) else {
        return Parsed::Opaque;
    };
    let Ok(metadata) = payload.metadata() else {
        return Parsed::Opaque;
    };
    if !metadata.encryption_keys.is_empty() {
        return Parsed::Opaque;
    }
    if metadata.chunk_id.is_some() || metadata.num_chunks_from_msg.is_some_and(|n| n > 1) {
        return match (
            &metadata.uuid,
            metadata.chunk_id,
            metadata.num_chunks_from_msg,
        ) {
            (Some(uuid), Some(chunk_id), Some(chunks)) if chunk_id >= 0 && chunk_id < chunks => {
                Parsed::Chunk {
                    uuid: uuid.clone(),
                    key: key_of(
                        metadata.partition_key.as_deref(),
                        metadata.null_partition_key,
                    ),
                    chunk_id,
                    chunks,
                }
            }
            _ => Parsed::Opaque,
        };
    }
    let body = payload.body();
    // Producers that batch always set `num_messages_in_batch`; one sent without batching does not.
    let Some(count) = metadata.num_messages_in_batch else {
        let empty = metadata.null_value.unwrap_or(false)
            || body.is_empty()
            || metadata.uncompressed_size == Some(0) && metadata.compression.unwrap_or(0) != 0;
        return Parsed::Single {
            key: key_of(
                metadata.partition_key.as_deref(),
                metadata.null_partition_key,
            ),
            empty,
        };
    };
    let codec = metadata.compression.unwrap_or(0);
    let raw = match compression::decompress(
        codec,
        &body,
        metadata.uncompressed_size.unwrap_or(body.len() as u32) as usize,
        limit,
    ) {
        Ok(raw) => Bytes::from(raw),
        Err(_) => return Parsed::Opaque,
    };
    match batch::decode_batch(&raw, count.max(0) as usize) {
        Ok(messages) => Parsed::Batch {
            metadata: Box::new(metadata),
            messages,
        },
        Err(_) => Parsed::Opaque,
    }
}

fn key_of(key: Option<&str>, null_key: Option<bool>) -> Option<String> {
    if null_key.unwrap_or(false) {
        return None;
    }
    key.map(str::to_string)
}

fn message_key(m: &BatchMessage) -> Option<String> {
    key_of(
        m.metadata.partition_key.as_deref(),
        m.metadata.null_partition_key,
    )
}

fn message_empty(m: &BatchMessage) -> bool {
    m.metadata.null_value.unwrap_or(false) || m.payload.is_empty()
}

/// What phase two makes of an entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Drop,
    Keep,
    /// The batch with its superseded messages compacted out.
    Rewritten(Bytes),
}

/// The chunks of one chunked message seen so far, in order.
#[derive(Debug)]
struct Chunked {
    positions: Vec<Position>,
    chunks: i32,
    /// A chunk came out of order (a gap): never complete, kept as it is.
    broken: bool,
}

impl Chunked {
    fn complete(&self) -> bool {
        !self.broken && self.positions.len() as i32 == self.chunks
    }

    fn last(&self) -> Option<Position> {
        self.positions.last().copied()
    }
}

/// The latest message of each key seen so far.
#[derive(Debug, Default)]
pub struct Latest {
    /// Per key, where its latest message is: an entry and batch index; for a chunked message,
    /// its last chunk.
    by_key: HashMap<String, (Position, u32)>,
    /// Chunked messages by uuid (the latest attempt of each: a producer that resends starts
    /// again at chunk 0).
    chunked: HashMap<String, Chunked>,
    /// Entries kept whole without judging (encrypted, unreadable).
    opaque: Vec<Position>,
    /// Messages seen in phase one (for the count of those compaction removes).
    messages: u64,
    limit: usize,
}

impl Latest {
    /// `limit`: the largest batch it will decompress (larger ones are kept as they are).
    pub fn new(limit: usize) -> Latest {
        Latest {
            by_key: HashMap::new(),
            chunked: HashMap::new(),
            opaque: Vec::new(),
            messages: 0,
            limit,
        }
    }

    /// Keys with a live value.
    pub fn keys(&self) -> usize {
        self.by_key.len()
    }

    pub fn messages_seen(&self) -> u64 {
        self.messages
    }

    fn record(&mut self, key: Option<String>, empty: bool, at: (Position, u32)) {
        self.messages += 1;
        let Some(key) = key else { return };
        if empty {
            self.by_key.remove(&key);
        } else {
            self.by_key.insert(key, at);
        }
    }

    /// Phase one: learns the entry at `position`.
    pub fn observe(&mut self, position: Position, entry: &Bytes) {
        match parse(entry, self.limit) {
            Parsed::Single { key, empty } => self.record(key, empty, (position, 0)),
            Parsed::Batch { messages, .. } => {
                for (i, m) in messages.iter().enumerate() {
                    if m.metadata.compacted_out.unwrap_or(false) {
                        continue;
                    }
                    self.record(message_key(m), message_empty(m), (position, i as u32));
                }
            }
            Parsed::Chunk {
                uuid,
                key,
                chunk_id,
                chunks,
            } => {
                if chunk_id == 0 {
                    self.chunked.insert(
                        uuid.clone(),
                        Chunked {
                            positions: Vec::new(),
                            chunks,
                            broken: false,
                        },
                    );
                }
                let Some(message) = self.chunked.get_mut(&uuid) else {
                    return; // the rest of a message whose start is not in this topic
                };
                if message.broken || chunk_id != message.positions.len() as i32 {
                    message.broken = true;
                    message.positions.push(position);
                    return;
                }
                message.positions.push(position);
                if message.complete() {
                    self.record(key, false, (position, 0));
                }
            }
            Parsed::Opaque => {
                self.messages += 1;
                self.opaque.push(position);
            }
        }
    }

    /// Chunks kept as they are: those of chunked messages not complete by the horizon.
    fn unjudged_chunks(&self) -> impl Iterator<Item = Position> + '_ {
        self.chunked
            .values()
            .filter(|m| !m.complete())
            .flat_map(|m| m.positions.iter().copied())
    }

    /// Every chunk of the chunked messages that are the latest value of their key.
    fn latest_chunks(&self) -> HashSet<Position> {
        let latest: HashSet<Position> = self.by_key.values().map(|(p, _)| *p).collect();
        self.chunked
            .values()
            .filter(|m| m.complete() && m.last().is_some_and(|last| latest.contains(&last)))
            .flat_map(|m| m.positions.iter().copied())
            .collect()
    }

    /// The entries phase two must read, in order: those holding the latest message of a key,
    /// and those kept whole. Every other entry is dropped.
    pub fn survivors(&self) -> Vec<Position> {
        let mut positions: Vec<Position> = self
            .by_key
            .values()
            .map(|(p, _)| *p)
            .chain(self.opaque.iter().copied())
            .chain(self.unjudged_chunks())
            .chain(self.latest_chunks())
            .collect();
        positions.sort_unstable();
        positions.dedup();
        positions
    }

    fn is_latest(&self, key: Option<String>, at: (Position, u32)) -> bool {
        key.and_then(|k| self.by_key.get(&k).copied()) == Some(at)
    }

    /// Phase two: what the entry at `position` becomes in the compacted ledger, and how many
    /// of its messages survive.
    pub fn rewrite(&self, position: Position, entry: &Bytes) -> (Outcome, u64) {
        match parse(entry, self.limit) {
            Parsed::Opaque => (Outcome::Keep, 1),
            Parsed::Chunk { uuid, key, .. } => {
                let Some(message) = self
                    .chunked
                    .get(&uuid)
                    .filter(|m| m.positions.contains(&position))
                else {
                    // An abandoned attempt (its producer started the message again), or the
                    // rest of a message that began before this topic's first entry.
                    return (Outcome::Drop, 0);
                };
                let last = message.last() == Some(position);
                // Incomplete: kept unjudged; complete: kept while it is its key's latest value.
                let keep = !message.complete()
                    || message
                        .last()
                        .is_some_and(|end| self.is_latest(key, (end, 0)));
                if keep {
                    (Outcome::Keep, u64::from(last))
                } else {
                    (Outcome::Drop, 0)
                }
            }
            Parsed::Single { key, .. } => {
                if self.is_latest(key, (position, 0)) {
                    (Outcome::Keep, 1)
                } else {
                    (Outcome::Drop, 0)
                }
            }
            Parsed::Batch { metadata, messages } => {
                let live = |m: &BatchMessage| !m.metadata.compacted_out.unwrap_or(false);
                let kept: Vec<bool> = messages
                    .iter()
                    .enumerate()
                    .map(|(i, m)| live(m) && self.is_latest(message_key(m), (position, i as u32)))
                    .collect();
                let survivors = kept.iter().filter(|k| **k).count() as u64;
                if survivors == 0 {
                    (Outcome::Drop, 0)
                } else if survivors == messages.iter().filter(|m| live(m)).count() as u64 {
                    (Outcome::Keep, survivors)
                } else {
                    let rewritten = compact_out(&metadata, messages, &kept);
                    (Outcome::Rewritten(rewritten), survivors)
                }
            }
        }
    }
}

/// The batch with the messages not `kept` marked `compacted_out` and emptied, compressed as it
/// was.
fn compact_out(metadata: &MessageMetadata, messages: Vec<BatchMessage>, kept: &[bool]) -> Bytes {
    let laid_out = batch::encode_batch(messages.iter().zip(kept).map(|(m, keep)| {
        if *keep {
            (m.metadata.clone(), &m.payload[..])
        } else {
            let mut metadata = m.metadata.clone();
            metadata.compacted_out = Some(true);
            (metadata, &[][..])
        }
    }));
    let codec = CompressionType::try_from(metadata.compression.unwrap_or(0))
        .unwrap_or(CompressionType::None);
    let body = compression::compress(codec, &laid_out);
    let mut metadata = metadata.clone();
    metadata.uncompressed_size = Some(laid_out.len() as u32);
    Payload::new(&metadata, &body).to_entry()
}

/// The index of the last message of a compacted entry that is not compacted out (what
/// GET_LAST_MESSAGE_ID reports for it), or None for a single message.
pub fn last_live_index(entry: &Bytes, limit: usize) -> Option<u32> {
    match parse(entry, limit) {
        Parsed::Batch { messages, .. } => messages
            .iter()
            .rposition(|m| !m.metadata.compacted_out.unwrap_or(false))
            .map(|i| i as u32),
        _ => None,
    }
}

/// For a compacted batch with messages compacted out: the wire `ack_set` (bit set = deliver)
/// with their bits cleared, so that clients which do not read `compacted_out` (the C++ client
/// and those built on it) skip them as acknowledged. None when every message is live.
pub fn live_mask(entry: &Bytes, limit: usize) -> Option<Vec<i64>> {
    let Parsed::Batch { messages, .. } = parse(entry, limit) else {
        return None;
    };
    if !messages
        .iter()
        .any(|m| m.metadata.compacted_out.unwrap_or(false))
    {
        return None;
    }
    let mut words = vec![0i64; messages.len().div_ceil(64)];
    for (i, m) in messages.iter().enumerate() {
        if !m.metadata.compacted_out.unwrap_or(false) {
            words[i / 64] |= 1 << (i % 64);
        }
    }
    Some(words)
}

#[cfg(test)]
mod tests {
    use magnetar_protocol::pulsar::SingleMessageMetadata;

    use super::*;

    const LIMIT: usize = 1 << 20;

    fn single(key: Option<&str>, value: &str) -> Bytes {
        let metadata = MessageMetadata {
            producer_name: "p".into(),
            sequence_id: 0,
            publish_time: 1,
            partition_key: key.map(str::to_string),
            ..Default::default()
        };
        Payload::new(&metadata, value.as_bytes()).to_entry()
    }

    fn batch(codec: CompressionType, messages: &[(&str, &str)]) -> Bytes {
        let laid_out = batch::encode_batch(messages.iter().map(|(k, v)| {
            (
                SingleMessageMetadata {
                    partition_key: Some(k.to_string()),
                    ..Default::default()
                },
                v.as_bytes(),
            )
        }));
        let body = compression::compress(codec, &laid_out);
        let metadata = MessageMetadata {
            producer_name: "p".into(),
            sequence_id: 0,
            publish_time: 1,
            num_messages_in_batch: Some(messages.len() as i32),
            compression: Some(codec as i32),
            uncompressed_size: Some(laid_out.len() as u32),
            ..Default::default()
        };
        Payload::new(&metadata, &body).to_entry()
    }

    fn values(entry: &Bytes) -> Vec<(String, String, bool)> {
        let Parsed::Batch { messages, .. } = parse(entry, LIMIT) else {
            panic!("not a batch");
        };
        messages
            .iter()
            .map(|m| {
                (
                    m.metadata.partition_key.clone().unwrap_or_default(),
                    String::from_utf8_lossy(&m.payload).into_owned(),
                    m.metadata.compacted_out.unwrap_or(false),
                )
            })
            .collect()
    }

    fn compact(entries: &[(Position, Bytes)]) -> Vec<(Position, Outcome)> {
        let mut latest = Latest::new(LIMIT);
        for (p, e) in entries {
            latest.observe(*p, e);
        }
        let survivors = latest.survivors();
        for (p, e) in entries {
            if !survivors.contains(p) {
                assert_eq!(
                    latest.rewrite(*p, e).0,
                    Outcome::Drop,
                    "{p} is not read again"
                );
            }
        }
        entries
            .iter()
            .map(|(p, e)| (*p, latest.rewrite(*p, e).0))
            .collect()
    }

    #[test]
    fn keeps_the_last_value_of_each_key_and_drops_keyless_and_deleted_ones() {
        let p = |e| Position::new(1, e);
        let outcomes = compact(&[
            (p(0), single(Some("a"), "1")),
            (p(1), single(Some("b"), "1")),
            (p(2), single(None, "no key")),
            (p(3), single(Some("a"), "2")),
            (p(4), single(Some("b"), "")),
            (p(5), single(Some("c"), "1")),
        ]);
        let kept: Vec<Position> = outcomes
            .iter()
            .filter(|(_, o)| *o == Outcome::Keep)
            .map(|(p, _)| *p)
            .collect();
        assert_eq!(kept, vec![p(3), p(5)]);
    }

    #[test]
    fn a_key_deleted_then_written_again_keeps_the_new_value() {
        let p = |e| Position::new(1, e);
        let outcomes = compact(&[
            (p(0), single(Some("a"), "1")),
            (p(1), single(Some("a"), "")),
            (p(2), single(Some("a"), "3")),
        ]);
        assert_eq!(outcomes[2].1, Outcome::Keep);
        assert_eq!(outcomes[0].1, Outcome::Drop);
        assert_eq!(outcomes[1].1, Outcome::Drop);
    }

    #[test]
    fn batches_keep_their_survivors_at_their_indexes_in_every_codec() {
        for codec in [
            CompressionType::None,
            CompressionType::Lz4,
            CompressionType::Zlib,
            CompressionType::Zstd,
            CompressionType::Snappy,
        ] {
            let p = |e| Position::new(7, e);
            let outcomes = compact(&[
                (p(0), batch(codec, &[("a", "1"), ("b", "1"), ("c", "1")])),
                (p(1), batch(codec, &[("a", "2"), ("b", "")])),
                (p(2), batch(codec, &[("d", "1"), ("e", "1")])),
            ]);
            let Outcome::Rewritten(first) = &outcomes[0].1 else {
                panic!("{codec:?}: {:?}", outcomes[0].1);
            };
            assert_eq!(
                values(first),
                vec![
                    ("a".into(), "".into(), true),
                    ("b".into(), "".into(), true),
                    ("c".into(), "1".into(), false)
                ],
                "{codec:?}"
            );
            let Outcome::Rewritten(second) = &outcomes[1].1 else {
                panic!("{codec:?}: {:?}", outcomes[1].1);
            };
            assert_eq!(
                values(second),
                vec![
                    ("a".into(), "2".into(), false),
                    ("b".into(), "".into(), true)
                ]
            );
            assert_eq!(last_live_index(second, LIMIT), Some(0));
            assert_eq!(live_mask(first, LIMIT), Some(vec![0b100]));
            assert_eq!(live_mask(second, LIMIT), Some(vec![0b1]));
            assert_eq!(outcomes[2].1, Outcome::Keep);
            // A second compaction over the first one's output keeps it as it is.
            let again = compact(&[(p(0), first.clone()), (p(1), second.clone())]);
            assert_eq!(again[0].1, Outcome::Keep);
            assert_eq!(again[1].1, Outcome::Keep);
        }
    }

    fn chunk(key: Option<&str>, uuid: &str, id: i32, of: i32) -> Bytes {
        let metadata = MessageMetadata {
            producer_name: "p".into(),
            sequence_id: 0,
            publish_time: 1,
            partition_key: key.map(str::to_string),
            uuid: Some(uuid.into()),
            chunk_id: Some(id),
            num_chunks_from_msg: Some(of),
            total_chunk_msg_size: Some(of * 4),
            ..Default::default()
        };
        Payload::new(&metadata, b"part").to_entry()
    }

    fn kept(outcomes: &[(Position, Outcome)]) -> Vec<i64> {
        outcomes
            .iter()
            .filter(|(_, o)| *o == Outcome::Keep)
            .map(|(p, _)| p.entry_id)
            .collect()
    }

    #[test]
    fn entries_it_cannot_judge_are_kept() {
        let p = |e| Position::new(1, e);
        let outcomes = compact(&[
            // A chunked message not complete at the horizon.
            (p(0), chunk(Some("a"), "u", 0, 2)),
            (p(1), Bytes::from_static(b"garbage")),
            (p(2), single(Some("a"), "2")),
        ]);
        assert_eq!(kept(&outcomes), vec![0, 1, 2]);
    }

    #[test]
    fn a_chunked_message_is_kept_or_dropped_whole() {
        let p = |e| Position::new(1, e);
        // Key a: chunked (u1), then chunked again (u2, interleaved with a single of key b):
        // u2 is kept whole, u1 dropped whole.
        let outcomes = compact(&[
            (p(0), chunk(Some("a"), "u1", 0, 2)),
            (p(1), chunk(Some("a"), "u1", 1, 2)),
            (p(2), chunk(Some("a"), "u2", 0, 3)),
            (p(3), single(Some("b"), "1")),
            (p(4), chunk(Some("a"), "u2", 1, 3)),
            (p(5), chunk(Some("a"), "u2", 2, 3)),
        ]);
        assert_eq!(kept(&outcomes), vec![2, 3, 4, 5]);
        // A single value after a chunked one supersedes it, and the other way round.
        let outcomes = compact(&[
            (p(0), chunk(Some("a"), "u1", 0, 2)),
            (p(1), chunk(Some("a"), "u1", 1, 2)),
            (p(2), single(Some("a"), "2")),
            (p(3), single(Some("b"), "1")),
            (p(4), chunk(Some("b"), "u3", 0, 2)),
            (p(5), chunk(Some("b"), "u3", 1, 2)),
        ]);
        assert_eq!(kept(&outcomes), vec![2, 4, 5]);
        // Deleting the key drops the chunks; a keyless chunked message goes as keyless
        // messages do.
        let outcomes = compact(&[
            (p(0), chunk(Some("a"), "u1", 0, 2)),
            (p(1), chunk(Some("a"), "u1", 1, 2)),
            (p(2), single(Some("a"), "")),
            (p(3), chunk(None, "u4", 0, 2)),
            (p(4), chunk(None, "u4", 1, 2)),
        ]);
        assert!(kept(&outcomes).is_empty(), "{outcomes:?}");
    }

    #[test]
    fn a_resent_chunked_message_keeps_its_last_attempt() {
        let p = |e| Position::new(1, e);
        // The producer reconnected after chunk 0 and sent the message again from chunk 0; a
        // chunk out of order leaves its message incomplete (kept as it is).
        let outcomes = compact(&[
            (p(0), chunk(Some("a"), "u", 0, 2)),
            (p(1), chunk(Some("a"), "u", 0, 2)),
            (p(2), chunk(Some("a"), "u", 1, 2)),
            (p(3), chunk(Some("b"), "v", 0, 3)),
            (p(4), chunk(Some("b"), "v", 2, 3)),
        ]);
        assert_eq!(kept(&outcomes), vec![1, 2, 3, 4]);
    }
}
