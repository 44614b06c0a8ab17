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
import hashlib
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace

from hotswap._plan.symbols import FUTURE_FLAGS, Symbol, Symbols, source_lines, statement_symbols
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

# Statement kinds.
DEF = "def"
CLASS = "class"
IMPORT = "import"
FUTURE = "future"  # from __future__ import ...
DOC = "doc"  # the module docstring
MAIN = "main"  # if __name__ == "__main__":
OTHER = "other"

# Methods that run when a class is called: a statement that instantiates a class reads them.
_CONSTRUCTION = frozenset({"__init__", "__new__", "__post_init__", "__call__"})


@dataclass(frozen=True)
class Info:
    """What one statement is, independent of where it stands in the file.

    Attributes:
        digest: identifies the statement's code, ignoring layout and comments.
        kind: one of the kind constants of this module.
        name: the name a ``def`` or ``class`` statement defines.
        binds: module-level names it binds (``*`` for a star import).
        reads: module-level names it loads while it runs (not inside function bodies).
        called: names it calls while it runs (``f(...)``, decorators).
        body_calls: for a function, the names its body loads (it may call them); for a class,
            those its construction methods load. A function is *dirty* for its callers when
            one of these is.
        decorators: digest of a definition's decorator lines (None: not decorated).
        decorator_reads: names the decorator lines load.
        construction: for a class, digest of what calling it depends on (header, class-level
            statements, construction methods).
        header: for a class, digest of its bases and keywords.
        mutates: names whose object it may mutate in place (``X.append(...)``, ``X[k] = v``).
        attribute_sets: ``(X, attr)`` for every ``X.attr = ...`` it runs.
        from_imports: ``(level, module, name, asname)`` of each ``from ... import``.
        attribute_reads: ``(X, (attr, ...))`` for every ``X.attr.attr`` it loads while it runs.
        symbols: the symbols it defines, lines counted from 1 at its first line.
        annotates: the names its annotated assignments annotate in the module's annotations
            (``x: int``, in its blocks too; not in function or class bodies), in order.
    """

    digest: str
    kind: str
    name: str | None = None
    binds: frozenset[str] = frozenset()
    reads: frozenset[str] = frozenset()
    called: frozenset[str] = frozenset()
    body_calls: frozenset[str] = frozenset()
    decorators: str | None = None
    decorator_reads: frozenset[str] = frozenset()
    construction: str | None = None
    header: str | None = None
    mutates: frozenset[str] = frozenset()
    attribute_sets: frozenset[tuple[str, str]] = frozenset()
    from_imports: tuple[tuple[int, str, str, str], ...] = ()
    attribute_reads: frozenset[tuple[str, tuple[str, ...]]] = frozenset()
    called_attributes: frozenset[tuple[str, tuple[str, ...]]] = frozenset()
    symbols: tuple[Symbol, ...] = ()
    annotates: tuple[str, ...] = ()
    # Its symbols placed at a first line, shared by every version where the statement stands
    # there: the compatibility check skips symbols that are the very same objects.
    placed: dict[int, tuple[Symbol, ...]] = field(
        default_factory=dict, compare=False, hash=False, repr=False
    )

    def at(self, shift: int) -> tuple[Symbol, ...]:
        """Its symbols with their lines moved by ``shift``."""
        found = self.placed.get(shift)
        if found is None:
            found = tuple(replace(s, lineno=s.lineno + shift) for s in self.symbols)
            self.placed[shift] = found
        return found


