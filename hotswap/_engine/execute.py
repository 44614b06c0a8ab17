"""Running a plan in a live module: only the statements the plan names, in source order.

The statements are compiled together into one code object (with the file's line numbers, so
tracebacks point at the user's lines) and executed in the live module dict. Definitions are
reconciled *as they are defined*, so later statements of the same run see the kept objects:

- a ``def`` updated in place has its decorator lines replaced by ``@__hotswap_inplace__(name)``:
  the new undecorated function gives its code to the kept one, which the name stays bound to,
  and the decorators (``@app.route``, ``@register``) do not run again;
- a ``def`` whose decorators must run again (a registry it fills is rebuilt) gets
  ``@__hotswap_redecorate__(name)`` as its innermost decorator: the new function gives its code
  to the kept one, and the user's decorators run on the kept one;
- a class statement gets ``@__hotswap_merge__(name)`` as its outermost decorator: the user's
  decorators (``@dataclass``) derive the new class from its body, then it is merged into the
  kept class (or replaces it, when it cannot be merged).

Everything this mutates was captured by the transaction's snapshots before it ran.
"""

from __future__ import annotations

import abc
import ast
import collections
import contextlib
import enum
import sys
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hotswap._engine import annotations as _annotations
from hotswap._engine.baseline import MODULE_ATTRIBUTES, is_submodule
from hotswap._engine.compare import same_function, wrapped_of
from hotswap._engine.switch import (
    forward,
    kind_changed,
    loosen,
    trampoline_target,
    update_function,
)
from hotswap._engine.update import Updater, shifted
from hotswap._plan.planner import INPLACE, REDECORATE, Live, Plan
from hotswap._plan.statements import DOC, FUTURE, IMPORT, ModuleSource, parse_statement

__all__ = (
    "Executed",
    "exec_with_hooks",
    "find_inner",
    "live_facts",
    "relocate",
    "run_plan",
    "running_line",
)

_INPLACE_HOOK = "__hotswap_inplace__"
_MERGE_HOOK = "__hotswap_merge__"
_REDECORATE_HOOK = "__hotswap_redecorate__"
_CONTAINERS = (list, dict, set, bytearray, collections.deque)
# Values a function can change only by rebinding their name (``global G; G += 1``): a call of
# it is one of the name's writers, and the name is rebuilt from its writers like a container.
_VALUES = (int, float, complex, str, bytes, bool, type(None), tuple, frozenset)
# Metaclasses whose classes take a merge: plain classes, ABCs and protocols. Any other one
# (Enum, pydantic, ORMs) derives state from the body that a merge would not redo.
_MERGEABLE_METACLASSES = (type, abc.ABCMeta)


def find_inner(value: object, namespace: dict[str, Any], name: str) -> types.FunctionType | None:
    """The function the module's ``def name`` made, found from what the name is bound to:
    the value itself, or through ``__wrapped__`` chains, closure cells and attributes of the
    decorators' wrappers (a bounded search)."""
    stack: list[object] = [value]
    seen: set[int] = set()
    while stack and len(seen) < 64:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if type(current) is types.FunctionType:
            target = trampoline_target(current)
            if target is not None:
                # A function that forwards for good (its decorator changed, or its closure
                # could not take the new code): what runs is the target, never its own cells.
                stack.append(target)
                continue
            if current.__globals__ is namespace and current.__code__.co_name == name:
                return current
            for cell in current.__closure__ or ():
                try:
                    stack.append(cell.cell_contents)
                except ValueError:
                    continue
        if isinstance(current, staticmethod | classmethod):
            stack.append(current.__func__)
            continue
        try:
            wrapped = current.__dict__.get("__wrapped__") if hasattr(current, "__dict__") else None
            if wrapped is None:
                wrapped = getattr(current, "__wrapped__", None)
        except Exception:  # a proxy whose target misbehaves
            wrapped = None
        if wrapped is not None:
            stack.append(wrapped)
        if type(current) is not types.FunctionType:
            attributes = getattr(current, "__dict__", None)
            if isinstance(attributes, dict):
                stack.extend(v for v in attributes.values() if type(v) is types.FunctionType)
    return None


def running_line(namespace: dict[str, Any]) -> int | None:
    """The line of the module's top-level code that a thread is executing, if any (the
    program's main loop, a server started at import)."""
    lines = []
    for frame in list(sys._current_frames().values()):
        current: types.FrameType | None = frame
        while current is not None:
            if current.f_globals is namespace and current.f_code.co_name == "<module>":
                lines.append(current.f_lineno)
            current = current.f_back
    return min(lines) if lines else None


