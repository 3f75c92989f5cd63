"""`magnetar perf … --report FILE.html` against a running standalone: a self-contained page
(three inline SVG charts, no script, nothing fetched) with the run's figures, next to the
usual text or JSON lines."""

import json
import os
import re
import subprocess
import threading
import uuid

BIN = os.environ.get("MAGNETAR_BIN", "magnetar")


def perf(standalone, *args):
    out = subprocess.run([BIN, "perf", "--service-url", standalone.url, *args],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def check_page(path, what, kind):
    with open(path) as f:
        page = f.read()
    assert page.startswith("<!DOCTYPE html>")
    assert page.count("<svg") == 3 and page.count("<polyline") >= 5
    assert f"magnetar perf: {what}" in page and f"{kind}: p50" in page
    # Self-contained: no script, no external stylesheet, image or font.
    assert "<script" not in page
    assert not re.search(r"""(src|href)\s*=\s*["']?https?:""", page)
    assert "CPUs" in page and "--report" in page


def test_produce_and_consume_write_html_reports(standalone, tmp_path):
    topic = f"persistent://public/default/perf-report-{uuid.uuid4().hex[:6]}"
    consumed = tmp_path / "consume.html"
    consumer = threading.Thread(target=perf, args=(
        standalone, "consume", topic, "--time", "5", "--report", str(consumed)))
    consumer.start()
    produced = tmp_path / "produce.html"
    text = perf(standalone, "produce", topic, "--rate", "2000", "--time", "4",
                "--report", str(produced))
    assert f"Report: {produced}" in text and "Summary:" in text
    consumer.join()
    check_page(produced, "produced", "publish")
    check_page(consumed, "consumed", "end-to-end")
    # --json stays JSON lines only (the report is still written).
    again = tmp_path / "again.html"
    lines = perf(standalone, "produce", topic, "--rate", "1000", "--time", "2", "--json",
                 "--report", str(again)).strip().splitlines()
    assert json.loads(lines[-1])["summary"] is True
    assert again.exists()
