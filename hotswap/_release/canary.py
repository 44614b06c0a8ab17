"""Gray release: ``hotswap.canary()`` runs a module's new code for a share of the traffic first.

The candidate is planned as a reload would plan it (compatibility, audit, signature) and built
beside the live version (:mod:`hotswap._release.candidate`); units of work (requests,
``canary_scope`` blocks, ``@reloadable`` calls outside both) are assigned to one version each
(:mod:`hotswap._release.routing`) and counted per version. The canary ends by a decision:

- ``promote()``, or automatically after ``promote_after`` candidate calls within the error
  bound: the candidate's source is reloaded as one transaction, in place (a new version);
- ``abort()``, or automatically once the candidate's error rate exceeds ``max_error_rate``
  after ``min_calls`` calls: the candidate is dropped.

From the decision on, new units run the live version; the switch waits (up to ``pin_timeout``)
for units already on the candidate to finish, so none of them changes version midway.
"""

from __future__ import annotations

import contextlib
import logging
import random
import threading
import types
from typing import Any, Protocol

from hotswap._config import settings as _config
from hotswap._engine import transaction as _transaction
from hotswap._ops import events as _events
from hotswap._ops import forks as _forks
from hotswap._ops.event_types import CanaryCall, CanaryDecision
from hotswap._ops.events import ReloadResult
from hotswap._plan import modules as _modules
from hotswap._release import candidate as _candidate
from hotswap._release import routing as _routing
from hotswap.exceptions import CanaryError, HotswapError

__all__ = (
    "Canary",
    "Delegate",
    "canary",
    "canary_scope",
    "delegate",
    "from_watcher",
    "running",
    "start",
)

logger = logging.getLogger(__name__)

_lock = _forks.guarded(threading.Lock(), "canary")
_running: dict[str, Canary] = {}


class Delegate(Protocol):
    """What a higher stage (the fleet) registers with :func:`delegate` to take canaries over:
    starting one acts on every process, and deciding one is taken once, for all of them."""

    def start(self, module: str, data: bytes | None, params: dict[str, Any]) -> Any:
        """Start a canary of ``module`` everywhere (``data`` None: its file); a handle with
        :class:`Canary`'s interface, or None to start it in this process only."""

    def decide(self, module: str, decision: str, reason: str) -> ReloadResult | None:
        """``"promote"`` or ``"abort"`` the canary of ``module`` everywhere; its result, or
        None to decide in this process only."""


_delegate: Delegate | None = None


def delegate(taker: Delegate | None) -> None:
    """Let ``taker`` start and decide canaries (None: this process decides alone again)."""
    global _delegate
    _delegate = taker


