"""A module's source as a list of top-level statements, each with what it binds and reads.

Pure functions over source text and ASTs: no live objects, no I/O. A :class:`Statement` is one
top-level statement of a file: its exact text, its lines, and an :class:`Info` (what it binds,
what it reads and calls while it runs, what it may mutate, the symbols it defines). Info depends
only on the text (and the module's ``__future__`` flags), so it is cached by text: a new version
of a module parses only the statements whose text changed, and the cost of reading a version
follows the edit, not the size of the module.
"""

from __future__ import annotations
import __future__

import ast
import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from hotswap._plan import lines as _lines
from hotswap._plan.analysis import (
    CLASS,
    DEF,
    DOC,
    FUTURE,
    IMPORT,
    MAIN,
    OTHER,
    Info,
    analyse,
    annotated,
    first_line,
)
from hotswap._plan.symbols import FUTURE_FLAGS, Symbols, source_lines
from hotswap._plan.symbols import split_statements as _split

__all__ = (
    "CLASS",
    "DEF",
    "DOC",
    "FUTURE",
    "IMPORT",
    "MAIN",
    "OTHER",
    "Info",
    "ModuleSource",
    "Statement",
    "annotated",
    "parse_module",
    "parse_statement",
    "parse_statement_module",
    "split_statements",
)


@dataclass(frozen=True, slots=True)  # thousands per module: no dict each
class Statement:
    """One top-level statement: its text, its first and last line, and its :class:`Info`."""

    text: str
    first: int
    last: int
    info: Info

    @property
    def lines(self) -> tuple[int, int]:
        return (self.first, self.last)


@dataclass
class ModuleSource:
    """A version of a module's source, statement by statement.

    Attributes:
        source: the text.
        flags: the ``__future__`` compiler flags its future statements set.
        statements: its top-level statements, in order.
        cache: text -> Info, for the next version to reuse.
        nodes: index -> the AST of a statement analysed for this version (with the file's
            line numbers), kept only when asked for, until the reload compiles it: what runs
            is parsed once.
        derived: what the planner derives from the statements alone (its indexes), kept for
            the next reload, where this version is the live one.
    """

    source: str
    flags: int
    statements: list[Statement]
    cache: dict[tuple[int, str], Info] = field(default_factory=dict, repr=False)
    nodes: dict[int, ast.stmt] = field(default_factory=dict, repr=False, compare=False)
    derived: dict[str, object] = field(default_factory=dict, repr=False, compare=False)
    _symbols: Symbols | None = field(default=None, repr=False)
    # The offsets its statements start at, when its lines were split by the line scan: the
    # next version's split starts from them (:func:`hotswap._plan.lines.split_edited`).
    starts: list[int] = field(default_factory=list, repr=False, compare=False)

    @property
    def symbols(self) -> Symbols:
        """The module's symbol table (the compatibility rules and the report work on it)."""
        if self._symbols is None:
            table = Symbols()
            for stmt in self.statements:
                for symbol in stmt.info.at(stmt.first - 1):
                    placed = symbol
                    previous = table.get(placed.qualname)
                    if previous is not None:  # bound twice: one symbol, both definitions count
                        placed = replace(
                            placed,
                            lineno=previous.lineno,
                            fingerprint=f"{previous.fingerprint}|{placed.fingerprint}",
                            deps=previous.deps | placed.deps,
                        )
                    table[placed.qualname] = placed
                    table.lines.setdefault(placed.qualname, placed.lineno)
            self._symbols = table
        return self._symbols

    def spans(self) -> dict[str, tuple[int, int]]:
        """Each defined name -> the lines of the statement that defines it last."""
        found: dict[str, tuple[int, int]] = {}
        for stmt in self.statements:
            for symbol in stmt.info.symbols:
                if "." not in symbol.qualname:
                    found[symbol.qualname] = stmt.lines
            for name in stmt.info.binds:
                found.setdefault(name, stmt.lines)
        return found


_FUTURE_LINE = re.compile(r"from\s+__future__\s+import\s+(.*)")
_DOCSTRING_START = re.compile(r"#|[rRuUbB]{0,2}[\"']")


def split_statements(source: str) -> list[tuple[int, int, str]] | None:
    """The top-level statements of ``source`` as (first line, last line, text), by the line
    scan of :func:`hotswap._plan.symbols.split_statements` (a wrong split costs a full parse, never
    correctness)."""
    chunks = _split(source)
    if chunks is None:
        return None
    return [(first, first + text.count("\n"), text) for first, text in chunks]


def _future_flags(chunks: Iterable[tuple[int, int, str]]) -> int:
    flags = 0
    for _, _, text in chunks:
        match = _FUTURE_LINE.match(text)
        if match is None:
            if not _DOCSTRING_START.match(text):  # futures come first (after a docstring)
                break
            continue
        for name in re.findall(r"\w+", match.group(1)):
            feature = getattr(__future__, name, None)
            if isinstance(feature, __future__._Feature):
                flags |= feature.compiler_flag
    return flags & FUTURE_FLAGS


