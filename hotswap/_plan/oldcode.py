"""The code a module was imported from, read back from its cached ``.pyc`` (issue 25).

A module imported before hotswap, saved before the warm-up read its file, has no old source:
its first reload works out what ran from the live objects. A statement that only acts
(``EVENTS.append("added")``) leaves nothing live to compare. The import's bytecode cache
(``module.__cached__``, written by default) still holds the old top-level code, and its
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

__all__ = ("Shapes", "Told", "cached_code", "codes_by_place", "existed")

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
    """The top-level code in ``cached`` (a module's ``__cached__``), when it was compiled from
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


def codes_by_place(code: types.CodeType) -> dict[tuple[str, int], types.CodeType]:
    """Every code object inside ``code`` (functions, classes, their members), by name and
    first line."""
    found: dict[tuple[str, int], types.CodeType] = {}
    stack = [code]
    while stack:
        for const in stack.pop().co_consts:
            if isinstance(const, types.CodeType):
                found[(const.co_name, const.co_firstlineno)] = const
                stack.append(const)
    return found


def _const(value: object) -> object:
    if isinstance(value, types.CodeType):
        return code_key(value)
    if type(value) is tuple:
        return tuple(_const(v) for v in value)
    return (type(value), value)


_Instruction = tuple[int, dis.Instruction]  # its line, the instruction
_Shape = tuple[tuple[object, ...], ...]


def _lines(every: list[dis.Instruction]) -> list[_Instruction]:
    """The module code's instructions that belong to a statement, with their lines."""
    found: list[_Instruction] = []
    for n, instruction in enumerate(every):
        line = instruction.positions.lineno if instruction.positions else None
        if line is None or instruction.opname in _SKIPPED:
            continue
        after = every[n + 1] if n + 1 < len(every) else None
        if after is not None and after.opname == "RETURN_VALUE" and instruction.argval is None:
            continue  # the None the module's implicit return returns
        found.append((line, instruction))
    return found


def _argument(instruction: dis.Instruction) -> object:
    """What an instruction's argument stands for, wherever the code stands (a jump's is where
    it lands: see :func:`_shape`)."""
    if instruction.opcode in _CONSTS:
        return _const(instruction.argval)
    return (instruction.argval, instruction.argrepr)


def _is_jump(instruction: dis.Instruction) -> bool:
    return instruction.opcode in _JUMPS and isinstance(instruction.argval, int)


def _shape(run: Sequence[_Instruction], first: int, where: dict[int, int]) -> _Shape:
    """The instructions of one statement, counted from its ``first`` line: what each does,
    where it stands relative to the statement, and where each jump lands in it."""
    index = {id(instruction): n for n, (_, instruction) in enumerate(run)}
    shape: list[tuple[object, ...]] = []
    for line, instruction in run:
        positions = instruction.positions
        assert positions is not None
        end = positions.end_lineno
        if _is_jump(instruction):
            landing = where.get(instruction.argval)
            argument: object = ("jump", -1 if landing is None else index.get(landing, -1))
        else:
            argument = _argument(instruction)
        place = (line - first, None if end is None else end - first)
        columns = (positions.col_offset, positions.end_col_offset)
        shape.append((instruction.opname, argument, place, columns))
    return tuple(shape)


def _opening_of(instruction: dis.Instruction) -> tuple[object, ...]:
    """:func:`_opening` of the entry :func:`_shape` makes of ``instruction``."""
    positions = instruction.positions
    assert positions is not None
    argument = None if _is_jump(instruction) else _argument(instruction)
    return (instruction.opname, argument, (positions.col_offset, positions.end_col_offset))


def _opening(entry: tuple[object, ...]) -> tuple[object, ...]:
    """What finds a statement's first instruction in other code: all but its place."""
    opname, argument, _, columns = entry
    jump = dis.opmap.get(str(opname)) in _JUMPS and isinstance(argument, tuple)
    return (opname, None if jump else argument, columns)


class Shapes:
    """A module's code, read by the lines its instructions stand on (see :func:`_shape`)."""

    def __init__(self, code: types.CodeType) -> None:
        every = list(dis.get_instructions(code))
        self.instructions = _lines(every)
        self._order = {id(i): n for n, (_, i) in enumerate(self.instructions)}
        self._by_line: dict[int, list[_Instruction]] = {}
        # offset -> the id of the first kept instruction at or after it (a jump's landing)
        self._where: dict[int, int] = {}
        kept = {id(i) for _, i in self.instructions}
        following: int | None = None
        for instruction in reversed(every):
            if id(instruction) in kept:
                following = id(instruction)
            if following is not None:
                self._where[instruction.offset] = following
        # what opens a statement -> the lines an instruction like it stands on
        self.openings: dict[tuple[object, ...], list[int]] = {}
        for line, instruction in self.instructions:
            self._by_line.setdefault(line, []).append((line, instruction))
        for line, instruction in self.instructions:
            self.openings.setdefault(_opening_of(instruction), []).append(line)

    def run(self, first: int, last: int) -> list[_Instruction]:
        """The instructions on lines ``first`` to ``last``, in the code's order."""
        found: list[_Instruction] = []
        for line in range(first, last + 1):
            found += self._by_line.get(line, ())
        found.sort(key=lambda item: self._order[id(item[1])])
        return found

    def shape(self, first: int, last: int) -> _Shape:
        """The shape of what stands on lines ``first`` to ``last``."""
        return _shape(self.run(first, last), first, self._where)


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
        openings = {_opening(shape[0]) for shape in members}
        starts = sorted({line - lower for o in openings for line in before.openings.get(o, ())})
        at: dict[_Shape, list[int]] = {}
        for start in starts:
            at.setdefault(before.shape(start, start + span), []).append(start)
        for shape in members:
            indices = shapes[shape]
            places = at.get(shape, [])[: len(indices)]
            for start in places:
                covered.update(id(i) for _, i in before.run(start, start + span))
            for n, index in enumerate(indices):
                ran[index] = n < len(places)
    asked = set(wanted)
    whole = all(id(i) in covered for _, i in before.instructions)
    return Told({i: v for i, v in ran.items() if i in asked}, whole)
