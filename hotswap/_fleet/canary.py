"""A fleet's canary: one candidate, one weight, one decision for every worker.

The coordinator keeps the fleet's canaries (:class:`Canaries`). Starting one (``hotswap.canary()``
in any process of the fleet, or a save in the watcher's canary mode) sends the candidate's
exact bytes to every worker, which starts it at the same weight (a sticky key lands on the same
version in every worker: :func:`hotswap._release.routing.bucket` is a function of the key and the
module only); a worker that joins while it runs starts it as it joins. The workers' own canaries
never decide: the coordinator sums their figures (``stats``, every 0.1 s; the percentiles from
every worker's latency summary merged) and decides once, with the same rule as one process
would. A promotion is a fleet transaction: every worker promotes its
candidate under the release of the candidate's bytes (a new epoch), or every worker stays on the
parent epoch; an abort drops the candidate everywhere (the epoch does not change).

The release stage knows nothing of this: the fleet registers a
:class:`hotswap._release.canary.Delegate` in every process of the fleet
(:class:`CoordinatorDelegate`, :class:`WorkerDelegate`).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from hotswap._engine import transaction
from hotswap._engine.outcome import report
from hotswap._fleet import protocol
from hotswap._fleet.release import ledger
from hotswap._ops.events import ReloadResult
from hotswap._plan import sources
from hotswap._release import latency
from hotswap.exceptions import CanaryError, HotswapError

if TYPE_CHECKING:
    from multiprocessing.connection import Connection

    from hotswap._config.settings import CanaryPolicy

__all__ = ("Canaries", "CoordinatorDelegate", "FleetCanary", "Spec", "WorkerDelegate")

logger = logging.getLogger(__name__)

# Seconds between two gatherings of the workers' figures while a canary runs.
_POLL = 0.1
# Seconds a worker has to answer a canary message (a start builds the candidate).
_ANSWER = 10.0


class Coordinator(Protocol):
    """What the fleet's canaries use of :class:`hotswap._fleet.coordinator.Coordinator`."""

    canaries: Canaries

    @property
    def lock(self) -> threading.RLock: ...

    def ask_all(self, kind: str, body: dict[str, Any], timeout: float) -> dict[Any, Any]: ...

    def ask(
        self, peers: list[Any], kind: str, body: dict[str, Any], timeout: float
    ) -> dict[Any, Any]: ...

    def promote(self, spec: Spec, reason: str) -> list[ReloadResult]: ...

    def view(self) -> dict[str, Any]: ...

    def workers(self) -> dict[int, str]: ...


@dataclass(frozen=True)
class Spec:
    """What every worker needs to run the fleet's candidate.

    Attributes:
        module: the module's name.
        path: its file.
        data: the candidate's exact bytes.
        weight, min_calls, max_error_rate, promote_after: as :func:`hotswap.canary`.
    """

    module: str
    path: str
    data: bytes
    weight: float
    min_calls: int
    max_error_rate: float
    promote_after: int | None

    def params(self) -> dict[str, Any]:
        """The arguments of :func:`hotswap._release.canary.start` after the data."""
        return {
            "weight": self.weight,
            "min_calls": self.min_calls,
            "max_error_rate": self.max_error_rate,
            "promote_after": self.promote_after,
        }


class _Run:
    def __init__(self, spec: Spec) -> None:
        self.spec = spec
        self.state = "running"
        self.reason = ""
        self.result: ReloadResult | None = None
        self.stats: dict[str, dict[str, float]] = {"live": _empty(), "candidate": _empty()}
        self.workers: dict[int, dict[str, dict[str, float]]] = {}
        self.done = threading.Event()
        self.finishing = threading.Lock()

    def to_dict(self) -> dict[str, Any]:
        return {
            "module": self.spec.module,
            "state": self.state,
            **self.spec.params(),
            "reason": self.reason,
            "stats": self.stats,
            "workers": {str(pid): stats for pid, stats in self.workers.items()},
            "fleet": True,
        }


def _empty() -> dict[str, float]:
    return {"calls": 0, "errors": 0, "error_rate": 0.0, "p50_ms": 0.0, "p99_ms": 0.0}


