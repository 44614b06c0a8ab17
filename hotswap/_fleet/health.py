"""A fleet's automatic rollback: one health window per release, decided on the fleet's sums.

With ``auto_rollback`` configured, every process of a fleet opens its health window after a
commit, as one process would (:mod:`hotswap._release.health`), but its windows only count
(``shared``): after each committed release the coordinator gathers every worker's figures of
the release's modules (every 0.1 s, for ``window`` seconds), and once the fleet has
``min_calls`` calls and its error rate exceeds ``max_error_rate``, it rolls the release back in
every worker and in itself, to the parent epoch: one fleet transaction, one line. A version
failing in one worker of three is rolled back everywhere, or nowhere.
"""

from __future__ import annotations

import logging
import threading
import time
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

    _lock: threading.RLock
    _peers: list[Any]

    def _ask_all(self, kind: str, body: dict[str, Any], timeout: float) -> dict[Any, Any]: ...

    def _ask(
        self, peers: list[Any], kind: str, body: dict[str, Any], timeout: float
    ) -> dict[Any, Any]: ...

    def workers(self) -> dict[int, str]: ...

    def _finish(
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
        deadline = time.monotonic() + bound.window
        while time.monotonic() < deadline and not self._stopped.wait(_POLL):
            with self._host._lock:
                if ledger.epoch != release.epoch:
                    return  # a newer release (or a rollback): its own window
                answers = self._host._ask_all(protocol.STATS, {"health": True}, 5.0)
            calls = errors = 0
            for answer in answers.values():
                if not isinstance(answer, dict):
                    continue
                for name, counted in answer.get("health", {}).items():
                    if name in release.modules:
                        calls += int(counted["calls"])
                        errors += int(counted["errors"])
            rate = errors / calls if calls else 0.0
            if calls >= bound.min_calls and rate > bound.max_error_rate:
                reason = (
                    f"fleet error rate {rate:.3f} > {bound.max_error_rate} over {calls} calls "
                    f"in {len(answers)} workers within {bound.window:g} s of "
                    f"{short(release.epoch)}"
                )
                self.roll_back(release, parent, versions, reason)
                return

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
        with host._lock:
            if ledger.epoch != release.epoch:
                return
            logger.warning(
                "hotswap: fleet %s: automatic rollback: %s", short(release.epoch), reason
            )
            peers = [p for p in host._peers if p.pid != exclude]
            answers = host._ask(peers, protocol.ROLLBACK, {"epoch": release.epoch}, 10.0)
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
            host._finish(fleet, release, HotswapError(why), [], rolled_back=True)
