"""A bookie whose disk fills up: publishes fail cleanly with Pulsar's error instead of hanging or
crashing, nothing acknowledged is lost, and once space returns publishing resumes.

The standalone's data lives on a small tmpfs of its own (mounted for the test; it needs the
privilege to mount, which the test machines have). A filler file takes the disk past the bookie's
read-only threshold; removing it brings the bookie back.
"""

import os
import subprocess
import time
import uuid

import pulsar
import pytest

from conftest import Standalone

SIZE_MB = 256


@pytest.fixture
def small_disk(tmp_path):
    mount = tmp_path / "disk"
    mount.mkdir()
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={SIZE_MB}m", "tmpfs", str(mount)],
        capture_output=True, text=True,
    )
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def usage(path):
    st = os.statvfs(path)
    return 1.0 - st.f_bavail / st.f_blocks


def fill_to(path, fraction):
    """Writes a filler file until the disk is `fraction` full."""
    filler = path / "filler"
    with open(filler, "ab") as f:
        chunk = b"\0" * (1024 * 1024)
        while usage(path) < fraction:
            f.write(chunk)
            f.flush()
            os.fsync(f.fileno())
    return filler


def test_a_full_bookie_disk_fails_publishes_cleanly_and_recovers(small_disk):
    server = Standalone(small_disk, extra_args=["--disk-usage-threshold", "0.85"])
    server.start()
    try:
        t = f"persistent://public/default/disk-full-{uuid.uuid4().hex[:8]}"
        client = pulsar.Client(server.url, operation_timeout_seconds=15)
        # A durable subscription keeps what is published: without one (and without retention)
        # the ledger the write failure closed may be trimmed once a new one opens, as in Pulsar.
        client.subscribe(t, "keep", initial_position=pulsar.InitialPosition.Earliest).close()
        producer = client.create_producer(t, batching_enabled=False, send_timeout_millis=15000)
        acknowledged = []
        for i in range(50):
            producer.send(f"before-{i}".encode())
            acknowledged.append(f"before-{i}")

        filler = fill_to(small_disk, 0.90)
        # Within the bookie's disk check it turns read-only; a publish then gets Pulsar's
        # PersistenceError on the wire (SEND_ERROR). The C++ client behind `pulsar-client`
        # answers a SEND_ERROR by reconnecting and resending for as long as it lasts, so the error
        # is read with magnetar's own client, which reports it and exits non-zero.
        failed = None
        deadline = time.monotonic() + 120
        while failed is None and time.monotonic() < deadline:
            result = subprocess.run(
                [server.bin, "client", "produce", "--service-url", server.url, t, "-m", "while-full"],
                capture_output=True, text=True, timeout=60,
            )
            if result.returncode == 0:
                acknowledged.append("while-full")
            else:
                failed = result.stdout + result.stderr
        assert failed is not None, "publishing never failed on a full disk"
        assert "PersistenceError" in failed, failed
        assert server.proc.poll() is None, "the standalone died on a full disk"

        os.remove(filler)
        deadline = time.monotonic() + 120
        resumed = False
        while not resumed and time.monotonic() < deadline:
            try:
                producer.send(b"after")
                acknowledged.append("after")
                resumed = True
            except Exception:  # noqa: BLE001 - still read-only: try again
                pass
        assert resumed, "publishing did not resume once space returned"
        client.close()

        client = pulsar.Client(server.url, operation_timeout_seconds=30)
        reader = client.create_reader(t, pulsar.MessageId.earliest)
        stored = []
        while reader.has_message_available():
            stored.append(reader.read_next(timeout_millis=30000).data().decode())
        client.close()
        missing = [m for m in acknowledged if m not in stored]
        assert not missing, f"acknowledged messages lost: {missing[:10]}"
    finally:
        server.kill()
