"""What survives restarts and crashes of a real standalone process."""

import threading
import time
import uuid

import pulsar
import pytest

from conftest import Standalone


@pytest.fixture
def fresh(tmp_path):
    server = Standalone(tmp_path).start()
    yield server
    server.kill()


def test_clean_restart_keeps_messages_and_cursor(fresh):
    t = f"persistent://public/default/restart-{uuid.uuid4().hex[:8]}"
    client = pulsar.Client(fresh.url, operation_timeout_seconds=15)
    consumer = client.subscribe(t, "sub")
    producer = client.create_producer(t, batching_enabled=False)
    for i in range(50):
        producer.send(str(i).encode())
    for _ in range(20):
        consumer.acknowledge(consumer.receive(timeout_millis=5000))
    time.sleep(1.5)  # let the cursor's 1 s persistence interval pass
    client.close()
    fresh.restart()
    client = pulsar.Client(fresh.url, operation_timeout_seconds=15)
    consumer = client.subscribe(t, "sub")
    got = []
    for _ in range(30):
        m = consumer.receive(timeout_millis=10000)
        consumer.acknowledge(m)
        got.append(int(m.data()))
    assert got == list(range(20, 50))
    client.close()


def test_live_client_reconnects_across_a_broker_restart(fresh):
    """A client that stays open while the broker restarts carries on by itself."""
    t = f"persistent://public/default/reconnect-{uuid.uuid4().hex[:8]}"
    client = pulsar.Client(fresh.url, operation_timeout_seconds=30)
    consumer = client.subscribe(t, "sub")
    producer = client.create_producer(t, batching_enabled=False)
    producer.send(b"before")
    m = consumer.receive(timeout_millis=5000)
    consumer.acknowledge(m)
    fresh.restart()
    producer.send(b"after")  # the client reconnects (LOOKUP, PRODUCER again) and resends
    # The ack of "before" may not have left the client's 100 ms ack grouping before the restart:
    # at-least-once allows it to come back, but "after" must arrive.
    m = consumer.receive(timeout_millis=30000)
    if m.data() == b"before":
        consumer.acknowledge(m)
        m = consumer.receive(timeout_millis=30000)
    assert m.data() == b"after"
    consumer.acknowledge(m)
    client.close()


def test_kill_minus_nine_loses_no_acknowledged_message(fresh):
    """1. Create the subscription, then produce in a background thread, recording every message
       the broker acknowledged.
    2. SIGKILL the standalone process mid-stream.
    3. Restart on the same data; every acknowledged message is consumed, in order."""
    t = f"persistent://public/default/crash-{uuid.uuid4().hex[:8]}"
    client = pulsar.Client(fresh.url, operation_timeout_seconds=10)
    # The subscription exists before the first message: without one (and without retention)
    # consumed-by-everyone ledgers may be trimmed, as in Pulsar.
    client.subscribe(t, "verify", initial_position=pulsar.InitialPosition.Earliest).close()
    producer = client.create_producer(t, batching_enabled=True, batching_max_publish_delay_ms=2,
                                      send_timeout_millis=5000, block_if_queue_full=True)
    acked = []
    lock = threading.Lock()
    stop = threading.Event()

    def produce():
        i = 0
        while not stop.is_set() and i < 200_000:
            def done(res, msg_id, i=i):
                if res == pulsar.Result.Ok:
                    with lock:
                        acked.append(i)
            try:
                producer.send_async(str(i).encode(), done)
            except Exception:
                break
            i += 1

    thread = threading.Thread(target=produce)
    thread.start()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with lock:
            if len(acked) >= 2000:
                break
        time.sleep(0.01)
    fresh.kill()
    stop.set()
    thread.join(timeout=30)
    with lock:
        confirmed = sorted(acked)
    assert len(confirmed) >= 2000
    try:
        client.close()
    except Exception:
        pass

    fresh.start()
    client = pulsar.Client(fresh.url, operation_timeout_seconds=15)
    consumer = client.subscribe(t, "verify", initial_position=pulsar.InitialPosition.Earliest)
    received = []
    while True:
        try:
            m = consumer.receive(timeout_millis=5000)
        except Exception:
            break
        received.append(int(m.data()))
        consumer.acknowledge(m)
    client.close()
    assert received == sorted(received), "order kept"
    missing = set(confirmed) - set(received)
    assert not missing, f"{len(missing)} acknowledged messages lost, e.g. {sorted(missing)[:5]}"
