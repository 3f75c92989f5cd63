"""What operators point their tools at: the Grafana dashboard (deploy/grafana/magnetar.json) and
the Prometheus alert rules (deploy/prometheus/alerts.yml) query only metrics a running Magnetar
exposes (checked by scraping two replicating standalones under load), the rules pass promtool
and its unit tests, and every role answers /health/live and /health/ready as documented."""

import json
import os
import re
import shutil
import subprocess
import urllib.error
import urllib.request
import uuid

import pulsar
import pytest
import yaml

import georep
from conftest import free_port, wait_for_port
from georep import wait_until

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DASHBOARD = os.path.join(ROOT, "deploy", "grafana", "magnetar.json")
ALERTS = os.path.join(ROOT, "deploy", "prometheus", "alerts.yml")
ALERT_TESTS = os.path.join(ROOT, "deploy", "prometheus", "alerts_test.yml")
BIN = os.environ.get("MAGNETAR_BIN", "magnetar")

# Served only by `magnetar broker` in a cluster (the autorecovery auditor), never by a
# standalone: test_cluster.py checks them on a real cluster.
CLUSTER_ONLY = {
    "magnetar_autorecovery_under_replicated_ledgers",
    "magnetar_autorecovery_lost_bookies",
}
PREFIXES = ("pulsar_", "magnetar_", "bookie_", "metadata_")
PROMQL_WORDS = {"sum", "by", "rate", "max", "min", "topk", "histogram_quantile", "delta",
                "increase", "absent", "and", "or", "le", "instance"}


