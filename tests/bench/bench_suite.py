"""The standard performance suite (see scripts/bench and docs/perf.md): the machine first
(CPU count, one fdatasync's latency, the disk's sequential write rate, all measured in the
directory the standalone writes to), then fresh standalones under `magnetar perf` (one per group of runs):

- throughput: one batching producer, 100-byte messages; 16 producers on 16 topics; 1-KiB
  messages (MB/s against the disk's sequential rate);
- latency: unbatched publish at 10,000 msg/s (p99 against one fdatasync's p99), batched
  publish at 10,000 msg/s, end-to-end p99 against publish p99;
- catch-up: a backlog read with the default receiver queue (1,000);
- topic scale: topics opened per second, broker RSS per topic, and how long a graceful
  shutdown with them all loaded takes;
- tiered storage: offload MB/s of a 1-KiB-message backlog to a local directory (and to moto's
  S3 server when moto is installed), and read-back MB/s once only the store has it.

Prints a table and writes every figure to a JSON file. No figure is asserted: the point is the
numbers, and their ratios to the machine's own, so that runs on different machines compare."""

import argparse
import json
import os
import pathlib
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "compat"))
from conftest import Standalone, free_port  # noqa: E402
from georep import rest, wait_until  # noqa: E402

BIN = os.environ.get("MAGNETAR_BIN", "magnetar")


def log(message):
    print(message, file=sys.stderr, flush=True)


# ---- the machine ------------------------------------------------------------------------------