class Canary:
    """A gray release of one module: its file's new code serving a share of the work.

    Attributes:
        module: the module's name.
        version: the version the candidate becomes when promoted.
        weight: the candidate's share of units assigned at random or by key (0.0-1.0).
        min_calls: candidate calls before its error rate can abort it.
        max_error_rate: the candidate's error rate above which it is aborted.
        promote_after: candidate calls within the bound after which it is promoted (None:
            only ``promote()`` promotes).
        reason: why it ended (``""`` while it runs).
        result: the :class:`~hotswap.ReloadResult` of its promotion or abort, once decided.
    """

    def __init__(
        self,
        candidate: _candidate.Candidate,
        data: bytes,
        *,
        version: int,
        weight: float,
        min_calls: int,
        max_error_rate: float,
        promote_after: int | None,
    ) -> None:
        self.module = candidate.name
        self.version = version
        self.weight = weight
        self.min_calls = min_calls
        self.max_error_rate = max_error_rate
        self.promote_after = promote_after
        self.reason = ""
        self.result: ReloadResult | None = None
        self._candidate = candidate
        self._data = data
        self._lock = threading.Lock()
        self._drained = threading.Condition(self._lock)
        self._live = _routing.Figures()
        self._new = _routing.Figures()
        self._inflight = 0  # units on the candidate now
        self._state = "running"
        self._stopping = False  # decided: new units run the live version
        self._finishing = threading.Lock()
        self._done = threading.Event()
        self._announce = False  # CanaryCall events: only while someone listens
        # Part of a fleet's canary: decisions are the fleet's (summed figures), not this
        # process's; promote()/abort() go to the fleet.
        self.fleet = False

    def __repr__(self) -> str:
        return f"<hotswap.Canary {self.module} {self._state} weight={self.weight}>"

    @property
    def state(self) -> str:
        """``"running"``, ``"promoted"`` or ``"aborted"``."""
        return self._state

    @property
    def stats(self) -> dict[str, dict[str, float]]:
        """``{"live": {...}, "candidate": {...}}``: ``calls``, ``errors``, ``error_rate``,
        ``p50_ms``, ``p99_ms`` of the units each version ran."""
        with self._lock:
            return {"live": self._live.to_dict(), "candidate": self._new.to_dict()}

    def measured(self) -> tuple[dict[str, dict[str, float]], dict[str, dict[int, int]]]:
        """:attr:`stats`, and per arm the same durations as a mergeable summary (what a fleet
        adds up to give its own percentiles: :mod:`hotswap._release.latency`), at one moment."""
        with self._lock:
            stats = {"live": self._live.to_dict(), "candidate": self._new.to_dict()}
            return stats, {"live": self._live.summary(), "candidate": self._new.summary()}

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable: ``module``, ``state``, ``version``, ``weight``, ``min_calls``,
        ``max_error_rate``, ``promote_after``, ``reason`` and ``stats``."""
        return {
            "module": self.module,
            "state": self._state,
            "version": self.version,
            "weight": self.weight,
            "min_calls": self.min_calls,
            "max_error_rate": self.max_error_rate,
            "promote_after": self.promote_after,
            "reason": self.reason,
            "stats": self.stats,
        }

    def promote(self) -> ReloadResult:
        """Make the candidate the live version: its source is reloaded as one transaction (in
        place, a new version number). Returns that reload's result; a canary already decided
        returns its result."""
        return self._decide("promote", "promoted by promote()")

    def abort(self) -> ReloadResult:
        """Drop the candidate; the live version serves everyone. Returns the abort's result
        (``kind == "canary"``); a canary already decided returns its result."""
        return self._decide("abort", "aborted by abort()")

    def wait(self, timeout: float | None = None) -> str:
        """Block until the canary is decided or ``timeout`` seconds passed; never raises for a
        timeout. Returns :attr:`state`."""
        self._done.wait(timeout)
        return self._state

    # --- routing (hotswap._release.routing.Run) --------------------------------------------------

    def choose(self, key: str | None, forced: bool | None) -> bool:
        if self._stopping:
            return False
        if forced is not None:
            return forced
        if key is not None:
            return _routing.bucket(self.module, key) < self.weight
        return random.random() < self.weight

    def begin(self, candidate: bool) -> None:
        if candidate:
            with self._lock:
                self._inflight += 1

    def end(self, candidate: bool, ok: bool, duration: float) -> None:
        decision = None
        with self._lock:
            if candidate:
                self._new.add(ok, duration)
                self._inflight -= 1
                if self._inflight <= 0:
                    self._drained.notify_all()
                decision = self._verdict()
            else:
                self._live.add(ok, duration)
        if self._announce:
            arm = "candidate" if candidate else "live"
            _events.publish(CanaryCall(self.module, arm, ok, duration))
        if decision is not None:
            # Off this thread: the decision waits for units in flight, this one among them.
            threading.Thread(
                target=self._finish,
                args=decision,
                name=f"hotswap-canary-{self.module}",
                daemon=True,
            ).start()

    def _verdict(self) -> tuple[str, str] | None:
        """An automatic decision, taken once (the caller holds the lock)."""
        if self._stopping or self.fleet:
            return None
        figures = self._new
        rate = figures.error_rate
        if figures.calls >= self.min_calls and rate > self.max_error_rate:
            self._stopping = True
            reason = (
                f"error rate {rate:.3f} > {self.max_error_rate} after {figures.calls} "
                f"candidate calls (live: {self._live.error_rate:.3f})"
            )
            return "abort", reason
        if self.promote_after is not None and figures.calls >= self.promote_after:
            self._stopping = True
            reason = (
                f"promoted after {figures.calls} candidate calls, error rate {rate:.3f} "
                f"<= {self.max_error_rate}"
            )
            return "promote", reason
        return None

    # --- deciding ------------------------------------------------------------------------

    def _decide(self, decision: str, reason: str) -> ReloadResult:
        taker = _delegate
        if self.fleet and taker is not None and self.result is None:
            decided = taker.decide(self.module, decision, reason)
            if decided is not None:
                return decided
        with self._lock:
            self._stopping = True
        return self._finish(decision, reason, by_caller=True)

    def _finish(self, decision: str, reason: str, by_caller: bool = False) -> ReloadResult:
        with self._finishing:
            if self.result is not None:
                return self.result
            self._drain()
            stats = self.stats
            with _transaction._lock:
                self._candidate.uninstall()
                _forget(self)
                _routing.release_entries(self.module)
                if decision == "promote":
                    entry: list[tuple[types.ModuleType | str, bytes | None]] = [
                        (self._candidate.module, self._data)
                    ]
                    result = _transaction.reload_many(entry, reason=f"canary {reason}")[0]
                    state = "promoted" if result.ok else "aborted"
                else:
                    result = _aborted(self.module, reason, requested=by_caller)
                    state = "aborted"
            self.reason = reason if result.ok or decision != "promote" else str(result.error)
            self.result = result
            self._state = state
            version = result.version if state == "promoted" else self.version
            _events.publish(
                CanaryDecision(
                    self.module,
                    "promote" if state == "promoted" else "abort",
                    version,
                    0.0,
                    self.reason,
                    stats,
                )
            )
            logger.info("hotswap: %s: canary %s: %s", self.module, state, self.reason)
            _events.announce(result)
            self._done.set()
            return result

    def _drain(self) -> None:
        """Wait (up to ``pin_timeout``) for the units on the candidate to finish; one the
        deciding thread itself runs in does not count."""
        own = 1 if _routing.assigned(self.module) else 0
        timeout = _config.current().pin_timeout
        with self._lock:
            if not self._drained.wait_for(lambda: self._inflight <= own, timeout):
                logger.warning(
                    "hotswap: %s: %d requests still on the canary after %.1f s; switching anyway",
                    self.module,
                    self._inflight - own,
                    timeout,
                )


def _aborted(module: str, reason: str, *, requested: bool) -> ReloadResult:
    status = _transaction.module_statuses().get(module)
    number = status.version if status is not None else 1
    error = CanaryError(f"{module}: canary aborted: {reason}", module=module)
    result = ReloadResult(
        module=module, ok=False, version=number, error=error, kind="canary", reason=reason
    )
    # Asked for (abort(), a newer save): not a warning; decided on failing calls: one.
    return _transaction.report(result, level=logging.INFO if requested else logging.WARNING)


def _forget(run: Canary) -> None:
    with _lock:
        if _running.get(run.module) is run:
            del _running[run.module]
        _routing.set_runs(tuple(_running.values()))


def canary_scope(key: object) -> contextlib.AbstractContextManager[None]:
    """A block of work outside requests that runs wholly on one version of every module under
    canary, chosen by ``key`` as the middleware's ``canary_key`` would (the same key, the same
    version); it is counted as one call. Inside a request (or another scope) it changes
    nothing; with no canary running it does nothing.

    Examples:
        >>> import hotswap
        >>> with hotswap.canary_scope("user-42"):
        ...     pass
    """
    return _routing.scope(key)


def running() -> dict[str, Canary]:
    """The canaries running now, by module name."""
    with _lock:
        return dict(_running)


def canary(
    module_or_name: types.ModuleType | str,
    *,
    weight: float = 0.1,
    min_calls: int = 100,
    max_error_rate: float = 0.01,
    promote_after: int | None = None,
) -> Canary:
    """Try a module's saved source on a share of the work before it goes live for everyone.

    The file is planned as a reload would plan it (compatibility, audit, signature), then run
    as a *candidate* beside the live version without changing it: the live version keeps
    serving everything not assigned to the candidate, with its state (state the change does
    not rebind is shared by both). Each unit of work runs wholly on one version: a request
    through :class:`~hotswap.integrations.asgi.HotswapMiddleware` or the WSGI one (at random
    by ``weight``, by the middleware's ``canary_key``, or forced by the ``x-hotswap-canary:
    1|0`` header), a ``with hotswap.canary_scope(key):`` block, or a ``@reloadable`` call made
    outside both. Inside a unit, every function of the module runs the unit's version, also
    when called through an app's route table or a reference held elsewhere. Other calls run
    the live version.

    The candidate's calls are counted; after ``min_calls`` of them, an error rate above
    ``max_error_rate`` aborts it, and after ``promote_after`` calls within the bound it is
    promoted (or call :meth:`Canary.promote` / :meth:`Canary.abort`). While it runs, a
    reload or rollback of the module fails with :class:`~hotswap.CanaryError`.

    Args:
        module_or_name: the module, or its name.
        weight: the candidate's share of units assigned at random or by key (0.0-1.0).
        min_calls: candidate calls before its error rate can abort it.
        max_error_rate: the error rate (errors per call) above which it is aborted.
        promote_after: candidate calls after which, within the bound, it is promoted; None
            (the default) waits for :meth:`Canary.promote`.

    Returns:
        The running :class:`Canary`.

    Raises:
        ValueError: an argument is out of range.
        CanaryError: a canary of the module runs already, the file holds what runs, or the
            change acts on shared objects when it runs (a changed decorator, a top-level call,
            a class changed beyond its methods' bodies): ``hotswap.reload()`` applies those.
        HotswapError: what a reload would report for the new source (a syntax error, an
            incompatible change, the audit, a signature, an exception while building).

    Examples:
        >>> import hotswap
        >>> run = hotswap.canary("shop.pricing", weight=0.2, promote_after=500)  # doctest: +SKIP
        >>> run.wait(60)                                                         # doctest: +SKIP
        'promoted'
    """
    for problem in _problems(weight, min_calls, max_error_rate, promote_after):
        raise ValueError(problem)
    module = _modules.resolve(module_or_name)
    taker = _delegate
    if taker is not None:
        params = {
            "weight": weight,
            "min_calls": min_calls,
            "max_error_rate": max_error_rate,
            "promote_after": promote_after,
        }
        handle = taker.start(_modules.canonical(module), None, params)
        if handle is not None:
            return handle  # type: ignore[no-any-return]
    return start(module, None, weight, min_calls, max_error_rate, promote_after)


def _problems(
    weight: float, min_calls: int, max_error_rate: float, promote_after: int | None
) -> list[str]:
    problems = []
    if not 0.0 <= weight <= 1.0:
        problems.append(f"weight must be between 0 and 1, not {weight!r}")
    if min_calls < 0:
        problems.append(f"min_calls must be >= 0, not {min_calls!r}")
    if not 0.0 <= max_error_rate <= 1.0:
        problems.append(f"max_error_rate must be between 0 and 1, not {max_error_rate!r}")
    if promote_after is not None and promote_after < 1:
        problems.append(f"promote_after must be >= 1 or None, not {promote_after!r}")
    return problems


def start(
    module: types.ModuleType,
    data: bytes | None,
    weight: float,
    min_calls: int,
    max_error_rate: float,
    promote_after: int | None,
    *,
    log: bool = True,
    fleet: bool = False,
) -> Canary:
    """Start a canary of ``module`` with ``data`` (None: read its file). ``log`` False: the
    caller reports the start itself (the watcher's result line), so it is logged once.
    ``fleet``: part of a fleet's canary (the fleet decides, from every process's figures)."""
    name = _modules.canonical(module)
    with _transaction._lock:
        if name in _running:
            raise CanaryError(f"{name}: a canary of it runs already", module=name)
        unit, old = _transaction.plan_alone(module, data)
        if not unit.plan or unit.data is None:
            raise CanaryError(
                f"{name}: nothing to try: the file holds the code that runs", module=name
            )
        candidate = _candidate.build(module, unit.path, old, unit.new, unit.plan, unit.code)
        run = Canary(
            candidate,
            unit.data,
            version=unit.record.current.number + 1,
            weight=weight,
            min_calls=min_calls,
            max_error_rate=max_error_rate,
            promote_after=promote_after,
        )
        run._announce = _events.listening()
        run.fleet = fleet
        candidate.install()
        with _lock:
            _running[name] = run
            _routing.set_runs(tuple(_running.values()))
        _routing.wrap_entries(name)
    _events.publish(CanaryDecision(name, "start", run.version, weight, "started"))
    if log:
        logger.info("hotswap: %s: %s", name, _started(weight))
    return run


def _started(weight: float) -> str:
    return f"canary started at weight {weight:g}"


def from_watcher(name: str, data: bytes) -> ReloadResult:
    """The watcher's canary mode (``enable(canary={...})``): a saved change starts a canary
    (a newer save supersedes a running one); the result says so, or why not."""
    policy = _config.current().canary
    assert policy is not None
    earlier = running().get(name)
    if earlier is not None:
        earlier._decide("abort", "superseded by a newer save")
    version = 1
    try:
        module = _modules.resolve(name)
        run = start(
            module,
            data,
            policy.weight,
            policy.min_calls,
            policy.max_error_rate,
            policy.promote_after,
            log=False,
        )
    except HotswapError as error:
        status = _transaction.module_statuses().get(name)
        version = status.version if status is not None else version
        failed = ReloadResult(module=name, ok=False, version=version, error=error, kind="canary")
        return _transaction.report(failed)
    status = _transaction.module_statuses().get(name)
    version = status.version if status is not None else version
    reason = _started(run.weight)
    started = ReloadResult(module=name, ok=True, version=version, kind="canary", reason=reason)
    return _transaction.report(started)
