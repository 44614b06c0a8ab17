"""What one release did across the fleet: a :class:`FleetResult`, one :class:`WorkerReport`
per worker."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from hotswap._fleet.release import short
from hotswap.exceptions import HotswapError

__all__ = ("FleetResult", "WorkerReport", "vote_report")


@dataclass(frozen=True)
class WorkerReport:
    """One worker's part in a round.

    Attributes:
        pid: its process id.
        vote: True (yes), False (no), or None (no answer in time).
        outcome: ``"committed"``, ``"voted no"``, ``"no vote"``, ``"aborted"``,
            ``"commit failed"``, ``"no answer"``, ``"rolled back"`` or ``"gone"``.
        error: why it voted no or failed, naming file and line; else None.
    """

    pid: int
    vote: bool | None
    outcome: str
    error: BaseException | None = None


@dataclass(frozen=True)
class FleetResult:
    """The outcome of one release across the fleet.

    Attributes:
        epoch: the release's epoch (the fleet's epoch when it committed).
        parent: the epoch it applied to (the fleet's epoch when it did not).
        ok: True when every participant committed it.
        outcome: ``"committed"``, ``"aborted"`` (someone voted no: nothing changed anywhere)
            or ``"rolled back"`` (a commit failed: every worker is back on the parent).
        modules: the release's module names.
        workers: one :class:`WorkerReport` per worker.
        duration: seconds from the change set to the last answer.
        window: seconds between the first and the last worker's commit answer (the
            mixed-version window as the coordinator saw it).
        error: why the coordinator itself refused or failed, if it did.
        cause: why the fleet rolled a committed release back (its automatic rollback).
    """

    epoch: str
    parent: str
    ok: bool
    outcome: str
    modules: tuple[str, ...]
    workers: tuple[WorkerReport, ...]
    duration: float
    window: float = 0.0
    error: BaseException | None = None
    cause: str = ""

    def describe(self) -> str:
        """One line: ``fleet e3f2a1b4c5d6: committed in 3/3 workers (12.1 ms, window 0.8
        ms)``, or who refused and why."""
        ms = self.duration * 1000
        count = len(self.workers)
        if self.ok:
            done = sum(w.outcome == "committed" for w in self.workers)
            window = f", window {self.window * 1000:.1f} ms" if count > 1 else ""
            return (
                f"fleet {short(self.epoch)}: committed in {done}/{count} workers "
                f"({ms:.1f} ms{window})"
            )
        culprits = [w for w in self.workers if w.outcome not in ("aborted", "rolled back", "gone")]
        why = "; ".join(
            f"worker {w.pid} {w.outcome}" + (f": {w.error}" if w.error is not None else "")
            for w in culprits
        )
        if self.cause:
            why = self.cause
        elif self.error is not None:
            why = "; ".join(
                filter(None, [f"the coordinator (pid {os.getpid()}): {self.error}", why])
            )
        if self.outcome == "aborted":
            state = f"aborted in {count} workers, {short(self.parent)} stays"
        else:
            state = f"rolled back in {count} workers to {short(self.parent)}"
        return f"fleet {short(self.epoch)}: {state}: {why} ({ms:.1f} ms)"


def vote_report(pid: int, vote: Any, timeout: float) -> WorkerReport:
    """A worker's report in a round that did not commit, from its vote (None: no vote)."""
    if vote is None:
        error = HotswapError(f"worker {pid}: no vote within {timeout} s")
        return WorkerReport(pid, None, "no vote", error)
    if not vote["ok"]:
        return WorkerReport(pid, False, "voted no", vote.get("error"))
    return WorkerReport(pid, True, "aborted")
