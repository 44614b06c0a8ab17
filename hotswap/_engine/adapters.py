"""The seam between the reload transaction and framework adapters.

The core names no framework. An adapter (Flask, FastAPI/Starlette, Django: see
``hotswap/integrations/``) is registered under the top-level module that triggers it
(``"flask"``); the transaction consults it only when that module is in ``sys.modules``, and
imports it lazily then. Within one transaction an adapter is told twice what happens:

1. :meth:`Adapter.prepare`, before any statement runs, with one :class:`ModulePlan` per module:
   the statements that will run, the names they may rebind, the definitions that will be
   updated in place (their decorators do not run again), the names that will be removed. An
   adapter unregisters here what the run would register a second time (a route whose view is
   about to be defined again), or lifts a framework's guard (Flask's setup-finished check).
2. :meth:`Adapter.sync`, after the statements ran and definitions were updated in place,
   before migrate and commit, with one :class:`ModuleUpdate` per module: what ran, what was
   updated in place, replaced, rebound or removed. An adapter brings what it owns in line
   (route tables, schemas, resolver caches).

Either step may raise to veto: the whole transaction rolls back, and each step that returned an
*undo* callable has it called, newest first, so the framework's state is restored exactly.

Outside transactions, an adapter may also implement ``files_changed(paths, roots)``: the
watcher calls it (through :func:`files_changed`) when files under the watched ``roots`` that are
not Python modules were saved or removed, so it can drop what it cached from them (compiled
templates). It must be quick (it runs on the watcher's event thread) and never raises.
"""

from __future__ import annotations

import importlib
import logging
import sys
import threading
import types
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from hotswap._ops import forks as _forks

__all__ = (
    "Adapter",
    "ModulePlan",
    "ModuleUpdate",
    "StatementRun",
    "active_adapters",
    "active_triggers",
    "files_changed",
    "register_adapter",
    "unregister_adapter",
)

logger = logging.getLogger(__name__)

Undo = Callable[[], object]


@dataclass(frozen=True)
class StatementRun:
    """One top-level statement a transaction runs.

    Attributes:
        lines: its first and last line in the module's new source.
        binds: the module-level names it binds.
        inplace: a definition updated in place: its decorators do not run again.
    """

    lines: tuple[int, int]
    binds: frozenset[str]
    inplace: bool = False


@dataclass(frozen=True)
class ModulePlan:
    """What a transaction is about to do to one module (given to :meth:`Adapter.prepare`).

    Attributes:
        module: the live module.
        run: the statements that will run, in source order.
        rebinding: name -> its current object, for every name the run may bind to a new object
            (the statements that run whole, decorators included).
        inplace: name -> its current object, for definitions that will be updated in place.
        removing: name -> its current object, for names the new source no longer binds.
    """

    module: types.ModuleType
    run: tuple[StatementRun, ...] = ()
    rebinding: Mapping[str, object] = field(default_factory=dict)
    inplace: Mapping[str, object] = field(default_factory=dict)
    removing: Mapping[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class ModuleUpdate:
    """What a transaction did to one module (given to :meth:`Adapter.sync`).

    Attributes:
        module: the live module.
        ran: the statements that ran, in source order.
        updated: name -> the kept object that was updated in place (a function got new code, a
            class new members); identity unchanged.
        replaced: name -> (old, new) for classes that could not be updated in place.
        rebound: name -> (old, new) for every name now bound to another object (replaced
            classes included).
        removed: name -> old object, for names the module no longer has.
        added: name -> object, for names the module did not have before.
    """

    module: types.ModuleType
    ran: tuple[StatementRun, ...] = ()
    updated: Mapping[str, object] = field(default_factory=dict)
    replaced: Mapping[str, tuple[object, object]] = field(default_factory=dict)
    rebound: Mapping[str, tuple[object, object]] = field(default_factory=dict)
    removed: Mapping[str, object] = field(default_factory=dict)
    added: Mapping[str, object] = field(default_factory=dict)


@runtime_checkable
class Adapter(Protocol):
    """What a framework adapter implements. Both methods may return an undo callable (called
    if the transaction rolls back) or None, and may raise to veto the transaction."""

    def prepare(self, plans: Sequence[ModulePlan]) -> Undo | None: ...

    def sync(self, updates: Sequence[ModuleUpdate]) -> Undo | None: ...


# trigger module -> a factory or "package.module:attribute" naming one; made on first use.
_registered: dict[str, Callable[[], Adapter] | str] = {}
_made: dict[str, Adapter | None] = {}
_lock = _forks.guarded(threading.Lock(), "adapters")


def register_adapter(trigger: str, factory: Callable[[], Adapter] | str) -> None:
    """Consult an adapter in every transaction while the module ``trigger`` is imported.

    Args:
        trigger: a top-level module name (``"flask"``); until it is in ``sys.modules`` the
            adapter costs nothing and is not even imported.
        factory: a callable returning the adapter, or ``"package.module:attribute"`` naming
            one, imported on first use.
    """
    with _lock:
        _registered[trigger] = factory
        _made.pop(trigger, None)


def unregister_adapter(trigger: str) -> None:
    """Stop consulting the adapter registered under ``trigger``."""
    with _lock:
        _registered.pop(trigger, None)
        _made.pop(trigger, None)


def _make(trigger: str, factory: Callable[[], Adapter] | str) -> Adapter | None:
    try:
        if isinstance(factory, str):
            module_name, _, attribute = factory.partition(":")
            made: Any = getattr(importlib.import_module(module_name), attribute)
            factory = made
        return factory()  # type: ignore[operator]
    except Exception:
        logger.exception("hotswap: the %s adapter could not be loaded; it is skipped", trigger)
        return None


def active_triggers() -> frozenset[str]:
    """The trigger modules (``"flask"``) of the adapters that are active now."""
    with _lock:
        triggers = [t for t in _registered if t in sys.modules]
    return frozenset(t for t in triggers if _made.get(t, True) is not None)


def active_adapters() -> list[Adapter]:
    """The adapters whose trigger module is imported now, made on first use."""
    with _lock:
        pending = [(t, f) for t, f in _registered.items() if t in sys.modules]
        found: list[Adapter] = []
        for trigger, factory in pending:
            if trigger not in _made:
                _made[trigger] = _make(trigger, factory)
            adapter = _made[trigger]
            if adapter is not None:
                found.append(adapter)
        return found


def files_changed(paths: Sequence[str], roots: Sequence[str]) -> None:
    """Tell the active adapters that implement ``files_changed`` that ``paths`` (files under
    the watched ``roots`` that are not Python modules) changed; what they raise is logged."""
    if not _registered:
        return
    for adapter in active_adapters():
        hook = getattr(adapter, "files_changed", None)
        if hook is None:
            continue
        try:
            hook(paths, roots)
        except Exception:
            logger.exception("hotswap: %s: files_changed failed", type(adapter).__name__)
