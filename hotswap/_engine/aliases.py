"""Importers that reach a module through another module's alias of it (DESIGN §5.2).

toolz's ``functoolz`` binds its sibling as ``from . import _signatures as _sigs``, and the
package runs ``functoolz._sigs.create_signature_registry()`` at import: the package's source
neither names ``_signatures`` nor imports from it, yet that statement calls the changed
module's function, and a fresh import runs it after the new ``_signatures``. The importer
search (:mod:`hotswap._engine.importers`) finds the modules that bind the changed module;
this finds, among the user's modules, those that reach it through one of them: the source
names the alias, and the namespace holds the module that binds it (or a package above it).
Only identity checks over namespaces already loaded: no parse, no heap scan.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Callable, Mapping

from hotswap._plan import modules as _modules

__all__ = ("reachers", "reaches")

# (name, module, file) -> the source that module runs (bytes when read from the file).
TextOf = Callable[[str, types.ModuleType, str], "str | bytes | None"]


def _aliases(found: types.ModuleType, holder: types.ModuleType) -> list[str]:
    """The names under which ``holder`` binds ``found`` other than its own last component
    (``_sigs`` for ``_signatures``): the package attribute the import system sets is not
    an alias anyone reads through."""
    own = found.__name__.rpartition(".")[2]
    return [
        local
        for local, value in list(vars(holder).items())
        if value is found and local != own and not local.startswith("__")
    ]


def _holds(namespace: Mapping[str, object], holder: types.ModuleType) -> bool:
    """Whether ``namespace`` binds ``holder`` or a package above it (``import pkg.core``
    binds ``pkg``: statements read ``pkg.core._t``)."""
    prefix = holder.__name__
    for value in list(namespace.values()):
        if value is holder or (
            isinstance(value, types.ModuleType) and prefix.startswith(f"{value.__name__}.")
        ):
            return True
    return False


def _names(text: str | bytes, word: str) -> bool:
    return (word.encode() in text) if isinstance(text, bytes) else (word in text)


def reachers(target: str, holders: list[str], text_of: TextOf) -> list[str]:
    """The user's loaded modules, besides ``holders`` (those that import from ``target`` or
    bind it), that reach ``target`` through an alias one of ``holders`` binds it under."""
    found = sys.modules.get(target)
    if not isinstance(found, types.ModuleType):
        return []
    via: list[tuple[str, types.ModuleType]] = []
    for name in holders:
        holder = sys.modules.get(name)
        if isinstance(holder, types.ModuleType) and holder is not found:
            via.extend((alias, holder) for alias in _aliases(found, holder))
    if not via:
        return []
    skip = {target, *holders}
    chosen = []
    for name, module, file in _modules.project_modules():
        if name in skip:
            continue
        text = text_of(name, module, file)
        if text is None:
            continue
        namespace = vars(module)
        if any(
            _names(text, alias) and (_holds(namespace, holder) or _holds(namespace, found))
            for alias, holder in via
        ):
            chosen.append(name)  # ``core._t.fill()``, or ``from .core import _t``
    return chosen


def reaches(namespace: Mapping[str, object], text: str, found: types.ModuleType | None) -> bool:
    """Whether a module whose namespace is ``namespace`` and whose source is ``text`` holds
    a module that binds ``found`` under an alias the source names."""
    if found is None:
        return False
    return any(
        isinstance(value, types.ModuleType)
        and value is not found
        and any(alias in text for alias in _aliases(found, value))
        for value in list(namespace.values())
    )
