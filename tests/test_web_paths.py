"""enable()'s default watch path under serving tools: the app's folder, not the tool's."""

from __future__ import annotations

import types
from concurrent.futures import ThreadPoolExecutor

import pytest

from hotswap import _api

CALLER = """
from hotswap import _api

def where():
    return _api._default_paths()
"""


@pytest.fixture
def tool_main(monkeypatch):
    """``__main__`` as ``python -m uvicorn`` leaves it: a module of an installed package."""
    uvicorn = pytest.importorskip("uvicorn")
    main = types.ModuleType("__main__")
    main.__file__ = uvicorn.__file__.replace("__init__.py", "__main__.py")
    monkeypatch.setitem(__import__("sys").modules, "__main__", main)
    return main


def test_default_paths_under_a_tool_use_the_callers_import_root(project, tool_main):
    module = project.load("main", CALLER)
    assert module.where() == [str(project.root)]


def test_default_paths_from_a_package_module_use_the_folder_holding_the_package(project, tool_main):
    module = project.load("mysite.settings", CALLER)
    assert module.where() == [str(project.root)]


def test_default_paths_under_a_console_script_use_the_caller(project, tool_main):
    tool_main.__file__ = "/usr/local/bin/flask"  # a console script has no .py suffix
    module = project.load("main", CALLER)
    assert module.where() == [str(project.root)]


def test_default_paths_for_a_users_script_use_its_folder(project, monkeypatch, tmp_path):
    script = tmp_path / "scripts" / "run.py"
    script.parent.mkdir()
    script.write_text("")
    main = types.ModuleType("__main__")
    main.__file__ = str(script)
    monkeypatch.setitem(__import__("sys").modules, "__main__", main)
    assert _api._default_paths() == [str(script.parent)]


def test_default_paths_fall_back_to_the_current_directory(tool_main, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    # From a worker thread, only the standard library is on the stack: no user module.
    with ThreadPoolExecutor(1) as pool:
        assert pool.submit(_api._default_paths).result() == [str(tmp_path)]


def test_import_hotswap_imports_no_framework():
    import subprocess
    import sys

    code = (
        "import sys, hotswap, hotswap._engine.adapters as a\n"
        "names = ('flask', 'fastapi', 'starlette', 'django', 'pydantic', 'werkzeug', 'jinja2')\n"
        "print(sorted(n for n in names if n in sys.modules), sorted(a._registered))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "[] ['django', 'flask', 'jinja2', 'starlette']"
