"""Containers another module fills: rebuilt when the statement filling them runs again.

toolz's ``_signatures`` binds ``signatures = {}`` and ``def create_signature_registry(
module_info=module_info, signatures=signatures)``; the package calls
``functoolz._sigs.create_signature_registry()`` at import, which fills the dict. When
``module_info`` changes the call runs again (the function's defaults changed), and without
more it writes into the dict the previous call filled: the entries a fresh import has, but
new keys at the end (a dict's order, what its ``repr`` and ``inspect.signature`` show) and
removed ones kept. Within one module the planner rebuilds such a container, its binding
statement and every writer running again in source order (:mod:`hotswap._plan.planner`);
this does the same across the modules of a change set: when a statement of one module that
runs calls a function of another module of the set that changed and fills a plain container
of that module (directly, or through a parameter whose default is the container), the
container's binding statements run again in their module, before the caller's statement runs
(a module runs before its importers in a transaction), so the call fills a new, empty
container. The function then reads a rebound name, so every caller the importer search finds
runs again too; a function that did not change leaves the container as it is.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from hotswap._plan import planner as _planner
from hotswap._plan.indexes import Indexes

if TYPE_CHECKING:
    from hotswap._engine.unit import Unit

__all__ = ("binders_to_rerun",)

_CONTAINERS = (list, dict, set)


def _called(unit: Unit, upstream: _planner.Upstream) -> set[tuple[str, str]]:
    """(module, function) of the other modules that the statements ``unit`` runs call:
    ``m.f()`` through a module object (aliases and packages followed), and ``f()`` after
    ``from m import f``."""
    statements = unit.new.statements
    imported: dict[str, tuple[str, str]] = {}
    for stmt in statements:
        for level, module, name, local in stmt.info.from_imports:
            if name != "*":
                imported[local] = (upstream.resolve(level, module), name)
    found: set[tuple[str, str]] = set()
    for index, mode in unit.plan.run:
        if mode == _planner.INPLACE:
            continue
        info = statements[index].info
        for local, chain in info.called_attributes:
            target = upstream.target(local, chain)
            if target is not None:
                found.add(target)
        found.update(imported[name] for name in info.called if name in imported)
    return found


def binders_to_rerun(
    units: list[Unit], upstream_of: Callable[[Unit], _planner.Upstream]
) -> dict[str, frozenset[int]]:
    """Module name -> first lines of the binding statements to run again (not yet in its
    plan): the containers that other modules' running statements fill through its
    functions."""
    if len(units) < 2:
        return {}  # one module: its own containers are the planner's
    by_name = {u.name: u for u in units}
    wanted: dict[str, set[int]] = {}
    for caller in units:
        if not caller.plan.run:
            continue
        for module, function in _called(caller, upstream_of(caller)):
            owner = by_name.get(module)
            if owner is None or owner is caller:
                continue
            if function not in owner.plan.dirty and function not in owner.plan.rebound:
                # The function fills the container as before: the other callers' entries
                # (importers that do not run again, the program's own) stand.
                continue
            indexes = Indexes.of(owner.new)
            running = {index for index, _ in owner.plan.run}
            namespace = vars(owner.module)
            for name in indexes.writers.get(function, ()):
                if type(namespace.get(name)) not in _CONTAINERS:
                    continue
                for index in indexes.binders.get(name, ()):
                    if index not in running:
                        stmt = owner.new.statements[index]
                        wanted.setdefault(owner.name, set()).add(stmt.first)
    return {name: frozenset(lines) for name, lines in wanted.items()}
