"""A canary's candidate: a module's new source run beside its live version, and the switch by
which every call of the module's functions picks one of the two.

Building runs what a reload would run (the same plan and compiled code), but in a *copy* of the
module's namespace, so nothing live changes: a changed ``def`` gives its new function to the
candidate only, a changed class gives its new methods (bound to the kept class, so ``super()``
and existing instances work), and changed constants and their dependents are rebound in the
copy. Unchanged statements keep their objects, which both versions share: the state.

While the canary runs, each function of the module (found from its names, through decorators'
wrappers, and in its classes) runs *dispatch* code: the live version's code, or the
candidate's (new code, or the same code reading the candidate's namespace), by the assignment
of the unit of work it runs in (:mod:`hotswap._release.routing`). Calls from anywhere (an app's
route table, a held reference, an importer) so follow the unit's version, and a unit runs wholly on
one version. Uninstalling gives every function its own code back.

A canary tries *code*: function and method bodies, constants, new helpers. A change that would
act on objects both versions share when it runs (a changed decorator registering a route, a
top-level call, a class whose body other than its methods changed) is refused with
:class:`~hotswap.exceptions.CanaryError`; ``hotswap.reload()`` applies it.
"""

from __future__ import annotations

import ast
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from hotswap._engine.execute import exec_with_hooks, find_inner
from hotswap._engine.report import error_in
from hotswap._engine.switch import KINDS, trampoline
from hotswap._plan.planner import INPLACE, Plan
from hotswap._plan.statements import CLASS, ModuleSource, parse_statement
from hotswap._release import routing as _routing
from hotswap._release.proxy import is_reloadable
from hotswap.exceptions import CanaryError, ExecutionError

__all__ = ("Candidate", "build")


@dataclass
class Candidate:
    """The candidate version of one module, and the dispatch installed for it."""

    module: types.ModuleType
    namespace: dict[str, Any]
    # live function -> the candidate's function to run in its place
    pairs: dict[types.FunctionType, types.FunctionType] = field(default_factory=dict)
    _originals: list[tuple[types.FunctionType, types.CodeType]] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.module.__name__

    def install(self) -> None:
        """Give every live function dispatch code (one assignment each)."""
        name = self.name
        for live, new in self.pairs.items():
            code = live.__code__
            copy = types.FunctionType(
                code, live.__globals__, live.__name__, live.__defaults__, live.__closure__
            )
            copy.__kwdefaults__ = live.__kwdefaults__
            copy.__qualname__ = live.__qualname__
            router: Any = _router(name, copy, new, code.co_flags & KINDS)
            self._originals.append((live, code))
            live.__code__ = trampoline(code.co_freevars, code.co_flags, router)

    def uninstall(self) -> None:
        """Give every live function its own code back."""
        for live, code in reversed(self._originals):
            live.__code__ = code
        self._originals.clear()


def _router(
    module: str, live: types.FunctionType, new: types.FunctionType, kind: int
) -> Callable[..., Any]:
    """A function of the live function's kind that calls one of the two versions."""
    assigned = _routing.assigned
    if kind == 0x80:

        async def route_async(*args: Any, **kwargs: Any) -> Any:
            chosen = new if assigned(module) else live
            return await chosen(*args, **kwargs)

        return route_async
    if kind == 0x20:

        def route_generator(*args: Any, **kwargs: Any) -> Any:
            chosen = new if assigned(module) else live
            return (yield from chosen(*args, **kwargs))

        return route_generator
    if kind == 0x200:

        async def route_async_generator(*args: Any, **kwargs: Any) -> Any:
            chosen = new if assigned(module) else live
            async for item in chosen(*args, **kwargs):
                yield item

        return route_async_generator

    def route(*args: Any, **kwargs: Any) -> Any:
        chosen = new if assigned(module) else live
        return chosen(*args, **kwargs)

    return route


# --- building ---------------------------------------------------------------------------


