"""Symbol tables: what a module defines, as its callers see it.

Pure functions over source text, ASTs and code objects (immutable values): this module touches
no live object and does no I/O. A *symbol* is a definition callers can reach: a function, a
class, a method (qualified ``Cls.method``, nested classes too) or a module-level name, with its
line, a digest that ignores position, layout and comments, its signature, and the module-level
names its definition uses when it is evaluated.
"""

from __future__ import annotations
import __future__

import ast
import types
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace

from hotswap._plan.lines import source_lines, split_statements
from hotswap._plan.nodes import digest as _digest
from hotswap._plan.nodes import forget_shapes, node_digest, walk
from hotswap._plan.signatures import (
    ASYNC_GENERATOR,
    COROUTINE,
    GENERATOR,
    KEYWORD_ONLY,
    PLAIN,
    POSITIONAL_ONLY,
    POSITIONAL_OR_KEYWORD,
    VAR_KEYWORD,
    VAR_POSITIONAL,
    Param,
    Signature,
    every_arg,
    named_lambda,
    signature_of,
)

__all__ = (
    "ASYNC_GENERATOR",
    "CLASS",
    "CLASSMETHOD",
    "COROUTINE",
    "FUNCTION",
    "FUTURE_FLAGS",
    "GENERATOR",
    "KEYWORD_ONLY",
    "METHOD",
    "NAME",
    "PLAIN",
    "POSITIONAL_ONLY",
    "POSITIONAL_OR_KEYWORD",
    "PROPERTY",
    "STATICMETHOD",
    "VAR_KEYWORD",
    "VAR_POSITIONAL",
    "Param",
    "Signature",
    "Symbol",
    "Symbols",
    "code_index",
    "code_key",
    "forget_shapes",
    "module_symbols",
    "moved",
    "node_digest",
    "source_lines",
    "split_statements",
)

# Symbol kinds.
FUNCTION = "function"
CLASS = "class"
METHOD = "method"
STATICMETHOD = "staticmethod"
CLASSMETHOD = "classmethod"
PROPERTY = "property"
NAME = "name"


@dataclass(frozen=True, slots=True)  # thousands per module: no dict each
class Symbol:
    """One definition in a module.

    Attributes:
        qualname: ``f``, ``Cls``, ``Cls.method`` or a module-level name.
        kind: one of the kind constants of this module.
        lineno: the line of the definition.
        fingerprint: a digest of the definition that ignores position, formatting and
            comments; None when unknown (a symbol described from live objects).
        signature: for functions and methods, what callers rely on.
        deps: module-level names the definition uses when it is *evaluated* (decorators,
            defaults, annotations, bases, right-hand sides), not when it is called.
        reloadable: decorated with ``@reloadable``.
        settable: a property with a setter.
    """

    qualname: str
    kind: str
    lineno: int
    fingerprint: str | None
    signature: Signature | None = None
    deps: frozenset[str] = frozenset()
    reloadable: bool = False
    settable: bool = False


def moved(symbol: Symbol, lineno: int) -> Symbol:
    """``symbol`` at another line (``dataclasses.replace`` costs three times as much, and a
    rewritten module places every statement's symbols)."""
    s = symbol
    return Symbol(
        s.qualname, s.kind, lineno, s.fingerprint, s.signature, s.deps, s.reloadable, s.settable
    )


_CacheKey = tuple[int, str]  # (the module's __future__ flags, a statement's text)
_FUTURE_FLAGS = 0
for _feature in __future__.all_feature_names:
    _FUTURE_FLAGS |= getattr(__future__, _feature).compiler_flag
FUTURE_FLAGS = _FUTURE_FLAGS
_CacheEntry = tuple[int, tuple[Symbol, ...]]


