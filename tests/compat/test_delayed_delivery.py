"""Delayed delivery (deliver_after / deliver_at) with the official Python client: Shared and
Key_Shared subscriptions hold a message until it is due, Exclusive ones get it at once, the
hold survives kill -9 of the broker, and the namespace policy turns it off or caps the delay
(the policy is set before the topic loads; a loaded topic applies a change within the
broker's policy check interval)."""

import time
import urllib.error
import urllib.request
import uuid
from datetime import timedelta

import pulsar
import pytest

from conftest import Standalone
from georep import rest


def topic(name):
    return f"persistent://public/default/{name}-{uuid.uuid4().hex[:8]}"


def now_ms():
    return int(time.time() * 1000)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = Standalone(tmp_path_factory.mktemp("delayed")).start()
    yield s
    s.stop()


def new_client(server, **kwargs):
    return pulsar.Client(server.url, operation_timeout_seconds=15, **kwargs)


@pytest.mark.parametrize("sub_type", [pulsar.ConsumerType.Shared, pulsar.ConsumerType.KeyShared])
def test_a_delayed_message_waits_until_due_and_others_pass_it(server, sub_type):
    client = new_client(server)
    try:
        t = topic("delayed")
        consumer = client.subscribe(t, "s", consumer_type=sub_type)
        producer = client.create_producer(t)
        due = now_ms() + 2000
        producer.send(b"later", deliver_at=due, partition_key="k")
        producer.send(b"now-1", partition_key="k")
        producer.send(b"now-2", partition_key="k")
        first = [consumer.receive(10000).data() for _ in range(2)]
        assert first == [b"now-1", b"now-2"]
        msg = consumer.receive(15000)
        arrived = now_ms()
        assert msg.data() == b"later"
        assert arrived >= due, f"delivered {due - arrived} ms before it was due"
        consumer.acknowledge(msg)
        with pytest.raises(pulsar.Timeout):
            consumer.receive(500)
    finally:
        client.close()


def test_exclusive_subscriptions_get_delayed_messages_at_once(server):
    client = new_client(server)
    try:
        t = topic("delayed-exclusive")
        consumer = client.subscribe(t, "s", consumer_type=pulsar.ConsumerType.Exclusive)
        producer = client.create_producer(t)
        producer.send(b"an hour from now", deliver_after=timedelta(hours=1))
        assert consumer.receive(10000).data() == b"an hour from now"
    finally:
        client.close()


def test_delayed_messages_survive_kill_9_of_the_broker(server):
    client = new_client(server)
    t = topic("delayed-crash")
    consumer = client.subscribe(t, "s", consumer_type=pulsar.ConsumerType.Shared)
    producer = client.create_producer(t, batching_enabled=False)
    due = now_ms() + 4000
    for i in range(50):
        producer.send(f"d{i}".encode(), deliver_at=due)
    consumer.close()
    client.close()
    server.kill()
    server.restart()
    client = new_client(server)
    try:
        consumer = client.subscribe(t, "s", consumer_type=pulsar.ConsumerType.Shared)
        got = []
        for _ in range(50):
            msg = consumer.receive(20000)
            assert now_ms() >= due, "a held message came out early after the restart"
            got.append(msg.data())
            consumer.acknowledge(msg)
        assert sorted(got) == sorted(f"d{i}".encode() for i in range(50))
        with pytest.raises(pulsar.Timeout):
            consumer.receive(500)
    finally:
        client.close()


def test_the_namespace_policy_turns_delayed_delivery_off_and_caps_the_delay(server):
    rest(server, "PUT", "/admin/v2/tenants/delay", {"allowedClusters": [server.cluster]})
    rest(server, "PUT", "/admin/v2/namespaces/delay/off")
    assert rest(server, "GET", "/admin/v2/namespaces/delay/off/delayedDelivery")[0] == 204
    with pytest.raises(urllib.error.HTTPError) as bad:
        rest(server, "POST", "/admin/v2/namespaces/delay/off/delayedDelivery",
             {"active": True, "tickTime": -1})
    assert bad.value.code == 412
    rest(server, "POST", "/admin/v2/namespaces/delay/off/delayedDelivery", {"active": False, "tickTime": 1000})
    assert rest(server, "GET", "/admin/v2/namespaces/delay/off/delayedDelivery")[1] == {
        "active": False, "tickTime": 1000, "maxDeliveryDelayInMillis": 0}
    client = new_client(server)
    try:
        t = f"persistent://delay/off/t-{uuid.uuid4().hex[:8]}"
        consumer = client.subscribe(t, "s", consumer_type=pulsar.ConsumerType.Shared)
        producer = client.create_producer(t)
        producer.send(b"not held", deliver_after=timedelta(hours=1))
        assert consumer.receive(10000).data() == b"not held"

        # A cap: a message asking for more is delivered that long after it was published.
        rest(server, "POST", "/admin/v2/namespaces/delay/off/delayedDelivery",
             {"active": True, "tickTime": 1000, "maxDeliveryDelayInMillis": 1500})
        capped_topic = f"persistent://delay/off/capped-{uuid.uuid4().hex[:8]}"
        consumer = client.subscribe(capped_topic, "s", consumer_type=pulsar.ConsumerType.Shared)
        producer = client.create_producer(capped_topic)
        sent = now_ms()
        producer.send(b"capped", deliver_after=timedelta(hours=1))
        producer.send(b"plain")
        assert consumer.receive(10000).data() == b"plain"
        assert consumer.receive(15000).data() == b"capped"
        assert now_ms() >= sent + 1500
        status, _ = rest(server, "DELETE", "/admin/v2/namespaces/delay/off/delayedDelivery")
        assert status == 204
    finally:
        client.close()
