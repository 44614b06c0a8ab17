"""Lowering the GIL switch interval for a while, and giving the program its own back; pausing
the cyclic garbage collector while hotswap builds syntax trees.

Behind a CPU-bound thread, every other thread waits up to one switch interval (5 ms by default)
each time it wants the GIL back: after a file read, a lock, a thread hop. hotswap lowers the
interval while its work is under way (see the watcher and the transaction for the figures).

Without a GIL (a free-threaded build, 3.13t/3.14t, with the GIL off) threads run in parallel
and hand nothing over: the interval means nothing there, and it is left as the program set it.
"""

from __future__ import annotations

import gc
import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from hotswap._ops import forks as _forks

__all__ = ("Lowered", "collector_paused", "gil_enabled")

_collector_lock = _forks.guarded(threading.Lock(), "collector pause")
_collector_users = 0
_collector_was_enabled = False


def _after_fork_in_child() -> None:
    # The threads that paused the collector did not come along: they will never resume it.
    global _collector_users
    if _collector_users:
        _collector_users = 0
        if _collector_was_enabled:
            gc.enable()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def gil_enabled() -> bool:
    """Whether this interpreter runs with a GIL now (always, before Python 3.13)."""
    probe = getattr(sys, "_is_gil_enabled", None)
    return True if probe is None else bool(probe())


class Lowered:
    """The switch interval lowered to at most ``seconds`` until :meth:`restore`.

    Does nothing when the interval is already that short, or when there is no GIL. ``restore``
    gives back the interval found, unless something else set another one meanwhile (the
    program's choice wins).
    """

    def __init__(self, seconds: float) -> None:
        self._saved: float | None = None
        self._ours = 0.0
        if not gil_enabled():
            return
        current = sys.getswitchinterval()
        if current > seconds:
            sys.setswitchinterval(seconds)
            self._saved = current
            # Stored in microseconds: compare with what reads back, not with what was asked.
            self._ours = sys.getswitchinterval()

    def restore(self) -> None:
        if self._saved is not None and sys.getswitchinterval() == self._ours:
            sys.setswitchinterval(self._saved)
        self._saved = None


@contextmanager
def collector_paused() -> Iterator[None]:
    """No cyclic garbage collection inside: planning allocates many small objects that live
    until it ends (the statements' syntax trees and analyses), and the collections they would
    set off walk all of them, again and again (a third of a whole-module rewrite's time).

    It also makes building a syntax tree a step no other thread comes into: the collector is
    the only way Python code (finalizers, callbacks), and so a thread switch, runs while the
    interpreter turns a parse into ``ast`` objects. Before 3.13 that conversion counts its
    depth in state all threads share, and two conversions interleaved fail with "SystemError:
    AST constructor recursion depth mismatch" (gh-106905).

    Pauses taken by several threads at once (the reload, the read-ahead of a huge file, the
    warm-up) are counted: the collector resumes when the last one ends, if it ran before the
    first one began.
    """
    global _collector_users, _collector_was_enabled
    with _collector_lock:
        if _collector_users == 0:
            _collector_was_enabled = gc.isenabled()
            if _collector_was_enabled:
                gc.disable()
        _collector_users += 1
    try:
        yield
    finally:
        with _collector_lock:
            _collector_users -= 1
            if _collector_users == 0 and _collector_was_enabled:
                gc.enable()
