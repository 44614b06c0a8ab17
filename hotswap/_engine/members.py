"""What the live objects tell of a class's members, for a first reload from live objects.

The first reload of a module imported before hotswap, saved before the warm-up read its file,
works out the old source from the live objects (:func:`hotswap._engine.baseline.synthesize`).
A class statement is one unit there: it runs again when any of its members changed. To report
the change as a reload with the old source does (``Model.total`` changed, not ``Model``), each
member of the new class statement is compared with the live class's: its code, compiled from
the new source, with the live function's code (line numbers aside), and its literal defaults
with the live function's defaults; the class's own part (its literal attributes, its bases by
name) with the live class. What cannot be told from live objects (a decorator, a default that
is not a literal) counts as unchanged, as it does for a top-level definition.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import types
from typing import Any

from hotswap._engine.switch import is_instance, wrapper_chain
from hotswap._plan import symbols as _symbols
from hotswap._plan.symbols import Signature, Symbol

__all__ = (
    "Members",
    "accessors",
    "class_members",
    "owned_function",
    "signature_defaults_match",
)

_UNKNOWN = object()
_PLAIN = (int, float, complex, str, bytes, bool, tuple, frozenset, type(None))


@dataclasses.dataclass
class Members:
    """A class statement against its live class: qualified names whose definition differs
    (the class itself or a nested class when its own part differs), those the live class
    lacks, and the symbols of functions the live class defines that the new source drops."""

    changed: set[str] = dataclasses.field(default_factory=set)
    added: set[str] = dataclasses.field(default_factory=set)
    removed: list[Symbol] = dataclasses.field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.changed or self.added or self.removed)


def _literal(node: ast.expr | str | None) -> object:
    """The value of a literal (a tree or its text), else ``_UNKNOWN``."""
    if node is None:
        return _UNKNOWN
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return _UNKNOWN


def _same_plain(live: object, literal: object) -> bool:
    """False only when both are plain values that differ (a value that is not plain, or not
    a literal, cannot be told apart: it counts as the same). A live value that is not plain
    is what the class made of it (an Enum's member, a descriptor): it cannot be told apart."""
    if literal is _UNKNOWN or not isinstance(literal, _PLAIN) or type(live) not in _PLAIN:
        return True
    if type(live) is not type(literal):
        return False
    try:
        return bool(live == literal)
    except Exception:
        return False


def _literal_defaults_match(
    node: ast.FunctionDef | ast.AsyncFunctionDef, function: types.FunctionType
) -> bool:
    """Whether ``function``'s defaults can be what ``node`` gives: as many, and each literal
    default equal to the live one (the code object does not hold the defaults)."""
    args = node.args
    defaults = function.__defaults__ or ()
    if len(defaults) != len(args.defaults):
        return False
    if not all(_same_plain(v, _literal(d)) for v, d in zip(defaults, args.defaults, strict=True)):
        return False
    live = function.__kwdefaults__ or {}
    given = {a.arg: d for a, d in zip(args.kwonlyargs, args.kw_defaults, strict=True) if d}
    if set(live) != set(given):
        return False
    return all(_same_plain(live[k], _literal(d)) for k, d in given.items())


def signature_defaults_match(signature: Signature | None, function: types.FunctionType) -> bool:
    """:func:`_literal_defaults_match`, from a definition's signature (the defaults' text): a
    top-level ``def`` is not parsed again for it."""
    if signature is None:
        return True
    positional = (_symbols.POSITIONAL_ONLY, _symbols.POSITIONAL_OR_KEYWORD)
    given = [p.default for p in signature.params if p.kind in positional and p.default]
    defaults = function.__defaults__ or ()
    if len(defaults) != len(given):
        return False
    if not all(_same_plain(v, _literal(t)) for v, t in zip(defaults, given, strict=True)):
        return False
    named = {p.name: p.default for p in signature.params if p.kind == _symbols.KEYWORD_ONLY}
    named = {k: v for k, v in named.items() if v is not None}
    live = function.__kwdefaults__ or {}
    if set(live) != set(named):
        return False
    return all(_same_plain(live[k], _literal(t)) for k, t in named.items())


def owned_function(value: object, globals_: dict[str, Any]) -> types.FunctionType | None:
    """The function a definition in this module made, looking through ``__wrapped__`` chains.

    None when ``value`` is not, or does not wrap, a function whose globals are the module's.
    """
    for inner in wrapper_chain(value):
        # type(), not isinstance(): a proxy claims to be a function through __class__.
        if type(inner) is types.FunctionType and inner.__globals__ is globals_:
            return inner
    return None


def accessors(member: object) -> list[object]:
    """The functions a class member runs: a static or class method's, a property's accessors,
    a cached property's function, else the member itself."""
    if is_instance(member, staticmethod) or is_instance(member, classmethod):
        return [member.__func__]
    if is_instance(member, property):
        return [a for a in (member.fget, member.fset, member.fdel) if a is not None]
    if is_instance(member, functools.cached_property):
        return [member.func]
    return [member]


def _same_member(
    nodes: list[ast.FunctionDef | ast.AsyncFunctionDef],
    codes: list[types.CodeType],
    member: object,
    globals_: dict[str, Any],
) -> bool:
    """Whether the live ``member`` runs what one of the new definitions of its name makes (a
    property: each of its accessors)."""
    functions = [owned_function(a, globals_) for a in accessors(member)]
    if not functions or not codes:
        return False
    keys = [_symbols.code_key(c) for c in codes]
    found = [_symbols.code_key(f.__code__) for f in functions if f is not None]
    if len(found) != len(functions):
        return False
    if is_instance(member, property):
        return set(found) == set(keys)
    function = functions[0]
    assert function is not None
    # The definition that made it: the last of its name, or one of those in a condition's
    # branches (``if TYPE_CHECKING: def f ... else: def f``).
    made = [n for n, k in zip(nodes, keys, strict=False) if k == found[0]]
    return bool(made) and _literal_defaults_match(made[-1], function)


def _own_part_same(node: ast.ClassDef, cls: type) -> bool:
    """Whether the live class can have the class statement's own part: its bases by name and
    its literal attributes (an attribute the live class lacks, or a literal that differs)."""
    # The bases as the statement wrote them (``typing.NamedTuple`` and ``Generic[T]`` put
    # others in ``__bases__``).
    bases = [b for b in vars(cls).get("__orig_bases__", cls.__bases__) if b is not object]
    if len(bases) != len(node.bases):
        return False
    for base, expr in zip(bases, node.bases, strict=True):
        name = expr.id if isinstance(expr, ast.Name) else getattr(expr, "attr", None)
        if name is not None and name != getattr(base, "__name__", name):
            return False
    namespace = vars(cls)
    for stmt in node.body:
        if not (isinstance(stmt, ast.Assign | ast.AnnAssign) and stmt.value is not None):
            continue
        targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
        names = [t.id for t in targets if isinstance(t, ast.Name)]
        if len(names) != len(targets):
            continue
        literal = _literal(stmt.value)
        if literal is _UNKNOWN:
            continue  # a value no literal describes (``field(default_factory=list)``)
        for name in names:
            if name not in namespace or not _same_plain(namespace[name], literal):
                return False
    return True


def _in_order(body: list[ast.stmt]) -> list[ast.stmt]:
    """A class body's statements and those of its blocks, in source order (the order its
    code holds the definitions' code in)."""
    found: list[ast.stmt] = []
    for stmt in body:
        found.append(stmt)
        if isinstance(
            stmt, ast.If | ast.Try | ast.TryStar | ast.With | ast.AsyncWith | ast.For | ast.While
        ):
            found += _in_order(getattr(stmt, "body", []))
            for handler in getattr(stmt, "handlers", []):
                found += _in_order(handler.body)
            found += _in_order(getattr(stmt, "orelse", []))
            found += _in_order(getattr(stmt, "finalbody", []))
    return found


def class_members(
    node: ast.ClassDef,
    cls: type,
    body: types.CodeType,
    globals_: dict[str, Any],
    first: int,
    prefix: str = "",
) -> Members:
    """Compare a class statement (``node``, its body's ``body`` code compiled from the new
    source) with the live class ``cls``. ``first`` is the statement's first line: the
    symbols of removed members get lines counted from it, as a statement's symbols are."""
    qualname = prefix + node.name
    found = Members()
    if not _own_part_same(node, cls):
        found.changed.add(qualname)
    defs: dict[str, list[ast.FunctionDef | ast.AsyncFunctionDef]] = {}
    classes: dict[str, ast.ClassDef] = {}
    # Definitions in the body's blocks too (``if sys.version_info >= ...: def f``): their
    # code is in the class body's, as the others'.
    for stmt in _in_order(node.body):
        if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef):
            defs.setdefault(stmt.name, []).append(stmt)
        elif isinstance(stmt, ast.ClassDef):
            classes[stmt.name] = stmt
    codes: dict[str, list[types.CodeType]] = {}
    for const in body.co_consts:
        if isinstance(const, types.CodeType):
            codes.setdefault(const.co_name, []).append(const)
    namespace = vars(cls)
    for name, nodes in defs.items():
        member = f"{qualname}.{name}"
        if name not in namespace:
            found.added.add(member)
        elif not _same_member(nodes, codes.get(name, []), namespace[name], globals_):
            found.changed.add(member)
    for name, inner in classes.items():
        member = f"{qualname}.{name}"
        live = namespace.get(name)
        inner_codes = codes.get(name, [])
        if not isinstance(live, type) or live.__qualname__ != member or not inner_codes:
            found.added.add(member)
            continue
        nested = class_members(inner, live, inner_codes[-1], globals_, first, f"{qualname}.")
        found.changed |= nested.changed
        found.added |= nested.added
        found.removed += nested.removed
    for key, value in list(namespace.items()):
        if key in defs or key in classes:
            continue
        functions = [owned_function(a, globals_) for a in accessors(value)]
        function = functions[0] if functions else None
        # Only a function its class body defined (its qualified name says so): one the
        # program set on the class later is the program's state, not the source's.
        if function is None or function.__qualname__ != f"{qualname}.{key}":
            continue
        if function.__code__.co_filename.startswith("<"):
            continue  # made from a string (a dataclass's ``__init__``): not the source's
        line = function.__code__.co_firstlineno - first + 1
        kind = _symbols.PROPERTY if is_instance(value, property) else _symbols.METHOD
        found.removed.append(Symbol(f"{qualname}.{key}", kind, line, None))
    return found
