"""Exact snapshots of a module's live state, and their restoration.

A reload patches objects in place (a function's code, a class's dict, a closure cell), so a
copy of the module dict alone cannot undo it. A :class:`ModuleState` records, for every object
the module defined, each attribute a reload may change; :meth:`ModuleState.restore` puts them
back. The transaction snapshots before it executes new code and rolls back with the same
snapshot; the version history keeps one per version. The walk covers only what the module
defined (functions whose globals are the module's dict, classes whose ``__module__`` is its
name), so its cost grows with the module, not with the program.
"""

from __future__ import annotations

import functools
import logging
import types
from collections.abc import Callable, Set
from dataclasses import dataclass
from typing import Any

from hotswap._engine.switch import (
    EMPTY,
    cell_value,
    is_instance,
    is_trampoline,
    loosen,
    restore_items,
    same_items,
    set_cell,
    switch_function,
    trampoline_target,
    wrapper_chain,
)

__all__ = (
    "EMPTY",
    "UNSETTABLE",
    "WRAPPER_TYPES",
    "ModuleState",
    "capture",
    "cell_value",
    "refill",
    "register_stateful",
    "set_cell",
)

logger = logging.getLogger(__name__)

# Decorator wrapper objects whose instance dict an update brings up to date (see _update).
WRAPPER_TYPES = (type(functools.lru_cache(maxsize=None)(lambda: None)),)
# Class-dict keys that cannot be set (or restored) with setattr.
UNSETTABLE = frozenset({"__dict__", "__weakref__"})

# Objects that keep state of their own which a reload swaps (the @reloadable proxies): a type
# -> (get, set). Registered by the module that owns them, so this one imports none of them.
_stateful: dict[type, tuple[Callable[[Any], object], Callable[[Any, object], None]]] = {}


def register_stateful(
    kind: type, get: Callable[[Any], object], set_: Callable[[Any, object], None]
) -> None:
    """Make snapshots record ``get(obj)`` for instances of ``kind`` and restore it with set_."""
    _stateful[kind] = (get, set_)
    _accessors.clear()


_Accessors = tuple[Callable[[Any], object], Callable[[Any, object], None]]
# type -> its accessors (None: not stateful), found once per type: a snapshot visits every
# value of the module, and most are of a handful of types.
_accessors: dict[type, _Accessors | None] = {}
# Values of these exact types hold no code and no state a reload swaps: nothing to record.
_PLAIN = frozenset(
    {int, float, complex, bool, str, bytes, type(None), tuple, frozenset, range, types.ModuleType}
)


def _accessors_of(kind: type) -> _Accessors | None:
    try:
        return _accessors[kind]
    except KeyError:
        found = next((a for k, a in _stateful.items() if issubclass(kind, k)), None)
        _accessors[kind] = found
        return found


@dataclass(eq=False, slots=True)  # made per object at every snapshot: no frozen init
class _FunctionState:
    function: types.FunctionType
    code: types.CodeType
    defaults: tuple[Any, ...] | None
    # The dict itself (restored by identity) and what it held, in case it was mutated.
    kwdefaults: dict[str, Any] | None
    kwdefaults_items: tuple[tuple[str, Any], ...]
    doc: str | None
    annotations: dict[str, Any]
    attributes: dict[str, Any]
    cells: tuple[tuple[types.CellType, object], ...]
    names: tuple[str, str]  # __name__ and __qualname__
    # The tuple itself: an update may give the function another one (``closures``); held
    # here, it also stays alive while a call in another thread may still be reading it.
    closure: tuple[types.CellType, ...] | None

    def restore(self) -> bool:
        """Put the function back; return whether what its calls compute changed."""
        f = self.function
        if self.kwdefaults is not None:
            restore_items(self.kwdefaults, dict(self.kwdefaults_items))
        values = tuple(value for _, value in self.cells)
        changed = switch_function(
            f, self.code, self.defaults, self.kwdefaults, values, closure=self.closure
        )
        if f.__doc__ is not self.doc:
            f.__doc__ = self.doc
        if f.__annotations__ is not self.annotations:
            f.__annotations__ = self.annotations
        if (f.__name__, f.__qualname__) != self.names:
            f.__name__, f.__qualname__ = self.names
        restore_items(f.__dict__, self.attributes)
        return changed


