"""The source each module was imported from, so the first reload diffs against it exactly.

A reload compares the new source with the live one statement by statement; for a module
hotswap has not reloaded yet, the live source is the file as it was *imported*, which the file
on disk no longer is by the time it is saved. So, from ``import hotswap`` on, the loader of
source files keeps the bytes it read: the path hook of ``sys.path`` directories makes
:class:`_RecordingLoader` instances, which keep the source bytes the import read to compile, or,
when a cached ``.pyc`` was used instead, read the file once (checked against the size and mtime
the ``.pyc`` was validated with, so a save in between is never mistaken for the imported
source). Modules of the standard library and site-packages are not recorded (their sources
are not edited, and keeping them would cost memory).

Modules imported before ``import hotswap`` have no recorded source: their first reload uses
what the live objects tell (see ``_transaction``). The running script (``__main__``) is
recorded when hotswap is imported, as it was most likely not edited in between.
"""

from __future__ import annotations

import importlib.machinery
import marshal
import os
import sys
import threading
from typing import Any

from hotswap._ops import forks as _forks

__all__ = ("install", "peek", "recorded", "remember", "take")

# path -> (source bytes, the bytes of the cached .pyc the import ran, None when compiled from
# the source bytes)
_recorded: dict[str, tuple[bytes, Any]] = {}
_lock = _forks.guarded(threading.Lock(), "sources")
_reading = threading.local()  # .depth > 0: inside get_source, not an import
_installed = False
_excluded: tuple[str, ...] = ()


def _is_excluded(path: str) -> bool:
    return path.startswith(_excluded)


class _RecordingLoader(importlib.machinery.SourceFileLoader):
    """A source file loader that keeps the bytes of the source it loaded.

    It records what ``get_data`` reads and overrides nothing that compiles or runs code: a
    syntax error or an exception at import then has no frame of hotswap's in its traceback
    (pytest's, a script's), only the user's files and the import system's.
    """

    _stats: dict[str, Any] | None = None

    def path_stats(self, path: str) -> Any:
        stats = super().path_stats(path)
        self._stats = dict(stats)
        return stats

    def get_source(self, fullname: str) -> str | None:
        # Read for a traceback or inspect, not for an import: nothing to record (the file may
        # have been edited since the module ran it).
        _reading.depth = getattr(_reading, "depth", 0) + 1
        try:
            return super().get_source(fullname)
        finally:
            _reading.depth -= 1

    def get_data(self, path: str) -> bytes:
        data = super().get_data(path)
        source = self.path
        if not isinstance(source, str) or _is_excluded(source) or _in_get_source():
            return data
        if path == source:
            # The source is read to be compiled: these are the bytes the module runs.
            with _lock:
                _recorded[os.path.abspath(source)] = (data, None)
        elif path.endswith(tuple(importlib.machinery.BYTECODE_SUFFIXES)):
            # A cached .pyc, which the import system may take for current: keep the source
            # as it is now (if unchanged since the stats the .pyc is checked against) with the
            # .pyc, so the first reload can tell whether the .pyc was compiled from it. When
            # the .pyc turns out stale, the source read that follows replaces this.
            current = _read_if_unchanged(source, self._stats)
            if current is not None:
                with _lock:
                    _recorded[os.path.abspath(source)] = (current, data)
        return data


def _in_get_source() -> bool:
    depth: int = getattr(_reading, "depth", 0)
    return depth > 0


def _read_if_unchanged(path: str, stats: dict[str, Any] | None) -> bytes | None:
    """The file's bytes, if it still has the size and mtime the cached bytecode matched."""
    if stats is None:
        return None
    try:
        with open(path, "rb") as handle:
            data = handle.read()
            now = os.fstat(handle.fileno())
    except OSError:
        return None
    if int(now.st_mtime) != int(stats["mtime"]) or now.st_size != stats.get("size", now.st_size):
        return None
    return data


def remember(path: str, data: bytes) -> None:
    """Record ``data`` as the source ``path`` was executed from (the CLI's script)."""
    with _lock:
        _recorded[os.path.abspath(path)] = (data, None)


def recorded() -> frozenset[str]:
    """The paths (absolute) whose executed source is recorded now."""
    with _lock:
        return frozenset(_recorded)


def peek(path: str) -> bytes | None:
    """The recorded source of ``path``, if any, without handing it over."""
    with _lock:
        entry = _recorded.get(os.path.abspath(path))
    return None if entry is None else entry[0]


def take(path: str) -> bytes | None:
    """The recorded source of ``path``, handed over once (the caller keeps it from then on).

    When the module ran a cached ``.pyc``, the bytes are checked against it first (one
    compile, at the first reload only): a ``.pyc`` that the import system took for current
    although the source changed within the same second is not the source it ran.
    """
    with _lock:
        entry = _recorded.pop(os.path.abspath(path), None)
    if entry is None:
        return None
    data, cached = entry
    if cached is not None:
        try:
            made = marshal.loads(memoryview(cached)[16:])  # past the .pyc header
            if compile(data, path, "exec", dont_inherit=True) != made:
                return None
        except (SyntaxError, ValueError, EOFError, TypeError):
            return None
    return data


def install() -> None:
    """Record sources from now on (idempotent); record the running script's source."""
    global _installed, _excluded
    if _installed:
        return
    _installed = True
    from hotswap._plan.modules import excluded_roots

    _excluded = tuple(root.rstrip(os.sep) + os.sep for root in excluded_roots())
    main = sys.modules.get("__main__")
    script = getattr(main, "__file__", None)
    if isinstance(script, str) and script.endswith(".py") and not _is_excluded(script):
        try:
            with open(script, "rb") as handle:
                remember(script, handle.read())
        except OSError:
            pass
    details = [
        (_RecordingLoader, importlib.machinery.SOURCE_SUFFIXES),
        (importlib.machinery.SourcelessFileLoader, importlib.machinery.BYTECODE_SUFFIXES),
        (importlib.machinery.ExtensionFileLoader, importlib.machinery.EXTENSION_SUFFIXES),
    ]
    hook = importlib.machinery.FileFinder.path_hook(*details)
    # Replace the standard file finder's hook, and forget the finders it made, so every
    # directory gets a finder whose source loader records.
    for index, existing in enumerate(sys.path_hooks):
        if getattr(existing, "__qualname__", "").startswith("FileFinder.path_hook"):
            sys.path_hooks[index] = hook
            break
    else:
        return
    for key, finder in list(sys.path_importer_cache.items()):
        if type(finder) is importlib.machinery.FileFinder:
            del sys.path_importer_cache[key]
