"""Registries that creating a class fills, made to hold what a fresh import leaves in them.

A class statement that runs again creates a new class; the hooks that run as it is created
(its bases' ``__init_subclass__``, its metaclass, its decorators) register *that* class, and
the reload then merges it into the kept one, which the module's name holds. A fresh import's
registry holds the class the module binds, once, and no class the new source does not make.
So, in the plain containers those hooks may fill (the globals their code names, and, where an
``__init_subclass__`` runs, the container attributes of the classes above), the merged class
is put back as the kept one (:meth:`hotswap._engine.update.Updater` does that), and the classes
the reload left behind (replaced, or removed from the source) are taken out.

Only objects reached from the classes and functions the statements name are looked at (the
code of a hook names its globals): no heap scan, and no code of the program runs to find them.
The transaction keeps their contents aside, so a failure puts them back.
"""

from __future__ import annotations

import types
from collections.abc import Iterable, Iterator
from typing import Any, TypeGuard

from hotswap._engine.registered import resolve
from hotswap._plan.statements import CLASS, Statement

__all__ = ("hook_registries", "left_behind_classes", "purge_classes")

_CONTAINERS = (list, dict, set)
# Metaclass methods that run as a class is created.
_META_HOOKS = ("__new__", "__init__")
_get_mro = type.__dict__["__mro__"].__get__  # no __mro__ lookup hook of a metaclass runs


def hook_registries(
    namespace: dict[str, Any], statements: Iterable[Statement], removed: Iterable[str]
) -> list[Any]:
    """The plain containers that the creation hooks of the classes ``statements`` create may
    fill, and those the hooks of the removed classes filled (``namespace``: the module as it
    is before the new code runs)."""
    classes: list[type] = []
    functions: list[types.FunctionType] = []
    for stmt in statements:
        info = stmt.info
        if info.kind != CLASS or info.name is None:
            continue
        heads = info.header_reads | info.decorator_reads
        values = [namespace.get(n) for n in (info.name, *heads)]
        values += [resolve(namespace, r, c) for r, c in info.attribute_reads if r in heads]
        for value in values:
            if _is_class(value):
                classes.append(value)
            elif type(value) is types.FunctionType:
                functions.append(value)  # a decorator
    classes += [namespace[n] for n in removed if _is_class(namespace.get(n))]
    found: dict[int, Any] = {}
    seen: set[int] = set()
    for cls in classes:
        if id(cls) in seen:
            continue
        seen.add(id(cls))
        above = _mro(cls)
        hooks = [_function(vars(k).get("__init_subclass__")) for k in above]
        functions += [h for h in hooks if h is not None]
        if any(h is not None for h in hooks):
            # ``cls.plugins.append(cls)``: a registry kept on a class above.
            for holder in above:
                for value in vars(holder).values():
                    if type(value) in _CONTAINERS:
                        found[id(value)] = value
        meta = type(cls)
        if meta is not type:
            for holder in _mro(meta):
                functions += [f for f in (_function(vars(holder).get(n)) for n in _META_HOOKS) if f]
    for function in functions:
        for value in _named_containers(function):
            found[id(value)] = value
    return list(found.values())


def left_behind_classes(old: dict[str, Any], live: dict[str, Any], module_name: str) -> set[int]:
    """Ids of the module's classes that the reload left behind: their name holds another
    object now, or none."""
    return {
        id(value)
        for name, value in old.items()
        if live.get(name) is not value
        and _is_class(value)
        and vars(value).get("__module__") == module_name
    }


def purge_classes(container: Any, stale: set[int]) -> None:
    """Take the classes ``stale`` names out of ``container`` (by identity)."""
    if type(container) is list:
        # One item at a time, from the end: a reader in another thread never sees it empty.
        for index in range(len(container) - 1, -1, -1):
            if id(container[index]) in stale:
                del container[index]
    elif type(container) is set:
        for item in [item for item in container if id(item) in stale]:
            container.discard(item)
    elif type(container) is dict:
        for key in [k for k, v in container.items() if id(v) in stale]:
            del container[key]


def _is_class(value: object) -> TypeGuard[type]:
    return issubclass(type(value), type)  # type(): no __class__ hook of a proxy runs


def _mro(cls: type) -> tuple[type, ...]:
    return tuple(k for k in _get_mro(cls) if k is not object and k is not type)


def _function(value: object) -> types.FunctionType | None:
    if isinstance(value, classmethod | staticmethod):
        value = value.__func__
    return value if type(value) is types.FunctionType else None


def _named_containers(function: types.FunctionType, depth: int = 2) -> Iterator[Any]:
    """The plain containers among the globals the code of ``function`` names (and of the
    functions of its module it names, ``depth`` deep: ``_register(cls)`` in a hook)."""
    scope = function.__globals__
    for name in _names(function.__code__):
        value = scope.get(name)
        if type(value) in _CONTAINERS:
            yield value
        elif depth and type(value) is types.FunctionType and value.__globals__ is scope:
            yield from _named_containers(value, depth - 1)


def _names(code: types.CodeType) -> set[str]:
    """The global names a code object and the code nested in it (a decorator factory's
    decorator) name."""
    found = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            found |= _names(const)
    return found
