"""A real cluster of processes (3 metadata nodes, 3 bookies, 2 brokers, started by
`deploy/local-cluster`) driven by the real `pulsar-client`: lookups through broker 1 reach
topics owned by broker 2, and `kill -9` of the owning broker, of a bookie and of the metadata
leader loses no acknowledged message. Each destructive test gets a fresh cluster.
"""

import json
import os
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
import uuid

import pulsar
import pytest

from test_observability import CLUSTER_ONLY, scrape

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(ROOT, "deploy", "local-cluster")
BASE_PORTS = [6690, 6691, 6692, 3181, 3182, 3183, 6650, 6660, 8080, 8081,
              7690, 7691, 7692, 8000, 8001, 8002]


def ports_free(offset):
    for port in BASE_PORTS:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port + offset))
            except OSError:
                return False
    return True


class LocalCluster:
    def __init__(self, directory):
        self.dir = str(directory)
        self.bin = os.environ.get("MAGNETAR_BIN", "magnetar")
        self.offset = next(o for o in range(20000, 40000, 97) if ports_free(o))
        self.broker_urls = [f"pulsar://127.0.0.1:{p + self.offset}" for p in (6650, 6660)]
        self.web_urls = [f"http://127.0.0.1:{p + self.offset}" for p in (8080, 8081)]
        self.metadata = ",".join(f"127.0.0.1:{p + self.offset}" for p in (6690, 6691, 6692))

    def run(self, command):
        result = subprocess.run(
            [SCRIPT, command, "--dir", self.dir, "--port-offset", str(self.offset), "--bin", self.bin],
            capture_output=True, text=True, timeout=180,
        )
        assert result.returncode == 0, f"local-cluster {command} failed:\n{result.stdout}\n{result.stderr}"
        return result.stdout

    def up(self):
        self.run("up")
        return self

    def down(self):
        self.run("down")

    def pid(self, name):
        with open(os.path.join(self.dir, f"{name}.pid")) as f:
            return int(f.read().strip())

    def kill(self, name):
        pid = self.pid(name)
        os.kill(pid, 9)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            # The script detached it, so it is not our child: a zombie counts as dead.
            try:
                with open(f"/proc/{pid}/stat") as stat:
                    if stat.read().split()[2] == "Z":
                        return
            except FileNotFoundError:
                return
            time.sleep(0.05)
        raise TimeoutError(f"{name} did not die")

    def owner(self, topic, via=0):
        """The pulsar:// URL of the broker serving `topic`, by the HTTP lookup."""
        local = topic.split("/")[-1]
        domain = topic.split("://")[0] if "://" in topic else "persistent"
        url = f"{self.web_urls[via]}/lookup/v2/topic/{domain}/public/default/{local}"
        with urllib.request.urlopen(url, timeout=30) as response:
            return json.load(response)["brokerUrl"]

    def metadata_leader(self):
        out = subprocess.run(
            [self.bin, "metadata", "--servers", self.metadata,
             "--cluster-token", f"file://{self.dir}/cluster.token", "--json", "members"],
            check=True, capture_output=True, text=True,
        ).stdout
        members = json.loads(out)
        leader = next(m for m in members if m["leader"])
        return f"metadata-{leader['node_id']}"

    def service_url(self):
        hosts = ",".join(u.removeprefix("pulsar://") for u in self.broker_urls)
        return f"pulsar://{hosts}"


@pytest.fixture
def cluster(tmp_path):
    c = LocalCluster(tmp_path / "cluster").up()
    yield c
    c.down()


def topic_owned_by(cluster, index, prefix, domain="persistent"):
    """A fresh topic whose bundle lands on broker `index` (looked up at the other broker)."""
    for i in range(64):
        topic = f"{domain}://public/default/{prefix}-{uuid.uuid4().hex[:6]}-{i}"
        if cluster.owner(topic, via=1 - index) == cluster.broker_urls[index]:
            return topic
    raise AssertionError(f"no topic landed on broker {index + 1}")


