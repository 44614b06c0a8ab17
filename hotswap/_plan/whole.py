"""Whether an edit rewrote a whole module, told from the text alone (pure, no syntax tree).

A module whose every top-level statement changed needs no statement diff: running all of its
statements is the diff's answer, so the engine can compile the new text as it is and read its
statements later (:mod:`hotswap._engine.rewrite`). Parsing to :mod:`ast` first would cost more
than the compile itself, so everything here works on lines:

- the text is cut into pieces at every line that starts at column 0, each statement one piece
  or more (:data:`_PIECE`);
- a statement is *the same* as an old one when their texts are equal once comments, white
  space, parentheses and trailing commas are dropped and quotes made one kind (a formatter's
  save changes no statement; two different statements may compare equal, then the edit is not
  taken for a rewrite, which only costs the fast path);
- a rewrite is a module of at least :data:`MIN_STATEMENTS` statements none of which is the
  same as an old one, imports and docstrings apart (running ``import x`` again binds the
  same module);
- constructs whose reload needs the statement-by-statement path are screened out by pattern
  (:data:`_NEEDS_STATEMENTS`), in the old text and in the new.

:class:`LazySource` is a version whose statements are read on first use.
"""

from __future__ import annotations

import re
import threading
from typing import Any

from hotswap._plan.lines import shared, split_statements
from hotswap._plan.statements import ModuleSource, parse_module

__all__ = (
    "MIN_STATEMENTS",
    "LazySource",
    "Shape",
    "binds_of",
    "plain_lines",
    "rewrite_of",
    "shape",
    "shares_much",
)

# Below this, the statement-by-statement path costs little, and its report is exact.
MIN_STATEMENTS = 200

# What the text-level path cannot reproduce, found by pattern (a false hit only costs speed):
# decorators (the statement path keeps registrations by not running unchanged decorators),
# ``import *`` (names bound out of sight), hotswap's hooks and ``__hotswap_keep__``, frames and
# namespaces read as data (the module runs with a mapping of its own for locals), the entry
# point block, and ``;`` at a statement's start line (two statements on one line).
_NEEDS_STATEMENTS = (  # (a substring first: a scan of megabytes for a pattern is slow)
    ("@", re.compile(r"^[ \t]*@", re.MULTILINE)),
    ("*", re.compile(r"import\s*\*")),
    ("__hotswap_", None),
    ("locals", re.compile(r"\blocals\s*\(")),
    ("vars", re.compile(r"\bvars\s*\(")),
    ("_getframe", None),
    ("currentframe", None),
    ("__name__", re.compile(r"^if\s+__name__\b", re.MULTILINE)),
    (";", re.compile(r"^[^ \t\f#\n][^\n]*;", re.MULTILINE)),  # (two statements on a line)
)
# A piece's key: its text without white space, comments, parentheses or trailing commas, with
# one kind of quote, so that a formatter's save (black, ruff format: quotes, exploded calls,
# wrapping parentheses) keeps every statement the same (a false "same" costs only the fast path).
_SPACE = str.maketrans("'", '"', " \t\f\r\n\\")
_PARENTHESES = str.maketrans("", "", "()")
_TRAILING = ((",)", ")"), (",]", "]"), (",}", "}"))
_COMMENT = re.compile(r"#[^\n\0]*")
# Statements that bind what they bound before when they run again: imports, and a string
# alone (the module's docstring).
_HARMLESS = re.compile(r"(import|from)\b|[rRuUbB]{0,2}(\"|')")
_LEADING = re.compile(r"(?:[ \t\f]*(?:#[^\n]*)?\r?\n)*")  # blank and comment lines


# Where a piece starts: a line at column 0 that is not blank, a comment or a closing bracket.
# Every statement starts a piece; a statement with lines of its own at column 0 (``else:``, a
# string's lines) is cut into several, and an unchanged statement still has every piece of
# it among the old pieces, so a comparison of pieces finds it (a cut, done in C, is what a
# rewrite of thousands of statements can afford; the exact split is a Python loop).
_PIECE = re.compile(r"\n(?=[^ \t\f#)\]}\r\n])")
_SHAPE_BLOCK = 64 * 1024


def shares_much(old: str, new: str) -> bool:
    """Whether ``new`` keeps a quarter or more of its text from ``old`` at its start and end:
    then it is no rewrite (the first statement after the imports differs in one), found
    without cutting either into pieces (every edit asks; most change one definition)."""
    prefix = shared(old, new, 1)
    return 4 * (prefix + shared(old, new, -1, min(len(old), len(new)) - prefix)) >= len(new)


# A line at column 0 that is none of: ``name =``, ``def``, an import, a string, a comment, a
# closing bracket, a blank (what a module of plain bindings has there).
_NOT_PLAIN = re.compile(
    r"^(?![ \t\f#)\]}\r\n\"']|$|def\s|async\s+def\s|import\s|from\s|[A-Za-z_]\w*\s*=[^=])",
    re.MULTILINE,
)


def plain_lines(text: str) -> bool:
    """Whether every line of ``text`` at column 0 may be a plain binding (a cheap first look
    before its compiled code is read: :mod:`hotswap._engine.plaincode`)."""
    return not _found(_NOT_PLAIN, text)


def _found(pattern: re.Pattern[str], text: str) -> bool:
    """``pattern.search(text)``, a block of lines at a time: one search over megabytes would
    hold the interpreter for tens of milliseconds (the watcher applies other saves
    meanwhile). A block ends after a line break, so ``^`` means what it means in the text."""
    start = 0
    while start < len(text):
        end = text.find("\n", start + _SHAPE_BLOCK) + 1 or len(text)
        if pattern.search(text, start, end) is not None:
            return True
        start = end
    return False


