"""`magnetar admin` against a running standalone, one verb at a time, as pulsar-admin users type
them: topics (subscriptions, create-subscription, skip, clear-backlog, reset-cursor,
unsubscribe, compact, compaction-status, lookup, stats, expire-messages, update-partitioned-topic,
unload), schemas, the namespace schema and
compaction policies, brokers healthcheck; `--json` answers parse, tables read; and shell
completions for bash, zsh and fish."""

import json
import os
import subprocess
import uuid

import pulsar
import pytest

from conftest import magnetar_admin

BIN = os.environ.get("MAGNETAR_BIN", "magnetar")


admin = magnetar_admin


def backlog(standalone, topic, sub):
    stats = admin(standalone, "topics", "stats", topic, json_out=True)
    return stats["subscriptions"][sub]["msgBacklog"]


@pytest.fixture
def topic():
    return f"persistent://public/default/cli-{uuid.uuid4().hex[:8]}"


def test_subscription_verbs(standalone, client, topic):
    admin(standalone, "topics", "create", topic)
    admin(standalone, "topics", "create-subscription", topic, "-s", "audit", "-m", "earliest")
    assert "audit" in admin(standalone, "topics", "subscriptions", topic)
    assert admin(standalone, "topics", "subscriptions", topic, json_out=True) == ["audit"]
    producer = client.create_producer(topic, batching_enabled=False)
    ids = [producer.send(f"m{i}".encode()) for i in range(10)]
    assert backlog(standalone, topic, "audit") == 10

    admin(standalone, "topics", "skip", topic, "-s", "audit", "-n", "3")
    assert backlog(standalone, topic, "audit") == 7
    admin(standalone, "topics", "clear-backlog", topic, "-s", "audit")
    assert backlog(standalone, topic, "audit") == 0
    # Back by time: everything was published within the hour.
    admin(standalone, "topics", "reset-cursor", topic, "-s", "audit", "--time", "1h")
    assert backlog(standalone, topic, "audit") == 10
    # To a message: the fifth one and after are the backlog.
    fifth = f"{ids[4].ledger_id()}:{ids[4].entry_id()}"
    admin(standalone, "topics", "reset-cursor", topic, "-s", "audit", "--messageId", fifth)
    assert backlog(standalone, topic, "audit") == 6
    out = admin(standalone, "topics", "reset-cursor", topic, "-s", "audit", "--time", "1 lightyear",
                ok=False)
    assert "unit" in out

    table = admin(standalone, "topics", "stats", topic)
    assert "SUBSCRIPTION" in table and "audit" in table
    lookup = admin(standalone, "topics", "lookup", topic, json_out=True)
    assert lookup["brokerUrl"] == standalone.url
    admin(standalone, "topics", "unsubscribe", topic, "-s", "audit")
    assert admin(standalone, "topics", "subscriptions", topic, json_out=True) == []
    out = admin(standalone, "topics", "unsubscribe", topic, "-s", "audit", ok=False)
    assert "404" in out or "not" in out
    producer.close()


def test_compaction_verbs(standalone, client, topic):
    producer = client.create_producer(topic, batching_enabled=False)
    for i in range(20):
        producer.send(f"v{i}".encode(), partition_key=f"k{i % 4}")
    producer.close()
    assert admin(standalone, "topics", "compaction-status", topic).strip() == "NOT_RUN"
    admin(standalone, "topics", "compact", topic)
    status = admin(standalone, "topics", "compaction-status", topic, "--wait", json_out=True)
    assert status["status"] == "SUCCESS"


def test_offload_policy_verbs(standalone):
    """The namespace offload verbs round-trip through the REST policies (offloading itself,
    with a store, is in test_tiered_storage.py)."""
    ns = "public/default"
    admin(standalone, "namespaces", "set-offload-threshold", ns, "--size", "10M", "--time", "2h")
    got = admin(standalone, "namespaces", "get-offload-threshold", ns, json_out=True)
    assert got == {"offloadThreshold": 10 * 1024 * 1024, "offloadThresholdInSeconds": 7200}, got
    assert "10485760" in admin(standalone, "namespaces", "get-offload-threshold", ns)
    admin(standalone, "namespaces", "remove-offload-threshold", ns)
    got = admin(standalone, "namespaces", "get-offload-threshold", ns, json_out=True)
    assert got == {"offloadThreshold": None, "offloadThresholdInSeconds": None}, got
    admin(standalone, "namespaces", "set-offload-deletion-lag", ns, "--lag", "10m")
    assert admin(standalone, "namespaces", "get-offload-deletion-lag", ns,
                 json_out=True) == 600_000
    admin(standalone, "namespaces", "clear-offload-deletion-lag", ns)
    assert "not set" in admin(standalone, "namespaces", "get-offload-deletion-lag", ns)
    out = admin(standalone, "namespaces", "set-offload-threshold", ns, ok=False)
    assert "--size" in out


