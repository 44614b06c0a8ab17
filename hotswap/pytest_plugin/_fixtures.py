"""Fixtures for users who test reload behaviour: real files, real imports, real reloads."""

from __future__ import annotations

import importlib
import os
import sys
import textwrap
import threading
import time
import types
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest

import hotswap

__all__ = (
    "ModuleHandle",
    "ProjectHandle",
    "WatcherHandle",
    "hotswap_module",
    "hotswap_project",
    "hotswap_watcher",
)


def _write(path: Path, source: str) -> None:
    """Write dedented source and move the modification time forward: an import never takes a
    cached ``.pyc`` of an earlier version for current, even within one second."""
    path.parent.mkdir(parents=True, exist_ok=True)
    before = path.stat().st_mtime_ns if path.exists() else 0
    path.write_text(textwrap.dedent(source), encoding="utf-8")
    stamp = max(path.stat().st_mtime_ns, before + 2_000_000_000)
    os.utime(path, ns=(stamp, stamp))


def _module_path(root: Path, name: str) -> Path:
    *packages, last = name.split(".")
    for depth in range(1, len(packages) + 1):
        init = root.joinpath(*packages[:depth], "__init__.py")
        if not init.exists():
            _write(init, "")
    return root.joinpath(*packages, f"{last}.py")


def _forget(root: Path) -> None:
    prefix = str(root) + os.sep
    for name, module in list(sys.modules.items()):
        file = getattr(module, "__file__", None)
        if isinstance(file, str) and os.path.abspath(file).startswith(prefix):
            del sys.modules[name]


class ModuleHandle:
    """A module written to a file, imported, and reloaded on each :meth:`write`.

    Attributes:
        path: its source file.
        policy: the policy its reloads use (None: the configured one).
    """

    def __init__(self, name: str, path: Path, policy: str | None) -> None:
        self.path = path
        self.policy = policy
        self._name = name

    @property
    def module(self) -> types.ModuleType:
        """The live module object (the same one across reloads)."""
        return sys.modules[self._name]

    @property
    def version(self) -> int:
        """The live version: 1 as imported, one more per applied change."""
        known = hotswap.status().modules.get(self._name)
        if known is None or known.last_result is None:
            return 1
        return known.version

    def write(self, source: str) -> hotswap.ReloadResult:
        """Write a new version of the source and reload it now; a failed reload is returned,
        not raised."""
        _write(self.path, source)
        return hotswap.reload(self._name, policy=self.policy)

    def rollback(self, to: int | None = None) -> hotswap.ReloadResult:
        """Go back to the previous version (or version ``to``); the file is left as it is."""
        return hotswap.rollback(self._name, to=to)


class ProjectHandle:
    """A folder of files on ``sys.path``.

    Attributes:
        root: the folder.
    """

    def __init__(self, root: Path) -> None:
        self.root = root

    def write(self, relpath: str, source: str) -> Path:
        """Write (or overwrite) one file, dedented; nothing is reloaded."""
        path = self.root / relpath
        _write(path, source)
        return path

    def import_module(self, name: str) -> types.ModuleType:
        """Import a module of the project (cached imports are looked up again first)."""
        importlib.invalidate_caches()
        return importlib.import_module(name)

    def reload(self, name: str, *, policy: str | None = None) -> hotswap.ReloadResult:
        """Reload a module of the project from its file, now."""
        return hotswap.reload(name, policy=policy)


class WatcherHandle:
    """The real watcher running on the test's folder; see :meth:`wait_reload`.

    Attributes:
        root: the watched folder.
        results: every reload result the watcher produced, oldest first.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.results: list[hotswap.ReloadResult] = []
        self._seen: dict[str, int] = {}
        self._cond = threading.Condition()

    def _record(self, result: hotswap.ReloadResult) -> None:
        with self._cond:
            self.results.append(result)
            self._cond.notify_all()

    def wait_reload(
        self, module: str, version: int | None = None, timeout: float = 5.0
    ) -> hotswap.ReloadResult:
        """Wait for the watcher's next reload of ``module`` (one not returned before), or for
        one that reached ``version``; a failed reload is returned too.

        Raises:
            TimeoutError: no such reload within ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                start = self._seen.get(module, 0)
                for index in range(start, len(self.results)):
                    result = self.results[index]
                    if result.module != module:
                        continue
                    if version is None or result.version >= version or not result.ok:
                        self._seen[module] = index + 1
                        return result
                left = deadline - time.monotonic()
                if left <= 0:
                    wanted = "a reload" if version is None else f"version {version}"
                    message = f"{module}: {wanted} did not come within {timeout} s"
                    raise TimeoutError(message)
                self._cond.wait(left)


@pytest.fixture
def hotswap_module(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., ModuleHandle]]:
    """Make real modules: ``hotswap_module(name, source, *, policy=None)`` writes
    ``name``'s source under ``tmp_path``, imports it and returns a :class:`ModuleHandle`.

    The folder is on ``sys.path`` for this test only; the modules are forgotten afterwards.

    Examples:
        def test_price(hotswap_module):
            calc = hotswap_module("calc", "def price(): return 1")
            assert calc.write("def price(): return 2").ok
            assert calc.module.price() == 2
    """
    root = tmp_path / "hotswap_modules"
    root.mkdir(exist_ok=True)
    monkeypatch.syspath_prepend(str(root))

    def make(name: str, source: str, *, policy: str | None = None) -> ModuleHandle:
        path = _module_path(root, name)
        _write(path, source)
        importlib.invalidate_caches()
        importlib.import_module(name)
        return ModuleHandle(name, path, policy)

    try:
        yield make
    finally:
        _forget(root)


@pytest.fixture
def hotswap_project(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[[Mapping[str, str]], ProjectHandle]]:
    """Make a project: ``hotswap_project({"pkg/__init__.py": "", "pkg/a.py": "..."})`` writes
    the files under ``tmp_path`` and returns a :class:`ProjectHandle`; nothing is imported
    until asked. The folder is on ``sys.path`` for this test only; its modules are forgotten
    afterwards."""
    root = tmp_path / "hotswap_project"
    root.mkdir(exist_ok=True)
    monkeypatch.syspath_prepend(str(root))

    def make(files: Mapping[str, str]) -> ProjectHandle:
        project = ProjectHandle(root)
        for relpath, source in files.items():
            project.write(relpath, source)
        importlib.invalidate_caches()
        return project

    try:
        yield make
    finally:
        _forget(root)


@pytest.fixture
def hotswap_watcher(tmp_path: Path) -> Iterator[WatcherHandle]:
    """The real watcher on ``tmp_path`` (where ``hotswap_module`` and ``hotswap_project``
    write), stopped after the test; wait for its reloads with
    :meth:`WatcherHandle.wait_reload`."""
    if hotswap.status().watching:
        pytest.fail("hotswap_watcher: a watcher is already running in this process")
    handle = WatcherHandle(tmp_path)
    hotswap.enable([str(tmp_path)], on_reload=handle._record)
    try:
        yield handle
    finally:
        hotswap.disable()