def test_client_at_broker_1_reaches_topics_owned_by_broker_2(cluster):
    topic = topic_owned_by(cluster, 1, "redirect")
    client = pulsar.Client(cluster.broker_urls[0], operation_timeout_seconds=30)
    consumer = client.subscribe(topic, "sub")
    producer = client.create_producer(topic, batching_enabled=False)
    for i in range(100):
        producer.send(f"m-{i}".encode())
    got = []
    for _ in range(100):
        m = consumer.receive(timeout_millis=10000)
        consumer.acknowledge(m)
        got.append(m.data().decode())
    assert got == [f"m-{i}" for i in range(100)]
    # Unowned topics looked up through broker 1 go to either broker (redirects followed).
    owners = set()
    for i in range(12):
        t = f"persistent://public/default/spread-{uuid.uuid4().hex[:6]}-{i}"
        p = client.create_producer(t)
        p.send(b"x")
        p.close()
        owners.add(cluster.owner(t))
    assert owners == set(cluster.broker_urls)
    client.close()
    # Every role is ready, and the metrics only a cluster exposes are there (the dashboard and
    # alert rules query them; test_observability.py checks the rest on a standalone).
    o = cluster.offset
    for port in (7690, 7691, 7692, 8000, 8001, 8002, 8080, 8081):
        with urllib.request.urlopen(f"http://127.0.0.1:{port + o}/health/ready", timeout=10) as r:
            assert r.status == 200, port
    on_brokers = scrape(cluster.web_urls[0]) | scrape(cluster.web_urls[1])
    assert CLUSTER_ONLY <= on_brokers
    assert "bookie_journal_fsync_latency_seconds_bucket" in scrape(f"http://127.0.0.1:{8000 + o}")
    assert "metadata_raft_has_leader" in scrape(f"http://127.0.0.1:{7690 + o}")
    # Both brokers name the same leader broker (the elected autorecovery auditor), one of them.
    deadline = time.monotonic() + 60
    while True:
        named = set()
        for url in cluster.web_urls:
            try:
                with urllib.request.urlopen(f"{url}/admin/v2/brokers/leaderBroker",
                                            timeout=10) as r:
                    named.add(json.loads(r.read())["serviceUrl"])
            except urllib.error.HTTPError as e:
                assert e.code == 404, e  # not elected yet
                named.add(None)
        if len(named) == 1 and None not in named:
            break
        assert time.monotonic() < deadline, f"no agreed leader broker: {named}"
        time.sleep(0.2)
    assert named <= set(cluster.web_urls), (named, cluster.web_urls)


def test_partitioned_topic_over_both_brokers(cluster):
    name = f"parts-{uuid.uuid4().hex[:6]}"
    request = urllib.request.Request(
        f"{cluster.web_urls[0]}/admin/v2/persistent/public/default/{name}/partitions",
        data=b"8", method="PUT", headers={"Content-Type": "application/json"},
    )
    urllib.request.urlopen(request, timeout=30).close()
    topic = f"persistent://public/default/{name}"
    client = pulsar.Client(cluster.broker_urls[0], operation_timeout_seconds=30)
    consumer = client.subscribe(topic, "sub")
    producer = client.create_producer(topic, batching_enabled=False)
    for i in range(80):
        producer.send(f"{i}".encode(), partition_key=str(i))
    got = set()
    for _ in range(80):
        m = consumer.receive(timeout_millis=10000)
        consumer.acknowledge(m)
        got.add(int(m.data()))
    assert got == set(range(80))
    owners = {cluster.owner(f"{topic}-partition-{p}") for p in range(8)}
    assert owners == set(cluster.broker_urls)

    # A partitioned non-persistent topic spreads over both brokers the same way, and either
    # broker lists every partition (loaded topics are registered in the metadata service).
    np_name = f"np-parts-{uuid.uuid4().hex[:6]}"
    request = urllib.request.Request(
        f"{cluster.web_urls[1]}/admin/v2/non-persistent/public/default/{np_name}/partitions",
        data=b"8", method="PUT", headers={"Content-Type": "application/json"},
    )
    urllib.request.urlopen(request, timeout=30).close()
    np_topic = f"non-persistent://public/default/{np_name}"
    np_consumer = client.subscribe(np_topic, "sub")
    np_producer = client.create_producer(np_topic, batching_enabled=False)
    for i in range(80):
        np_producer.send(f"{i}".encode(), partition_key=str(i))
    got = set()
    for _ in range(80):
        got.add(int(np_consumer.receive(timeout_millis=10000).data()))
    assert got == set(range(80))
    owners = {cluster.owner(f"{np_topic}-partition-{p}") for p in range(8)}
    assert owners == set(cluster.broker_urls)
    for url in cluster.web_urls:
        with urllib.request.urlopen(f"{url}/admin/v2/non-persistent/public/default",
                                    timeout=30) as r:
            listed = set(json.loads(r.read()))
        assert {f"{np_topic}-partition-{p}" for p in range(8)} <= listed, url
    client.close()


