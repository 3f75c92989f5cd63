//! Random but valid protobuf messages for seeds, for any prost message type, without a schema:
//! fields with random numbers, wire types and values are appended one at a time and kept only
//! when the whole message still decodes (prost refuses a known field with the wrong wire type
//! and skips unknown ones). Decoding and re-encoding then gives the message in its normal form,
//! with required fields filled in.

use prost::Message;

use crate::rng::Rng;

fn varint(mut value: u64, out: &mut Vec<u8>) {
    loop {
        let b = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

fn random_varint(rng: &mut Rng) -> u64 {
    match rng.below(5) {
        0 => rng.below(2) as u64,
        1 => rng.below(16) as u64,
        2 => rng.below(1 << 16) as u64,
        3 => u64::MAX - rng.below(4) as u64,
        _ => rng.next_u64() >> rng.below(64),
    }
}

/// One field: a random number up to `max_field`, a random wire type, a random value. Length
/// delimited values are strings, bytes or (up to `depth` levels) nested random fields.
fn random_field(rng: &mut Rng, max_field: u32, depth: u32, out: &mut Vec<u8>) {
    let field = 1 + rng.below(max_field as usize) as u64;
    let wire = *rng.pick(&[0u64, 0, 0, 2, 2, 2, 1, 5]);
    varint((field << 3) | wire, out);
    match wire {
        0 => varint(random_varint(rng), out),
        1 => out.extend_from_slice(&rng.next_u64().to_le_bytes()),
        5 => out.extend_from_slice(&(rng.next_u64() as u32).to_le_bytes()),
        _ => {
            let body = match rng.below(4) {
                0 => Vec::new(),
                1 => {
                    let len = rng.below(24);
                    (0..len).map(|_| b'a' + rng.below(26) as u8).collect()
                }
                2 if depth > 0 => {
                    let mut nested = Vec::new();
                    for _ in 0..1 + rng.below(4) {
                        random_field(rng, max_field, depth - 1, &mut nested);
                    }
                    nested
                }
                _ => {
                    let len = rng.below(32);
                    rng.bytes(len)
                }
            };
            varint(body.len() as u64, out);
            out.extend_from_slice(&body);
        }
    }
}

/// Field bytes grown by `tries` attempts, each kept only if `valid` accepts the result.
pub fn grow(rng: &mut Rng, max_field: u32, tries: usize, valid: impl Fn(&[u8]) -> bool) -> Vec<u8> {
    let mut bytes = Vec::new();
    for _ in 0..tries {
        let keep = bytes.len();
        random_field(rng, max_field, 2, &mut bytes);
        if !valid(&bytes) {
            bytes.truncate(keep);
        }
    }
    bytes
}

/// A random message of type `M` in normal form.
pub fn random_message<M: Message + Default>(rng: &mut Rng, max_field: u32, tries: usize) -> M {
    let bytes = grow(rng, max_field, tries, |b| M::decode(b).is_ok());
    M::decode(&bytes[..]).unwrap_or_default()
}

/// `[tag field, length delimited][len][body]`: `body` as sub-message `field`.
pub fn wrap_field(field: u32, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 8);
    varint((u64::from(field) << 3) | 2, &mut out);
    varint(body.len() as u64, &mut out);
    out.extend_from_slice(body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use magnetar_protocol::pulsar::CommandConnect;

    #[test]
    fn random_messages_are_valid_and_varied() {
        let mut rng = Rng::new(3);
        let mut distinct = std::collections::HashSet::new();
        for _ in 0..50 {
            let m: CommandConnect = random_message(&mut rng, 12, 40);
            let bytes = m.encode_to_vec();
            assert_eq!(CommandConnect::decode(&bytes[..]).expect("valid"), m);
            distinct.insert(bytes);
        }
        assert!(distinct.len() > 25, "{}", distinct.len());
    }
}
