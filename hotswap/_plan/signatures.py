"""Signatures: what a caller of a function relies on, read from its AST (and its code object,
when there is one). Pure: no live object, no I/O."""

from __future__ import annotations

import ast
import inspect
import types
from collections.abc import Callable
from dataclasses import dataclass

from hotswap._plan.nodes import children

__all__ = (
    "ASYNC_GENERATOR",
    "COROUTINE",
    "GENERATOR",
    "KEYWORD_ONLY",
    "PLAIN",
    "POSITIONAL_ONLY",
    "POSITIONAL_OR_KEYWORD",
    "VAR_KEYWORD",
    "VAR_POSITIONAL",
    "Param",
    "Signature",
    "call_kind",
    "every_arg",
    "named_lambda",
    "signature_of",
)

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


def call_kind(
    node: ast.FunctionDef | ast.AsyncFunctionDef,
    code: types.CodeType | None,
    may_yield: bool = True,
) -> str:
    """How calling the function runs it; ``may_yield`` False: its text has no ``yield`` (no
    need to look through its body for one)."""
    if code is not None:
        if code.co_flags & inspect.CO_ASYNC_GENERATOR:
            return ASYNC_GENERATOR
        if code.co_flags & inspect.CO_COROUTINE:
            return COROUTINE
        return GENERATOR if code.co_flags & inspect.CO_GENERATOR else PLAIN
    if not may_yield:
        return COROUTINE if isinstance(node, ast.AsyncFunctionDef) else PLAIN
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
        stack += children(sub)
    if isinstance(node, ast.AsyncFunctionDef):
        return ASYNC_GENERATOR if yields else COROUTINE
    return GENERATOR if yields else PLAIN


def named_lambda(stmt: ast.stmt) -> ast.Lambda | None:
    """The lambda of ``name = lambda ...: ...`` (one plain name bound to one lambda)."""
    if not isinstance(stmt, ast.Assign) or not isinstance(stmt.value, ast.Lambda):
        return None
    if len(stmt.targets) != 1 or not isinstance(stmt.targets[0], ast.Name):
        return None
    return stmt.value


def signature_of(
    node: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda,
    implicit: bool,
    code: types.CodeType | None,
    text: Callable[[ast.expr], str],
    may_yield: bool = True,
) -> Signature:
    args = node.args
    positional = [*args.posonlyargs, *args.args]
    defaults: list[ast.expr | None] = [None] * (len(positional) - len(args.defaults))
    defaults += args.defaults
    params: list[Param] = []
    for index, (arg, default) in enumerate(zip(positional, defaults, strict=True)):
        kind = POSITIONAL_ONLY if index < len(args.posonlyargs) else POSITIONAL_OR_KEYWORD
        params.append(Param(arg.arg, kind, None if default is None else text(default)))
    if args.vararg is not None:
        params.append(Param(args.vararg.arg, VAR_POSITIONAL))
    for arg, kw_default in zip(args.kwonlyargs, args.kw_defaults, strict=True):
        shown = None if kw_default is None else text(kw_default)
        params.append(Param(arg.arg, KEYWORD_ONLY, shown))
    if args.kwarg is not None:
        params.append(Param(args.kwarg.arg, VAR_KEYWORD))
    kind = PLAIN if isinstance(node, ast.Lambda) else call_kind(node, code, may_yield)
    return Signature(tuple(params), kind, implicit)


def every_arg(args: ast.arguments) -> list[ast.arg]:
    every = [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]
    return [a for a in every if a is not None]
