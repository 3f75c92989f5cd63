"""Starts a real `magnetar standalone` process for the compatibility tests.

The binary comes from $MAGNETAR_BIN (scripts/test sets it). Each test module gets its own data
directory and free ports; `Standalone.kill()` sends SIGKILL, `restart()` starts it again on the
same data, so tests can prove what survives a crash.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import time

import pulsar
import pytest


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_udp_port():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ExitedEarly(Exception):
    """The process waited on exited before its port opened."""


def wait_for_port(port, timeout=60.0, host="127.0.0.1", proc=None):
    """Waits until `port` accepts connections; with `proc`, fails at once if it exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise ExitedEarly(f"exited with {proc.returncode} before port {port} opened")
        with socket.socket() as s:
            s.settimeout(0.5)
            if s.connect_ex((host, port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"port {port} did not open within {timeout}s")


class Standalone:
    def __init__(self, data_dir, extra_args=(), cluster="standalone", quic=True,
                 host="127.0.0.1", prefix=()):
        self.bin = os.environ.get("MAGNETAR_BIN", "magnetar")
        self.data_dir = str(data_dir)
        self.cluster = cluster
        # quic=False: no replication endpoint (a cluster reached over the Pulsar protocol only).
        self.quic = quic
        self.pick_ports()
        # More `magnetar standalone` flags (auth, TLS, ...); may name more ports.
        self.extra_args = list(extra_args)
        # Listens on (and advertises) `host`; `prefix` runs it, e.g. `ip netns exec NS`.
        self.host = host
        self.prefix = list(prefix)
        self.proc = None
        self.log = open(os.path.join(self.data_dir, "standalone.log"), "ab")

    @property
    def url(self):
        return f"pulsar://{self.host}:{self.port}"

    @property
    def admin_url(self):
        return f"http://{self.host}:{self.http_port}"

    @property
    def replication_url(self):
        return f"quic://{self.host}:{self.replication_port}"

    @property
    def replication_cert(self):
        """The self-signed certificate of its replication endpoint."""
        return os.path.join(self.data_dir, "replication", "cert.pem")

    @property
    def metadata_servers(self):
        return f"{self.host}:{self.metadata_port}"

    def pick_ports(self):
        """Free ports now; another process may take one before the standalone binds it."""
        self.port = free_port()
        self.metadata_port = free_port()
        self.bookie_port = free_port()
        self.http_port = free_port()
        self.replication_port = free_udp_port() if self.quic else None

    def log_since(self, offset):
        """What the standalone logged from `offset` on."""
        with open(os.path.join(self.data_dir, "standalone.log"), "rb") as f:
            f.seek(offset)
            return f.read().decode(errors="replace")

    def own_port_taken(self, said):
        """Whether the standalone says one of the ports picked here was taken (not a port of
        `extra_args`, which a new pick would not change)."""
        own = [self.port, self.metadata_port, self.bookie_port, self.http_port,
               self.replication_port]
        for line in said.splitlines():
            if "cannot listen" in line or "Address already in use" in line:
                if any(p and f"{self.host}:{p}" in line for p in own):
                    return True
        return False

    def start(self):
        # A port picked free may be taken (by any process's outgoing connection) before the
        # standalone listens on it; then it exits saying so. A first start picks fresh ports and
        # tries again, on a data directory cleared of what the failed attempt made (its metadata
        # node and bookie, registered at the old addresses); a restart keeps its ports, which
        # clients already use.
        first = not hasattr(self, "started")
        existing = set(os.listdir(self.data_dir))
        for attempt in range(5):
            self.log.flush()
            offset = self.log.tell()
            try:
                self.launch()
                self.started = True
                return self
            except ExitedEarly as e:
                said = self.log_since(offset)
                self.proc = None
                if first and attempt < 4 and self.own_port_taken(said):
                    for name in set(os.listdir(self.data_dir)) - existing - {"standalone.log"}:
                        path = os.path.join(self.data_dir, name)
                        if os.path.isdir(path):
                            shutil.rmtree(path)
                        else:
                            os.remove(path)
                    self.pick_ports()
                    continue
                if len(said) > 6144:  # a backtrace follows the error: keep both ends
                    said = f"{said[:4096]}\n[...]\n{said[-2048:]}"
                raise RuntimeError(f"magnetar standalone {e}; it said:\n{said}") from None

    def launch(self):
        h = self.host
        self.proc = subprocess.Popen(
            [
                *self.prefix,
                self.bin, "standalone",
                "--data-dir", self.data_dir,
                "--broker-addr", f"{h}:{self.port}",
                "--metadata-addr", f"{h}:{self.metadata_port}",
                "--bookie-addr", f"{h}:{self.bookie_port}",
                "--http-addr", f"{h}:{self.http_port}",
                "--advertised-address", h,
                "--cluster", self.cluster,
                "--replication-addr",
                f"{h}:{self.replication_port}" if self.replication_port else "off",
                *self.extra_args,
            ],
            stdout=self.log,
            stderr=self.log,
        )
        wait_for_port(self.port, host=h, proc=self.proc)
        # The admin API and metrics listen a moment after the broker port on some starts.
        wait_for_port(self.http_port, host=h, proc=self.proc)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=60)
        self.proc = None

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)
        self.proc = None

    def restart(self):
        self.stop()
        return self.start()

    def metadata(self, *args):
        """Runs `magnetar metadata …` against this standalone's metadata node."""
        token = os.path.join(self.data_dir, "cluster.token")
        return subprocess.run(
            [self.bin, "metadata", "--servers", self.metadata_servers,
             "--cluster-token", f"file://{token}", *args],
            check=True, capture_output=True, text=True,
        ).stdout


@pytest.fixture(scope="module")
def standalone(tmp_path_factory):
    server = Standalone(tmp_path_factory.mktemp("standalone")).start()
    yield server
    server.stop()


@pytest.fixture
def client(standalone):
    c = pulsar.Client(standalone.url, operation_timeout_seconds=15, connection_timeout_ms=10000)
    yield c
    c.close()


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Keeps each phase's report on the test item (`item.rep_call`), so that fixtures can save
    what a failed test left behind (the console test's screenshots)."""
    outcome = yield
    report = outcome.get_result()
    setattr(item, "rep_" + report.when, report)


def magnetar_admin(server, *args, json_out=False, ok=True):
    """Runs `magnetar admin …` against `server`: its parsed `--json` output, or its text.
    `ok=False` expects it to fail (and gives stdout and stderr)."""
    argv = [os.environ.get("MAGNETAR_BIN", "magnetar"), "admin", "--admin-url", server.admin_url]
    if json_out:
        argv.append("--json")
    out = subprocess.run(argv + list(args), capture_output=True, text=True, timeout=60)
    if ok:
        assert out.returncode == 0, f"{args}: {out.stdout}{out.stderr}"
    else:
        assert out.returncode != 0, f"{args} should fail: {out.stdout}"
    return json.loads(out.stdout) if json_out and ok else out.stdout + out.stderr
