"""What a top-level statement does to the objects of its module, read from its AST.

Pure functions over the AST: the names a statement binds and the objects it mutates in place
(``X[k] = v``, ``X.append(...)``), and the module names a function's body mutates, so that a
statement calling it (a ``@register`` decorator) counts as a writer of a registry.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator

from hotswap._plan.nodes import walk

__all__ = ("READ_ONLY_METHODS", "Effects", "body_mutates")


# Methods of the plain containers that only read: calling them writes nothing.
READ_ONLY_METHODS = frozenset(
    {"copy", "count", "get", "index", "items", "keys", "values", "isdisjoint", "issubset"}
    | {"issuperset", "union", "intersection", "difference", "symmetric_difference"}
)


def _defaulted(node: ast.AST) -> dict[str, str]:
    """Parameter -> the module name its default is, for ``def fill(table=TABLE)``: the body
    mutating ``table`` mutates ``TABLE`` when a call leaves the default (toolz's
    ``create_signature_registry(module_info=module_info, signatures=signatures)``)."""
    if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
        return {}
    args = node.args
    positional = [*args.posonlyargs, *args.args]
    pairs = list(
        zip(positional[len(positional) - len(args.defaults) :], args.defaults, strict=True)
    )
    pairs += [
        (a, d) for a, d in zip(args.kwonlyargs, args.kw_defaults, strict=True) if d is not None
    ]
    return {arg.arg: default.id for arg, default in pairs if isinstance(default, ast.Name)}


def body_mutates(node: ast.AST) -> frozenset[str]:
    """Names not local to the function ``node`` (or a function inside it) whose object it may
    mutate in place: ``X.method(...)``, ``X[k] = v``, ``X.attr = v``, ``del X[k]``; those it
    rebinds through ``global``; and the module names that parameters the body mutates take as
    their defaults."""
    local: set[str] = set()
    declared: set[str] = set()
    mutated: set[str] = set()
    stored: set[str] = set()
    for sub in walk(node):
        if isinstance(sub, ast.arg):
            local.add(sub.arg)
        elif isinstance(sub, ast.Name) and not isinstance(sub.ctx, ast.Load):
            local.add(sub.id)
            stored.add(sub.id)
        elif isinstance(sub, ast.Global):
            declared.update(sub.names)
        elif (
            isinstance(sub, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
            and sub is not node
        ):
            local.add(sub.name)
        elif (
            isinstance(sub, ast.Call)
            and isinstance(sub.func, ast.Attribute)
            and sub.func.attr not in READ_ONLY_METHODS
        ):
            base = _base_name(sub.func.value)
            if base is not None:
                mutated.add(base)
        elif isinstance(sub, ast.Subscript | ast.Attribute) and not isinstance(sub.ctx, ast.Load):
            base = _base_name(sub.value)
            if base is not None:
                mutated.add(base)
    # A module name the function rebinds through ``global`` (``G += 1``) is written too: a
    # statement calling it is one of that name's writers, like one that fills a registry.
    defaulted = _defaulted(node)
    through = {defaulted[name] for name in mutated & defaulted.keys()}
    return frozenset((mutated - (local - declared)) | (stored & declared) | through)


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


class Effects:
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
            if field_name == "body" and type_checking_only(stmt):
                continue  # ``if TYPE_CHECKING:`` binds nothing when the module runs
            for child in getattr(stmt, field_name, ()):
                if isinstance(child, ast.stmt):
                    self.statement(child)
                else:  # an except handler or a match case holds statements
                    for inner in getattr(child, "body", ()):
                        self.statement(inner)


def type_checking_only(stmt: ast.stmt) -> bool:
    """Whether ``stmt`` is ``if TYPE_CHECKING:`` (or ``typing.TYPE_CHECKING``): its body is
    for type checkers and never runs."""
    if not isinstance(stmt, ast.If):
        return False
    test = stmt.test
    if isinstance(test, ast.Attribute):
        return test.attr == "TYPE_CHECKING" and isinstance(test.value, ast.Name)
    return isinstance(test, ast.Name) and test.id == "TYPE_CHECKING"
