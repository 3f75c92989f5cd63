"""A property-based run of schemathesis over the served OpenAPI document: no request the
document describes may get a 5xx. The standalone runs with auth on and the run calls as the
superuser, so every route is reachable (with authorization off, permission grants answer 501 as
in Pulsar). Skipped when schemathesis is not installed (scripts/test installs it).
"""

import os
import shutil
import subprocess
import sys

import pytest

from conftest import Standalone


def schemathesis_cli():
    beside = os.path.join(os.path.dirname(sys.executable), "schemathesis")
    return beside if os.path.exists(beside) else shutil.which("schemathesis")


def test_no_server_errors(tmp_path):
    cli = schemathesis_cli()
    if cli is None:
        pytest.skip("schemathesis is not installed")
    bin = os.environ.get("MAGNETAR_BIN", "magnetar")
    key = tmp_path / "secret.key"
    subprocess.run([bin, "tokens", "create-secret-key", "--output", str(key)], check=True)
    admin = subprocess.run(
        [bin, "tokens", "create", "--subject", "admin", "--secret-key", f"file://{key}"],
        check=True, capture_output=True, text=True).stdout.strip()
    server = Standalone(tmp_path, ["--token-secret-key", f"file://{key}",
                                   "--superuser-roles", "admin"]).start()
    try:
        run = subprocess.run(
            [cli, "run", f"{server.admin_url}/admin/v2/openapi.json",
             "--checks", "not_a_server_error",
             "--max-examples", "30", "--seed", "1", "--no-color",
             "-H", f"Authorization: Bearer {admin}"],
            capture_output=True, text=True, timeout=600)
        assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    finally:
        server.stop()
