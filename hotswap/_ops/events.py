"""Result and status types, events and their listeners, metrics and message helpers.

Two kinds of listeners: :func:`subscribe` (kept for existing callers) hears only the results of
reload and rollback attempts; :func:`listen` (public as :func:`hotswap.subscribe`) hears every
event, results included, in the order they happen.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from hotswap._ops import forks as _forks
from hotswap._ops.event_types import (
    CanaryCall,
    CanaryDecision,
    ChangeDetected,
    Changes,
    Planned,
    RolledBack,
    WatcherState,
)

__all__ = (
    "CanaryCall",
    "CanaryDecision",
    "ChangeDetected",
    "Changes",
    "Dependent",
    "Event",
    "Metrics",
    "ModuleStatus",
    "Planned",
    "ReloadResult",
    "RolledBack",
    "Skipped",
    "Status",
    "WatcherState",
    "announce",
    "describe",
    "emit",
    "listen",
    "location",
    "log_extra",
    "on_announce",
    "outcome",
    "publish",
    "subscribe",
    "unsubscribe",
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Dependent:
    """Another module whose statements ran again because of a change (DESIGN §5.2).

    Attributes:
        module: its name.
        lines: the first line of each of its statements that ran, in source order.
    """

    module: str
    lines: tuple[int, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"module": self.module, "lines": list(self.lines)}


@dataclass(frozen=True)
class Skipped:
    """A changed statement that was deliberately not run.

    Attributes:
        line: its first line in the new source.
        reason: why, e.g. ``running since line 12: restart to apply``.
        names: the names it binds, if any.
    """

    line: int
    reason: str
    names: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"line": self.line, "reason": self.reason, "names": list(self.names)}


def _text(value: object) -> str | None:
    return None if value is None else os.fsdecode(value) if isinstance(value, bytes) else str(value)


def _error_dict(error: BaseException | None) -> dict[str, Any] | None:
    """``error`` as JSON-serialisable values: ``type``, ``message``, ``module``,
    ``filename``, ``lineno``, ``cause`` (the original exception's ``type`` and ``message``, or
    None) and what the kind of error adds (``findings``, ``names``, ``reason``, ``key``).

    Any exception can land here (a listener may build a result by hand), and its attributes
    can be anything: each value is made a string or an int, never passed through as it is.
    """
    if error is None:
        return None
    lineno = getattr(error, "lineno", None)
    cause = error.__cause__
    data: dict[str, Any] = {
        "type": type(error).__name__,
        "message": str(error),
        "module": _text(getattr(error, "module", None)),
        "filename": _text(getattr(error, "filename", None)),
        "lineno": lineno if isinstance(lineno, int) else None,
        "cause": None if cause is None else {"type": type(cause).__name__, "message": str(cause)},
    }
    findings = getattr(error, "findings", None)
    if isinstance(findings, tuple):  # IncompatibleChangeError
        data["findings"] = [
            {
                "symbol": _text(getattr(f, "symbol", None)),
                "old": _text(getattr(f, "old", None)),
                "new": _text(getattr(f, "new", None)),
                "lineno": getattr(f, "lineno", None),
                "reason": _text(getattr(f, "reason", None)),
            }
            for f in findings
        ]
    names = getattr(error, "names", None)
    if isinstance(names, tuple):  # AuditError: (line, what, name)
        data["names"] = [[int(line), str(what), str(name)] for line, what, name in names]
    for extra in ("reason", "key"):  # SignatureError, ConfigError
        if isinstance(getattr(error, extra, None), str):
            data[extra] = getattr(error, extra)
    return data


@dataclass(frozen=True)
class ReloadResult:
    """The outcome of one reload or rollback attempt on one module.

    Attributes:
        module: the module's name.
        ok: True when the new code is live (or the content had not changed).
        version: the module's version after the attempt: the imported module is version 1 and
            each applied change adds one; a failure or a no-op leaves it.
        changes: what changed (empty for a failure or a no-op).
        error: None, or the exception that made the attempt fail; its message names the module,
            the file, the line and why; an exception raised by the code is its ``__cause__``.
        rolled_back: True when the failure came after new code began to execute, so the
            snapshot was restored; False for a rejection before that.
        duration: seconds the attempt took.
        warnings: compatibility findings applied anyway under policy ``"warn"``.
        kind: ``"reload"`` (a change applied, or a failed attempt), ``"unchanged"`` (nothing
            to apply: the same content, or only comments and layout changed), ``"reset"``
            (``force=True``: the whole module ran again), ``"rollback"``, or ``"canary"`` (a
            canary started, ``ok``, or was aborted or could not start, not ``ok``; its
            promotion is a ``"reload"``).
        dependents: one :class:`Dependent` per other module whose statements ran again
            because of this change.
        skipped: changed statements deliberately not run (:class:`Skipped`), e.g. the running
            main loop of ``__main__``.
        reason: why the attempt was made or ended, when something decided it rather than a
            save: a canary's promotion or abort, an automatic rollback on failing health
            (``"auto rollback: error rate 0.120 > 0.05 over 60 calls within 30 s of v3 (the
            version before had 0.010)"``); else ``""``.
        epoch: the process's epoch after the attempt (see :attr:`Status.epoch`): a hash of
            the content of the code it runs, the same in every process that runs the same
            releases; ``""`` where no epoch was recorded.
    """

    event: ClassVar[str] = "result"

    module: str
    ok: bool
    version: int
    changes: Changes = field(default_factory=Changes)
    error: BaseException | None = None
    rolled_back: bool = False
    duration: float = 0.0
    warnings: tuple[str, ...] = ()
    kind: str = "reload"
    dependents: tuple[Dependent, ...] = ()
    skipped: tuple[Skipped, ...] = ()
    reason: str = ""
    epoch: str = ""

    def __bool__(self) -> bool:
        return self.ok

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict whose keys are the field names; ``error`` becomes a dict
        (type, message, module, filename, lineno, cause, and the error kind's own fields such
        as ``findings``) or None."""
        return {
            "module": self.module,
            "ok": self.ok,
            "version": self.version,
            "changes": self.changes.to_dict(),
            "error": _error_dict(self.error),
            "rolled_back": self.rolled_back,
            "duration": self.duration,
            "warnings": list(self.warnings),
            "kind": self.kind,
            "dependents": [d.to_dict() for d in self.dependents],
            "skipped": [s.to_dict() for s in self.skipped],
            "reason": self.reason,
            "epoch": self.epoch,
        }


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

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "source_hash": self.source_hash,
            "history": list(self.history),
            "last_result": None if self.last_result is None else self.last_result.to_dict(),
        }


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
        canaries: module name -> the :class:`~hotswap.Canary` running for it (the handle on
            a canary the watcher started: its ``stats``, ``promote()``, ``abort()``).
        epoch: the content identity of the code this process runs: a sha256 over the
            parent epoch and the (module name, sha256 of its bytes) pairs of each release
            committed since the process started (the genesis epoch before any). Processes
            that run the same releases report the same epoch; its first 12 characters are
            what logs and the ``x-hotswap-epoch`` header show.
        fleet: while this process is part of a fleet (``docs/fleets.md``): ``"coordinator"``
            or ``"worker"``; else ``""``.
        fleet_view: in a fleet, the fleet as its coordinator sees it, whichever process
            asked: ``workers`` (pid -> epoch), ``canaries`` (the fleet's canary: weight,
            the fleet's figures, each worker's), ``last`` (the last release's line),
            ``window`` (its mixed-version window, seconds) and ``health`` (its health
            window: the fleet's calls and error rate, the version before's); else None.
    """

    modules: Mapping[str, ModuleStatus]
    watching: bool
    reloads: int
    failures: int
    last_duration: float
    total_duration: float
    canaries: Mapping[str, Any] = field(default_factory=dict)
    epoch: str = ""
    fleet: str = ""
    fleet_view: Mapping[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict (DESIGN §4): ``watching``, ``reloads``, ``failures``,
        the durations, ``modules``: name -> version, source_hash, history, last_result,
        ``canaries``: name -> the running canary's ``to_dict()``, ``epoch``, ``fleet`` and
        ``fleet_view``."""
        return {
            "watching": self.watching,
            "reloads": self.reloads,
            "failures": self.failures,
            "last_duration": self.last_duration,
            "total_duration": self.total_duration,
            "modules": {name: m.to_dict() for name, m in self.modules.items()},
            "canaries": {name: c.to_dict() for name, c in self.canaries.items()},
            "epoch": self.epoch,
            "fleet": self.fleet,
            "fleet_view": None if self.fleet_view is None else dict(self.fleet_view),
        }


class Metrics:
    """Counters and timings of reload attempts; thread-safe."""

    def __init__(self, lock: threading.Lock | None = None) -> None:
        self._lock = threading.Lock() if lock is None else lock
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
_listeners_lock = _forks.guarded(threading.Lock(), "event listeners")


def subscribe(callback: Callable[[ReloadResult], object]) -> None:
    """Call ``callback(result)`` after every reload or rollback attempt (results only; see
    :func:`listen` for every event)."""
    with _listeners_lock:
        _listeners.append(callback)


def unsubscribe(callback: Callable[[ReloadResult], object]) -> None:
    """Stop calling ``callback``; unknown callbacks are ignored."""
    with _listeners_lock, contextlib.suppress(ValueError):
        _listeners.remove(callback)


def emit(result: ReloadResult, *, reason: str | None = None) -> None:
    """Tell every listener about ``result``; a listener's exception is logged, never raised.

    A result that restored earlier code (a requested rollback, or a failure rolled back to its
    snapshot) is preceded by a :class:`RolledBack` event; ``reason`` names why for a rollback
    result (default ``"requested"``; an automatic rollback passes ``"health"``, say).
    """
    with _listeners_lock:
        listeners = tuple(_listeners)
    for callback in listeners:
        call_safely(callback, result)
    if not _event_listeners:
        return
    rolled = _rolled_back(result, reason)
    if rolled is not None:
        publish(rolled)
    publish(result)


_T = TypeVar("_T")


def call_safely(callback: Callable[[_T], object], value: _T) -> None:
    """Call a user callback; log anything it raises (SystemExit included) instead of raising.

    KeyboardInterrupt is still raised: the user asked the program to stop.
    """
    try:
        callback(value)
    except KeyboardInterrupt:
        raise
    except BaseException:
        logger.exception("hotswap: callback %r raised", callback)


Event = (
    ChangeDetected
    | Planned
    | ReloadResult
    | RolledBack
    | CanaryDecision
    | CanaryCall
    | WatcherState
)
"""Everything :func:`listen` callbacks receive."""

# Copied on write, so publishing (on every reload, maybe on every canary call) reads it without
# a lock.
_event_listeners: tuple[Callable[[Event], object], ...] = ()


def listen(callback: Callable[[Event], object]) -> Callable[[], None]:
    """Call ``callback(event)`` for every event; returns the function that stops it.

    Callbacks run on the thread that publishes (the watcher's, or the caller of
    :func:`hotswap.reload`), in the order the events happen; what they raise is logged.
    """
    global _event_listeners
    with _listeners_lock:
        _event_listeners = (*_event_listeners, callback)

    def unsubscribe() -> None:
        global _event_listeners
        with _listeners_lock:
            found = list(_event_listeners)
            with contextlib.suppress(ValueError):
                found.remove(callback)
            _event_listeners = tuple(found)

    return unsubscribe


def listening() -> bool:
    """Whether any :func:`listen` callback is registered (events cost nothing otherwise)."""
    return bool(_event_listeners)


def publish(event: Event) -> None:
    """Tell every :func:`listen` callback about ``event`` (results go through :func:`emit`)."""
    if not isinstance(event, ReloadResult) and logger.isEnabledFor(logging.DEBUG):
        logger.debug("hotswap: %s", event, extra=log_extra(event))
    for callback in _event_listeners:
        call_safely(callback, event)


# Who hears of results that no save or call caused (a canary's decision, an automatic
# rollback): the API registers the running watcher's ``on_reload`` here. The stages that decide
# sit below the API, so they announce instead of importing it.
_announcers: tuple[Callable[[ReloadResult], object], ...] = ()


def on_announce(callback: Callable[[ReloadResult], object]) -> None:
    """Call ``callback(result)`` for every result :func:`announce` is given."""
    global _announcers
    with _listeners_lock:
        if callback not in _announcers:
            _announcers = (*_announcers, callback)


def announce(result: ReloadResult) -> None:
    """Hand a result no save caused to the registered callbacks (what they raise is logged)."""
    for callback in _announcers:
        call_safely(callback, result)


def outcome(result: ReloadResult) -> str:
    """``"applied"``, ``"unchanged"``, ``"rejected"`` (nothing ran) or ``"rolled_back"`` (new
    code ran, failed and was undone): one word for logs, metrics and traces. A canary's
    results are ``"canary"`` (it started: nothing was applied yet; its promotion is an
    ``"applied"`` reload) and ``"aborted"`` (it ended without promotion); one that could not
    start is ``"rejected"``."""
    if result.kind == "canary":
        if result.ok:
            return "canary"
        return "aborted" if result.reason else "rejected"
    if result.ok:
        return "unchanged" if result.kind == "unchanged" else "applied"
    return "rolled_back" if result.rolled_back else "rejected"


def log_extra(event: Event) -> dict[str, Any]:
    """The ``extra`` of hotswap's log records: ``hotswap_event``, ``hotswap_module``,
    ``hotswap_version``, ``hotswap_outcome``, ``hotswap_duration`` (None where they do not
    apply), so a JSON log formatter shows them as fields."""
    result = event if isinstance(event, ReloadResult) else None
    return {
        "hotswap_event": event.event,
        "hotswap_module": getattr(event, "module", None),
        "hotswap_version": getattr(event, "version", None),
        "hotswap_outcome": None if result is None else outcome(result),
        "hotswap_duration": getattr(event, "duration", None),
    }


# Which error made a failed reload roll back, by exception class name (not imported: the
# exceptions module sits above this one for the reader, and names are what reasons are).
_REASONS = {"MigrationError": "migration", "VerificationError": "verification"}


def _rolled_back(result: ReloadResult, reason: str | None) -> RolledBack | None:
    if result.kind == "rollback" and result.ok:
        return RolledBack(result.module, result.version, reason or "requested")
    if result.rolled_back:
        why = _REASONS.get(type(result.error).__name__, "error")
        message = None if result.error is None else str(result.error)
        return RolledBack(result.module, result.version, reason or why, message)
    return None


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
    """One readable status line for a result, as the CLI prints it, e.g.
    ``shop: v3 live, ~price (L12-18), +refund (L40); dependents: cart (2 statements) (1.4 ms)``.
    """
    ms = result.duration * 1000
    why = f" ({result.reason})" if result.reason else ""
    if result.kind == "canary" and result.ok:
        return f"{result.module}: v{result.version} live, {result.reason}"
    if result.kind == "canary":
        detail = result.reason or str(result.error)
        return f"{result.module}: no canary, v{result.version} stays live: {detail}"
    if result.ok and result.kind == "rollback":
        return f"{result.module}: rolled back, v{result.version} live{why} ({ms:.1f} ms)"
    if result.ok:
        if not result.changes and not result.dependents and result.kind != "reset":
            text = f"{result.module}: unchanged (v{result.version}"
            if result.skipped:
                text += f"; {_skipped(result)}"
            return f"{text}, {ms:.1f} ms)"
        what = "reset" if result.kind == "reset" else "live"
        text = f"{result.module}: v{result.version} {what}, {result.changes.summary()}"
        if result.dependents:
            shown = ", ".join(
                f"{d.module} ({len(d.lines)} statement{'s' * (len(d.lines) != 1)})"
                for d in result.dependents
            )
            text += f"; dependents: {shown}"
        if result.skipped:
            text += f"; {_skipped(result)}"
        if result.warnings:
            count = len(result.warnings)
            text += f"; applied with {count} compatibility warning{'s' * (count != 1)}"
        if result.reason:
            text += f"; {result.reason}"
        return f"{text} ({ms:.1f} ms)"
    state = "rolled back" if result.rolled_back else "rejected"
    return f"{result.module}: {state}, still v{result.version}: {result.error} ({ms:.1f} ms)"


def _skipped(result: ReloadResult) -> str:
    return "not applied: " + "; ".join(f"L{s.line} ({s.reason})" for s in result.skipped)
