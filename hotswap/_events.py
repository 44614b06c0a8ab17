"""Result and status types, reload listeners, metrics and message helpers."""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

__all__ = (
    "Changes",
    "Metrics",
    "ModuleStatus",
    "ReloadResult",
    "Status",
    "describe",
    "emit",
    "location",
    "subscribe",
    "unsubscribe",
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Changes:
    """What a reload changed, by qualified name (``f``, ``Cls``, ``Cls.method``).

    Attributes:
        added: names the new source defines and the old did not.
        changed: names defined by both whose definition (or what it depends on) changed.
        removed: names the old source defined and the new does not.
        replaced: classes that could not be updated in place (an Enum, a changed metaclass,
            bases or ``__slots__``) and were replaced by new class objects.
    """

    added: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    replaced: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.added or self.changed or self.removed or self.replaced)

    def summary(self) -> str:
        """A short human-readable list, e.g. ``~charge +refund -legacy``."""
        parts = [f"+{n}" for n in self.added]
        parts += [f"~{n}" for n in self.changed]
        parts += [f"-{n}" for n in self.removed]
        parts += [f"!{n} (replaced)" for n in self.replaced]
        return " ".join(parts) if parts else "no changes"


@dataclass(frozen=True)
class ReloadResult:
    """The outcome of one reload or rollback attempt.

    Attributes:
        module: the module's name.
        ok: True when the new code is live (or the content had not changed).
        version: the module's version after the attempt: the imported module is version 1 and
            each applied reload adds one; a failure or a no-op leaves it.
        changes: what changed (empty for a failure or a no-op).
        error: None, or the exception that made the attempt fail; its message names the module,
            the file, the line and why.
        rolled_back: True when the failure came after new code began to execute, so the
            snapshot was restored; False for a rejection before that.
        duration: seconds the attempt took.
        warnings: compatibility findings applied anyway under policy ``"warn"``.
        kind: ``"reload"`` or ``"rollback"``.
    """

    module: str
    ok: bool
    version: int
    changes: Changes = field(default_factory=Changes)
    error: BaseException | None = None
    rolled_back: bool = False
    duration: float = 0.0
    warnings: tuple[str, ...] = ()
    kind: str = "reload"

    def __bool__(self) -> bool:
        return self.ok


@dataclass(frozen=True)
class ModuleStatus:
    """What hotswap knows of one module it has reloaded.

    Attributes:
        name: the module's name.
        version: the live version.
        source_hash: sha256 of the live source, or None when hotswap has not read it.
        last_result: the result of the last attempt on this module.
        history: the version numbers kept for rollback, oldest first.
    """

    name: str
    version: int
    source_hash: str | None
    last_result: ReloadResult | None
    history: tuple[int, ...]


@dataclass(frozen=True)
class Status:
    """A snapshot of hotswap's state, from :func:`hotswap.status`.

    Attributes:
        modules: module name -> :class:`ModuleStatus`, for every module hotswap has reloaded.
        watching: whether the watcher is running.
        reloads: reload attempts so far (rollbacks included).
        failures: attempts that failed.
        last_duration: seconds of the last attempt (0.0 before any).
        total_duration: seconds spent in all attempts.
    """

    modules: Mapping[str, ModuleStatus]
    watching: bool
    reloads: int
    failures: int
    last_duration: float
    total_duration: float


class Metrics:
    """Counters and timings of reload attempts; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reloads = 0
        self.failures = 0
        self.last_duration = 0.0
        self.total_duration = 0.0

    def record(self, result: ReloadResult) -> None:
        with self._lock:
            self.reloads += 1
            self.failures += not result.ok
            self.last_duration = result.duration
            self.total_duration += result.duration


_listeners: list[Callable[[ReloadResult], object]] = []
_listeners_lock = threading.Lock()


def subscribe(callback: Callable[[ReloadResult], object]) -> None:
    """Call ``callback(result)`` after every reload or rollback attempt."""
    with _listeners_lock:
        _listeners.append(callback)


def unsubscribe(callback: Callable[[ReloadResult], object]) -> None:
    """Stop calling ``callback``; unknown callbacks are ignored."""
    with _listeners_lock, contextlib.suppress(ValueError):
        _listeners.remove(callback)


def emit(result: ReloadResult) -> None:
    """Tell every listener about ``result``; a listener's exception is logged, never raised."""
    with _listeners_lock:
        listeners = tuple(_listeners)
    for callback in listeners:
        call_safely(callback, result)


def call_safely(callback: Callable[[ReloadResult], object], result: ReloadResult) -> None:
    """Call a user callback; log anything it raises (SystemExit included) instead of raising.

    KeyboardInterrupt is still raised: the user asked the program to stop.
    """
    try:
        callback(result)
    except KeyboardInterrupt:
        raise
    except BaseException:
        logger.exception("hotswap: reload callback %r raised", callback)


def display_path(filename: str) -> str:
    """``filename`` relative to the working directory when it lies below it."""
    try:
        relative = os.path.relpath(filename)
    except ValueError:  # another drive on Windows
        return filename
    return filename if relative.startswith("..") else relative


def location(module: str, filename: str | None, lineno: int | None = None) -> str:
    """``pkg.mod (pkg/mod.py:14)``: how every message says where."""
    if filename is None:
        return module
    where = display_path(filename)
    if lineno is not None:
        where = f"{where}:{lineno}"
    return f"{module} ({where})"


def describe(result: ReloadResult) -> str:
    """One readable status line for a result, as the CLI prints it."""
    ms = result.duration * 1000
    if result.ok and result.kind == "rollback":
        return f"{result.module}: rolled back, v{result.version} live ({ms:.1f} ms)"
    if result.ok:
        if not result.changes:
            return f"{result.module}: unchanged (v{result.version}, {ms:.1f} ms)"
        summary = result.changes.summary()
        return f"{result.module}: v{result.version} live, {summary} ({ms:.1f} ms)"
    state = "rolled back" if result.rolled_back else "rejected"
    return f"{result.module}: {state}, still v{result.version}: {result.error} ({ms:.1f} ms)"
