"""What a reload runs: the difference between two versions of a module, and what depends on it.

Pure functions over :mod:`hotswap._plan.statements` (no live objects: the few facts about live
objects the rules need come in through :class:`Live`). DESIGN §5.1 and §5.2:

- the statements of the new source are aligned with the live ones by text, then by digest
  (so a comment or layout change is no change); a new statement without a counterpart runs;
- an unchanged statement runs again when, while it runs, it reads a name that was *rebound*
  (bound to another object) or calls a name that is *dirty* (a function or class whose code
  changed, or whose body reads a rebound or dirty name); in importers too, through
  ``from m import x`` and ``m.x`` (the caller passes what changed upstream);
- a ``def`` whose decorator lines and their inputs did not change is updated in place: its
  decorators do not run again; a class statement runs again and is merged into the kept class,
  or replaced (rebinding its name) when it cannot be merged;
- when a statement binding ``x`` runs, every later statement binding ``x`` runs too (the last
  writer wins, as in a fresh import); a statement removed from the source that bound ``x`` makes
  the remaining binders of ``x`` run again;
- a statement that writes into a plain container ``x`` of the module while it runs (``x[k] =
  v``, ``x.append(...)``, or a call of a function of the module whose body does, such as a
  ``@register`` decorator) is one of ``x``'s *writers*. When a writer is removed, runs again,
  or is inserted before another one, ``x`` is *rebuilt*: its binding statement and every
  remaining writer run again in source order, a ``def`` with its decorators applied to the
  kept function (:data:`REDECORATE`), so the registry holds what a fresh import would;
- nothing at or after the statement a thread is running (``__main__``'s main loop), and no
  ``if __name__ == "__main__":`` block of ``__main__``, ever runs: such changes are *skipped*.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from difflib import SequenceMatcher

from hotswap._plan.indexes import Indexes, writes_of
from hotswap._plan.rebinding import same_module_imports
from hotswap._plan.statements import (
    CLASS,
    DEF,
    FUTURE,
    MAIN,
    OTHER,
    Info,
    ModuleSource,
    Statement,
)

__all__ = ("INPLACE", "REDECORATE", "RUN", "Live", "Plan", "Upstream", "align", "plan")

RUN = "run"  # the statement runs whole
INPLACE = "inplace"  # a def runs without its decorators and updates the kept function
# A def updates the kept function, then its decorators run again on it (a registry rebuilt).
REDECORATE = "redecorate"


@dataclass(frozen=True)
class Live:
    """Facts about the live module that the rules need.

    Attributes:
        replaced: whether the live class of that name cannot take a merge (an Enum, a custom
            metaclass such as pydantic's) and must be replaced.
        container: whether the live object of that name is a plain container (list, dict,
            set...) or a plain value (a counter a function rebinds through ``global``),
            rebuilt when a statement that wrote it is removed or runs again.
        inplace: whether the live definition of that name leads to a function of the module
            that can be updated in place.
        running: the first line of the statement a thread is running in this module's
            top-level code (None: none is).
        is_main: the module is the program's ``__main__``.
        keep: ``__hotswap_keep__`` names.
        rebound: names known to be rebound already (a class a run replaced unexpectedly).
        rerun: first lines of statements to run as if they changed (they read a data file
            that changed).
        present: whether the module binds that name now (``import os ... del os``: not).
    """

    replaced: Callable[[str], bool] = lambda name: False
    container: Callable[[str], bool] = lambda name: False
    inplace: Callable[[str], bool] = lambda name: True
    running: int | None = None
    is_main: bool = False
    keep: frozenset[str] = frozenset()
    rebound: frozenset[str] = frozenset()
    rerun: frozenset[int] = frozenset()
    present: Callable[[str], bool] = lambda name: True


@dataclass(frozen=True)
class Upstream:
    """What changed in the modules this one imports from (DESIGN §5.2).

    Attributes:
        rebound: module name -> its names bound to another object (or removed).
        dirty: module name -> its functions and classes whose code changed.
        resolve: the absolute module name of ``from <level dots><module> import``.
        target: ``(local name, attribute chain)`` -> (module, attribute) when the local name
            is bound to a module and the chain leads to one of its attributes, else None.
    """

    rebound: Mapping[str, frozenset[str]] = field(default_factory=dict)
    dirty: Mapping[str, frozenset[str]] = field(default_factory=dict)
    resolve: Callable[[int, str], str] = lambda level, module: module
    target: Callable[[str, tuple[str, ...]], tuple[str, str] | None] = lambda n, c: None


@dataclass
class Plan:
    """What to do to one module.

    Attributes:
        run: (index into the new statements, :data:`RUN` or :data:`INPLACE`), source order.
        direct: indices of new statements that changed (the rest of ``run`` are dependents).
        skipped: (index, reason) of changed or dependent statements deliberately not run.
        removed: names no statement binds any more.
        rebound: names bound to another object by this plan (for importers).
        dirty: functions and classes whose behaviour changed (for importers).
        attribute_deletes: ``(x, attr)`` set by a removed ``x.attr = ...`` statement.
        replaced: class names predicted to be replaced, not merged.
        effects_removed: first lines (in the live source) of removed statements that bound
            nothing and only acted (``logger.setLevel(...)``, ``atexit.register(f)``): what
            they did stays until a restart, and is reported.
        writes: module names whose objects the statements that run may mutate in place
            (directly or through the module's functions they call): a transaction keeps
            the contents of those containers aside.
        running_from: the line of the new source from which no statement may ever run (a
            thread runs the module's top-level code there: ``__main__``'s loop), or None.
            Kept with the version this source becomes, since the line the thread reports is
            one of the source it started from, which later saves may have moved or changed.
        annotations: a statement that annotated module names was removed (the module's
            annotations change even when no name is unbound: ``x: int`` alone binds nothing).
        aligned: :func:`align` of the two versions, when the plan made it (the commit moves
            the unchanged definitions' lines by it, without aligning again).
    """

    run: list[tuple[int, str]] = field(default_factory=list)
    direct: set[int] = field(default_factory=set)
    skipped: list[tuple[int, str]] = field(default_factory=list)
    removed: set[str] = field(default_factory=set)
    rebound: set[str] = field(default_factory=set)
    dirty: set[str] = field(default_factory=set)
    attribute_deletes: set[tuple[str, str]] = field(default_factory=set)
    replaced: set[str] = field(default_factory=set)
    writes: set[str] = field(default_factory=set)
    effects_removed: list[int] = field(default_factory=list)
    running_from: int | None = None
    annotations: bool = False
    aligned: list[int | None] | None = field(default=None, repr=False, compare=False)

    def __bool__(self) -> bool:
        """Whether there is anything to do (skipped statements are only reported; a removed
        statement that only acted may have registered something to take back)."""
        return bool(
            self.run
            or self.removed
            or self.attribute_deletes
            or self.annotations
            or self.effects_removed
        )


def align(old: list[Statement], new: list[Statement]) -> list[int | None]:
    """For each new statement, the index of its unchanged counterpart among the old ones.

    Equal text first (a common prefix and suffix, then a sequence match of the middle), then,
    within each stretch that differs, equal digests in order: a statement whose comments or
    layout changed is the same statement.
    """
    pairs: list[int | None] = [None] * len(new)
    start = 0
    limit = min(len(old), len(new))
    while start < limit and old[start].text == new[start].text:
        pairs[start] = start
        start += 1
    tail = 0
    while tail < limit - start and old[len(old) - 1 - tail].text == new[len(new) - 1 - tail].text:
        pairs[len(new) - 1 - tail] = len(old) - 1 - tail
        tail += 1
    old_mid = old[start : len(old) - tail]
    new_mid = new[start : len(new) - tail]
    if not old_mid or not new_mid:
        return pairs
    matcher = SequenceMatcher(None, [s.text for s in old_mid], [s.text for s in new_mid], False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            for k in range(i2 - i1):
                pairs[start + j1 + k] = start + i1 + k
            continue
        # Same code, other text (comments, layout): match digests in order, each new
        # statement to the first old one with its digest after the last match (an index of
        # the stretch by digest keeps it linear: a whole-module rewrite matches nothing).
        where: dict[str, list[int]] = {}
        for candidate in range(i1, i2):
            where.setdefault(old_mid[candidate].info.digest, []).append(candidate)
        i = i1
        for j in range(j1, j2):
            found = where.get(new_mid[j].info.digest)
            if not found:
                continue
            position = bisect_left(found, i)
            if position < len(found):
                candidate = found[position]
                pairs[start + j] = start + candidate
                i = candidate + 1
    return pairs


def _first_blocked(
    old_statements: list[Statement],
    statements: list[Statement],
    pairs: list[int | None],
    running: int | None,
    old: ModuleSource | None,
) -> int | None:
    """The index of the first new statement that must not run: the counterpart of the live
    statement running at line ``running`` (of the live source), or the first one after it."""
    if running is None:
        return None
    if old is None:  # the live source is unknown: its lines are the best guess
        return next((i for i, s in enumerate(statements) if s.last >= running), len(statements))
    live_index = next(
        (i for i, s in enumerate(old_statements) if s.last >= running), len(old_statements)
    )
    if live_index in pairs:  # the running statement is unchanged: it and what follows
        return pairs.index(live_index)
    # It changed: its new version is the last changed statement before the next unchanged one
    # (statements inserted above it still run).
    after = [i for i, c in enumerate(pairs) if c is not None and c > live_index]
    limit = after[0] if after else len(statements)
    before = [i for i, c in enumerate(pairs[:limit]) if c is not None and c < live_index]
    start = before[-1] + 1 if before else 0
    # Which of them is the running one cannot be told for sure: block from the first (never
    # run the running statement again; an insertion just above it waits for a restart too).
    changed = [i for i in range(start, limit) if pairs[i] is None]
    return changed[0] if changed else limit


def plan(
    old: ModuleSource | None,
    new: ModuleSource,
    live: Live,
    upstream: Upstream | None = None,
    *,
    force: bool = False,
) -> Plan:
    """What runs in the module whose live source is ``old`` to make it ``new``.

    ``old`` None means the live source is not known: every statement counts as changed, and
    the caller's ``live`` facts decide (the first reload of a module imported before hotswap).
    ``force`` runs every statement (a reset), under the same rules for ``__main__``.
    """
    result = Plan()
    statements = new.statements
    old_statements = [] if old is None else old.statements
    pairs = align(old_statements, statements) if old is not None and not force else []
    if old is not None and not force:
        result.aligned = pairs
    if force or old is None:
        pairs = [None] * len(statements)
    matched = {i for i in pairs if i is not None}
    removed_old = [s for i, s in enumerate(old_statements) if i not in matched]
    old_indexes = None if old is None else Indexes.of(old)
    indexes = Indexes.of(new, old_indexes)
    binders, writes, last_write = indexes.binders, indexes.writes, indexes.last_write
    callers = indexes.callers
    mutators, attribute_sets = indexes.mutators, indexes.attribute_sets
    old_writers = {} if old_indexes is None else old_indexes.writers
    old_defs = {s.info.name: s for s in removed_old if s.info.kind in (DEF, CLASS)}
    same_modules: frozenset[int] = frozenset()
    if (old is not None and old.flags != new.flags) or any(
        s.info.kind == FUTURE for s in removed_old
    ):
        pairs = [None] * len(statements)  # __future__ changed: every statement means another thing
        same_modules = same_module_imports(old_statements, statements)

    first_blocked = _first_blocked(old_statements, statements, pairs, live.running, old)
    if first_blocked is not None:
        result.running_from = (
            statements[first_blocked].first
            if first_blocked < len(statements)
            else (statements[-1].last + 1 if statements else 1)
        )

    def blocked(index: int) -> str | None:
        stmt = statements[index]
        if first_blocked is not None and index >= first_blocked:
            line = statements[min(first_blocked, len(statements) - 1)].first
            return f"running since line {line}: restart to apply"
        if live.is_main and stmt.info.kind == MAIN:
            return "the program's entry point (if __name__ == '__main__'): restart to apply"
        return None

    chosen: dict[int, str] = {}
    rebound: set[str] = set(live.rebound)
    dirty: set[str] = set()
    upstream = upstream or Upstream()

    def decorated_by_rebound(info: Info) -> bool:
        """Whether a decorator is an attribute of another module that its change rebinds
        (``@toolz.curry`` after ``curry`` was replaced): the def runs whole again."""
        if not upstream.rebound or not info.decorator_reads:
            return False
        for local, chain in info.attribute_reads:
            found = upstream.target(local, chain) if local in info.decorator_reads else None
            if found is not None and found[1] in upstream.rebound.get(found[0], ()):
                return True
        return False

    def choose(index: int, *, direct: bool, redecorate: bool = False) -> None:
        if index in chosen:
            if redecorate and chosen[index] != REDECORATE and statements[index].info.kind == DEF:
                name = statements[index].info.name
                if name is not None and live.inplace(name):
                    chosen[index] = REDECORATE
                    rebound.add(name)
            return
        reason = blocked(index)
        if reason is not None:
            # A changed statement that cannot run is reported; a dependent one (the main loop
            # reads a changed constant) needs nothing: it reads the new value as it goes.
            if direct:
                result.skipped.append((index, reason))
            return
        stmt = statements[index]
        info = stmt.info
        if info.binds and info.binds <= live.keep:
            return  # kept names keep their objects: nothing to run
        mode = RUN
        if info.kind == DEF and info.name is not None:
            before = old_defs.get(info.name) if direct else stmt
            same_decorators = before is not None and before.info.decorators == info.decorators
            inputs_changed = (
                bool(info.decorator_reads & rebound)
                or bool((info.decorator_reads & dirty) & info.called)
                or decorated_by_rebound(info)
            )
            kept = live.inplace(info.name)
            if same_decorators and not inputs_changed and not redecorate and kept:
                mode = INPLACE
                dirty.add(info.name)
            elif kept and (redecorate or any(live.container(n) for n in writes[index])):
                # Its decorators run and fill a container of the module (a registry): they
                # register the kept function, the one its name holds, as a fresh import does.
                mode = REDECORATE
                rebound.add(info.name)
                dirty.add(info.name)
            else:
                rebound.add(info.name)
        elif info.kind == CLASS and info.name is not None:
            before = old_defs.get(info.name) if direct else stmt
            header_changed = before is None or before.info.header != info.header
            # A base rebound (replaced, or another object): the class is created again on
            # it and cannot be merged into the kept one, whose bases are the old ones.
            base_rebound = before is not None and bool(info.header_reads & rebound)
            if live.replaced(info.name) or (before is not None and header_changed) or base_rebound:
                rebound.add(info.name)
                result.replaced.add(info.name)
            elif before is None or before.info.construction != info.construction or not direct:
                dirty.add(info.name)
            # The merge takes the new body's attributes: later statements that set or fill
            # attributes of the class (``C.extra = 5``, ``C.items.append(1)``) run again.
            for later in mutators.get(info.name, ()):
                if later > index:
                    choose(later, direct=False)
        elif index not in same_modules:
            rebound.update(info.binds - live.keep)
        chosen[index] = mode
        if direct:
            result.direct.add(index)
        # A name it reads that a later statement deleted (``import os``, ``del os``): its
        # binders before it run again, as in a fresh import (and the deleter after it).
        for name in info.reads:
            if not live.present(name):
                for earlier in binders.get(name, ()):
                    if earlier < index:
                        choose(earlier, direct=False)
        if mode != INPLACE:
            # The last writer wins: later statements binding the same names run too.
            for name in info.binds:
                for later in binders.get(name, ()):
                    if later > index:
                        choose(later, direct=False)

    for index, counterpart in enumerate(pairs):
        if counterpart is None or statements[index].first in live.rerun:
            choose(index, direct=True)
    # Writers of the module's containers (see the module docstring). A changed def updated in
    # place keeps its registration: its old version is no removed writer.
    kept_registrations = {statements[i].info.name for i, mode in chosen.items() if mode == INPLACE}
    to_rebuild: set[str] = set()
    rebuilt: set[str] = set()
    for stmt in removed_old:
        if live.running is not None and stmt.last >= live.running:
            continue  # still running (the main loop's old version): its effects stand
        info = stmt.info
        if info.annotates:
            result.annotations = True
        for name in info.binds:
            if name not in binders:
                if name != "*":
                    result.removed.add(name)
                    rebound.add(name)
            else:  # still bound elsewhere: those statements decide its value again
                for index in binders[name]:
                    choose(index, direct=False)
        # Mutations of objects the module does not own (``other.REG["k"] = f``), besides the
        # attributes a removed statement set (deleted below).
        acted = info.mutates - {target for target, _ in info.attribute_sets}
        if (
            info.kind == OTHER
            and not info.binds
            and (info.called or info.called_attributes or acted)
        ):
            undone = writes_of(stmt, old_writers)
            if not undone or not all(live.container(n) for n in undone):
                result.effects_removed.append(stmt.first)
        if not (info.kind == DEF and info.name in kept_registrations):
            to_rebuild.update(n for n in writes_of(stmt, old_writers) if live.container(n))
        for target, attribute in info.attribute_sets:
            if (target, attribute) in attribute_sets:
                continue
            if attribute.startswith("__") and attribute.endswith("__"):
                # ``f.__doc__ = ...`` gone: what the definition itself sets comes back when
                # it runs again (a deleted dunder would not be what a fresh import has).
                for index in binders.get(target, ()):
                    choose(index, direct=False)
            else:
                result.attribute_deletes.add((target, attribute))

    def rebuild(name: str) -> None:
        rebuilt.add(name)
        found = binders.get(name, [])
        if not found or name in live.keep:
            return
        first = min(found)
        users = [i for i, w in enumerate(writes) if name in w and i > first and i not in found]
        if any(blocked(i) for i in [*found, *users]):
            return  # a rebuild would miss what the running statement wrote: leave it be
        for index in found:
            choose(index, direct=False)
        for index in users:
            choose(index, direct=False, redecorate=True)

    def rebuilds() -> set[str]:
        """Containers to rebuild: a removed writer, or a writer that ran before running again
        or one inserted before another writer (its entry would land out of order)."""
        found = set(to_rebuild)
        for index, mode in chosen.items():
            if mode == INPLACE:
                continue
            counterpart = pairs[index] if pairs else None
            ran_before = counterpart is not None
            names = writes[index]
            if counterpart is not None:
                # What it wrote into before, through the old functions and class hooks (a
                # base's __init_subclass__ that registers elsewhere now).
                names = names | writes_of(old_statements[counterpart], old_writers)
            for name in names:
                if name in found or name in rebuilt or not live.container(name):
                    continue
                later = last_write.get(name, -1) > index
                if (ran_before or later) and name not in statements[index].info.binds:
                    found.add(name)
        return found - rebuilt

    # Dependents, to a fixed point: a statement whose inputs changed runs again.
    rebound_up = upstream.rebound
    dirty_up = upstream.dirty
    changing = True
    while changing:
        changing = False
        # A container written by a statement that runs: the statements after it that read the
        # container run again (``B.append(x)`` added before ``R = list(B)``).
        mutated: dict[str, int] = {}
        for index, mode in chosen.items():
            if mode == INPLACE:
                continue
            for name in writes[index] - statements[index].info.binds:
                if index < mutated.get(name, len(statements)) and live.container(name):
                    mutated[name] = index
        # A function or class whose body loads a rebound or dirty name is dirty, to a fixed
        # point before the statements are looked at (one walk of the callers: a chain of
        # calls written from the top down no longer takes a pass over the module per link).
        todo = [name for name in (*rebound, *dirty) if name in callers]
        while todo:
            for caller in callers[todo.pop()]:
                if caller not in dirty:
                    dirty.add(caller)
                    if caller in callers:
                        todo.append(caller)
        for index, stmt in enumerate(statements):
            if index in chosen:
                continue
            info = stmt.info
            # (isdisjoint rather than ``&``: this loop runs over every statement, each pass.)
            trigger = not (info.reads.isdisjoint(rebound) and info.called.isdisjoint(dirty))
            if not trigger and mutated:
                trigger = any(index > mutated.get(n, index) for n in info.reads)
            starred: set[str] = set()  # names a ``from m import *`` that runs again rebinds
            for level, module, name, local in info.from_imports:
                source = upstream.resolve(level, module)
                if name == "*" and rebound_up.get(source):
                    trigger = True
                    starred.update(rebound_up[source] - {"*"})
                elif name in rebound_up.get(source, ()):
                    trigger = True
                elif name in dirty_up.get(source, ()) and local not in dirty:
                    dirty.add(local)
                    changing = True
            if not trigger and (rebound_up or dirty_up):
                for local, chain in info.attribute_reads:
                    found = upstream.target(local, chain)
                    if found is None:
                        continue
                    module, attribute = found
                    # A changed function matters where it is called (``m.make_table()``), not
                    # where it is only referenced (``HANDLERS.append(m.handler)``).
                    called = (local, chain) in info.called_attributes
                    if attribute in rebound_up.get(module, ()) or (
                        called and attribute in dirty_up.get(module, ())
                    ):
                        trigger = True
                        break
            if trigger:
                before = len(chosen)
                choose(index, direct=False)
                changing = changing or len(chosen) != before
                # Its importers take those names from this module (``pkg.curry`` after
                # ``from .functoolz import *`` in pkg): they follow as for a name it binds.
                rebound.update(starred - live.keep)
        if not changing:
            for name in sorted(rebuilds()):
                rebuild(name)
                changing = True
    result.run = sorted(chosen.items())
    result.writes = {
        name for index, mode in result.run if mode != INPLACE for name in writes[index]
    }
    result.rebound = rebound
    result.dirty = dirty
    result.skipped.sort()
    return result
