"""A git checkout lands as one change set, through the real watcher (issue 25, point 11)."""

from __future__ import annotations

import subprocess

import pytest

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
