"""The web console at /console, in a real browser: headless Chromium (Debian's `chromium` and
`chromium-driver`) driven by Selenium.

Without auth: the overview shows the cluster, its broker and bundle ownership; a tenant, a
namespace and a topic are created from the pages and the admin API sees them; a grant is
refused as the API refuses it (authorization is off); the topic's figures move while `magnetar perf` produces; messages are peeked as JSON,
text and hex; a cursor is skipped, reset and cleared; then topic, namespace and tenant are
deleted from the pages. With auth: the console asks for a token, refuses a bad one, and a
tenant admin sees its own tenant while everything else says "Not permitted", cannot create
a tenant, and can create a topic and grant a role in its own namespace. Screenshots of each page are kept in $MAGNETAR_ARTIFACTS (default
target/test-artifacts)/console.
"""

import json
import os
import shutil
import subprocess
import urllib.error
import urllib.request

import pulsar
import pytest

from conftest import Standalone

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is installed by scripts/test")
from selenium.common.exceptions import (  # noqa: E402
    NoSuchElementException, StaleElementReferenceException)
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

BIN = os.environ.get("MAGNETAR_BIN", "magnetar")
ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
ARTIFACTS = os.path.join(
    os.environ.get("MAGNETAR_ARTIFACTS", os.path.join(ROOT, "target", "test-artifacts")), "console")
WAIT = 30


def chromium_paths():
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not browser or not driver:
        pytest.skip("chromium and chromium-driver (Debian packages) are needed; scripts/test installs them")
    return browser, driver


@pytest.fixture
def browser(request):
    binary, driver_path = chromium_paths()
    from selenium.webdriver.chrome.service import Service
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1400,1100", "--no-first-run", "--disable-extensions"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    driver.set_page_load_timeout(WAIT)
    os.makedirs(ARTIFACTS, exist_ok=True)
    yield driver
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        # What the page showed when the test failed, for the CI artifacts.
        name = request.node.name
        driver.save_screenshot(os.path.join(ARTIFACTS, f"{name}-failed.png"))
        with open(os.path.join(ARTIFACTS, f"{name}-failed.html"), "w") as f:
            f.write(driver.page_source)
    driver.quit()


def shot(driver, name):
    driver.save_screenshot(os.path.join(ARTIFACTS, f"{name}.png"))


def wait(driver, condition, what):
    return WebDriverWait(
        driver, WAIT, poll_frequency=0.2,
        ignored_exceptions=(NoSuchElementException, StaleElementReferenceException),
    ).until(lambda d: condition(d), message=f"waiting for {what}")


def text_of(driver, css):
    try:
        found = driver.find_elements(By.CSS_SELECTOR, css)
        return found[0].text if found else ""
    except StaleElementReferenceException:
        return ""


def wait_text(driver, css, needle):
    wait(driver, lambda d: needle in text_of(d, css), f"{needle!r} in {css}")


def rest(server, method, path, token=None, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(server.admin_url + path, data=data, method=method)
    if body is not None:
        req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=15) as resp:
            raw = resp.read()
            return resp.status, (json.loads(raw) if raw else None)
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def go(driver, server, hash_):
    driver.get(f"{server.admin_url}/console/{hash_}")


def retry(driver, what, action):
    """Runs `action` until it does not meet an element the page re-rendered meanwhile (live
    sections are rebuilt every 2 s, pages after each action)."""
    def attempt(_):
        try:
            action()
            return True
        except (StaleElementReferenceException, NoSuchElementException):
            return False
    wait(driver, attempt, what)


def submit(driver, form_id):
    retry(driver, f"submitting {form_id}", lambda: driver.find_element(
        By.CSS_SELECTOR, f"#{form_id} button[type=submit]").click())


def type_into(driver, element_id, text):
    def action():
        el = driver.find_element(By.ID, element_id)
        el.clear()
        el.send_keys(text)
    retry(driver, f"typing into {element_id}", action)