class Symbols(dict[str, Symbol]):
    """A module's symbol table: qualified name -> :class:`Symbol`, plus where each stands.

    ``lines`` holds the current line of every symbol (a symbol reused from an earlier version
    keeps the line it was made at). ``cache`` lets the next version of the module reuse the
    symbols of every top-level statement whose text did not change.
    """

    def __init__(self) -> None:
        super().__init__()
        self.lines: dict[str, int] = {}
        self.cache: dict[_CacheKey, _CacheEntry] = {}

    def line(self, name: str) -> int:
        return self.lines.get(name) or self[name].lineno

    @classmethod
    def of(cls, symbols: Iterable[Symbol]) -> Symbols:
        """A table of symbols described elsewhere (from live objects)."""
        table = cls()
        for symbol in symbols:
            table[symbol.qualname] = symbol
            table.lines[symbol.qualname] = symbol.lineno
        return table


def module_symbols(
    source: str,
    code: types.CodeType,
    previous: Symbols | None = None,
    *,
    tree: ast.Module | None = None,
) -> Symbols:
    """The symbol table of a module, from its source and the code compiled from it.

    Function bodies are fingerprinted from their code objects, which the reload compiles anyway:
    much cheaper than walking the AST, and just as blind to position, layout and comments.
    Only top-level statements whose text is not in ``previous`` (the table of the module's last
    version) are parsed, so the cost follows the edit, not the size of the module. ``tree``
    gives the statements to describe instead of the source's (a filtered tree).
    """
    cache = None if previous is None else previous.cache
    if tree is None:
        chunks = split_statements(source)
        if chunks is not None:
            builder = _Builder(code, source, cache)
            if builder.chunks(chunks):
                return builder.symbols
        tree = ast.parse(source)
    builder = _Builder(code, source, None)
    for stmt in tree.body:
        builder.statement(stmt)
    return builder.symbols


def code_key(code: types.CodeType) -> tuple[object, ...]:
    """What makes code behave, nothing about where it stands in the file.

    ``co_code`` and the constants carry no line numbers (those live in ``co_linetable``), so a
    moved or reformatted definition has the same key.
    """
    consts = tuple(
        code_key(c) if isinstance(c, types.CodeType) else (type(c), c) for c in code.co_consts
    )
    return (
        code.co_code,
        consts,
        code.co_names,
        code.co_varnames,
        code.co_freevars,
        code.co_cellvars,
        code.co_flags,
        code.co_argcount,
        code.co_posonlyargcount,
        code.co_kwonlyargcount,
        code.co_name,
    )


def code_index(code: types.CodeType) -> dict[tuple[str, int], types.CodeType]:
    """Every code object inside ``code``, by name and first line (a decorated definition's
    first line is its first decorator's)."""
    index: dict[tuple[str, int], types.CodeType] = {}
    stack = [code]
    while stack:
        for const in stack.pop().co_consts:
            if isinstance(const, types.CodeType):
                index[(const.co_name, const.co_firstlineno)] = const
                stack.append(const)
    return index


def _first_line(node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) -> int:
    return node.decorator_list[0].lineno if node.decorator_list else node.lineno


def _loaded_names(nodes: Iterable[ast.AST | None]) -> frozenset[str]:
    names: set[str] = set()
    for node in nodes:
        if node is None:
            continue
        for sub in walk(node):
            if isinstance(sub, ast.Name) and isinstance(sub.ctx, ast.Load):
                names.add(sub.id)
    return frozenset(names)


def _decorator_name(node: ast.expr) -> str:
    if isinstance(node, ast.Call):
        node = node.func
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return ""


def _bound_names(target: ast.AST) -> Iterator[str]:
    if isinstance(target, ast.Name):
        yield target.id
    elif isinstance(target, ast.Tuple | ast.List):
        for element in target.elts:
            yield from _bound_names(element)
    elif isinstance(target, ast.Starred):
        yield from _bound_names(target.value)


