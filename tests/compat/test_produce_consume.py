"""Produce and consume with the official Python client (pulsar-client, C++ 4.x inside)."""

import uuid

import pulsar
import pytest


def topic(name):
    return f"persistent://public/default/{name}-{uuid.uuid4().hex[:8]}"


def receive_all(consumer, n, timeout_ms=10000):
    out = []
    for _ in range(n):
        msg = consumer.receive(timeout_millis=timeout_ms)
        out.append(msg)
        consumer.acknowledge(msg)
    return out


def test_exclusive_with_properties_keys_and_event_time(client):
    t = topic("exclusive")
    consumer = client.subscribe(t, "sub", consumer_type=pulsar.ConsumerType.Exclusive)
    producer = client.create_producer(t, batching_enabled=False)
    for i in range(20):
        producer.send(f"msg-{i}".encode(), properties={"i": str(i)}, partition_key=f"k{i % 3}", event_timestamp=1000 + i)
    msgs = receive_all(consumer, 20)
    assert [m.data().decode() for m in msgs] == [f"msg-{i}" for i in range(20)]
    assert msgs[5].properties() == {"i": "5"}
    assert msgs[5].partition_key() == "k2"
    assert msgs[5].event_timestamp() == 1005
    # A second consumer on an exclusive subscription is refused.
    with pytest.raises(Exception):
        client.subscribe(t, "sub", consumer_type=pulsar.ConsumerType.Exclusive)
    producer.close()
    consumer.close()


@pytest.mark.parametrize("compression", [
    pulsar.CompressionType.NONE, pulsar.CompressionType.LZ4, pulsar.CompressionType.ZLib,
    pulsar.CompressionType.ZSTD, pulsar.CompressionType.SNAPPY,
])
def test_batching_with_each_codec(client, compression):
    t = topic("batch")
    consumer = client.subscribe(t, "sub")
    producer = client.create_producer(t, batching_enabled=True, batching_max_messages=50,
                                      batching_max_publish_delay_ms=10, compression_type=compression)
    for i in range(200):
        producer.send_async(f"b-{i}".encode() * 10, None)
    producer.flush()
    msgs = receive_all(consumer, 200)
    assert [m.data() for m in msgs] == [f"b-{i}".encode() * 10 for i in range(200)]
    producer.close()
    consumer.close()


def test_shared_spreads_messages_and_loses_none(client):
    t = topic("shared")
    c1 = client.subscribe(t, "sub", consumer_type=pulsar.ConsumerType.Shared, receiver_queue_size=10)
    c2 = client.subscribe(t, "sub", consumer_type=pulsar.ConsumerType.Shared, receiver_queue_size=10)
    producer = client.create_producer(t, batching_enabled=False)
    for i in range(100):
        producer.send(str(i).encode())
    got = {1: [], 2: []}
    remaining = 100
    while remaining:
        for idx, c in ((1, c1), (2, c2)):
            try:
                m = c.receive(timeout_millis=200)
            except Exception:
                continue
            c.acknowledge(m)
            got[idx].append(int(m.data()))
            remaining -= 1
    assert sorted(got[1] + got[2]) == list(range(100))
    assert got[1] and got[2], "both consumers received messages"
    c1.close()
    c2.close()


def test_failover_switches_to_the_standby(client):
    t = topic("failover")
    c1 = client.subscribe(t, "sub", consumer_type=pulsar.ConsumerType.Failover, consumer_name="a")
    c2 = client.subscribe(t, "sub", consumer_type=pulsar.ConsumerType.Failover, consumer_name="b")
    producer = client.create_producer(t, batching_enabled=False)
    for i in range(10):
        producer.send(str(i).encode())
    active, standby = c1, c2
    try:
        first = active.receive(timeout_millis=5000)
    except Exception:
        active, standby = c2, c1
        first = active.receive(timeout_millis=5000)
    active.acknowledge(first)
    assert first.data() == b"0"
    active.close()
    rest = receive_all(standby, 9)
    assert [int(m.data()) for m in rest] == list(range(1, 10))
    standby.close()


def test_key_shared_keeps_per_key_order(client):
    t = topic("keyshared")
    c1 = client.subscribe(t, "sub", consumer_type=pulsar.ConsumerType.KeyShared)
    c2 = client.subscribe(t, "sub", consumer_type=pulsar.ConsumerType.KeyShared)
    producer = client.create_producer(t, batching_enabled=False)
    for i in range(200):
        producer.send(str(i).encode(), partition_key=f"key-{i % 10}")
    seen = {}
    count = 0
    while count < 200:
        for c in (c1, c2):
            try:
                m = c.receive(timeout_millis=200)
            except Exception:
                continue
            c.acknowledge(m)
            seen.setdefault(m.partition_key(), []).append(int(m.data()))
            count += 1
    for key, values in seen.items():
        assert values == sorted(values), f"{key} out of order"
    assert sum(len(v) for v in seen.values()) == 200
    c1.close()
    c2.close()


