"""Symbol tables, the AST diff and the compatibility rules.

Pure functions over source text and ASTs: this module touches no live object and does no I/O.
A *symbol* is a definition callers can reach: a function, a class, a method (qualified
``Cls.method``, nested classes too) or a module-level name. Two symbol tables give a
:class:`ChangeSet` (what changed, with lines) and a list of :class:`Finding` (what would break
callers of the old version, per DESIGN §6).
"""

from __future__ import annotations

import ast
import hashlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property

__all__ = (
    "CLASS",
    "CLASSMETHOD",
    "FUNCTION",
    "METHOD",
    "NAME",
    "PROPERTY",
    "STATICMETHOD",
    "ChangeSet",
    "Finding",
    "Param",
    "Signature",
    "Symbol",
    "check",
    "diff",
    "is_public",
    "module_symbols",
)

# Symbol kinds.
FUNCTION = "function"
CLASS = "class"
METHOD = "method"
STATICMETHOD = "staticmethod"
CLASSMETHOD = "classmethod"
PROPERTY = "property"
NAME = "name"

# Parameter kinds, named as inspect names them.
POSITIONAL_ONLY = "positional-only"
POSITIONAL_OR_KEYWORD = "positional-or-keyword"
VAR_POSITIONAL = "var-positional"
KEYWORD_ONLY = "keyword-only"
VAR_KEYWORD = "var-keyword"

# How a function is called: what a caller gets back.
PLAIN = "function"
COROUTINE = "coroutine function"
GENERATOR = "generator function"
ASYNC_GENERATOR = "async generator function"

_REMOVED = "(removed)"
_ARTICLE = {PLAIN: "a", COROUTINE: "a", GENERATOR: "a", ASYNC_GENERATOR: "an"}


@dataclass(frozen=True)
class Param:
    """One parameter: its name, kind and default (source text, None when required)."""

    name: str
    kind: str
    default: str | None = None

    def format(self) -> str:
        prefix = {VAR_POSITIONAL: "*", VAR_KEYWORD: "**"}.get(self.kind, "")
        suffix = "" if self.default is None else f"={self.default}"
        return f"{prefix}{self.name}{suffix}"


@dataclass(frozen=True)
class Signature:
    """What a caller relies on: the parameters and whether it is async or a generator.

    ``implicit`` is true for methods and classmethods, whose first parameter the caller does
    not pass.
    """

    params: tuple[Param, ...]
    call: str = PLAIN
    implicit: bool = False

    def format(self, name: str) -> str:
        """``async charge(amount, currency='EUR', *, retry=False)``."""
        parts: list[str] = []
        bare_star = not any(p.kind == VAR_POSITIONAL for p in self.params)
        last_positional_only = max(
            (i for i, p in enumerate(self.params) if p.kind == POSITIONAL_ONLY), default=-1
        )
        for index, param in enumerate(self.params):
            if param.kind == KEYWORD_ONLY and bare_star:
                parts.append("*")
                bare_star = False
            parts.append(param.format())
            if index == last_positional_only:
                parts.append("/")
        prefix = "async " if self.call in (COROUTINE, ASYNC_GENERATOR) else ""
        return f"{prefix}{name}({', '.join(parts)})"

    @property
    def caller_params(self) -> tuple[Param, ...]:
        return self.params[1:] if self.implicit else self.params


@dataclass(frozen=True)
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


@dataclass(frozen=True)
class ChangeSet:
    """The difference between two symbol tables.

    ``unknown`` holds names defined by both whose old definition is not known (the old side was
    described from live objects): whether they changed is decided by comparing objects.
    ``lines`` maps each name to its line in the new source (the old one for removed names).
    """

    added: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    unknown: tuple[str, ...] = ()
    lines: Mapping[str, int] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.added or self.changed or self.removed or self.unknown)

    def is_changed(self, qualname: str) -> bool | None:
        """True when ``qualname`` changed or is new, False when unchanged, None when unknown."""
        if qualname in self._changed_or_added:
            return True
        if qualname in self._unknown:
            return None
        return False

    # cached_property writes the instance __dict__ directly, so it works on a frozen dataclass.
    @cached_property
    def _changed_or_added(self) -> frozenset[str]:
        return frozenset(self.changed) | frozenset(self.added)

    @cached_property
    def _unknown(self) -> frozenset[str]:
        return frozenset(self.unknown)


