"""Automatic rollback on failing health: ``configure(auto_rollback={...})``.

After each committed reload, the module's new version is *watched* for ``window`` seconds:
requests through the ASGI/WSGI middleware and calls of the module's ``@reloadable`` functions
are counted, with their errors (an exception escaping, an HTTP 5xx). Once it has ``min_calls``
calls, a version whose error rate exceeds ``max_error_rate``, and the rate its predecessor had
when it was watched, is rolled back to the previous version as ``rollback()`` would, reported
as a result with ``kind == "rollback"`` and a ``reason`` giving the figures.

The previous version's rate is known when it was itself watched (it came from a reload while
auto rollback was on); otherwise only the bound decides.
"""

from __future__ import annotations

import logging
import threading
import time

from hotswap._config import settings as _config
from hotswap._ops import events as _events
from hotswap._ops import forks as _forks
from hotswap._ops.events import ReloadResult
from hotswap._release import routing as _routing

__all__ = ("figures", "install", "shared")

logger = logging.getLogger(__name__)

_lock = _forks.guarded(threading.Lock(), "health")
_open: dict[str, _Window] = {}
_last_rate: dict[str, tuple[int, float]] = {}  # module -> (version, error rate when watched)
_installed = False
# Part of a fleet: the windows count, and the fleet decides on every process's sums.
_shared = False


def shared(on: bool) -> None:
    """``on``: this process's windows count but never decide (a fleet decides from the
    :func:`figures` of all its processes); off: each window decides alone again."""
    global _shared
    _shared = on


def figures() -> dict[str, dict[str, float]]:
    """Module name -> ``version``, ``calls`` and ``errors`` of its open window."""
    with _lock:
        windows = list(_open.values())
    out: dict[str, dict[str, float]] = {}
    for window in windows:
        with window._lock:
            counted = window.figures
            out[window.module] = {
                "version": window.version,
                "calls": counted.calls,
                "errors": counted.errors,
            }
    return out


class _Window:
    """One committed version under watch."""

    def __init__(self, module: str, version: int, bound: _config.AutoRollback) -> None:
        self.module = module
        self.version = version
        self.bound = bound
        self.figures = _routing.Figures()
        self.deadline = time.monotonic() + bound.window
        previous = _last_rate.get(module)
        self.previous = previous[1] if previous is not None else None
        self._lock = threading.Lock()
        self._decided = False
        self._timer = threading.Timer(bound.window, self.close)
        self._timer.daemon = True

    def end(self, ok: bool, duration: float) -> None:
        """Count a unit or a call (hotswap._release.routing.Watch)."""
        if time.monotonic() > self.deadline:
            return
        with self._lock:
            if self._decided:
                return
            self.figures.add(ok, duration)
            figures, bound = self.figures, self.bound
            rate = figures.error_rate
            if _shared:
                return
            failing = figures.calls >= bound.min_calls and rate > bound.max_error_rate
            if not failing or (self.previous is not None and rate <= self.previous):
                return
            self._decided = True
        before = (
            "no error rate is known for the version before"
            if self.previous is None
            else f"the version before had {self.previous:.3f}"
        )
        reason = (
            f"error rate {rate:.3f} > {bound.max_error_rate} over {figures.calls} calls "
            f"within {bound.window:g} s of v{self.version} ({before})"
        )
        threading.Thread(
            target=_roll_back, args=(self, reason), name="hotswap-auto-rollback", daemon=True
        ).start()

    def close(self) -> None:
        """The window ended (or a newer version replaced it): stop counting."""
        self._timer.cancel()
        with _lock:
            if _open.get(self.module) is not self:
                return
            del _open[self.module]
            _routing.set_watches(tuple(_open.values()))
            # The rate a version had while it stayed live: the bar for the next one (not the
            # rate of one this window rolled back).
            if self.figures.calls and not self._decided:
                _last_rate[self.module] = (self.version, self.figures.error_rate)
        _routing.release_entries(self.module)


def _roll_back(window: _Window, reason: str) -> None:
    from hotswap._engine import transaction as _transaction

    window.close()
    status = _transaction.module_statuses().get(window.module)
    if status is None or status.version != window.version:
        return  # a newer version is live already: it has its own window
    logger.warning("hotswap: %s: rolling back v%d: %s", window.module, window.version, reason)
    result = _transaction.rollback(window.module, reason=f"auto rollback: {reason}", why="health")
    _events.announce(result)


def _on_result(result: ReloadResult) -> None:
    if not result.ok or result.kind not in ("reload", "reset", "rollback"):
        return
    if result.kind != "rollback" and not (result.changes or result.dependents):
        return  # nothing new runs
    previous = _open.get(result.module)
    if previous is not None:
        previous.close()
    bound = _config.current().auto_rollback
    if bound is None or result.kind == "rollback":
        return
    window = _Window(result.module, result.version, bound)
    with _lock:
        _open[result.module] = window
        _routing.set_watches(tuple(_open.values()))
    _routing.wrap_entries(result.module)
    window._timer.start()


def install() -> None:
    """Watch every committed reload from now on (idempotent; costs one call per result while
    auto rollback is off)."""
    global _installed
    with _lock:
        if _installed:
            return
        _installed = True
    _events.subscribe(_on_result)


def reset() -> None:
    """Close every window and forget the rates (for tests)."""
    for window in list(_open.values()):
        window.close()
    _last_rate.clear()
