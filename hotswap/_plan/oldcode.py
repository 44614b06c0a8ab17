"""The code a module was imported from, read back from its cached ``.pyc`` (issue 25).

A module imported before hotswap, saved before the warm-up read its file, has no old source:
its first reload works out what ran from the live objects. A statement that only acts
(``EVENTS.append("added")``) leaves nothing live to compare. The import's bytecode cache
(``module.__spec__.cached``, written by default) still holds the old top-level code, and its
header the size and mtime (or the hash) of the source it was compiled from. This module reads
it, refuses a cache that the current file's own compile could be (its header describes the
file as it is now, or it was written after the file's last save), and tells which of the new
source's top-level statements the old code holds: each statement's instructions, with their
positions counted from the statement's first line, are looked for in the old code at every
line they could start at. The caller checks the cache against the live functions too
(:func:`hotswap._engine.baseline.synthesize`).
"""

from __future__ import annotations

import dataclasses
import dis
import importlib.util
import marshal
import os
import sys
import types
from collections.abc import Iterable, Sequence

from hotswap._plan.statements import Statement
from hotswap._plan.symbols import code_key

__all__ = ("Gone", "Shapes", "Told", "cached_code", "existed")

_JUMPS = frozenset(dis.hasjrel) | frozenset(dis.hasjabs) | frozenset(getattr(dis, "hasjump", ()))
_CONSTS = frozenset(dis.hasconst)
# Not the statements' own: the module's prologue and epilogue (a module cannot ``return``, so
# every return is the implicit one, which the compiler copies into the branches of the last
# statement), line markers, and the annotations set up for any annotated statement.
_SKIPPED = frozenset(
    {"NOP", "EXTENDED_ARG", "CACHE", "RESUME", "RETURN_VALUE", "RETURN_CONST", "SETUP_ANNOTATIONS"}
)
_FLAG_HASHED = 0b1


def cached_code(source_path: str, cached: object) -> types.CodeType | None:
    """The top-level code in ``cached`` (a module's ``__spec__.cached``), when it was compiled from
    an earlier version of ``source_path`` than the one there now; None when there is none,
    when it is of another Python, or when the file as it is now may be what it was compiled
    from (the caller then knows nothing from it)."""
    if not isinstance(cached, str) or sys.dont_write_bytecode:
        # With bytecode writing off, an import leaves a stale cache as it found it: one left by
        # another run may be of any version of the file, the imported one or not.
        return None
    try:
        now = os.stat(source_path)
        with open(cached, "rb") as handle:
            header = handle.read(16)
            written = os.fstat(handle.fileno()).st_mtime
            if len(header) < 16 or header[:4] != importlib.util.MAGIC_NUMBER:
                return None
            if written > now.st_mtime:
                return None  # written after the file's last save: of that version, or later
            flags = int.from_bytes(header[4:8], "little")
            if flags & _FLAG_HASHED:
                with open(source_path, "rb") as source:
                    if header[8:16] == importlib.util.source_hash(source.read()):
                        return None
            else:
                mtime = int.from_bytes(header[8:12], "little")
                size = int.from_bytes(header[12:16], "little")
                if (mtime, size) == (int(now.st_mtime) & 0xFFFFFFFF, now.st_size & 0xFFFFFFFF):
                    return None  # compiled from the file as it is now
            data = handle.read()
    except OSError:
        return None
    try:
        code = marshal.loads(data)
    except (EOFError, ValueError, TypeError):
        return None
    return code if isinstance(code, types.CodeType) else None


def _const(value: object, memo: dict[int, object]) -> object:
    if isinstance(value, types.CodeType):
        # A definition's code is asked for again with each line that may start it: its key
        # is made once (``memo`` holds it by the id of the code, which the caller keeps).
        found = memo.get(id(value))
        if found is None:
            found = memo[id(value)] = code_key(value)
        return found
    if type(value) is tuple:
        return tuple(_const(v, memo) for v in value)
    return (type(value), value)


_Shape = tuple[tuple[object, ...], ...]


def _argument(instruction: dis.Instruction, memo: dict[int, object]) -> object:
    """What an instruction's argument stands for, wherever the code stands (a jump's is where
    it lands: see :class:`Shapes`)."""
    if instruction.opcode in _CONSTS:
        return _const(instruction.argval, memo)
    return (instruction.argval, instruction.argrepr)


@dataclasses.dataclass(frozen=True, slots=True)
class _Entry:
    """One instruction that belongs to a statement, read once."""

    line: int
    end: int | None
    opname: str
    argument: object  # None for a jump: where it lands is ``landing``
    columns: tuple[int | None, int | None]
    landing: int | None  # a jump's: the index of the entry it lands on (-1: none)


