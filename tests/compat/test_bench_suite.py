"""The short pass of the performance suite (scripts/bench --smoke): it runs end to end against
fresh standalones and writes every figure. Nothing here judges the figures; docs/perf.md holds
the long runs'."""

import json
import os
import pathlib
import subprocess
import sys

SUITE = pathlib.Path(__file__).resolve().parents[1] / "bench" / "bench_suite.py"


def test_the_suite_runs_and_writes_every_figure(tmp_path):
    out = tmp_path / "bench.json"
    run = subprocess.run(
        [sys.executable, str(SUITE), "--smoke", "--out", str(out), "--data-dir",
         str(tmp_path / "data")],
        capture_output=True, text=True, timeout=600, env=dict(os.environ))
    assert run.returncode == 0, run.stdout + run.stderr
    figures = json.loads(out.read_text())
    machine = figures["machine"]
    assert machine["cpus"] >= 1
    assert machine["fdatasync"]["p99_ms"] > 0 and machine["sequential_write"]["mb_per_s"] > 0
    results = figures["results"]
    for run_name in ("produce_100b", "produce_100b_16_topics", "produce_1kib", "unbatched_10k",
                     "unbatched_10k_end_to_end", "batched_10k", "catch_up"):
        assert results[run_name]["messages"] > 0, run_name
        assert results[run_name]["errors"] == 0, run_name
    assert results["catch_up"]["messages"] == 20_000
    assert results["topics"]["count"] == 200 and results["topics"]["topics_per_s"] > 0
    assert results["shutdown_s"] >= 0
    # The table for people.
    assert "catch-up, receiver queue 1,000" in run.stdout and "fdatasync p50" in run.stdout
