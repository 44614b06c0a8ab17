"""A fleet's automatic rollback: one health window per release, decided on the fleet's sums.

With ``auto_rollback`` configured, every process of a fleet opens its health window after a
commit, as one process would (:mod:`hotswap._release.health`), but its windows only count
(``shared``): after each committed release the coordinator gathers every worker's figures of
the release's modules (every 0.1 s, for ``window`` seconds), and once the fleet has
``min_calls`` calls and its error rate exceeds ``max_error_rate`` *and* the fleet's error rate
of the version before (as one process compares with its own version before), it rolls the
release back in every worker and in itself, to the parent epoch: one fleet transaction, one
line. A version failing in one worker of three is rolled back everywhere, or nowhere.

The rate of the version before is the fleet's, summed over every worker, in the window of the
latest release of the same modules that stayed live through its window (the coordinator keeps
it per module; a release of several modules compares with their sums). No such window (the
first release, or one committed while ``auto_rollback`` was off): only the bound decides.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from typing import Any, Protocol

from hotswap._config import settings as _settings
from hotswap._engine import transaction
from hotswap._fleet import protocol
from hotswap._fleet.release import Release, State, ledger, short
from hotswap._fleet.result import FleetResult, WorkerReport
from hotswap._ops.events import ReloadResult
from hotswap.exceptions import HotswapError

__all__ = ("Health", "Host")

logger = logging.getLogger(__name__)

_POLL = 0.1  # seconds between two gatherings of the workers' figures


class Host(Protocol):
    """What the fleet's health windows use of the coordinator."""

    @property
    def lock(self) -> threading.RLock: ...

    def peers(self) -> list[Any]: ...

    def ask_all(self, kind: str, body: dict[str, Any], timeout: float) -> dict[Any, Any]: ...

    def ask(
        self, peers: list[Any], kind: str, body: dict[str, Any], timeout: float
    ) -> dict[Any, Any]: ...

    def workers(self) -> dict[int, str]: ...

    def finish(
        self,
        fleet: FleetResult,
        release: Release,
        error: BaseException | None,
        results: list[ReloadResult],
        *,
        rolled_back: bool,
    ) -> list[ReloadResult]: ...