class Shapes:
    """A module's code, read by the lines its instructions stand on.

    A statement's shape is its instructions in the code's order: what each does, where it
    stands counted from the statement's first line, and, for a jump, which of the
    statement's own instructions it lands on (or none: past the statement). Line markers, the
    module's implicit return (which the compiler copies into the branches of the last
    statement) and the annotations' set-up belong to no statement.
    """

    def __init__(self, code: types.CodeType) -> None:
        memo: dict[int, object] = {}  # a definition's code key, by the code's id (see _const)
        every = list(dis.get_instructions(code))
        kept: list[int] = []  # positions in ``every`` of the instructions that are entries
        for n, instruction in enumerate(every):
            positions = instruction.positions
            if positions is None or positions.lineno is None or instruction.opname in _SKIPPED:
                continue
            after = every[n + 1] if n + 1 < len(every) else None
            if after is not None and after.opname == "RETURN_VALUE" and instruction.argval is None:
                continue  # the None the module's implicit return returns
            kept.append(n)
        # offset -> the index of the first entry at or after it (where a jump lands)
        landing_at: dict[int, int] = {}
        following = -1
        position = len(kept) - 1
        for n in range(len(every) - 1, -1, -1):
            if position >= 0 and kept[position] == n:
                following = position
                position -= 1
            landing_at[every[n].offset] = following
        self.entries: list[_Entry] = []
        self.by_line: dict[int, list[int]] = {}
        # what opens a statement (an entry but its place) -> the lines entries like it stand on
        self.openings: dict[tuple[object, ...], list[int]] = {}
        for n in kept:
            instruction = every[n]
            positions = instruction.positions
            assert positions is not None
            assert positions.lineno is not None
            jump = instruction.opcode in _JUMPS and isinstance(instruction.argval, int)
            entry = _Entry(
                positions.lineno,
                positions.end_lineno,
                instruction.opname,
                None if jump else _argument(instruction, memo),
                (positions.col_offset, positions.end_col_offset),
                landing_at.get(instruction.argval, -1) if jump else None,
            )
            self.by_line.setdefault(entry.line, []).append(len(self.entries))
            self.openings.setdefault(_opening(entry), []).append(entry.line)
            self.entries.append(entry)

    def run(self, first: int, last: int) -> list[int]:
        """The indices of the entries on lines ``first`` to ``last``, in the code's order."""
        found: list[int] = []
        for line in range(first, last + 1):
            found += self.by_line.get(line, ())
        found.sort()
        return found

    def shape(self, first: int, last: int) -> _Shape:
        """The shape of what stands on lines ``first`` to ``last``."""
        run = self.run(first, last)
        index = {k: n for n, k in enumerate(run)}
        shape: list[tuple[object, ...]] = []
        for k in run:
            entry = self.entries[k]
            argument = entry.argument
            if entry.landing is not None:
                argument = ("jump", index.get(entry.landing, -1))
            end = None if entry.end is None else entry.end - first
            shape.append((entry.opname, argument, (entry.line - first, end), entry.columns))
        return tuple(shape)


def _opening(entry: _Entry) -> tuple[object, ...]:
    """What finds a statement's first instruction in other code: all but its place."""
    return (entry.opname, entry.argument, entry.columns)


def _shape_opening(shape: _Shape) -> tuple[object, ...]:
    """:func:`_opening` of the entry a shape opens with."""
    opname, argument, _, columns = shape[0]
    if dis.opmap.get(str(opname)) in _JUMPS:
        argument = None
    return (opname, argument, columns)


@dataclasses.dataclass
class Told:
    """What an old module code tells of a new source's statements.

    Attributes:
        ran: index -> whether that statement is in the old code (only the indices asked
            about, and only those that compile to instructions of their own).
        whole: every instruction of the old code belongs to a statement of the new source
            found in it: no statement of the old code was changed or removed, so a statement
            not found in it is new.
    """

    ran: dict[int, bool]
    whole: bool
    gone: list[Gone] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class Gone:
    """A stretch of the old code that no statement of the new source holds, and that binds
    no name: a statement that only acted, removed (or the old version of one that changed).

    Attributes:
        line: its first line in the old source.
        loads: the module names it reads (a call of one of them may write into containers).
        calls: ``(name, (attribute,))`` for each ``name.attribute`` it reads (``X.append``).
        stores: names it stores into by subscript or attribute (``X[k] = v``, ``X.a = v``).
    """

    line: int
    loads: frozenset[str]
    calls: frozenset[tuple[str, tuple[str, ...]]]
    stores: frozenset[str]


