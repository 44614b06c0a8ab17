"""Giving a live function a closure of another layout.

A function's closure (``__closure__``) is read-only from Python, and ``__code__`` only takes
code whose free variables match it. A method that starts calling ``super()`` gains a
``__class__`` free variable (boltons 26.0.0's ``HTMLTextExtractor.__init__``), one that stops
loses it: the kept function could then only forward to the new one, and introspection (its
code, ``dis``, coverage) saw the forwarder where a fresh import has the new code.

CPython's C API has ``PyFunction_SetClosure``; through it the kept function takes the new
version's cells and then its code, keeping its identity. :func:`switch.switch_function` makes
the two steps one for callers (a trampoline that never reads the closure runs in between).
Elsewhere (another implementation) :func:`available` is False and the function forwards.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Callable

__all__ = ("available", "set_closure")

_setter: Callable[[types.FunctionType, object], int] | None = None
_looked_up = False


def _lookup() -> Callable[[types.FunctionType, object], int] | None:
    global _setter, _looked_up
    if not _looked_up:
        _looked_up = True
        if sys.implementation.name == "cpython":
            try:
                # Imported when first needed: ``import hotswap`` stays light.
                import ctypes

                function = ctypes.pythonapi.PyFunction_SetClosure
            except (ImportError, AttributeError, OSError):
                return None
            function.argtypes = (ctypes.py_object, ctypes.py_object)
            function.restype = ctypes.c_int
            _setter = function
    return _setter


def available() -> bool:
    """Whether a function's closure can be replaced here."""
    return _lookup() is not None


def set_closure(function: types.FunctionType, closure: tuple[types.CellType, ...] | None) -> None:
    """Make ``closure`` the closure of ``function`` (None: no closure).

    The caller makes sure that the code ``function`` runs meanwhile reads no cell (the C call
    does not check it); the old tuple must stay referenced by the caller until no call can be
    reading it (the transaction's snapshot holds it), for builds without a GIL.
    """
    setter = _lookup()
    if setter is None:
        message = "a function's closure cannot be replaced on this Python"
        raise RuntimeError(message)
    # ctypes raises the C API's own exception (SystemError) when the call fails.
    setter(function, closure if closure else None)