@dataclass(frozen=True)
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
    """

    source: str
    flags: int
    statements: list[Statement]
    cache: dict[tuple[int, str], Info] = field(default_factory=dict, repr=False)
    _symbols: Symbols | None = field(default=None, repr=False)

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


def parse_module(source: str, previous: ModuleSource | None = None) -> ModuleSource:
    """Read ``source`` statement by statement, reusing ``previous``'s analysis of every
    statement whose text did not change.

    Raises:
        SyntaxError: the source does not parse (with the file's line numbers).
    """
    cache = {} if previous is None else previous.cache
    chunks = split_statements(source)
    if chunks is not None:
        flags = _future_flags(chunks)
        made = _from_chunks(source, chunks, flags, cache)
        if made is not None:
            return made
    # A piece did not parse alone: parse the whole module (raising its real SyntaxError).
    tree = ast.parse(source)
    lines = source_lines(source)
    spans = []
    for position, node in enumerate(tree.body):
        first = _first_line(node)
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
) -> ModuleSource | None:
    statements: list[Statement] = []
    new_cache: dict[tuple[int, str], Info] = {}
    for first, last, text in chunks:
        key = (flags, text)
        info = cache.get(key) or new_cache.get(key)
        if info is None:
            try:
                tree = ast.parse(text, feature_version=None)
            except SyntaxError:
                return None
            if len(tree.body) != 1:  # two statements on one line (a; b) or none: full parse
                return None
            info = analyse(tree.body[0], flags, 1)
        new_cache[key] = info
        statements.append(Statement(text, first, last, info))
    return ModuleSource(source, flags, statements, new_cache)


def parse_statement_module(stmt: Statement) -> ast.Module:
    """One statement as a module AST, with the line numbers of its file."""
    return ast.Module(body=[parse_statement(stmt)], type_ignores=[])


def parse_statement(stmt: Statement) -> ast.stmt:
    """The AST of one statement, with the line numbers of its file."""
    node = ast.parse(stmt.text).body[0]
    if stmt.first > 1:
        ast.increment_lineno(node, stmt.first - 1)
    return node


# --- the analysis -------------------------------------------------------------------------------


def _first_line(node: ast.stmt) -> int:
    decorators: list[ast.expr] = getattr(node, "decorator_list", [])
    return decorators[0].lineno if decorators else node.lineno


def _digest(*nodes: ast.AST | None) -> str:
    # ast.dump leaves out positions, and the AST has no comments or layout.
    text = "\n".join(ast.dump(n) for n in nodes if n is not None)
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


class _Reads(ast.NodeVisitor):
    """Names an expression or statement loads while it runs: function and lambda bodies are
    not run by their definition, so only their decorators, defaults and (unless postponed)
    annotations are read."""

    def __init__(self, lazy_annotations: bool) -> None:
        self.lazy = lazy_annotations
        self.reads: set[str] = set()
        self.called: set[str] = set()
        self.walrus: set[str] = set()
        self.attributes: set[tuple[str, tuple[str, ...]]] = set()
        self.called_attributes: set[tuple[str, tuple[str, ...]]] = set()

    def visit_Name(self, node: ast.Name) -> None:
        if isinstance(node.ctx, ast.Load):
            self.reads.add(node.id)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        chain: list[str] = []
        value: ast.expr = node
        while isinstance(value, ast.Attribute):
            chain.append(value.attr)
            value = value.value
        if isinstance(value, ast.Name) and isinstance(node.ctx, ast.Load):
            self.attributes.add((value.id, tuple(reversed(chain))))
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        if isinstance(node.func, ast.Name):
            self.called.add(node.func.id)
        chain: list[str] = []
        value: ast.expr = node.func
        while isinstance(value, ast.Attribute):
            chain.append(value.attr)
            value = value.value
        if chain and isinstance(value, ast.Name):
            self.called_attributes.add((value.id, tuple(reversed(chain))))
        self.generic_visit(node)

    def visit_NamedExpr(self, node: ast.NamedExpr) -> None:
        if isinstance(node.target, ast.Name):
            self.walrus.add(node.target.id)
        self.visit(node.value)

    def _signature(self, args: ast.arguments, returns: ast.expr | None) -> None:
        for default in [*args.defaults, *args.kw_defaults]:
            if default is not None:
                self.visit(default)
        if not self.lazy:
            every = [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]
            for arg in every:
                if arg is not None and arg.annotation is not None:
                    self.visit(arg.annotation)
            if returns is not None:
                self.visit(returns)

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        for decorator in node.decorator_list:
            self._decorator(decorator)
        self._signature(node.args, node.returns)

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Lambda(self, node: ast.Lambda) -> None:
        self._signature(node.args, None)

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        for decorator in node.decorator_list:
            self._decorator(decorator)
        for base in node.bases:
            self.visit(base)
        for keyword in node.keywords:
            self.visit(keyword)
        for stmt in node.body:
            self.visit(stmt)

    def _decorator(self, decorator: ast.expr) -> None:
        head = decorator.func if isinstance(decorator, ast.Call) else decorator
        if isinstance(head, ast.Name):
            self.called.add(head.id)
        self.visit(decorator)


def _all_loads(nodes: Iterable[ast.AST]) -> frozenset[str]:
    """Every name loaded anywhere below ``nodes``, function bodies included."""
    return frozenset(
        sub.id
        for node in nodes
        for sub in ast.walk(node)
        if isinstance(sub, ast.Name) and isinstance(sub.ctx, ast.Load)
    )


def _targets(target: ast.AST) -> Iterator[str]:
    if isinstance(target, ast.Name):
        yield target.id
    elif isinstance(target, ast.Tuple | ast.List):
        for element in target.elts:
            yield from _targets(element)
    elif isinstance(target, ast.Starred):
        yield from _targets(target.value)


def _base_name(node: ast.AST) -> str | None:
    while isinstance(node, ast.Attribute | ast.Subscript):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


class _Effects:
    """What a module-level statement binds and mutates, walking compound statements but not
    function or class bodies."""

    def __init__(self) -> None:
        self.binds: set[str] = set()
        self.mutates: set[str] = set()
        self.attribute_sets: set[tuple[str, str]] = set()
        self.from_imports: list[tuple[int, str, str, str]] = []

    def target(self, target: ast.AST, *, deleting: bool = False) -> None:
        if isinstance(target, ast.Name | ast.Tuple | ast.List | ast.Starred):
            self.binds.update(_targets(target))
            if isinstance(target, ast.Tuple | ast.List):
                for element in target.elts:
                    if not isinstance(element, ast.Name):
                        self.target(element, deleting=deleting)
            return
        base = _base_name(target)
        if base is not None:
            self.mutates.add(base)
            if isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name):
                self.attribute_sets.add((base, target.attr))

    def statement(self, stmt: ast.stmt) -> None:
        if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            self.binds.add(stmt.name)
            return
        if isinstance(stmt, ast.Assign):
            for target in stmt.targets:
                self.target(target)
        elif isinstance(stmt, ast.AnnAssign):
            if stmt.value is not None:
                self.target(stmt.target)
        elif isinstance(stmt, ast.AugAssign):
            self.target(stmt.target)
        elif isinstance(stmt, ast.Delete):
            for target in stmt.targets:
                self.target(target, deleting=True)
        elif isinstance(stmt, ast.Import):
            for alias in stmt.names:
                self.binds.add(alias.asname or alias.name.split(".")[0])
        elif isinstance(stmt, ast.ImportFrom):
            for alias in stmt.names:
                name = alias.asname or alias.name
                self.binds.add(name)
                self.from_imports.append((stmt.level, stmt.module or "", alias.name, name))
        elif isinstance(stmt, ast.Expr):
            call = stmt.value
            if isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute):
                base = _base_name(call.func.value)
                if base is not None:
                    self.mutates.add(base)
        if isinstance(stmt, ast.For | ast.AsyncFor):
            self.target(stmt.target)
        elif isinstance(stmt, ast.With | ast.AsyncWith):
            for item in stmt.items:
                if item.optional_vars is not None:
                    self.target(item.optional_vars)
        elif isinstance(stmt, ast.Try) or type(stmt).__name__ == "TryStar":
            for handler in stmt.handlers:  # type: ignore[attr-defined]
                if handler.name:
                    self.binds.add(handler.name)
        elif isinstance(stmt, ast.Match):
            for case in stmt.cases:
                for sub in ast.walk(case.pattern):
                    bound = getattr(sub, "name", None) or getattr(sub, "rest", None)
                    if isinstance(bound, str):
                        self.binds.add(bound)
        for field_name in ("body", "orelse", "finalbody", "handlers", "cases"):
            for child in getattr(stmt, field_name, ()):
                if isinstance(child, ast.stmt):
                    self.statement(child)
                else:  # an except handler or a match case holds statements
                    for inner in getattr(child, "body", ()):
                        self.statement(inner)


def _is_main_guard(stmt: ast.stmt) -> bool:
    if not isinstance(stmt, ast.If) or not isinstance(stmt.test, ast.Compare):
        return False
    test = stmt.test
    sides = [test.left, *test.comparators]
    names = any(isinstance(s, ast.Name) and s.id == "__name__" for s in sides)
    main = any(isinstance(s, ast.Constant) and s.value == "__main__" for s in sides)
    return names and main and len(test.ops) == 1 and isinstance(test.ops[0], ast.Eq)


def analyse(stmt: ast.stmt, flags: int, first: int = 1) -> Info:
    """The :class:`Info` of one statement (``first``: the line its AST counts as line 1)."""
    lazy = bool(flags & __future__.annotations.compiler_flag)
    reads = _Reads(lazy)
    reads.visit(stmt)
    effects = _Effects()
    effects.statement(stmt)
    binds = frozenset(effects.binds | reads.walrus)
    kind = OTHER
    name: str | None = None
    body_calls: frozenset[str] = frozenset()
    decorators: str | None = None
    decorator_reads: frozenset[str] = frozenset()
    construction: str | None = None
    header: str | None = None
    if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef):
        kind, name = DEF, stmt.name
        body_calls = _all_loads(stmt.body)
        if stmt.decorator_list:
            decorators = _digest(*stmt.decorator_list)
            decorator_reads = _all_loads(stmt.decorator_list)
    elif isinstance(stmt, ast.ClassDef):
        kind, name = CLASS, stmt.name
        methods = (ast.FunctionDef, ast.AsyncFunctionDef)
        builders = [s for s in stmt.body if isinstance(s, methods) and s.name in _CONSTRUCTION]
        plain = [s for s in stmt.body if not isinstance(s, (*methods, ast.ClassDef))]
        body_calls = _all_loads(builders) | _all_loads(plain)
        header = _digest(*stmt.bases, *stmt.keywords)
        construction = _digest(*stmt.bases, *stmt.keywords, *stmt.decorator_list, *plain, *builders)
        if stmt.decorator_list:
            decorators = _digest(*stmt.decorator_list)
            decorator_reads = _all_loads(stmt.decorator_list)
    elif isinstance(stmt, ast.ImportFrom) and stmt.module == "__future__":
        kind = FUTURE
    elif isinstance(stmt, ast.Import | ast.ImportFrom):
        kind = IMPORT
    elif (
        isinstance(stmt, ast.Expr)
        and isinstance(stmt.value, ast.Constant)
        and isinstance(stmt.value.value, str)
    ):
        kind = DOC
        binds = frozenset({"__doc__"})
    elif _is_main_guard(stmt):
        kind = MAIN
    symbols: tuple[Symbol, ...] = ()
    if kind in (DEF, CLASS, IMPORT, OTHER):
        symbols = statement_symbols(stmt, flags, [])
        if first != 1:
            symbols = tuple(replace(s, lineno=s.lineno - first + 1) for s in symbols)
    return Info(
        digest=_digest(stmt),
        kind=kind,
        name=name,
        binds=frozenset(binds),
        reads=frozenset(reads.reads),
        called=frozenset(reads.called),
        body_calls=body_calls,
        decorators=decorators,
        decorator_reads=decorator_reads,
        construction=construction,
        header=header,
        mutates=frozenset(effects.mutates),
        attribute_sets=frozenset(effects.attribute_sets),
        from_imports=tuple(effects.from_imports),
        attribute_reads=frozenset(reads.attributes),
        called_attributes=frozenset(reads.called_attributes),
        symbols=symbols,
        annotates=tuple(n.target.id for n in annotated(stmt)),  # type: ignore[union-attr]
    )


def annotated(node: ast.AST) -> Iterator[ast.AnnAssign]:
    """The annotated assignments of a statement that go into its module's annotations: to a
    plain name (``x: int``), in its blocks too (``if``, ``try``...), not in function or class
    bodies; in source order."""
    if isinstance(node, ast.AnnAssign):
        if node.simple and isinstance(node.target, ast.Name):
            yield node
        return
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return
    for field_name in ("body", "handlers", "orelse", "finalbody", "cases"):
        for child in getattr(node, field_name, ()):
            yield from annotated(child)