class Shape:
    """The pieces of a text by key (see the module docstring): key -> one piece with it."""

    __slots__ = ("pieces",)

    def __init__(self, pieces: dict[str, str]) -> None:
        self.pieces = pieces


def shape(text: str) -> Shape | None:
    """The :class:`Shape` of ``text``, or None when it needs the statement path."""
    for word, pattern in _NEEDS_STATEMENTS:
        if word in text and (pattern is None or _found(pattern, text)):
            return None
    table: dict[str, str] = {}
    start = 0
    while start < len(text):
        # A block at a time, cut where a piece starts (no long hold of the interpreter on a
        # huge text: the watcher applies other saves meanwhile), each with one pass of each
        # kind, not one per piece (NUL cannot be in source).
        cut = (
            _PIECE.search(text, start + _SHAPE_BLOCK) if start + _SHAPE_BLOCK < len(text) else None
        )
        end = len(text) if cut is None else cut.start()
        pieces = _PIECE.split(text[start:end])
        joined = "\0".join(pieces)
        if "#" in joined:
            joined = _COMMENT.sub("", joined)
        keys = joined.translate(_SPACE)
        for comma, closing in _TRAILING:
            if comma in keys:
                keys = keys.replace(comma, closing)
        if "(" in keys:
            keys = keys.translate(_PARENTHESES)
        table.update(zip(keys.split("\0"), pieces, strict=True))
        start = end + 1
    table.pop("", None)  # (blank and comment lines)
    return Shape(table)


def rewrite_of(old: Shape, new: Shape) -> bool:
    """Whether ``new`` rewrites the whole module that ``old`` was: big enough, and no piece
    but one of an import or a docstring is the same as one of the old text."""
    if len(new.pieces) < MIN_STATEMENTS:
        return False
    common = new.pieces.keys() & old.pieces.keys()
    return all(_harmless(new.pieces[key]) for key in common)


def _harmless(piece: str) -> bool:
    return _HARMLESS.match(piece, _LEADING.match(piece).end()) is not None  # type: ignore[union-attr]


_ASSIGNED = re.compile(r"([A-Za-z_]\w*)\s*(?::[^=\n]*)?=(?!=)")
_DEFINED = re.compile(r"(?:async\s+def|def|class)\s+([A-Za-z_]\w*)")
_IMPORTED = re.compile(r"import\s+([\w.]+(?:\s+as\s+\w+)?(?:\s*,\s*[\w.]+(?:\s+as\s+\w+)?)*)\s*$")
_FROM = re.compile(r"from\s+[\w.]+\s+import\s+\(?([\w\s,]+?)\)?\s*$")
_CALL = re.compile(r"[\w.]+\(")


def binds_of(text: str) -> frozenset[str] | None:
    """The names the top-level statements of ``text`` bind, read from the text where every
    statement is of a plain form (``x = ...``, ``def``, ``class``, imports, a call, a string);
    None when one is not (the statements must be read)."""
    chunks = split_statements(text)
    if chunks is None:
        return None
    names: set[str] = set()
    for position, (_, chunk) in enumerate(chunks):
        if ":=" in chunk:
            return None
        head = _COMMENT.sub("", chunk).strip() if "#" in chunk else chunk
        found = _DEFINED.match(head)
        if found is not None:
            names.add(found.group(1))
            continue
        found = _ASSIGNED.match(head)
        if found is not None:
            if _ASSIGNED.match(head[found.end() :].lstrip()):
                return None  # ``a = b = 1``
            names.add(found.group(1))
            continue
        found = _IMPORTED.match(head)
        if found is not None:
            for part in found.group(1).split(","):
                module, _, alias = part.strip().partition(" as ")
                names.add(alias.strip() or module.split(".")[0])
            continue
        found = _FROM.match(head)
        if found is not None:
            for part in found.group(1).replace("\n", " ").split(","):
                if part.strip():
                    name, _, alias = part.strip().partition(" as ")
                    names.add(alias.strip() or name.strip())
            continue
        if _harmless(head) and not head.startswith(("import", "from")):
            if position == 0:
                names.add("__doc__")
            continue
        if _CALL.match(head):
            continue
        return None
    return frozenset(names)


class LazySource(ModuleSource):
    """A version of a module whose statements are read (parsed and analysed) the first time
    anything asks for them: the version a whole-module rewrite leaves. Only :attr:`source`
    is there from the start."""

    _READ = frozenset({"flags", "statements", "cache", "nodes", "derived", "_symbols", "starts"})

    def __init__(self, source: str) -> None:  # (no dataclass __init__: nothing read yet)
        self.source = source
        self._reading = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        # Only called for what is not set yet: the fields a parse fills.
        if name not in LazySource._READ:
            raise AttributeError(name)
        self.read()
        return self.__dict__[name]

    @property
    def is_read(self) -> bool:
        return "statements" in self.__dict__

    def read(self) -> None:
        """Parse and analyse the statements now (once; any thread)."""
        with self._reading:
            if self.is_read:
                return
            parsed = parse_module(self.source)
            self.__dict__.update(
                flags=parsed.flags,
                statements=parsed.statements,
                cache=parsed.cache,
                nodes={},
                derived={},
                _symbols=None,
                starts=parsed.starts,
            )