def summed(
    per_worker: list[dict[str, dict[str, float]]],
    latencies: list[dict[str, dict[int, int]]],
) -> dict[str, dict[str, float]]:
    """The fleet's figures: calls and errors summed, the error rate of the sums, and the
    percentiles of every worker's latest durations taken together (their latency summaries
    merged: off by less than one bucket, :mod:`hotswap._release.latency`)."""
    out = {}
    for arm in ("live", "candidate"):
        figures = [w[arm] for w in per_worker if arm in w]
        calls = sum(int(f["calls"]) for f in figures)
        errors = sum(int(f["errors"]) for f in figures)
        durations = latency.merge(s[arm] for s in latencies if arm in s)
        out[arm] = {
            "calls": calls,
            "errors": errors,
            "error_rate": errors / calls if calls else 0.0,
            "p50_ms": latency.percentile_ms(durations, 0.50),
            "p99_ms": latency.percentile_ms(durations, 0.99),
        }
    return out


def verdict(spec: Spec, stats: dict[str, dict[str, float]]) -> tuple[str, str] | None:
    """The decision one process would take on these figures (the same rule), or None."""
    new, live = stats["candidate"], stats["live"]
    calls, rate = int(new["calls"]), new["error_rate"]
    if calls >= spec.min_calls and rate > spec.max_error_rate:
        return "abort", (
            f"fleet error rate {rate:.3f} > {spec.max_error_rate} after {calls} candidate "
            f"calls (live: {live['error_rate']:.3f})"
        )
    if spec.promote_after is not None and calls >= spec.promote_after:
        return "promote", (
            f"promoted after {calls} candidate calls in the fleet, error rate {rate:.3f} "
            f"<= {spec.max_error_rate}"
        )
    return None