def live_facts(
    module: types.ModuleType, running: int | None, keep: frozenset[str], *, is_main: bool
) -> Live:
    """The :class:`~hotswap._plan.planner.Live` facts of a module, read from its objects."""
    namespace = vars(module)
    name = module.__name__
    module_name = name

    def replaced(key: str) -> bool:
        value = namespace.get(key)
        if not isinstance(value, type):
            return False
        if isinstance(value, enum.EnumMeta):
            return True
        meta = type(value)
        return meta not in _MERGEABLE_METACLASSES and meta.__module__ not in ("abc", "typing")

    def container(key: str) -> bool:
        value = namespace.get(key)
        if isinstance(value, _CONTAINERS) or type(value) in _VALUES:
            return True
        # An instance of a plain class of this module (a ``Registry()`` whose methods
        # decorate): its writers rebuild it as they rebuild a list.
        kind = type(value)
        return type(kind) is type and vars(kind).get("__module__") == module_name

    def inplace(key: str) -> bool:
        value = namespace.get(key)
        return value is not None and find_inner(value, namespace, key) is not None

    def present(key: str) -> bool:
        return key in namespace

    del name
    return Live(replaced, container, inplace, running, is_main, keep, present=present)


@dataclass
class Executed:
    """What running a plan did to one module."""

    updated: dict[str, object] = field(default_factory=dict)  # kept objects given new code
    after_commit: list[Callable[[], object]] = field(default_factory=list)
    at_commit: list[Callable[[], object]] = field(default_factory=list)
    verified: list[Callable[[], object]] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)


def _hook(name: str, line: int, target: str) -> ast.expr:
    call = ast.Call(
        func=ast.Name(id=name, ctx=ast.Load()), args=[ast.Constant(value=target)], keywords=[]
    )
    for node in ast.walk(call):
        node.lineno = node.end_lineno = line  # type: ignore[attr-defined]
        node.col_offset = node.end_col_offset = 0  # type: ignore[attr-defined]
    return call


def _future_names(node: ast.stmt, line: int) -> list[ast.stmt]:
    assigns: list[ast.stmt] = []
    for alias in node.names if isinstance(node, ast.ImportFrom) else ():
        source = ast.Call(
            func=ast.Name(id="__import__", ctx=ast.Load()),
            args=[ast.Constant(value="__future__")],
            keywords=[],
        )
        value = ast.Attribute(value=source, attr=alias.name, ctx=ast.Load())
        target = ast.Name(id=alias.asname or alias.name, ctx=ast.Store())
        assign = ast.Assign(targets=[target], value=value)
        for part in ast.walk(assign):
            part.lineno = part.end_lineno = line  # type: ignore[attr-defined]
            part.col_offset = part.end_col_offset = 0  # type: ignore[attr-defined]
        assigns.append(assign)
    return assigns


def compile_plan(new: ModuleSource, plan: Plan, path: str) -> types.CodeType | None:
    """One code object running the plan's statements, with the in-place and merge hooks."""
    body: list[ast.stmt] = []
    for index, mode in plan.run:
        stmt = new.statements[index]
        # The AST the analysis parsed, handed over once (the hooks below change it).
        node = new.nodes.pop(index, None) or parse_statement(stmt)
        if stmt.info.kind == FUTURE:
            # Its flags are the compile flags below; the names it binds, as a fresh import
            # binds them (``annotations`` is a ``__future__._Feature``), are assigned.
            body += _future_names(node, stmt.first)
            continue
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and mode == INPLACE:
            line = node.decorator_list[0].lineno if node.decorator_list else node.lineno
            node.decorator_list = [_hook(_INPLACE_HOOK, line, node.name)]
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and mode == REDECORATE:
            line = node.decorator_list[-1].lineno if node.decorator_list else node.lineno
            node.decorator_list.append(_hook(_REDECORATE_HOOK, line, node.name))
        elif isinstance(node, ast.ClassDef):
            line = node.decorator_list[0].lineno if node.decorator_list else node.lineno
            node.decorator_list.insert(0, _hook(_MERGE_HOOK, line, node.name))
        if not body and stmt.info.kind == DOC and index != 0:
            body.append(ast.Pass(lineno=stmt.first, col_offset=0))  # not the module docstring
        body.append(node)
    if not body:
        return None
    imported = _imported_elsewhere(new, {i for i, _ in plan.run}, body[-1])
    tree = ast.Module(body=[*body, *imported], type_ignores=[])
    code: types.CodeType = compile(tree, path, "exec", flags=new.flags, dont_inherit=True)
    return code


