"""Who may depend on a change: the sources of the user's modules, cached by file version, and
which of them import from a given module (DESIGN §5.2)."""

from __future__ import annotations

import os
import sys
import types
from collections.abc import Iterator
from typing import TYPE_CHECKING

from hotswap._engine.history import records
from hotswap._plan import modules as _modules
from hotswap._plan import sources as _sources
from hotswap._plan import statements as _statements
from hotswap.exceptions import HotswapError

if TYPE_CHECKING:
    from hotswap._engine.unit import Unit

__all__ = ("Texts", "imports_from", "in_import_order", "known_source", "known_text", "reset")


def in_import_order(units: list[Unit]) -> list[Unit]:
    """The change set's modules, each after the ones of the set it imports from (a save-all
    comes in event order; an importer planned first would miss its upstream's change)."""
    if len(units) < 2 or len(units) > 64:
        return units
    after = {
        id(u): [v for v in units if v is not u and imports_from(u.module, u.new, v.name)]
        for u in units
    }
    ordered: list[Unit] = []
    placed: set[int] = set()

    def place(unit: Unit, path: set[int]) -> None:
        if id(unit) in placed or id(unit) in path:
            return  # placed already, or an import cycle: keep the given order
        for upstream in after[id(unit)]:
            place(upstream, path | {id(unit)})
        placed.add(id(unit))
        ordered.append(unit)

    for unit in units:
        place(unit, set())
    return ordered


class Texts:
    """The sources of the user's modules, for the importer search and the removal check: the
    change set's new sources, the live ones hotswap knows, else the files (cached by stat)."""

    def __init__(self, units: list[Unit]) -> None:
        self.units = {u.name: u for u in units}

    def of(self, name: str, module: types.ModuleType, file: str) -> str | None:
        unit = self.units.get(name)
        if unit is not None:
            return unit.new.source
        return known_text(name, file)

    def all(self) -> Iterator[str]:
        """The sources of the modules beside the change set's: those below the same
        ``sys.path`` entry (the project a removed name's callers would be in)."""
        roots = tuple({_modules.import_root(u.path) for u in self.units.values()})
        for name, module, file in _modules._project.modules():
            if not file.startswith(roots):
                continue
            text = self.of(name, module, file)
            if text:
                yield text


_file_texts: dict[str, tuple[tuple[int, int], str]] = {}


def known_text(name: str, file: str) -> str | None:
    record = records.get(name)
    if record is not None and record.live is not None:
        return record.live.source
    try:
        stat = _stat_key(file)
        cached = _file_texts.get(file)
        if cached is not None and cached[0] == stat:
            return cached[1]
        text, _ = _modules.read_source(name, file)
    except (OSError, HotswapError):
        return None
    _file_texts[file] = (stat, text)
    return text


def _stat_key(file: str) -> tuple[int, int]:
    stat = os.stat(file)
    return (stat.st_mtime_ns, stat.st_size)


def known_source(name: str, file: str) -> _statements.ModuleSource | None:
    """The parsed source a module not reloaded yet runs (its imported bytes, else the file),
    cached by the file's stat: importer searches ask for it on every reload."""
    try:
        stat = _stat_key(file)
    except OSError:
        return None
    cached = _parsed.get(file)
    if cached is not None and cached[0] == stat:
        return cached[1]
    data = _sources.peek(file)
    text = None if data is None else data.decode("utf-8", "replace")
    text = text or known_text(name, file)
    if text is None:
        return None
    try:
        source = _statements.parse_module(text)
    except SyntaxError:
        return None
    _parsed[file] = (stat, source)
    return source


_parsed: dict[str, tuple[tuple[int, int], _statements.ModuleSource]] = {}


def imports_from(module: types.ModuleType, source: _statements.ModuleSource, target: str) -> bool:
    """Whether ``module`` takes names from the module ``target``: a ``from`` import of it (or
    of it from its package), or a module-level name bound to it."""
    namespace = vars(module)
    package = namespace.get("__package__") or ""
    for stmt in source.statements:
        for level, relative, attribute, _ in stmt.info.from_imports:
            name = relative
            if level:
                base = package.rsplit(".", level - 1)[0] if level > 1 else package
                name = f"{base}.{relative}" if relative else base
            if target in (name, f"{name}.{attribute}"):
                return True
    found = sys.modules.get(target)
    if found is None:
        return False
    for value in list(namespace.values()):
        # ``import pkg.mod`` binds ``pkg``: its statements read ``pkg.mod.X``.
        if value is found or (
            isinstance(value, types.ModuleType) and target.startswith(f"{value.__name__}.")
        ):
            return True
    return False


def reset() -> None:
    """Forget the cached sources (for tests)."""
    _file_texts.clear()
    _parsed.clear()
