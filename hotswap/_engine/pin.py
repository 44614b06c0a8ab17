"""``pinned()``: sections of code that see one consistent version of every module.

A readers/writer gate. Pinned sections are readers; a reload's execute-to-commit window is the
writer. The writer waits (bounded) for the readers present to leave, and readers that arrive
while a writer waits or runs wait for it: a writer that is waiting already blocks new readers,
so a steady stream of requests cannot starve a reload.

Nesting is tracked per context (a ``ContextVar``, so each asyncio task has its own), so a nested
pin never waits, and a reload started by a thread that is itself pinned does not wait for its
own pin. Code that never pins pays nothing: the proxies and functions do not look at the gate.

A reload refused because sections stayed past its bound is tried again once *those* sections
have left (:meth:`Gate.mark`, :meth:`Gate.wait_departed`): waiting for the gate to be empty
would wait forever under overlapping requests, and waiting as the writer would hold every new
request off meanwhile. Each section remembers the generation it entered in; a mark starts a new
one and counts the sections of the older ones still inside.
"""

from __future__ import annotations

import asyncio
import contextvars
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from hotswap.exceptions import PinTimeoutError

__all__ = ("Gate", "Pin", "gate")

_depth: contextvars.ContextVar[int] = contextvars.ContextVar("hotswap_pin_depth", default=0)


class Gate:
    """The readers/writer gate behind :func:`hotswap.pinned`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._readers = 0
        self._writer = False
        # Sections enter in the current generation; mark() starts a new one. ``_old`` counts
        # the sections inside that entered before the last mark (see wait_departed).
        self._generation = 0
        self._old = 0

    @property
    def readers(self) -> int:
        """Pinned sections inside the gate now."""
        return self._readers

    def wait_for_writer(self, timeout: float) -> bool:
        """Block until a reload holds or waits for the gate; False past ``timeout``."""
        with self._cond:
            return self._cond.wait_for(lambda: self._writer, timeout)

    def mark(self) -> None:
        """Start waiting for the pinned sections inside the gate now: :meth:`wait_departed`
        returns once they all left, whatever sections entered since."""
        with self._lock:
            self._generation += 1
            self._old = self._readers  # every section inside entered before this mark

    def wait_departed(self, timeout: float, stop: Callable[[], bool] | None = None) -> bool:
        """Block until the sections inside at the last :meth:`mark` have left, without holding
        new sections off (the gate is not taken); False past ``timeout`` or once ``stop()``
        holds (checked when :meth:`wake` is called)."""
        with self._cond:
            done = self._cond.wait_for(
                lambda: self._old == 0 or (stop is not None and stop()), timeout
            )
            return bool(done) and self._old == 0

    def departed(self) -> bool:
        """Whether the sections inside at the last :meth:`mark` have all left."""
        with self._lock:
            return self._old == 0

    def wake(self) -> None:
        """Wake the threads waiting in :meth:`wait_departed`, so they look at their ``stop``."""
        with self._cond:
            self._cond.notify_all()

    def _enter(self, timeout: float | None) -> int:
        """Enter as a reader; returns the generation the section entered in."""
        with self._lock:
            if not self._writer:  # the common case: no reload in sight
                self._readers += 1
                return self._generation
            if not self._cond.wait_for(lambda: not self._writer, timeout):
                message = f"hotswap.pinned(): a reload held the gate for more than {timeout} s"
                raise PinTimeoutError(message)
            self._readers += 1
            return self._generation

    def _try_enter(self) -> int | None:
        with self._lock:
            if self._writer:
                return None
            self._readers += 1
            return self._generation

    def _leave(self, generation: int) -> None:
        with self._lock:
            self._readers -= 1
            if generation < self._generation:  # entered before the last mark
                self._old -= 1
                if self._old == 0:
                    self._cond.notify_all()
            if self._readers == 0 and self._writer:
                self._cond.notify_all()

    def pin(self, timeout: float | None = None) -> Pin:
        """A single-use context manager (``with`` or ``async with``) that pins."""
        return Pin(self, timeout)

    @contextmanager
    def exclusive(self, timeout: float, what: str) -> Iterator[None]:
        """Hold the gate as the writer; raise :class:`PinTimeoutError` past ``timeout``."""
        own = 1 if _depth.get() > 0 else 0  # this thread's own pin must not block it
        deadline = time.monotonic() + timeout
        with self._cond:
            # Wait for another writer (a rollback racing a reload cannot happen: both hold the
            # reload lock) and then for the readers; new readers wait from now on.
            self._writer = True
            self._cond.notify_all()  # lets observers (tests, status) see a reload waiting
            try:
                ok = self._cond.wait_for(
                    lambda: self._readers <= own, max(0.0, deadline - time.monotonic())
                )
            except BaseException:
                self._writer = False
                self._cond.notify_all()
                raise
            if not ok:
                self._writer = False
                self._cond.notify_all()
                message = (
                    f"{what}: pinned sections did not leave within {timeout} s; nothing changed"
                )
                raise PinTimeoutError(message)
        try:
            yield
        finally:
            with self._cond:
                self._writer = False
                self._cond.notify_all()


class Pin:
    """One pinned section; see :func:`hotswap.pinned`. Written out rather than with
    ``contextlib`` because it sits on request paths: entering and leaving cost two lock
    round-trips and a context-variable update."""

    __slots__ = ("_gate", "_generation", "_outer", "_timeout", "_token")

    def __init__(self, gate: Gate, timeout: float | None) -> None:
        self._gate = gate
        self._timeout = timeout
        self._outer = False
        self._generation = 0
        self._token: contextvars.Token[int] | None = None

    def __enter__(self) -> None:
        depth = _depth.get()
        if depth == 0:
            self._generation = self._gate._enter(self._timeout)
            self._outer = True
        self._token = _depth.set(depth + 1)

    def __exit__(self, *exc: object) -> None:
        if self._token is not None:
            _depth.reset(self._token)
        if self._outer:
            self._gate._leave(self._generation)

    async def __aenter__(self) -> None:
        depth = _depth.get()
        if depth == 0:
            generation = self._gate._try_enter()
            if generation is None:
                # Wait in a worker thread: the reload may be waiting for other tasks of this
                # very event loop to leave their pinned sections.
                loop = asyncio.get_running_loop()
                generation = await loop.run_in_executor(None, self._gate._enter, self._timeout)
            self._generation = generation
            self._outer = True
        self._token = _depth.set(depth + 1)

    async def __aexit__(self, *exc: object) -> None:
        self.__exit__()


gate = Gate()


def _after_fork_in_child() -> None:
    """Only the forking thread came along: the gate's lock may have been held by another
    thread, and only this thread's own pin is still inside."""
    gate._lock = threading.Lock()
    gate._cond = threading.Condition(gate._lock)
    gate._readers = 1 if _depth.get() > 0 else 0
    gate._writer = False
    # The sections of other threads are gone; this thread's own one counts as entered before
    # a mark, whatever generation it holds.
    gate._generation += 1
    gate._old = gate._readers


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