def _imported_elsewhere(new: ModuleSource, running: set[int], last: ast.stmt) -> list[ast.stmt]:
    """The names the module's import statements that do not run bind, imported in a block
    that never runs: the compiler treats a name bound by an import as a module (3.11 compiles
    ``inspect.isfunction(x)`` without ``LOAD_METHOD`` then), so the code the plan makes is the
    code a fresh import makes."""
    names = [
        ast.alias(name=name)
        for index, stmt in enumerate(new.statements)
        if stmt.info.kind == IMPORT and index not in running
        for name in sorted(stmt.info.binds - {"*"})
    ]
    if not names:
        return []
    line = getattr(last, "end_lineno", None) or last.lineno
    dead = ast.If(ast.Constant(0), [ast.Import(names)], [])
    for node in ast.walk(dead):
        if "lineno" in node._attributes:
            node.lineno = node.end_lineno = line  # type: ignore[attr-defined]
            node.col_offset = node.end_col_offset = 0  # type: ignore[attr-defined]
    return [dead]


def exec_with_hooks(
    code: types.CodeType,
    namespace: dict[str, Any],
    inplace: Callable[[str], Callable[[types.FunctionType], object]],
    merge: Callable[[str], Callable[[type], object]],
    redecorate: Callable[[str], Callable[[types.FunctionType], object]] | None = None,
) -> None:
    """Execute code made by :func:`compile_plan` in ``namespace``, its hooks answered by
    ``inplace(name)(new_function)``, ``merge(name)(new_class)`` and
    ``redecorate(name)(new_function)`` (by default: the new function stands)."""
    namespace[_INPLACE_HOOK] = inplace
    namespace[_MERGE_HOOK] = merge
    namespace[_REDECORATE_HOOK] = redecorate or (lambda name: lambda function: function)
    try:
        exec(code, namespace)
    finally:
        namespace.pop(_INPLACE_HOOK, None)
        namespace.pop(_MERGE_HOOK, None)
        namespace.pop(_REDECORATE_HOOK, None)


