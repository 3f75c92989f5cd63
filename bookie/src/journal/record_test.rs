use super::*;

fn entry(ledger_id: u64, entry_id: u64, data: &'static [u8]) -> Record {
    Record::Entry {
        ledger_id,
        entry_id,
        last_add_confirmed: entry_id.checked_sub(1),
        data: Bytes::from_static(data),
    }
}

fn encoded(record: &Record) -> Vec<u8> {
    let mut buf = Vec::new();
    record.encode(&mut buf);
    buf
}

#[test]
fn every_kind_round_trips() {
    for record in [
        entry(7, 0, b""),
        entry(u64::MAX - 1, 42, b"hello journal"),
        Record::Fence { ledger_id: 9 },
        Record::DeleteLedger { ledger_id: 10 },
    ] {
        let bytes = encoded(&record);
        assert_eq!(bytes.len(), record.encoded_len());
        assert_eq!(
            decode(&bytes),
            Decoded::Record {
                record: record.clone(),
                len: bytes.len()
            }
        );
    }
}

#[test]
fn layout_is_documented_one() {
    let bytes = encoded(&entry(1, 2, b"xy"));
    assert_eq!(&bytes[0..4], &27u32.to_be_bytes());
    assert_eq!(&bytes[4..8], &crc32c::crc32c(&bytes[8..]).to_be_bytes());
    assert_eq!(bytes[8], 1);
    assert_eq!(&bytes[9..17], &1u64.to_be_bytes());
    assert_eq!(&bytes[17..25], &2u64.to_be_bytes());
    assert_eq!(&bytes[25..33], &1u64.to_be_bytes());
    assert_eq!(&bytes[33..], b"xy");
}

#[test]
fn zeros_and_empty_input_end_the_segment() {
    assert_eq!(decode(&[]), Decoded::End);
    assert_eq!(decode(&[0; 3]), Decoded::End);
    assert_eq!(decode(&[0; 4096]), Decoded::End);
}

#[test]
fn every_truncation_is_damage_not_a_record() {
    let bytes = encoded(&entry(3, 4, b"some payload bytes"));
    for cut in 1..bytes.len() {
        match decode(&bytes[..cut]) {
            Decoded::Damaged(_) => {}
            // A cut inside the leading zero bytes of the length cannot be told from zeroed space.
            Decoded::End if bytes[..cut].iter().all(|b| *b == 0) => {}
            other => panic!("cut at {cut}: {other:?}"),
        }
    }
}

#[test]
fn every_bit_flip_is_detected() {
    let bytes = encoded(&entry(3, 4, b"payload"));
    for i in 0..bytes.len() {
        for bit in 0..8 {
            let mut damaged = bytes.clone();
            damaged[i] ^= 1 << bit;
            // A flipped length may still point inside the buffer; anything but the original
            // record is acceptable, and it must never decode as a record.
            if let Decoded::Record { record, .. } = decode(&damaged) {
                panic!("flip of bit {bit} in byte {i} decoded as {record:?}");
            }
        }
    }
}

#[test]
fn absurd_lengths_are_damage() {
    let mut bytes = vec![0xff; 16];
    assert_eq!(
        decode(&bytes),
        Decoded::Damaged(Damage::BadLength(u32::MAX as usize))
    );
    bytes[..4].copy_from_slice(&3u32.to_be_bytes());
    assert_eq!(decode(&bytes), Decoded::Damaged(Damage::BadLength(3)));
}
