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
from collections.abc import Sequence

from hotswap._engine import transaction as _transaction
from hotswap._plan import sources as _sources

__all__ = ("runs", "stale")


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
