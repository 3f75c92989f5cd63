"""Crash soak: cycles of produce → `kill -9` at a random moment → restart → verify.

Each cycle publishes numbered messages to a fresh topic while a consumer on a durable
subscription receives and acknowledges them, then kills a process with SIGKILL at a random
moment (the standalone, or a random broker or bookie of a local cluster), restarts it, and checks:

- every message whose publish was acknowledged is stored (read back from the earliest entry);
- the subscription delivers every stored message that was not acknowledged before the kill —
  an acknowledged one may come again (at-least-once), an unacknowledged one is never skipped.

Run by `scripts/crash-soak [--cycles N] [--target standalone|cluster] [--seed S]`; CI runs a
short pass through tests/compat/test_crash_soak.py. Prints one line per cycle and a summary; exits
non-zero if anything was lost.
"""

import argparse
import json
import os
import random
import sys
import threading
import time
import uuid

import pulsar

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "compat"))

from conftest import Standalone  # noqa: E402
from test_cluster import LocalCluster  # noqa: E402


class Workload:
    """A producer and a consumer running until the process under them dies."""

    def __init__(self, url, topic, batching):
        self.client = pulsar.Client(url, operation_timeout_seconds=15, connection_timeout_ms=5000)
        self.topic = topic
        self.consumer = self.client.subscribe(topic, "soak", consumer_type=pulsar.ConsumerType.Shared)
        self.producer = self.client.create_producer(
            topic, batching_enabled=batching, batching_max_publish_delay_ms=2,
            block_if_queue_full=True, send_timeout_millis=20000,
        )
        self.published = set()  # acknowledged by the broker
        self.consumed = set()  # acknowledged by this consumer (maybe not persisted)
        self.lock = threading.Lock()
        self.progress = threading.Condition(self.lock)
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self.produce), threading.Thread(target=self.consume)]

    def start(self):
        for t in self.threads:
            t.start()

    def produce(self):
        i = 0
        while not self.stop.is_set():
            def done(result, _msg_id, n=i):
                if result == pulsar.Result.Ok:
                    with self.lock:
                        self.published.add(n)
                        self.progress.notify_all()
            try:
                self.producer.send_async(str(i).encode(), done)
            except Exception:  # the broker is gone: stop producing
                return
            i += 1

    def consume(self):
        while not self.stop.is_set():
            try:
                m = self.consumer.receive(timeout_millis=200)
            except Exception:
                continue
            try:
                self.consumer.acknowledge(m)
                with self.lock:
                    self.consumed.add(int(m.data()))
            except Exception:
                pass

    def wait_published(self, count, timeout=120):
        """Waits until `count` publishes were acknowledged (the moment of the crash)."""
        with self.lock:
            return self.progress.wait_for(lambda: len(self.published) >= count, timeout)

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join(timeout=60)
        try:
            self.client.close()
        except Exception:
            pass


def stored(url, topic):
    """Every message id stored in `topic`, read from the earliest entry."""
    client = pulsar.Client(url, operation_timeout_seconds=30)
    reader = client.create_reader(topic, pulsar.MessageId.earliest)
    seen = set()
    while reader.has_message_available():
        seen.add(int(reader.read_next(timeout_millis=30000).data()))
    client.close()
    return seen


def redelivered(url, topic, expected):
    """What the subscription delivers after the restart, until `expected` all came (or a quiet
    period shows nothing more comes)."""
    client = pulsar.Client(url, operation_timeout_seconds=30)
    consumer = client.subscribe(topic, "soak", consumer_type=pulsar.ConsumerType.Shared)
    got = set()
    deadline = time.monotonic() + 120
    while not expected <= got and time.monotonic() < deadline:
        try:
            m = consumer.receive(timeout_millis=2000)
        except Exception:
            continue
        got.add(int(m.data()))
        consumer.acknowledge(m)
    client.close()
    return got


class StandaloneTarget:
    def __init__(self, directory):
        self.server = Standalone(directory).start()

    @property
    def url(self):
        return self.server.url

    def kill(self, rnd):
        self.server.kill()
        return "standalone"

    def restart(self):
        self.server.start()

    def close(self):
        self.server.stop()


class ClusterTarget:
    VICTIMS = ["broker-1", "broker-2", "bookie-1", "bookie-2", "bookie-3"]

    def __init__(self, directory):
        self.cluster = LocalCluster(directory).up()

    @property
    def url(self):
        return self.cluster.service_url()

    def kill(self, rnd):
        victim = rnd.choice(self.VICTIMS)
        self.cluster.kill(victim)
        return victim

    def restart(self):
        self.cluster.up()  # starts what is not running

    def close(self):
        self.cluster.down()


def run(target, cycles, seed, out=print):
    rnd = random.Random(seed)
    totals = {"published": 0, "lost": 0, "skipped": 0, "redelivered": 0}
    for cycle in range(1, cycles + 1):
        topic = f"persistent://public/default/soak-{uuid.uuid4().hex[:8]}"
        work = Workload(target.url, topic, batching=rnd.random() < 0.5)
        work.start()
        # The random moment of the crash: after a random number of acknowledged publishes.
        if not work.wait_published(rnd.randint(1, 40_000)):
            raise RuntimeError("the workload did not get its publishes acknowledged")
        victim = target.kill(rnd)
        work.finish()
        target.restart()
        with work.lock:
            published, consumed = set(work.published), set(work.consumed)
        kept = stored(target.url, topic)
        lost = published - kept
        expected = kept - consumed
        got = redelivered(target.url, topic, expected)
        skipped = expected - got
        totals["published"] += len(published)
        totals["lost"] += len(lost)
        totals["skipped"] += len(skipped)
        totals["redelivered"] += len(got & consumed)
        out(f"cycle {cycle}/{cycles}: killed {victim}; {len(published)} acknowledged, "
            f"{len(kept)} stored, {len(consumed)} consumed; lost {len(lost)}, "
            f"skipped {len(skipped)}, acked-then-redelivered {len(got & consumed)}")
        if lost or skipped:
            out(f"  lost: {sorted(lost)[:20]} skipped: {sorted(skipped)[:20]}")
    return totals


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=10)
    parser.add_argument("--target", choices=["standalone", "cluster"], default="standalone")
    parser.add_argument("--seed", type=int, default=int(time.time()))
    parser.add_argument("--dir", default=None, help="where data and logs go (a temp dir by default)")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    args = parser.parse_args()
    import tempfile
    directory = args.dir or tempfile.mkdtemp(prefix="magnetar-soak-")
    os.makedirs(directory, exist_ok=True)
    print(f"crash soak: {args.cycles} cycles against a {args.target}, seed {args.seed}, data in {directory}")
    target = StandaloneTarget(directory) if args.target == "standalone" else ClusterTarget(directory)
    started = time.monotonic()
    try:
        totals = run(target, args.cycles, args.seed)
    finally:
        target.close()
    totals["cycles"] = args.cycles
    totals["seconds"] = round(time.monotonic() - started, 1)
    if args.json:
        print(json.dumps(totals))
    else:
        print(f"summary: {totals['cycles']} cycles in {totals['seconds']} s, "
              f"{totals['published']} acknowledged messages, lost {totals['lost']}, "
              f"skipped {totals['skipped']}, redelivered after ack {totals['redelivered']}")
    sys.exit(1 if totals["lost"] or totals["skipped"] else 0)


if __name__ == "__main__":
    main()