def choose(driver, element_id, value):
    retry(driver, f"choosing {value} in {element_id}",
          lambda: Select(driver.find_element(By.ID, element_id)).select_by_value(value))


def confirm_click(driver, element_id):
    """Danger buttons ask for a second click."""
    retry(driver, f"clicking {element_id}", lambda: driver.find_element(By.ID, element_id).click())
    wait(driver, lambda d: "confirm" in text_of(d, f"#{element_id}"), "armed button")
    retry(driver, f"confirming {element_id}",
          lambda: driver.find_element(By.ID, element_id).click())


def first_payload(driver):
    return text_of(driver, "#peek-result li.message pre.payload")


def test_console_pages_actions_and_live_figures(browser, tmp_path):
    server = Standalone(tmp_path).start()
    d = browser
    try:
        # The pages are served with a strict content security policy.
        with urllib.request.urlopen(server.admin_url + "/console/", timeout=15) as resp:
            assert "script-src 'self'" in resp.headers["Content-Security-Policy"]
            assert "<script src=\"/console/app.js\"" in resp.read().decode()

        # Overview: the cluster, its broker, the health check.
        go(d, server, "")
        wait_text(d, "#clusters-table", "standalone")
        wait_text(d, "#broker-health", "ok")
        wait(d, lambda d: d.find_elements(By.CSS_SELECTOR, "#ownership table, #ownership p"),
             "bundle ownership")
        shot(d, "overview")

        # Create a tenant, a namespace and a topic from the pages.
        go(d, server, "#/tenants")
        wait_text(d, "#tenants-table", "public")
        type_into(d, "tenant-name", "console-t")
        submit(d, "create-tenant-form")
        wait(d, lambda d: d.current_url.endswith("#/tenant/console-t"), "the tenant page")
        assert "console-t" in rest(server, "GET", "/admin/v2/tenants")[1]
        status, info = rest(server, "GET", "/admin/v2/tenants/console-t")
        assert status == 200 and info["allowedClusters"] == ["standalone"]

        wait(d, lambda d: d.find_elements(By.ID, "namespace-name"), "the namespace form")
        type_into(d, "namespace-name", "ns1")
        submit(d, "create-namespace-form")
        wait(d, lambda d: d.current_url.endswith("#/namespace/console-t/ns1"), "the namespace page")
        assert "console-t/ns1" in rest(server, "GET", "/admin/v2/namespaces/console-t")[1]

        wait(d, lambda d: d.find_elements(By.ID, "topic-name"), "the topic form")
        type_into(d, "topic-name", "orders")
        submit(d, "create-topic-form")
        wait_text(d, "#topics-table", "orders")
        assert "persistent://console-t/ns1/orders" in rest(
            server, "GET", "/admin/v2/persistent/console-t/ns1")[1]

        # Without authorization there is nothing to grant: the API's answer is shown.
        wait(d, lambda d: d.find_elements(By.ID, "grant-role"), "the grant form")
        type_into(d, "grant-role", "app")
        submit(d, "grant-form")
        wait_text(d, "#flash", "Authorization is not enabled")

        # Messages: five JSON documents first, behind a durable subscription.
        topic = "persistent://console-t/ns1/orders"
        client = pulsar.Client(server.url, operation_timeout_seconds=15)
        try:
            client.subscribe(topic, "audit").close()
            producer = client.create_producer(topic, batching_enabled=False)
            for n in range(5):
                producer.send(json.dumps({"n": n, "item": "widget"}).encode(), partition_key=f"k{n}")
            producer.close()
        finally:
            client.close()

        # Live figures move while magnetar perf produces.
        perf = subprocess.Popen(
            [BIN, "perf", "--service-url", server.url, "produce", topic, "--rate", "500",
             "--time", "60"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            go(d, server, "#/topic/console-t/ns1/orders")
            wait(d, lambda d: text_of(d, "#stat-msgInCounter").isdigit()
                 and int(text_of(d, "#stat-msgInCounter")) > 5, "messages in beyond the first five")
            before = int(text_of(d, "#stat-msgInCounter"))
            wait(d, lambda d: int(text_of(d, "#stat-msgInCounter") or 0) > before, "the counter to move")
            wait(d, lambda d: float(text_of(d, "#stat-msgRateIn") or 0) > 0, "a publish rate")
            wait(d, lambda d: d.find_elements(By.CSS_SELECTOR, "#producers-table tbody tr"), "a producer row")
            wait_text(d, "#subscriptions-table", "audit")
            wait(d, lambda d: d.find_elements(By.CSS_SELECTOR, "#ledgers-table tbody tr"), "the ledgers")
            wait_text(d, "#cursors-table", "audit")
            shot(d, "topic")

            # The namespace page's rates move too.
            go(d, server, "#/namespace/console-t/ns1")
            wait(d, lambda d: float(text_of(d, "#topic-orders-msgRateIn") or 0) > 0,
                 "the topic's rate on the namespace page")
            shot(d, "namespace")
        finally:
            perf.terminate()
            perf.wait(timeout=30)

        # Peek: the first three messages of the backlog, as JSON, text and hex.
        go(d, server, "#/topic/console-t/ns1/orders")
        wait(d, lambda d: Select(d.find_element(By.ID, "peek-subscription")).options, "subscriptions")
        type_into(d, "peek-count", "3")
        choose(d, "peek-format", "json")
        submit(d, "peek-form")
        wait(d, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#peek-result li.message")) == 3,
             "three peeked messages")
        assert '"n": 0' in first_payload(d) and '"item": "widget"' in first_payload(d)
        assert "key k0" in text_of(d, "#peek-result li.message .message-meta")
        choose(d, "peek-format", "text")
        wait(d, lambda d: first_payload(d).startswith('{"n": 0'), "the text view")
        choose(d, "peek-format", "hex")
        wait(d, lambda d: first_payload(d).startswith("00000000  7b 22 6e 22"), "the hex view")
        shot(d, "peek")

        # Skip two: the backlog now starts at n = 2.
        type_into(d, "skip-count", "2")
        submit(d, "skip-form")
        wait_text(d, "#flash", "Skipped 2")
        choose(d, "peek-format", "json")
        submit(d, "peek-form")
        wait(d, lambda d: '"n": 2' in first_payload(d), "the backlog after the skip")

        # Reset the cursor to an hour ago: back to n = 0.
        submit(d, "reset-form")
        wait_text(d, "#flash", "Reset audit")
        submit(d, "peek-form")
        wait(d, lambda d: '"n": 0' in first_payload(d), "the backlog after the reset")

        # Clear the backlog.
        submit(d, "clear-form")
        wait_text(d, "#flash", "Cleared the backlog")
        status, stats = rest(server, "GET", "/admin/v2/persistent/console-t/ns1/orders/stats")
        assert status == 200 and stats["subscriptions"]["audit"]["msgBacklog"] == 0
        wait(d, lambda d: [c.text for c in d.find_elements(
            By.CSS_SELECTOR, "#subscriptions-table tbody tr td")][:3] == ["audit", "Exclusive", "0"],
            "the cleared backlog on the page")

        # Delete the topic, then the namespace and the tenant.
        confirm_click(d, "delete-topic")
        wait(d, lambda d: d.current_url.endswith("#/namespace/console-t/ns1"), "back on the namespace")
        wait(d, lambda d: "persistent://console-t/ns1/orders" not in rest(
            server, "GET", "/admin/v2/persistent/console-t/ns1")[1], "the topic gone")
        go(d, server, "#/tenant/console-t")
        confirm_click(d, "delete-namespace-ns1")
        wait(d, lambda d: rest(server, "GET", "/admin/v2/namespaces/console-t")[1] == [],
             "the namespace gone")
        go(d, server, "#/tenants")
        confirm_click(d, "delete-tenant-console-t")
        wait(d, lambda d: "console-t" not in rest(server, "GET", "/admin/v2/tenants")[1],
             "the tenant gone")
        shot(d, "tenants")
    finally:
        server.stop()


def test_console_token_login_shows_only_what_the_role_may(browser, tmp_path):
    key = tmp_path / "secret.key"
    subprocess.run([BIN, "tokens", "create-secret-key", "--output", str(key)], check=True)

    def token(role):
        return subprocess.run([BIN, "tokens", "create", "--subject", role, "--secret-key",
                               f"file://{key}"], check=True, capture_output=True,
                              text=True).stdout.strip()

    admin, acme = token("admin"), token("acme-admin")
    server = Standalone(tmp_path, ["--token-secret-key", f"file://{key}",
                                   "--superuser-roles", "admin"]).start()
    d = browser
    try:
        assert rest(server, "PUT", "/admin/v2/tenants/acme", admin,
                    {"adminRoles": ["acme-admin"], "allowedClusters": ["standalone"]})[0] == 204
        assert rest(server, "PUT", "/admin/v2/namespaces/acme/orders", admin)[0] == 204

        # No token: the console asks for one. A bad token is refused.
        go(d, server, "")
        wait(d, lambda d: d.find_elements(By.ID, "login-token"), "the login page")
        type_into(d, "login-token", "not-a-token")
        submit(d, "login")
        wait_text(d, "#login-message", "Sign-in failed")
        shot(d, "login-refused")

        # The tenant admin signs in: the superuser's sections say so.
        type_into(d, "login-token", acme)
        submit(d, "login")
        wait(d, lambda d: d.current_url.endswith("#/"), "the overview")
        wait_text(d, "#session-role", "acme-admin")
        wait_text(d, "#clusters", "Not permitted")
        wait_text(d, "#ownership", "Not permitted")
        shot(d, "tenant-admin-overview")

        # Its own tenant is open to it; another tenant is not.
        type_into(d, "goto-input", "acme")
        submit(d, "goto")
        wait_text(d, "#namespaces-table", "acme/orders")
        go(d, server, "#/tenant/public")
        wait_text(d, "#namespaces", "Not permitted")

        # It may not create a tenant: the page says so and nothing is created.
        go(d, server, "#/tenants")
        wait_text(d, "#tenants", "Not permitted")
        type_into(d, "tenant-name", "evil")
        submit(d, "create-tenant-form")
        wait_text(d, "#flash", "Not permitted")
        assert "evil" not in rest(server, "GET", "/admin/v2/tenants", admin)[1]

        # It may create a topic in its own namespace and grant a role there.
        go(d, server, "#/namespace/acme/orders")
        wait(d, lambda d: d.find_elements(By.ID, "topic-name"), "the topic form")
        type_into(d, "topic-name", "invoices")
        submit(d, "create-topic-form")
        wait_text(d, "#topics-table", "invoices")
        wait(d, lambda d: d.find_elements(By.ID, "grant-role"), "the grant form")
        type_into(d, "grant-role", "app")
        retry(d, "unticking consume",
              lambda: d.find_element(By.ID, "grant-consume").click())  # produce only
        submit(d, "grant-form")
        wait_text(d, "#permissions-table", "app")
        status, granted = rest(server, "GET", "/admin/v2/namespaces/acme/orders/permissions", admin)
        assert status == 200 and granted["app"] == ["produce"]
        shot(d, "tenant-admin-namespace")

        # Signing out forgets the token.
        d.find_element(By.ID, "sign-out").click()
        wait(d, lambda d: d.current_url.endswith("#/login"), "the login page")
        assert d.execute_script("return sessionStorage.getItem('magnetar-console-token')") is None
    finally:
        server.stop()
