"""A module's compiled code read as a list of plain bindings, when it is one (issue 26).

The first reload of a module whose source hotswap never saw (imported before it, its bytes
not kept) compares the new source with the live objects: a statement they show unchanged
does not run again (:func:`hotswap._engine.baseline.synthesize`). For a module whose every
top-level statement is a plain binding (``NAME = <constant>``, a ``def`` without decorators
or annotations, an import, the docstring), the same comparison needs no syntax tree: the
compiled code lists them, and the live values and functions answer. When every binding
differs from what the module holds, the whole module runs, as a rewrite
(:mod:`hotswap._engine.rewrite`).
"""

from __future__ import annotations

import dis
import types
from typing import Any

from hotswap._engine.baseline import MODULE_ATTRIBUTES, owned_function
from hotswap._plan.symbols import code_key

__all__ = ("Bindings", "all_changed", "bindings")

_OP = dis.opmap
_LOAD_CONST = _OP["LOAD_CONST"]
_STORE_NAME = _OP["STORE_NAME"]
_MAKE_FUNCTION = _OP["MAKE_FUNCTION"]
_IMPORTS = frozenset({_OP["IMPORT_NAME"], _OP["IMPORT_FROM"]})
_EXTENDED_ARG = _OP["EXTENDED_ARG"]
# 3.14+: a small int is its own argument; 3.15+: None and a few others have an instruction of
# their own (as a binding's value: not read here, the module is not taken for plain).
_LOAD_SMALL_INT = _OP.get("LOAD_SMALL_INT", -1)
_LOAD_COMMON_CONSTANT = _OP.get("LOAD_COMMON_CONSTANT", -1)
_UNREAD = object()
# What plain bindings compile to, and nothing else (a call, an operation, a class: no).
_ALLOWED = frozenset(
    {
        _LOAD_CONST,
        _LOAD_SMALL_INT,
        _LOAD_COMMON_CONSTANT,
        _STORE_NAME,
        _MAKE_FUNCTION,
        *_IMPORTS,
        _OP["POP_TOP"],
        _OP["RETURN_VALUE"],
        _OP.get("RETURN_CONST", _OP["NOP"]),  # 3.12 and 3.13: the module's `return None`
        _OP["NOP"],
        _OP.get("RESUME", _OP["NOP"]),
        _OP.get("CACHE", _OP["NOP"]),
        _EXTENDED_ARG,
    }
)
_MAKE_FUNCTION_PLAIN = 0x01  # defaults only: no keyword defaults, annotations or closure


class Bindings:
    """The plain bindings of a module's code: constants, functions, imported names."""

    __slots__ = ("constants", "functions", "imported")

    def __init__(self) -> None:
        self.constants: list[tuple[str, object]] = []
        self.functions: list[tuple[str, types.CodeType]] = []
        self.imported: list[str] = []

    def names(self) -> frozenset[str]:
        found = {n for n, _ in self.constants} | {n for n, _ in self.functions}
        return frozenset(found | set(self.imported))

    def __len__(self) -> int:
        return len(self.constants) + len(self.functions) + len(self.imported)


def bindings(code: types.CodeType) -> Bindings | None:
    """The plain bindings ``code`` (a module's) makes, in order; None when it does anything
    else."""
    raw = code.co_code
    consts = code.co_consts
    names = code.co_names
    found = Bindings()
    previous = -1  # the opcode before
    constant: object = None
    arg = 0
    for position in range(0, len(raw), 2):
        op = raw[position]
        if op not in _ALLOWED:
            return None
        arg = (arg << 8) | raw[position + 1]
        if op == _EXTENDED_ARG:
            continue
        if op == _LOAD_CONST:
            constant = consts[arg]
        elif op == _LOAD_SMALL_INT:
            op, constant = _LOAD_CONST, arg
        elif op == _LOAD_COMMON_CONSTANT:
            op, constant = _LOAD_CONST, _UNREAD
        elif op == _MAKE_FUNCTION:
            if arg & ~_MAKE_FUNCTION_PLAIN or not isinstance(constant, types.CodeType):
                return None
        elif op == _STORE_NAME:
            name = names[arg]
            if previous == _LOAD_CONST and constant is _UNREAD:
                return None
            if previous == _LOAD_CONST and not isinstance(constant, types.CodeType):
                found.constants.append((name, constant))
            elif previous == _MAKE_FUNCTION:
                assert isinstance(constant, types.CodeType)
                found.functions.append((name, constant))
            elif previous in _IMPORTS:
                found.imported.append(name)
            else:
                return None
        if op != _OP.get("CACHE", -1):
            previous = op
        arg = 0
    return found


def all_changed(found: Bindings, namespace: dict[str, Any]) -> bool:
    """Whether the live module shows every binding of ``found`` changed (imports and the
    docstring apart: running them again binds what they bound): each constant differs from
    the live value, each function's code from the live function's."""
    for name, value in found.constants:
        if name in MODULE_ATTRIBUTES:
            continue
        current = namespace.get(name, _MISSING)
        try:
            if type(current) is type(value) and bool(current == value):
                return False
        except Exception:
            return False
    for name, made in found.functions:
        inner = owned_function(namespace.get(name), namespace)
        if inner is not None and code_key(inner.__code__) == code_key(made):
            return False
    return True


_MISSING = object()
