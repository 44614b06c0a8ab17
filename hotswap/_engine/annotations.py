"""A module's own annotations after a reload ran some of its statements.

A reload runs only the statements that changed (and their dependents), so the module-level
annotations they make must be merged with the ones of the statements that did not run again,
to what a fresh import of the new source would give.

- **Eager annotations** (Python 3.13 and older, and any module with ``from __future__ import
  annotations``): the statements fill the ``__annotations__`` dict as they run. Before the run
  the dict is replaced by a copy (so a failed reload, whose snapshot rebinds the original, leaves
  it as it was); after it, the names that no statement of the new source annotates any more are
  dropped.
- **Lazy annotations** (Python 3.14 and newer, PEP 649 and PEP 749): the compiler gives a module
  one ``__annotate__`` function over its whole body; it evaluates, when ``module.__annotations__``
  is first read, the annotations of the annotated statements that ran (each statement adds its
  index to ``__conditional_annotations__`` as it runs), and the result is cached as
  ``__annotations__``. The statements a reload runs are compiled apart, so they bind an
  ``__annotate__`` covering only themselves. After the run, :func:`after_run` binds what a fresh
  import binds: an ``__annotate__`` over every annotated name of the new source, evaluated lazily
  in the module as before, with the indices of those that ran set, and no cached
  ``__annotations__`` (it is computed again, from the live names, on the next read).

Which annotated statements ran: for a statement this reload ran, what its run says (its names the
partial ``__annotate__`` reports); for a statement that did not run again, whether its name was
annotated before the run (the statement ran then and is unchanged). Names come from calling an
``__annotate__`` with stand-in globals (:data:`annotationlib.Format.VALUE_WITH_FAKE_GLOBALS`,
which compiler-made annotate functions support): no annotation is evaluated, so nothing of the
user's runs and a forward reference costs nothing.
"""

from __future__ import annotations
import __future__

import ast
import sys
import types
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from typing import Any

from hotswap._plan.statements import ModuleSource, annotated, parse_statement

__all__ = ("LAZY", "Before", "after_run", "annotated_nodes", "before_run")

# Whether this interpreter evaluates module annotations lazily (PEP 649, Python 3.14+).
LAZY = sys.version_info >= (3, 14)

_ANNOTATE = "__annotate__"
_CONDITIONAL = "__conditional_annotations__"
_CACHED = "__annotations__"
_VALUE_WITH_FAKE_GLOBALS = 2  # annotationlib.Format.VALUE_WITH_FAKE_GLOBALS
_MARK = "_hotswap_annotated"  # on the __annotate__ made here: (key, names by index)


@dataclass(frozen=True)
class Before:
    """A module's annotation state as it was before the run (see :func:`before_run`)."""

    annotate: object
    conditional: object
    cached: object


def _lazy(flags: int) -> bool:
    return LAZY and not flags & __future__.annotations.compiler_flag


def before_run(namespace: dict[str, Any]) -> Before:
    """Note the annotation state before the reload's statements run; for eager annotations,
    give the statements a copy of the dict to fill, so the snapshot's dict stays untouched."""
    cached = namespace.get(_CACHED)
    state = Before(namespace.get(_ANNOTATE), namespace.get(_CONDITIONAL), cached)
    if type(cached) is dict:
        namespace[_CACHED] = dict(cached)
    return state


def annotated_nodes(source: ModuleSource) -> Iterator[tuple[int, ast.AnnAssign]]:
    """(statement index, node) of every annotated name of the module, in source order: the
    annotated assignments to a plain name at module level, in compound statements too (``if``,
    ``try``...), not in function or class bodies."""
    for index, stmt in enumerate(source.statements):
        if stmt.info.annotates:
            for node in annotated(parse_statement(stmt)):
                yield index, node


