"""Loaded modules whose file differs from the code they run: saved before the watcher started.

The watcher takes the files as it finds them when it starts; a save made before (between the
import and ``enable()``, or while a process that had no watcher was being replaced) would
never apply. :func:`stale` finds those modules, for ``enable()`` to hand them to the watcher as
saves. What a module runs is known when hotswap saw it imported (the bytes compiled, recorded
by :mod:`hotswap._plan.sources`) or reloaded it (its ``source_hash``); a module imported before
hotswap was, and never reloaded, is not checked. A file still holding the source a rollback
moved away from is not stale: the rollback sticks until the next save.
"""

from __future__ import annotations

import hashlib
import os
import sys
import time
from collections.abc import Callable, Sequence

from hotswap._engine import transaction as _transaction
from hotswap._plan import sources as _sources

__all__ = ("Announced", "runs", "stale")

# The look runs on the watcher's thread once the watches are live: a file whose event came
# meanwhile is that event's. The events on their way are awaited until none was for
# _QUIET, at most _LIMIT (seconds; only when such files are found).
_QUIET = 0.005
_LIMIT = 0.1


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def runs(name: str, path: str) -> str | None:
    """The SHA-256 of the source module ``name`` (from ``path``) runs, as far as hotswap
    knows it (reloaded, or imported while hotswap recorded the bytes it compiled)."""
    status = _transaction.module_statuses().get(name)
    if status is not None and status.source_hash is not None:
        return status.source_hash
    recorded = _sources.peek(path)
    return None if recorded is None else _digest(recorded)


def stale(roots: Sequence[str]) -> list[tuple[str, str]]:
    """(module name, file) of each loaded module under ``roots`` whose file's bytes are not the
    code it runs, as far as hotswap knows what it runs."""
    folders = [os.path.join(os.path.abspath(root), "") for root in roots]
    statuses = _transaction.module_statuses()
    known = _sources.recorded()
    found = []
    for name, module in list(sys.modules.copy().items()):
        file = getattr(module, "__file__", None)
        if not isinstance(file, str) or not file.endswith(".py"):
            continue
        path = _absolute(file)
        status = statuses.get(name)
        if status is None and path not in known:
            continue  # not known: imported before hotswap (most modules of a big program)
        if not any(path.startswith(folder) for folder in folders):
            continue
        ran = status.source_hash if status is not None else None
        if ran is None:
            recorded = _sources.peek(path)
            if recorded is None:
                continue  # not known: imported before hotswap
            ran = _digest(recorded)
        try:
            with open(path, "rb") as handle:
                now = _digest(handle.read())
        except OSError:
            continue
        if now not in (ran, _transaction.left_by_rollback(name)):
            found.append((name, path))
    return found


def _absolute(file: str) -> str:
    """``os.path.abspath(file)``, without its cost for a path that is already absolute and
    normal (a module's ``__file__`` nearly always is; enable() looks at every module)."""
    if file.startswith("/") and "/." not in file and "//" not in file and os.sep == "/":
        return file
    return os.path.abspath(file)


class Announced:
    """The paths events came for since the watcher started, until the look for files saved
    before it is done: such a file is its event's to apply, not taken twice."""

    def __init__(self) -> None:
        self._paths: set[str] | None = set()

    def add(self, path: str) -> None:
        paths = self._paths
        if paths is not None:
            paths.add(path)

    def close(self) -> None:
        self._paths = None

    def unannounced(self, paths: list[str], undispatched: Callable[[], bool]) -> list[str]:
        """Those of ``paths`` that no event came for, once the events on their way arrived
        (``undispatched``: whether any is). A file read with new bytes has its events in the
        kernel's queue already (inotify queues them as the write happens); a thread between
        two queues shows in neither, hence the quiet time."""
        now = time.monotonic()
        deadline, quiet = now + _LIMIT, now + _QUIET
        while time.monotonic() < deadline:
            if undispatched():
                quiet = time.monotonic() + _QUIET
            elif time.monotonic() >= quiet:
                break
            time.sleep(0.0005)
        announced, self._paths = self._paths, None
        if announced is None:
            return paths
        return [p for p in paths if not {p, os.path.realpath(p)} & announced]
