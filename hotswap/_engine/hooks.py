"""What the stages above the engine take part in: they register here, the engine names none.

The engine runs a transaction; two things above it must take part without being imported by
it (arrows point one way, DESIGN §3): ``@reloadable`` proxies stage their new targets while a
module's new code runs and swap them at commit, and a running canary makes its module busy
(a reload of it must wait for the canary's end). Each registers a callback here when it is
imported. The fleet stage names the code a process runs by its content (an epoch): it is told
what each commit made live, and every result carries the epoch after its attempt.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Protocol

from hotswap._ops import forks as _forks

__all__ = ("Stage", "advance", "busy", "epoch", "on_busy", "on_epoch", "on_stage", "stages")


class Stage(Protocol):
    """What one reload of one module stages for its commit (e.g. proxies' new targets)."""

    def active(self) -> contextlib.AbstractContextManager[object]:
        """While active, the module's new code runs and stages instead of swapping."""
        ...

    def commit(self) -> None:
        """Make everything staged live."""
        ...

    def discard(self) -> None:
        """Drop everything staged; what is live stays."""
        ...


_lock = _forks.guarded(threading.Lock(), "hooks")
_busy: tuple[Callable[[str], bool], ...] = ()
_stagers: tuple[Callable[[str], Stage], ...] = ()


def on_busy(check: Callable[[str], bool]) -> None:
    """Register ``check(module) -> bool``: whether a reload of ``module`` must be refused now."""
    global _busy
    with _lock:
        if check not in _busy:
            _busy = (*_busy, check)


def on_stage(factory: Callable[[str], Stage]) -> None:
    """Register ``factory(module) -> Stage``, asked for one stage per module of a transaction."""
    global _stagers
    with _lock:
        if factory not in _stagers:
            _stagers = (*_stagers, factory)


def busy(module: str) -> bool:
    """Whether a registered check refuses a reload of ``module`` now."""
    return any(check(module) for check in _busy)


class _Stages:
    """The stages of every registered factory for one module, as one."""

    def __init__(self, module: str) -> None:
        self._parts = [factory(module) for factory in _stagers]

    @contextlib.contextmanager
    def active(self) -> Iterator[_Stages]:
        with contextlib.ExitStack() as stack:
            for part in self._parts:
                stack.enter_context(part.active())
            yield self

    def commit(self) -> None:
        for part in self._parts:
            part.commit()

    def discard(self) -> None:
        for part in self._parts:
            part.discard()


def stages(module: str) -> Stage:
    """One stage for ``module`` over every registered factory."""
    return _Stages(module)


# Module name -> (sha256 of the bytes now live, those bytes when known, sha256 of the source
# live before the commit when known).
Committed = Mapping[str, tuple[str, bytes | None, str | None]]
_advance: Callable[[Committed], str] | None = None
_epoch: Callable[[], str] | None = None


def on_epoch(advance: Callable[[Committed], str], current: Callable[[], str]) -> None:
    """Register the epoch keeper: ``advance(committed) -> epoch`` is called by each commit
    with what went live, ``current() -> epoch`` by every other result."""
    global _advance, _epoch
    _advance, _epoch = advance, current


def advance(committed: Committed) -> str:
    """What a commit made live, told to the epoch keeper; the epoch after it (``""``: none)."""
    if not committed:
        return epoch()
    return "" if _advance is None else _advance(committed)


def epoch() -> str:
    """The process's epoch now (``""`` when no epoch keeper is registered)."""
    return "" if _epoch is None else _epoch()
