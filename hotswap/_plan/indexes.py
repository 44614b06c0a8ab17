"""What the planner looks up in one version of a module's statements, made once per version.

Pure functions over :mod:`hotswap._plan.statements`: which statements bind a name, which may
mutate the object a name holds (directly, or through the module's functions they call), and
where the last of them stands. A version's indexes are kept with it (``ModuleSource.derived``),
so the live version's were made when it was planned as the new one, and a new version reuses
what its unchanged statements wrote in the live one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from hotswap._plan.effects import READ_ONLY_METHODS
from hotswap._plan.statements import CLASS, DEF, ModuleSource, Statement

__all__ = ("Indexes", "writes_of")


def _binders(statements: list[Statement]) -> dict[str, list[int]]:
    found: dict[str, list[int]] = {}
    for index, stmt in enumerate(statements):
        for name in stmt.info.binds:
            found.setdefault(name, []).append(index)
    return found


def _writer_functions(statements: list[Statement]) -> dict[str, frozenset[str]]:
    """Function name -> the module names whose objects a call of it may mutate, through the
    module's other functions it calls too; class name -> what creating a subclass of it may
    mutate (the ``__init_subclass__`` hooks of it and its bases)."""
    defs = {s.info.name: s.info for s in statements if s.info.kind == DEF and s.info.name}
    writes = {name: set(info.body_mutates) for name, info in defs.items()}
    # From each callee to its callers, by a worklist: a chain of calls written from the top
    # down took a pass over every function per link.
    callers: dict[str, list[str]] = {}
    for name, info in defs.items():
        for callee in info.body_calls & writes.keys():
            callers.setdefault(callee, []).append(name)
    todo = [name for name, found in writes.items() if found]
    while todo:
        callee = todo.pop()
        for caller in callers.get(callee, ()):
            if not writes[callee] <= writes[caller]:
                writes[caller] |= writes[callee]
                todo.append(caller)
    found = {name: frozenset(names) for name, names in writes.items() if names}
    for stmt in statements:
        info = stmt.info
        if info.kind == CLASS and info.name:
            hooks = set(info.body_mutates)
            for base in info.header_reads & found.keys():
                hooks |= found[base]
            if hooks:
                found[info.name] = frozenset(hooks)
    return found


def writes_of(stmt: Statement, functions: Mapping[str, frozenset[str]]) -> set[str]:
    """The module names whose objects ``stmt`` may mutate while it runs."""
    info = stmt.info
    found = set(info.mutates)
    for name in info.called:
        found |= functions.get(name, frozenset())
    found.update(
        local
        for local, chain in info.called_attributes
        if not (len(chain) == 1 and chain[0] in READ_ONLY_METHODS)
    )
    if info.kind in (DEF, CLASS):  # ``@registry.register`` calls a method of ``registry``
        found.update(local for local, _ in info.attribute_reads if local in info.decorator_reads)
    if info.kind == CLASS:  # its bases' ``__init_subclass__`` run
        for base in info.header_reads:
            found |= functions.get(base, frozenset())
    return found


@dataclass(frozen=True)
class Indexes:
    """What the rules look up in a version's statements, made once per version (read-only):
    the live version's were made when it was planned as the new one.

    Attributes:
        binders: name -> indices of the statements that bind it.
        writers: function name -> the module names a call of it may mutate.
        writes: per statement, the module names it may mutate while it runs.
        mutators: name -> indices of the statements that mutate its object in place.
        attribute_sets: every ``(x, attr)`` of an ``x.attr = ...`` statement.
        last_write: name -> the index of the last statement that may mutate its object.
        by_info: id of a statement's :class:`Info` -> what it writes (the Infos are held by
            the version's statements as long as these indexes are).
        callers: name -> the module's functions and classes whose bodies load it (a call of
            them may call it).
    """

    binders: dict[str, list[int]]
    writers: dict[str, frozenset[str]]
    writes: list[set[str]]
    mutators: dict[str, list[int]]
    attribute_sets: frozenset[tuple[str, str]]
    last_write: dict[str, int]
    by_info: dict[int, set[str]]
    callers: dict[str, list[str]]

    @classmethod
    def of(cls, source: ModuleSource, previous: Indexes | None = None) -> Indexes:
        """The indexes of ``source``; ``previous``, those of the live version: a statement
        of both (the same :class:`Info`) writes what it wrote there, when the module's
        functions write what they wrote (a one-function edit reads one statement)."""
        made = source.derived.get("planner")
        if isinstance(made, Indexes):
            return made
        statements = source.statements
        writers = _writer_functions(statements)
        known: dict[int, set[str]] = {}
        if previous is not None and previous.writers == writers:
            known = previous.by_info
        writes: list[set[str]] = []
        by_info: dict[int, set[str]] = {}
        for stmt in statements:
            found = known.get(id(stmt.info))
            if found is None:
                found = writes_of(stmt, writers)
            writes.append(found)
            by_info[id(stmt.info)] = found
        mutators: dict[str, list[int]] = {}
        attribute_sets: set[tuple[str, str]] = set()
        for position, stmt in enumerate(statements):
            for name in stmt.info.mutates:
                mutators.setdefault(name, []).append(position)
            if stmt.info.kind == CLASS:  # a subclass, registered by its base's __init_subclass__
                for name in (writes[position] & writers.keys()) - stmt.info.mutates:
                    mutators.setdefault(name, []).append(position)
            attribute_sets.update(stmt.info.attribute_sets)
        last_write = {name: index for index, names in enumerate(writes) for name in names}
        callers: dict[str, list[str]] = {}
        for stmt in statements:
            info = stmt.info
            if info.kind in (DEF, CLASS) and info.name is not None:
                for name in info.body_calls:
                    callers.setdefault(name, []).append(info.name)
        made = cls(
            _binders(statements),
            writers,
            writes,
            mutators,
            frozenset(attribute_sets),
            last_write,
            by_info,
            callers,
        )
        source.derived["planner"] = made
        return made
