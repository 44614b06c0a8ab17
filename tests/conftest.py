"""Fixtures: real modules written to a temporary folder, imported, edited and reloaded."""

from __future__ import annotations

import importlib
import os
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import hotswap
from hotswap import _config, _transaction


class Project:
    """A folder on ``sys.path`` holding the modules of one test."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._tick = 0

    def path(self, name: str) -> Path:
        parts = name.split(".")
        package = self.root.joinpath(*parts)
        if package.is_dir():
            return package / "__init__.py"
        return self.root.joinpath(*parts[:-1], parts[-1] + ".py")

    def write(self, name: str, source: str) -> Path:
        """Write a module's source (dedented); packages get an ``__init__.py`` as needed."""
        path = self.path(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        folder = path.parent
        while folder != self.root:
            (folder / "__init__.py").touch(exist_ok=True)
            folder = folder.parent
        path.write_text(textwrap.dedent(source))
        # Step the modification time forward so a fresh import never mistakes a cached .pyc
        # for current (tests that want that trap set the time themselves).
        self._tick += 2
        stamp = 1_700_000_000 + self._tick
        os.utime(path, (stamp, stamp))
        return path

    def load(self, name: str, source: str) -> ModuleType:
        """Write a module and import it."""
        self.write(name, source)
        importlib.invalidate_caches()
        return importlib.import_module(name)

    def reload(self, name: str, source: str, **kwargs: object) -> hotswap.ReloadResult:
        """Write a new version of a module and reload it through hotswap."""
        self.write(name, source)
        return hotswap.reload(name, **kwargs)  # type: ignore[arg-type]


@pytest.fixture(params=["pyc-off", "pyc-on"])
def bytecode(request: pytest.FixtureRequest) -> Iterator[bool]:
    """Runs a test with bytecode writing off and on: PYTHONDONTWRITEBYTECODE hides stale-.pyc
    bugs, so the reload path is tested both ways."""
    saved = sys.dont_write_bytecode
    sys.dont_write_bytecode = request.param == "pyc-off"
    try:
        yield not sys.dont_write_bytecode
    finally:
        sys.dont_write_bytecode = saved


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Project]:
    """A fresh folder on sys.path; its modules are forgotten afterwards, as are hotswap's
    records and settings."""
    root = tmp_path / "src"
    root.mkdir()
    monkeypatch.syspath_prepend(str(root))
    monkeypatch.chdir(tmp_path)
    _config.reset()
    _transaction.reset()
    try:
        yield Project(root)
    finally:
        for name, module in list(sys.modules.items()):
            file = getattr(module, "__file__", None) or ""
            if file.startswith(str(root)):
                del sys.modules[name]
        _transaction.reset()
        _config.reset()


@pytest.fixture
def reloading(project: Project, bytecode: bool) -> Project:
    """:func:`project`, run once with bytecode writing off and once with it on."""
    return project


@pytest.fixture
def shell(project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A real IPython ``InteractiveShell`` with ``%load_ext hotswap`` run, over ``project``;
    its history stays in memory (no saving thread), and it is cleared afterwards."""
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    config = Config()
    config.HistoryManager.hist_file = ":memory:"
    InteractiveShell.clear_instance()
    instance = InteractiveShell.instance(config=config)
    try:
        result = instance.run_cell("%load_ext hotswap")
        assert result.success, result
        yield instance
    finally:
        instance.run_cell("%unload_ext hotswap")
        hotswap.disable()
        InteractiveShell.clear_instance()
