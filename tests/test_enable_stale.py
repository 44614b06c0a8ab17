"""``enable()`` applies a save made before the watcher started: a real process imports a
module, its file is saved, then ``enable()`` starts the watcher (a Celery child recycled after
a save, a program that enables late). With bytecode writing off and on."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.watcher

SCRIPT = """
import logging, pathlib, sys, time
logging.basicConfig(level=logging.INFO, format="%(message)s")
folder = pathlib.Path(sys.argv[1])
sys.path.insert(0, str(folder))
import hotswap
import mod, same
mod.hit()
(folder / "mod.py").write_text((folder / "mod.py").read_text().replace('"v1"', '"v2"'))
hotswap.enable(paths=[str(folder)])
deadline = time.monotonic() + 60
while mod.version() != "v2":
    assert time.monotonic() < deadline, "the earlier save was never applied"
    time.sleep(0.02)
print("applied", mod.hit(), flush=True)
hotswap.disable()
"""

MOD = """COUNT = {"n": 0}


def version():
    return "v1"


def hit():
    COUNT["n"] += 1
    return COUNT["n"]
"""


@pytest.mark.parametrize("pyc", ["pyc-off", "pyc-on"])
def test_enable_applies_a_save_made_before_the_watcher_started(tmp_path: Path, pyc: str) -> None:
    (tmp_path / "mod.py").write_text(MOD)
    (tmp_path / "same.py").write_text("def f():\n    return 1\n")
    (tmp_path / "script.py").write_text(SCRIPT)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    if pyc == "pyc-off":
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    done = subprocess.run(
        [sys.executable, str(tmp_path / "script.py"), str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "applied 2", done.stderr  # its state kept
    line = next(x for x in done.stderr.splitlines() if "older code than their file" in x)
    assert line.endswith("applying: mod"), line  # the unchanged module is not named
