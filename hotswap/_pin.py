"""``pinned()``: sections of code that see one consistent version of every module.

A readers/writer gate. Pinned sections are readers; a reload's execute-to-commit window is the
writer. The writer waits (bounded) for the readers present to leave, and readers that arrive
while a writer waits or runs wait for it: a writer that is waiting already blocks new readers,
so a steady stream of requests cannot starve a reload.

Nesting is tracked per context (a ``ContextVar``, so each asyncio task has its own), so a nested
pin never waits, and a reload started by a thread that is itself pinned does not wait for its
own pin. Code that never pins pays nothing: the proxies and functions do not look at the gate.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager

from hotswap.exceptions import PinTimeoutError

__all__ = ("Gate", "gate")

_depth: contextvars.ContextVar[int] = contextvars.ContextVar("hotswap_pin_depth", default=0)


class Gate:
    """The readers/writer gate behind :func:`hotswap.pinned`."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._readers = 0
        self._writer = False

    @property
    def readers(self) -> int:
        """Pinned sections inside the gate now."""
        return self._readers

    def _enter(self, timeout: float | None) -> None:
        with self._cond:
            if not self._cond.wait_for(lambda: not self._writer, timeout):
                message = f"hotswap.pinned(): a reload held the gate for more than {timeout} s"
                raise PinTimeoutError(message)
            self._readers += 1

    def _try_enter(self) -> bool:
        with self._cond:
            if self._writer:
                return False
            self._readers += 1
            return True

    def _leave(self) -> None:
        with self._cond:
            self._readers -= 1
            if self._readers == 0:
                self._cond.notify_all()

    @contextmanager
    def pinned(self, timeout: float | None = None) -> Iterator[None]:
        """Pin for a block of synchronous code."""
        depth = _depth.get()
        if depth == 0:
            self._enter(timeout)
        token = _depth.set(depth + 1)
        try:
            yield
        finally:
            _depth.reset(token)
            if depth == 0:
                self._leave()

    @asynccontextmanager
    async def pinned_async(self, timeout: float | None = None) -> AsyncIterator[None]:
        """Pin for a block of async code; waiting for a reload does not block the event loop."""
        depth = _depth.get()
        if depth == 0 and not self._try_enter():
            # Wait in a worker thread: the reload may be waiting for other tasks of this very
            # loop to leave their pinned sections.
            await asyncio.get_running_loop().run_in_executor(None, self._enter, timeout)
        token = _depth.set(depth + 1)
        try:
            yield
        finally:
            _depth.reset(token)
            if depth == 0:
                self._leave()

    @contextmanager
    def exclusive(self, timeout: float, what: str) -> Iterator[None]:
        """Hold the gate as the writer; raise :class:`PinTimeoutError` past ``timeout``."""
        own = 1 if _depth.get() > 0 else 0  # this thread's own pin must not block it
        deadline = time.monotonic() + timeout
        with self._cond:
            # Wait for another writer (a rollback racing a reload cannot happen: both hold the
            # reload lock) and then for the readers; new readers wait from now on.
            self._writer = True
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


gate = Gate()
