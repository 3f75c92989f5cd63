"""Geo-replication into a cluster that has no QUIC replication endpoint: the source reaches it
over the Pulsar protocol (`pulsar://`, or `pulsar+ssl://` with a token), as a producer named
`pulsar.repl.{source}` whose entries carry `replicated_from` and their source position, by
which the remote deduplicates. Real `magnetar standalone` processes; the receiving one runs
with `--replication-addr off`."""

import json
import os
import subprocess
import urllib.error

import pulsar
import pytest

from conftest import Standalone, free_port
from georep import SteadyProducer, Tokens, rest, stats, wait_until
from test_auth_tls import make_certificates
from test_geo_replication import produce, receive_all, subscribe, topic_name


def link_over_pulsar(eu, us, namespace, token=None, tls=None):
    """eu replicates `namespace` to us, which it knows only by its broker (and admin) URLs."""
    body = {"serviceUrl": us.admin_url}
    if tls:
        body["brokerServiceUrlTls"] = tls["url"]
        body["brokerClientTrustCertsFilePath"] = tls["ca"]
    else:
        body["brokerServiceUrl"] = us.url
    if token:
        body["authenticationPlugin"] = "token"
        body["authenticationParameters"] = f"token:{token}"
    try:
        rest(eu, "PUT", "/admin/v2/clusters/us", body)
    except urllib.error.HTTPError as e:
        if e.code != 409:
            raise
        rest(eu, "POST", "/admin/v2/clusters/us", body)
    try:  # us knows eu (its tenant lists it) but does not replicate to it
        rest(us, "PUT", "/admin/v2/clusters/eu", {"brokerServiceUrl": eu.url})
    except urllib.error.HTTPError as e:
        if e.code != 409:
            raise
    for server in (eu, us):
        rest(server, "POST", "/admin/v2/tenants/public",
             {"adminRoles": [], "allowedClusters": ["eu", "us"]})
        try:
            rest(server, "PUT", f"/admin/v2/namespaces/public/{namespace}")
        except urllib.error.HTTPError as e:
            if e.code != 409:
                raise
    rest(eu, "POST", f"/admin/v2/namespaces/public/{namespace}/replication", ["eu", "us"])


def admin(server, *args):
    """`magnetar admin …` against `server`; its standard output."""
    return subprocess.run([os.environ.get("MAGNETAR_BIN", "magnetar"), "admin", "--admin-url",
                           server.admin_url, *args],
                          check=True, capture_output=True, text=True).stdout


@pytest.fixture
def pair(tmp_path):
    (tmp_path / "eu").mkdir()
    (tmp_path / "us").mkdir()
    eu = Standalone(tmp_path / "eu", cluster="eu").start()
    us = Standalone(tmp_path / "us", cluster="us", quic=False).start()
    yield eu, us
    eu.kill()
    us.kill()


def test_a_partitioned_topic_replicates_in_order_over_the_pulsar_protocol(pair):
    """20,000 batched messages on three partitions in eu arrive once each in us, in order per
    partition; us gets the partitioned topic through its admin API; messages produced in us
    stay there (us does not replicate the namespace)."""
    eu, us = pair
    link_over_pulsar(eu, us, "pl")
    topic = topic_name("pl", "parts")
    rest(eu, "PUT", topic.replace("persistent://", "/admin/v2/persistent/") + "/partitions", 3)
    produce(eu, topic, "p", 20_000)
    # Subscribing first would auto-create a non-partitioned topic of that name in us.
    path = topic.replace("persistent://", "/admin/v2/persistent/") + "/partitions"
    wait_until("the partitioned topic in us", lambda: rest(us, "GET", path)[1]["partitions"] == 3)
    client, consumer = subscribe(us, topic)
    got = {}
    for _ in range(20_000):
        m = consumer.receive(timeout_millis=120_000)
        got.setdefault(m.message_id().partition(), []).append(int(m.data().decode()[1:]))
        consumer.acknowledge(m)
    with pytest.raises(pulsar.Timeout):
        consumer.receive(timeout_millis=2000)
    assert sorted(i for part in got.values() for i in part) == list(range(20_000))
    for part in got.values():
        assert part == sorted(part)
    assert len(got) == 3
    first = topic + "-partition-0"
    repl = stats(eu, first)["replication"]["us"]
    assert repl["connected"] and repl["msgOutCounter"] > 0, repl
    # `magnetar admin topics` shows the same, for people and for scripts.
    table = admin(eu, "topics", "stats", first)
    row = next(line for line in table.splitlines() if line.startswith("us "))
    assert " true " in row, table
    doc = json.loads(admin(eu, "--json", "topics", "partitioned-stats", topic))
    assert doc["replication"]["us"]["msgOutCounter"] == 20_000, doc["replication"]
    assert "pulsar.repl.us" in admin(eu, "topics", "stats-internal", first)
    assert f"{topic}-partition-2" in admin(eu, "topics", "list", "public/pl").split()
    assert admin(us, "topics", "list-partitioned-topics", "public/pl").split() == [topic]
    # Local to us: not sent back (us does not replicate), and eu's consumer sees none of it.
    produce(us, topic, "u", 10)
    eu_client, eu_consumer = subscribe(eu, topic, "local")
    assert len(receive_all(eu_consumer, 20_000, timeout=60)) == 20_000
    eu_client.close()
    client.close()