@dataclass(frozen=True)
class Finding:
    """A change that could break callers of the old version."""

    symbol: str
    old: str
    new: str
    lineno: int
    reason: str
    public: bool
    reloadable: bool = False

    def format(self, where: str) -> str:
        """``where: old -> new: reason``, where ``where`` is ``module (file:line)``."""
        if self.new == _REMOVED:
            return f"{where}: {self.old}: {self.reason}"
        return f"{where}: {self.old} -> {self.new}: {self.reason}"


def is_public(qualname: str) -> bool:
    """A name is public unless a part of it starts with a single underscore (dunders are public)."""
    return not any(
        part.startswith("_") and not (part.startswith("__") and part.endswith("__"))
        for part in qualname.split(".")
    )


# --- symbol tables ------------------------------------------------------------------------------


def module_symbols(tree: ast.Module) -> dict[str, Symbol]:
    """The symbol table of a parsed module."""
    lazy = any(
        isinstance(node, ast.ImportFrom)
        and node.module == "__future__"
        and any(alias.name == "annotations" for alias in node.names)
        for node in tree.body
    )
    builder = _Builder(lazy_annotations=lazy)
    builder.module_body(tree.body)
    return builder.symbols


def _digest(*nodes: ast.AST) -> str:
    # ast.dump leaves out line and column attributes, and the AST has no comments or layout,
    # so moving, reformatting or commenting a definition keeps its digest.
    text = "\n".join(ast.dump(node) for node in nodes)
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def _loaded_names(nodes: Iterable[ast.AST | None]) -> frozenset[str]:
    names: set[str] = set()
    for node in nodes:
        if node is None:
            continue
        for sub in ast.walk(node):
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


def _call_kind(node: ast.FunctionDef | ast.AsyncFunctionDef) -> str:
    yields = False
    stack: list[ast.AST] = list(node.body)
    while stack:
        sub = stack.pop()
        if isinstance(sub, ast.Yield | ast.YieldFrom):
            yields = True
            break
        # A nested function, lambda or class has its own kind.
        if isinstance(sub, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda | ast.ClassDef):
            continue
        stack.extend(ast.iter_child_nodes(sub))
    if isinstance(node, ast.AsyncFunctionDef):
        return ASYNC_GENERATOR if yields else COROUTINE
    return GENERATOR if yields else PLAIN


def _signature(node: ast.FunctionDef | ast.AsyncFunctionDef, implicit: bool) -> Signature:
    args = node.args
    positional = [*args.posonlyargs, *args.args]
    defaults: list[ast.expr | None] = [None] * (len(positional) - len(args.defaults))
    defaults += args.defaults
    params: list[Param] = []
    for index, (arg, default) in enumerate(zip(positional, defaults, strict=True)):
        kind = POSITIONAL_ONLY if index < len(args.posonlyargs) else POSITIONAL_OR_KEYWORD
        params.append(Param(arg.arg, kind, None if default is None else ast.unparse(default)))
    if args.vararg is not None:
        params.append(Param(args.vararg.arg, VAR_POSITIONAL))
    for arg, kw_default in zip(args.kwonlyargs, args.kw_defaults, strict=True):
        text = None if kw_default is None else ast.unparse(kw_default)
        params.append(Param(arg.arg, KEYWORD_ONLY, text))
    if args.kwarg is not None:
        params.append(Param(args.kwarg.arg, VAR_KEYWORD))
    return Signature(tuple(params), _call_kind(node), implicit)


