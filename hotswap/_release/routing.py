"""Which version a unit of work runs, and what each version's calls did.

A *unit* is one request through the ASGI/WSGI middleware, one ``canary_scope()`` block, or one
call of a ``@reloadable`` made outside both. While a canary runs, each unit is assigned to the
live version or the candidate of every module under canary, once, when it begins; the
assignment travels in a ``ContextVar`` (asyncio tasks and the threads Starlette hands sync
endpoints to copy it), and every function of such a module consults it on each call
(:mod:`hotswap._release.candidate`). A unit is never reassigned: it runs wholly on one version.

Runs (canaries) and watches (health windows after a commit, :mod:`hotswap._release.health`) register
here; while neither exists the middleware checks one tuple and does nothing else, and no
``@reloadable`` target is wrapped.
"""

from __future__ import annotations

import contextvars
import logging
import threading
import time
import types
import zlib
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Protocol

from hotswap._engine import hooks as _hooks
from hotswap._engine.switch import KINDS
from hotswap._ops import forks as _forks
from hotswap._release import latency as _latency
from hotswap._release import proxy as _proxy

__all__ = (
    "Figures",
    "Run",
    "Unit",
    "Watch",
    "assigned",
    "begin",
    "bucket",
    "busy",
    "end",
    "forced_by",
    "idle",
    "key_of",
    "release_entries",
    "scope",
    "set_runs",
    "set_watches",
    "wrap_entries",
)

# The modules whose candidate the current unit runs; None outside any unit.
_assigned: contextvars.ContextVar[frozenset[str] | None] = contextvars.ContextVar(
    "hotswap_canary_assignment", default=None
)
_SAMPLES = 4096  # durations kept per arm for the percentiles


class Figures:
    """One version's calls: counts, and the latest durations for percentiles."""

    __slots__ = ("_durations", "calls", "errors")

    def __init__(self) -> None:
        self.calls = 0
        self.errors = 0
        self._durations: deque[float] = deque(maxlen=_SAMPLES)

    def add(self, ok: bool, duration: float) -> None:
        """Count one unit (the caller holds the owner's lock)."""
        self.calls += 1
        if not ok:
            self.errors += 1
        self._durations.append(duration)

    @property
    def error_rate(self) -> float:
        """Errors per call (0.0 before the first call)."""
        return self.errors / self.calls if self.calls else 0.0

    def to_dict(self) -> dict[str, float]:
        """``calls``, ``errors``, ``error_rate``, ``p50_ms``, ``p99_ms``."""
        ordered = sorted(self._durations)

        def percentile(share: float) -> float:
            if not ordered:
                return 0.0
            return ordered[min(len(ordered) - 1, int(share * len(ordered)))] * 1000

        return {
            "calls": self.calls,
            "errors": self.errors,
            "error_rate": self.error_rate,
            "p50_ms": percentile(0.50),
            "p99_ms": percentile(0.99),
        }

    def summary(self) -> _latency.Summary:
        """The latest durations as a mergeable summary (:mod:`hotswap._release.latency`)."""
        return _latency.summarise(self._durations)


class Run(Protocol):
    """A running canary, as routing sees it."""

    module: str

    def choose(self, key: str | None, forced: bool | None) -> bool:
        """Whether a new unit runs the candidate."""

    def begin(self, candidate: bool) -> None:
        """A unit assigned to this version began."""

    def end(self, candidate: bool, ok: bool, duration: float) -> None:
        """A unit ended; ``ok`` is False when it raised or answered 5xx."""


class Watch(Protocol):
    """An open health window of a committed version, as routing sees it."""

    module: str

    def end(self, ok: bool, duration: float) -> None:
        """A unit (or a ``@reloadable`` call) ended."""


# Copied on write: the request path reads them without a lock.
_runs: tuple[Run, ...] = ()
_watches: tuple[Watch, ...] = ()
_lock = _forks.guarded(threading.Lock(), "routing")


def set_runs(runs: tuple[Run, ...]) -> None:
    """The canaries running now (:mod:`hotswap._release.canary` owns the list)."""
    global _runs
    _runs = runs


def set_watches(watches: tuple[Watch, ...]) -> None:
    """The health windows open now (:mod:`hotswap._release.health` owns the list)."""
    global _watches
    _watches = watches


def idle() -> bool:
    """Nothing to route or count: the middleware's fast path."""
    return not _runs and not _watches


def busy(module: str) -> bool:
    """Whether a canary of ``module`` runs (a reload or rollback of it must wait for its end)."""
    return any(run.module == module for run in _runs)


# A reload or rollback of a module under canary is refused until the canary ends.
_hooks.on_busy(busy)


def assigned(module: str) -> bool:
    """Whether the current unit runs the candidate of ``module``."""
    arms = _assigned.get()
    return arms is not None and module in arms


def bucket(module: str, key: str) -> float:
    """A stable share in [0, 1) for a key: the same key always lands on the same version of a
    module, in every process (so a user keeps one version across workers)."""
    return zlib.crc32(f"{module}\0{key}".encode()) / 2**32


def key_of(canary_key: Callable[[Any], object] | None, request: Any) -> str | None:
    """A request's sticky key (the middleware's ``canary_key``); one that raises assigns at
    random, and says so in the log."""
    if canary_key is None:
        return None
    try:
        key = canary_key(request)
    except Exception:
        logging.getLogger("hotswap").exception(
            "hotswap: canary_key raised; the request is assigned at random"
        )
        return None
    return None if key is None else str(key)


def forced_by(value: str | bytes | None) -> bool | None:
    """The ``x-hotswap-canary`` header: ``1`` forces the candidate, ``0`` the live version."""
    if value is None:
        return None
    text = value.decode("latin-1") if isinstance(value, bytes) else value
    text = text.strip().lower()
    if text in ("1", "true", "yes", "candidate"):
        return True
    if text in ("0", "false", "no", "live"):
        return False
    return None


