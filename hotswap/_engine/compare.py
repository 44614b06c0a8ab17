"""Comparing what a reload made with what was live, without running user code.

Whether a value, a function or a chain of decorator wrappers is "the same" across two
executions of a module decides what the update keeps. Nothing here calls a user ``__eq__``,
``__bool__`` or ``__getattr__`` that could raise or answer element-wise (a numpy array):
builtin data is compared by value, containers item by item, anything else by identity, and
attribute lookups on arbitrary objects are guarded.
"""

from __future__ import annotations

import types
from typing import Any, TypeGuard

from hotswap._engine.snapshot import WRAPPER_TYPES
from hotswap._engine.switch import cell_value
from hotswap._plan.symbols import code_key

__all__ = (
    "MAX_DEPTH",
    "MISSING",
    "differs",
    "is_class",
    "safe_attribute",
    "same_function",
    "same_value",
    "same_wrapping",
    "wrapped_of",
)

MISSING: Any = object()
MAX_DEPTH = 8
# Values whose equality means something and is safe to ask (exact types: a subclass may
# define __eq__); an instance of another class is made anew by every execution, so only a
# change of its type is worth reporting.
_SCALARS = frozenset({int, float, complex, str, bytes, bool, type(None), type(...), range})


# --- values and functions ---------------------------------------------------------------------


def same_value(
    a: object, b: object, mapping: dict[int, type], depth: int = 0, *, lenient: bool = False
) -> bool:
    """Whether two values are the same, as far as a reload is concerned.

    Never calls a user ``__eq__`` (an array's is element-wise and raises in ``bool``): values of
    the builtin data types are compared by value, containers item by item, anything else by
    identity. ``lenient`` (for the change report) counts two instances of one class without
    value semantics as the same: every execution makes new ones, so only their type tells.
    """
    if a is b:
        return True
    kind = type(a)
    if depth > MAX_DEPTH or kind is not type(b):
        return False
    if kind in _SCALARS:
        return (a == b) is True
    if kind is types.FunctionType:
        return same_function(a, b, mapping, depth + 1)  # type: ignore[arg-type]
    if issubclass(kind, type):
        return mapping.get(id(b)) is a
    if kind is tuple or kind is list:
        return len(a) == len(b) and all(  # type: ignore[arg-type]
            same_value(x, y, mapping, depth + 1, lenient=lenient)
            for x, y in zip(a, b, strict=True)  # type: ignore[call-overload]
        )
    if kind is dict:
        return _same_keys(a, b) and all(  # type: ignore[arg-type]
            same_value(v, b[k], mapping, depth + 1, lenient=lenient)  # type: ignore[index]
            for k, v in a.items()  # type: ignore[attr-defined]
        )
    if kind is set or kind is frozenset:
        # Only sets of builtin scalars: comparing others would hash and compare user objects.
        return all(type(x) in _SCALARS for x in a) and (a == b) is True  # type: ignore[attr-defined]
    return lenient


def _same_keys(a: dict[Any, Any], b: dict[Any, Any]) -> bool:
    if len(a) != len(b) or not all(type(k) in _SCALARS for k in a):
        return False
    return all(k in b for k in a)


def differs(old: object, new: object, mapping: dict[int, type]) -> bool:
    """Whether a value changed, for the change report."""
    return not same_value(old, new, mapping, lenient=True)


def same_function(
    old: types.FunctionType,
    new: types.FunctionType,
    mapping: dict[int, type] | None = None,
    depth: int = 0,
) -> bool:
    """Whether two functions behave the same: code, defaults, docs, annotations, closures."""
    mapping = {} if mapping is None else mapping
    if code_key(old.__code__) != code_key(new.__code__):
        return False
    if not same_value(old.__doc__, new.__doc__, mapping, depth + 1):
        return False
    pairs: list[tuple[object, object]] = [
        (old.__defaults__, new.__defaults__),
        (old.__kwdefaults__, new.__kwdefaults__),
        (old.__annotations__, new.__annotations__),
        # Attributes set at run time are state, not code; a wrapper's target is code.
        (old.__dict__.get("__wrapped__"), new.__dict__.get("__wrapped__")),
    ]
    old_cells = [cell_value(c) for c in old.__closure__ or ()]
    new_cells = [cell_value(c) for c in new.__closure__ or ()]
    pairs += [
        (a, b)
        for name, a, b in zip(old.__code__.co_freevars, old_cells, new_cells, strict=True)
        if name != "__class__"
    ]
    return all(same_value(a, b, mapping, depth + 1) for a, b in pairs)


# --- decorator wrappers -------------------------------------------------------------------------


def is_class(value: object) -> TypeGuard[type]:
    # type(), not isinstance(): isinstance asks the value for __class__, which a proxy or a
    # broken object may answer with anything, or an exception.
    return issubclass(type(value), type)


def safe_attribute(value: object, name: str) -> object:
    """``getattr(value, name)``, or :data:`MISSING` whatever the lookup raises."""
    try:
        return getattr(value, name)
    except Exception:
        return MISSING


def wrapped_of(value: object) -> object:
    """What a decorator's wrapper wraps (``__wrapped__``), or :data:`MISSING`."""
    return safe_attribute(value, "__wrapped__")


def same_wrapping(
    old: object,
    new: object,
    inner_old: types.FunctionType,
    inner_new: types.FunctionType,
    mapping: dict[int, type],
) -> bool:
    """Whether two chains of wrappers around ``inner_old`` and ``inner_new`` were made by the
    same decorators with the same settings, level by level."""
    for _ in range(MAX_DEPTH):
        if old is inner_old and new is inner_new:
            return True
        if old is inner_old or new is inner_new or type(old) is not type(new):
            return False
        below_old, below_new = wrapped_of(old), wrapped_of(new)
        if below_old is MISSING or below_new is MISSING:
            return False
        if type(old) is types.FunctionType:
            if not _same_wrapper_function(old, new, below_old, below_new, mapping):  # type: ignore[arg-type]
                return False
        elif type(old) in WRAPPER_TYPES:
            settings_old = safe_attribute(old, "cache_parameters")
            settings_new = safe_attribute(new, "cache_parameters")
            if not (callable(settings_old) and callable(settings_new)):
                return False
            if not same_value(settings_old(), settings_new(), mapping):
                return False
        else:
            return False  # a wrapper class hotswap does not know: its state is its own
        old, new = below_old, below_new
    return False


def _same_wrapper_function(
    old: types.FunctionType,
    new: types.FunctionType,
    below_old: object,
    below_new: object,
    mapping: dict[int, type],
) -> bool:
    # The same globals too: two decorators of other modules may have the same code.
    if old.__globals__ is not new.__globals__ or code_key(old.__code__) != code_key(new.__code__):
        return False
    if not (
        same_value(old.__defaults__, new.__defaults__, mapping)
        and same_value(old.__kwdefaults__, new.__kwdefaults__, mapping)
    ):
        return False
    for a, b in zip(old.__closure__ or (), new.__closure__ or (), strict=True):
        x, y = cell_value(a), cell_value(b)
        # The wrapped function is the level below (compared next); other cells are the
        # decorator's arguments and must be the same.
        if not ((x is below_old and y is below_new) or same_value(x, y, mapping)):
            return False
    return True