def _statement_bindings(stmt: ast.stmt) -> Iterator[str]:
    """Names a simple module-level statement binds."""
    if isinstance(stmt, ast.Assign):
        for target in stmt.targets:
            yield from _bound_names(target)
    elif isinstance(stmt, ast.AnnAssign | ast.AugAssign):
        if not (isinstance(stmt, ast.AnnAssign) and stmt.value is None):
            yield from _bound_names(stmt.target)
    elif isinstance(stmt, ast.Import):
        for alias in stmt.names:
            yield alias.asname or alias.name.split(".")[0]
    elif isinstance(stmt, ast.ImportFrom):
        for alias in stmt.names:
            if alias.name != "*":
                yield alias.asname or alias.name
    elif isinstance(stmt, ast.For | ast.AsyncFor):
        yield from _bound_names(stmt.target)
    elif isinstance(stmt, ast.With | ast.AsyncWith):
        for item in stmt.items:
            if item.optional_vars is not None:
                yield from _bound_names(item.optional_vars)


class _Builder:
    """Builds symbols statement by statement. Without a code object (``code`` None, ``flags``
    the module's ``__future__`` flags) function bodies are fingerprinted from the AST."""

    def __init__(
        self,
        code: types.CodeType | None,
        source: str,
        cache: dict[_CacheKey, _CacheEntry] | None,
        flags: int = 0,
    ) -> None:
        flags = code.co_flags if code is not None else flags
        self.lazy_annotations = bool(flags & __future__.annotations.compiler_flag)
        self.flags = flags & _FUTURE_FLAGS
        self.code = code
        self._codes: dict[tuple[str, int], types.CodeType] | None = None if code else {}
        self.lines = source_lines(source)
        self.old_cache = cache or {}
        self.symbols = Symbols()
        self.made: list[Symbol] = []  # what the statement being built added, for the cache
        # The names a top-level statement loads (the dependencies of the names it binds), by
        # its id: the binding statements nested in its blocks share them.
        self.loads: dict[int, frozenset[str]] = {}
        # False when the statement's text has no ``yield``: no function of it is a generator.
        self.may_yield = True

    @property
    def codes(self) -> dict[tuple[str, int], types.CodeType]:
        # Indexed on first use: a module whose every statement is cached never needs it.
        if self._codes is None:
            assert self.code is not None
            self._codes = code_index(self.code)
        return self._codes

    def chunks(self, chunks: list[tuple[int, str]]) -> bool:
        """Describe the statements; False when a piece does not parse on its own."""
        for first, text in chunks:
            key = (self.flags, text)
            hit = self.old_cache.get(key)
            if hit is not None:
                start, symbols = hit
                for symbol in symbols:
                    self.add(symbol, symbol.lineno - start + first)
                self.symbols.cache[key] = hit
                continue
            try:
                # Blank lines in front keep the line numbers of the whole file.
                tree = ast.parse("\n" * (first - 1) + text)
            except SyntaxError:
                return False
            self.made = []
            for stmt in tree.body:
                self.statement(stmt)
            self.symbols.cache[key] = (first, tuple(self.made))
        return True

    def text(self, node: ast.expr) -> str:
        """The source text of an expression (a default value, for messages)."""
        end_lineno, end_col = node.end_lineno, node.end_col_offset
        if end_lineno is None or end_col is None or node.lineno > len(self.lines):
            return ast.unparse(node)
        # Column offsets count UTF-8 bytes.
        first = self.lines[node.lineno - 1].encode()
        if end_lineno == node.lineno:
            return first[node.col_offset : end_col].decode(errors="replace")
        middle = [line.encode() for line in self.lines[node.lineno : end_lineno - 1]]
        last = self.lines[end_lineno - 1].encode()[:end_col]
        parts = [first[node.col_offset :], *middle, last]
        return " ".join(p.decode(errors="replace").strip() for p in parts)

    def add(self, symbol: Symbol, line: int | None = None) -> None:
        self.made.append(symbol)
        self.symbols.lines.setdefault(symbol.qualname, symbol.lineno if line is None else line)
        # A name bound twice (a property and its setter, a conditional definition) is one
        # symbol: both definitions count towards its digest and dependencies.
        previous = self.symbols.get(symbol.qualname)
        if previous is not None:
            symbol = replace(
                symbol,
                lineno=previous.lineno,
                fingerprint=f"{previous.fingerprint}|{symbol.fingerprint}",
                deps=previous.deps | symbol.deps,
                reloadable=previous.reloadable or symbol.reloadable,
                settable=previous.settable or symbol.settable,
                kind=PROPERTY if PROPERTY in (previous.kind, symbol.kind) else symbol.kind,
            )
        self.symbols[symbol.qualname] = symbol

    def statement(self, stmt: ast.stmt, enclosing: ast.stmt | None = None) -> None:
        if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef):
            self.function(stmt, prefix="", in_class=False)
        elif isinstance(stmt, ast.ClassDef):
            self.klass(stmt, prefix="")
        elif isinstance(stmt, ast.If | ast.Try | ast.With | ast.AsyncWith):
            # Conditional definitions (``if TYPE_CHECKING``, ``try: import x``) are still
            # module-level names.
            self.simple(stmt, enclosing or stmt)
            start = len(self.made)
            for block in _blocks(stmt):
                for inner in block:
                    self.statement(inner, enclosing or stmt)
            if not isinstance(stmt, ast.With | ast.AsyncWith):
                self.alternatives(start)
        else:
            self.simple(stmt, enclosing or stmt)

    def alternatives(self, start: int) -> None:
        """A name that a conditional statement binds both as a plain name and by a definition
        (``try: from functools import total_ordering`` / ``except ImportError: def
        total_ordering(cls): ...``) is whatever ran: a plain name to the checks, whose
        signature is not known from the source. The statement's symbols from ``start`` on are
        rewritten in ``made`` too, so a later version reusing them from the cache gets the
        same."""
        made = self.made[start:]
        plain = {s.qualname for s in made if s.kind == NAME}
        both = {s.qualname for s in made if s.kind != NAME and s.qualname in plain}
        if not both:
            return
        for index in range(start, len(self.made)):
            symbol = self.made[index]
            if symbol.qualname in both:
                self.made[index] = replace(symbol, kind=NAME, signature=None, settable=False)
        for name in both:
            self.symbols[name] = replace(
                self.symbols[name], kind=NAME, signature=None, settable=False
            )

    def simple(self, stmt: ast.stmt, whole: ast.stmt) -> None:
        names = list(_statement_bindings(stmt))
        if not names:
            return
        fingerprint = _digest(whole)
        deps = self.loads.get(id(whole))
        if deps is None:
            deps = self.loads[id(whole)] = _loaded_names([whole])
        value = named_lambda(stmt)
        if value is not None:
            # ``f = lambda x: ...`` is a function to its callers: held to a function's checks
            # (a ``def f`` turned into it, or back, keeps its callers when its signature does).
            signature = signature_of(value, False, None, self.text)
            self.add(Symbol(names[0], FUNCTION, stmt.lineno, fingerprint, signature, deps=deps))
            return
        for name in names:
            self.add(Symbol(name, NAME, stmt.lineno, fingerprint, deps=deps))

    def function(
        self, node: ast.FunctionDef | ast.AsyncFunctionDef, *, prefix: str, in_class: bool
    ) -> None:
        decorators = {_decorator_name(d) for d in node.decorator_list}
        kind = FUNCTION
        settable = False
        if in_class:
            kind = METHOD
            if "staticmethod" in decorators:
                kind = STATICMETHOD
            elif "classmethod" in decorators:
                kind = CLASSMETHOD
            elif decorators & {"property", "cached_property", "setter", "getter", "deleter"}:
                kind = PROPERTY
                settable = "setter" in decorators
        args = node.args
        annotations: list[ast.AST] = [a.annotation for a in every_arg(args) if a.annotation]
        if node.returns is not None:
            annotations.append(node.returns)
        # What the def statement evaluates, in the tree; the body is in the code object.
        header: list[ast.AST] = [*node.decorator_list, *args.defaults]
        header += [d for d in args.kw_defaults if d is not None]
        # Postponed annotations are strings, evaluated later if ever: not dependencies.
        deps = _loaded_names(header if self.lazy_annotations else [*header, *annotations])
        code = self.codes.get((node.name, _first_line(node)))
        signature = None
        if kind != PROPERTY:
            implicit = kind in (METHOD, CLASSMETHOD)
            signature = signature_of(node, implicit, code, self.text, self.may_yield)
        if code is None:
            fingerprint = _digest(node)
        else:
            body = hash(code_key(code)) & 0xFFFFFFFFFFFFFFFF
            fingerprint = f"{body:016x}{_digest(*header, *annotations)}"
        self.add(
            Symbol(
                prefix + node.name,
                kind,
                node.lineno,
                fingerprint,
                signature,
                deps=deps,
                reloadable="reloadable" in decorators,
                settable=settable,
            )
        )

    def klass(self, node: ast.ClassDef, *, prefix: str) -> None:
        qualname = prefix + node.name
        header: list[ast.AST] = [*node.bases, *node.keywords, *node.decorator_list]
        members = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
        attributes = [stmt for stmt in node.body if not isinstance(stmt, members)]
        # The class's own digest covers its header and its attributes; each method and nested
        # class is a symbol of its own, so editing one method does not mark the class changed.
        self.add(
            Symbol(
                qualname,
                CLASS,
                node.lineno,
                _digest(*header, *attributes),
                deps=_loaded_names([*header, *attributes]),
                reloadable="reloadable" in {_decorator_name(d) for d in node.decorator_list},
            )
        )
        for stmt in node.body:
            if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef):
                self.function(stmt, prefix=qualname + ".", in_class=True)
            elif isinstance(stmt, ast.ClassDef):
                self.klass(stmt, prefix=qualname + ".")