def build(
    module: types.ModuleType,
    path: str,
    old: ModuleSource,
    new: ModuleSource,
    plan: Plan,
    code: types.CodeType | None,
) -> Candidate:
    """Run ``plan`` (compiled as ``code``) in a copy of the module's namespace and pair every
    live function with the candidate's.

    Raises:
        CanaryError: the change acts on shared objects when it runs (see the module docstring).
        ExecutionError: the new code raised; nothing live changed.
    """
    name = module.__name__
    live_ns = vars(module)
    _refuse_effects(name, path, old, new, plan)
    namespace = dict(live_ns)
    pairs: dict[types.FunctionType, types.FunctionType] = {}

    def inplace(target: str) -> Callable[[types.FunctionType], object]:
        def apply(function: types.FunctionType) -> object:
            kept = live_ns.get(target)
            inner = None if kept is None else find_inner(kept, live_ns, target)
            if inner is None or type(function) is not types.FunctionType:
                return function
            pairs[inner] = function
            return kept

        return apply

    def merge(target: str) -> Callable[[type], object]:
        def apply(cls: type) -> object:
            kept = live_ns.get(target)
            if not isinstance(kept, type):
                return cls  # a new class: only the candidate's code knows it
            for live_fn, new_fn in _method_pairs(kept, cls, live_ns):
                pairs[live_fn] = _bound_to(new_fn, cls, kept, namespace)
            return kept

        return apply

    if code is not None:
        try:
            exec_with_hooks(code, namespace, inplace, merge)
        except Exception as error:
            raise error_in(
                ExecutionError, name, path, error, "while building the canary"
            ) from error
    for removed in plan.removed:
        if namespace.get(removed) is live_ns.get(removed):
            namespace.pop(removed, None)
    candidate = Candidate(module, namespace)
    for live_fn in _functions(live_ns):
        if live_fn in pairs:
            candidate.pairs[live_fn] = pairs[live_fn]
            continue
        clone = types.FunctionType(
            live_fn.__code__, namespace, live_fn.__name__, live_fn.__defaults__, live_fn.__closure__
        )
        clone.__kwdefaults__ = live_fn.__kwdefaults__
        clone.__qualname__ = live_fn.__qualname__
        candidate.pairs[live_fn] = clone
    return candidate


def _refuse(name: str, path: str, line: int, why: str) -> CanaryError:
    from hotswap._ops.events import location

    return CanaryError(
        f"{location(name, path, line)}: {why}; a canary tries code only, apply this with "
        "hotswap.reload()",
        module=name,
        filename=path,
        lineno=line,
    )


def _refuse_effects(name: str, path: str, old: ModuleSource, new: ModuleSource, plan: Plan) -> None:
    olds = {s.info.name: s for s in old.statements if s.info.kind == CLASS and s.info.name}
    for index, mode in plan.run:
        stmt = new.statements[index]
        node = parse_statement(stmt)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            if mode != INPLACE and node.decorator_list:
                why = f"the decorators of {node.name}() would run again"
                raise _refuse(name, path, stmt.first, why)
        elif isinstance(node, ast.ClassDef):
            if node.name in plan.replaced:
                raise _refuse(name, path, stmt.first, f"class {node.name} would be replaced")
            before = olds.get(node.name)
            if before is not None:
                previous = parse_statement(before)
                assert isinstance(previous, ast.ClassDef)
                why = _class_difference(previous, node)
                if why:
                    raise _refuse(name, path, stmt.first, f"class {node.name}: {why}")
        elif isinstance(node, ast.Expr) and not isinstance(node.value, ast.Constant):
            raise _refuse(name, path, stmt.first, "a top-level expression would run again")