def metric_names(expr):
    names = set()
    for token in re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", re.sub(r'"[^"]*"', "", expr)):
        if token.startswith(PREFIXES) and token not in PROMQL_WORDS:
            names.add(token)
    return names


def dashboard_exprs():
    with open(DASHBOARD) as f:
        dashboard = json.load(f)
    return [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]


def alert_exprs():
    with open(ALERTS) as f:
        rules = yaml.safe_load(f)
    return [r["expr"] for g in rules["groups"] for r in g["rules"]]


def scrape(url):
    with urllib.request.urlopen(url + "/metrics", timeout=15) as r:
        text = r.read().decode()
    return {line.split("{")[0].split(" ")[0] for line in text.splitlines()
            if line and not line.startswith("#")}


def exposed(name, scraped):
    return name in scraped or any(
        f"{name}{suffix}" in scraped for suffix in ("_bucket", "_count", "_sum"))


def get(url):
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


@pytest.fixture
def replicating(tmp_path):
    servers = georep.start(tmp_path, "eu", "us")
    yield servers
    for s in servers:
        s.kill()


def test_every_metric_the_dashboard_and_alerts_query_is_exposed(replicating):
    eu, us = replicating
    ns = f"obs-{uuid.uuid4().hex[:6]}"
    georep.link([eu, us], ns)
    topic = f"persistent://public/{ns}/load"
    client = pulsar.Client(eu.url, operation_timeout_seconds=30)
    consumer = client.subscribe(topic, "watch")
    producer = client.create_producer(topic, batching_enabled=True)
    for i in range(2000):
        producer.send_async(f"m{i}".encode(), None)
    producer.flush()
    for _ in range(100):
        consumer.acknowledge(consumer.receive(10_000))
    # Replication metrics appear once the replicator to "us" runs.
    wait_until("replication metrics on eu",
               lambda: "pulsar_replication_delay_in_seconds" in scrape(eu.admin_url), 60)
    scraped = scrape(eu.admin_url) | scrape(us.admin_url)
    wanted = set()
    for expr in dashboard_exprs() + alert_exprs():
        wanted |= metric_names(expr)
    assert len(wanted) > 20, wanted
    missing = sorted(n for n in wanted - CLUSTER_ONLY if not exposed(n, scraped))
    assert not missing, f"queried but not exposed by a standalone: {missing}"
    # And every exposed metric is documented.
    with open(os.path.join(ROOT, "docs", "metrics.md")) as f:
        documented = f.read()
    families = {re.sub(r"_(bucket|count|sum)$", "", n) if n.endswith(("_bucket", "_sum")) or
                n.endswith("_seconds_count") else n for n in scraped}
    undocumented = sorted(n for n in families if f"`{n}" not in documented)
    assert not undocumented, f"exposed but not in docs/metrics.md: {undocumented}"
    client.close()


def test_the_dashboard_is_well_formed_grafana_json():
    with open(DASHBOARD) as f:
        dashboard = json.load(f)
    assert dashboard["uid"] and dashboard["title"] == "Magnetar"
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    variables = {v["name"] for v in dashboard["templating"]["list"]}
    assert {"datasource", "cluster", "namespace"} <= variables
    titles = set()
    for panel in dashboard["panels"]:
        grid = panel["gridPos"]
        assert 0 <= grid["x"] and grid["x"] + grid["w"] <= 24, panel["title"]
        if panel["type"] == "row":
            continue
        titles.add(panel["title"])
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["refId"] and target["expr"]
            for var in re.findall(r"\$(\w+)", target["expr"]):
                assert var in variables, f"{panel['title']}: unknown ${var}"
    # What the dashboard promises to show.
    for title in ("Publish rate", "Dispatch rate", "Publish latency (SEND to durable)",
                  "Bookie journal fsync latency", "Backlog (top 10 topics)",
                  "Storage by namespace", "Raft", "Replication lag",
                  "Connections and publish backpressure"):
        assert title in titles, title


@pytest.mark.skipif(shutil.which("promtool") is None,
                    reason="promtool (Debian package prometheus) is not installed; scripts/test installs it")
def test_alert_rules_pass_promtool_and_their_unit_tests():
    check = subprocess.run(["promtool", "check", "rules", ALERTS], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    unit = subprocess.run(["promtool", "test", "rules", ALERT_TESTS], capture_output=True, text=True)
    assert unit.returncode == 0, unit.stdout + unit.stderr


def test_alert_rules_are_well_formed():
    with open(ALERTS) as f:
        rules = yaml.safe_load(f)
    names = set()
    for group in rules["groups"]:
        for rule in group["rules"]:
            assert rule["alert"] not in names
            names.add(rule["alert"])
            assert rule["labels"]["severity"] in ("info", "warning", "critical")
            assert rule["annotations"]["summary"] and rule["annotations"]["description"]
    for wanted in ("MagnetarBacklogGrowing", "MagnetarPublishLatencyHigh", "MagnetarBookieReadOnly",
                   "MagnetarNoRaftLeader", "MagnetarReplicationLag",
                   "MagnetarUnderReplicatedLedgers"):
        assert wanted in names, wanted
    # Every alert is explained in the operations guide.
    with open(os.path.join(ROOT, "docs", "operations.md")) as f:
        guide = f.read()
    for name in names:
        assert name in guide, f"{name} is not described in docs/operations.md"


def test_a_standalone_is_live_and_ready(standalone):
    assert get(standalone.admin_url + "/health/live") == (200, "alive\n")
    assert get(standalone.admin_url + "/health/ready") == (200, "ready\n")


class Role:
    def __init__(self, args, http_port, tmp_path):
        self.log = open(tmp_path / f"role-{http_port}.log", "w")
        self.proc = subprocess.Popen([BIN, *args], stdout=self.log, stderr=subprocess.STDOUT,
                                     )
        self.url = f"http://127.0.0.1:{http_port}"
        wait_for_port(http_port)

    def stop(self):
        self.proc.kill()
        self.proc.wait()
        self.log.close()


def test_metadata_nodes_are_ready_only_with_a_leader(tmp_path):
    port, http = free_port(), free_port()
    # A node of a three-node group alone: it can never elect a leader.
    peers = f"1=127.0.0.1:{port},2=127.0.0.1:{free_port()},3=127.0.0.1:{free_port()}"
    alone = Role(["metadata", "serve", "--node-id", "1", "--listen", f"127.0.0.1:{port}",
                  "--data-dir", str(tmp_path / "alone"), "--peers", peers,
                  "--http-addr", f"127.0.0.1:{http}"], http, tmp_path)
    try:
        assert get(alone.url + "/health/live")[0] == 200
        status, body = get(alone.url + "/health/ready")
        assert status == 503 and "no Raft leader" in body, body
        metrics = scrape(alone.url)
        assert {"metadata_raft_has_leader", "metadata_raft_term"} <= metrics
    finally:
        alone.stop()
    port, http = free_port(), free_port()
    single = Role(["metadata", "serve", "--node-id", "1", "--listen", f"127.0.0.1:{port}",
                   "--data-dir", str(tmp_path / "single"), "--peers", f"1=127.0.0.1:{port}",
                   "--http-addr", f"127.0.0.1:{http}"], http, tmp_path)
    try:
        wait_until("a single-node group elects itself",
                   lambda: get(single.url + "/health/ready")[0] == 200, 30)
    finally:
        single.stop()


def test_bookies_are_ready_while_writable(tmp_path):
    def bookie(name, config=""):
        http = free_port()
        conf = tmp_path / f"{name}.toml"
        conf.write_text(config)
        return Role(["bookie", "serve", "--config", str(conf),
                     "--listen", f"127.0.0.1:{free_port()}",
                     "--journal-dir", str(tmp_path / name / "journal"),
                     "--ledger-dir", str(tmp_path / name / "ledgers"),
                     "--http-addr", f"127.0.0.1:{http}"], http, tmp_path)

    # Never read-only, however full the disk running the tests is.
    writable = bookie("writable", "disk_usage_threshold = 1.0\ndisk_usage_lwm_threshold = 1.0\n")
    try:
        wait_until("the bookie is ready", lambda: get(writable.url + "/health/ready")[0] == 200, 30)
        metrics = scrape(writable.url)
        assert {"bookie_read_only", "bookie_journal_fsync_latency_seconds_bucket"} <= metrics
    finally:
        writable.stop()
    # A disk "fuller" than a tiny threshold turns the bookie read-only: not ready.
    full = bookie("full", "disk_usage_threshold = 0.0001\n"
                          "disk_usage_lwm_threshold = 0.00005\n"
                          "disk_check_interval_ms = 100\n")
    try:
        wait_until("the bookie turns read-only",
                   lambda: get(full.url + "/health/ready")[0] == 503, 30)
        assert "read-only" in get(full.url + "/health/ready")[1]
    finally:
        full.stop()
