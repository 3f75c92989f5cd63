"""Compaction figures (see scripts/bench-compaction), against a fresh standalone:

1. N messages of SIZE bytes over K keys are published, one entry each (the Python client's
   default) or, with --batching, in batches of up to 1,000;
2. the topic is compacted through the admin API; the broker's own duration
   (`lastCompactionDurationTimeInMills`) gives MB/s compacted — the topic's bytes read twice
   (phase one and two) and the compacted ledger written — and the wall time as the admin
   client sees it is printed too;
3. a read-compacted reader reads the compacted topic from the start (what a TableView does when
   it is created): its time and rate (keys/s). (Not the client's TableView itself: the C++
   client's, and so Python's, crashes replaying more than a few thousand batched messages,
   compacted or not.)"""

import argparse
import json
import pathlib
import sys
import tempfile
import threading
import time

import pulsar

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "compat"))
from conftest import Standalone  # noqa: E402
from georep import rest, wait_until  # noqa: E402


def publish(producer, n, keys, payload):
    done = threading.Semaphore(0)
    failures = []

    def sent(result, _msg_id):
        if result != pulsar.Result.Ok:
            failures.append(result)
        done.release()

    for i in range(n):
        producer.send_async(payload, sent, partition_key=f"key-{i % keys}")
        if i % 10_000 == 9_999:
            print(f"  published {i + 1:,}/{n:,}", file=sys.stderr, flush=True)
    for _ in range(n):
        done.acquire()
    if failures:
        raise SystemExit(f"{len(failures)} sends failed: {failures[:3]}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--keys", type=int, default=10_000)
    parser.add_argument("--size", type=int, default=100)
    parser.add_argument("--batching", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="magnetar-bench-compaction-") as data:
        server = Standalone(pathlib.Path(data)).start()
        try:
            client = pulsar.Client(server.url, operation_timeout_seconds=60)
            topic = "persistent://public/default/compaction-bench"
            producer = client.create_producer(topic, block_if_queue_full=True,
                                              batching_enabled=args.batching,
                                              batching_max_messages=1000,
                                              max_pending_messages=10_000)
            started = time.monotonic()
            publish(producer, args.messages, args.keys, b"v" * args.size)
            publish_s = time.monotonic() - started
            producer.close()
            base = topic.replace("persistent://", "/admin/v2/persistent/")
            stored = rest(server, "GET", base + "/stats")[1]["storageSize"]
            entries = rest(server, "GET", base + "/internalStats")[1]["numberOfEntries"]

            print("  compacting…", file=sys.stderr, flush=True)
            started = time.monotonic()
            rest(server, "PUT", base + "/compaction")
            wait_until("compaction finished", lambda: rest(
                server, "GET", base + "/compaction")[1]["status"] in ("SUCCESS", "ERROR"),
                timeout=3600)
            wall_s = time.monotonic() - started
            status = rest(server, "GET", base + "/compaction")[1]
            if status["status"] != "SUCCESS":
                raise SystemExit(f"compaction failed: {status}")
            stats = rest(server, "GET", base + "/stats")[1]["compaction"]
            internal = rest(server, "GET", base + "/internalStats")[1]["compactedLedger"]
            broker_s = max(stats["lastCompactionDurationTimeInMills"], 1) / 1000

            started = time.monotonic()
            reader = client.create_reader(topic, pulsar.MessageId.earliest,
                                          is_read_compacted=True)
            keys = set()
            while reader.has_message_available():
                keys.add(reader.read_next(10_000).partition_key())
            table_s = time.monotonic() - started
            loaded = len(keys)
            reader.close()
            client.close()
            if loaded != args.keys:
                raise SystemExit(f"the compacted read found {loaded} keys, not {args.keys}")

            figures = {
                "messages": args.messages,
                "keys": args.keys,
                "message_bytes": args.size,
                "batching": args.batching,
                "topic_entries": entries,
                "topic_bytes": stored,
                "publish_msg_per_s": round(args.messages / publish_s),
                "compaction_seconds": round(broker_s, 3),
                "compaction_wall_seconds": round(wall_s, 3),
                "compacted_mb_per_s": round(stored / broker_s / 1e6, 1),
                "compacted_msg_per_s": round(args.messages / broker_s),
                "removed_messages": stats["lastCompactionRemovedEventCount"],
                "compacted_ledger_entries": internal["entries"],
                "compacted_ledger_bytes": internal["size"],
                "compacted_read_seconds": round(table_s, 3),
                "compacted_read_keys_per_s": round(loaded / table_s),
            }
        finally:
            server.stop()
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        width = max(len(k) for k in figures)
        for k, v in figures.items():
            print(f"{k:<{width}}  {v:,}" if isinstance(v, int) else f"{k:<{width}}  {v}")


if __name__ == "__main__":
    main()
