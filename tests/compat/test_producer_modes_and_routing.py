"""Producer access modes, Key_Shared routing, pattern subscriptions and topic-name checks, with
the official Python client (pulsar-client 3.13, C++ 4.2 inside)."""

import json
import threading
import time
import urllib.error
import urllib.request
import uuid

import _pulsar
import pulsar
import pytest


def topic(name):
    return f"persistent://public/default/{name}-{uuid.uuid4().hex[:8]}"


def wait_until(condition, timeout=20.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise TimeoutError(f"{what} not met within {timeout}s")


def publishers(standalone, t):
    local = t.split("/")[-1]
    url = f"{standalone.admin_url}/admin/v2/persistent/public/default/{local}/stats"
    with urllib.request.urlopen(url) as r:
        return [p.get("producerName") for p in json.load(r)["publishers"]]


def test_an_exclusive_producer_keeps_others_out(client):
    t = topic("exclusive-producer")
    first = client.create_producer(t, access_mode=pulsar.ProducerAccessMode.Exclusive)
    with pytest.raises(pulsar.ProducerBusy):
        client.create_producer(t)
    with pytest.raises(pulsar.ProducerFenced):
        client.create_producer(t, access_mode=pulsar.ProducerAccessMode.Exclusive)
    first.send(b"still mine")
    first.close()
    # Free again: shared producers may join, and then keep an exclusive one out.
    shared = client.create_producer(t)
    with pytest.raises(pulsar.ProducerFenced):
        client.create_producer(t, access_mode=pulsar.ProducerAccessMode.Exclusive)
    shared.close()


def test_wait_for_exclusive_takes_over_when_the_holder_leaves(client, standalone):
    t = topic("wait-for-exclusive")
    holder = client.create_producer(t, producer_name="holder",
                                    access_mode=pulsar.ProducerAccessMode.Exclusive)
    created = {}

    def wait_for_it():
        created["p"] = client.create_producer(
            t, producer_name="waiter", access_mode=pulsar.ProducerAccessMode.WaitForExclusive)

    waiter = threading.Thread(target=wait_for_it, daemon=True)
    waiter.start()
    # Queued: the holder keeps publishing, the waiter is not registered.
    for i in range(5):
        holder.send(f"h{i}".encode())
    assert waiter.is_alive()
    assert publishers(standalone, t) == ["holder"]
    holder.close()
    waiter.join(timeout=20)
    assert not waiter.is_alive(), "the waiting producer was not promoted"
    created["p"].send(b"w0")
    assert publishers(standalone, t) == ["waiter"]
    consumer = client.subscribe(t, "s", initial_position=pulsar.InitialPosition.Earliest)
    got = [consumer.receive(10000).data() for _ in range(6)]
    assert got == [b"h0", b"h1", b"h2", b"h3", b"h4", b"w0"]
    created["p"].close()
    consumer.close()


def test_exclusive_with_fencing_closes_the_others(standalone):
    t = topic("fencing")
    old_client = pulsar.Client(standalone.url, operation_timeout_seconds=5)
    new_client = pulsar.Client(standalone.url, operation_timeout_seconds=15)
    try:
        old = old_client.create_producer(t, producer_name="old", send_timeout_millis=3000)
        old.send(b"before")
        fencer = new_client.create_producer(
            t, producer_name="fencer", access_mode=pulsar.ProducerAccessMode.ExclusiveWithFencing)
        fencer.send(b"after")
        assert publishers(standalone, t) == ["fencer"]
        # The fenced producer cannot come back while the fencer holds the topic.
        with pytest.raises(Exception):
            old.send(b"lost")
        assert publishers(standalone, t) == ["fencer"]
        consumer = new_client.subscribe(t, "s", initial_position=pulsar.InitialPosition.Earliest)
        got = [consumer.receive(10000).data() for _ in range(2)]
        assert got == [b"before", b"after"]
        with pytest.raises(pulsar.Timeout):
            consumer.receive(500)
    finally:
        old_client.close()
        new_client.close()


@pytest.mark.parametrize("receiver_queue", [1, 10])
def test_key_shared_three_consumers_key_batches_all_arrive_in_key_order(client, receiver_queue):
    """The scenario from the field: key-based batches, three consumers with small queues. Every
    send is checked (an unchecked send_async drops messages at the client when its queue is full,
    which looked like a broker stall)."""
    t = topic("key-shared-3")
    consumers = [
        client.subscribe(t, "s", consumer_type=pulsar.ConsumerType.KeyShared,
                         receiver_queue_size=receiver_queue, consumer_name=f"c{i}")
        for i in range(3)
    ]
    producer = client.create_producer(
        t, batching_enabled=True, batching_type=pulsar.BatchingType.KeyBased,
        batching_max_publish_delay_ms=10, block_if_queue_full=True)
    n = 3000
    failures = []

    def sent(result, _msg_id):
        if result != pulsar.Result.Ok:
            failures.append(result)

    got = {}
    lock = threading.Lock()

    def consume(consumer):
        while True:
            try:
                msg = consumer.receive(timeout_millis=3000)
            except pulsar.Timeout:
                return
            with lock:
                got.setdefault(msg.partition_key(), []).append(int(msg.data()))
            consumer.acknowledge(msg)

    threads = [threading.Thread(target=consume, args=(c,)) for c in consumers]
    for th in threads:
        th.start()
    for i in range(n):
        producer.send_async(str(i).encode(), sent, partition_key=f"k{i % 50}")
    producer.flush()
    for th in threads:
        th.join()
    assert failures == []
    assert sum(len(v) for v in got.values()) == n
    for key, values in got.items():
        assert values == sorted(values), f"key {key} out of order"
    for c in consumers:
        c.close()
    producer.close()


def test_pattern_subscription_discovers_a_topic_created_later(client):
    """The C++ client polls GET_TOPICS_OF_NAMESPACE every pattern_auto_discovery_period seconds.
    pulsar-client 3.13's subscribe() never passes that setting on (pulsar-client-python#171,
    always 60 s), so the consumer is built from a configuration that has it."""
    base = f"pattern-{uuid.uuid4().hex[:8]}"
    first = client.create_producer(f"persistent://public/default/{base}-a")
    conf = _pulsar.ConsumerConfiguration()
    conf.pattern_auto_discovery_period(1)
    conf.subscription_initial_position(_pulsar.InitialPosition.Earliest)
    consumer = client._client.subscribe_pattern(f"persistent://public/default/{base}-.*", "s", conf)
    first.send(b"a")
    assert consumer.receive(10000).data() == b"a"
    later = client.create_producer(f"persistent://public/default/{base}-b")
    later.send(b"b")
    assert consumer.receive(15000).data() == b"b"
    # A topic outside the pattern is not picked up.
    other = client.create_producer(f"persistent://public/default/other-{base}")
    other.send(b"x")
    with pytest.raises(pulsar.Timeout):
        consumer.receive(2500)
    consumer.close()


def test_topic_names_with_unsafe_characters_are_refused(standalone):
    """The broker answers InvalidTopicName (the wire code is checked in protocol_errors.rs); the
    C++ client retries that answer until its operation timeout, hence the short timeout."""
    impatient = pulsar.Client(standalone.url, operation_timeout_seconds=1)
    try:
        for bad in ["star*", "two words", "quote\"d", "hash#tag", "per%cent"]:
            with pytest.raises(Exception):
                impatient.create_producer(f"persistent://public/default/{bad}")
            path = urllib.request.quote(bad, safe="")
            req = urllib.request.Request(
                f"{standalone.admin_url}/admin/v2/persistent/public/default/{path}", method="PUT")
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(req)
            assert refused.value.code == 412, bad
            url = f"{standalone.admin_url}/admin/v2/persistent/public/default"
            with urllib.request.urlopen(url) as r:
                assert not [t for t in json.load(r) if bad in t]
    finally:
        impatient.close()


def sticky(ranges):
    return pulsar.ConsumerKeySharedPolicy(key_shared_mode=pulsar.KeySharedMode.Sticky,
                                          sticky_ranges=ranges)


def test_key_shared_sticky_ranges_route_by_the_consumers_own_ranges(client, standalone):
    t = topic("key-shared-sticky")
    low = client.subscribe(t, "s", consumer_type=pulsar.ConsumerType.KeyShared,
                           consumer_name="low", key_shared_policy=sticky([(0, 32767)]))
    # A range that overlaps another consumer's is refused.
    with pytest.raises(pulsar.ConsumerAssignError):
        client.subscribe(t, "s", consumer_type=pulsar.ConsumerType.KeyShared,
                         consumer_name="overlap", key_shared_policy=sticky([(30000, 40000)]))
    # So is an AUTO_SPLIT consumer on a STICKY subscription (the policy must match).
    with pytest.raises(pulsar.ConsumerBusy):
        client.subscribe(t, "s", consumer_type=pulsar.ConsumerType.KeyShared,
                         consumer_name="auto")
    producer = client.create_producer(t, batching_enabled=False)
    keys = [f"key-{i}" for i in range(40)]
    for i in range(400):
        producer.send(str(i).encode(), partition_key=keys[i % 40])

    def drain(consumer):
        got = {}
        while True:
            try:
                msg = consumer.receive(timeout_millis=1500)
            except pulsar.Timeout:
                return got
            got.setdefault(msg.partition_key(), []).append(int(msg.data()))
            consumer.acknowledge(msg)

    low_keys = drain(low)
    # Only the keys hashing into [0, 32767] came; the rest wait for a consumer to take them.
    assert low_keys and len(low_keys) < 40
    high = client.subscribe(t, "s", consumer_type=pulsar.ConsumerType.KeyShared,
                            consumer_name="high", key_shared_policy=sticky([(32768, 65535)]))
    high_keys = drain(high)
    assert set(low_keys) | set(high_keys) == set(keys)
    assert not set(low_keys) & set(high_keys)
    for got in (low_keys, high_keys):
        for key, values in got.items():
            assert values == sorted(values) and len(values) == 10, key
    local = t.split("/")[-1]
    url = f"{standalone.admin_url}/admin/v2/persistent/public/default/{local}/stats"
    with urllib.request.urlopen(url) as r:
        ranges = {c["consumerName"]: c.get("keyHashRanges")
                  for c in json.load(r)["subscriptions"]["s"]["consumers"]}
    assert ranges == {"low": ["[0, 32767]"], "high": ["[32768, 65535]"]}
    low.close()
    high.close()
    producer.close()


def test_chunked_messages_far_over_the_maximum_size_arrive_whole(client, standalone):
    """12 MiB and 20 MiB messages (the broker's maximum is 5 MiB) from a chunking producer: each
    chunk is stored and dispatched as its own entry, the consumer reassembles them, one ack
    covers every chunk, and the backlog is then empty."""
    t = topic("chunked")
    consumer = client.subscribe(t, "s", consumer_type=pulsar.ConsumerType.Exclusive)
    producer = client.create_producer(t, chunking_enabled=True, batching_enabled=False)
    big = [bytes([i]) * (12 * 1024 * 1024) for i in range(2)] + [b"\x07" * (20 * 1024 * 1024)]
    for payload in big:
        producer.send(payload)
    producer.send(b"small")
    for payload in big:
        msg = consumer.receive(30000)
        assert msg.data() == payload
        consumer.acknowledge(msg)
    msg = consumer.receive(10000)
    assert msg.data() == b"small"
    consumer.acknowledge(msg)
    local = t.split("/")[-1]
    url = f"{standalone.admin_url}/admin/v2/persistent/public/default/{local}/stats"
    wait_until(lambda: json.load(urllib.request.urlopen(url))["subscriptions"]["s"]["msgBacklog"] == 0,
               what="backlog drained")
    with urllib.request.urlopen(url) as r:
        stats = json.load(r)
    # 12 MiB takes 3 chunks of at most 5 MiB, 20 MiB takes 5 (or more with metadata overhead).
    assert stats["msgInCounter"] >= 2 * 3 + 5 + 1
    producer.close()
    consumer.close()
