//! Golden frames captured from the real Python `pulsar-client` 3.13.0 (C++ client 4.2.0) by
//! `tests/golden/capture.py`. Steps for each file:
//! 1. decode it with `PulsarCodec` as one complete frame, nothing left over;
//! 2. check the fields the capture script set (see `tests/golden/manifest.json`);
//! 3. re-encode the decoded frame and compare with the captured bytes, byte for byte.

use bytes::BytesMut;
use magnetar_protocol::batch::decode_batch;
use magnetar_protocol::compression::decompress;
use magnetar_protocol::pulsar::base_command::Type;
use magnetar_protocol::pulsar::command_ack::AckType;
use magnetar_protocol::pulsar::command_subscribe::{InitialPosition, SubType};
use magnetar_protocol::pulsar::{CompressionType, KeySharedMode, ProducerAccessMode};
use magnetar_protocol::{Frame, PulsarCodec};
use tokio_util::codec::{Decoder, Encoder};

const TOPIC: &str = "persistent://public/default/golden";

fn golden(name: &str) -> Frame {
    // The directory cargo runs the test in (a build reused from another checkout would carry
    // that checkout's compile-time path).
    let dir =
        std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into());
    let path = format!("{dir}/tests/golden/{name}");
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut buf = BytesMut::from(&bytes[..]);
    let frame = PulsarCodec::default()
        .decode(&mut buf)
        .unwrap_or_else(|e| panic!("{name}: {e}"))
        .unwrap_or_else(|| panic!("{name}: incomplete frame"));
    assert!(buf.is_empty(), "{name}: {} bytes left over", buf.len());
    let mut again = BytesMut::new();
    PulsarCodec::default()
        .encode(&frame, &mut again)
        .expect("re-encodes");
    assert_eq!(
        &again[..],
        &bytes[..],
        "{name}: re-encoding differs from the captured bytes"
    );
    frame
}

fn kind(frame: &Frame) -> Type {
    frame.command.kind().expect("known command type")
}

#[test]
fn connect_with_token() {
    let frame = golden("connect_token.bin");
    assert_eq!(kind(&frame), Type::Connect);
    let connect = frame.command.connect.expect("connect");
    assert_eq!(connect.client_version, "Pulsar-CPP-v4.2.0");
    assert_eq!(connect.protocol_version(), 20);
    assert_eq!(connect.auth_method_name(), "token");
    assert_eq!(
        connect.auth_data(),
        b"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl"
    );
    let flags = connect.feature_flags.expect("feature flags");
    assert!(flags.supports_auth_refresh() && flags.supports_broker_entry_metadata());
    assert!(!flags.supports_partial_producer() && !flags.supports_topic_watchers());
}

#[test]
fn connect_without_auth() {
    let connect = golden("connect_noauth.bin")
        .command
        .connect
        .expect("connect");
    assert_eq!(connect.auth_method_name(), "none");
    assert!(connect.auth_data.is_none());
}

#[test]
fn partitioned_metadata_and_lookup() {
    let frame = golden("partitioned_metadata.bin");
    assert_eq!(kind(&frame), Type::PartitionedMetadata);
    let request = frame
        .command
        .partition_metadata
        .expect("partitioned metadata");
    assert_eq!(request.topic, TOPIC);

    let frame = golden("lookup.bin");
    assert_eq!(kind(&frame), Type::Lookup);
    let lookup = frame.command.lookup_topic.expect("lookup");
    assert_eq!(lookup.topic, TOPIC);
    assert_eq!(lookup.authoritative, Some(false));
    assert_eq!(lookup.advertised_listener_name.as_deref(), Some(""));
}

#[test]
fn producer() {
    let producer = golden("producer.bin").command.producer.expect("producer");
    assert_eq!(producer.topic, TOPIC);
    assert_eq!(producer.producer_name, None, "the broker names it");
    assert_eq!(producer.user_provided_producer_name, Some(false));
    assert_eq!(producer.producer_access_mode(), ProducerAccessMode::Shared);
    assert!(producer.schema.is_none(), "bytes schema sends no schema");
}

#[test]
fn send_single_message() {
    let frame = golden("send_single.bin");
    let send = frame.command.send.as_ref().expect("send");
    assert_eq!(send.num_messages, None);
    let payload = frame.payload.expect("payload");
    assert!(payload.has_checksum());
    payload
        .verify_checksum()
        .expect("client's CRC32C matches ours");
    let metadata = payload.metadata().expect("metadata");
    assert_eq!(metadata.sequence_id, send.sequence_id);
    assert!(!metadata.producer_name.is_empty());
    assert!(
        metadata.num_messages_in_batch.is_none(),
        "a single message is not a batch"
    );
    assert_eq!(&payload.body()[..], b"hello");
}

