"""Mapping between loaded modules and their source files."""

from __future__ import annotations

import importlib.util
import os
import sys
from types import ModuleType

from hotswap._events import location
from hotswap.exceptions import ModuleNotReloadableError

__all__ = ("module_name", "read_source", "resolve", "source_file")


def module_name(target: ModuleType | str) -> str:
    """The name of a module or module name, for messages, without looking it up."""
    if isinstance(target, ModuleType):
        return target.__name__
    return str(target)


def resolve(target: object) -> ModuleType:
    """The loaded module ``target`` names.

    Raises:
        ModuleNotReloadableError: no module of that name is loaded.
        TypeError: ``target`` is neither a module nor a string.
    """
    if isinstance(target, ModuleType):
        return target
    if not isinstance(target, str):
        message = f"expected a module or a module name, got {type(target).__name__}"
        raise TypeError(message)
    module = sys.modules.get(target)
    if module is None:
        message = f"{target}: no module of that name is loaded (import it first)"
        raise ModuleNotReloadableError(message, module=target)
    return module


def source_file(module: ModuleType) -> str:
    """The absolute path of the ``.py`` file ``module`` was loaded from.

    Raises:
        ModuleNotReloadableError: the module is built in, a C extension, frozen, or its source
            file is gone.
    """
    name = module.__name__
    spec = getattr(module, "__spec__", None)
    origin = getattr(spec, "origin", None) if spec is not None else None
    candidate = origin if isinstance(origin, str) else getattr(module, "__file__", None)
    if isinstance(candidate, str) and candidate.endswith((".pyc", ".pyo")):
        try:
            candidate = importlib.util.source_from_cache(candidate)
        except ValueError:
            candidate = None
    if not isinstance(candidate, str) or not candidate.endswith(".py"):
        message = f"{name}: has no Python source file to reload (found {candidate!r})"
        raise ModuleNotReloadableError(message, module=name)
    path = os.path.abspath(candidate)
    if not os.path.isfile(path):
        message = f"{location(name, path)}: the source file no longer exists"
        raise ModuleNotReloadableError(message, module=name, filename=path)
    return path


def read_source(module: str, path: str) -> tuple[str, bytes]:
    """The decoded text and the raw bytes of a source file (PEP 263 encodings honoured).

    Raises:
        ModuleNotReloadableError: the file cannot be read or decoded.
    """
    try:
        with open(path, "rb") as handle:
            data = handle.read()
        return importlib.util.decode_source(data), data
    except (OSError, UnicodeDecodeError, SyntaxError) as error:
        message = f"{location(module, path)}: cannot read the source: {error}"
        raise ModuleNotReloadableError(message, module=module, filename=path) from error
