"""Selection by the static import graph, and what kind of change a file is."""

from __future__ import annotations

from pathlib import Path

import pytest

from hotswap.pytest_plugin._selection import (
    ImportGraph,
    classify,
    conftest_is_structural,
    environment,
    module_name_for,
    structural_change,
)


def _tree(root: Path, files: dict[str, str]) -> dict[str, str]:
    for relpath, source in files.items():
        path = root / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source)
    return {relpath: str(root / relpath) for relpath in files}


def test_import_graph_follows_absolute_relative_and_package_imports(tmp_path: Path) -> None:
    paths = _tree(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/config.py": "RATE = 2\n",
            "pkg/calc.py": "from .config import RATE\n",
            "pkg/sub/__init__.py": "from .. import calc\n",
            "pkg/unrelated.py": "import json\n",
            "tests/test_calc.py": "import pkg.sub\n",
            "tests/test_other.py": "from pkg import unrelated\n",
            "tests/conftest.py": "",
        },
    )
    graph = ImportGraph(str(tmp_path))
    graph.scan()
    tests = [paths["tests/test_calc.py"], paths["tests/test_other.py"]]
    assert graph.affected([paths["pkg/config.py"]], tests) == [paths["tests/test_calc.py"]]
    assert graph.affected([paths["pkg/unrelated.py"]], tests) == [paths["tests/test_other.py"]]
    # the package's __init__ runs for every import below it
    assert graph.affected([paths["pkg/__init__.py"]], tests) == tests
    # a conftest above a test counts as part of it
    assert graph.affected([paths["tests/conftest.py"]], tests) == tests
    assert graph.importers([paths["pkg/config.py"]]) >= {
        paths["pkg/calc.py"],
        paths["pkg/sub/__init__.py"],
        paths["tests/test_calc.py"],
    }
    order = graph.ordered([paths["pkg/sub/__init__.py"], paths["pkg/calc.py"]])
    assert order == [paths["pkg/calc.py"], paths["pkg/sub/__init__.py"]]


def test_import_graph_src_layout_and_broken_files(tmp_path: Path) -> None:
    paths = _tree(
        tmp_path,
        {
            "src/shop/__init__.py": "",
            "src/shop/cart.py": "def add(\n",  # a syntax error imports nothing visible
            "src/shop/price.py": "from shop.cart import add\n",
            "tests/test_price.py": "from shop import price\n",
        },
    )
    graph = ImportGraph(str(tmp_path))
    graph.scan()
    assert module_name_for(paths["src/shop/price.py"]) == "shop.price"
    tests = [paths["tests/test_price.py"]]
    assert graph.affected([paths["src/shop/cart.py"]], tests) == tests


@pytest.mark.parametrize(
    ("source", "structural"),
    [
        ("import pytest\n\n@pytest.fixture\ndef base():\n    return 1\n", False),
        ('"""doc"""\nVALUE = 3\n', False),
        ("def pytest_addoption(parser):\n    pass\n", True),
        ("def pytest_configure(config):\n    pass\n", True),
        ('pytest_plugins = ["x"]\n', True),
        ("import sys\nsys.path.insert(0, 'lib')\n", True),
        ("import os\nos.environ['A'] = '1'\n", True),
        ("def pytest_runtest_setup(item):\n    pass\n", False),
        ("def broken(:\n", False),
    ],
)
def test_conftest_is_structural(source: str, structural: bool) -> None:
    assert conftest_is_structural(source) is structural


def test_classify_kinds(tmp_path: Path) -> None:
    paths = _tree(
        tmp_path,
        {
            "pkg/a.py": "",
            "pkg/data.json": "{}",
            "pkg/README.md": "",
            "docs/notes.txt": "",
            "tests/test_a.py": "",
            "tests/conftest.py": "",
            "pyproject.toml": "",
            "pkg/fast.so": "",
            "pkg/__pycache__/a.cpython-311.pyc": "",
            ".git/HEAD": "",
        },
    )
    root = str(tmp_path)
    kinds = {relpath: classify(path, root) for relpath, path in paths.items()}
    assert kinds == {
        "pkg/a.py": "source",
        "pkg/data.json": "data",
        "pkg/README.md": "ignored",
        "docs/notes.txt": "ignored",  # no code beside it
        "tests/test_a.py": "test",
        "tests/conftest.py": "conftest",
        "pyproject.toml": "config",
        "pkg/fast.so": "extension",
        "pkg/__pycache__/a.cpython-311.pyc": "ignored",
        ".git/HEAD": "ignored",
    }


HOOK = "def pytest_configure(config):\n    config.addinivalue_line('markers', 'a: a')\n"
FIXTURE = "import pytest\n\n@pytest.fixture\ndef base():\n    return {}\n"


@pytest.mark.parametrize(
    ("old", "new", "restart"),
    [
        (HOOK + FIXTURE.format(1), HOOK + FIXTURE.format(2), False),  # a fixture: warm
        (HOOK, HOOK.replace("'a: a'", "'b: b'"), True),  # the hook changed
        (HOOK + FIXTURE.format(1), FIXTURE.format(1), True),  # the hook removed
        (FIXTURE.format(1), HOOK + FIXTURE.format(1), True),  # ... or added
        (None, FIXTURE.format(1), False),  # unknown before, nothing structural now
        (None, HOOK, True),  # unknown before: any structural part counts
        (HOOK, "def broken(:\n", False),  # pytest reports the syntax error itself
    ],
)
def test_structural_change(old: str | None, new: str, restart: bool) -> None:
    assert structural_change(old, new) is restart


def test_environment_changes_with_the_branch(tmp_path: Path) -> None:
    head = tmp_path / ".git" / "HEAD"
    head.parent.mkdir()
    head.write_text("ref: refs/heads/main\n")
    before = environment(str(tmp_path))
    assert environment(str(tmp_path)) == before
    head.write_text("ref: refs/heads/feature\n")
    assert environment(str(tmp_path)) != before


def test_import_graph_value_importers(tmp_path: Path) -> None:
    paths = _tree(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/config.py": "RATE = 2\n",
            "pkg/by_name.py": "from pkg.config import RATE\n",
            "pkg/by_relative.py": "from . import config\n\nDOUBLE = config.RATE * 2\n",
            "pkg/by_alias.py": "import pkg.config as cfg\n\nclass Shop:\n    rate = cfg.RATE\n",
            "pkg/default.py": "import pkg.config\n\ndef f(r=pkg.config.RATE):\n    return r\n",
            "pkg/at_call.py": "import pkg.config\n\ndef rate():\n    return pkg.config.RATE\n",
            "pkg/module_only.py": "from pkg import config\n\ndef rate():\n    return config.RATE\n",
            "pkg/second.py": "from pkg.by_name import RATE as R\n",
        },
    )
    graph = ImportGraph(str(tmp_path))
    graph.scan()
    names = {
        Path(p).relative_to(tmp_path).as_posix()
        for p in graph.value_importers([paths["pkg/config.py"]])
    }
    assert names == {
        "pkg/by_name.py",
        "pkg/by_relative.py",
        "pkg/by_alias.py",
        "pkg/default.py",
        "pkg/second.py",  # through by_name, which runs again
    }
