"""Arguments of ``enable()`` are that call's, not settings (issue 24.6): they hold while the
watcher they started runs and are gone after ``disable()``; settings come from
``configure()``, ``[tool.hotswap]`` and ``HOTSWAP_*``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import hotswap


@pytest.fixture
def stopped() -> Iterator[None]:
    yield
    hotswap.disable()


def test_enable_arguments_end_with_the_watcher(project, tmp_path, stopped):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    hotswap.configure(history=7)
    hotswap.enable([str(elsewhere)], policy="warn", debounce=0.2)
    during = hotswap.configure()
    assert (during.policy, during.debounce, during.history) == ("warn", 0.2, 7)
    hotswap.disable()
    after = hotswap.configure()
    assert after.paths == ()
    assert (after.policy, after.debounce, after.history) == ("strict", 0.05, 7)


def test_ipython_extension_after_enable_elsewhere_watches_its_own_folder(
    project, tmp_path, monkeypatch, capsys, stopped
):
    pytest.importorskip("IPython")
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    hotswap.enable([str(elsewhere)])
    hotswap.disable()
    notebook = tmp_path / "notebook"
    notebook.mkdir()
    monkeypatch.chdir(notebook)
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    config = Config()
    config.HistoryManager.hist_file = ":memory:"
    InteractiveShell.clear_instance()
    shell = InteractiveShell.instance(config=config)
    try:
        assert shell.run_cell("%load_ext hotswap").success
        capsys.readouterr()
        assert shell.run_cell("%hotswap").success
        table = capsys.readouterr().out
    finally:
        shell.run_cell("%unload_ext hotswap")
        InteractiveShell.clear_instance()
    assert f"watching {Path(notebook)}" in table, table
    assert str(elsewhere) not in table
