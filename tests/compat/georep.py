"""Helpers for geo-replication tests: standalones linked as clusters, and a UDP proxy that can
cut or impair the link between them."""

import json
import os
import random
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request

from conftest import Standalone


def rest(server, method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    if getattr(server, "admin_token", None):
        headers["Authorization"] = f"Bearer {server.admin_token}"
    req = urllib.request.Request(server.admin_url + path, data=data, method=method,
                                 headers=headers)
    with urllib.request.urlopen(req, timeout=15) as resp:
        raw = resp.read()
        return resp.status, (json.loads(raw) if raw else None)


def register(server, other, url=None, token=None):
    """Registers `other` as a cluster on `server`: its replication endpoint (or `url`, e.g. a
    proxy in front of it), the certificate that endpoint presents, and the token to show it."""
    body = {
        "serviceUrl": other.admin_url,
        "brokerServiceUrl": other.url,
        "replicationUrl": url or other.replication_url,
        "brokerClientTrustCertsFilePath": other.replication_cert,
    }
    if token:
        body["authenticationPlugin"] = "token"
        body["authenticationParameters"] = f"token:{token}"
    try:
        rest(server, "PUT", f"/admin/v2/clusters/{other.cluster}", body)
    except urllib.error.HTTPError as e:
        if e.code != 409:
            raise
        rest(server, "POST", f"/admin/v2/clusters/{other.cluster}", body)


def link(servers, namespace, urls=None):
    """Makes `namespace` (under tenant `public`) replicate between all `servers`."""
    names = [s.cluster for s in servers]
    for s in servers:
        for other in servers:
            if other is not s:
                register(s, other, (urls or {}).get((s.cluster, other.cluster)))
        rest(s, "POST", "/admin/v2/tenants/public", {"adminRoles": [], "allowedClusters": names})
        try:
            rest(s, "PUT", f"/admin/v2/namespaces/public/{namespace}")
        except urllib.error.HTTPError as e:
            if e.code != 409:
                raise
        rest(s, "POST", f"/admin/v2/namespaces/public/{namespace}/replication", names)


def start(tmp_path, *clusters):
    servers = []
    for name in clusters:
        d = tmp_path / name
        d.mkdir()
        servers.append(Standalone(d, cluster=name).start())
    return servers


def stats(server, topic):
    path = topic.replace("persistent://", "/admin/v2/persistent/") + "/stats"
    return rest(server, "GET", path)[1]


class SteadyProducer:
    """Publishes `prefix{i}` for i in `ids` at ~5,000 msg/s (unbatched, never timing out) on a
    thread, recording which ones the broker acknowledged."""

    def __init__(self, server, topic, prefix, ids, sequence_ids=False):
        import pulsar
        self.client = pulsar.Client(server.url, operation_timeout_seconds=60)
        self.producer = self.client.create_producer(topic, batching_enabled=False,
                                                    block_if_queue_full=True,
                                                    send_timeout_millis=0)
        self.acked = set()
        self.thread = threading.Thread(target=self._run, args=(prefix, list(ids), sequence_ids))

    def _sent(self, i):
        import pulsar

        def callback(res, _):
            if res == pulsar.Result.Ok:
                self.acked.add(i)
        return callback

    def _run(self, prefix, ids, sequence_ids):
        for n, i in enumerate(ids):
            extra = {"sequence_id": i} if sequence_ids else {}
            self.producer.send_async(f"{prefix}{i}".encode(), self._sent(i), **extra)
            if n % 100 == 99:
                time.sleep(0.02)
        self.producer.flush()

    def start(self):
        self.thread.start()
        return self

    def join(self, timeout=300):
        self.thread.join(timeout=timeout)
        assert not self.thread.is_alive()

    def close(self):
        self.client.close()


class Tokens:
    """A secret key in `directory` and tokens signed with it (`magnetar tokens`)."""

    def __init__(self, directory):
        self.bin = os.environ.get("MAGNETAR_BIN", "magnetar")
        self.key = os.path.join(str(directory), "secret.key")
        subprocess.run([self.bin, "tokens", "create-secret-key", "--output", self.key],
                       check=True)

    @property
    def key_url(self):
        return f"file://{self.key}"

    def __call__(self, role):
        return subprocess.run([self.bin, "tokens", "create", "--subject", role,
                               "--secret-key", self.key_url],
                              check=True, capture_output=True, text=True).stdout.strip()


def wait_until(what, condition, timeout=120.0):
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = condition()
        except urllib.error.HTTPError as e:
            if e.code != 404:  # not there yet
                raise
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what}")
        time.sleep(0.1)


class UdpProxy:
    """Relays datagrams between clients and `target` (a QUIC endpoint). `cut()` drops
    everything until `heal()`; `impair(loss, delay)` drops a fraction and delays the rest."""

    def __init__(self, target_port):
        self.target = ("127.0.0.1", target_port)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.upstreams = {}  # client addr -> socket towards the target
        self.dropping = False
        self.loss = 0.0
        self.delay = 0.0
        self.lock = threading.Lock()
        self.closed = False
        threading.Thread(target=self._from_clients, daemon=True).start()

    @property
    def url(self):
        return f"quic://127.0.0.1:{self.port}"

    def cut(self):
        self.dropping = True

    def heal(self):
        self.dropping = False

    def impair(self, loss, delay):
        self.loss, self.delay = loss, delay

    def _forward(self, sock, data, addr):
        if self.dropping or (self.loss and random.random() < self.loss):
            return
        if self.delay:
            threading.Timer(self.delay, self._send, (sock, data, addr)).start()
        else:
            self._send(sock, data, addr)

    @staticmethod
    def _send(sock, data, addr):
        try:
            sock.sendto(data, addr)
        except OSError:
            pass

    def _from_clients(self):
        while not self.closed:
            try:
                data, client = self.sock.recvfrom(65535)
            except OSError:
                return
            with self.lock:
                up = self.upstreams.get(client)
                if up is None:
                    up = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                    up.bind(("127.0.0.1", 0))
                    self.upstreams[client] = up
                    threading.Thread(target=self._from_target, args=(up, client),
                                     daemon=True).start()
            self._forward(up, data, self.target)

    def _from_target(self, up, client):
        while not self.closed:
            try:
                data, _ = up.recvfrom(65535)
            except OSError:
                return
            self._forward(self.sock, data, client)

    def close(self):
        self.closed = True
        self.sock.close()
        for up in self.upstreams.values():
            up.close()