def test_schema_verbs(standalone, topic, tmp_path):
    v1 = tmp_path / "v1.json"
    v1.write_text(json.dumps({"type": "AVRO", "properties": {}, "schema": json.dumps(
        {"type": "record", "name": "User", "fields": [{"name": "name", "type": "string"}]})}))
    v2 = tmp_path / "v2.json"
    v2.write_text(json.dumps({"type": "AVRO", "properties": {}, "schema": json.dumps(
        {"type": "record", "name": "User", "fields": [{"name": "name", "type": "int"}]})}))
    assert "schema version 0" in admin(standalone, "schemas", "upload", topic, "-f", str(v1))
    shown = admin(standalone, "schemas", "get", topic)
    assert "AVRO" in shown and '"name": "User"' in shown
    assert admin(standalone, "schemas", "get", topic, json_out=True)["version"] == 0
    assert "incompatible (FULL)" in admin(standalone, "schemas", "compatibility", topic,
                                          "-f", str(v2))
    out = admin(standalone, "schemas", "upload", topic, "-f", str(v2), ok=False)
    assert "409" in out or "incompatible" in out
    every = admin(standalone, "schemas", "get", topic, "--all-versions", json_out=True)
    assert len(every["getSchemaResponses"]) == 1
    assert admin(standalone, "schemas", "delete", topic, json_out=True) == {"version": 1}
    assert "schema version 2" in admin(standalone, "schemas", "upload", topic, "-f", str(v2))
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert "not JSON" in admin(standalone, "schemas", "upload", topic, "-f", str(bad), ok=False)


def test_namespace_schema_and_compaction_policies(standalone):
    ns = f"public/cli-{uuid.uuid4().hex[:6]}"
    admin(standalone, "namespaces", "create", ns)
    assert admin(standalone, "namespaces", "get-schema-compatibility-strategy", ns).strip() \
        == "UNDEFINED"
    admin(standalone, "namespaces", "set-schema-compatibility-strategy", ns, "-c", "backward")
    assert admin(standalone, "namespaces", "get-schema-compatibility-strategy", ns,
                 json_out=True) == "BACKWARD"
    admin(standalone, "namespaces", "set-schema-compatibility-strategy", ns, "-c", "sideways",
          ok=False)
    assert admin(standalone, "namespaces", "get-is-allow-auto-update-schema", ns).strip() == "true"
    admin(standalone, "namespaces", "set-is-allow-auto-update-schema", ns, "--disable")
    assert admin(standalone, "namespaces", "get-is-allow-auto-update-schema", ns,
                 json_out=True) is False
    admin(standalone, "namespaces", "set-schema-validation-enforce", ns, "--enable")
    assert admin(standalone, "namespaces", "get-schema-validation-enforce", ns,
                 json_out=True) is True
    assert "not set" in admin(standalone, "namespaces", "get-compaction-threshold", ns)
    admin(standalone, "namespaces", "set-compaction-threshold", ns, "-t", "100M")
    assert admin(standalone, "namespaces", "get-compaction-threshold", ns,
                 json_out=True) == 100 * 1024 * 1024
    admin(standalone, "namespaces", "remove-compaction-threshold", ns)
    assert admin(standalone, "namespaces", "get-compaction-threshold", ns, json_out=True) is None
    assert "not set" in admin(standalone, "namespaces", "get-delayed-delivery", ns)
    admin(standalone, "namespaces", "set-delayed-delivery", ns, "--disable", "-t", "2s",
          "--max-delay", "1h")
    assert admin(standalone, "namespaces", "get-delayed-delivery", ns, json_out=True) == {
        "active": False, "tickTime": 2000, "maxDeliveryDelayInMillis": 3_600_000}
    admin(standalone, "namespaces", "remove-delayed-delivery", ns)
    assert admin(standalone, "namespaces", "get-delayed-delivery", ns, json_out=True) is None
    admin(standalone, "namespaces", "set-persistence", ns, "-e", "1", "-w", "1", "-a", "1")
    assert admin(standalone, "namespaces", "get-persistence", ns,
                 json_out=True)["bookkeeperEnsemble"] == 1
    admin(standalone, "namespaces", "remove-persistence", ns)
    assert admin(standalone, "namespaces", "get-persistence", ns, json_out=True) is None