@dataclass(eq=False, slots=True)  # made per object at every snapshot: no frozen init
class _ClassState:
    cls: type
    namespace: dict[str, Any]
    bases: tuple[type, ...]

    def restore(self) -> None:
        cls = self.cls
        if not same_items(cls.__bases__, self.bases):
            cls.__bases__ = self.bases
        current = vars(cls)
        for key in [k for k in current if k not in self.namespace and k not in UNSETTABLE]:
            delattr(cls, key)
        for key, value in self.namespace.items():
            if current.get(key, EMPTY) is not value:
                setattr(cls, key, value)


@dataclass(frozen=True)
class _ObjectState:
    obj: object
    value: object
    set_: Callable[[Any, object], None]

    def restore(self) -> None:
        self.set_(self.obj, self.value)


@dataclass(frozen=True)
class _AttributesState:
    """The instance dict of a decorator's wrapper object (an lru_cache wrapper) that an update
    may bring up to date with the new source."""

    obj: object
    attributes: dict[str, Any]
    wrapped: object
    info: object = None  # its cache_info() when captured

    def restore(self) -> None:
        restore_items(vars(self.obj), self.attributes)

    def clear_cache(self, *, unless_unused: bool = False, emptied: bool = False) -> None:
        """Empty the wrapper's cache. ``unless_unused`` (the transaction that captured it
        failed): not when no call went through it since (its statistics did not move) and
        the transaction did not empty it (``emptied``: calls of the new code may have brought
        the statistics back), as it then holds only results of the code restored."""
        unused = not emptied and self.obj.cache_info() == self.info  # type: ignore[attr-defined]
        if unless_unused and unused:
            return
        self.obj.cache_clear()  # type: ignore[attr-defined]


_Part = _FunctionState | _ClassState | _ObjectState | _AttributesState


@dataclass(frozen=True)
class ModuleState:
    """Everything a reload of one module may change, as it was when captured."""

    namespace: dict[str, Any]
    parts: tuple[_Part, ...]
    module: str = ""
    # (container, a copy of its items): module-level plain containers the change that left
    # this state filled in place (a registry); a rollback puts their items back.
    contents: tuple[tuple[Any, Any], ...] = ()

    def refill(self) -> None:
        """Put the recorded items back into their containers."""
        for container, saved in self.contents:
            refill(container, saved)

    def restore(
        self, target: dict[str, Any], *, failed: bool = False, emptied: Set[int] = frozenset()
    ) -> None:
        """Put the module dict ``target`` and every recorded object back as captured.

        Names are replaced one by one rather than by clearing the dict, so a thread calling
        into the module meanwhile never finds a name missing that both versions define.
        ``failed``: the transaction that captured this state failed; a cache no call went
        through since and that it did not empty (the ids in ``emptied``) is left whole.
        """
        changed: set[int] = set()
        # A trampoline that takes its target's parameters by name holds copies of its
        # target's defaults: restoring the target before it, or it before the target, would
        # let a call pass one version's defaults to the other's code. So trampolines first
        # pass their arguments on as they come, and get their recorded code back last,
        # after every function they may lead to.
        for part in self.parts:
            if isinstance(part, _FunctionState):
                loosen(part.function)
        ordered = sorted(
            self.parts, key=lambda p: isinstance(p, _FunctionState) and is_trampoline(p.code)
        )
        for part in ordered:
            # One object that refuses (a metaclass whose __setattr__ raises) must not stop the
            # others from being restored, nor make a reload or rollback raise.
            try:
                if isinstance(part, _FunctionState):
                    if part.restore():
                        changed.add(id(part.function))
                else:
                    part.restore()
            except Exception:
                logger.exception("hotswap: %s: could not restore %r", self.module, part)
        for part in self.parts:
            if isinstance(part, _AttributesState) and _reaches(part.wrapped, changed):
                try:
                    part.clear_cache(unless_unused=failed, emptied=id(part.obj) in emptied)
                except Exception:
                    logger.exception("hotswap: %s: could not empty a cache", self.module)
        restore_items(target, self.namespace)


