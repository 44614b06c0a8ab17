"""One module of a change set as the transaction carries it, and the failure that ends an
attempt."""

from __future__ import annotations

import dataclasses
import types
from dataclasses import dataclass, field
from typing import Any

from hotswap._engine.execute import Executed, live_facts, running_line
from hotswap._engine.history import Record
from hotswap._engine.snapshot import ModuleState
from hotswap._plan import planner as _planner
from hotswap._plan import statements as _statements
from hotswap.exceptions import CanaryError

__all__ = ("Failure", "Unit", "canary_running", "facts", "keep")


class Failure(Exception):
    """Carries a failed attempt's error out of the steps below."""

    def __init__(self, error: BaseException, *, rolled_back: bool = False) -> None:
        super().__init__(str(error))
        self.error = error
        self.rolled_back = rolled_back


@dataclass
class Unit:
    """One module of a change set: a changed file (a root) or an importer that follows."""

    module: types.ModuleType
    record: Record
    path: str
    new: _statements.ModuleSource
    old: _statements.ModuleSource | None  # None: the live source is unknown
    root: bool
    data: bytes | None = None
    digest: str | None = None
    before: str | None = None  # the digest of the source live when it was read
    origin: str = ""  # the root whose change reached this importer
    plan: _planner.Plan = field(default_factory=_planner.Plan)
    warnings: tuple[str, ...] = ()
    code: types.CodeType | None = None
    snapshot: ModuleState | None = None
    executed: Executed | None = None
    force: bool = False
    fresh: bool = False  # an importer whose record is registered only if it runs
    # First lines of statements to run as if changed: they read a changed data file, or bind a
    # container that another module's running statement fills (crosswriters).
    rerun: frozenset[int] = frozenset()
    names: set[str] = field(default_factory=set)  # the names the caller gave for it
    # Statements of the new source that only act and that nothing tells apart from what the
    # module ran (imported before hotswap, saved before its source was read, no bytecode
    # cache of it left): taken for what ran, so not run, and reported in ``skipped``.
    unknown: list[int] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.record.name


def keep(namespace: dict[str, Any]) -> frozenset[str]:
    names = namespace.get("__hotswap_keep__", ())
    if isinstance(names, str):
        names = (names,)
    try:
        return frozenset(str(k) for k in names)
    except TypeError:
        return frozenset()


def canary_running(name: str) -> CanaryError:
    message = f"{name}: a canary of it runs; promote() or abort() it first"
    return CanaryError(message, module=name)


def facts(unit: Unit) -> _planner.Live:
    namespace = vars(unit.module)
    line = running_line(namespace)
    origin = unit.record.origin
    if line is not None and origin is not None and unit.old is not None and unit.old is not origin:
        # Where the running statement sits in the live source: as the plan that made the live
        # version placed it (a loop edited since no longer matches the text it runs from), else
        # found by aligning the two sources.
        stored = unit.record.current.running_from
        if stored is not None and unit.record.current.source is unit.old:
            line = stored
        else:
            line = _live_line(origin, unit.old, line)
    facts = live_facts(unit.module, line, keep(namespace), is_main=unit.name == "__main__")
    return dataclasses.replace(facts, rerun=unit.rerun) if unit.rerun else facts


def _live_line(
    origin: _statements.ModuleSource, live: _statements.ModuleSource, line: int
) -> int | None:
    """Map a line of the source the top-level code ran from to the live source's lines."""
    if origin is live:
        return line
    index = next((i for i, s in enumerate(origin.statements) if s.last >= line), None)
    if index is None:
        return None
    pairs = _planner.align(origin.statements, live.statements)
    if index in pairs:
        return live.statements[pairs.index(index)].first
    # The running statement's text is not in the live source (it was edited since): it is one
    # of the unmatched statements after the last one matched above it. Which one cannot be
    # told, so the first of them counts (never run the running statement again).
    above = [p for p, c in enumerate(pairs) if c is not None and c < index]
    start = above[-1] + 1 if above else 0
    if start < len(live.statements):
        return live.statements[start].first
    return live.statements[-1].last + 1 if live.statements else None
