"""Changes waiting to be applied, found by looking rather than by listening.

The watcher applies saves as file events arrive. A caller that must apply every pending change
*now*, synchronously (the IPython extension before each cell, ``hotswap run --keep-alive``
before it runs the entry again), cannot wait for an event that may still be in flight: it asks
:class:`Pending` which loaded modules' files differ from what it last saw. A stat (modification
time and size) rules most files out; a file whose stat moved is read and hashed, so touching a
file or saving the same bytes is not a change.
"""

from __future__ import annotations

import ast
import hashlib
import os
import sys
import time
import types
from dataclasses import dataclass

from hotswap._plan.modules import Scope

__all__ = ("Change", "Pending", "dependency_order", "digest_of")


@dataclass(frozen=True)
class Change:
    """A loaded module whose source file changed since it was last seen.

    Attributes:
        module: the module's name.
        path: its source file.
        digest: sha256 of the file's content now.
        data: that content.
    """

    module: str
    path: str
    digest: str
    data: bytes


_RACY_NS = 2_000_000_000


@dataclass
class _Seen:
    stat: tuple[int, int]
    digest: str


def _stat(path: str) -> tuple[int, int] | None:
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_mtime_ns, info.st_size


def _read(path: str) -> bytes | None:
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError:
        return None


def digest_of(path: str) -> str | None:
    """The SHA-256 of the file's bytes now, None if it cannot be read."""
    data = _read(path)
    return None if data is None else hashlib.sha256(data).hexdigest()


class Pending:
    """Loaded modules under some paths whose source changed since the last look.

    Args:
        paths: files or folders; modules whose source lies under them are followed (the
            standard library and site-packages only when a path names them).
        exclude: glob patterns of files never followed.
    """

    def __init__(self, paths: list[str], exclude: tuple[str, ...] = ()) -> None:
        self.scope = Scope(paths, exclude)
        self._seen: dict[str, _Seen] = {}
        self._known: dict[str, tuple[object, str | None]] = {}

    def _path_of(self, name: str, module: object) -> str | None:
        """The followed source file of a module, cached per module object: a cell or a poll
        looks at every loaded module, and most never change."""
        known = self._known.get(name)
        if known is not None and known[0] is module:
            return known[1]
        path: str | None = None
        file = getattr(module, "__file__", None)
        followed = name != "__main__" and isinstance(module, types.ModuleType)
        if followed and isinstance(file, str) and file.endswith(".py"):
            path = os.path.abspath(file)
            if path not in self._seen and not self.scope.contains(path):
                path = None
        self._known[name] = (module, path)
        return path

    def _files(self) -> dict[str, list[str]]:
        by_file: dict[str, list[str]] = {}
        for name, module in list(sys.modules.copy().items()):
            path = self._path_of(name, module)
            if path is not None:
                by_file.setdefault(path, []).append(name)
        return by_file

    def learn(self) -> None:
        """Remember the current content of files not seen before (modules imported since the
        last look), so that they count as changed only when saved again."""
        for path in self._files():
            if path not in self._seen:
                self._remember(path)

    def _remember(self, path: str) -> _Seen | None:
        stat = _stat(path)
        data = _read(path) if stat is not None else None
        if stat is None or data is None:
            return None
        seen = _Seen(stat, hashlib.sha256(data).hexdigest())
        self._seen[path] = seen
        return seen

    def changes(self) -> list[Change]:
        """The followed modules whose file content differs from the last look, ordered so
        that a module comes after the changed modules it imports. Files not seen before are
        learnt, not reported; a file that vanished is not a change (it is kept as it was)."""
        found: list[Change] = []
        for path, names in self._files().items():
            seen = self._seen.get(path)
            if seen is None:
                self._remember(path)
                continue
            stat = _stat(path)
            if stat is None:
                continue
            # Two saves within one tick of the file system's clock can leave the same size
            # and time (git and racy-git have the same problem): a recent stat is not trusted.
            if stat == seen.stat and time.time_ns() - stat[0] > _RACY_NS:
                continue
            data = _read(path)
            if data is None:
                continue
            digest = hashlib.sha256(data).hexdigest()
            seen.stat = stat
            if digest == seen.digest:
                continue
            seen.digest = digest
            found.extend(Change(name, path, digest, data) for name in names)
        return dependency_order(found)


def _imported(change: Change) -> set[str]:
    """The absolute names of the modules ``change``'s new source imports (relative imports
    resolved against its package)."""
    try:
        tree = ast.parse(change.data)
    except (SyntaxError, ValueError):
        return set()
    module = sys.modules.get(change.module)
    package = getattr(module, "__package__", None) or ""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".") if package else []
                parts = parts[: len(parts) - node.level + 1] if node.level > 1 else parts
                base = ".".join([*parts, base] if base else parts)
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def dependency_order(changes: list[Change]) -> list[Change]:
    """``changes`` ordered so that a module comes after the changed modules it imports (a
    dependency cycle keeps the order given, by module name)."""
    by_name = {c.module: c for c in sorted(changes, key=lambda c: c.module)}
    needs = {name: _imported(c) & by_name.keys() - {name} for name, c in by_name.items()}
    ordered: list[Change] = []
    done: set[str] = set()

    def visit(name: str, stack: set[str]) -> None:
        if name in done or name in stack:
            return
        stack.add(name)
        for dependency in sorted(needs[name]):
            visit(dependency, stack)
        stack.discard(name)
        done.add(name)
        ordered.append(by_name[name])

    for name in by_name:
        visit(name, set())
    return ordered
