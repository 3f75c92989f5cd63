"""Delayed delivery figures (see scripts/bench-delayed), against a fresh standalone:

1. memory: first N ordinary messages into a backlog (no consumer), so that the storage path's
   memory (bookie memtables, entry cache — each bounded) has grown to its plateau; then N
   messages with deliver_after = 1 hour on a Shared subscription with a consumer attached,
   until the subscription's `msgDelayed` shows them all indexed. The broker's RSS growth in
   the second phase, per million, is what holding delayed messages costs (the first phase's
   growth is printed too);
2. accuracy: M messages due over the next S seconds (each at a random time), received by a
   consumer; how late each arrived after its deliver_at (same host clock), p50/p99/max."""

import argparse
import json
import os
import pathlib
import random
import sys
import tempfile
import threading
import time

import pulsar

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "compat"))
from conftest import Standalone  # noqa: E402
from georep import stats, wait_until  # noqa: E402


def rss_bytes(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def now_ms():
    return int(time.time() * 1000)


def publish(producer, n, deliver_at):
    """Publishes n messages asynchronously, each checked, message i due at deliver_at(i) (also
    carried in its property `at`); returns when all are acknowledged."""
    done = threading.Semaphore(0)
    failures = []

    def sent(result, _msg_id):
        if result != pulsar.Result.Ok:
            failures.append(result)
        done.release()

    for i in range(n):
        at = deliver_at(i)
        if at:
            producer.send_async(b"x" * 100, sent, deliver_at=at, properties={"at": str(at)})
        else:
            producer.send_async(b"x" * 100, sent)
    for _ in range(n):
        done.acquire()
    if failures:
        raise RuntimeError(f"{len(failures)} publishes failed: {failures[:3]}")


def memory(server, client, n):
    control = f"persistent://public/default/delayed-control-{int(time.time())}"
    client.subscribe(control, "backlog").close()
    producer = client.create_producer(control, batching_enabled=False, block_if_queue_full=True,
                                      max_pending_messages=5000)
    start = rss_bytes(server.proc.pid)
    publish(producer, n, lambda i: 0)
    producer.close()
    t = f"persistent://public/default/delayed-memory-{int(time.time())}"
    consumer = client.subscribe(t, "s", consumer_type=pulsar.ConsumerType.Shared)
    producer = client.create_producer(t, batching_enabled=False, block_if_queue_full=True,
                                      max_pending_messages=5000)
    before = rss_bytes(server.proc.pid)
    started = time.monotonic()
    due = now_ms() + 3_600_000
    publish(producer, n, lambda i: due)
    published = time.monotonic() - started
    wait_until("all indexed", lambda: stats(server, t)["subscriptions"]["s"]["msgDelayed"] >= n,
               timeout=600)
    after = rss_bytes(server.proc.pid)
    consumer.close()
    producer.close()
    return {
        "messages": n,
        "publish_seconds": round(published, 1),
        "rss_start_mb": round(start / 2**20, 1),
        "rss_before_mb": round(before / 2**20, 1),
        "rss_after_mb": round(after / 2**20, 1),
        "rss_per_million_mb": round((after - before) / n * 1e6 / 2**20, 1),
    }


def accuracy(client, n, seconds):
    t = f"persistent://public/default/delayed-accuracy-{int(time.time())}"
    consumer = client.subscribe(t, "s", consumer_type=pulsar.ConsumerType.Shared,
                                receiver_queue_size=1000)
    producer = client.create_producer(t, batching_enabled=False, block_if_queue_full=True)
    start = now_ms() + 2000
    publish(producer, n, lambda i: start + random.randrange(seconds * 1000))
    lateness = []
    while len(lateness) < n:
        msg = consumer.receive(seconds * 1000 + 30_000)
        lateness.append(now_ms() - int(msg.properties()["at"]))
        consumer.acknowledge(msg)
    producer.close()
    consumer.close()
    lateness.sort()
    pick = lambda q: lateness[min(len(lateness) - 1, int(q * len(lateness)))]  # noqa: E731
    return {"messages": n, "spread_seconds": seconds, "early": sum(1 for x in lateness if x < 0),
            "late_p50_ms": pick(0.5), "late_p99_ms": pick(0.99), "late_max_ms": lateness[-1]}


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--accuracy-messages", type=int, default=20_000)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="delayed-bench-") as data:
        server = Standalone(pathlib.Path(data)).start()
        try:
            client = pulsar.Client(server.url, operation_timeout_seconds=60)
            print(f"accuracy: {args.accuracy_messages} messages due over {args.seconds} s ...",
                  file=sys.stderr)
            acc = accuracy(client, args.accuracy_messages, args.seconds)
            print(f"memory: {args.messages} messages delayed by 1 hour ...", file=sys.stderr)
            mem = memory(server, client, args.messages)
            client.close()
        finally:
            server.stop()
    result = {"cpus": os.cpu_count(), "memory": mem, "accuracy": acc}
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"delayed messages indexed : {mem['messages']:,} "
          f"(published in {mem['publish_seconds']} s)")
    print(f"broker RSS, ordinary     : {mem['rss_start_mb']} MB -> {mem['rss_before_mb']} MB "
          f"after {mem['messages']:,} ordinary messages (storage path at its plateau)")
    print(f"broker RSS, delayed      : {mem['rss_before_mb']} MB -> {mem['rss_after_mb']} MB, "
          f"{mem['rss_per_million_mb']} MB per million delayed messages")
    print(f"dispatch lateness        : p50 {acc['late_p50_ms']} ms, p99 {acc['late_p99_ms']} ms, "
          f"max {acc['late_max_ms']} ms ({acc['messages']:,} messages over "
          f"{acc['spread_seconds']} s, {acc['early']} early)")


if __name__ == "__main__":
    main()
