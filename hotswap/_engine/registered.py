"""What a module put outside itself, made to match a fresh import after a reload.

- A statement that runs again registers its new object (``sys.meta_path.append(F())``,
  ``log.addHandler(H())``); the one it registered before is still there, and a fresh import
  would never have made it. When that one is a version the reload left behind (an instance of a
  replaced class, a replaced class or function, an instance of a kept class built again), it is
  taken out. Only plain containers reached through other modules' attributes (and a logger's
  handler and filter lists) are looked at: no heap scan, and no code of the program runs to
  find them. The transaction keeps their contents aside, so a failure puts them back.
- A removed statement that only acted is undone where what it registered is known
  (:func:`undo_removed`); the rest is reported as skipped.
- ``from m import *`` that runs again drops what ``m`` no longer exports.
- Copies of a module (same file, never loaded from it: toolz's ``tlz``) take its new names.
"""

from __future__ import annotations

import ast
import atexit
import sys
import types
from collections.abc import Iterable, Iterator
from typing import Any

from hotswap._engine.baseline import MODULE_ATTRIBUTES
from hotswap._plan.effects import READ_ONLY_METHODS
from hotswap._plan.statements import Statement

__all__ = (
    "drop_star_removed",
    "external_containers",
    "follow_copies",
    "left_behind",
    "purge",
    "registrations",
    "resolve",
    "undo_removed",
)

_CONTAINERS = (list, set)
# Methods that register one object (the last argument) in a container or a registry.
_REGISTERING = frozenset({"append", "add", "insert", "register"})
# Registering methods of other objects -> the plain list attribute they append to (logging's
# loggers and handlers).
_HELD_IN = {"addHandler": "handlers", "addFilter": "filters"}


def resolve(namespace: dict[str, Any], root: str, path: tuple[str, ...]) -> object | None:
    """``root.a.b`` read through modules' dicts only (no attribute hook of the program runs)."""
    value = namespace.get(root)
    for attribute in path:
        if type(value) is not types.ModuleType:
            return None
        value = vars(value).get(attribute)
    return value


def external_containers(
    namespace: dict[str, Any], statements: Iterable[Statement]
) -> Iterator[Any]:
    """The plain containers of other modules that ``statements`` call a mutating method of
    (``sys.meta_path.append(...)``), each once."""
    seen: set[int] = set()
    for stmt in statements:
        info = stmt.info
        for root, chain in info.called_attributes:
            if root not in info.mutates or not chain or chain[-1] in READ_ONLY_METHODS:
                continue
            if len(chain) < 2 and chain[-1] not in _HELD_IN:
                continue  # a container of the module's own: rebuilt from its writers
            container = resolve(namespace, root, chain[:-1])
            attribute = _HELD_IN.get(chain[-1])
            if attribute is not None and type(container) not in _CONTAINERS:
                # ``log.addHandler(h)``: the logger keeps its handlers in a plain list.
                held = getattr(container, "__dict__", None)
                container = held.get(attribute) if isinstance(held, dict) else None
            if type(container) in _CONTAINERS and id(container) not in seen:
                seen.add(id(container))
                yield container


def left_behind(old: dict[str, Any], live: dict[str, Any], module_name: str) -> set[int]:
    """Ids of the functions, classes and instances of its classes the module bound that the
    reload left behind (the name is bound to another object now); :func:`purge` also drops
    instances of those classes."""
    found: set[int] = set()
    for name, value in old.items():
        if live.get(name) is value:
            continue
        if type(value) is types.FunctionType:
            own = value.__globals__ is live
        elif isinstance(value, type):
            own = vars(value).get("__module__") == module_name
        else:  # an instance of one of the module's classes (``loader = Loader()``)
            own = vars(type(value)).get("__module__") == module_name
        if own:
            found.add(id(value))
    return found


def purge(container: Any, stale: set[int]) -> None:
    """Take out of ``container`` the left-behind objects and instances of left-behind
    classes (by identity; never ``__eq__``)."""

    def gone(item: object) -> bool:
        return id(item) in stale or id(type(item)) in stale

    if type(container) is list:
        # One item at a time, from the end: the container never looks empty to a reader in
        # another thread (an import walking ``sys.meta_path``).
        for index in range(len(container) - 1, -1, -1):
            if gone(container[index]):
                del container[index]
    elif type(container) is set:
        for item in [item for item in container if gone(item)]:
            container.discard(item)


_MISSING: Any = object()


def follow_copies(
    copies: Iterable[types.ModuleType], old: dict[str, Any], live: dict[str, Any]
) -> None:
    """Copies of a reloaded module (toolz's ``tlz.functoolz``: its names, copied by a package
    at import) hold what a fresh import would copy: a name the reload bound to another object,
    added or removed changes in a copy that still held the module's own old value (a name
    the copy set itself stays). Kept objects were updated in place: nothing to do for them."""
    for copy in copies:
        target = vars(copy)
        for name, value in list(live.items()):
            if name in MODULE_ATTRIBUTES:
                continue
            before = old.get(name, _MISSING)
            if before is not value and target.get(name, _MISSING) is before:
                target[name] = value
        for name, value in old.items():
            if name not in live and name not in MODULE_ATTRIBUTES and target.get(name) is value:
                del target[name]


def _dotted(node: ast.expr) -> tuple[str, tuple[str, ...]] | None:
    chain: list[str] = []
    while isinstance(node, ast.Attribute):
        chain.append(node.attr)
        node = node.value
    return (node.id, tuple(reversed(chain))) if isinstance(node, ast.Name) else None


