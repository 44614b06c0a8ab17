"""The order in which a change set's modules run: each after the modules of the set whose
changes its new source reads while it runs (DESIGN §5.3).

A save-all or a checkout comes in event order, and a module planned and run before a module it
reads from sees that module's old names: a name the other file only now adds fails, a value
it now binds differently is read stale, and nothing in the set runs the reader again. What a
module reads is taken from its *new* source: its ``from`` imports, and the attributes it loads
from a module object (``import pkg`` ... ``U = pkg.UNICODE``). In an import cycle (a package's
``__init__`` importing its submodule, which imports a name the ``__init__`` gains) only the
reads of what the other module changes decide; a function or class that is updated in place
keeps its identity, so reading it needs no order unless it is called while the module runs.
"""

from __future__ import annotations

import ast
import sys
import types
from dataclasses import dataclass
from typing import TYPE_CHECKING

from hotswap._engine.importers import absolute, imports_from
from hotswap._plan import statements as _statements

if TYPE_CHECKING:
    from hotswap._engine.unit import Unit

__all__ = ("in_import_order",)

# Past this many modules in one set the pairwise search costs more than it is worth (a checkout
# of a whole project: its modules run in the order the files came).
_MOST = 64


def in_import_order(units: list[Unit]) -> list[Unit]:
    """The change set's modules, each after the ones of the set it reads changes from."""
    if len(units) < 2 or len(units) > _MOST:
        return units
    modules = {id(u): _imported_modules(u.new) for u in units}
    after = {
        id(u): [v for v in units if v is not u and _imports(u, modules[id(u)], v.name)]
        for u in units
    }
    changes: dict[int, _Changes] = {}

    def changes_of(unit: Unit) -> _Changes:
        if id(unit) not in changes:
            changes[id(unit)] = _Changes.of(unit)
        return changes[id(unit)]

    # Stronger: the new source reads, while it runs, a name that only the other module's new
    # source adds or binds differently. In an import cycle these edges decide.
    needs = {
        id(u): [v for v in after[id(u)] if changes_of(v).read_by(_reads(u, modules[id(u)], v))]
        for u in units
    }

    def needs_one_of(upstream: Unit, waiting: set[int]) -> bool:
        """Whether ``upstream`` (transitively) needs one of the ``waiting`` units first."""
        stack, seen = [upstream], set()
        while stack:
            current = stack.pop()
            if id(current) in waiting:
                return True
            if id(current) not in seen:
                seen.add(id(current))
                stack.extend(needs[id(current)])
        return False

    ordered: list[Unit] = []
    placed: set[int] = set()

    def place(unit: Unit, path: set[int]) -> None:
        if id(unit) in placed or id(unit) in path:
            return  # placed already, or an import cycle: keep the given order
        waiting = path | {id(unit)}
        for upstream in needs[id(unit)]:
            place(upstream, waiting)
        for upstream in after[id(unit)]:
            # A plain import is no reason to run a module before one it needs that is still
            # waiting to be placed (the package reached from ``from . import types`` in core,
            # while placing what the package needs).
            if not needs_one_of(upstream, waiting):
                place(upstream, waiting)
        placed.add(id(unit))
        ordered.append(unit)

    for unit in units:
        place(unit, set())
    return ordered


@dataclass(frozen=True)
class _Reads:
    """The names of one module that another module's source loads while it runs, and those
    of them it calls (``*``: a star import takes them all)."""

    loaded: frozenset[str]
    called: frozenset[str]