def run_plan(
    module: types.ModuleType,
    code: types.CodeType | None,
    old: dict[str, Any],
    updater: Updater,
    plan: Plan,
    new: ModuleSource,
    path: str,
) -> Executed:
    """Execute ``code`` (the plan's statements of ``new``, compiled) in the module, reconciling
    definitions as they are made; then reconcile the rest, remove names no statement binds and
    attributes no statement sets, and bring the module's annotations up to date."""
    namespace = vars(module)
    done = Executed()
    handled: set[str] = set()  # names reconciled as they were bound

    def inplace(name: str) -> Callable[[types.FunctionType], object]:
        def apply(new: types.FunctionType) -> object:
            kept = old.get(name, namespace.get(name))
            inner = None if kept is None else find_inner(kept, namespace, name)
            if inner is None or type(new) is not types.FunctionType:
                return new
            handled.add(name)
            if inner is not new and kind_changed(inner, new) and id(kept) == id(inner):
                # Another kind of function (policy "off"): the name takes the new one, as a
                # fresh import gives; references held before forward to it.
                forward(inner, new)
                done.changed.append(name)
                return new
            if inner is not new:
                before = (inner.__doc__, inner.__annotations__)
                forwarder = _forwarder_to(kept, inner)
                if forwarder is not None:
                    loosen(forwarder)  # it holds the old defaults: not passed to the new code
                update_function(inner, new)
                if forwarder is not None:
                    forward(forwarder, inner)
                _refresh_copies(kept, inner, before)
                updater._clear_caches(kept, inner, name)  # results of the old code
            done.updated[name] = kept
            done.changed.append(name)
            return kept

        return apply

    def redecorate(name: str) -> Callable[[types.FunctionType], object]:
        def apply(new: types.FunctionType) -> object:
            kept = old.get(name, namespace.get(name))
            inner = None if kept is None else find_inner(kept, namespace, name)
            if inner is None or type(new) is not types.FunctionType:
                return new
            # The decorators' result is the name's value: the kept function when they return
            # it (a registry's decorator), else their new wrapper around the kept function.
            handled.add(name)
            if inner is not new and not same_function(inner, new, updater.mapping):
                forwarder = _forwarder_to(kept, inner)
                if forwarder is not None:
                    loosen(forwarder)  # as in ``inplace``
                update_function(inner, new)
                if forwarder is not None:
                    forward(forwarder, inner)
                updater._clear_caches(kept, inner, name)
                done.updated[name] = inner
                done.changed.append(name)
            return inner

        return apply

    def merge(name: str) -> Callable[[type], object]:
        def apply(new: type) -> object:
            kept = old.get(name)
            handled.add(name)
            if not isinstance(kept, type) or name in plan.replaced:
                return new
            result = updater.reconcile(name, kept, new)
            if result is kept:
                done.updated[name] = kept
            return result

        return apply

    # Names no statement binds any more go before the statements run: one that reads such a
    # name (a default, ``frozenset([str])`` once ``str = bytes`` is gone) sees what a fresh
    # import sees.
    annotations = _annotations.before_run(namespace)
    for name in plan.removed:
        if name == "__doc__" and namespace.get(name) is old.get(name):
            namespace[name] = None  # the docstring went: a fresh import's module has None
            continue
        if name in MODULE_ATTRIBUTES or name in updater.keep or name not in namespace:
            continue
        value = namespace[name]
        if value is old.get(name) and not is_submodule(module.__name__, name, value):
            del namespace[name]
    if code is not None:
        exec_with_hooks(code, namespace, inplace, merge, redecorate)
    outcome = updater.run(frozenset(handled))
    done.after_commit += outcome.after_commit
    done.at_commit += outcome.at_commit
    done.verified += outcome.verified
    done.replaced += outcome.replaced
    _annotations.after_run(namespace, new, [index for index, _ in plan.run], annotations, path)
    for target, attribute in plan.attribute_deletes:
        owner = namespace.get(target)
        # Only on the object the removed statement set it on: a name bound to another object
        # since (``from itertools import pairwise`` for a def) never had it from this module.
        if owner is None or owner is not old.get(target):
            continue
        attributes = getattr(owner, "__dict__", None)
        if isinstance(attributes, dict) and attribute in attributes:
            with contextlib.suppress(AttributeError, TypeError):  # (a wrapper's own slot)
                delattr(owner, attribute)
    return done


def _forwarder_to(kept: object, inner: types.FunctionType) -> types.FunctionType | None:
    """The function between the name and ``inner`` that forwards to it for good (a wrapper
    whose decorator was removed, a ``@reloadable`` stand-in), if any. It took ``inner``'s
    parameters and defaults when it began to: ``inner`` is about to be updated in place, so
    it is loosened before (:func:`loosen`) and takes the new ones after (:func:`forward`), or
    a call without arguments would pass the old defaults to the new code."""
    current = kept
    for _ in range(16):
        if type(current) is not types.FunctionType or current is inner:
            return None
        target = trampoline_target(current)
        if target is None:
            return None
        if target is inner:
            return current
        current = target
    return None


def _refresh_copies(kept: object, inner: types.FunctionType, before: tuple[Any, Any]) -> None:
    """Wrappers between the name and the function (``functools.wraps``) copied its docstring
    and annotations when they were made: give them the new ones, as a fresh import would."""
    doc, annotations = before
    current = kept
    for _ in range(16):
        if current is inner or current is None:
            return
        if type(current) is types.FunctionType:
            if current.__doc__ == doc:
                current.__doc__ = inner.__doc__
            if current.__annotations__ is annotations:
                current.__annotations__ = inner.__annotations__
        current = wrapped_of(current)


def relocate(namespace: dict[str, Any], name: str, delta: int) -> None:
    """Move the code of an unchanged definition ``delta`` lines, so tracebacks name the lines
    it now stands at (an edit above it moved it)."""
    value = namespace.get(name)
    if isinstance(value, type):
        for member in list(vars(value).values()):
            function = member.__func__ if isinstance(member, staticmethod | classmethod) else member
            if type(function) is types.FunctionType and function.__globals__ is namespace:
                function.__code__ = shifted(function.__code__, delta)
        return
    inner = None if value is None else find_inner(value, namespace, name)
    if inner is not None:
        inner.__code__ = shifted(inner.__code__, delta)
