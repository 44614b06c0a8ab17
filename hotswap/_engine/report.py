"""What a transaction tells its caller: the changes with their lines, the dependents, what was
skipped, and errors that name the user's file and line."""

from __future__ import annotations

import enum
import logging
import os
import traceback
from typing import TYPE_CHECKING, Any

from hotswap._ops.events import Changes, Dependent, Skipped, display_path, location
from hotswap._plan.diff import diff
from hotswap._plan.modules import OWN_DIR, excluded_roots
from hotswap.exceptions import ExecutionError

if TYPE_CHECKING:
    from hotswap._engine.unit import Unit as _Unit

__all__ = ("UNKNOWN_EFFECT", "changes_of", "dependents_of", "error_in", "skipped_of")

logger = logging.getLogger(__name__)

_OWN = os.path.realpath(OWN_DIR.rstrip(os.sep))


def _error_line(error: BaseException, filename: str) -> int | None:
    """The deepest line of ``filename`` in the traceback: where the new code failed."""
    if isinstance(error, SyntaxError) and error.filename == filename:
        return error.lineno
    lines = [
        frame.lineno
        for frame in traceback.extract_tb(error.__traceback__)
        if frame.filename == filename
    ]
    return lines[-1] if lines else None


def error_in(
    kind: type[ExecutionError], name: str, path: str, error: BaseException, what: str
) -> ExecutionError:
    """``kind`` wrapping ``error``, naming the module, the file and the line of the new code
    that failed; the traceback stays on the original (``__cause__``) and is logged at debug."""
    line = _error_line(error, path)
    detail = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
    deepest = _deepest_project_frame(error)
    if deepest is not None and deepest.filename != path:
        # Raised in a helper the new code called (another module of the project): name where.
        where = f"{display_path(deepest.filename)}:{deepest.lineno}"
        detail += f" (raised at {where})"
    message = f"{location(name, path, line)}: {detail} {what}; rolled back"
    wrapped = kind(message, module=name, filename=path, lineno=line)
    wrapped.__cause__ = error
    logger.debug("hotswap: %s", message, exc_info=error)
    return wrapped


def _deepest_project_frame(error: BaseException) -> traceback.FrameSummary | None:
    """The innermost frame of the traceback in the user's code: not hotswap's own, not the
    standard library's or an installed package's (a ``json.loads`` that failed in a helper
    names the helper's line), not generated code (``<string>``)."""
    skipped = (_OWN, *excluded_roots())
    for frame in reversed(traceback.extract_tb(error.__traceback__)):
        file = frame.filename
        if not os.path.isabs(file):
            continue
        real = os.path.realpath(file)
        if not any(real == root or real.startswith(root + os.sep) for root in skipped):
            return frame
    return None


def _replaced_reason(old: Any, new: Any) -> str:
    if isinstance(old, enum.EnumMeta):
        return "it is an Enum"
    meta = type(old)
    if isinstance(old, type) and meta is not type and meta.__module__ not in ("abc", "typing"):
        return f"its metaclass {meta.__name__} derives it from its body"
    if isinstance(old, type) and isinstance(new, type):
        if vars(old).get("__slots__") != vars(new).get("__slots__"):
            return "its __slots__ changed"
        if old.__bases__ == new.__bases__:
            return "its class statement's bases or keywords changed"
    return "its bases changed"


