"""QUIC against the Pulsar-protocol (TCP) replication transport on the same impaired link (see
scripts/bench-georep-transports). Needs root: it builds a real network path that both
transports share.

Cluster `us` runs in its own network namespace. The only way there is a pair of TUN devices
(`mgA` here, `mgB` in the namespace) joined by this process, which forwards every IP packet
between them and drops a fraction of them and delays the rest — loss and delay for TCP's
segments exactly as for QUIC's datagrams (the kernel's netem is not available on these
machines, and a user-space proxy cannot lose a TCP segment). Cluster `eu` runs here and
replicates namespace `bench` to `us`, once over QUIC (`replicationUrl`) and once over the
Pulsar protocol (`brokerServiceUrl` only). For each: the end-to-end lag (publish in eu, receive
in us by a consumer inside the namespace) at a steady rate, and how fast a backlog drains."""

import argparse
import collections
import fcntl
import json
import os
import pathlib
import random
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "compat"))
from conftest import Standalone  # noqa: E402
from georep import rest, stats, wait_until  # noqa: E402

BIN = os.environ.get("MAGNETAR_BIN", "magnetar")
TUNSETIFF = 0x400454CA
IFF_TUN, IFF_NO_PI = 0x0001, 0x1000
HERE, THERE = "10.77.0.1", "10.77.0.2"


def sh(*args):
    subprocess.run(args, check=True)


def tun(name):
    fd = os.open("/dev/net/tun", os.O_RDWR)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI))
    return fd


class Wan:
    """The impaired path between this namespace and `ns`."""

    def __init__(self, ns):
        self.ns = ns
        self.loss = 0.0
        self.delay = 0.0
        self.forwarded = 0
        self.dropped = 0
        sh("ip", "netns", "add", ns)
        self.a = tun("mgA")
        self.b = tun("mgB")
        sh("ip", "link", "set", "mgB", "netns", ns)
        sh("ip", "addr", "add", HERE, "peer", THERE, "dev", "mgA")
        sh("ip", "link", "set", "mgA", "up")
        for cmd in (["ip", "link", "set", "lo", "up"],
                    ["ip", "addr", "add", THERE, "peer", HERE, "dev", "mgB"],
                    ["ip", "link", "set", "mgB", "up"]):
            sh("ip", "netns", "exec", ns, *cmd)
        for src, dst in ((self.a, self.b), (self.b, self.a)):
            queue = collections.deque()
            ready = threading.Condition()
            threading.Thread(target=self._read, args=(src, queue, ready), daemon=True).start()
            threading.Thread(target=self._write, args=(dst, queue, ready), daemon=True).start()

    def impair(self, loss, delay):
        self.loss, self.delay = loss, delay

    def _read(self, fd, queue, ready):
        while True:
            try:
                packet = os.read(fd, 65536)
            except OSError:
                return
            if self.loss and random.random() < self.loss:
                self.dropped += 1
                continue
            with ready:
                queue.append((time.monotonic() + self.delay, packet))
                ready.notify()

    def _write(self, fd, queue, ready):
        while True:
            with ready:
                while not queue:
                    ready.wait()
                due, packet = queue.popleft()
            wait = due - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            try:
                os.write(fd, packet)
                self.forwarded += 1
            except OSError:
                pass

    def close(self):
        for fd in (self.a, self.b):
            os.close(fd)
        subprocess.run(["ip", "netns", "del", self.ns], check=False)


