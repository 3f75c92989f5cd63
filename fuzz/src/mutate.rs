//! Byte-level mutations, deterministic given the generator: flips, inserts, deletes, splices
//! between corpus entries, tweaks of big-endian length fields and protobuf varints, and
//! "interesting" integers (0, 1, -1, the type's extremes, the input's own length).

use crate::rng::Rng;

/// Values that tend to sit on boundaries: sizes, signs, overflow points.
const INTERESTING_32: [u32; 14] = [
    0,
    1,
    2,
    4,
    0x7f,
    0x80,
    0xff,
    0x100,
    0xffff,
    0x1_0000,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_fffe,
    u32::MAX,
];

/// Applies 1, 2, 4 or 8 stacked mutations to `data`, with `other` (another corpus entry) as
/// splice material, keeping the result at most `max_len` bytes.
pub fn mutate(rng: &mut Rng, data: &mut Vec<u8>, other: &[u8], max_len: usize) {
    let rounds = 1 << rng.below(4);
    for _ in 0..rounds {
        mutate_once(rng, data, other);
    }
    data.truncate(max_len);
}

fn mutate_once(rng: &mut Rng, data: &mut Vec<u8>, other: &[u8]) {
    if data.is_empty() {
        let len = 1 + rng.below(16);
        data.extend(rng.bytes(len));
        return;
    }
    match rng.below(13) {
        0 => {
            let at = rng.below(data.len());
            data[at] ^= 1 << rng.below(8);
        }
        1 => {
            let at = rng.below(data.len());
            data[at] = rng.byte();
        }
        2 => {
            // Insert a few random bytes, or a repeated one.
            let at = rng.below(data.len() + 1);
            let len = 1 + rng.below(8);
            let bytes = if rng.one_in(2) {
                rng.bytes(len)
            } else {
                vec![rng.byte(); len]
            };
            data.splice(at..at, bytes);
        }
        3 => {
            let at = rng.below(data.len());
            let len = 1 + rng.below((data.len() - at).min(32));
            data.drain(at..at + len);
        }
        4 => {
            // Duplicate a range in place (repeated fields, repeated frames).
            let at = rng.below(data.len());
            let len = 1 + rng.below((data.len() - at).min(64));
            let copy = data[at..at + len].to_vec();
            let to = rng.below(data.len() + 1);
            data.splice(to..to, copy);
        }
        5 if !other.is_empty() => {
            // Splice: a prefix of this input, then a piece of another corpus entry.
            let cut = rng.below(data.len() + 1);
            let from = rng.below(other.len());
            let len = 1 + rng.below(other.len() - from);
            data.truncate(cut);
            data.extend_from_slice(&other[from..from + len]);
        }
        6 => interesting(rng, data),
        7 => tweak_be_u32(rng, data),
        8 | 9 => tweak_varint(rng, data),
        10 => {
            // Truncate: the most common way a real stream is cut short.
            let len = rng.below(data.len());
            data.truncate(len);
        }
        11 => {
            // Arithmetic on one byte.
            let at = rng.below(data.len());
            let delta = 1 + rng.below(16) as u8;
            data[at] = if rng.one_in(2) {
                data[at].wrapping_add(delta)
            } else {
                data[at].wrapping_sub(delta)
            };
        }
        _ => {
            // Swap two bytes.
            let a = rng.below(data.len());
            let b = rng.below(data.len());
            data.swap(a, b);
        }
    }
}

/// Overwrites 1, 2, 4 or 8 bytes with an interesting value, big- or little-endian.
fn interesting(rng: &mut Rng, data: &mut [u8]) {
    let width = *rng.pick(&[1usize, 2, 4, 8]);
    if data.len() < width {
        return;
    }
    let at = rng.below(data.len() - width + 1);
    let value: u64 = match rng.below(4) {
        0 => data.len() as u64,
        1 => (data.len() - at) as u64,
        2 => u64::MAX,
        _ => u64::from(*rng.pick(&INTERESTING_32)),
    };
    let bytes = if rng.one_in(2) {
        value.to_be_bytes()
    } else {
        value.to_le_bytes()
    };
    let slice = if rng.one_in(2) {
        &bytes[8 - width..]
    } else {
        &bytes[..width]
    };
    data[at..at + width].copy_from_slice(slice);
}

/// Adds a small delta to a big-endian u32 (Pulsar's and the bookie's length prefixes), or sets
/// it to the bytes that follow it.
fn tweak_be_u32(rng: &mut Rng, data: &mut [u8]) {
    if data.len() < 4 {
        return;
    }
    let at = rng.below(data.len() - 3);
    let old = u32::from_be_bytes([data[at], data[at + 1], data[at + 2], data[at + 3]]);
    let new = match rng.below(3) {
        0 => (data.len() - at - 4) as u32,
        1 => old.wrapping_add(1 + rng.below(8) as u32),
        _ => old.wrapping_sub(1 + rng.below(8) as u32),
    };
    data[at..at + 4].copy_from_slice(&new.to_be_bytes());
}

/// Re-encodes the LEB128 varint starting at a random byte (protobuf tags, lengths and integers)
/// with a nearby or boundary value; the encoding may grow or shrink.
fn tweak_varint(rng: &mut Rng, data: &mut Vec<u8>) {
    let at = rng.below(data.len());
    let mut value = 0u64;
    let mut len = 0;
    while at + len < data.len() && len < 10 {
        let b = data[at + len];
        value |= u64::from(b & 0x7f) << (7 * len);
        len += 1;
        if b & 0x80 == 0 {
            break;
        }
    }
    let new = match rng.below(6) {
        0 => value.wrapping_add(1),
        1 => value.wrapping_sub(1),
        2 => value.wrapping_mul(2).wrapping_add(rng.below(128) as u64),
        3 => (data.len() - at) as u64,
        4 => u64::MAX,
        _ => u64::from(*rng.pick(&INTERESTING_32)),
    };
    let mut encoded = Vec::with_capacity(10);
    let mut v = new;
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            encoded.push(b);
            break;
        }
        encoded.push(b | 0x80);
    }
    data.splice(at..at + len, encoded);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_for_a_seed() {
        let run = |seed| {
            let mut rng = Rng::new(seed);
            let mut data = b"hello, fuzzer".to_vec();
            for _ in 0..100 {
                mutate(&mut rng, &mut data, b"other entry", 64);
            }
            data
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
    }

    #[test]
    fn respects_the_length_limit_and_handles_empty_inputs() {
        let mut rng = Rng::new(1);
        for _ in 0..10_000 {
            let mut data = Vec::new();
            mutate(&mut rng, &mut data, b"", 16);
            assert!(data.len() <= 16);
        }
    }
}
