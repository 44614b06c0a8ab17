"""``enable()`` applies a save made before the watcher started: a real process imports a
module, its file is saved, then ``enable()`` starts the watcher (a Celery child recycled after
a save, a program that enables late). With bytecode writing off and on."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
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


def run_script(script: Path, folder: Path, pyc: str) -> subprocess.CompletedProcess[str]:
    """Run ``script folder`` in a new interpreter, with bytecode writing off or on."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    if pyc == "pyc-off":
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    return subprocess.run(
        [sys.executable, str(script), str(folder)],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


@pytest.mark.parametrize("pyc", ["pyc-off", "pyc-on"])
def test_enable_applies_a_save_made_before_the_watcher_started(tmp_path: Path, pyc: str) -> None:
    (tmp_path / "mod.py").write_text(MOD)
    (tmp_path / "same.py").write_text("def f():\n    return 1\n")
    (tmp_path / "script.py").write_text(SCRIPT)
    done = run_script(tmp_path / "script.py", tmp_path, pyc)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "applied 2", done.stderr  # its state kept
    line = next(x for x in done.stderr.splitlines() if "older code than their file" in x)
    assert line.endswith("applying: mod"), line  # the unchanged module is not named


ROLLBACK_SCRIPT = """
import pathlib, sys, time
folder = pathlib.Path(sys.argv[1])
sys.path.insert(0, str(folder))
import hotswap
import mod, other

def wait(check, what):
    deadline = time.monotonic() + 60
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)

def save(name, old, new):
    path = folder / f"{name}.py"
    path.write_text(path.read_text().replace(old, new))

# v2 applied without the watcher, then rolled back: the file still says v2.
save("mod", '"v1"', '"v2"')
assert hotswap.reload("mod").ok and mod.version() == "v2"
assert hotswap.rollback("mod").ok and mod.version() == "v1"

# A watcher started now does not take the file for a save made before it.
hotswap.enable(paths=[str(folder)])
save("other", "1", "2")
wait(lambda: other.f() == 2, "the other module's save")
print("after enable:", mod.version(), flush=True)

# An event that brings the content the rollback left (a late event of that save, the same
# bytes written again) is no save either; only a change is.
(folder / "mod.py").write_bytes((folder / "mod.py").read_bytes())
save("other", "2", "3")
wait(lambda: other.f() == 3, "the other module's second save")
print("after rewrite:", mod.version(), flush=True)
save("mod", '"v2"', '"v3"')
wait(lambda: mod.version() == "v3", "the next save of mod")
print("after save:", mod.version(), flush=True)
hotswap.disable()
"""


@pytest.mark.parametrize("pyc", ["pyc-off", "pyc-on"])
def test_a_rollback_sticks_until_the_next_save(tmp_path: Path, pyc: str) -> None:
    app = tmp_path / "app"  # the script stays outside: it imports mod, it is no importer
    app.mkdir()
    (app / "mod.py").write_text(MOD)
    (app / "other.py").write_text("def f():\n    return 1\n")
    (tmp_path / "script.py").write_text(ROLLBACK_SCRIPT)
    done = run_script(tmp_path / "script.py", app, pyc)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "after enable: v1",
        "after rewrite: v1",
        "after save: v3",
    ], done.stderr


def test_enable_looks_for_earlier_saves_off_the_callers_thread(
    reloading, watch, monkeypatch: pytest.MonkeyPatch
) -> None:
    # With thousands of modules loaded the look (every recorded module's file hashed) cost
    # enable() milliseconds: the watcher's worker does it before its first change set, and
    # the save made before enable() still applies.
    from hotswap._watch import reconcile

    module = reloading.load("early_save", "def version():\n    return 'v1'\n")
    reloading.path("early_save").write_text("def version():\n    return 'v2'\n")
    threads: list[str] = []
    stale = reconcile.stale

    def spy(roots):  # type: ignore[no-untyped-def]
        threads.append(threading.current_thread().name)
        return stale(roots)

    monkeypatch.setattr(reconcile, "stale", spy)
    seen = watch()
    seen.wait_count(1)
    assert seen.results[0].ok, seen.results[0].error
    assert module.version() == "v2"
    assert threads == ["hotswap-worker"]