def after_run(
    namespace: dict[str, Any], new: ModuleSource, ran: Collection[int], before: Before, path: str
) -> None:
    """Bind the module's annotations as a fresh import of ``new`` would, now that the statements
    ``ran`` (indices into ``new.statements``) ran in ``namespace``."""
    annotated = {name for stmt in new.statements for name in stmt.info.annotates}
    if not _lazy(new.flags):
        current = namespace.get(_CACHED)
        if type(current) is dict:
            for name in [n for n in current if n not in annotated]:
                del current[name]  # (a copy: see before_run)
        if LAZY and namespace.get(_ANNOTATE) is before.annotate:
            namespace.pop(_ANNOTATE, None)  # the module took ``from __future__ import annotations``
        return
    # Whatever was cached was computed from the old names and the old __annotate__.
    namespace.pop(_CACHED, None)
    if not annotated:
        namespace.pop(_ANNOTATE, None)
        namespace.pop(_CONDITIONAL, None)
        return
    key = tuple((s.first, s.info.digest) for s in new.statements if s.info.annotates)
    ran_annotated = any(new.statements[i].info.annotates for i in ran)
    mark = _mark(before.annotate)
    if not ran_annotated and mark is not None and mark[0] == key:
        # Nothing annotated ran and the annotated statements are the ones the live
        # __annotate__ was made for: it and its indices stand.
        namespace[_ANNOTATE] = before.annotate
        namespace[_CONDITIONAL] = before.conditional
        return
    entries = list(annotated_nodes(new))
    was = _names(before.annotate, before.conditional, before.cached)
    now: set[str] | None = set()
    if ran_annotated:
        now = _names(namespace.get(_ANNOTATE), namespace.get(_CONDITIONAL), None)
    ran_set = set(ran)
    live: set[int] = set()
    for position, (index, node) in enumerate(entries):
        name = node.target.id  # type: ignore[union-attr]
        known = now if index in ran_set else was
        if known is None:  # (an annotate that would not run with stand-ins: guess)
            # A statement of its own (column 0) ran; one in a block did if it bound its name.
            alive = node.col_offset == 0 or name in namespace
        else:
            alive = name in known
        if alive:
            live.add(position)
    annotate = _compile(entries, new.flags, path, namespace)
    setattr(annotate, _MARK, (key, tuple(node.target.id for _, node in entries)))  # type: ignore[union-attr]
    namespace[_ANNOTATE] = annotate
    namespace[_CONDITIONAL] = live


def _compile(
    entries: list[tuple[int, ast.AnnAssign]], flags: int, path: str, namespace: dict[str, Any]
) -> types.FunctionType:
    """The module's ``__annotate__`` over ``entries``: the compiler's own, made from a module of
    bare annotations (``name: annotation``) at the lines of the source, bound to the module."""
    body: list[ast.stmt] = []
    for _, node in entries:
        bare = ast.AnnAssign(target=node.target, annotation=node.annotation, value=None, simple=1)
        body.append(ast.copy_location(bare, node))
    module = ast.Module(body=body, type_ignores=[])
    code = compile(module, path, "exec", flags=flags, dont_inherit=True)
    for const in code.co_consts:
        if isinstance(const, types.CodeType) and const.co_name == _ANNOTATE:
            return types.FunctionType(const, namespace, _ANNOTATE)
    raise RuntimeError(f"hotswap: {path}: the compiler made no {_ANNOTATE}")  # pragma: no cover


def _mark(annotate: object) -> tuple[tuple[Any, ...], tuple[str, ...]] | None:
    if type(annotate) is not types.FunctionType:
        return None
    mark = annotate.__dict__.get(_MARK)
    return mark if isinstance(mark, tuple) else None


def _names(annotate: object, conditional: object, cached: object) -> set[str] | None:
    """The names a module's annotations hold, without evaluating any: from its
    ``__annotate__`` and the indices that ran; from a dict when it has no annotate; None when
    not known."""
    if annotate is None:
        return set(cached) if isinstance(cached, dict) else set()
    if not isinstance(conditional, set | frozenset):
        conditional = set()
    mark = _mark(annotate)
    if mark is not None:
        names = mark[1]
        return {names[i] for i in conditional if isinstance(i, int) and 0 <= i < len(names)}
    if type(annotate) is types.FunctionType:
        stand_ins = _StandIns({_CONDITIONAL: conditional})
        try:
            call = types.FunctionType(
                annotate.__code__,
                stand_ins,
                annotate.__name__,
                annotate.__defaults__,
                annotate.__closure__,
            )
            result = call(_VALUE_WITH_FAKE_GLOBALS)
        except Exception:  # an annotation the stand-ins cannot take part in
            result = None
        if isinstance(result, dict):
            return {name for name in result if isinstance(name, str)}
    return set(cached) if isinstance(cached, dict) else None


class _StandIn:
    """What every global name an annotation reads stands for: it takes part in the operations
    type expressions use (``a.b``, ``a[b]``, ``a | b``, ``a(b)``, ``*a``) and evaluates nothing."""

    def __getattr__(self, name: str) -> _StandIn:
        return self

    def __call__(self, *args: object, **kwargs: object) -> _StandIn:
        return self

    def __getitem__(self, key: object) -> _StandIn:
        return self

    def __or__(self, other: object) -> _StandIn:
        return self

    def __ror__(self, other: object) -> _StandIn:
        return self

    def __iter__(self) -> Iterator[_StandIn]:
        return iter(())


class _StandIns(dict[str, Any]):
    def __missing__(self, key: str) -> _StandIn:
        return _StandIn()
