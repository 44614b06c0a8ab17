"""A git checkout lands as one change set, through the real watcher (issue 25, point 11)."""

from __future__ import annotations

import logging
import os
import subprocess
import threading

import pytest

import hotswap
from hotswap._watch import watcher as _watcher

pytestmark = pytest.mark.watcher


def _git(root, *args: str) -> None:
    subprocess.run(["git", *args], cwd=root, check=True, capture_output=True, timeout=60)


def test_watcher_checkout_slower_than_the_window_is_one_change_set(project, watch, watcher_log):
    project.write("ck.cli", "def main():\n    return 'plain'\n")
    package = project.load("ck", "from ck.cli import main\n")
    cli = project.load("ck.cli", "def main():\n    return 'plain'\n")
    _git(project.root, "init", "-q")
    seen = watch(debounce=0.05)
    lock = project.root / ".git" / "index.lock"
    # What git does in a checkout: take the index lock, write the working tree (here with a
    # pause longer than the settle window between two files), rename the lock over the index.
    lock.write_bytes(b"")
    (project.root / "ck" / "cli.py").write_text(
        "from ck import UNICODE\n\n\ndef main():\n    return 'fancy' if UNICODE else 'plain'\n",
    )
    watcher_log.wait_for("git holds its index lock")  # the window passed: the set waits
    assert seen.results == []  # nothing applied half way through the checkout
    (project.root / "ck" / "__init__.py").write_text("UNICODE = True\nfrom ck.cli import main\n")
    lock.replace(project.root / ".git" / "index")
    seen.wait_for(lambda results: len(results) >= 2)
    assert all(r.ok for r in seen.results), [str(r.error) for r in seen.results]
    assert (package.UNICODE, cli.main()) == (True, "fancy")


def test_watcher_checkout_waits_for_its_files_still_between_watchdogs_threads(
    project, watch, change_sets, monkeypatch
):
    # On a loaded machine a file's event can be on its way between watchdog's threads, where
    # no queue shows it, when git lets the index lock go. Every file git wrote is complete
    # then: the set takes the loaded files written since git took the lock, events or not.
    project.write("cw.cli", "def main():\n    return 'plain'\n")
    package = project.load("cw", "from cw.cli import main\n")
    cli = project.load("cw.cli", "def main():\n    return 'plain'\n")
    project.load("cw.spaced", "VALUE = 1\n")
    _git(project.root, "init", "-q")
    held, released = threading.Event(), threading.Event()
    real_locked = _watcher.locked

    def locked(locks: tuple[str, ...]) -> bool:
        now = real_locked(locks)
        if now:
            held.set()
        elif held.is_set():
            released.set()
        return now

    real_notify = _watcher.Reloader.notify

    def notify(self: _watcher.Reloader, path: str, why: str | None) -> None:
        if os.path.basename(path) in ("__init__.py", "spaced.py"):
            released.wait(10)  # in flight until the watcher saw the lock go
        real_notify(self, path, why)

    monkeypatch.setattr(_watcher, "locked", locked)
    monkeypatch.setattr(_watcher.Reloader, "notify", notify)
    monkeypatch.setattr(_watcher.Reloader, "_undispatched", lambda self: False)
    seen = watch(debounce=0.05)
    lock = project.root / ".git" / "index.lock"
    lock.write_bytes(b"")
    (project.root / "cw" / "cli.py").write_text(
        "from cw import UNICODE\n\n\ndef main():\n    return 'fancy' if UNICODE else 'plain'\n",
    )
    assert held.wait(10)  # the set waits for the checkout
    (project.root / "cw" / "__init__.py").write_text("UNICODE = True\nfrom cw.cli import main\n")
    (project.root / "cw" / "spaced.py").write_text("\nVALUE = 1\n")  # (lines moved only)
    lock.replace(project.root / ".git" / "index")
    seen.wait_for(lambda results: len(results) >= 3)
    assert sorted((r.module, r.ok) for r in seen.results) == [
        ("cw", True),
        ("cw.cli", True),
        ("cw.spaced", True),
    ], [str(r.error) for r in seen.results]
    assert [sorted(names) for names in change_sets.sets] == [["cw", "cw.cli", "cw.spaced"]]
    assert (package.UNICODE, cli.main()) == (True, "fancy")
    # A file of the checkout that changed nothing that runs is reported as its save would be.
    assert [bool(r.changes) for r in seen.results if r.module == "cw.spaced"] == [False]


def test_watcher_checkout_split_in_two_sets_applies_the_failed_one_after_the_other(
    project, watch, bytecode
):
    # A checkout the watcher cut in two: the submodule, which now needs a name its package
    # gains, came first and failed; the package came in a later set. Once that one commits,
    # the failed set (its file unchanged since) is tried again and applies.
    project.write("sp.cli", "def main():\n    return 'plain'\n")
    package = project.load("sp", "from sp.cli import main\n")
    cli = project.load("sp.cli", "def main():\n    return 'plain'\n")
    # debounce=0: every file is a set of its own, and no set is merged into the next one.
    seen = watch(debounce=0)
    project.path("sp.cli").write_text(
        "from sp import UNICODE\n\n\ndef main():\n    return 'fancy' if UNICODE else 'plain'\n"
    )
    seen.wait_for(lambda results: any(r.module == "sp.cli" and not r.ok for r in results))
    project.path("sp").write_text("UNICODE = True\nfrom sp.cli import main\n")
    seen.wait_for(lambda results: any(r.module == "sp.cli" and r.ok for r in results))
    assert [(r.module, r.ok) for r in seen.results] == [
        ("sp.cli", False),
        ("sp", True),
        ("sp.cli", True),
    ], [str(r.error) for r in seen.results]
    assert (package.UNICODE, cli.main(), package.main()) == (True, "fancy", "fancy")


def test_watcher_broken_set_is_retried_once_per_later_commit_and_reported_once(
    project, watch, change_sets, caplog, events, bytecode
):
    calls = change_sets
    broken = project.load("brk", "VALUE = 1\n")
    other = project.load("other", "VALUE = 1\n")
    probe = project.load("probe", "VALUE = 1\n")
    seen = watch(debounce=0)
    project.path("brk").write_text("VALUE = 2\nraise RuntimeError('broken for good')\n")
    seen.wait_for(lambda results: any(r.module == "brk" for r in results))
    for n in (2, 3):
        project.path("other").write_text(f"VALUE = {n}\n")
        seen.wait_for(lambda results, n=n: sum(r.module == "other" for r in results) == n - 1)
    project.path("probe").write_text("VALUE = 2\n")
    seen.wait_for(lambda results: any(r.module == "probe" for r in results))
    # Tried again after each later commit, by itself; its failure said once.
    assert calls.sets[:6] == [["brk"], ["other"], ["brk"], ["other"], ["brk"], ["probe"]]
    assert [r.module for r in seen.results if not r.ok] == ["brk"]
    warned = [r for r in caplog.records if r.levelno >= logging.WARNING and "brk" in r.message]
    assert len(warned) == 1, [r.message for r in warned]
    failed = [r.module for r in events.of(hotswap.ReloadResult) if not r.ok]
    detected = [e.modules for e in events.of(hotswap.ChangeDetected)]
    assert (failed, detected.count(("brk",))) == (["brk"], 1)
    assert (broken.VALUE, other.VALUE, probe.VALUE) == (1, 3, 2)