class Health:
    """The coordinator's health windows, one per committed release."""

    def __init__(self, host: Host) -> None:
        self._host = host
        self._stopped = threading.Event()
        # Module -> the fleet's (calls, errors) in the window of its latest release that
        # stayed live: the bar a newer release's error rate is compared with.
        self._kept: dict[str, tuple[int, int]] = {}
        self._view: dict[str, Any] | None = None

    def view(self) -> dict[str, Any] | None:
        """The latest window (for status): ``epoch``, ``state`` (``"watching"``, ``"kept"``,
        ``"rolled back"``), the fleet's ``calls``, ``errors`` and ``error_rate``, and
        ``previous_rate`` (the version before's, None when unknown)."""
        return None if self._view is None else dict(self._view)

    def previous(self, modules: Iterable[str]) -> float | None:
        """The fleet's error rate in the windows of the versions of ``modules`` before (their
        calls and errors summed), or None when none of them was watched."""
        known = [self._kept[name] for name in modules if name in self._kept]
        calls = sum(c for c, _ in known)
        return sum(e for _, e in known) / calls if calls else None

    def watch(self, release: Release, parent: State, versions: dict[str, int]) -> None:
        """Watch a release that just committed (``versions``: the coordinator's module
        versions before it), while ``auto_rollback`` is configured."""
        bound = _settings.current().auto_rollback
        if bound is None:
            return
        threading.Thread(
            target=self._run,
            args=(release, parent, versions, bound),
            name="hotswap-fleet-health",
            daemon=True,
        ).start()

    def stop(self) -> None:
        """The coordinator stops: the windows end."""
        self._stopped.set()

    def _run(
        self,
        release: Release,
        parent: State,
        versions: dict[str, int],
        bound: _settings.AutoRollback,
    ) -> None:
        previous = self.previous(release.modules)
        # Worker pid -> module -> its latest (calls, errors): a worker's counts only grow
        # within a window, and one whose window closed (or that died) keeps its last ones.
        counted: dict[int, dict[str, tuple[int, int]]] = {}
        view: dict[str, Any] = {"epoch": release.epoch, "state": "watching"}
        self._view = view
        deadline = time.monotonic() + bound.window
        superseded = False
        while time.monotonic() < deadline and not self._stopped.wait(_POLL):
            with self._host.lock:
                if ledger.epoch != release.epoch:
                    superseded = True
                    break
                answers = self._host.ask_all(protocol.STATS, {"health": True}, 5.0)
            for peer, answer in answers.items():
                if isinstance(answer, dict):
                    for name, figures in answer.get("health", {}).items():
                        if name in release.modules:
                            mine = counted.setdefault(peer.pid, {})
                            mine[name] = (int(figures["calls"]), int(figures["errors"]))
            calls, errors = _total(counted)
            rate = errors / calls if calls else 0.0
            # The window of the release before ends on seeing this one: its figures may
            # arrive after this window opened.
            previous = self.previous(release.modules)
            view.update(calls=calls, errors=errors, error_rate=rate, previous_rate=previous)
            failing = calls >= bound.min_calls and rate > bound.max_error_rate
            if failing and (previous is None or rate > previous):
                before = (
                    "no error rate is known for the version before"
                    if previous is None
                    else f"the version before had {previous:.3f}"
                )
                reason = (
                    f"fleet error rate {rate:.3f} > {bound.max_error_rate} over {calls} calls "
                    f"in {len(counted)} workers within {bound.window:g} s of "
                    f"{short(release.epoch)} ({before})"
                )
                view["state"] = "rolled back"
                self.roll_back(release, parent, versions, reason)
                return
        if self._stopped.is_set() or (superseded and ledger.epoch == parent.epoch):
            return  # stopped, or rolled back (a worker that failed to boot on it)
        self._keep(release, counted, view, previous)

    def _keep(
        self,
        release: Release,
        counted: dict[int, dict[str, tuple[int, int]]],
        view: dict[str, Any],
        previous: float | None,
    ) -> None:
        """The release stayed live through its window: its figures are the next one's bar."""
        for name in release.modules:
            calls = sum(w[name][0] for w in counted.values() if name in w)
            errors = sum(w[name][1] for w in counted.values() if name in w)
            if calls:
                self._kept[name] = (calls, errors)
        calls, errors = _total(counted)
        view["state"] = "kept"
        logger.info(
            "hotswap: fleet %s: health window closed, kept: error rate %.3f over %d calls "
            "(the version before: %s)",
            short(release.epoch),
            errors / calls if calls else 0.0,
            calls,
            "unknown" if previous is None else f"{previous:.3f}",
        )

    def roll_back(
        self,
        release: Release,
        parent: State,
        versions: dict[str, int],
        reason: str,
        *,
        exclude: int = 0,
    ) -> None:
        """Every worker (but pid ``exclude``), and the coordinator, back to ``parent`` (a
        committed ``release``)."""
        host = self._host
        start = time.perf_counter()
        with host.lock:
            if ledger.epoch != release.epoch:
                return
            logger.warning(
                "hotswap: fleet %s: automatic rollback: %s", short(release.epoch), reason
            )
            peers = [p for p in host.peers() if p.pid != exclude]
            answers = host.ask(peers, protocol.ROLLBACK, {"epoch": release.epoch}, 10.0)
            why = reason if exclude else f"auto rollback: {reason}"
            for name, status in transaction.module_statuses().items():
                earlier = versions.get(name)
                if earlier is not None and status.version != earlier:
                    transaction.rollback(name, to=earlier, reason=why, why="health")
            ledger.restore(parent)
            reports = tuple(
                WorkerReport(
                    peer.pid,
                    True,
                    "rolled back" if isinstance(answer, dict) and answer.get("ok") else "no answer",
                    None if not isinstance(answer, dict) else answer.get("error"),
                )
                for peer, answer in answers.items()
            )
            fleet = FleetResult(
                release.epoch,
                parent.epoch,
                False,
                "rolled back",
                tuple(release.modules),
                reports,
                time.perf_counter() - start,
                cause=why,
            )
            host.finish(fleet, release, HotswapError(why), [], rolled_back=True)


def _total(counted: dict[int, dict[str, tuple[int, int]]]) -> tuple[int, int]:
    """The fleet's calls and errors: every worker's, every module's."""
    pairs = [pair for worker in counted.values() for pair in worker.values()]
    return sum(c for c, _ in pairs), sum(e for _, e in pairs)
