"""What one top-level statement is, from its AST alone: its kind, what it binds, reads,
calls and mutates, and the symbols it defines (:class:`Info`). Pure functions over ASTs; the
module's statements and versions are :mod:`hotswap._plan.statements`."""

from __future__ import annotations
import __future__

import ast
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

from hotswap._plan.effects import Effects
from hotswap._plan.effects import body_mutates as body_mutates_of
from hotswap._plan.nodes import walk
from hotswap._plan.symbols import (
    Symbol,
    forget_shapes,
    moved,
    node_digest,
    statement_symbols,
)

__all__ = (
    "CLASS",
    "DEF",
    "DOC",
    "FUTURE",
    "IMPORT",
    "MAIN",
    "OTHER",
    "Info",
    "analyse",
    "first_line",
)

T = TypeVar("T")

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


@dataclass(frozen=True, slots=True)  # thousands per module: no dict each
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
        header_reads: for a class, the names its bases and keywords load (a base rebound
            makes it a new class: it cannot be merged into the kept one).
        mutates: names whose object it may mutate in place (``X.append(...)``, ``X[k] = v``).
        body_mutates: for a function, the module-level names whose object its body (nested
            functions included: a decorator factory's decorator) may mutate in place; a
            statement that calls it may write into them (``@register`` filling a registry).
            For a class with an ``__init_subclass__``, what that hook may mutate, and the
            class itself: a subclass statement writes into them (a registry of plugins).
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
    header_reads: frozenset[str] = frozenset()
    mutates: frozenset[str] = frozenset()
    body_mutates: frozenset[str] = frozenset()
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
            found = tuple(moved(s, s.lineno + shift) for s in self.symbols)
            self.placed[shift] = found
        return found


def _assigned(stmt: ast.stmt) -> set[str]:
    """The plain names an assignment statement binds."""
    if isinstance(stmt, ast.Assign):
        return {t.id for t in stmt.targets if isinstance(t, ast.Name)}
    if isinstance(stmt, ast.AnnAssign | ast.AugAssign) and isinstance(stmt.target, ast.Name):
        return {stmt.target.id}
    return set()


def first_line(node: ast.stmt) -> int:
    decorators: list[ast.expr] = getattr(node, "decorator_list", [])
    return decorators[0].lineno if decorators else node.lineno


def _digest(*nodes: ast.AST | None) -> str:
    # ast.dump leaves out positions, and the AST has no comments or layout.
    return node_digest(*nodes)


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
        # Whether a body was left out (a def's, a lambda's): else ``reads`` is every name the
        # node loads.
        self.partial = False

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
        self.partial = True
        for decorator in node.decorator_list:
            self._decorator(decorator)
        self._signature(node.args, node.returns)

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Lambda(self, node: ast.Lambda) -> None:
        self.partial = True
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


# Nodes whose reads follow rules of their own (a body not run, a walrus binding): a statement
# holding one is read by the visitor.
_SCOPED = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef, ast.NamedExpr)


def _read(stmt: ast.stmt, lazy_annotations: bool) -> _Reads:
    """What ``stmt`` reads, as :class:`_Reads` finds it; a statement without definitions,
    lambdas or walruses (most of a module's assignments and calls) in one walk, without the
    visitor's dispatch (a third of reading a rewritten module went there)."""
    reads = _Reads(lazy_annotations)
    if _read_flat(stmt, reads):
        return reads
    reads = _Reads(lazy_annotations)
    reads.visit(stmt)
    return reads


def _read_flat(stmt: ast.stmt, found: _Reads) -> bool:
    """Fill ``found`` by one walk of ``stmt``; False (``found`` half filled) when it holds a
    node of :data:`_SCOPED`."""
    names, called, attributes = found.reads, found.called, found.attributes
    called_attributes = found.called_attributes
    stack: list[ast.AST] = [stmt]
    while stack:
        node = stack.pop()
        kind = type(node)
        if kind is ast.Name:
            if isinstance(node.ctx, ast.Load):  # type: ignore[attr-defined]
                names.add(node.id)  # type: ignore[attr-defined]
            continue
        if isinstance(node, _SCOPED):
            return False
        if kind is ast.Attribute or kind is ast.Call:
            chain: list[str] = []
            value = node.func if kind is ast.Call else node  # type: ignore[attr-defined]
            if kind is ast.Call and isinstance(value, ast.Name):
                called.add(value.id)
            while isinstance(value, ast.Attribute):
                chain.append(value.attr)
                value = value.value
            if isinstance(value, ast.Name):
                if kind is ast.Call:
                    if chain:
                        called_attributes.add((value.id, tuple(reversed(chain))))
                elif isinstance(node.ctx, ast.Load):  # type: ignore[attr-defined]
                    attributes.add((value.id, tuple(reversed(chain))))
        for field_name in kind._fields:
            value = getattr(node, field_name, None)
            if isinstance(value, ast.AST):
                stack.append(value)
            elif type(value) is list:
                stack.extend(v for v in value if isinstance(v, ast.AST))
    return True