def test_kill_9_of_either_side_over_the_pulsar_protocol(pair):
    """A steady producer in eu; us and then eu are killed with SIGKILL and restarted: every
    message arrives in us once, in order."""
    eu, us = pair
    link_over_pulsar(eu, us, "pk")
    rest(eu, "POST", "/admin/v2/namespaces/public/pk/deduplication", True)
    topic = topic_name("pk", "kill")
    total = 20_000
    # Sequence ids from 1: the client drops a 0.
    producer = SteadyProducer(eu, topic, "k", range(1, total + 1), sequence_ids=True).start()
    wait_until("some replication",
               lambda: stats(eu, topic)["replication"]["us"]["msgOutCounter"] > 3_000)
    us.kill()
    us.start()
    wait_until("more produced", lambda: len(producer.acked) > 12_000)
    eu.kill()
    eu.start()
    producer.join()
    assert len(producer.acked) == total
    client, consumer = subscribe(us, topic)
    assert receive_all(consumer, total, timeout=180) == [f"k{i}" for i in range(1, total + 1)]
    client.close()
    producer.close()


def test_pulsar_ssl_with_a_token(tmp_path):
    """us has TLS and authentication on: eu reaches it over pulsar+ssl://, checking its
    certificate against a CA file, and presents a token. A role that may not produce is refused
    (shown in eu's stats); with a good token in the cluster record, replication resumes."""
    token = Tokens(tmp_path)

    certs = tmp_path / "certs"
    certs.mkdir()
    make_certificates(str(certs))
    tls_port = free_port()
    (tmp_path / "eu").mkdir()
    (tmp_path / "us").mkdir()
    eu = Standalone(tmp_path / "eu", cluster="eu").start()
    us = Standalone(tmp_path / "us", cluster="us", quic=False, extra_args=[
        "--token-secret-key", token.key_url, "--superuser-roles", "admin",
        "--tls-cert-file", str(certs / "server.pem"), "--tls-key-file", str(certs / "server.key"),
        "--broker-tls-addr", f"127.0.0.1:{tls_port}"]).start()
    us.admin_token = token("admin")
    tls = {"url": f"pulsar+ssl://localhost:{tls_port}", "ca": str(certs / "ca.pem")}
    try:
        link_over_pulsar(eu, us, "ps", token=token("stranger"), tls=tls)
        rest(us, "POST", "/admin/v2/namespaces/public/ps/permissions/eu-replicator",
             ["produce"])
        topic = topic_name("ps", "tls")
        produce(eu, topic, "s", 1_000)
        refused = wait_until("the refusal in eu's stats",
                             lambda: (stats(eu, topic)["replication"]["us"]["lastError"] or ""))
        assert "stranger" in refused or "uthoriz" in refused, refused
        link_over_pulsar(eu, us, "ps", token=token("eu-replicator"), tls=tls)
        client = pulsar.Client(us.url, authentication=pulsar.AuthenticationToken(token("admin")))
        consumer = client.subscribe(topic, "sub", initial_position=pulsar.InitialPosition.Earliest)
        assert receive_all(consumer, 1_000) == [f"s{i}" for i in range(1_000)]
        assert stats(eu, topic)["replication"]["us"]["connected"]
        client.close()
    finally:
        eu.kill()
        us.kill()
