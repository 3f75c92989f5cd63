"""deploy/ is checked with the tools that consume it: the systemd units pass
`systemd-analyze verify`, the Kubernetes manifests validate against the Kubernetes schemas
offline (`kubernetes-validate --strict`), and every flag and environment variable they pass
exists in the binary they run."""

import glob
import os
import re
import shutil
import subprocess
import sys

import pytest
import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.environ.get("MAGNETAR_BIN", "magnetar")
UNITS = sorted(glob.glob(os.path.join(ROOT, "deploy", "systemd", "*.service")))
MANIFESTS = [os.path.join(ROOT, "deploy", "kubernetes", f)
             for f in ("metadata.yaml", "bookies.yaml", "brokers.yaml")]


def help_of(subcommand):
    out = subprocess.run([BIN, *subcommand, "--help"], capture_output=True, text=True)
    assert out.returncode == 0, f"magnetar {' '.join(subcommand)} --help: {out.stderr}"
    return out.stdout


def invocations(text):
    """(subcommand words, flags) of every `magnetar …` command line in `text`."""
    found = []
    for match in re.finditer(r"(?:^|[\s/])magnetar((?:\s+[a-z][a-z-]*)*)((?:\s+\S+)*)", text):
        words = match.group(1).split()
        flags = re.findall(r"(?<!\S)(--[a-z][a-z-]*)", match.group(2))
        found.append((words, flags))
    return found


def check_flags(where, words, flags):
    assert words, f"{where}: no subcommand"
    text = help_of(words)
    for flag in flags:
        assert re.search(rf"(?<![a-z-]){re.escape(flag)}(?![a-z-])", text), \
            f"{where}: magnetar {' '.join(words)} has no {flag}"


def test_units_are_there():
    names = {os.path.basename(u) for u in UNITS}
    assert names == {"magnetar-metadata@.service", "magnetar-bookie.service",
                     "magnetar-broker.service"}


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_systemd_units_pass_systemd_analyze_verify(tmp_path):
    real_bin = shutil.which(BIN) or BIN
    names = []
    for unit in UNITS:
        with open(unit) as f:
            text = f.read().replace("/usr/local/bin/magnetar", os.path.abspath(real_bin))
        name = os.path.basename(unit).replace("@.service", "@1.service")
        (tmp_path / os.path.basename(unit)).write_text(text)
        (tmp_path / name).write_text(text)
        names.append(name)
    out = subprocess.run(["systemd-analyze", "verify", *names], cwd=tmp_path,
                         capture_output=True, text=True)
    assert out.returncode == 0 and not out.stderr.strip(), out.stdout + out.stderr


def test_systemd_units_pass_only_existing_flags_and_variables():
    for unit in UNITS:
        with open(unit) as f:
            text = f.read()
        exec_start = [line.split("=", 1)[1] for line in text.splitlines()
                      if line.startswith("ExecStart=")]
        assert len(exec_start) == 1, unit
        (words, flags), = invocations(exec_start[0])
        check_flags(unit, words, flags)
        for variable in re.findall(r"^Environment=(MAGNETAR_[A-Z_]+)=", text, re.M):
            assert f"env: {variable}" in help_of(words), f"{unit}: {variable} unknown"
        # The hardening the operations guide promises.
        for setting in ("NoNewPrivileges=yes", "ProtectSystem=strict", "User=magnetar",
                        "CapabilityBoundingSet=", "SystemCallFilter=@system-service"):
            assert setting in text, f"{unit} lacks {setting}"


def containers(manifest):
    with open(manifest) as f:
        for doc in yaml.safe_load_all(f):
            spec = doc.get("spec", {})
            pod = spec.get("template", {}).get("spec", {})
            for container in pod.get("containers", []):
                yield doc, container


def test_kubernetes_manifests_validate_against_the_schemas():
    validate = os.path.join(os.path.dirname(sys.executable), "kubernetes-validate")
    validate = validate if os.path.exists(validate) else shutil.which("kubernetes-validate") or ""
    if not os.path.exists(validate):
        pytest.skip("kubernetes-validate (PyPI) is not installed; scripts/test installs it")
    out = subprocess.run([validate, "--strict", "--no-warn", *MANIFESTS],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.count("passed") == 10, out.stdout
    # And it does refuse what is wrong.
    broken = subprocess.run([validate, "--strict", "-"], input="apiVersion: apps/v1\nkind: "
                            "Deployment\nmetadata: {name: x}\nspec: {replicas: many}\n",
                            capture_output=True, text=True)
    assert broken.returncode != 0


def test_kubernetes_manifests_pass_only_existing_flags_and_probe_real_endpoints():
    kinds = set()
    for manifest in MANIFESTS:
        for doc, container in containers(manifest):
            kinds.add((doc["kind"], doc["metadata"]["name"]))
            command = " ".join(container.get("command", []) + container.get("args", []))
            found = invocations(command)
            assert found, f"{manifest}: {container['name']} runs no magnetar command"
            for words, flags in found:
                check_flags(f"{manifest}:{container['name']}", words, flags)
            if doc["kind"] in ("StatefulSet", "Deployment"):
                assert container["readinessProbe"]["httpGet"]["path"] == "/health/ready"
                assert container["livenessProbe"]["httpGet"]["path"] == "/health/live"
    assert kinds == {("StatefulSet", "magnetar-metadata"), ("StatefulSet", "magnetar-bookie"),
                     ("Deployment", "magnetar-broker"), ("Job", "magnetar-cluster-init")}
    with open(os.path.join(ROOT, "deploy", "kubernetes", "kustomization.yaml")) as f:
        kustomization = yaml.safe_load(f)
    listed = set(kustomization["resources"])
    assert listed == {os.path.basename(m) for m in MANIFESTS}
    for entry in kustomization["configMapGenerator"]:
        for name in entry["files"]:
            assert os.path.exists(os.path.join(ROOT, "deploy", "kubernetes", name)), name