def _all_loads(nodes: Iterable[ast.AST]) -> frozenset[str]:
    """Every name loaded anywhere below ``nodes``, function bodies included."""
    return frozenset(
        sub.id
        for node in nodes
        for sub in walk(node)
        if isinstance(sub, ast.Name) and isinstance(sub.ctx, ast.Load)
    )


def _is_main_guard(stmt: ast.stmt) -> bool:
    if not isinstance(stmt, ast.If) or not isinstance(stmt.test, ast.Compare):
        return False
    test = stmt.test
    sides = [test.left, *test.comparators]
    names = any(isinstance(s, ast.Name) and s.id == "__name__" for s in sides)
    main = any(isinstance(s, ast.Constant) and s.value == "__main__" for s in sides)
    return names and main and len(test.ops) == 1 and isinstance(test.ops[0], ast.Eq)


# One empty set for every empty field: a module's statements hold thousands, each a separate
# object the garbage collector would visit (it tracks every frozenset it is given).
_NONE: frozenset[Any] = frozenset()


def _frozen(items: Iterable[T]) -> frozenset[T]:
    return frozenset(items) if items else _NONE


def analyse(stmt: ast.stmt, flags: int, first: int = 1, text: str | None = None) -> Info:
    """The :class:`Info` of one statement (``first``: the line its AST counts as line 1;
    ``text``: the source it was parsed from, when the caller has it: a statement without the
    word ``yield`` has no generator to look for)."""
    forget_shapes()  # (the last statement's)
    lazy = bool(flags & __future__.annotations.compiler_flag)
    reads = _read(stmt, lazy)
    effects = Effects()
    effects.statement(stmt)
    binds = _frozen(effects.binds | reads.walrus)
    read = _frozen(reads.reads)
    kind = OTHER
    name: str | None = None
    body_calls: frozenset[str] = _NONE
    body_mutates: frozenset[str] = _NONE
    decorators: str | None = None
    decorator_reads: frozenset[str] = _NONE
    construction: str | None = None
    header: str | None = None
    header_reads: frozenset[str] = _NONE
    if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef):
        kind, name = DEF, stmt.name
        body_calls = _frozen(_all_loads(stmt.body))
        body_mutates = _frozen(body_mutates_of(stmt))
        if stmt.decorator_list:
            decorators = _digest(*stmt.decorator_list)
            decorator_reads = _frozen(_all_loads(stmt.decorator_list))
    elif isinstance(stmt, ast.ClassDef):
        kind, name = CLASS, stmt.name
        methods = (ast.FunctionDef, ast.AsyncFunctionDef)
        builders = [s for s in stmt.body if isinstance(s, methods) and s.name in _CONSTRUCTION]
        plain = [s for s in stmt.body if not isinstance(s, (*methods, ast.ClassDef))]
        body_calls = _frozen(_all_loads(builders) | _all_loads(plain))
        # ``__slots__`` is part of the header: a class whose slots changed cannot take a merge
        # and is created again, which its importers must know before anything runs.
        slots = [s for s in plain if "__slots__" in _assigned(s)]
        # ``class C(object):`` and ``class C:`` make the same class: not a change of bases.
        bases = [b for b in stmt.bases if not (isinstance(b, ast.Name) and b.id == "object")]
        header = _digest(*bases, *stmt.keywords, *slots)
        header_reads = _frozen(_all_loads([*stmt.bases, *stmt.keywords]))
        construction = _digest(*bases, *stmt.keywords, *stmt.decorator_list, *plain, *builders)
        hooks = [s for s in stmt.body if isinstance(s, methods) and s.name == "__init_subclass__"]
        if hooks:
            body_mutates = frozenset({stmt.name}).union(*(body_mutates_of(h) for h in hooks))
        if stmt.decorator_list:
            decorators = _digest(*stmt.decorator_list)
            decorator_reads = _frozen(_all_loads(stmt.decorator_list))
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
    placed: dict[int, tuple[Symbol, ...]] = {}
    if kind in (DEF, CLASS, IMPORT, OTHER):
        loads = None if reads.partial or kind in (DEF, CLASS) else read
        symbols = statement_symbols(stmt, flags, [], loads, text)
        if first != 1:
            placed[first - 1] = symbols  # where it stands now: asked for next
            symbols = tuple(moved(s, s.lineno - first + 1) for s in symbols)
    return Info(
        digest=_digest(stmt),
        kind=kind,
        name=name,
        binds=binds,
        reads=read,
        called=_frozen(reads.called),
        body_calls=body_calls,
        decorators=decorators,
        decorator_reads=decorator_reads,
        construction=construction,
        header=header,
        header_reads=header_reads,
        mutates=_frozen(effects.mutates),
        body_mutates=body_mutates,
        attribute_sets=_frozen(effects.attribute_sets),
        from_imports=tuple(effects.from_imports),
        attribute_reads=_frozen(reads.attributes),
        called_attributes=_frozen(reads.called_attributes),
        symbols=symbols,
        annotates=tuple(n.target.id for n in annotated(stmt) if isinstance(n.target, ast.Name)),
        placed=placed,
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