def _blocks(stmt: ast.If | ast.Try | ast.With | ast.AsyncWith) -> Iterator[list[ast.stmt]]:
    if isinstance(stmt, ast.If):
        yield stmt.body
        yield stmt.orelse
    elif isinstance(stmt, ast.Try):
        yield stmt.body
        for handler in stmt.handlers:
            yield handler.body
        yield stmt.orelse
        yield stmt.finalbody
    else:
        yield stmt.body


def statement_symbols(
    stmt: ast.stmt,
    flags: int,
    lines: list[str],
    loads: frozenset[str] | None = None,
    text: str | None = None,
) -> tuple[Symbol, ...]:
    """The symbols one top-level statement defines, from its AST alone (``lines``: the
    module's source lines, for the text of default values in messages; ``loads``: every
    name the statement loads, when the caller knows them already; ``text``: the statement's
    source, when the caller has it)."""
    if loads is not None and type(stmt) in _PLAIN_STATEMENTS and named_lambda(stmt) is None:
        # Most statements of a data-heavy or rewritten module: what the builder would make,
        # without making it (the names it binds, once each, as plain names).
        names = list(_statement_bindings(stmt))
        if not names:
            return ()
        if len(set(names)) == len(names):
            fingerprint = _digest(stmt)
            return tuple(Symbol(n, NAME, stmt.lineno, fingerprint, deps=loads) for n in names)
    builder = _Builder(None, "", None, flags)
    builder.lines = lines
    builder.may_yield = text is None or "yield" in text
    if loads is not None:
        builder.loads[id(stmt)] = loads
    builder.statement(stmt)
    return tuple(builder.symbols.values())


# Statements the builder describes as the plain names they bind (:meth:`_Builder.simple`).
_PLAIN_STATEMENTS = frozenset({ast.Assign, ast.AugAssign, ast.AnnAssign, ast.Expr})
