"""Topic compaction with the official Python client: the admin API compacts a topic (on demand
or past the namespace's threshold), readers and consumers with `is_read_compacted` and the
client's TableView see the latest value of every key (an empty payload deletes a key), the
compacted view survives kill -9 of the broker and the trimming of the ledgers it came from,
and a read-compacted subscription's backlog drains although superseded messages are never
delivered."""

import time
import urllib.error
import uuid

import pulsar
import pytest

from conftest import Standalone
from georep import rest, wait_until


def topic(name):
    return f"persistent://public/default/{name}-{uuid.uuid4().hex[:8]}"


def path(t, suffix):
    return t.replace("persistent://", "/admin/v2/persistent/") + suffix


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = Standalone(tmp_path_factory.mktemp("compaction")).start()
    yield s
    s.stop()


def new_client(server):
    return pulsar.Client(server.url, operation_timeout_seconds=15)


def publish_rounds(client, t, rounds, keys, batching=True):
    """`rounds` values of each key (k{i} -> r{round}-k{i}), plus keyless messages, then
    deletes k0 and k1; returns what a compacted view must hold."""
    producer = client.create_producer(t, batching_enabled=batching,
                                      batching_max_publish_delay_ms=5,
                                      block_if_queue_full=True)
    for r in range(rounds):
        for k in range(keys):
            producer.send_async(f"r{r}-k{k}".encode(), None, partition_key=f"k{k}")
        producer.send_async(f"no key {r}".encode(), None)
    producer.flush()
    for k in (0, 1):
        producer.send(b"", partition_key=f"k{k}")
    producer.close()
    return {f"k{k}": f"r{rounds - 1}-k{k}" for k in range(2, keys)}


def compact(server, t):
    try:
        rest(server, "PUT", path(t, "/compaction"))
    except urllib.error.HTTPError as e:
        assert e.code == 409, e  # one already running
    wait_until("compaction succeeded",
               lambda: rest(server, "GET", path(t, "/compaction"))[1]["status"] == "SUCCESS",
               timeout=60)


def read_all(client, t, compacted):
    reader = client.create_reader(t, pulsar.MessageId.earliest, is_read_compacted=compacted)
    seen = []
    while reader.has_message_available():
        msg = reader.read_next(10000)
        seen.append((msg.partition_key(), msg.data().decode()))
    reader.close()
    return seen


def table_view(client, t):
    view = client.create_table_view(t)
    try:
        return snapshot(view)
    finally:
        view.close()


def snapshot(view):
    seen = {}
    view.for_each(lambda k, v: seen.__setitem__(k, v.decode()))
    assert len(view) == len(seen)
    return seen


def test_compacted_readers_and_table_views_see_the_latest_value_of_each_key(server):
    client = new_client(server)
    try:
        t = topic("compact")
        expected = publish_rounds(client, t, rounds=5, keys=20)
        assert rest(server, "GET", path(t, "/compaction"))[1] == {
            "status": "NOT_RUN", "lastError": ""}
        everything = read_all(client, t, compacted=False)
        assert len(everything) == 5 * 21 + 2
        compact(server, t)

        compacted = read_all(client, t, compacted=True)
        assert dict(compacted) == expected
        assert len(compacted) == len(expected), "a key came out twice"
        # Message order is kept: the last round's values in key order.
        assert [k for k, _ in compacted] == sorted(expected, key=lambda k: int(k[1:]))
        assert read_all(client, t, compacted=False) == everything, "the topic itself changed"
        assert table_view(client, t) == expected

        stats = rest(server, "GET", path(t, "/stats"))[1]
        assert stats["compaction"]["lastCompactionRemovedEventCount"] == len(everything) - len(expected)
        assert stats["compaction"]["lastCompactionSucceedTimestamp"] > 0
        internal = rest(server, "GET", path(t, "/internalStats"))[1]
        assert internal["compactedLedger"]["entries"] > 0
        assert "__compaction" in internal["cursors"]

        # Writes after the horizon reach compacted readers as they are; a second compaction
        # folds them in.
        producer = client.create_producer(t)
        producer.send(b"new", partition_key="k2")
        producer.send(b"fresh", partition_key="k0")
        producer.close()
        expected.update({"k2": "new", "k0": "fresh"})
        assert table_view(client, t) == expected
        compact(server, t)
        again = read_all(client, t, compacted=True)
        assert dict(again) == expected and len(again) == len(expected)
    finally:
        client.close()


