//! Message ids: the entry position (ledger id, entry id) plus the partition and the index of the
//! message inside a batch.
//!
//! The wire carries ledger and entry ids as `uint64`, but Pulsar treats them as signed longs:
//! `-1` (0xFFFF_FFFF_FFFF_FFFF on the wire) means "before the first entry" (`earliest`, an empty
//! topic's last id). They are kept as `i64` here so that ordering matches Pulsar's.

use std::cmp::Ordering;
use std::fmt;

use crate::pulsar::MessageIdData;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MessageId {
    pub ledger_id: i64,
    pub entry_id: i64,
    /// Partition index, −1 for a non-partitioned topic.
    pub partition: i32,
    /// Index inside a batch, −1 for the whole entry.
    pub batch_index: i32,
}

impl MessageId {
    /// Before every message of a topic.
    pub const EARLIEST: MessageId = MessageId {
        ledger_id: -1,
        entry_id: -1,
        partition: -1,
        batch_index: -1,
    };
    /// After every message of a topic.
    pub const LATEST: MessageId = MessageId {
        ledger_id: i64::MAX,
        entry_id: i64::MAX,
        partition: -1,
        batch_index: -1,
    };

    pub fn new(ledger_id: i64, entry_id: i64) -> MessageId {
        MessageId {
            ledger_id,
            entry_id,
            partition: -1,
            batch_index: -1,
        }
    }

    /// The entry this message lives in (batch index dropped).
    pub fn entry(self) -> MessageId {
        MessageId {
            batch_index: -1,
            ..self
        }
    }

    pub fn to_proto(self) -> MessageIdData {
        MessageIdData {
            ledger_id: self.ledger_id as u64,
            entry_id: self.entry_id as u64,
            partition: (self.partition != -1).then_some(self.partition),
            batch_index: (self.batch_index != -1).then_some(self.batch_index),
            ..Default::default()
        }
    }
}

impl From<&MessageIdData> for MessageId {
    fn from(id: &MessageIdData) -> MessageId {
        MessageId {
            ledger_id: id.ledger_id as i64,
            entry_id: id.entry_id as i64,
            partition: id.partition(),
            batch_index: id.batch_index(),
        }
    }
}

/// Ordered by ledger, entry, then batch index (the whole entry, −1, sorts before its messages).
/// Partitions are not ordered against each other; ids of one topic partition compare as Pulsar's.
impl Ord for MessageId {
    fn cmp(&self, other: &MessageId) -> Ordering {
        (
            self.ledger_id,
            self.entry_id,
            self.batch_index,
            self.partition,
        )
            .cmp(&(
                other.ledger_id,
                other.entry_id,
                other.batch_index,
                other.partition,
            ))
    }
}

impl PartialOrd for MessageId {
    fn partial_cmp(&self, other: &MessageId) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Pulsar's text form `ledger:entry:partition[:batch]`, as printed by its tools.
impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.ledger_id, self.entry_id, self.partition)?;
        if self.batch_index != -1 {
            write!(f, ":{}", self.batch_index)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordering_matches_pulsar() {
        let mut ids = [
            MessageId::LATEST,
            MessageId {
                batch_index: 1,
                ..MessageId::new(3, 4)
            },
            MessageId::new(3, 4),
            MessageId {
                batch_index: 0,
                ..MessageId::new(3, 4)
            },
            MessageId::new(2, 100),
            MessageId::EARLIEST,
        ];
        ids.sort();
        assert_eq!(ids[0], MessageId::EARLIEST);
        assert_eq!(ids[1], MessageId::new(2, 100));
        assert_eq!(ids[2], MessageId::new(3, 4));
        assert_eq!(ids[3].batch_index, 0);
        assert_eq!(ids[4].batch_index, 1);
        assert_eq!(ids[5], MessageId::LATEST);
    }

    #[test]
    fn earliest_round_trips_through_the_wire_as_all_ones() {
        let wire = MessageId::EARLIEST.to_proto();
        assert_eq!(wire.ledger_id, u64::MAX);
        assert_eq!(MessageId::from(&wire), MessageId::EARLIEST);
        let id = MessageId {
            partition: 2,
            batch_index: 5,
            ..MessageId::new(10, 20)
        };
        assert_eq!(MessageId::from(&id.to_proto()), id);
        assert_eq!(id.to_string(), "10:20:2:5");
    }
}
