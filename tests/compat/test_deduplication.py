"""Message deduplication with the official client: namespace policy over REST, duplicates
answered with the -1:-1 receipt and not stored, `last_sequence_id` on reconnect, state that
survives a kill -9 of the standalone, and resends after a crash stored once."""

import json
import threading
import time
import urllib.request
import uuid

import pulsar
import pytest

from conftest import Standalone


def rest(server, method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(server.admin_url + path, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        raw = resp.read()
        return resp.status, (json.loads(raw) if raw else None)


@pytest.fixture
def server(tmp_path):
    s = Standalone(tmp_path).start()
    ns = f"dedup{uuid.uuid4().hex[:6]}"
    rest(s, "PUT", f"/admin/v2/namespaces/public/{ns}")
    assert rest(s, "GET", f"/admin/v2/namespaces/public/{ns}/deduplication")[0] == 204
    assert rest(s, "POST", f"/admin/v2/namespaces/public/{ns}/deduplication", True)[0] == 204
    assert rest(s, "GET", f"/admin/v2/namespaces/public/{ns}/deduplication") == (200, True)
    s.namespace = f"public/{ns}"
    yield s
    s.kill()


def drain(consumer):
    got = []
    while True:
        try:
            m = consumer.receive(timeout_millis=2000)
        except pulsar.Timeout:
            return got
        consumer.acknowledge(m)
        got.append(m.data().decode())


def test_duplicates_are_acknowledged_and_not_stored(server):
    topic = f"persistent://{server.namespace}/t-{uuid.uuid4().hex[:6]}"
    client = pulsar.Client(server.url, operation_timeout_seconds=15)
    consumer = client.subscribe(topic, "sub")
    producer = client.create_producer(topic, producer_name="p1", batching_enabled=False)
    for i in range(10):
        producer.send(f"m{i}".encode(), sequence_id=i)
    producer.close()

    # The same name again: the broker tells it where the producer left off.
    producer = client.create_producer(topic, producer_name="p1", batching_enabled=False)
    assert producer.last_sequence_id() == 9
    for i in range(5, 15):
        msg_id = producer.send(f"m{i}".encode(), sequence_id=i)
        if i < 10:
            # Pulsar's receipt for a duplicate.
            assert (msg_id.ledger_id(), msg_id.entry_id()) == (-1, -1), i
    assert drain(consumer) == [f"m{i}" for i in range(15)]

    stats = rest(server, "GET", f"/admin/v2/persistent/{topic[len('persistent://'):]}/stats")[1]
    assert stats["deduplicationStatus"] == "Enabled"
    assert "pulsar.dedup" not in stats["subscriptions"]
    client.close()


def test_batches_count_by_their_highest_sequence_id(server):
    topic = f"persistent://{server.namespace}/b-{uuid.uuid4().hex[:6]}"
    client = pulsar.Client(server.url, operation_timeout_seconds=15)
    consumer = client.subscribe(topic, "sub")
    producer = client.create_producer(topic, producer_name="batcher",
                                      batching_enabled=True, batching_max_messages=10,
                                      batching_max_publish_delay_ms=50,
                                      block_if_queue_full=True)
    for i in range(100):
        producer.send_async(f"b{i}".encode(), None)
    producer.flush()
    producer.close()
    # Ten batches of ten: the last one ends at 99 (the C++ client sends only its first id).
    producer = client.create_producer(topic, producer_name="batcher", batching_enabled=False)
    assert producer.last_sequence_id() == 99
    for i in range(95, 105):  # 95..99 are inside the last batch: duplicates
        msg_id = producer.send(f"b{i}".encode(), sequence_id=i)
        assert (msg_id.ledger_id() == -1) == (i < 100), i
    got = drain(consumer)
    assert got == [f"b{i}" for i in range(105)], ",".join(got)
    client.close()


def test_state_survives_kill_9(server):
    topic = f"persistent://{server.namespace}/k-{uuid.uuid4().hex[:6]}"
    client = pulsar.Client(server.url, operation_timeout_seconds=15)
    producer = client.create_producer(topic, producer_name="survivor", batching_enabled=False,
                                      block_if_queue_full=True)
    path = f"/admin/v2/persistent/{topic[len('persistent://'):]}/internalStats"

    def snapshot_mark():
        return rest(server, "GET", path)[1]["cursors"]["pulsar.dedup"]["markDeletePosition"]

    created_at = snapshot_mark()
    for i in range(1490):  # past one snapshot (1000 entries)
        producer.send_async(f"s{i}".encode(), None, sequence_id=i)
    producer.flush()
    # The policy check (every 5 s) writes the snapshot into the pulsar.dedup cursor.
    deadline = time.monotonic() + 30
    while snapshot_mark() == created_at:
        assert time.monotonic() < deadline, "no deduplication snapshot within 30 s"
        time.sleep(0.2)
    for i in range(1490, 1500):  # after the snapshot: found by replay
        producer.send(f"s{i}".encode(), sequence_id=i)
    client.close()
    server.kill()
    server.start()

    client = pulsar.Client(server.url, operation_timeout_seconds=30)
    producer = client.create_producer(topic, producer_name="survivor", batching_enabled=False)
    assert producer.last_sequence_id() == 1499
    for i in (1, 999, 1000, 1499):  # (the Python client drops a sequence_id of 0)
        msg_id = producer.send(f"s{i}".encode(), sequence_id=i)
        assert (msg_id.ledger_id(), msg_id.entry_id()) == (-1, -1), i
    producer.send(b"s1500", sequence_id=1500)
    reader = client.create_reader(topic, pulsar.MessageId.earliest)
    got = []
    while reader.has_message_available():
        got.append(reader.read_next(timeout_millis=10000).data().decode())
    assert got == [f"s{i}" for i in range(1501)]
    client.close()


def test_resends_after_a_crash_are_stored_once(server):
    """A producer keeps publishing while the standalone is killed and restarted: the client
    re-sends whatever it had no receipt for, and each message is stored exactly once."""
    topic = f"persistent://{server.namespace}/c-{uuid.uuid4().hex[:6]}"
    client = pulsar.Client(server.url, operation_timeout_seconds=60)
    producer = client.create_producer(topic, producer_name="crasher", batching_enabled=False,
                                      send_timeout_millis=0, max_pending_messages=5000,
                                      block_if_queue_full=True)
    total = 4000
    results = {}
    done = threading.Event()
    halfway = threading.Event()

    def sent(i):
        def callback(res, _msg_id):
            results[i] = res
            if len(results) >= total // 8:
                halfway.set()
            if len(results) == total:
                done.set()
        return callback

    for i in range(total // 2):
        producer.send_async(f"c{i}".encode(), sent(i))
    assert halfway.wait(60)  # a fraction acknowledged, the rest in flight: crash now
    server.kill()
    server.start()
    for i in range(total // 2, total):
        producer.send_async(f"c{i}".encode(), sent(i))
    assert done.wait(120), f"{len(results)} of {total} receipts"
    assert all(r == pulsar.Result.Ok for r in results.values())
    reader = client.create_reader(topic, pulsar.MessageId.earliest)
    got = []
    while reader.has_message_available():
        got.append(reader.read_next(timeout_millis=10000).data().decode())
    assert got == [f"c{i}" for i in range(total)]
    client.close()
