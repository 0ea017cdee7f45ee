"""The load test of benchmarks/load.py, at a size that keeps the suite quick."""

from __future__ import annotations

import subprocess
import sys

from tests.integration.conftest import ROOT


def test_load_loses_nothing_runs_nothing_twice_and_frees_every_lock() -> None:
    """2,000 jobs, 30% on shared keys, 4 producers, 2 workers: exact counts."""
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.load", "--jobs", "2000"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )

    assert done.returncode == 0, done.stdout + done.stderr
    assert "handler runs             1460 (expected 1460)" in done.stdout
    assert "distinct job ids run     1460" in done.stdout
    assert "dedupe locks left        0" in done.stdout