class Canaries:
    """The coordinator's canaries, by module name."""

    def __init__(self, coordinator: Coordinator) -> None:
        self._coordinator = coordinator
        self._runs: dict[str, _Run] = {}
        self._last: dict[str, _Run] = {}

    def specs(self) -> list[Spec]:
        """The candidates running now (what a joining worker starts)."""
        return [r.spec for r in self._runs.values() if r.state == "running"]

    def view(self) -> dict[str, Any]:
        """Module name -> the running (else the latest) canary's figures, for status."""
        return {name: run.to_dict() for name, run in {**self._last, **self._runs}.items()}

    def get(self, module: str) -> _Run | None:
        """The running canary of ``module``."""
        return self._runs.get(module)

    def start(self, spec: Spec, *, supersede: bool = False) -> _Run:
        """Start ``spec``'s candidate in every worker, or in none.

        Raises:
            CanaryError: one runs already (unless ``supersede``: it is aborted first).
            HotswapError: what a worker reported (the first); no worker runs the candidate.
        """
        earlier = self._runs.get(spec.module) or next(
            (r for r in self._runs.values() if not spec.module and r.spec.path == spec.path), None
        )
        if earlier is not None:
            if not supersede:
                raise CanaryError(f"{spec.module}: a canary of it runs already", module=spec.module)
            self.decide(earlier.spec.module, "abort", "superseded by a newer save")
        coordinator = self._coordinator
        with coordinator.lock:
            answers = coordinator.ask_all(protocol.CANARY, {"spec": spec}, _ANSWER)
            started = [p for p, a in answers.items() if isinstance(a, dict) and a.get("module")]
            errors = [a.get("error") for a in answers.values() if isinstance(a, dict)]
            for found in answers.values():
                if not isinstance(found, dict):
                    continue
                for name, data in found.get("running", {}).items():
                    ledger.pin(name, data)  # what a worker started during the canary imports
            named = next(
                (a["module"] for a in answers.values() if isinstance(a, dict) and a.get("module")),
                "",
            )
            if any(errors) or not started:
                end = {"module": named or spec.module, "reason": "a worker could not start it"}
                coordinator.ask(started, protocol.END, end, 5)
                error = next((e for e in errors if e is not None), None)
                if error is None:
                    error = CanaryError(f"{spec.module}: no worker could start the candidate")
                raise error if isinstance(error, HotswapError) else HotswapError(str(error))
            if not spec.module:
                spec = dataclasses.replace(spec, module=named)
            run = _Run(spec)
            self._runs[spec.module] = run
        logger.info(
            "hotswap: %s: fleet canary started at weight %g in %d workers",
            spec.module,
            spec.weight,
            len(started),
        )
        threading.Thread(
            target=self._watch, args=(run,), name="hotswap-fleet-canary", daemon=True
        ).start()
        return run

    def _watch(self, run: _Run) -> None:
        """Gather the workers' figures; decide once on the fleet's sums."""
        while not run.done.wait(_POLL):
            coordinator = self._coordinator
            with coordinator.lock:
                if run.state != "running":
                    return
                answers = coordinator.ask_all(protocol.STATS, {"module": run.spec.module}, 5.0)
                counted = [
                    (p.pid, a["stats"], a.get("latency") or {})
                    for p, a in answers.items()
                    if isinstance(a, dict) and a.get("stats")
                ]
                run.workers = {pid: stats for pid, stats, _ in counted}
                run.stats = summed([c[1] for c in counted], [c[2] for c in counted])
            decision = verdict(run.spec, run.stats)
            if decision is not None:
                try:
                    self.decide(run.spec.module, *decision)
                except Exception:
                    logger.exception(
                        "hotswap: %s: the fleet canary's decision failed", run.spec.module
                    )
                return

    def decide(self, module: str, decision: str, reason: str) -> ReloadResult:
        """Promote (a fleet transaction: a new epoch, or the parent everywhere) or abort (the
        candidate dropped everywhere) the canary of ``module``; the result.

        Raises:
            CanaryError: no canary of ``module`` runs in the fleet.
        """
        run = self._runs.get(module) or self._last.get(module)
        if run is None:
            raise CanaryError(f"{module}: no canary of it runs in the fleet", module=module)
        with run.finishing:
            if run.result is not None:
                return run.result
            coordinator = self._coordinator
            if decision == "promote":
                results = coordinator.promote(run.spec, reason)
                result = results[0] if results else _aborted(module, "no worker runs it")
                promoted = result.ok
            else:
                with coordinator.lock:
                    coordinator.ask_all(protocol.END, {"module": module, "reason": reason}, 5)
                result = _aborted(module, reason)
                promoted = False
            run.state = "promoted" if promoted else "aborted"
            run.reason = reason if promoted or decision != "promote" else str(result.error)
            run.result = result
            self._runs.pop(module, None)
            self._last[module] = run
            run.done.set()
        logger.log(
            logging.INFO if promoted or decision == "abort" else logging.WARNING,
            "hotswap: %s: fleet canary %s: %s",
            module,
            run.state,
            run.reason,
        )
        return result

    def from_save(self, path: str, data: bytes, name: str, policy: CanaryPolicy) -> ReloadResult:
        """The watcher's canary mode: a save starts the candidate in every worker (a newer
        save supersedes a running one); the result says so, or why not. ``name`` "": the
        workers name the module of ``path``."""
        spec = Spec(
            name,
            os.path.realpath(path),
            data,
            policy.weight,
            policy.min_calls,
            policy.max_error_rate,
            policy.promote_after,
        )
        try:
            name = self.start(spec, supersede=True).spec.module
        except HotswapError as error:
            status = transaction.module_statuses().get(name)
            version = status.version if status is not None else 1
            failed = ReloadResult(
                module=name, ok=False, version=version, error=error, kind="canary"
            )
            return report(failed)
        status = transaction.module_statuses().get(name)
        version = status.version if status is not None else 1
        reason = f"fleet canary started at weight {spec.weight:g}"
        return ReloadResult(module=name, ok=True, version=version, kind="canary", reason=reason)

    def answer(self, conn: Connection, body: dict[str, Any]) -> None:
        """A request of a process of the fleet (on its own connection); one answer."""
        op = body.get("op")
        answer: dict[str, Any] = {}
        try:
            if op == "canary":
                self.start(body["spec"])
            elif op == "decide":
                args = (body["module"], body["decision"], body["reason"])
                threading.Thread(
                    target=self._decide_quietly, args=args, name="hotswap-fleet-decide", daemon=True
                ).start()
            elif op == "state":
                answer["view"] = self._coordinator.view()
        except HotswapError as error:
            answer["error"] = error
        except Exception as error:  # the asking process hears why, the coordinator goes on
            logger.exception("hotswap: the fleet's coordinator failed on %r", op)
            answer["error"] = HotswapError(f"the fleet's coordinator failed on {op!r}: {error!r}")
        try:
            conn.send((protocol.ANSWER, 0, answer))
        finally:
            conn.close()

    def _decide_quietly(self, module: str, decision: str, reason: str) -> None:
        try:
            self.decide(module, decision, reason)
        except HotswapError as error:
            logger.warning("hotswap: %s: %s", module, error)

    def stop(self) -> None:
        """The coordinator stops: the watching threads end (the workers keep their canary)."""
        for run in list(self._runs.values()):
            run.done.set()


def _aborted(module: str, reason: str) -> ReloadResult:
    status = transaction.module_statuses().get(module)
    error = CanaryError(f"{module}: fleet canary aborted: {reason}", module=module)
    return ReloadResult(
        module=module,
        ok=False,
        version=status.version if status is not None else 1,
        error=error,
        kind="canary",
        reason=reason,
    )


