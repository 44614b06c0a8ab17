"""What the import's bytecode cache tells of a module imported before hotswap (issue 25).

The first reload of such a module, saved before the warm-up read its file, works out the old
source from the live objects (:func:`hotswap._engine.baseline.synthesize`); for a statement
that only acts, or binds what no literal describes, they tell nothing. The module's ``.pyc``
does, when it is the code the module ran: :mod:`hotswap._plan.oldcode` reads it and refuses
one the file as it is now may have been compiled into; here it must also hold, at the same
places, the very code of every function the module defines (a cache of another version of
the file, left by another process or another run, does not).
"""

from __future__ import annotations

import types
from collections.abc import Callable, Sequence
from typing import Any

from hotswap._engine.members import accessors, owned_function
from hotswap._engine.switch import is_instance
from hotswap._plan import oldcode as _oldcode
from hotswap._plan import statements as _statements
from hotswap._plan import symbols as _symbols

__all__ = ("old_statements",)


def _functions(namespace: dict[str, Any], module: str) -> list[types.FunctionType]:
    """The functions the module's source defines, at the top and in its classes."""
    found: list[types.FunctionType] = []
    classes: list[type] = []
    for value in list(namespace.values()):
        if is_instance(value, type):
            if vars(value).get("__module__") == module:
                classes.append(value)
            continue
        function = owned_function(value, namespace)
        if function is not None:
            found.append(function)
    seen: set[int] = set()
    while classes:
        cls = classes.pop()
        if id(cls) in seen:
            continue
        seen.add(id(cls))
        for member in list(vars(cls).values()):
            if is_instance(member, type):
                if vars(member).get("__module__") == module:
                    classes.append(member)
                continue
            for accessor in accessors(member):
                function = owned_function(accessor, namespace)
                if function is not None:
                    found.append(function)
    # Functions made from strings (dataclass methods) are not the file's.
    return [f for f in found if not f.__code__.co_filename.startswith("<")]


def _belongs(code: types.CodeType, namespace: dict[str, Any], module: str) -> bool:
    """Whether ``code`` holds every function the module defines, exactly (lines included)."""
    places = _symbols.code_index(code)
    for function in _functions(namespace, module):
        live = function.__code__
        if places.get((live.co_name, live.co_firstlineno)) != live:
            return False
    return True


def old_statements(
    module: types.ModuleType,
    path: str,
    statements: Sequence[_statements.Statement],
    new_code: Callable[[], types.CodeType | None],
    wanted: Sequence[int],
) -> _oldcode.Told | None:
    """For each index in ``wanted``, whether that statement of the new source was in the code
    the module was imported from, as its bytecode cache tells (:class:`~hotswap._plan.oldcode.
    Told`); None when no cache tells (none left, or not of the imported source). ``new_code``
    compiles the new source."""
    namespace = vars(module)
    # (3.15 no longer sets ``__cached__``; the spec still says where the cache is.)
    cached = namespace.get("__cached__") or getattr(namespace.get("__spec__"), "cached", None)
    code = _oldcode.cached_code(path, cached)
    if code is None or not _belongs(code, namespace, module.__name__):
        return None
    made = new_code()
    if made is None:
        return None
    return _oldcode.existed(code, made, statements, wanted)