def test_a_table_view_follows_live_updates(server):
    client = new_client(server)
    try:
        t = topic("table")
        expected = publish_rounds(client, t, rounds=2, keys=5)
        compact(server, t)
        view = client.create_table_view(t)
        try:
            assert snapshot(view) == expected
            producer = client.create_producer(t, batching_enabled=False)
            producer.send(b"live", partition_key="k3")
            producer.send(b"", partition_key="k4")
            wait_until("the table view saw the update",
                       lambda: view.get("k3") == b"live" and view.get("k4") is None,
                       timeout=20)
        finally:
            view.close()
    finally:
        client.close()


def test_the_compacted_view_survives_kill_9_and_the_trimming_of_its_source(server):
    client = new_client(server)
    t = topic("compact-crash")
    expected = publish_rounds(client, t, rounds=4, keys=30, batching=False)
    client.close()
    compact(server, t)
    first_ledger = rest(server, "GET", path(t, "/internalStats"))[1]["ledgers"][0]["ledgerId"]
    server.kill()
    server.restart()

    # The reloaded topic starts a new ledger; the compacted one held nothing back, so the
    # ledgers the compaction read are trimmed (the compaction cursor is past them).
    def trimmed():
        ledgers = rest(server, "GET", path(t, "/internalStats"))[1]["ledgers"]
        return all(l["ledgerId"] != first_ledger for l in ledgers)
    wait_until("the compacted ledgers' source was trimmed", trimmed, timeout=60)

    client = new_client(server)
    try:
        assert read_all(client, t, compacted=False) == [], "the topic still holds old entries"
        assert table_view(client, t) == expected

        # A durable read-compacted subscription: superseded messages are never delivered and
        # must not hold its backlog.
        consumer = client.subscribe(t, "durable", is_read_compacted=True,
                                    initial_position=pulsar.InitialPosition.Earliest)
        got = {}
        for _ in range(len(expected)):
            msg = consumer.receive(10000)
            got[msg.partition_key()] = msg.data().decode()
            consumer.acknowledge(msg)
        assert got == expected
        with pytest.raises(pulsar.Timeout):
            consumer.receive(500)
        wait_until("the backlog drained", lambda: rest(
            server, "GET", path(t, "/stats"))[1]["subscriptions"]["durable"]["msgBacklog"] == 0,
            timeout=20)
    finally:
        client.close()


def test_the_namespace_threshold_compacts_topics_by_itself(server):
    rest(server, "PUT", "/admin/v2/tenants/compaction", {"allowedClusters": [server.cluster]})
    rest(server, "PUT", "/admin/v2/namespaces/compaction/auto")
    base = "/admin/v2/namespaces/compaction/auto/compactionThreshold"
    assert rest(server, "GET", base)[0] == 204
    with pytest.raises(urllib.error.HTTPError) as bad:
        rest(server, "PUT", base, -1)
    assert bad.value.code == 412
    rest(server, "PUT", base, 1024)
    assert rest(server, "GET", base)[1] == 1024

    t = f"persistent://compaction/auto/t-{uuid.uuid4().hex[:8]}"
    client = new_client(server)
    try:
        expected = publish_rounds(client, t, rounds=3, keys=50)
        wait_until("compacted without being asked",
                   lambda: rest(server, "GET", path(t, "/compaction"))[1]["status"] == "SUCCESS",
                   timeout=60)
        assert table_view(client, t) == expected
    finally:
        client.close()
    assert rest(server, "DELETE", base)[0] == 204
    assert rest(server, "GET", base)[0] == 204


def test_read_compacted_is_refused_on_shared_subscriptions(server):
    client = pulsar.Client(server.url, operation_timeout_seconds=5)
    try:
        with pytest.raises(pulsar.PulsarException):
            client.subscribe(topic("shared"), "s", consumer_type=pulsar.ConsumerType.Shared,
                             is_read_compacted=True)
        with pytest.raises(urllib.error.HTTPError) as missing:
            rest(server, "PUT", path(topic("missing"), "/compaction"))
        assert missing.value.code == 404
    finally:
        client.close()
