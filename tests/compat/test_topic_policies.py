"""Topic-level policies with the Python client and `magnetar admin topics …` (pulsar-admin's
verb names): a topic's own producer limit, message TTL, backlog quota and deduplication
override its namespace's for that topic only; `get-*` shows the topic's own value and
`--applied` what governs it; and a topic of a namespace that replicates nowhere replicates to
a second cluster once its own replication clusters say so. Policies apply at the broker's next
policy check (every 5 s by default)."""

import uuid

import pulsar
import pytest

from conftest import magnetar_admin
from georep import register, rest, start, stats, wait_until



admin = magnetar_admin


def test_topic_policies_override_the_namespace(standalone):
    topic = f"persistent://public/default/policies-{uuid.uuid4().hex[:6]}"
    neighbour = topic + "-neighbour"
    client = pulsar.Client(standalone.url, operation_timeout_seconds=5)
    try:
        admin(standalone, "topics", "create", topic)
        admin(standalone, "topics", "create", neighbour)

        # Unset until set; the namespace's applies meanwhile.
        assert "not set on the topic" in admin(standalone, "topics", "get-max-producers", topic)
        assert admin(standalone, "topics", "get-message-ttl", topic, json_out=True) is None

        # maxProducers 1: a second producer on this topic is refused, not on its neighbour.
        admin(standalone, "topics", "set-max-producers", topic, "-m", "1")
        assert admin(standalone, "topics", "get-max-producers", topic, json_out=True) == 1
        first = client.create_producer(topic)

        def second_refused():
            try:
                client.create_producer(topic).close()
                return False
            except pulsar.ProducerBusy:
                return True
        wait_until("a second producer refused", second_refused)
        client.create_producer(neighbour).close()
        client.create_producer(neighbour).close()
        admin(standalone, "topics", "remove-max-producers", topic)
        wait_until("a second producer allowed", lambda: not second_refused())

        # TTL 1 s on this topic: its unconsumed messages expire; its neighbour's stay.
        consumer = client.subscribe(topic, "audit")
        other = client.subscribe(neighbour, "audit")
        consumer.close()
        other.close()
        producer = client.create_producer(neighbour)
        for i in range(3):
            first.send(f"m{i}".encode())
            producer.send(f"m{i}".encode())
        admin(standalone, "topics", "set-message-ttl", topic, "-t", "1")
        assert admin(standalone, "topics", "get-message-ttl", topic, "--applied",
                     json_out=True) == 1
        wait_until("the topic's backlog expired", lambda: admin(
            standalone, "topics", "stats", topic, json_out=True)
            ["subscriptions"]["audit"]["msgBacklog"] == 0)
        assert admin(standalone, "topics", "stats", neighbour,
                     json_out=True)["subscriptions"]["audit"]["msgBacklog"] == 3

        # A backlog quota and deduplication of this topic only.
        admin(standalone, "topics", "set-backlog-quota", topic, "--limit", "10M",
              "--policy", "producer_exception")
        table = admin(standalone, "topics", "get-backlog-quotas", topic)
        assert "destination_storage" in table and "producer_exception" in table
        assert admin(standalone, "namespaces", "get-backlog-quotas", "public/default",
                     json_out=True) == {}
        admin(standalone, "topics", "set-deduplication", topic, "--enable")
        wait_until("deduplication on for the topic", lambda: admin(
            standalone, "topics", "stats", topic, json_out=True)["deduplicationStatus"] == "Enabled")
        assert admin(standalone, "topics", "stats", neighbour,
                     json_out=True)["deduplicationStatus"] != "Enabled"

        # Bad values are refused with Pulsar's statuses.
        out = admin(standalone, "topics", "set-replication-clusters", topic, "--clusters",
                    "nowhere", ok=False)
        assert "412" in out or "nowhere" in out
        out = admin(standalone, "topics", "set-max-consumers", "public/default/missing", "-m", "1",
                    ok=False)
        assert "404" in out or "does not exist" in out
    finally:
        client.close()


@pytest.fixture
def two(tmp_path):
    servers = start(tmp_path, "east", "west")
    yield servers
    for s in servers:
        s.stop()


def test_a_topic_replicates_by_its_own_clusters(two):
    east, west = two
    register(east, west)
    register(west, east)
    for s in two:
        rest(s, "POST", "/admin/v2/tenants/public", {"adminRoles": [], "allowedClusters": ["east", "west"]})
        rest(s, "PUT", "/admin/v2/namespaces/public/local-only")
    topic = "persistent://public/local-only/shared-orders"
    path = "/admin/v2/persistent/public/local-only/shared-orders"
    rest(east, "PUT", path)
    rest(west, "PUT", path)
    # The namespace replicates nowhere; the topic to both clusters (topic policies are each
    # cluster's own, as in Pulsar without global topic policies).
    rest(east, "POST", path + "/replication", ["east", "west"])
    rest(west, "POST", path + "/replication", ["east", "west"])
    assert rest(east, "GET", path + "/replication")[1] == ["east", "west"]
    assert rest(east, "GET", "/admin/v2/namespaces/public/local-only/replication")[1] == ["east"]

    east_client = pulsar.Client(east.url, operation_timeout_seconds=15)
    west_client = pulsar.Client(west.url, operation_timeout_seconds=15)
    try:
        consumer = west_client.subscribe(topic, "sub")
        producer = east_client.create_producer(topic)
        wait_until("the replicator to west", lambda: "west" in stats(east, topic)["replication"])
        for i in range(20):
            producer.send(f"order-{i}".encode())
        got = [consumer.receive(timeout_millis=30000).data().decode() for _ in range(20)]
        assert got == [f"order-{i}" for i in range(20)]
        # Another topic of the namespace stays local.
        other = "persistent://public/local-only/private"
        east_client.create_producer(other).send(b"stays")
        assert stats(east, other)["replication"] == {}
    finally:
        east_client.close()
        west_client.close()