def registrations(statements: Iterable[Statement]) -> set[tuple[str, tuple[str, ...]]]:
    """``(root, path)`` of every container the statements call a mutating method of."""
    return {
        (root, chain[:-1])
        for stmt in statements
        for root, chain in stmt.info.called_attributes
        if root in stmt.info.mutates and chain and chain[-1] not in READ_ONLY_METHODS
    }


def undo_removed(
    node: ast.stmt,
    old: dict[str, Any],
    live: dict[str, Any],
    module_name: str,
    remaining: set[tuple[str, tuple[str, ...]]],
) -> bool:
    """Undo what a removed statement that only acted registered, where that is known:
    ``atexit.register(f)``, and ``X.append(f)`` / ``X.add(obj)`` / ``X.append(C())`` into a
    plain container (the module's object, or the instances of its class ``C`` when no statement
    left registers into ``X``). Whether it was undone (else it is reported as skipped)."""
    if isinstance(node, ast.Assign):
        return _undo_item(node, old, live, module_name)
    call = node.value if isinstance(node, ast.Expr) else None
    if not isinstance(call, ast.Call) or not isinstance(call.func, ast.Attribute):
        return False
    method = call.func.attr
    if (method not in _REGISTERING and method not in _HELD_IN) or not call.args or call.keywords:
        return False
    path = _dotted(call.func.value)
    if path is None:
        return False
    root, chain = path
    target = resolve(live if root in live else old, root, chain)
    if method in _HELD_IN:
        held = getattr(target, "__dict__", None)
        target = held.get(_HELD_IN[method]) if isinstance(held, dict) else None
    arg = call.args[-1]
    if isinstance(arg, ast.Name) and arg.id in old:
        registered = old[arg.id]

        def matches(item: object) -> bool:
            return item is registered

        if target is atexit and call.func.attr == "register" and callable(registered):
            atexit.unregister(registered)
            return True
    elif isinstance(arg, ast.Call) and isinstance(arg.func, ast.Name) and path not in remaining:
        kinds = {id(old.get(arg.func.id)), id(live.get(arg.func.id))}
        kind = old.get(arg.func.id)
        if not isinstance(kind, type) or vars(kind).get("__module__") != module_name:
            return False

        def matches(item: object) -> bool:
            return id(type(item)) in kinds

    else:
        return False
    if type(target) is list:
        found = [index for index, item in enumerate(target) if matches(item)]
        if isinstance(arg, ast.Name):
            found = found[-1:]  # one registration: the last (a name may be there twice)
        for index in reversed(found):
            del target[index]
        return bool(found)
    if type(target) is set:
        gone = [item for item in target if matches(item)]
        for item in gone:
            target.discard(item)
        return bool(gone)
    return False


def _undo_item(node: ast.Assign, old: dict[str, Any], live: dict[str, Any], module: str) -> bool:
    """``other.REG["key"] = f`` removed: the key goes when it still holds what the statement
    stored (the module's object ``f``, or an instance of the module's class)."""
    target = node.targets[0] if len(node.targets) == 1 else None
    if not isinstance(target, ast.Subscript) or not isinstance(target.slice, ast.Constant):
        return False
    path = _dotted(target.value)
    if path is None:
        return False
    root, chain = path
    if not chain and root in live and type(live[root]) in (dict, list, set):
        return False  # the module's own container: rebuilt from its writers
    container = resolve(live if root in live else old, root, chain)
    key = target.slice.value
    if type(container) is not dict or key not in container:
        return False
    stored, value = container[key], node.value
    if isinstance(value, ast.Name):
        ours = value.id in old and stored is old[value.id]
    elif isinstance(value, ast.Call) and isinstance(value.func, ast.Name):
        kind = old.get(value.func.id)
        ours = isinstance(kind, type) and vars(kind).get("__module__") == module
        ours = ours and type(stored) in (kind, live.get(value.func.id))
    else:
        return False
    if ours:
        del container[key]
    return ours


def _exported(namespace: dict[str, Any]) -> set[str]:
    """The names ``from m import *`` takes from a module dict."""
    names = namespace.get("__all__")
    if isinstance(names, list | tuple):
        return {n for n in names if isinstance(n, str)}
    return {n for n in namespace if not n.startswith("_")}


def drop_star_removed(
    namespace: dict[str, Any],
    statements: list[Statement],
    ran: Iterable[int],
    before: dict[str, dict[str, Any]],
) -> None:
    """A ``from m import *`` that ran again binds what ``m`` exports now; the names ``m``
    exported before and no more, still holding ``m``'s old object and bound by no statement
    of this module, go (a fresh import never binds them). ``before``: the module dicts of the
    change set's modules as they were before it ran."""
    own: set[str] | None = None
    package = namespace.get("__package__") or ""
    for index in ran:
        for level, relative, name, _ in statements[index].info.from_imports:
            if name != "*":
                continue
            module = relative
            if level:
                base = package.rsplit(".", level - 1)[0] if level > 1 else package
                module = f"{base}.{relative}" if relative else base
            old = before.get(module)
            current = sys.modules.get(module)
            if old is None or current is None:
                continue
            if own is None:
                own = {bound for stmt in statements for bound in stmt.info.binds}
            for gone in _exported(old) - _exported(vars(current)) - own:
                if gone in namespace and namespace[gone] is old.get(gone, _MISSING):
                    del namespace[gone]