class _Builder:
    def __init__(self, *, lazy_annotations: bool) -> None:
        self.lazy_annotations = lazy_annotations
        self.symbols: dict[str, Symbol] = {}

    def add(self, symbol: Symbol) -> None:
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

    def module_body(self, body: list[ast.stmt], enclosing: ast.stmt | None = None) -> None:
        for stmt in body:
            if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef):
                self.function(stmt, prefix="", in_class=False)
            elif isinstance(stmt, ast.ClassDef):
                self.klass(stmt, prefix="")
            elif isinstance(stmt, ast.If | ast.Try | ast.With | ast.AsyncWith):
                # Conditional definitions (``if TYPE_CHECKING``, ``try: import x``) are still
                # module-level names.
                self.simple(stmt, enclosing or stmt)
                for block in _blocks(stmt):
                    self.module_body(block, enclosing or stmt)
            else:
                self.simple(stmt, enclosing or stmt)

    def simple(self, stmt: ast.stmt, whole: ast.stmt) -> None:
        names = list(_statement_bindings(stmt))
        if not names:
            return
        fingerprint = _digest(whole)
        deps = _loaded_names([whole])
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
        evaluated: list[ast.AST | None] = [*node.decorator_list, *args.defaults, *args.kw_defaults]
        if not self.lazy_annotations:
            every_arg = [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]
            evaluated += [a.annotation for a in every_arg if a is not None]
            evaluated.append(node.returns)
        signature = None
        if kind != PROPERTY:
            signature = _signature(node, implicit=kind in (METHOD, CLASSMETHOD))
        self.add(
            Symbol(
                prefix + node.name,
                kind,
                node.lineno,
                _digest(node),
                signature,
                deps=_loaded_names(evaluated),
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


# --- the diff -----------------------------------------------------------------------------------


def _top(qualname: str) -> str:
    return qualname.split(".", 1)[0]


def diff(old: Mapping[str, Symbol], new: Mapping[str, Symbol]) -> ChangeSet:
    """What changed from ``old`` to ``new``.

    A definition counts as changed when its own digest changed, or when a module-level name it
    uses while being evaluated (a decorator, a default, a base class) was added, removed or
    changed: it has to be evaluated again, so its old object would be stale.
    """
    added = new.keys() - old.keys()
    removed = old.keys() - new.keys()
    common = old.keys() & new.keys()
    changed: set[str] = set()
    unknown: set[str] = set()
    for name in common:
        before, after = old[name], new[name]
        if before.kind != after.kind:
            changed.add(name)
        elif before.fingerprint is None or after.fingerprint is None:
            unknown.add(name)
        elif before.fingerprint != after.fingerprint:
            changed.add(name)
    dirty = {_top(name) for name in added | removed} | {n for n in changed if "." not in n}
    # Propagate through evaluation-time dependencies until nothing more changes.
    pending = True
    while pending:
        pending = False
        for name in common - changed:
            if (old[name].deps | new[name].deps) & dirty:
                changed.add(name)
                unknown.discard(name)
                if "." not in name:
                    dirty.add(name)
                pending = True
    lines = {name: new[name].lineno for name in new}
    lines.update({name: old[name].lineno for name in removed})

    def ordered(names: Iterable[str]) -> tuple[str, ...]:
        return tuple(sorted(names, key=lambda n: (lines[n], n)))

    return ChangeSet(
        added=ordered(added),
        changed=ordered(changed),
        removed=ordered(removed),
        unknown=ordered(unknown),
        lines=lines,
    )


# --- compatibility ------------------------------------------------------------------------------


def check(old: Mapping[str, Symbol], new: Mapping[str, Symbol]) -> list[Finding]:
    """Every change from ``old`` to ``new`` that could break a caller of the old version.

    Findings are made for private names too (``public`` says which); the policy decides what to
    reject.
    """
    findings: list[Finding] = []
    for name, symbol in old.items():
        if symbol.kind == NAME:
            continue
        before = symbol
        # Members of a @reloadable class are held to the checks like the class.
        if not before.reloadable and _in_reloadable_class(name, old):
            before = replace(before, reloadable=True)
        after = new.get(name)
        parent = name.rpartition(".")[0]
        if after is None:
            if parent and parent not in new:
                continue  # reported once, for the class that holds it
            what = "reloadable " if before.reloadable else ""
            findings.append(_finding(before, None, f"{what}{before.kind} removed"))
            continue
        if after.kind == NAME:
            findings.append(_finding(before, after, f"was a {before.kind}, now a plain name"))
            continue
        if before.kind != after.kind:
            findings.append(_finding(before, after, f"was a {before.kind}, now a {after.kind}"))
            continue
        if before.kind == PROPERTY and before.settable and not after.settable:
            findings.append(_finding(before, after, "property no longer has a setter"))
        if before.signature is not None and after.signature is not None:
            for reason in _signature_breaks(before.signature, after.signature):
                findings.append(_finding(before, after, reason))
    findings.sort(key=lambda f: (f.lineno, f.symbol))
    return findings


def _in_reloadable_class(name: str, symbols: Mapping[str, Symbol]) -> bool:
    parts = name.split(".")
    for end in range(1, len(parts)):
        owner = symbols.get(".".join(parts[:end]))
        if owner is not None and owner.kind == CLASS and owner.reloadable:
            return True
    return False


def _describe(symbol: Symbol | None, name: str) -> str:
    if symbol is None:
        return _REMOVED
    if symbol.signature is not None:
        return symbol.signature.format(name)
    return name


def _finding(before: Symbol, after: Symbol | None, reason: str) -> Finding:
    name = before.qualname
    return Finding(
        symbol=name,
        old=_describe(before, name),
        new=_describe(after, name),
        lineno=(after or before).lineno,
        reason=reason,
        public=is_public(name),
        reloadable=before.reloadable,
    )


def _signature_breaks(old: Signature, new: Signature) -> list[str]:
    reasons: list[str] = []
    if old.call != new.call:
        reasons.append(f"was {_ARTICLE[old.call]} {old.call}, now {_ARTICLE[new.call]} {new.call}")
    before = old.caller_params
    after = new.caller_params
    old_positional = [p for p in before if p.kind in (POSITIONAL_ONLY, POSITIONAL_OR_KEYWORD)]
    new_positional = [p for p in after if p.kind in (POSITIONAL_ONLY, POSITIONAL_OR_KEYWORD)]
    new_by_name = {p.name: p for p in after if p.kind not in (VAR_POSITIONAL, VAR_KEYWORD)}
    old_names = {p.name for p in before}
    new_varargs = any(p.kind == VAR_POSITIONAL for p in after)
    renamed_to: set[str] = set()
    moved = False

    for index, param in enumerate(old_positional):
        if param.kind == POSITIONAL_ONLY:
            # Callers pass it by position only, so its name is free to change.
            if index < len(new_positional):
                counterpart = new_positional[index]
                if counterpart.kind != POSITIONAL_ONLY and counterpart.name not in old_names:
                    renamed_to.add(counterpart.name)
                if param.default is not None and counterpart.default is None:
                    reasons.append(f"parameter '{param.name}' no longer has a default")
            elif not new_varargs:
                reasons.append(f"positional parameter '{param.name}' removed")
            continue
        match = new_by_name.get(param.name)
        if match is None:
            slot = new_positional[index] if index < len(new_positional) else None
            if slot is not None and slot.name not in old_names:
                reasons.append(f"parameter '{param.name}' renamed to '{slot.name}'")
                renamed_to.add(slot.name)
            else:
                reasons.append(f"parameter '{param.name}' removed")
            continue
        if match.kind == KEYWORD_ONLY:
            reasons.append(f"parameter '{param.name}' became keyword-only")
        elif match.kind == POSITIONAL_ONLY:
            reasons.append(f"parameter '{param.name}' became positional-only")
        elif new_positional.index(match) != index:
            moved = True
        if param.default is not None and match.default is None:
            reasons.append(f"parameter '{param.name}' no longer has a default")

    if moved:
        old_order = ", ".join(p.name for p in old_positional)
        new_order = ", ".join(p.name for p in new_positional)
        reasons.append(f"positional parameters reordered ({old_order} -> {new_order})")

    old_keyword_only = [p for p in before if p.kind == KEYWORD_ONLY]
    for param in old_keyword_only:
        match = new_by_name.get(param.name)
        if match is None or match.kind == POSITIONAL_ONLY:
            reasons.append(f"parameter '{param.name}' removed")
        elif param.default is not None and match.default is None:
            reasons.append(f"parameter '{param.name}' no longer has a default")

    for index, param in enumerate(new_positional):
        if param.name in old_names or param.name in renamed_to or param.default is not None:
            continue
        if param.kind == POSITIONAL_ONLY and index < len(old_positional):
            continue
        reasons.append(f"required parameter '{param.name}' added")
    for param in after:
        if param.kind == KEYWORD_ONLY and param.default is None and param.name not in old_names:
            reasons.append(f"required keyword-only parameter '{param.name}' added")

    if any(p.kind == VAR_POSITIONAL for p in before) and not new_varargs:
        reasons.append("*args dropped")
    if any(p.kind == VAR_KEYWORD for p in before) and not any(p.kind == VAR_KEYWORD for p in after):
        reasons.append("**kwargs dropped")
    return reasons