class Stream:
    """Publishes numbered messages as fast as receipts allow, recording every acknowledged one
    and when it was acknowledged."""

    def __init__(self, client, topic):
        self.producer = client.create_producer(
            topic, batching_enabled=False, send_timeout_millis=30000,
            max_pending_messages=200, block_if_queue_full=True,
        )
        self.acked = {}
        self.failed = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.sent = 0
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        while not self.stop.is_set():
            i = self.sent
            self.sent += 1

            def done(res, _msg_id, i=i):
                with self.lock:
                    if res == pulsar.Result.Ok:
                        self.acked[i] = time.monotonic()
                    else:
                        self.failed.append((i, res))

            self.producer.send_async(str(i).encode(), done)
            time.sleep(0.002)

    def count(self):
        with self.lock:
            return len(self.acked)

    def wait_for(self, n, timeout=60):
        deadline = time.monotonic() + timeout
        while self.count() < n:
            assert time.monotonic() < deadline, f"only {self.count()} acknowledged, {self.failed[:5]}"
            time.sleep(0.05)

    def finish(self):
        self.stop.set()
        self.thread.join(timeout=30)
        self.producer.flush()

    def longest_gap(self):
        times = sorted(self.acked.values())
        return max((b - a for a, b in zip(times, times[1:])), default=0.0)


def survive(cluster, victim, topic_prefix, owner_index=0):
    """Streams to a topic, `kill -9`s `victim` mid-stream, keeps streaming, then checks that a
    consumer receives every acknowledged message. Returns the longest publish stall."""
    topic = topic_owned_by(cluster, owner_index, topic_prefix)
    client = pulsar.Client(cluster.service_url(), operation_timeout_seconds=30)
    consumer = client.subscribe(topic, "check")
    stream = Stream(client, topic)
    stream.thread.start()
    stream.wait_for(300)
    killed_at = time.monotonic()
    cluster.kill(victim(cluster) if callable(victim) else victim)
    before = stream.count()
    stream.wait_for(before + 300, timeout=90)
    stream.finish()
    assert stream.failed == [], f"sends failed: {stream.failed[:5]}"
    acked = set(stream.acked)
    got = set()
    while not acked <= got:
        m = consumer.receive(timeout_millis=30000)
        consumer.acknowledge(m)
        got.add(int(m.data()))
    stall = stream.longest_gap()
    print(f"\n    kill -9 {victim if isinstance(victim, str) else 'metadata leader'}: "
          f"{len(acked)} acknowledged, all received; longest publish stall {stall:.2f} s "
          f"(kill at +{killed_at - min(stream.acked.values()):.1f} s)")
    client.close()
    return stall


def test_kill_9_of_the_owning_broker_loses_no_acknowledged_message(cluster):
    survive(cluster, "broker-1", "owner-kill", owner_index=0)


def test_kill_9_of_a_bookie_loses_no_acknowledged_message(cluster):
    survive(cluster, "bookie-1", "bookie-kill")


def test_kill_9_of_the_metadata_leader_loses_no_acknowledged_message(cluster):
    survive(cluster, lambda c: c.metadata_leader(), "leader-kill")


def test_a_non_persistent_topic_moves_on_when_its_broker_is_killed(cluster):
    """Nothing of a non-persistent topic survives its broker, but its clients do: after
    `kill -9` of the owner, the producer and the consumer reconnect to the other broker and new
    messages flow again."""
    topic = topic_owned_by(cluster, 0, "np-kill", domain="non-persistent")
    client = pulsar.Client(cluster.service_url(), operation_timeout_seconds=30)
    consumer = client.subscribe(topic, "sub")
    producer = client.create_producer(topic, batching_enabled=False, send_timeout_millis=30000)
    producer.send(b"before")
    assert consumer.receive(timeout_millis=10000).data() == b"before"
    cluster.kill("broker-1")
    # Messages sent while the consumer is still reconnecting are lost (no subscription holds
    # them): send until one arrives.
    deadline = time.monotonic() + 90
    received = None
    i = 0
    while received is None:
        assert time.monotonic() < deadline, "no message arrived after the owner was killed"
        producer.send(f"after-{i}".encode())
        i += 1
        try:
            received = consumer.receive(timeout_millis=500).data()
        except pulsar.Timeout:
            pass
    assert received.startswith(b"after-")
    assert cluster.owner(topic, via=1) == cluster.broker_urls[1]
    client.close()