def existed(
    old: types.CodeType, new: types.CodeType, statements: Sequence[Statement], wanted: Iterable[int]
) -> Told:
    """Which statements of a new source (its module code ``new``) the old code ``old`` holds:
    the same instructions at the same places, counted from the statement's first line,
    starting at some line of the old code. Each old occurrence stands for one new statement:
    a statement written twice where the old code has it once is once new."""
    before, after = Shapes(old), Shapes(new)
    shapes: dict[_Shape, list[int]] = {}
    for index, stmt in enumerate(statements):
        shape = after.shape(stmt.first, stmt.last)
        if shape:
            shapes.setdefault(shape, []).append(index)
    # Shapes of one span, opening the same number of lines below their first, are looked
    # for together: each line of the old code that may start one is read once.
    groups: dict[tuple[int, int], list[_Shape]] = {}
    for shape, indices in shapes.items():
        span = statements[indices[0]].last - statements[indices[0]].first
        below = shape[0][2]
        assert isinstance(below, tuple)
        lower = below[0]
        assert isinstance(lower, int)
        groups.setdefault((span, lower), []).append(shape)
    covered: set[int] = set()
    ran: dict[int, bool] = {}
    for (span, lower), members in groups.items():
        openings = {_shape_opening(shape) for shape in members}
        starts = sorted({line - lower for o in openings for line in before.openings.get(o, ())})
        at: dict[_Shape, list[int]] = {}
        for start in starts:
            at.setdefault(before.shape(start, start + span), []).append(start)
        for shape in members:
            indices = shapes[shape]
            places = at.get(shape, [])[: len(indices)]
            for start in places:
                covered.update(before.run(start, start + span))
            for n, index in enumerate(indices):
                ran[index] = n < len(places)
    asked = set(wanted)
    whole = len(covered) == len(before.entries)
    gone = [] if whole else _gone(before, covered)
    return Told({i: v for i, v in ran.items() if i in asked}, whole, gone)


_LOADS = frozenset({"LOAD_NAME", "LOAD_GLOBAL"})
_ATTRIBUTES = frozenset({"LOAD_ATTR", "LOAD_METHOD"})
_BINDS = frozenset(
    {"STORE_NAME", "STORE_GLOBAL", "DELETE_NAME", "DELETE_GLOBAL", "IMPORT_NAME", "IMPORT_FROM"}
)
_STORES = frozenset({"STORE_SUBSCR", "DELETE_SUBSCR", "STORE_ATTR", "DELETE_ATTR"})


def _name(entry: _Entry) -> str | None:
    argument = entry.argument
    if isinstance(argument, tuple) and argument and isinstance(argument[0], str):
        return argument[0]
    return None


def _gone(before: Shapes, covered: set[int]) -> list[Gone]:
    """The stretches of ``before`` outside ``covered`` (each run of consecutive entries) that
    bind no name, read as what they may have done. A run that binds one is cut after each
    expression statement's end (a ``POP_TOP`` that a later line follows): a removed call
    next to a changed definition is a stretch of its own."""
    found: list[Gone] = []
    run: list[_Entry] = []
    for index, entry in enumerate([*before.entries, None]):
        if entry is not None and index not in covered:
            run.append(entry)
            continue
        pieces = _statement_ends(run) if any(e.opname in _BINDS for e in run) else [run]
        found += [_effects(p) for p in pieces if p and not any(e.opname in _BINDS for e in p)]
        run = []
    return found


def _statement_ends(run: list[_Entry]) -> list[list[_Entry]]:
    pieces: list[list[_Entry]] = [[]]
    highest = 0
    for n, entry in enumerate(run):
        pieces[-1].append(entry)
        highest = max(highest, entry.line)
        following = run[n + 1] if n + 1 < len(run) else None
        if entry.opname == "POP_TOP" and following is not None and following.line > highest:
            pieces.append([])
    return pieces


def _effects(run: list[_Entry]) -> Gone:
    loads: set[str] = set()
    calls: set[tuple[str, tuple[str, ...]]] = set()
    stores: set[str] = set()
    last: str | None = None  # the name the last load read, while attributes follow
    for e in run:
        name = _name(e)
        if e.opname in _LOADS and name is not None:
            loads.add(name)
            last = name
        elif e.opname in _ATTRIBUTES and name is not None and last is not None:
            calls.add((last, (name,)))
            last = None
        elif e.opname in _STORES and loads:
            stores |= loads  # which of them it stores into is not read: any
        else:
            last = None
    return Gone(min(e.line for e in run), frozenset(loads), frozenset(calls), frozenset(stores))