class Unit:
    """One unit of work in progress: which versions it runs, and who counts it."""

    __slots__ = ("arms", "runs", "start", "token", "watches")

    def __init__(
        self,
        runs: tuple[Run, ...],
        watches: tuple[Watch, ...],
        arms: frozenset[str],
        token: contextvars.Token[frozenset[str] | None],
    ) -> None:
        self.runs = runs
        self.watches = watches
        self.arms = arms
        self.token = token
        self.start = time.perf_counter()


def begin(
    key: str | None = None,
    forced: bool | None = None,
    *,
    module: str | None = None,
) -> Unit | None:
    """Begin a unit: assign it a version of every module under canary. ``module`` limits the
    counting to that module's canary and health window (a ``@reloadable`` call outside
    requests). None when nothing is routed or counted."""
    runs, watches = _runs, _watches
    if not runs and not watches:
        return None
    arms = frozenset(run.module for run in runs if run.choose(key, forced))
    if module is not None:
        runs = tuple(run for run in runs if run.module == module)
        watches = tuple(watch for watch in watches if watch.module == module)
    for run in runs:
        run.begin(run.module in arms)
    return Unit(runs, watches, arms, _assigned.set(arms))


def end(unit: Unit, ok: bool) -> None:
    """End a unit: count it for its runs and watches, and leave its assignment."""
    duration = time.perf_counter() - unit.start
    try:
        _assigned.reset(unit.token)
    except ValueError:  # ended in another context (a WSGI server closing elsewhere)
        _assigned.set(None)
    for run in unit.runs:
        run.end(run.module in unit.arms, ok, duration)
    for watch in unit.watches:
        watch.end(ok, duration)


@contextmanager
def scope(key: object) -> Iterator[None]:
    """``hotswap.canary_scope(key)``: the block is one unit, assigned by ``key`` like the
    middleware's ``canary_key``; inside a unit already, it changes nothing."""
    if _assigned.get() is not None:
        yield
        return
    unit = begin(None if key is None else str(key))
    if unit is None:
        yield
        return
    ok = False
    try:
        yield
        ok = True
    finally:
        end(unit, ok)


# --- @reloadable entries --------------------------------------------------------------------
#
# A ``@reloadable`` call made outside any unit is a unit of its own, and health windows count
# every ``@reloadable`` call. While a module is routed or watched, its stand-ins' targets are
# wrapped by an *entry* that does that; the wrapping is removed when neither needs it. A
# reload's commit gives the stand-ins their new targets, dropping entries by itself; a
# lingering entry just consults the registries above.

_wrapped: dict[
    str, dict[int, tuple[Any, Any, Any]]
] = {}  # module -> id -> (stand-in, target, entry)
_users: dict[str, int] = {}


def _entry(module: str, target: Callable[..., Any]) -> Callable[..., Any] | None:
    code = getattr(target, "__code__", None)
    kind = code.co_flags & KINDS if isinstance(code, types.CodeType) else 0
    if kind == 0x80:

        async def entry_async(*args: Any, **kwargs: Any) -> Any:
            unit = _call_unit(module)
            if unit is None:
                return await target(*args, **kwargs)
            ok = False
            try:
                result = await target(*args, **kwargs)
                ok = True
                return result
            finally:
                _end_call(module, unit, ok)

        return entry_async
    if kind:
        return None  # generators run in their consumer's context: not wrapped

    def entry(*args: Any, **kwargs: Any) -> Any:
        unit = _call_unit(module)
        if unit is None:
            return target(*args, **kwargs)
        ok = False
        try:
            result = target(*args, **kwargs)
            ok = True
            return result
        finally:
            _end_call(module, unit, ok)

    return entry


_INSIDE = object()  # a call inside a unit: counted for the module's health window only


def _call_unit(module: str) -> Any:
    if _assigned.get() is not None:
        return _INSIDE if _watches else None
    return begin(module=module)


def _end_call(module: str, unit: Any, ok: bool) -> None:
    if unit is not _INSIDE:
        end(unit, ok)
        return
    for watch in _watches:
        if watch.module == module:
            watch.end(ok, 0.0)


def wrap_entries(module: str) -> None:
    """Wrap the targets of ``module``'s stand-ins in entries (counted: call once per user)."""
    with _lock:
        _users[module] = _users.get(module, 0) + 1
        wrapped = _wrapped.setdefault(module, {})
        for standin in _proxy.standins(module):
            target = _proxy.target_of(standin)
            if id(standin) in wrapped and wrapped[id(standin)][2] is target:
                continue
            entry = _entry(module, target)
            if entry is None:
                continue
            _named(entry, target)
            wrapped[id(standin)] = (standin, target, entry)
            _proxy.set_target(standin, entry)


def release_entries(module: str) -> None:
    """One user of ``module``'s entries is done; the last one gives the targets back."""
    with _lock:
        users = _users.get(module, 0) - 1
        if users > 0:
            _users[module] = users
            return
        _users.pop(module, None)
        for standin, target, entry in _wrapped.pop(module, {}).values():
            if _proxy.target_of(standin) is entry:  # not replaced by a reload since
                _proxy.set_target(standin, target)


def _named(entry: Callable[..., Any], target: Callable[..., Any]) -> None:
    """Give the entry its target's names, so reprs and tracebacks read as the target."""
    for attribute in ("__module__", "__name__", "__qualname__", "__doc__"):
        try:
            setattr(entry, attribute, getattr(target, attribute))
        except (AttributeError, TypeError):
            continue
    entry.__wrapped__ = target  # type: ignore[attr-defined]
