"""The plugin's fixtures for users who test reload behaviour: hotswap_module,
hotswap_project, hotswap_watcher."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import pytest

import hotswap


def test_hotswap_module_writes_and_reloads(hotswap_module: Callable[..., Any]) -> None:
    calc = hotswap_module("calc_fixture", "def price():\n    return 1\n")
    price = calc.module.price
    assert calc.version == 1
    result = calc.write("def price():\n    return 2\n")
    assert result.ok
    assert calc.version == 2
    assert price() == 2  # updated in place: identity kept
    assert calc.path.read_text() == "def price():\n    return 2\n"
    assert calc.rollback().ok
    assert calc.module.price() == 1
    assert str(calc.path.parent) in sys.path


def test_hotswap_module_reports_a_failed_reload(hotswap_module: Callable[..., Any]) -> None:
    calc = hotswap_module("pkg_fixture.calc", "X = 1\n", policy="off")
    result = calc.write("X = (\n")
    assert not result.ok
    assert "calc.py" in str(result.error)
    assert calc.module.X == 1


def test_hotswap_project_imports_and_reloads(hotswap_project: Callable[..., Any]) -> None:
    project = hotswap_project({"shop_fixture/__init__.py": "", "shop_fixture/a.py": "RATE = 2\n"})
    module = project.import_module("shop_fixture.a")
    assert module.RATE == 2
    project.write("shop_fixture/a.py", "RATE = 3\n")
    result = project.reload("shop_fixture.a")
    assert isinstance(result, hotswap.ReloadResult)
    assert result.ok
    assert module.RATE == 3
    assert (project.root / "shop_fixture" / "a.py").exists()


@pytest.mark.watcher
def test_hotswap_watcher_waits_for_the_reload(
    hotswap_module: Callable[..., Any], hotswap_watcher: Any
) -> None:
    calc = hotswap_module("watched_fixture", "def f():\n    return 1\n")
    calc.path.write_text("def f():\n    return 2\n")
    result = hotswap_watcher.wait_reload("watched_fixture", timeout=30)
    assert result.ok
    assert calc.module.f() == 2
    with pytest.raises(TimeoutError, match="watched_fixture"):
        hotswap_watcher.wait_reload("watched_fixture", timeout=0.05)


def test_hotswap_fixtures_clean_up_after_the_test(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import sys

        def test_first(hotswap_module, hotswap_project):
            hotswap_module("left_behind", "X = 1")
            hotswap_project({"also_left.py": "Y = 2"}).import_module("also_left")

        def test_second():
            assert "left_behind" not in sys.modules
            assert "also_left" not in sys.modules
            assert not any(p.endswith("hotswap_modules") for p in sys.path)
        """
    )
    result = pytester.runpytest_subprocess("-p", "hotswap")
    result.assert_outcomes(passed=2)