def parse_module(
    source: str, previous: ModuleSource | None = None, *, keep_nodes: bool = False
) -> ModuleSource:
    """Read ``source`` statement by statement, reusing ``previous``'s analysis of every
    statement whose text did not change. ``keep_nodes``: keep the ASTs of the statements
    analysed now in :attr:`ModuleSource.nodes` (a reload about to compile them).

    Raises:
        SyntaxError: the source does not parse (with the file's line numbers).
    """
    cache = {} if previous is None else previous.cache
    starts: list[int] = []
    chunks: list[tuple[int, int, str]] | None
    edited = None
    if previous is not None and previous.starts:
        edited = _lines.split_edited(
            source,
            previous.source,
            previous.starts,
            [(s.first, s.text) for s in previous.statements],
        )
    if edited is not None:
        pieces, starts = edited
        chunks = [(first, first + text.count("\n"), text) for first, text in pieces]
    elif "\r" in source:
        chunks = split_statements(source)
    else:
        pieces, starts = _lines.split_lf(source)
        chunks = [(first, first + text.count("\n"), text) for first, text in pieces]
    if chunks is not None:
        flags = _future_flags(chunks)
        made = _from_chunks(source, chunks, flags, cache, keep_nodes)
        if made is not None:
            made.starts = starts
            return made
    # A piece did not parse alone: parse the whole module (raising its real SyntaxError).
    tree = ast.parse(source)
    lines = source_lines(source)
    spans = []
    for position, node in enumerate(tree.body):
        first = first_line(node)
        last = node.end_lineno or node.lineno
        following = tree.body[position + 1] if position + 1 < len(tree.body) else None
        shares = node.col_offset > 0 or (following is not None and following.lineno == last)
        if shares:  # ``a = 1; b = 2``: each statement is its own text
            segment = ast.get_source_segment(source, node) or ""
            spans.append((first, last, segment))
        else:
            spans.append((first, last, "\n".join(lines[first - 1 : last])))
    flags = 0
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module == "__future__":
            for alias in node.names:
                feature = getattr(__future__, alias.name, None)
                if isinstance(feature, __future__._Feature):
                    flags |= feature.compiler_flag
    flags &= FUTURE_FLAGS
    statements: list[Statement] = []
    new_cache: dict[tuple[int, str], Info] = {}
    for (first, last, text), node in zip(spans, tree.body, strict=True):
        key = (flags, text)
        info = cache.get(key) or new_cache.get(key)
        if info is None:
            info = analyse(node, flags, first)
        new_cache[key] = info
        statements.append(Statement(text, first, last, info))
    return ModuleSource(source, flags, statements, new_cache)


def _from_chunks(
    source: str,
    chunks: list[tuple[int, int, str]],
    flags: int,
    cache: dict[tuple[int, str], Info],
    keep_nodes: bool = False,
) -> ModuleSource | None:
    statements: list[Statement] = []
    new_cache: dict[tuple[int, str], Info] = {}
    nodes: dict[int, ast.stmt] = {}
    parsed = _parse_runs(chunks, [i for i, c in enumerate(chunks) if (flags, c[2]) not in cache])
    for index, (first, last, text) in enumerate(chunks):
        key = (flags, text)
        info = cache.get(key) or new_cache.get(key)
        if info is None:
            node = parsed.get(index)
            if node is None:
                return None
            info = analyse(node, flags, first, text)
            if keep_nodes:
                nodes[index] = node
        new_cache[key] = info
        statements.append(Statement(text, first, last, info))
    return ModuleSource(source, flags, statements, new_cache, nodes)


def _parse_runs(chunks: list[tuple[int, int, str]], wanted: list[int]) -> dict[int, ast.stmt]:
    """The ASTs of the ``wanted`` chunks, with the file's line numbers: each run of consecutive
    chunks parsed in one go (a rewritten module is parsed once, not statement by statement);
    a run that does not split as the chunks say is parsed chunk by chunk. A chunk that does
    not parse alone has no entry."""
    found: dict[int, ast.stmt] = {}
    position = 0
    while position < len(wanted):
        end = position + 1
        while end < len(wanted) and wanted[end] == wanted[end - 1] + 1:
            end += 1
        run = wanted[position:end]
        position = end
        if len(run) > 1 and _parse_run(chunks, run, found):
            continue
        for index in run:
            _parse_run(chunks, [index], found)
    return found


def _parse_run(
    chunks: list[tuple[int, int, str]], run: list[int], found: dict[int, ast.stmt]
) -> bool:
    pieces = []
    line = 1
    for index in run:
        first, last, text = chunks[index]
        # Blank lines in front and between keep the line numbers of the file.
        pieces.append("\n" * (first - line))
        pieces.append(text)
        line = last
    try:
        body = ast.parse("".join(pieces)).body
    except SyntaxError:
        return False
    if len(body) != len(run):
        return False
    for index, node in zip(run, body, strict=True):
        first, last, _ = chunks[index]
        if first_line(node) != first or (node.end_lineno or first) > last:
            return False
    found.update(zip(run, body, strict=True))
    return True


def parse_statement_module(stmt: Statement) -> ast.Module:
    """One statement as a module AST, with the line numbers of its file."""
    return ast.Module(body=[parse_statement(stmt)], type_ignores=[])


def parse_statement(stmt: Statement) -> ast.stmt:
    """The AST of one statement, with the line numbers of its file."""
    node = ast.parse(stmt.text).body[0]
    if stmt.first > 1:
        ast.increment_lineno(node, stmt.first - 1)
    return node