def perf(*args, prefix=()):
    return subprocess.Popen([*prefix, BIN, "perf", "--json", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)


def summary(proc):
    out, _ = proc.communicate(timeout=900)
    lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    return next((x for x in lines if x.get("summary")), lines[-1] if lines else {})


def use(eu, us, transport):
    """Points eu's record of cluster us at its QUIC endpoint or at its broker only."""
    body = {"serviceUrl": us.admin_url, "brokerServiceUrl": us.url}
    if transport == "quic":
        body["replicationUrl"] = us.replication_url
        body["tlsAllowInsecureConnection"] = True
    rest(eu, "POST", "/admin/v2/clusters/us", body)


def lag(eu, us, ns_prefix, transport, link, rate, seconds, topics):
    """End-to-end lag at `rate` msg/s over `topics` topics (one stream each on QUIC; all on
    one TCP connection on the Pulsar protocol)."""
    topic = f"persistent://public/bench/lag-{transport}-{link}-{topics}-{int(time.time())}"
    consumer = perf("consume", "--service-url", us.url, "--time", str(seconds + 20),
                    "-t", str(topics), "-m", str(rate * seconds), topic, prefix=ns_prefix)
    time.sleep(3)  # the consumer subscribes (at the latest position) before anything is sent
    produced = summary(perf("produce", "--service-url", eu.url, "-r", str(rate), "-s", "100",
                            "-t", str(topics), "--time", str(seconds), topic))
    received = summary(consumer)
    row = {"transport": transport, "link": link, "rate": rate, "topics": topics,
           "sent": produced.get("messages"), "received": received.get("messages"),
           "p50_ms": received.get("p50_ms"), "p99_ms": received.get("p99_ms"),
           "max_ms": received.get("max_ms")}
    print(f"lag   {transport:>6} {link:>14} at {rate} msg/s on {topics:>2} topics: "
          f"received {row['received']} of "
          f"{row['sent']}, end-to-end ms p50 {row['p50_ms']} p99 {row['p99_ms']} "
          f"max {row['max_ms']}", flush=True)
    return row


def drain(eu, us, transport, link, count, size, limit):
    """Publishes `count` messages in eu as fast as it can, then times until us has them."""
    topic = f"persistent://public/bench/drain-{transport}-{link}-{size}-{int(time.time())}"
    started = time.monotonic()
    summary(perf("produce", "--service-url", eu.url, "-r", "0", "-s", str(size),
                 "-m", str(count), topic))

    def replicated():
        return (stats(us, topic).get("replication", {}).get("eu", {})
                .get("msgInCounter", 0))
    try:
        wait_until("everything replicated", lambda: replicated() >= count, timeout=limit)
    except AssertionError:
        pass
    got = replicated()
    elapsed = time.monotonic() - started
    row = {"transport": transport, "link": link, "size": size, "messages": got,
           "of": count, "seconds": round(elapsed, 1),
           "msg_per_s": round(got / elapsed), "mb_per_s": round(got * size / elapsed / 1e6, 2)}
    print(f"drain {transport:>6} {link:>14} {size:>5} B: {got} of {count} in {elapsed:.1f} s = "
          f"{row['msg_per_s']:,} msg/s, {row['mb_per_s']} MB/s", flush=True)
    return row


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=int, default=10_000)
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("--messages", type=int, default=200_000,
                        help="messages per drain run (1-KiB runs use a quarter)")
    parser.add_argument("--loss", type=float, default=0.02)
    parser.add_argument("--delay-ms", type=float, default=50, help="each way")
    parser.add_argument("--drain-limit", type=float, default=180,
                        help="seconds a drain run may take before it is cut off")
    parser.add_argument("--transports", default="quic,pulsar")
    parser.add_argument("--links", default="clean,impaired")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("needs root (a network namespace and TUN devices)")
    # A SIGTERM still removes the namespace and stops the standalones.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    ns = f"mgwan{os.getpid()}"
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="georep-transports-"))
    wan = Wan(ns)
    prefix = ["ip", "netns", "exec", ns]
    servers = []
    rows = []

    def clusters(phase):
        """Fresh clusters for each link state: a connection made on a clean path is not what a
        WAN link starts with (its round-trip estimates would be 300 times too short)."""
        for s in servers:
            s.kill()
        servers.clear()
        for name in ("eu", "us"):
            (tmp / phase / name).mkdir(parents=True)
        # eu on the address of this end of the link (a QUIC endpoint bound to 127.0.0.1 could
        # not send to us).
        eu = Standalone(tmp / phase / "eu", cluster="eu", host=HERE).start()
        servers.append(eu)
        us = Standalone(tmp / phase / "us", cluster="us", host=THERE, prefix=prefix).start()
        servers.append(us)
        for server, other in ((eu, us), (us, eu)):
            try:
                rest(server, "PUT", f"/admin/v2/clusters/{other.cluster}",
                     {"brokerServiceUrl": other.url})
            except urllib.error.HTTPError as e:
                if e.code != 409:
                    raise
            rest(server, "POST", "/admin/v2/tenants/public",
                 {"adminRoles": [], "allowedClusters": ["eu", "us"]})
            rest(server, "PUT", "/admin/v2/namespaces/public/bench")
        rest(eu, "POST", "/admin/v2/namespaces/public/bench/replication", ["eu", "us"])
        return eu, us

    try:
        impaired = f"{args.loss:.0%}-loss-{args.delay_ms:.0f}ms"
        links = [(name, loss, delay) for name, loss, delay in
                 (("clean", 0.0, 0.0), ("impaired", args.loss, args.delay_ms))
                 if name in args.links.split(",")]
        for name, loss, delay in links:
            link = impaired if name == "impaired" else name
            wan.impair(0.0, 0.0)  # set-up calls cross the same link
            eu, us = clusters(name)
            for transport in args.transports.split(","):
                wan.impair(0.0, 0.0)
                use(eu, us, transport)
                wan.impair(loss, delay / 1000)
                for topics in (1, 16):
                    rows.append(lag(eu, us, prefix, transport, link, args.rate, args.seconds,
                                    topics))
                rows.append(drain(eu, us, transport, link, args.messages, 100,
                                  args.drain_limit))
                rows.append(drain(eu, us, transport, link, args.messages // 4, 1024,
                                  args.drain_limit))
    finally:
        for s in servers:
            s.kill()
        wan.close()
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"link: {wan.forwarded} packets forwarded, {wan.dropped} dropped")
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