def test_brokers_verbs(standalone):
    assert admin(standalone, "brokers", "healthcheck").strip() == "ok"
    assert admin(standalone, "brokers", "healthcheck", json_out=True) == {"ok": True}
    brokers = admin(standalone, "brokers", "list", "standalone", json_out=True)
    assert len(brokers) == 1
    # A lone broker leads (no autorecovery auditor runs in a standalone).
    leader = admin(standalone, "brokers", "leader-broker", json_out=True)
    assert leader == {"brokerId": brokers[0], "serviceUrl": standalone.admin_url}, leader
    assert brokers[0] in admin(standalone, "brokers", "leader-broker")


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_shell_completions(shell):
    out = subprocess.run([BIN, "completions", shell], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert "magnetar" in out.stdout and "reset-cursor" in out.stdout


def test_peek_and_examine(standalone, client, topic):
    import urllib.request
    admin(standalone, "topics", "create", topic)
    admin(standalone, "topics", "create-subscription", topic, "-s", "look", "-m", "earliest")
    plain = client.create_producer(topic, batching_enabled=False)
    plain.send(b"first", properties={"color": "blue"}, partition_key="k1")
    plain.send(bytes([0, 1, 2, 255]))
    batched = client.create_producer(topic, batching_enabled=True, batching_max_messages=3,
                                     batching_max_publish_delay_ms=1000)
    for i in range(3):
        batched.send_async(f"b{i}".encode(), None)
    batched.flush()

    peeked = admin(standalone, "topics", "peek-messages", topic, "-s", "look", "-n", "5",
                   json_out=True)
    assert [m["payload"].get("text") for m in peeked] == ["first", None, "b0", "b1", "b2"]
    assert peeked[0]["properties"] == {"color": "blue"} and peeked[0]["key"] == "k1"
    assert peeked[1]["payload"]["base64"] == "AAEC/w=="
    assert peeked[2]["messageId"].count(":") == 2, "batch messages carry their index"
    table = admin(standalone, "topics", "peek-messages", topic, "-s", "look", "-n", "2")
    assert "Message ID:" in table and "first" in table and "00 01 02 ff" in table
    # Nothing was consumed.
    assert backlog(standalone, topic, "look") == 3

    # Pulsar's REST answer: the payload, metadata in headers.
    url = standalone.admin_url + topic.replace("persistent://", "/admin/v2/persistent/") + \
        "/subscription/look/position/1"
    with urllib.request.urlopen(url, timeout=10) as r:
        assert r.read() == b"first"
        assert r.headers["X-Pulsar-PROPERTY-color"] == "blue"
        assert ":" in r.headers["X-Pulsar-Message-ID"]
    out = admin(standalone, "topics", "peek-messages", topic, "-s", "nobody", ok=False)
    assert "404" in out

    last = admin(standalone, "topics", "examine-message", topic, json_out=True)
    assert [m["payload"]["text"] for m in last] == ["b0", "b1", "b2"]
    first = admin(standalone, "topics", "examine-message", topic, "-i", "earliest", json_out=True)
    assert first[0]["payload"]["text"] == "first"
    out = admin(standalone, "topics", "examine-message", topic, "-i", "earliest", "-m", "99",
                ok=False)
    assert "404" in out
    plain.close()
    batched.close()


def test_expire_messages(standalone, client, topic):
    admin(standalone, "topics", "create", topic)
    for sub in ("audit", "billing"):
        admin(standalone, "topics", "create-subscription", topic, "-s", sub, "-m", "earliest")
    producer = client.create_producer(topic, batching_enabled=False)
    for i in range(4):
        producer.send(f"m{i}".encode())
    # Nothing is an hour old yet.
    admin(standalone, "topics", "expire-messages", topic, "-s", "audit", "-t", "3600")
    assert backlog(standalone, topic, "audit") == 4
    # Everything is at least 0 s old: the REST call returns once the cursor has moved.
    out = admin(standalone, "topics", "expire-messages", topic, "-s", "audit", "-t", "0")
    assert "expired messages older than 0 s of audit" in out
    assert backlog(standalone, topic, "audit") == 0
    assert backlog(standalone, topic, "billing") == 4
    assert admin(standalone, "topics", "expire-messages-all-subscriptions", topic, "-t", "0",
                 json_out=True) == {"ok": True}
    assert backlog(standalone, topic, "billing") == 0
    out = admin(standalone, "topics", "expire-messages", topic, "-s", "nobody", "-t", "0", ok=False)
    assert "404" in out or "not found" in out.lower()


def test_update_partitioned_topic_and_unload(standalone, client, topic):
    admin(standalone, "topics", "create-partitioned-topic", topic, "-p", "2")
    admin(standalone, "topics", "create-subscription", topic, "-s", "audit", "-m", "earliest")
    out = admin(standalone, "topics", "update-partitioned-topic", topic, "-p", "4")
    assert "now has 4 partitions" in out
    meta = admin(standalone, "topics", "get-partitioned-topic-metadata", topic, json_out=True)
    assert meta["partitions"] == 4
    # The new partitions carry the subscription, so nothing published to them is missed.
    assert admin(standalone, "topics", "subscriptions", f"{topic}-partition-3",
                 json_out=True) == ["audit"]
    # The count only grows.
    out = admin(standalone, "topics", "update-partitioned-topic", topic, "-p", "3", ok=False)
    assert "409" in out and "only grow" in out

    # Unload: a connected producer reconnects and keeps publishing.
    plain = topic + "-plain"
    producer = client.create_producer(plain, batching_enabled=False)
    producer.send(b"before")
    assert admin(standalone, "topics", "unload", plain, json_out=True) == {"ok": True}
    producer.send(b"after")
    stats = admin(standalone, "topics", "stats", plain, json_out=True)
    assert stats["msgInCounter"] >= 1
    internal = admin(standalone, "topics", "stats-internal", plain, json_out=True)
    assert internal["numberOfEntries"] == 2
    out = admin(standalone, "topics", "unload", "public/default/never-created", ok=False)
    assert "404" in out or "not found" in out.lower()
