"""Lowering the GIL switch interval for a while, and giving the program its own back.

Behind a CPU-bound thread, every other thread waits up to one switch interval (5 ms by default)
each time it wants the GIL back: after a file read, a lock, a thread hop. hotswap lowers the
interval while its work is under way (see the watcher and the transaction for the figures).

Without a GIL (a free-threaded build, 3.13t/3.14t, with the GIL off) threads run in parallel
and hand nothing over: the interval means nothing there, and it is left as the program set it.
"""

from __future__ import annotations

import sys

__all__ = ("Lowered", "gil_enabled")


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
