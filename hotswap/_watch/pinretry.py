"""Change sets refused because pinned sections stayed: tried again once those sections left.

A reload waits up to ``pin_timeout`` for the pinned sections inside the gate (requests in
flight through the middleware, ``hotswap.pinned()`` blocks) to leave; past it the set fails
with :class:`~hotswap.PinTimeoutError` and nothing changed. That is no fault of the content,
and the user saved once: a report or a long poll that outlasts ``pin_timeout`` must not lose
the edit. So the set's files wait here, on a thread of their own (``hotswap-pin-retry``),
until every section that was inside when the set was refused has left (the gate is not taken
meanwhile: requests keep flowing, see :meth:`hotswap._engine.pin.Gate.wait_departed`); then
they go back to the watcher's worker, which applies each file again only if it still holds
the refused bytes (a newer save's own event applies that one instead: it always wins).

Bounds, so a retry never spins: an attempt comes no sooner than ``FIRST_PAUSE`` after a
refusal, the pause doubling with each refusal of the same content up to ``MAX_PAUSE`` (a
stream of long sections makes each attempt wait ``pin_timeout`` as the writer, holding new
requests off meanwhile: those attempts grow rare); ``GIVE_UP`` after the first refusal the
file stops waiting, with a warning (saving it again tries again). Only the single-process
watcher retries: a fleet's coordinator has its own bound (``commit_timeout``) and names the
worker that kept the release off.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass

from hotswap._engine.pin import gate

__all__ = ("FIRST_PAUSE", "GIVE_UP", "MAX_PAUSE", "PinRetry")

logger = logging.getLogger(__name__)

# The shortest pause between a refusal and the next attempt (seconds); doubles per refusal.
FIRST_PAUSE = 0.1
# The longest pause between two attempts (seconds).
MAX_PAUSE = 30.0
# How long after its first refusal a file's content waits for pinned sections (seconds).
GIVE_UP = 300.0


@dataclass
class _Refused:
    """A file whose content was refused: since when, how often, and whether it waits here
    (False once handed back to the worker)."""

    first: float
    refusals: int
    waiting: bool


class PinRetry:
    """The files of refused change sets, handed back to the worker once the pinned sections
    that held them off have left.

    Args:
        requeue: ``requeue(paths)`` has the worker read ``paths`` again, as one set.
    """

    def __init__(self, requeue: Callable[[list[str]], None]) -> None:
        self._requeue = requeue
        self._cond = threading.Condition()
        self._files: dict[str, _Refused] = {}
        self._not_before = 0.0  # the next attempt comes no sooner
        self._stopping = False
        self._thread: threading.Thread | None = None

    def refused(self, paths: Iterable[str], again: Collection[str]) -> None:
        """The set of ``paths`` was refused because pinned sections did not leave in time;
        ``again``: those whose refused content had been refused before (their clock runs on)."""
        gate.mark()  # wait for the sections inside now: they held the set off
        now = time.monotonic()
        with self._cond:
            if self._stopping:
                return
            refusals = 0
            for path in paths:
                known = self._files.get(path)
                if known is None or path not in again:
                    known = self._files[path] = _Refused(now, 0, True)
                known.refusals += 1
                known.waiting = True
                refusals = max(refusals, known.refusals)
                logger.log(
                    logging.WARNING if known.refusals == 1 else logging.INFO,
                    "hotswap: %s: not applied: pinned sections (requests in flight, "
                    "hotswap.pinned()) stayed past pin_timeout; it applies by itself once they "
                    "leave (refusal %d, waiting up to %d s in all)",
                    path,
                    known.refusals,
                    GIVE_UP,
                )
            pause = min(FIRST_PAUSE * 2 ** (refusals - 1), MAX_PAUSE)
            self._not_before = max(self._not_before, now + pause)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="hotswap-pin-retry", daemon=True
                )
                self._thread.start()
            self._cond.notify_all()

    def settled(self, paths: Iterable[str]) -> None:
        """``paths`` were applied (or failed for another reason) in a set that was not refused
        for pinned sections: none of them waits any more."""
        with self._cond:
            for path in paths:
                self._files.pop(path, None)

    def stop(self) -> None:
        """Stop waiting and join the thread; nothing is handed back from now on."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
            thread = self._thread
        gate.wake()  # the thread may wait at the gate
        if thread is not None and thread is not threading.current_thread():
            thread.join()

    def _stopped(self) -> bool:
        return self._stopping

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(
                    lambda: self._stopping or any(w.waiting for w in self._files.values())
                )
                if self._stopping:
                    return
                first = min(w.first for w in self._files.values() if w.waiting)
            # Outside our lock, so the worker's refused() never waits for this; and no side of
            # the gate is taken: new sections enter meanwhile.
            departed = gate.wait_departed(
                max(0.0, first + GIVE_UP - time.monotonic()), stop=self._stopped
            )
            with self._cond:
                if self._cond.wait_for(
                    lambda: self._stopping, max(0.0, self._not_before - time.monotonic())
                ):
                    return
                # Looked at again: a set refused meanwhile marked the gate anew, and its
                # sections are inside still (the gate's lock nests inside ours, never around).
                due = self._due(departed and gate.departed())
            if due:
                logger.info(
                    "hotswap: the pinned sections that held %s off left: applying again",
                    ", ".join(due),
                )
                self._requeue(due)

    def _due(self, departed: bool) -> list[str]:
        """The waiting files to hand back now (lock held); drops, with a warning, those that
        waited past ``GIVE_UP``."""
        now = time.monotonic()
        due = []
        for path, record in list(self._files.items()):
            if not record.waiting:
                continue
            if now - record.first >= GIVE_UP:
                del self._files[path]
                logger.warning(
                    "hotswap: %s: not applied: pinned sections kept it off for %d s, given up; "
                    "save the file again to apply it",
                    path,
                    GIVE_UP,
                )
            elif departed:
                record.waiting = False
                due.append(path)
        return due