def refill(container: Any, saved: Any) -> None:
    """Make a plain container hold ``saved`` (a copy of its items) again, in place."""
    if isinstance(container, dict | set):
        container.clear()
        container.update(saved)
    else:
        container[:] = saved


def capture(namespace: dict[str, Any], module_name: str) -> ModuleState:
    """Snapshot a module dict and the objects its module defined."""
    walker = _Walker(namespace, module_name)
    for value in list(namespace.values()):
        walker.visit(value)
    return ModuleState(dict(namespace), tuple(walker.parts), module_name)


class _Walker:
    def __init__(self, namespace: dict[str, Any], module_name: str) -> None:
        self.globals = namespace
        self.module_name = module_name
        self.seen: set[int] = set()
        self.parts: list[_Part] = []

    def visit(self, value: object) -> None:
        kind = type(value)
        if kind in _PLAIN or id(value) in self.seen:
            return  # (most values of a module and its classes are plain: asked first)
        if kind is types.FunctionType:
            self.seen.add(id(value))
            self.function(value)  # type: ignore[arg-type]
        elif is_instance(value, type):
            if _defined_in(value, self.module_name):
                self.seen.add(id(value))
                self.klass(value)
        elif kind is staticmethod or kind is classmethod:
            self.visit(value.__func__)  # type: ignore[attr-defined]
        elif kind is property:
            for accessor in (value.fget, value.fset, value.fdel):  # type: ignore[attr-defined]
                self.visit(accessor)
        else:
            self.other(value)

    def other(self, value: object) -> None:
        # type(), not isinstance(): a value of any class may sit in a module, and isinstance
        # asks the value for its __class__, which a proxy or a broken object answers as it likes.
        kind = type(value)
        if kind in _PLAIN:
            return
        accessors = _accessors_of(kind)
        if accessors is not None:
            self.seen.add(id(value))
            get, set_ = accessors
            self.parts.append(_ObjectState(value, get(value), set_))
        # A decorator's wrapper (lru_cache, a proxy) leads to the function it wraps.
        try:
            wrapped = value.__wrapped__  # type: ignore[attr-defined]
        except Exception:
            return
        self.seen.add(id(value))
        if type(value) in WRAPPER_TYPES:
            info = value.cache_info()  # type: ignore[attr-defined]
            self.parts.append(_AttributesState(value, dict(vars(value)), wrapped, info))
        self.visit(wrapped)

    def function(self, f: types.FunctionType) -> None:
        # A function of another module is recorded only when it is a decorator's wrapper
        # around this module's function: an update may bring its metadata up to date.
        attributes = f.__dict__
        if f.__globals__ is not self.globals and "__wrapped__" not in attributes:
            return
        closure = f.__closure__
        cells = tuple((cell, cell_value(cell)) for cell in closure) if closure else ()
        kwdefaults = f.__kwdefaults__
        self.parts.append(
            _FunctionState(
                f,
                f.__code__,
                f.__defaults__,
                kwdefaults,
                tuple(kwdefaults.items()) if kwdefaults else (),
                f.__doc__,
                f.__annotations__,
                dict(attributes),
                cells,
                (f.__name__, f.__qualname__),
                closure,
            )
        )
        for _, value in cells:
            self.visit(value)
        wrapped = attributes.get("__wrapped__")
        if wrapped is not None:
            self.visit(wrapped)
        # A function that forwards for good: an update changes its target in place (the
        # kept function of a name whose decorator changed), so the target is recorded too.
        target = trampoline_target(f)
        if target is not None:
            self.visit(target)

    def klass(self, cls: type) -> None:
        namespace = {k: v for k, v in vars(cls).items() if k not in UNSETTABLE}
        self.parts.append(_ClassState(cls, namespace, cls.__bases__))
        for value in namespace.values():
            self.visit(value)


def _reaches(value: object, functions: set[int]) -> bool:
    """Whether ``value`` or something down its ``__wrapped__`` chain is one of ``functions``."""
    return any(id(inner) in functions for inner in wrapper_chain(value, 8))


def _defined_in(cls: type, module_name: str) -> bool:
    try:
        module = vars(cls).get("__module__")
    except Exception:  # a class whose metaclass hides its dict: not one of ours
        return False
    return type(module) is str and module == module_name