class FleetCanary:
    """The handle ``hotswap.canary()`` returns in a fleet: the interface of
    :class:`hotswap.Canary`, for the whole fleet (``stats`` are the fleet's sums)."""

    def __init__(
        self,
        module: str,
        fetch: Callable[[], dict[str, Any]],
        decide: Callable[[str, str], ReloadResult],
    ) -> None:
        self.module = module
        self._fetch = fetch
        self._decide = decide

    def __repr__(self) -> str:
        return f"<hotswap.FleetCanary {self.module}>"

    def to_dict(self) -> dict[str, Any]:
        """As :meth:`hotswap.Canary.to_dict`, plus ``workers`` (pid -> its figures)."""
        return self._fetch()

    @property
    def state(self) -> str:
        """``"running"``, ``"promoted"`` or ``"aborted"``."""
        return str(self._fetch().get("state", "aborted"))

    @property
    def stats(self) -> dict[str, dict[str, float]]:
        """The fleet's summed figures per arm."""
        return dict(self._fetch().get("stats", {}))

    @property
    def weight(self) -> float:
        """The candidate's share in every worker."""
        return float(self._fetch().get("weight", 0.0))

    def promote(self) -> ReloadResult:
        """Promote in every worker, as one fleet transaction."""
        return self._decide("promote", "promoted by promote()")

    def abort(self) -> ReloadResult:
        """Drop the candidate in every worker."""
        return self._decide("abort", "aborted by abort()")

    def wait(self, timeout: float | None = None) -> str:
        """Until the fleet decided or ``timeout`` passed; the state."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            state = self.state
            if state != "running" or (deadline is not None and time.monotonic() >= deadline):
                return state
            time.sleep(0.05)


def _spec(module: str, data: bytes | None, params: dict[str, Any]) -> Spec:
    """The spec of ``module``'s candidate: ``data``, else its file's bytes."""
    found = sys.modules.get(module)
    path = getattr(found, "__file__", None)
    if not isinstance(path, str):
        raise CanaryError(f"{module}: no file to try", module=module)
    if data is None:
        data = sources.peek(path)
        if data is None:
            with open(path, "rb") as file:
                data = file.read()
    return Spec(module, os.path.realpath(path), data, **params)


class CoordinatorDelegate:
    """The coordinator's :class:`hotswap._release.canary.Delegate`."""

    def __init__(self, coordinator: Coordinator) -> None:
        self._coordinator = coordinator

    def start(self, module: str, data: bytes | None, params: dict[str, Any]) -> Any:
        if not self._coordinator.workers():
            return None  # no worker: this process is the fleet
        canaries = self._coordinator.canaries
        canaries.start(_spec(module, data, params))
        return FleetCanary(
            module,
            lambda: canaries.view().get(module, {}),
            lambda decision, reason: canaries.decide(module, decision, reason),
        )

    def decide(self, module: str, decision: str, reason: str) -> ReloadResult | None:
        return self._coordinator.canaries.decide(module, decision, reason)


class WorkerDelegate:
    """A worker's :class:`hotswap._release.canary.Delegate`: it asks the coordinator."""

    def __init__(self, address: protocol.Address) -> None:
        self._address = address

    def ask(self, op: str, body: dict[str, Any]) -> dict[str, Any]:
        answer = protocol.ask(self._address, op, body, _ANSWER * 2)
        error = answer.get("error")
        if error is not None:
            raise error if isinstance(error, HotswapError) else HotswapError(str(error))
        return answer

    def start(self, module: str, data: bytes | None, params: dict[str, Any]) -> Any:
        self.ask("canary", {"spec": _spec(module, data, params)})
        return FleetCanary(
            module,
            lambda: self._view(module),
            lambda decision, reason: self.decide(module, decision, reason),
        )

    def _view(self, module: str) -> dict[str, Any]:
        view = self.ask("state", {}).get("view") or {}
        return dict(view.get("canaries", {}).get(module, {}))

    def decide(self, module: str, decision: str, reason: str) -> ReloadResult:
        # The coordinator decides off this thread: a promotion commits in this worker too,
        # and waits for its pinned requests (the caller may be one of them).
        self.ask("decide", {"module": module, "decision": decision, "reason": reason})
        status = transaction.module_statuses().get(module)
        return ReloadResult(
            module=module,
            ok=True,
            version=status.version if status is not None else 1,
            kind="canary",
            reason=f"{decision} requested: the fleet's coordinator decides for every worker",
        )
