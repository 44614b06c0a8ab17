"""Forks that never inherit a half-done import, or a held lock, from one of hotswap's threads.

A forked child has only the thread that forked. When another thread of the parent was half way
through importing a module, the child inherits that module half initialised and its import lock
held by a thread that does not exist there: the child's first ``import`` of that module waits
forever. hotswap's threads import lazily (the fleet listener's handshake, a reload's first use
of the planner, the warm-up), and servers fork whenever they like (gunicorn's arbiter, a
``multiprocessing`` pool), so such a fork was a worker that never answered.

Before every fork, :func:`install`'s hook waits until no thread named ``hotswap-...`` is inside
an import, up to :data:`WAIT` seconds (then it logs which one and lets the fork go: a thread of
ours waiting on a lock the forking thread holds must not stop the program). The program's own
threads are left alone: when to fork beside them is the program's business.

hotswap's own locks are the same hazard: a child inherits a lock that another thread held at
the fork as held for ever, and hotswap's child code takes them at once (a forked fleet worker
reads the settings, logs events and takes the fleet's release as it joins, while the parent's
threads welcome the workers forked before it). A lock made with :func:`guarded` is taken by
the forking thread before the fork (in the same bounded wait), so the state it guards is whole
in the child, and released after it on both sides; one that could not be taken in time is
reset to free in the child, whose only thread does not hold it.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
import types
from typing import Protocol, TypeVar

__all__ = ("WAIT", "guarded", "importing", "install")

logger = logging.getLogger(__name__)

WAIT = 2.0
"""Seconds a fork waits at most for hotswap's threads to finish their imports and release
its guarded locks."""

_BOOTSTRAP = "<frozen importlib._bootstrap>"
_installed = False


class _Lock(Protocol):
    def acquire(self, blocking: bool = ..., timeout: float = ...) -> bool: ...
    def release(self) -> None: ...


L = TypeVar("L", bound=_Lock)

_guarded: list[tuple[str, _Lock]] = []  # in the order they were made
_taken: list[_Lock] = []  # taken by the fork under way


def guarded(lock: L, name: str) -> L:
    """``lock`` (a module-level ``threading.Lock``), taken by every fork and free in every
    child (see the module's documentation); ``name`` is what a late fork's warning says."""
    _guarded.append((name, lock))
    return lock


def importing(frame: types.FrameType | None) -> bool:
    """Whether a thread whose innermost frame is ``frame`` is inside an import (it holds, or
    waits for, a module's import lock)."""
    while frame is not None:
        code = frame.f_code
        if code.co_name == "_find_and_load" and code.co_filename == _BOOTSTRAP:
            return True
        frame = frame.f_back
    return False


def _ours_importing() -> list[str]:
    """The names of hotswap's threads (other than this one) that are inside an import."""
    me = threading.get_ident()
    ours = {
        thread.ident: thread.name
        for thread in threading.enumerate()
        if thread.name.startswith("hotswap") and thread.ident not in (None, me)
    }
    if not ours:
        return []
    frames = sys._current_frames()
    return [name for ident, name in ours.items() if importing(frames.get(ident))]


def _before_fork() -> None:
    deadline = time.monotonic() + WAIT
    _wait_for_imports(deadline)
    late = []
    # The last registered first: a module that holds its lock while calling into a lower
    # module (which takes its own) was imported, and registered, after that module.
    for name, lock in reversed(_guarded):
        if lock.acquire(timeout=max(deadline - time.monotonic(), 0.0)):
            _taken.append(lock)
        else:
            late.append(name)
    if late:
        logger.warning(
            "hotswap: forking while another thread holds hotswap's %s lock%s after %.1f s; "
            "the child takes %s anew",
            ", ".join(late),
            "" if len(late) == 1 else "s",
            WAIT,
            "it" if len(late) == 1 else "them",
        )


def _wait_for_imports(deadline: float) -> None:
    busy = _ours_importing()
    while busy:
        if time.monotonic() > deadline:
            logger.warning(
                "hotswap: forking while %s %s still importing after %.1f s; the child may "
                "wait for that import",
                ", ".join(busy),
                "is" if len(busy) == 1 else "are",
                WAIT,
            )
            return
        time.sleep(0.0005)
        busy = _ours_importing()


def _after_fork_in_parent() -> None:
    while _taken:
        _taken.pop().release()


def _after_fork_in_child() -> None:
    taken = {id(lock) for lock in _taken}
    _taken.clear()
    for _, lock in _guarded:
        if id(lock) in taken:
            lock.release()  # this thread took it, and is the child's only thread
        else:
            # Held by a thread the child does not have: free again (CPython's own at-fork
            # reset, which the threading and logging modules use on their locks).
            lock._at_fork_reinit()  # type: ignore[attr-defined]


def install() -> None:
    """Register the hook (once; where ``os.register_at_fork`` exists)."""
    global _installed
    if not _installed and hasattr(os, "register_at_fork"):
        os.register_at_fork(
            before=_before_fork,
            after_in_parent=_after_fork_in_parent,
            after_in_child=_after_fork_in_child,
        )
        _installed = True


install()  # first among hotswap's fork hooks: the others' child hooks take guarded locks