#[test]
fn send_batch_of_three_with_keys_and_properties() {
    let frame = golden("send_batch3.bin");
    assert_eq!(
        frame.command.send.as_ref().expect("send").num_messages,
        Some(3)
    );
    let payload = frame.payload.expect("payload");
    payload.verify_checksum().expect("checksum");
    let metadata = payload.metadata().expect("metadata");
    assert_eq!(metadata.num_messages_in_batch, Some(3));
    assert_eq!(metadata.partition_key.as_deref(), Some("key-1"));
    assert!(
        metadata.properties.is_empty(),
        "properties live per message"
    );
    let messages = decode_batch(&payload.body(), 3).expect("batch");
    for (i, message) in messages.iter().enumerate() {
        let n = i + 1;
        assert_eq!(&message.payload[..], format!("batch-{n}").as_bytes());
        assert_eq!(
            message.metadata.partition_key.as_deref(),
            Some(&*format!("key-{n}"))
        );
        assert_eq!(message.metadata.properties[0].key, "k");
        assert_eq!(message.metadata.properties[0].value, format!("v{n}"));
        assert_eq!(message.metadata.sequence_id, Some(i as u64));
    }
}

#[test]
fn compressed_payloads_from_the_real_client_decompress() {
    for (file, codec) in [
        ("send_single_lz4.bin", CompressionType::Lz4),
        ("send_single_zlib.bin", CompressionType::Zlib),
        ("send_single_zstd.bin", CompressionType::Zstd),
        ("send_single_snappy.bin", CompressionType::Snappy),
    ] {
        let payload = golden(file).payload.expect("payload");
        payload.verify_checksum().expect("checksum");
        let metadata = payload.metadata().expect("metadata");
        assert_eq!(metadata.compression(), codec, "{file}");
        assert_eq!(metadata.uncompressed_size, Some(200), "{file}");
        let out =
            decompress(metadata.compression() as i32, &payload.body(), 200, 1 << 20).expect(file);
        assert_eq!(out, vec![b'a'; 200], "{file}");
    }
}

#[test]
fn subscribe_for_each_type() {
    for (file, sub_type) in [
        ("subscribe_exclusive.bin", SubType::Exclusive),
        ("subscribe_shared.bin", SubType::Shared),
        ("subscribe_failover.bin", SubType::Failover),
        ("subscribe_key_shared.bin", SubType::KeyShared),
    ] {
        let subscribe = golden(file).command.subscribe.expect("subscribe");
        assert_eq!(subscribe.topic, TOPIC, "{file}");
        assert_eq!(subscribe.sub_type(), sub_type, "{file}");
        assert!(subscribe.subscription.starts_with("golden-"), "{file}");
        assert!(subscribe.durable(), "{file}");
        assert_eq!(
            subscribe.initial_position(),
            InitialPosition::Latest,
            "{file}"
        );
        assert_eq!(
            subscribe.consumer_name().len(),
            10,
            "{file}: random 10 hex chars"
        );
        let key_shared = subscribe.key_shared_meta.as_ref();
        assert_eq!(
            key_shared.is_some(),
            sub_type == SubType::KeyShared,
            "{file}"
        );
        if let Some(meta) = key_shared {
            assert_eq!(meta.key_shared_mode(), KeySharedMode::AutoSplit);
            assert!(meta.hash_ranges.is_empty());
        }
    }
}

#[test]
fn flow_acks_and_closes() {
    let flow = golden("flow.bin").command.flow.expect("flow");
    assert_eq!(flow.message_permits, 1000);

    for (file, ack_type) in [
        ("ack_individual.bin", AckType::Individual),
        ("ack_cumulative.bin", AckType::Cumulative),
    ] {
        let ack = golden(file).command.ack.expect("ack");
        assert_eq!(ack.ack_type(), ack_type, "{file}");
        assert_eq!(ack.message_id.len(), 1, "{file}");
        assert!(
            ack.message_id[0].ack_set.is_empty(),
            "{file}: whole-entry ack"
        );
        assert!(ack.request_id.is_none(), "{file}: no ack receipt asked");
    }

    assert_eq!(kind(&golden("close_producer.bin")), Type::CloseProducer);
    assert_eq!(kind(&golden("close_consumer.bin")), Type::CloseConsumer);
    assert_eq!(kind(&golden("unsubscribe.bin")), Type::Unsubscribe);
    assert_eq!(kind(&golden("pong.bin")), Type::Pong);
}