def test_cumulative_ack_and_negative_ack_redelivery(client):
    t = topic("acks")
    consumer = client.subscribe(t, "sub", negative_ack_redelivery_delay_ms=100)
    producer = client.create_producer(t, batching_enabled=False)
    for i in range(5):
        producer.send(str(i).encode())
    first = consumer.receive(timeout_millis=5000)
    consumer.negative_acknowledge(first)
    redelivered = None
    for _ in range(10):
        m = consumer.receive(timeout_millis=5000)
        if m.data() == first.data():
            redelivered = m
            break
        consumer.acknowledge(m)
    assert redelivered is not None
    assert redelivered.redelivery_count() >= 1
    consumer.acknowledge_cumulative(redelivered)
    consumer.close()


def test_seek_and_readers(client):
    t = topic("seek")
    producer = client.create_producer(t, batching_enabled=False)
    ids = [producer.send(str(i).encode()) for i in range(10)]
    consumer = client.subscribe(t, "sub", initial_position=pulsar.InitialPosition.Earliest)
    receive_all(consumer, 10)
    # The broker rewinds to the id inclusively; the client skips up to the seek id (Pulsar's
    # default resetIncludeHead=false), so the next message is the one after it.
    consumer.seek(ids[3])
    again = consumer.receive(timeout_millis=10000)
    assert again.data() == b"4"
    consumer.close()

    reader = client.create_reader(t, pulsar.MessageId.earliest)
    assert [reader.read_next(timeout_millis=5000).data() for _ in range(10)] == [str(i).encode() for i in range(10)]
    assert not reader.has_message_available()
    reader.close()

    reader = client.create_reader(t, ids[6])
    assert reader.read_next(timeout_millis=5000).data() == b"7"
    reader.close()


def test_partitioned_topic(client, standalone):
    name = f"parts-{uuid.uuid4().hex[:8]}"
    standalone.metadata("put", f"/admin/partitioned-topics/public/default/persistent/{name}", '{"partitions": 3}')
    t = f"persistent://public/default/{name}"
    assert len(client.get_topic_partitions(t)) == 3
    consumer = client.subscribe(t, "sub")
    producer = client.create_producer(t, batching_enabled=False)
    for i in range(60):
        producer.send(str(i).encode(), partition_key=f"k{i}")
    values = sorted(int(m.data()) for m in receive_all(consumer, 60))
    assert values == list(range(60))
    producer.close()
    consumer.close()


def test_invalid_topic_name_is_refused(client):
    with pytest.raises(Exception):
        client.create_producer("persistent://public/default")


def test_string_and_json_schemas_are_stored_with_versions(client):
    from pulsar.schema import JsonSchema, Record, String, StringSchema

    t = topic("schema")
    producer = client.create_producer(t, schema=StringSchema())
    consumer = client.subscribe(t, "sub", schema=StringSchema())
    producer.send("hello schema")
    msg = consumer.receive(timeout_millis=5000)
    assert msg.value() == "hello schema"
    consumer.acknowledge(msg)

    class Order(Record):
        item = String()

    t2 = topic("json-schema")
    json_producer = client.create_producer(t2, schema=JsonSchema(Order))
    json_consumer = client.subscribe(t2, "sub", schema=JsonSchema(Order))
    json_producer.send(Order(item="book"))
    assert json_consumer.receive(timeout_millis=5000).value().item == "book"
    for c in (producer, consumer, json_producer, json_consumer):
        c.close()


def test_message_ttl_expires_old_backlog(client, standalone):
    """A namespace with a 1 s message TTL: a backlog older than that is expired (acknowledged)
    for the subscription within the broker's 5 s TTL check."""
    import json
    import time

    standalone.metadata("put", "/admin/policies/public/ttl", json.dumps({"message_ttl_in_seconds": 1}))
    t = f"persistent://public/ttl/expiring-{uuid.uuid4().hex[:8]}"
    client.subscribe(t, "sub").close()
    producer = client.create_producer(t, batching_enabled=False)
    for i in range(5):
        producer.send(f"old-{i}".encode())
    time.sleep(7)  # TTL (1 s) plus one broker TTL check (every 5 s)
    producer.send(b"fresh")
    consumer = client.subscribe(t, "sub")
    assert consumer.receive(timeout_millis=10000).data() == b"fresh"
    consumer.close()
    producer.close()