def changes_of(unit: _Unit) -> Changes:
    """What the unit's run changed, by qualified name, with lines in the new source."""
    assert unit.snapshot is not None
    assert unit.executed is not None
    old = unit.snapshot.namespace
    live = vars(unit.module)
    exact = unit.old is not None and unit.old.source != ""
    # The symbol tables and their diff serve only the classes that ran (their members are
    # reported one by one): a reload that ran none neither builds nor compares them.
    members_of: dict[str, list[tuple[str, str]]] | None = None
    added: list[str] = []
    changed: list[str] = []
    removed: list[str] = []
    lines: dict[str, tuple[int, int]] = {}
    for index, _ in unit.plan.run:
        stmt = unit.new.statements[index]
        info = stmt.info
        for name in sorted(info.binds - {"*", "__doc__"}):
            if name not in live:
                continue
            lines[name] = stmt.lines
            if name not in old:
                added.append(name)
                continue
            members = None
            # Worked out from the live objects, the old source describes the members of a
            # class only where they were compared with the live class's (else: the class).
            if (
                info.kind == "class"
                and unit.old is not None
                and (exact or name in unit.old.symbols)
            ):
                if members_of is None:
                    members_of = _members(diff(unit.old.symbols, unit.new.symbols))
                members = members_of.get(name, [])
            if members:
                new_symbols = unit.new.symbols
                for kind, qualname in members:
                    line = new_symbols.line(qualname) if qualname in new_symbols else stmt.first
                    if kind == "-" and unit.old is not None:
                        line = unit.old.symbols.line(qualname)
                    lines[qualname] = (line, line)
                    (added if kind == "+" else removed if kind == "-" else changed).append(qualname)
            else:
                changed.append(name)
    for name in sorted(unit.plan.removed):
        if name in old and name not in live:
            removed.append(name)
            if unit.old is not None:
                span = unit.old.spans().get(name)
                if span is not None:
                    lines[name] = span
    replaced = list(unit.executed.replaced)
    for name in sorted(unit.plan.replaced):
        if name in old and not any(r.startswith(f"{name} (") for r in replaced):
            reason = _replaced_reason(old[name], vars(unit.module).get(name))
            replaced.append(f"{name} ({reason})")
    replaced_names = {r.split(" ", 1)[0] for r in replaced}
    changed = [n for n in changed if n not in replaced_names]

    def ordered(names: list[str]) -> tuple[str, ...]:
        return tuple(sorted(dict.fromkeys(names), key=lambda n: (lines.get(n, (0, 0))[0], n)))

    return Changes(ordered(added), ordered(changed), ordered(removed), tuple(replaced), lines)


def _members(delta: Any) -> dict[str, list[tuple[str, str]]]:
    """Class name -> its members' changes (``+`` added, ``~`` changed, ``-`` removed), the
    class itself last when it changed: one pass over the diff, whatever the number of
    classes that ran."""
    found: dict[str, list[tuple[str, str]]] = {}
    if delta is None:
        return found
    for kind, names in (("+", delta.added), ("~", delta.changed), ("-", delta.removed)):
        for qualname in names:
            top, dot, _ = qualname.partition(".")
            if dot:
                found.setdefault(top, []).append((kind, qualname))
    for name in {*delta.changed, *delta.added}:
        if "." not in name:
            # The class itself (its attributes, header) changed too.
            found.setdefault(name, []).append(("~", name))
    return found


def dependents_of(root: str, importers: list[_Unit]) -> tuple[Dependent, ...]:
    """The importers whose statements ran because of ``root``'s change."""
    return tuple(
        Dependent(u.name, tuple(u.new.statements[i].first for i, _ in u.plan.run))
        for u in importers
        if u.origin == root and u.plan.run
    )


# Why a statement that only acts is not run at the first save of a module imported before
# hotswap, saved before its source was read, when no bytecode cache of the imported source
# tells whether the statement was in it.
UNKNOWN_EFFECT = (
    "not run: whether it ran at import is unknown (the module was imported before hotswap "
    "and saved before its source was read; no bytecode cache of the imported source is left): "
    "a restart runs it"
)


def skipped_of(unit: _Unit) -> tuple[Skipped, ...]:
    """The unit's changed statements that were deliberately not run."""
    found = []
    for index, reason in unit.plan.skipped:
        stmt = unit.new.statements[index]
        found.append(Skipped(stmt.first, reason, tuple(sorted(stmt.info.binds))))
    ran = {index for index, _ in unit.plan.run}
    for index in unit.unknown:
        if index not in ran:
            stmt = unit.new.statements[index]
            found.append(Skipped(stmt.first, UNKNOWN_EFFECT))
    for line in unit.plan.effects_removed:
        reason = f"removed (line {line} of the previous version): what it did stays until a restart"
        found.append(Skipped(line, reason))
    return tuple(found)
