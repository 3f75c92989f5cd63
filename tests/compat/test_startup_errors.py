"""Startup errors a person can act on: a role that cannot start names what failed (the address
and what it was for, the directory), the usual cause, and the flag that changes it — and exits
non-zero instead of printing a bare `Address already in use`."""

import os
import socket
import subprocess

import pytest

from conftest import free_port

BIN = os.environ["MAGNETAR_BIN"]


@pytest.fixture
def taken():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    yield f"127.0.0.1:{s.getsockname()[1]}"
    s.close()


def run(*args, timeout=60):
    return subprocess.run([BIN, *args], capture_output=True, text=True, timeout=timeout)


def standalone(data_dir, **overrides):
    ports = {flag: f"127.0.0.1:{free_port()}" for flag in
             ("--broker-addr", "--metadata-addr", "--bookie-addr", "--http-addr")}
    ports.update(overrides)
    args = ["standalone", "--data-dir", str(data_dir), "--replication-addr", "off"]
    for flag, addr in ports.items():
        args += [flag, addr]
    return run(*args)


def assert_says(result, *parts):
    assert result.returncode != 0, result
    for part in parts:
        assert part in result.stderr, f"{part!r} not in {result.stderr!r}"


@pytest.mark.parametrize("flag,what", [
    ("--http-addr", "the admin API and metrics (HTTP)"),
    ("--broker-addr", "the Pulsar protocol"),
    ("--metadata-addr", "the metadata service"),
    ("--bookie-addr", "the bookie"),
])
def test_a_standalone_on_a_taken_port_names_the_port_and_its_flag(tmp_path, taken, flag, what):
    assert_says(standalone(tmp_path / "data", **{flag: taken}),
                f"cannot listen on {taken} for {what}", flag, "ss -ltnp")


def test_a_standalone_with_an_unusable_data_directory_names_it(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    assert_says(standalone(blocker / "data"), str(blocker / "data"), "--data-dir")


def test_a_metadata_node_on_a_taken_port_names_it(tmp_path, taken):
    result = run("metadata", "serve", "--node-id", "1", "--listen", taken,
                 "--data-dir", str(tmp_path / "meta"), "--cluster-token", "t" * 32)
    assert_says(result, f"cannot listen on {taken} for the metadata service", "--listen")


def test_a_bookie_on_a_taken_port_names_it(tmp_path, taken):
    result = run("bookie", "serve", "--listen", taken,
                 "--journal-dir", str(tmp_path / "journal"),
                 "--ledger-dir", str(tmp_path / "ledgers"),
                 "--metadata", f"127.0.0.1:{free_port()}", "--cluster-token", "t" * 32)
    assert_says(result, f"cannot listen on {taken} for the bookie", "--listen")


def test_a_broker_that_cannot_reach_the_metadata_service_names_it_and_the_setting():
    servers = f"127.0.0.1:{free_port()}"
    result = run("broker", "--metadata", servers, "--cluster", "prod", timeout=90)
    assert_says(result, f"cannot reach the metadata service at {servers}", "--metadata",
                "metadata_servers")


@pytest.mark.parametrize("role", [["broker"], ["bookie", "serve"]])
def test_a_bad_config_file_names_the_file_the_line_and_the_key(tmp_path, role):
    config = tmp_path / "bad.toml"
    config.write_text("# a typo on line 2\ncluster_tokn = \"x\"\n")
    result = run(*role, "--config", str(config))
    assert_says(result, str(config), "line 2", "cluster_tokn", "expected one of")


def test_a_data_directory_without_write_permission_names_it(tmp_path):
    """Run as an unprivileged user (root may write anywhere): `nobody` through setpriv."""
    import shutil
    import tempfile
    prefix = []
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            pytest.skip("running as root without setpriv to drop privileges")
        prefix = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    # A directory everyone may enter, holding a link to the binary nobody may run.
    base = tempfile.mkdtemp(prefix="magnetar-perm-")
    try:
        os.chmod(base, 0o755)
        binary = os.path.join(base, "magnetar")
        try:
            os.link(BIN, binary)
        except OSError:
            pytest.skip("cannot link the binary where an unprivileged user can run it")
        locked = os.path.join(base, "locked")
        os.mkdir(locked, 0o555)
        data = os.path.join(locked, "data")
        ports = [f"127.0.0.1:{free_port()}" for _ in range(4)]
        result = subprocess.run(
            prefix + [binary, "standalone", "--data-dir", data, "--replication-addr", "off",
                      "--broker-addr", ports[0], "--metadata-addr", ports[1],
                      "--bookie-addr", ports[2], "--http-addr", ports[3]],
            capture_output=True, text=True, timeout=60)
        assert_says(result, data, "--data-dir", "ermission denied")
    finally:
        shutil.rmtree(base, ignore_errors=True)
