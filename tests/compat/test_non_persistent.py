"""Non-persistent topics (`non-persistent://`) with the official Python client: messages fan out
in memory to every subscription's consumers, a consumer with a full receiver queue loses what it
cannot take (counted as dropped in the stats), nothing is stored (a consumer that comes later,
or after the broker restarts, sees only newer messages), partitioned non-persistent topics
work, and the `/admin/v2/non-persistent/...` routes list, describe and delete them."""

import time
import urllib.error
import urllib.request
import uuid

import pulsar
import pytest

from conftest import Standalone, magnetar_admin
from georep import rest


def name(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def np_topic(local):
    return f"non-persistent://public/default/{local}"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = Standalone(tmp_path_factory.mktemp("non-persistent")).start()
    yield s
    s.stop()


def new_client(server):
    return pulsar.Client(server.url, operation_timeout_seconds=15)


def wait_for(condition, timeout=20.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def receive_all(consumer, expected, timeout_ms=10000):
    got = []
    while len(got) < expected:
        msg = consumer.receive(timeout_ms)
        got.append(msg.data())
        consumer.acknowledge(msg)
    return got


def test_every_subscription_gets_each_message_in_order(server):
    client = new_client(server)
    try:
        t = np_topic(name("fanout"))
        a = client.subscribe(t, "a")
        b = client.subscribe(t, "b", consumer_type=pulsar.ConsumerType.Shared)
        producer = client.create_producer(t, batching_enabled=False)
        sent = [f"m-{i}".encode() for i in range(50)]
        for body in sent:
            msg_id = producer.send(body)
        # Nothing is stored: Pulsar's id for every non-persistent message.
        assert (msg_id.ledger_id(), msg_id.entry_id()) == (0, 0)
        assert receive_all(a, 50) == sent
        assert sorted(receive_all(b, 50)) == sorted(sent)
    finally:
        client.close()


def test_batches_keys_and_key_shared(server):
    client = new_client(server)
    try:
        t = np_topic(name("keys"))
        consumers = [
            client.subscribe(t, "ks", consumer_type=pulsar.ConsumerType.KeyShared,
                             consumer_name=f"c{i}")
            for i in range(2)
        ]
        producer = client.create_producer(
            t, batching_enabled=True, batching_max_publish_delay_ms=5,
            batching_type=pulsar.BatchingType.KeyBased)
        for i in range(200):
            producer.send_async(f"{i % 8}:{i}".encode(), None, partition_key=f"key-{i % 8}")
        producer.flush()
        owner = {}
        total = 0
        for index, consumer in enumerate(consumers):
            while True:
                try:
                    msg = consumer.receive(1500)
                except pulsar.Timeout:
                    break
                total += 1
                key = msg.partition_key()
                assert owner.setdefault(key, index) == index, f"{key} went to both consumers"
                consumer.acknowledge(msg)
        assert total == 200
        assert len(owner) == 8
    finally:
        client.close()


def test_a_consumer_that_cannot_keep_up_loses_messages_and_they_are_counted(server):
    client = new_client(server)
    try:
        local = name("slow")
        t = np_topic(local)
        # A receiver queue of 10 that nobody reads: the broker has 10 permits for it.
        slow = client.subscribe(t, "slow", receiver_queue_size=10)
        fast = client.subscribe(t, "fast", receiver_queue_size=1000)
        producer = client.create_producer(t, batching_enabled=False)
        for i in range(100):
            producer.send(f"{i}".encode())
        assert len(receive_all(fast, 100)) == 100
        stats = wait_for(
            lambda: (lambda s: s if s["subscriptions"]["slow"]["msgDropCount"] >= 80 else None)(
                rest(server, "GET", f"/admin/v2/non-persistent/public/default/{local}/stats")[1]),
            what="the slow subscription's drops in the stats")
        assert stats["subscriptions"]["fast"]["msgDropCount"] == 0
        assert stats["subscriptions"]["fast"]["msgOutCounter"] == 100
        assert stats["subscriptions"]["slow"]["isDurable"] is False
        assert stats["msgInCounter"] == 100
        assert stats["storageSize"] == 0
        assert [p["producerName"] for p in stats["publishers"]] == [producer.producer_name()]
        # The topic is in /metrics like a persistent one (no storage).
        with urllib.request.urlopen(server.admin_url + "/metrics", timeout=15) as r:
            metrics = r.read().decode()
        line = next(l for l in metrics.splitlines()
                    if l.startswith("pulsar_in_messages_total{") and f'topic="{t}"' in l)
        assert line.endswith(" 100"), line
        # The slow consumer got what its permits allowed, in order, and nothing after.
        got = [int(slow.receive(5000).data()) for _ in range(10)]
        assert got == sorted(got)
        with pytest.raises(pulsar.Timeout):
            slow.receive(300)
    finally:
        client.close()


def test_nothing_is_kept_for_later_consumers_or_across_a_restart(server):
    client = new_client(server)
    try:
        local = name("volatile")
        t = np_topic(local)
        producer = client.create_producer(t, batching_enabled=False)
        producer.send(b"before-anyone")
        consumer = client.subscribe(t, "late")
        producer.send(b"after")
        assert consumer.receive(10000).data() == b"after"
        stats = rest(server, "GET", f"/admin/v2/non-persistent/public/default/{local}/stats")[1]
        assert stats["msgWithoutSubscriptionCount"] == 1
    finally:
        client.close()
    server.kill()
    server.restart()
    client = new_client(server)
    try:
        consumer = client.subscribe(t, "late")
        with pytest.raises(pulsar.Timeout):
            consumer.receive(500)
        producer = client.create_producer(t)
        producer.send(b"new")
        assert consumer.receive(10000).data() == b"new"
    finally:
        client.close()


def test_partitioned_non_persistent_topic(server):
    client = new_client(server)
    try:
        local = name("parts")
        status, _ = rest(server, "PUT",
                         f"/admin/v2/non-persistent/public/default/{local}/partitions", 3)
        assert status == 204
        _, meta = rest(server, "GET",
                       f"/admin/v2/non-persistent/public/default/{local}/partitions")
        assert meta["partitions"] == 3
        t = np_topic(local)
        consumer = client.subscribe(t, "s")
        producer = client.create_producer(t, batching_enabled=False,
                                          message_routing_mode=pulsar.PartitionsRoutingMode.RoundRobinDistribution)
        sent = {f"p-{i}".encode() for i in range(30)}
        for body in sorted(sent):
            producer.send(body)
        assert set(receive_all(consumer, 30)) == sent
        _, listed = rest(server, "GET", "/admin/v2/non-persistent/public/default")
        assert {f"{t}-partition-{i}" for i in range(3)} <= set(listed)
        _, stats = rest(server, "GET",
                        f"/admin/v2/non-persistent/public/default/{local}/partitioned-stats")
        assert stats["msgInCounter"] == 30
        assert stats["metadata"]["partitions"] == 3
    finally:
        client.close()


def test_admin_routes_list_create_delete_and_refuse(server):
    local = name("admin")
    base = f"/admin/v2/non-persistent/public/default/{local}"
    assert rest(server, "PUT", base)[0] == 204
    with pytest.raises(urllib.error.HTTPError) as again:
        rest(server, "PUT", base)
    assert again.value.code == 409
    _, listed = rest(server, "GET", "/admin/v2/non-persistent/public/default")
    assert np_topic(local) in listed
    # Persistent listings stay persistent.
    _, persistent = rest(server, "GET", "/admin/v2/persistent/public/default")
    assert np_topic(local) not in persistent

    client = new_client(server)
    try:
        consumer = client.subscribe(np_topic(local), "sub")
        _, subs = rest(server, "GET", f"{base}/subscriptions")
        assert subs == ["sub"]
        # The CLI takes non-persistent names, and lists both domains as pulsar-admin does.
        listed = magnetar_admin(server, "topics", "list", "public/default", json_out=True)
        assert np_topic(local) in listed
        stats = magnetar_admin(server, "topics", "stats", np_topic(local), json_out=True)
        assert list(stats["subscriptions"]) == ["sub"]
        lookup = magnetar_admin(server, "topics", "lookup", np_topic(local), json_out=True)
        assert lookup["brokerUrl"] == server.url
        with pytest.raises(urllib.error.HTTPError) as busy:
            rest(server, "DELETE", base)
        assert busy.value.code == 412
        with pytest.raises(urllib.error.HTTPError) as in_use:
            rest(server, "DELETE", f"{base}/subscription/sub")
        assert in_use.value.code == 412
        # Seeking a non-persistent subscription is refused with a reason, not a hang.
        with pytest.raises(Exception, match="(?i)not ?allowed|non-persistent"):
            consumer.seek(pulsar.MessageId.earliest)
        assert rest(server, "DELETE", f"{base}?force=true")[0] == 204
        _, listed = rest(server, "GET", "/admin/v2/non-persistent/public/default")
        assert np_topic(local) not in listed
    finally:
        client.close()
    with pytest.raises(urllib.error.HTTPError) as missing:
        rest(server, "GET", f"/admin/v2/non-persistent/public/default/{name('nope')}/stats")
    assert missing.value.code == 404


def test_read_compacted_is_refused(server):
    client = new_client(server)
    try:
        with pytest.raises(Exception):
            client.subscribe(np_topic(name("compacted")), "s", is_read_compacted=True)
    finally:
        client.close()


def test_pattern_subscription_finds_non_persistent_topics(server):
    """A NonPersistentOnly pattern consumer lists the namespace's loaded non-persistent topics,
    and picks up one loaded later (the broker's topic-list watcher follows the registry; the
    client also polls every pattern_auto_discovery_period)."""
    import _pulsar

    client = new_client(server)
    try:
        base = name("np-pattern")
        first = client.create_producer(np_topic(f"{base}-a"), batching_enabled=False)
        conf = _pulsar.ConsumerConfiguration()
        conf.pattern_auto_discovery_period(1)
        conf.regex_subscription_mode(_pulsar.RegexSubscriptionMode.NonPersistentOnly)
        consumer = client._client.subscribe_pattern(np_topic(f"{base}-.*"), "s", conf)
        first.send(b"a")
        assert consumer.receive(10000).data() == b"a"
        later_local = f"{base}-b"
        later = client.create_producer(np_topic(later_local), batching_enabled=False)
        # Nothing is kept for a subscription that does not exist yet: wait for it.
        wait_for(lambda: "s" in rest(
            server, "GET",
            f"/admin/v2/non-persistent/public/default/{later_local}/stats")[1]["subscriptions"],
            what="the pattern consumer on the later topic")
        later.send(b"b")
        assert consumer.receive(10000).data() == b"b"
        consumer.close()
    finally:
        client.close()