def _class_difference(old: ast.ClassDef, new: ast.ClassDef) -> str:
    """Why a class change is more than its methods' bodies, or ''."""

    def shape(node: ast.ClassDef) -> tuple[list[str], dict[str, list[str]]]:
        rest, methods = [], {}
        for item in node.body:
            if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef):
                methods[item.name] = _dumps(item.decorator_list)
            elif not (isinstance(item, ast.Expr) and isinstance(item.value, ast.Constant)):
                rest.append(ast.dump(item))
        return rest, methods

    if _dumps(old.decorator_list) != _dumps(new.decorator_list) or _dumps(old.bases) != _dumps(
        new.bases
    ):
        return "its decorators or bases changed"
    old_rest, old_methods = shape(old)
    new_rest, new_methods = shape(new)
    if set(old_methods) != set(new_methods):
        return "methods were added or removed"
    if old_methods != new_methods:
        return "decorators of its methods changed"
    if old_rest != new_rest:
        return "statements other than its methods changed"
    return ""


def _dumps(nodes: list[ast.expr]) -> list[str]:
    return [ast.dump(node) for node in nodes]


def _members(cls: type) -> Iterator[tuple[str, types.FunctionType]]:
    for key, member in vars(cls).items():
        value = member.__func__ if isinstance(member, staticmethod | classmethod) else member
        if isinstance(value, property):
            for part, accessor in (("get", value.fget), ("set", value.fset), ("del", value.fdel)):
                if type(accessor) is types.FunctionType:
                    yield f"{key}.{part}", accessor
            continue
        if type(value) is types.FunctionType:
            yield key, value


def _method_pairs(
    kept: type, cls: type, live_ns: dict[str, Any]
) -> Iterator[tuple[types.FunctionType, types.FunctionType]]:
    new_members = dict(_members(cls))
    for key, member in _members(kept):
        live_fn = member.__dict__.get("__wrapped__", member) if is_reloadable(member) else member
        new_fn = new_members.get(key)
        if new_fn is None or live_fn.__globals__ is not live_ns:
            continue
        if is_reloadable(new_fn):
            new_fn = new_fn.__dict__.get("__wrapped__", new_fn)
        yield live_fn, new_fn


def _bound_to(
    function: types.FunctionType, new_cls: type, kept: type, namespace: dict[str, Any]
) -> types.FunctionType:
    """The new method, reading the candidate's namespace, its ``__class__`` the kept class."""
    closure = function.__closure__
    if closure:
        names = function.__code__.co_freevars
        cells = []
        for free, cell in zip(names, closure, strict=True):
            try:
                held = cell.cell_contents
            except ValueError:
                held = None
            cells.append(types.CellType(kept) if free == "__class__" and held is new_cls else cell)
        closure = tuple(cells)
    bound = types.FunctionType(
        function.__code__, namespace, function.__name__, function.__defaults__, closure
    )
    bound.__kwdefaults__ = function.__kwdefaults__
    bound.__qualname__ = function.__qualname__
    return bound


def _functions(namespace: dict[str, Any]) -> list[types.FunctionType]:
    """Every function the module defined that its names, wrappers and classes reach."""
    name = namespace.get("__name__")
    found: dict[int, types.FunctionType] = {}
    seen: set[int] = set()
    stack: list[object] = [v for k, v in namespace.items() if not k.startswith("__")]
    while stack and len(seen) < 100_000:
        value = stack.pop()
        if id(value) in seen:
            continue
        seen.add(id(value))
        if type(value) is types.FunctionType:
            if value.__globals__ is namespace and not is_reloadable(value):
                found[id(value)] = value
            for cell in value.__closure__ or ():
                try:
                    stack.append(cell.cell_contents)
                except ValueError:
                    continue
        elif isinstance(value, type):
            if value.__module__ == name:
                stack.extend(vars(value).values())
            continue
        elif isinstance(value, staticmethod | classmethod):
            stack.append(value.__func__)
            continue
        elif isinstance(value, property):
            stack.extend(a for a in (value.fget, value.fset, value.fdel) if a is not None)
            continue
        elif isinstance(value, types.ModuleType):
            continue
        try:
            wrapped = getattr(value, "__wrapped__", None)
        except Exception:  # a proxy whose target misbehaves
            wrapped = None
        if wrapped is not None:
            stack.append(wrapped)
    return list(found.values())
