"""A short pass of the crash soak (tests/soak/crash_soak.py; `scripts/crash-soak` runs long
ones): `kill -9` at random moments of a standalone and of a local cluster's brokers and bookies
loses no acknowledged message and skips no unacknowledged one."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "soak"))

from crash_soak import ClusterTarget, StandaloneTarget, run  # noqa: E402


def test_crash_soak_standalone(tmp_path):
    target = StandaloneTarget(tmp_path)
    try:
        totals = run(target, cycles=3, seed=7)
    finally:
        target.close()
    assert totals["published"] > 0
    assert totals["lost"] == 0 and totals["skipped"] == 0, totals


def test_crash_soak_cluster(tmp_path):
    target = ClusterTarget(tmp_path / "cluster")
    try:
        totals = run(target, cycles=2, seed=11)
    finally:
        target.close()
    assert totals["published"] > 0
    assert totals["lost"] == 0 and totals["skipped"] == 0, totals