def fdatasync_latency(directory, rounds):
    """p50 and p99 (ms) of writing 4 KiB and fdatasync'ing it, as a journal does."""
    path = os.path.join(directory, "fsync-probe")
    samples = []
    block = os.urandom(4096)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for _ in range(rounds):
            os.write(fd, block)
            started = time.perf_counter()
            os.fdatasync(fd)
            samples.append((time.perf_counter() - started) * 1000)
    finally:
        os.close(fd)
        os.unlink(path)
    samples.sort()
    return {
        "p50_ms": round(samples[len(samples) // 2], 3),
        "p99_ms": round(samples[min(len(samples) - 1, int(len(samples) * 0.99))], 3),
        "mean_ms": round(statistics.fmean(samples), 3),
        "rounds": rounds,
    }


def sequential_write(directory, mib):
    """MB/s of writing `mib` MiB in 1-MiB blocks and fdatasync'ing once."""
    path = os.path.join(directory, "seq-probe")
    block = os.urandom(1 << 20)
    started = time.perf_counter()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for _ in range(mib):
            os.write(fd, block)
        os.fdatasync(fd)
    finally:
        os.close(fd)
    elapsed = time.perf_counter() - started
    os.unlink(path)
    return {"mb_per_s": round(mib * (1 << 20) / elapsed / 1e6, 1), "mib": mib}


def machine(directory, quick):
    log("measuring the machine (fdatasync, sequential write)")
    return {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "fdatasync": fdatasync_latency(directory, 300 if quick else 2000),
        "sequential_write": sequential_write(directory, 128 if quick else 1024),
    }


# ---- magnetar perf -----------------------------------------------------------------------------

def perf(server, *args):
    return subprocess.Popen([BIN, "perf", "--json", "--service-url", server.url, *args],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)


def summary(proc, timeout=900):
    out, _ = proc.communicate(timeout=timeout)
    lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    found = next((x for x in lines if x.get("summary")), None)
    if found is None:
        raise RuntimeError(f"magnetar perf printed no summary (exit {proc.returncode})")
    return found


def rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


class Fresh:
    """A fresh standalone in its own directory under `base` for one group of runs, so that one
    group's leftovers (caches, compactions, trimmed ledgers) do not colour the next."""

    def __init__(self, base, name, extra_args=()):
        self.dir = pathlib.Path(base) / name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.extra_args = list(extra_args)

    def __enter__(self):
        self.server = Standalone(self.dir, extra_args=self.extra_args).start()
        return self.server

    def __exit__(self, *exc):
        self.server.stop()


def tiered_run(base, name, args, messages):
    """Offloads a backlog of `messages` 1-KiB messages (ledgers closed by unloading the topic
    every quarter) and reads it back after a restart, when only the store has it."""
    t = f"persistent://public/default/bench-tiered-{name}"
    admin = t.replace("persistent://", "/admin/v2/persistent/")
    with Fresh(base, f"tiered-{name}", args) as server:
        summary(perf(server, "consume", "--time", "2", t))  # keeps the backlog
        for _ in range(4):
            summary(perf(server, "produce", "-r", "0", "-s", "1024", "-m",
                         str(messages // 4), t))
            rest(server, "PUT", admin + "/unload")
        ledgers = rest(server, "GET", admin + "/internalStats")[1]["ledgers"]
        size = sum(l["size"] for l in ledgers[:-1])
        started = time.monotonic()
        rest(server, "PUT", admin + "/offload", {"ledgerId": 2**63 - 1, "entryId": 0})
        status = wait_until("offload finished", lambda: (
            lambda s: s if s["status"] in ("SUCCESS", "ERROR") else None)(
                rest(server, "GET", admin + "/offload")[1]), timeout=1800)
        offload_s = time.monotonic() - started
        if status["status"] != "SUCCESS":
            raise RuntimeError(f"offload failed: {status}")
        rest(server, "PUT", "/admin/v2/namespaces/public/default/offloadDeletionLagMs", 0)
        wait_until("bookie copies deleted", lambda: all(
            l.get("bookieDeleted") for l in
            rest(server, "GET", admin + "/internalStats")[1]["ledgers"][:-1]), timeout=120)
        server.restart()
        read = summary(perf(server, "consume", "-p", "earliest", "-s", "read-back", "-m",
                            str(messages), t))
    return {
        "bytes": size,
        "offload_s": round(offload_s, 2),
        "offload_mb_per_s": round(size / 1e6 / max(offload_s, 1e-3), 1),
        "read_back_msg_per_s": read["msg_per_s"],
        "read_back_mb_per_s": read["mb_per_s"],
    }


def tiered(base, messages):
    results = {}
    store = pathlib.Path(base) / "offload"
    log(f"tiered storage: {messages:,} × 1 KiB offloaded to a directory, then read back")
    results["filesystem"] = tiered_run(
        base, "fs", ["--offload-driver", "filesystem", "--offload-path", str(store)], messages)
    try:
        import boto3
        from moto.server import ThreadedMotoServer
    except ImportError:
        log("tiered storage: moto is not installed; S3 skipped")
        return results
    import logging
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's request log
    port = free_port()
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    moto.start()
    try:
        endpoint = f"http://127.0.0.1:{port}"
        os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
        os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
        boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(
            Bucket="bench")
        log(f"tiered storage: {messages:,} × 1 KiB offloaded to moto's S3 server, read back")
        results["s3_moto"] = tiered_run(
            base, "s3", ["--offload-driver", "aws-s3", "--offload-bucket", "bench",
                         "--offload-endpoint", endpoint], messages)
    finally:
        moto.stop()
    return results


def run_suite(base, seconds, backlog, topic_count):
    results = {}
    n = [0]

    def topic(name):
        n[0] += 1
        return f"persistent://public/default/bench-{name}-{n[0]}"

    with Fresh(base, "throughput") as server:
        log(f"throughput: one producer, 100 B, {seconds} s")
        results["produce_100b"] = summary(perf(server, "produce", "-r", "0", "-s", "100",
                                               "--time", str(seconds), topic("tput")))
        log(f"throughput: 16 producers on 16 topics, 100 B, {seconds} s")
        results["produce_100b_16_topics"] = summary(perf(
            server, "produce", "-r", "0", "-s", "100", "-t", "16", "--time", str(seconds),
            topic("tput16")))
        log(f"throughput: one producer, 1 KiB, {seconds} s")
        results["produce_1kib"] = summary(perf(server, "produce", "-r", "0", "-s", "1024",
                                               "--time", str(seconds), topic("tput1k")))

    with Fresh(base, "latency") as server:
        log(f"latency: unbatched at 10,000 msg/s, with a consumer, {seconds} s")
        t = topic("lat")
        consumer = perf(server, "consume", "--time", str(seconds + 10), "-m",
                        str(10_000 * seconds), t)
        time.sleep(2)  # the consumer subscribes before the first message is sent
        results["unbatched_10k"] = summary(perf(server, "produce", "-r", "10000", "-s", "100",
                                                "--disable-batching", "--time", str(seconds), t))
        results["unbatched_10k_end_to_end"] = summary(consumer)
        log(f"latency: batched (1 ms) at 10,000 msg/s, {seconds} s")
        results["batched_10k"] = summary(perf(server, "produce", "-r", "10000", "-s", "100",
                                              "--time", str(seconds), topic("batched")))

    with Fresh(base, "catch-up") as server:
        log(f"catch-up: a backlog of {backlog:,} messages, default receiver queue")
        t = topic("catchup")
        summary(perf(server, "consume", "--time", "2", t))  # the subscription, at the end
        results["backlog_publish"] = summary(perf(server, "produce", "-r", "0", "-s", "100",
                                                  "-m", str(backlog), t))
        results["catch_up"] = summary(perf(server, "consume", "-p", "earliest", "-m",
                                           str(backlog), t))

    with Fresh(base, "topics") as server:
        log(f"topic scale: {topic_count:,} topics with one producer each")
        before = rss_mb(server.proc.pid)
        proc = subprocess.Popen([BIN, "perf", "--service-url", server.url, "topics", "--count",
                                 str(topic_count), "--hold", "5"],
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        opened_s, after = None, None
        for line in proc.stdout:
            if "each with one producer, open in" in line:
                opened_s = float(line.split("open in ")[1].split("s")[0])
                after = rss_mb(server.proc.pid)
        proc.wait(timeout=600)
        if opened_s is None:
            raise RuntimeError("magnetar perf topics did not open its topics")
        results["topics"] = {
            "count": topic_count,
            "open_s": opened_s,
            "topics_per_s": round(topic_count / max(opened_s, 1e-3)),
            "rss_before_mb": round(before, 1),
            "rss_after_mb": round(after, 1),
            "kib_per_topic": round((after - before) * 1024 / topic_count, 1),
        }
        log(f"graceful shutdown with {topic_count:,} topics loaded")
        started = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        server.proc.wait(timeout=900)
        server.proc = None
        results["shutdown_s"] = round(time.monotonic() - started, 2)
    results["tiered"] = tiered(base, max(backlog // 15, 4_000))
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="short runs (5 s each, 300k backlog, 2,000 topics): the CI pass")
    parser.add_argument("--out", default="bench.json", help="where the JSON figures go")
    parser.add_argument("--data-dir", help="where the standalone writes (default: a temp dir)")
    parser.add_argument("--smoke", action="store_true",
                        help="the shortest pass (2 s runs, 20k backlog, 200 topics): checks "
                             "that the suite runs, its figures mean little")
    args = parser.parse_args()
    seconds, backlog, topic_count = (
        (2, 20_000, 200) if args.smoke
        else (5, 300_000, 2_000) if args.quick
        else (20, 3_000_000, 100_000))

    base = args.data_dir or tempfile.mkdtemp(prefix="magnetar-bench-")
    os.makedirs(base, exist_ok=True)
    figures = {"started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
               "quick": args.quick, "smoke": args.smoke,
               "machine": machine(base, args.quick or args.smoke)}
    figures["results"] = run_suite(base, seconds, backlog, topic_count)
    with open(args.out, "w") as f:
        json.dump(figures, f, indent=2)
    print_table(figures)
    print(f"\nFigures: {args.out}")


def print_table(figures):
    m, r = figures["machine"], figures["results"]
    fsync_p99 = m["fdatasync"]["p99_ms"]
    seq = m["sequential_write"]["mb_per_s"]
    rows = [
        ("machine", f"{m['cpus']} CPUs; fdatasync p50 {m['fdatasync']['p50_ms']} ms, "
                    f"p99 {fsync_p99} ms; sequential write {seq} MB/s", ""),
        ("produce 100 B, 1 producer", f"{r['produce_100b']['msg_per_s']:,.0f} msg/s "
                                      f"({r['produce_100b']['mb_per_s']} MB/s)", "≥ 1,000,000"),
        ("produce 100 B, 16 topics", f"{r['produce_100b_16_topics']['msg_per_s']:,.0f} msg/s",
         "≥ 2,500,000 (stretch)"),
        ("produce 1 KiB", f"{r['produce_1kib']['mb_per_s']} MB/s = "
                          f"{r['produce_1kib']['mb_per_s'] / max(seq, 0.1):.2f} × the disk's "
                          "sequential rate", ""),
        ("unbatched 10k msg/s publish", f"p50 {r['unbatched_10k']['p50_ms']} ms, "
                                        f"p99 {r['unbatched_10k']['p99_ms']} ms = "
                                        f"{r['unbatched_10k']['p99_ms'] / max(fsync_p99, 1e-3):.1f}"
                                        " × fdatasync p99", "≤ 2 ×"),
        ("end-to-end at 10k msg/s", f"p99 {r['unbatched_10k_end_to_end']['p99_ms']} ms "
                                    f"(publish p99 "
                                    f"{r['unbatched_10k_end_to_end']['p99_ms'] - r['unbatched_10k']['p99_ms']:+.2f} ms)",
         "within 1 ms of publish p99"),
        ("batched 10k msg/s publish", f"p99 {r['batched_10k']['p99_ms']} ms", "≤ 3 ms"),
        ("catch-up, receiver queue 1,000", f"{r['catch_up']['msg_per_s']:,.0f} msg/s",
         "≥ 2,000,000"),
        (f"{r['topics']['count']:,} topics", f"opened at {r['topics']['topics_per_s']:,} /s; "
                                            f"RSS {r['topics']['rss_before_mb']} → "
                                            f"{r['topics']['rss_after_mb']} MB "
                                            f"({r['topics']['kib_per_topic']} KiB per topic)",
         "100k in < 1 GiB, ≥ 5,000 /s"),
        ("graceful shutdown, topics loaded", f"{r['shutdown_s']} s", "< 10 s for 100k"),
    ]
    for store, t in r["tiered"].items():
        rows.append((f"tiered storage ({store})",
                     f"offload {t['offload_mb_per_s']} MB/s ({t['bytes'] / 1e6:.0f} MB); "
                     f"read-back {t['read_back_mb_per_s']} MB/s "
                     f"({t['read_back_msg_per_s']:,.0f} msg/s)", ""))
    width = max(len(a) for a, _, _ in rows)
    print(f"\n{'what':<{width}}  figure  [target]")
    for what, figure, target in rows:
        print(f"{what:<{width}}  {figure}" + (f"  [{target}]" if target else ""))


if __name__ == "__main__":
    main()
