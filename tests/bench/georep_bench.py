"""Geo-replication figures between two standalones on this machine (see scripts/bench-georep):
replication throughput for 100-byte and 1-KiB messages, and end-to-end lag (publish in eu to
receive in us) at a steady rate on a clean link and through a UDP proxy with loss and delay."""

import argparse
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "compat"))
import georep  # noqa: E402
from georep import UdpProxy, link, stats, wait_until  # noqa: E402

BIN = os.environ.get("MAGNETAR_BIN", "magnetar")


def perf(*args):
    return subprocess.Popen([BIN, "perf", "--json", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)


def summary(proc):
    out, _ = proc.communicate(timeout=600)
    lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    return next((x for x in lines if x.get("summary")), lines[-1] if lines else {})


def throughput(eu, us, size, count):
    topic = f"persistent://public/bench/tput-{size}-{int(time.time())}"
    started = time.monotonic()
    produced = summary(perf("produce", "--service-url", eu.url, "-r", "0", "-s", str(size),
                            "-m", str(count), topic))
    wait_until("everything replicated",
               lambda: (stats(us, topic).get("replication", {}).get("eu", {})
                        .get("msgInCounter", 0)) >= count, timeout=600)
    elapsed = time.monotonic() - started
    rate = count / elapsed
    print(f"throughput {size:>5} B: {count} messages replicated in {elapsed:.1f} s = "
          f"{rate:,.0f} msg/s, {rate * size / 1e6:.1f} MB/s "
          f"(publishing alone: {produced.get('msg_per_s', 0):,.0f} msg/s)", flush=True)
    return {"size": size, "messages": count, "seconds": round(elapsed, 2),
            "msg_per_s": round(rate), "publish_msg_per_s": produced.get("msg_per_s")}


def lag(eu, us, rate, seconds, label):
    topic = f"persistent://public/bench/lag-{label}-{int(time.time())}"
    consumer = perf("consume", "--service-url", us.url, "--time", str(seconds + 15),
                    "-m", str(rate * seconds), topic)
    time.sleep(2)  # the consumer subscribes (at the latest position) before anything is sent
    produced = summary(perf("produce", "--service-url", eu.url, "-r", str(rate), "-s", "100",
                            "--time", str(seconds), topic))
    received = summary(consumer)
    print(f"lag {label:>8} at {rate} msg/s: received {received.get('messages', 0)} of "
          f"{produced.get('messages', 0)}, end-to-end ms p50 {received.get('p50_ms')} "
          f"p99 {received.get('p99_ms')} max {received.get('max_ms')} "
          f"(publish p99 {produced.get('p99_ms')} ms)", flush=True)
    return {"link": label, "rate": rate, "sent": produced.get("messages"),
            "received": received.get("messages"), "p50_ms": received.get("p50_ms"),
            "p99_ms": received.get("p99_ms"), "max_ms": received.get("max_ms")}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=1_000_000,
                        help="messages per throughput run (1-KiB runs use a quarter)")
    parser.add_argument("--rate", type=int, default=10_000)
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("--loss", type=float, default=0.02)
    parser.add_argument("--delay-ms", type=float, default=50)
    args = parser.parse_args()
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="georep-bench-"))
    eu, us = georep.start(tmp, "eu", "us")
    proxy = UdpProxy(us.replication_port)
    results = {}
    try:
        link([eu, us], "bench")
        results["throughput"] = [throughput(eu, us, 100, args.messages),
                                 throughput(eu, us, 1024, args.messages // 4)]
        results["lag"] = [lag(eu, us, args.rate, args.seconds, "clean")]
        georep.register(eu, us, url=proxy.url)
        proxy.impair(args.loss, args.delay_ms / 1000)
        results["lag"].append(lag(eu, us, args.rate, args.seconds,
                                  f"{args.loss:.0%}-loss-{args.delay_ms:.0f}ms"))
    finally:
        proxy.close()
        eu.kill()
        us.kill()
    print(json.dumps(results))


if __name__ == "__main__":
    main()
