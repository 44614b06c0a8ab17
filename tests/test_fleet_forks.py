"""Forked processes and the watcher: a plain ``hotswap.enable()`` does not follow a ``fork()``
silently, and a fleet worker never watches files by itself."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

FORKED = """
import logging
import os
import sys

import hotswap

logging.basicConfig(format="%(message)s")
hotswap.enable([sys.argv[1]])
pid = os.fork()
if pid == 0:
    print("child watching:", hotswap.status().watching, flush=True)
    os._exit(0)
os.waitpid(pid, 0)
print("parent watching:", hotswap.status().watching, flush=True)
hotswap.disable()
"""

WORKER = """
import logging
import os
import sys

import hotswap
from hotswap import _api

logging.basicConfig(format="%(message)s", level=logging.INFO)
_api.coordinate()
pid = os.fork()
if pid == 0:
    reloader = hotswap.enable([sys.argv[1]])
    status = hotswap.status()
    print("worker:", status.fleet, reloader.running, status.watching, flush=True)
    os._exit(0)
os.waitpid(pid, 0)
print("coordinator:", hotswap.status().fleet, flush=True)
_api.end_fleet()
"""


def run(source: str, folder: Path) -> subprocess.CompletedProcess[str]:
    script = folder / "script.py"
    script.write_text(textwrap.dedent(source))
    return subprocess.run(
        [sys.executable, str(script), str(folder)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )


def test_fleet_fork_of_a_watching_process_says_its_watcher_is_gone(tmp_path: Path) -> None:
    done = run(FORKED, tmp_path)
    assert "child watching: False" in done.stdout
    assert "parent watching: True" in done.stdout
    assert "whose watcher does not run in it" in done.stderr, done.stderr


def test_fleet_worker_enable_does_not_watch(tmp_path: Path) -> None:
    done = run(WORKER, tmp_path)
    assert "worker: worker False False" in done.stdout, done.stdout + done.stderr
    assert "coordinator: coordinator" in done.stdout
    assert "the coordinator watches" in done.stderr
