//! Batch-index acknowledgement state of one entry: a bitset where a set bit means "this message
//! of the batch is still unacknowledged", in the same 64-bit words as the wire's `ack_set`
//! (Java's `BitSet.toLongArray`: bit `i` is bit `i % 64` of word `i / 64`).

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AckSet {
    words: Vec<u64>,
}

impl AckSet {
    /// From the wire's `ack_set` words (signed on the wire, same bits).
    pub fn from_words(words: &[i64]) -> Self {
        let mut set = Self {
            words: words.iter().map(|w| *w as u64).collect(),
        };
        set.trim();
        set
    }

    /// Every index in `0..batch_size` unacknowledged.
    pub fn all_unacked(batch_size: u32) -> Self {
        let n = batch_size as usize;
        let mut words = vec![u64::MAX; n / 64];
        if !n.is_multiple_of(64) {
            words.push((1u64 << (n % 64)) - 1);
        }
        Self { words }
    }

    fn trim(&mut self) {
        while self.words.last() == Some(&0) {
            self.words.pop();
        }
    }

    /// Keeps only the indexes unacknowledged in both (Java: `bitSet.and(given)`).
    pub fn and(&mut self, other: &AckSet) {
        for (i, w) in self.words.iter_mut().enumerate() {
            *w &= other.words.get(i).copied().unwrap_or(0);
        }
        self.trim();
    }

    /// Whether every index is acknowledged.
    pub fn is_empty(&self) -> bool {
        self.words.is_empty()
    }

    pub fn is_unacked(&self, index: u32) -> bool {
        let (word, bit) = ((index / 64) as usize, index % 64);
        self.words.get(word).is_some_and(|w| w & (1u64 << bit) != 0)
    }

    pub fn unacked_count(&self) -> u32 {
        self.words.iter().map(|w| w.count_ones()).sum()
    }

    /// The wire form, for `MESSAGE.ack_set` and for persistence.
    pub fn to_words(&self) -> Vec<i64> {
        self.words.iter().map(|w| *w as i64).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_follow_java_long_array_layout() {
        let mut s = AckSet::all_unacked(70);
        assert_eq!(s.to_words(), vec![-1, 0b11_1111]);
        assert_eq!(s.unacked_count(), 70);
        // Ack index 0 and 65: clear those bits.
        s.and(&AckSet::from_words(&[-2, 0b11_1101]));
        assert!(!s.is_unacked(0) && s.is_unacked(1) && !s.is_unacked(65) && s.is_unacked(64));
        assert!(!s.is_unacked(70) && !s.is_unacked(1000));
        s.and(&AckSet::from_words(&[0]));
        assert!(s.is_empty());
    }
}
