"""Tiered storage with the official Python client, against a real S3-compatible server (moto's,
started here) and a local directory: closed ledgers offloaded on demand (`magnetar admin topics
offload`, `PUT …/offload`) and by the namespace's threshold, their objects in the store, the
bookie copies deleted after the deletion lag, and every message read back by consumers — also
after kill -9 and a restart, when only the store has them."""

import os
import subprocess
import urllib.error
import uuid

import boto3
import pulsar
import pytest
from moto.server import ThreadedMotoServer

from conftest import Standalone, free_port, magnetar_admin
from georep import rest, wait_until

BUCKET = "magnetar-offload"


def topic(name, namespace="public/default"):
    return f"persistent://{namespace}/{name}-{uuid.uuid4().hex[:8]}"


def path(t, suffix=""):
    return t.replace("persistent://", "/admin/v2/persistent/") + suffix


@pytest.fixture(scope="module")
def s3():
    """moto's S3 server on a free port, with the bucket created."""
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    saved = {k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    os.environ["AWS_ACCESS_KEY_ID"] = "testing"
    os.environ["AWS_SECRET_ACCESS_KEY"] = "testing"
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    client.create_bucket(Bucket=BUCKET)
    yield endpoint, client
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    server.stop()


@pytest.fixture(scope="module", params=["s3", "filesystem"])
def tiered(request, tmp_path_factory, s3):
    """A standalone offloading to moto's S3 or to a directory, and a function listing the
    objects it wrote."""
    data = tmp_path_factory.mktemp(f"tiered-{request.param}")
    if request.param == "s3":
        endpoint, client = s3
        prefix = f"run-{uuid.uuid4().hex[:8]}"
        args = ["--offload-driver", "aws-s3", "--offload-bucket", BUCKET,
                "--offload-endpoint", endpoint, "--offload-prefix", prefix]

        def objects():
            listed = client.list_objects_v2(Bucket=BUCKET, Prefix=prefix + "/")
            return sorted(o["Key"] for o in listed.get("Contents", []))
    else:
        store = data / "offload"
        args = ["--offload-driver", "filesystem", "--offload-path", str(store)]

        def objects():
            return sorted(str(p.relative_to(store)) for p in store.rglob("*") if p.is_file())
    server = Standalone(data, extra_args=args).start()
    yield server, objects
    server.stop()


def internal_stats(server, t):
    return rest(server, "GET", path(t, "/internalStats"))[1]


def closed_ledgers(server, t):
    ledgers = internal_stats(server, t)["ledgers"]
    return [l for l in ledgers[:-1] if l["entries"] > 0]


def publish_in_ledgers(server, client, t, rounds, per_round):
    """`rounds` × `per_round` messages, the topic unloaded after each round so that every
    round lands in its own ledger (the next owner closes the last one)."""
    producer = client.create_producer(t, batching_enabled=False)
    n = 0
    for _ in range(rounds):
        for _ in range(per_round):
            producer.send(f"message-{n:05d}-".encode() + b"x" * 200)
            n += 1
        rest(server, "PUT", path(t, "/unload"))
    producer.send(b"in the open ledger")
    producer.close()
    return n + 1


def receive_all(client, t, sub, n):
    consumer = client.subscribe(t, sub, initial_position=pulsar.InitialPosition.Earliest)
    got = []
    for _ in range(n):
        msg = consumer.receive(timeout_millis=20000)
        got.append(msg.data())
        consumer.acknowledge(msg)
    consumer.close()
    return got


def expected(n):
    return [f"message-{i:05d}-".encode() + b"x" * 200 for i in range(n - 1)] + [
        b"in the open ledger"]


def test_offload_on_demand_then_read_back_from_the_store_only(tiered):
    """1. Three closed ledgers and an open one; `topics offload -s 0` offloads the closed
       ones, `offload-status -w` says SUCCESS, internal stats mark them offloaded, the store
       holds an index and a data object per ledger, stats count the offloaded bytes.
    2. With the namespace's deletion lag at 0 the bookies drop them.
    3. After kill -9 and a restart, a new subscription and the old one (nothing acknowledged)
       receive every message, in order, from the store."""
    server, objects = tiered
    t = topic("on-demand")
    client = pulsar.Client(server.url, operation_timeout_seconds=30)
    client.subscribe(t, "keep", initial_position=pulsar.InitialPosition.Earliest).close()
    n = publish_in_ledgers(server, client, t, rounds=3, per_round=150)
    client.close()
    closed = closed_ledgers(server, t)
    assert len(closed) == 3, internal_stats(server, t)

    assert rest(server, "GET", path(t, "/offload"))[1]["status"] == "NOT_RUN"
    out = magnetar_admin(server, "topics", "offload", "-s", "0", t)
    assert "offload of" in out, out
    status = magnetar_admin(server, "topics", "offload-status", "-w", t, json_out=True)
    assert status["status"] == "SUCCESS", status
    open_ledger = internal_stats(server, t)["ledgers"][-1]["ledgerId"]
    assert status["firstUnoffloadedMessage"]["ledgerId"] == open_ledger, status
    assert all(l["offloaded"] for l in closed_ledgers(server, t)), internal_stats(server, t)
    stored = objects()
    assert len(stored) == 6, stored
    assert sum(o.endswith("/index") for o in stored) == 3, stored
    stats = rest(server, "GET", path(t, "/stats"))[1]
    assert stats["offloadedStorageSize"] == sum(l["size"] for l in closed), stats

    magnetar_admin(server, "namespaces", "set-offload-deletion-lag", "public/default",
                   "--lag", "0")
    assert rest(server, "GET", "/admin/v2/namespaces/public/default/offloadDeletionLagMs")[1] == 0
    wait_until("the bookies dropped the offloaded ledgers", lambda: all(
        l.get("bookieDeleted") for l in closed_ledgers(server, t)), timeout=60)

    server.kill()
    server.start()
    client = pulsar.Client(server.url, operation_timeout_seconds=30)
    try:
        assert receive_all(client, t, f"new-{uuid.uuid4().hex[:6]}", n) == expected(n)
        assert receive_all(client, t, "keep", n) == expected(n)
    finally:
        client.close()
    rest(server, "DELETE", "/admin/v2/namespaces/public/default/offloadDeletionLagMs")

    # Deleting the topic deletes its objects.
    rest(server, "DELETE", path(t, "?force=true"))
    wait_until("the topic's objects deleted", lambda: not objects(), timeout=30)


def test_the_namespace_threshold_offloads_without_being_asked(tiered):
    """A namespace with offloadThreshold 0: every ledger that closes goes to the store by
    itself; a reader still reads everything; the policy routes check their values."""
    server, _ = tiered
    ns = f"public/auto-{uuid.uuid4().hex[:6]}"
    rest(server, "PUT", f"/admin/v2/namespaces/{ns}")
    magnetar_admin(server, "namespaces", "set-offload-threshold", ns, "--size", "0")
    got = magnetar_admin(server, "namespaces", "get-offload-threshold", ns, json_out=True)
    assert got == {"offloadThreshold": 0, "offloadThresholdInSeconds": None}, got
    for bad in (-2, "not a number"):
        with pytest.raises(urllib.error.HTTPError) as e:
            rest(server, "PUT", f"/admin/v2/namespaces/{ns}/offloadThreshold", bad)
        assert e.value.code in (400, 412), e.value
    with pytest.raises(urllib.error.HTTPError) as e:
        rest(server, "PUT", "/admin/v2/namespaces/public/nope/offloadThreshold", 0)
    assert e.value.code == 404

    t = topic("auto", ns)
    client = pulsar.Client(server.url, operation_timeout_seconds=30)
    try:
        client.subscribe(t, "keep", initial_position=pulsar.InitialPosition.Earliest).close()
        n = publish_in_ledgers(server, client, t, rounds=2, per_round=100)
        wait_until("closed ledgers offloaded by the policy", lambda: (
            len(closed_ledgers(server, t)) == 2
            and all(l["offloaded"] for l in closed_ledgers(server, t))), timeout=60)
        assert receive_all(client, t, "keep", n) == expected(n)
    finally:
        client.close()


def test_offload_errors(tiered, standalone):
    """404 for an unknown topic; 400 naming the missing setting on a broker without a
    driver; a status of a topic never offloaded is NOT_RUN."""
    server, _ = tiered
    with pytest.raises(urllib.error.HTTPError) as e:
        rest(server, "PUT", path("persistent://public/default/never-was", "/offload"),
             {"ledgerId": 1, "entryId": 0})
    assert e.value.code == 404
    t = topic("no-driver")
    client = pulsar.Client(standalone.url)
    client.create_producer(t).close()
    client.close()
    with pytest.raises(urllib.error.HTTPError) as e:
        rest(standalone, "PUT", path(t, "/offload"), {"ledgerId": 9, "entryId": 0})
    assert e.value.code == 400
    assert "offload driver" in e.value.read().decode()
    assert rest(standalone, "GET", path(t, "/offload"))[1]["status"] == "NOT_RUN"
    out = magnetar_admin(standalone, "topics", "offload-status", t)
    assert "NOT_RUN" in out


def test_a_bad_offload_setting_is_named_at_startup(tmp_path):
    """An unknown driver, or the filesystem driver without a directory: the standalone exits
    non-zero naming the flag."""
    bin_ = os.environ.get("MAGNETAR_BIN", "magnetar")
    for args, flag in ((["--offload-driver", "tape"], "--offload-driver"),
                       (["--offload-driver", "filesystem"], "--offload-path"),
                       (["--offload-driver", "aws-s3"], "--offload-bucket")):
        out = subprocess.run(
            [bin_, "standalone", "--data-dir", str(tmp_path / uuid.uuid4().hex[:6]),
             "--broker-addr", f"127.0.0.1:{free_port()}",
             "--metadata-addr", f"127.0.0.1:{free_port()}",
             "--bookie-addr", f"127.0.0.1:{free_port()}",
             "--http-addr", f"127.0.0.1:{free_port()}", "--replication-addr", "off", *args],
            capture_output=True, text=True, timeout=60)
        assert out.returncode != 0, out
        assert flag in out.stderr, out.stderr
