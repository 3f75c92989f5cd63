//! The hashes Java's broker uses to pick consumers, bit for bit.
//!
//! Pulsar's `Murmur3_32Hash.makeHash(bytes)` is MurmurHash3 x86 32-bit with seed 0, masked to a
//! non-negative `int` (`& Integer.MAX_VALUE`). Key_Shared maps a message's sticky key (ordering
//! key, else partition key, else the bytes `"NONE_KEY"`) to a slot in `1..=65535`
//! (`StickyKeyConsumerSelectorUtils.makeStickyKeyHash` with the default range `[1, 65535]`;
//! slot 0 means "not set").

use std::io::Cursor;

/// Java's `Murmur3_32Hash.getInstance().makeHash(bytes)`.
pub fn java_murmur3_32(bytes: &[u8]) -> u32 {
    // Reading from an in-memory slice cannot fail.
    let raw = murmur3::murmur3_32(&mut Cursor::new(bytes), 0).expect("reading a byte slice");
    raw & 0x7fff_ffff
}

/// The sticky key Java uses when a message has neither ordering key nor partition key.
pub const NONE_KEY: &[u8] = b"NONE_KEY";

/// Size of the Key_Shared hash space, Java's `StickyKeyConsumerSelector.DEFAULT_RANGE_SIZE`.
pub const KEY_HASH_RANGE_SIZE: u32 = 65536;

/// The key whose hash routes a Key_Shared message: `ordering_key` if present, else the
/// `partition_key` (the shell base64-decodes it first when `partition_key_b64_encoded`), else
/// [`NONE_KEY`].
pub fn sticky_key<'a>(ordering_key: Option<&'a [u8]>, partition_key: Option<&'a [u8]>) -> &'a [u8] {
    ordering_key.or(partition_key).unwrap_or(NONE_KEY)
}

/// The Key_Shared slot of a sticky key, in `1..=65535`.
pub fn sticky_key_hash(key: &[u8]) -> u32 {
    // Java: makeHash(key) % range.size() + range.start with range [1, 65535].
    java_murmur3_32(key) % (KEY_HASH_RANGE_SIZE - 1) + 1
}

/// The hash a STICKY Key_Shared subscription routes by, in `0..=65535` (Java's
/// `HashRangeExclusiveStickyKeyConsumerSelector` with its range of 65536).
pub fn sticky_range_hash(key: &[u8]) -> u32 {
    java_murmur3_32(key) % KEY_HASH_RANGE_SIZE
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur3_matches_java_values() {
        // Values asserted "same as Java client" in pulsar-client-cpp's HashTest and
        // pulsar-client-go's hash_test.
        for (key, java) in [
            ("k1", 2110152746),
            ("k2", 1479966664),
            ("key1", 462881061),
            ("key2", 1936800180),
            ("key01", 39696932),
            ("key02", 751761803),
            ("hello", 0x248b_fa47),
            ("test", 0x3a6b_d213),
            ("", 0),
        ] {
            assert_eq!(java_murmur3_32(key.as_bytes()), java, "{key}");
        }
    }

    #[test]
    fn murmur3_is_masked_to_a_non_negative_int() {
        let any_high_bit = (0..1000u32)
            .map(|i| murmur3::murmur3_32(&mut Cursor::new(i.to_string()), 0).unwrap_or(0))
            .any(|h| h & 0x8000_0000 != 0);
        assert!(any_high_bit, "test input should exercise the mask");
        for i in 0..1000u32 {
            assert!(java_murmur3_32(i.to_string().as_bytes()) <= 0x7fff_ffff);
        }
    }

    #[test]
    fn sticky_key_prefers_ordering_key_then_partition_key() {
        assert_eq!(sticky_key(Some(b"o"), Some(b"p")), b"o");
        assert_eq!(sticky_key(None, Some(b"p")), b"p");
        assert_eq!(sticky_key(None, None), NONE_KEY);
        for key in ["", "a", "NONE_KEY", "k1"] {
            let h = sticky_key_hash(key.as_bytes());
            assert!((1..=65535).contains(&h));
            assert_eq!(h, java_murmur3_32(key.as_bytes()) % 65535 + 1);
        }
    }
}