@dataclass(frozen=True)
class _Changes:
    """What a module's new source changes for the modules reading it, told from the text
    alone (the plan comes later, in the order decided here)."""

    rebound: frozenset[str]  # added, bound by a changed statement, or by one reading those
    updated: frozenset[str]  # functions and classes updated in place: the same objects

    @classmethod
    def of(cls, unit: Unit) -> _Changes:
        live = vars(unit.module)
        old = unit.old.statements if unit.old is not None else []
        digests = {s.info.digest for s in old}
        definitions = {
            (s.info.kind, s.info.name): s.info
            for s in old
            if s.info.kind in (_statements.DEF, _statements.CLASS)
        }
        rebound: set[str] = set()
        updated: set[str] = set()
        for stmt in unit.new.statements:
            info = stmt.info
            inputs = info.reads | info.called
            if info.digest in digests and not inputs & rebound and not info.called & updated:
                continue
            before = definitions.get((info.kind, info.name))
            if (
                info.name is not None
                and info.name in live
                and before is not None
                and before.decorators == info.decorators
                and before.header == info.header
                and not inputs & rebound
            ):
                updated.add(info.name)  # updated in place: importers hold the same object
                continue
            rebound |= info.binds
        rebound |= {n for s in unit.new.statements for n in s.info.binds} - live.keys()
        return cls(frozenset(rebound), frozenset(updated - rebound))

    def read_by(self, reads: _Reads) -> bool:
        if "*" in reads.loaded:
            return bool(self.rebound or self.updated)
        return bool(reads.loaded & self.rebound or reads.called & (self.rebound | self.updated))


def _imported_modules(source: _statements.ModuleSource) -> dict[str, str]:
    """The modules the plain ``import`` statements of a source bind, by local name (``import
    a.b`` binds ``a``; ``import a.b as c`` binds ``c`` to ``a.b``)."""
    bound: dict[str, str] = {}
    for stmt in source.statements:
        if stmt.info.kind != _statements.IMPORT or stmt.info.from_imports:
            continue
        try:
            tree = ast.parse(stmt.text)
        except SyntaxError:
            continue
        for node in tree.body:
            for alias in node.names if isinstance(node, ast.Import) else ():
                if alias.asname:
                    bound[alias.asname] = alias.name
                else:
                    top = alias.name.partition(".")[0]
                    bound[top] = top
    return bound


def _imports(unit: Unit, modules: dict[str, str], target: str) -> bool:
    """Whether the new source of ``unit`` takes names from the module ``target``, or binds it
    (or a package above it) with an ``import`` statement."""
    if imports_from(unit.module, unit.new, target):
        return True
    return any(m == target or target.startswith(f"{m}.") for m in modules.values())


def _reads(unit: Unit, modules: dict[str, str], target: Unit) -> _Reads:
    """What the new source of ``unit`` loads from ``target`` while it runs: names it imports
    from it, and attributes it loads from it as a module object."""
    namespace = vars(unit.module)
    package = namespace.get("__package__") or ""
    names: dict[str, str] = {}  # local name -> the target's name it was imported as
    paths: dict[str, tuple[str, ...]] = {}  # local name -> the attributes leading to target
    loaded: set[str] = set()
    for stmt in unit.new.statements:
        for level, module, name, local in stmt.info.from_imports:
            imported = absolute(package, level, module)
            if imported == target.name:
                names[local] = name
                loaded.add(name)
            elif f"{imported}.{name}" == target.name:
                paths[local] = ()
    called: set[str] = set()
    for stmt in unit.new.statements:
        info = stmt.info
        called |= {names[n] for n in info.called if n in names}
        for attributes, into in ((info.attribute_reads, loaded), (info.called_attributes, called)):
            for local, chain in attributes:
                path = paths.get(local)
                if path is None and local in modules:
                    path = _path(modules[local], target.name)
                if path is None:
                    path = _path_to(namespace, local, target.name)
                if path is not None and len(chain) > len(path) and chain[: len(path)] == path:
                    into.add(chain[len(path)])
    return _Reads(frozenset(loaded), frozenset(called))


def _path_to(namespace: dict[str, object], local: str, target: str) -> tuple[str, ...] | None:
    """The attributes leading from the module bound to ``local`` to the module ``target``
    (``import pkg`` reads ``pkg.cli.X``), or None when ``local`` is not such a module."""
    # A module the new source imports that the live one did not: ``import pkg`` binds the
    # top-level package, which is already imported.
    value = namespace.get(local) if local in namespace else sys.modules.get(local)
    if not isinstance(value, types.ModuleType):
        return None
    return _path(value.__name__, target)


def _path(name: str, target: str) -> tuple[str, ...] | None:
    if name == target:
        return ()
    if target.startswith(f"{name}."):
        return tuple(target[len(name) + 1 :].split("."))
    return None
