"""Forks that never inherit a half-done import from one of hotswap's threads.

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
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
import types

__all__ = ("WAIT", "importing", "install")

logger = logging.getLogger(__name__)

WAIT = 2.0
"""Seconds a fork waits at most for hotswap's threads to finish their imports."""

_BOOTSTRAP = "<frozen importlib._bootstrap>"
_installed = False


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


def install() -> None:
    """Register the hook (once; where ``os.register_at_fork`` exists)."""
    global _installed
    if not _installed and hasattr(os, "register_at_fork"):
        os.register_at_fork(before=_before_fork)
        _installed = True
