"""Token authentication, authorization and TLS with the real Python client.

A standalone runs with auth on (`--token-secret-key`, superuser `admin`) and TLS (a CA and a
server certificate made with the openssl CLI). Tokens come from `magnetar tokens`. The
superuser grants `produce`+`consume` on public/default to role `app` over REST. Then: `app`
produces and consumes; a role without a grant is refused; an expired token and a token signed
with another algorithm are refused (the client sees a timeout or connect error, as with Pulsar);
the client connects over `pulsar+ssl://` trusting the CA; REST answers 401 without a token.
"""

import json
import os
import shutil
import ssl
import subprocess
import time
import urllib.error
import urllib.request

import pulsar
import pytest

from conftest import Standalone, free_port

TOPIC = "persistent://public/default/secured"
# Refused connections are retried until the operation timeout: keep it short.
OP_TIMEOUT = 5


def run(*args, cwd=None):
    return subprocess.run(args, check=True, capture_output=True, text=True, cwd=cwd).stdout.strip()


def make_certificates(d):
    """ca.pem, server.pem and server.key (for localhost and 127.0.0.1) in directory d."""
    run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key",
        "-out", "ca.pem", "-days", "2", "-subj", "/CN=magnetar-test-ca", cwd=d)
    run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key",
        "-out", "server.csr", "-subj", "/CN=localhost", cwd=d)
    with open(os.path.join(d, "ext.cnf"), "w") as f:
        f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n")
    run("openssl", "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "ext.cnf", cwd=d)


class Secured:
    def __init__(self, tmp):
        self.dir = str(tmp)
        self.bin = os.environ.get("MAGNETAR_BIN", "magnetar")
        self.key = os.path.join(self.dir, "secret.key")
        run(self.bin, "tokens", "create-secret-key", "--output", self.key)
        key_url = f"file://{self.key}"
        # Expires in a second: by the time it is used it is stale.
        self.expired = self.token("app", "--expiry", "1s")
        self.expired_at = time.time() + 1
        self.admin = self.token("admin")
        self.app = self.token("app")
        self.stranger = self.token("stranger")
        self.hs384 = self.token("app", "--algorithm", "HS384")
        make_certificates(self.dir)
        self.ca = os.path.join(self.dir, "ca.pem")
        self.tls_port = free_port()
        self.https_port = free_port()
        self.server = Standalone(tmp, [
            "--token-secret-key", key_url,
            "--superuser-roles", "admin",
            "--tls-cert-file", os.path.join(self.dir, "server.pem"),
            "--tls-key-file", os.path.join(self.dir, "server.key"),
            "--broker-tls-addr", f"127.0.0.1:{self.tls_port}",
            "--https-addr", f"127.0.0.1:{self.https_port}",
        ])

    def token(self, role, *args):
        return run(self.bin, "tokens", "create", "--subject", role,
                   "--secret-key", f"file://{self.key}", *args)

    def rest(self, method, path, token=None, body=None):
        """(status, body) of an admin API call."""
        req = urllib.request.Request(self.server.admin_url + path, method=method)
        if token:
            req.add_header("Authorization", f"Bearer {token}")
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, data=data, timeout=10) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()


@pytest.fixture(scope="module")
def secured(tmp_path_factory):
    if shutil.which("openssl") is None:
        pytest.skip("the openssl CLI makes the test certificates")
    s = Secured(tmp_path_factory.mktemp("secured"))
    s.server.start()
    status, body = s.rest("POST", "/admin/v2/namespaces/public/default/permissions/app",
                          s.admin, ["produce", "consume"])
    assert status == 204, body
    yield s
    s.server.stop()


def client_for(url, token, **kwargs):
    return pulsar.Client(url, authentication=pulsar.AuthenticationToken(token),
                         operation_timeout_seconds=OP_TIMEOUT, connection_timeout_ms=3000,
                         **kwargs)


def round_trip(client, topic, subscription):
    consumer = client.subscribe(topic, subscription,
                                initial_position=pulsar.InitialPosition.Earliest)
    producer = client.create_producer(topic)
    producer.send(b"secret message")
    msg = consumer.receive(timeout_millis=10000)
    assert msg.data() == b"secret message"
    consumer.acknowledge(msg)


def test_granted_role_produces_and_consumes(secured):
    client = client_for(secured.server.url, secured.app)
    try:
        round_trip(client, TOPIC, "app-sub")
    finally:
        client.close()


def test_role_without_grant_is_refused(secured):
    client = client_for(secured.server.url, secured.stranger)
    try:
        with pytest.raises(Exception):
            client.create_producer(TOPIC)
        with pytest.raises(Exception):
            client.subscribe(TOPIC, "stranger-sub")
    finally:
        client.close()


@pytest.mark.parametrize("which", ["expired", "hs384"])
def test_bad_token_is_refused(secured, which):
    while time.time() <= secured.expired_at + 1:
        time.sleep(0.1)
    client = client_for(secured.server.url, getattr(secured, which))
    started = time.monotonic()
    try:
        with pytest.raises(Exception):
            client.create_producer(TOPIC)
    finally:
        client.close()
    assert time.monotonic() - started < OP_TIMEOUT + 10


def test_tls_connection_with_trusted_ca(secured):
    client = client_for(f"pulsar+ssl://127.0.0.1:{secured.tls_port}", secured.app,
                        tls_trust_certs_file_path=secured.ca)
    try:
        round_trip(client, TOPIC + "-tls", "tls-sub")
    finally:
        client.close()


def test_rest_needs_a_token_and_https_works(secured):
    status, _ = secured.rest("GET", "/admin/v2/tenants")
    assert status == 401
    status, _ = secured.rest("GET", "/admin/v2/tenants", secured.app)
    assert status == 403
    status, body = secured.rest("GET", "/admin/v2/tenants", secured.admin)
    assert status == 200 and "public" in json.loads(body)
    context = ssl.create_default_context(cafile=secured.ca)
    req = urllib.request.Request(
        f"https://localhost:{secured.https_port}/admin/v2/clusters",
        headers={"Authorization": f"Bearer {secured.admin}"})
    with urllib.request.urlopen(req, context=context, timeout=10) as resp:
        assert json.loads(resp.read()) == ["standalone"]
