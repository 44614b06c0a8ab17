"""The examples, ``hotswap demo`` and the benchmarks leave nothing in the temporary directory.

Each runs in a subprocess, as a user runs it, with ``TMPDIR`` set to a fresh folder that must be
empty afterwards; the benchmarks with their smallest arguments (a benchmark that compares with
a peer that is not installed skips it, and must still clean up).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

COMMANDS = {
    "quickstart": ["examples/quickstart.py"],
    "live_config": ["examples/live_config.py"],
    "demo": ["-m", "hotswap", "demo"],
    "bench_calls": ["benchmarks/bench_calls.py", "--quick"],
    "bench_diff": ["benchmarks/bench_diff.py"],
    "bench_first_save": ["benchmarks/bench_first_save.py", "--programs", "1", "--delays", "0"],
    "bench_reload": ["benchmarks/bench_reload.py", "--quick"],
    "bench_observability": ["benchmarks/bench_observability.py"],
    "bench_restart": ["benchmarks/bench_restart.py", "1", "json"],
    "bench_latency": ["benchmarks/bench_latency.py", "--saves", "1", "--styles", "in place"],
    "bench_pytest": [
        "benchmarks/bench_pytest.py",
        *("--import-seconds", "0", "--saves", "1", "--situations", "1"),
    ],
    "bench_web": ["benchmarks/bench_web.py", "--saves", "1"],
    "bench_peers": [
        "benchmarks/bench_peers.py",
        *("--quick", "--here", "--peers", "hotswap,floor"),
    ],
    "bench_fleet": ["benchmarks/bench_fleet.py", "--saves", "1", "--modes", "fleet"],
    "bench_clusters": ["benchmarks/bench_clusters.py", "--saves", "1", "--engines", "dask"],
    "sim_fleet_scale": [
        "benchmarks/sim_fleet_scale.py",
        *("--agents", "5", "--rounds", "1", "--kib", "1"),
    ],
    "bench_canary": [
        "benchmarks/bench_canary.py",
        *("--number", "50", "--repeat", "1", "--rounds", "1"),
    ],
    # One upgrade of one small package, hotswap alone (its sdists come from PyPI, as in CI's
    # installs, into the harness's cache outside the temporary directory).
    "bench_replay": [
        "benchmarks/bench_replay.py",
        *("--packages", "idna", "--steps", "1", "--peers", "hotswap", "--no-tests"),
    ],
}


def test_reports_every_example_and_benchmark_is_run():
    scripts = {
        f"{folder}/{p.name}"
        for folder in ("examples", "benchmarks")
        for p in (ROOT / folder).glob("*.py")
        if not p.name.startswith("_")
    }
    assert scripts == {c[0] for c in COMMANDS.values() if c[0].endswith(".py")}


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_reports_leaves_no_temporary_folders(tmp_path, name):
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    env = {**os.environ, "TMPDIR": str(scratch), "NO_COLOR": "1"}
    # A project's pyproject.toml or HOTSWAP_* of the outer run must not change what runs.
    env = {k: v for k, v in env.items() if not k.startswith("HOTSWAP_")}
    args = [str(ROOT / a) if a.endswith(".py") else a for a in COMMANDS[name]]
    done = subprocess.run(
        [sys.executable, *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert sorted(os.listdir(scratch)) == [], done.stdout + done.stderr
