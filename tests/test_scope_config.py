"""The watch scope, the module index, and settings (pyproject.toml, HOTSWAP_*, arguments)."""

from __future__ import annotations

import os
import sys
import sysconfig

import pytest

import hotswap
from hotswap._config import settings as _config
from hotswap._engine.gil import gil_enabled
from hotswap._plan.modules import ModuleIndex, Scope


def test_scope_contains_files_under_roots_only(tmp_path):
    inside, outside = tmp_path / "in", tmp_path / "out"
    inside.mkdir()
    outside.mkdir()
    (inside / "a.py").write_text("")
    (outside / "b.py").write_text("")
    (inside / "link.py").symlink_to(outside / "b.py")
    scope = Scope([str(inside)])
    assert scope.contains(str(inside / "a.py"))
    assert not scope.contains(str(outside / "b.py"))
    assert not scope.contains(str(inside / "link.py"))  # resolves outside


def test_scope_never_reaches_stdlib_or_site_packages_unless_named(tmp_path):
    stdlib_file = os.path.join(sysconfig.get_paths()["stdlib"], "json", "__init__.py")
    assert not Scope([os.path.dirname(sysconfig.get_paths()["stdlib"])]).contains(stdlib_file)
    assert Scope([os.path.dirname(stdlib_file)]).contains(stdlib_file)


def test_scope_exclude_patterns(tmp_path):
    (tmp_path / "gen").mkdir()
    (tmp_path / "gen" / "x.py").write_text("")
    scope = Scope([str(tmp_path)], exclude=("*/gen/*",))
    assert not scope.contains(str(tmp_path / "gen" / "x.py"))


def test_scope_watches_a_plain_project_in_one_recursive_watch(tmp_path):
    (tmp_path / "pkg").mkdir()
    assert Scope([str(tmp_path)]).watches() == [(os.path.realpath(tmp_path), True)]


def test_scope_does_not_walk_a_virtual_environment(project):
    root = project.root
    (root / ".venv" / "lib").mkdir(parents=True)
    (root / ".venv" / "pyvenv.cfg").write_text("")
    project.load("app.core", "X = 1\n")
    real = os.path.realpath(root)
    assert Scope([str(root)]).watches() == [(real, False), (os.path.join(real, "app"), True)]


def test_module_index_finds_every_module_a_file_backs(project):
    module = project.load("indexed", "X = 1\n")
    index = ModuleIndex()
    index.refresh()
    assert index.modules_for(module.__file__) == ["indexed"]
    fresh = project.load("later", "Y = 1\n")  # imported after the index was built
    assert index.modules_for(fresh.__file__) == ["later"]
    assert index.modules_for(str(project.root / "never.py")) == []


def test_switch_interval_is_shortened_while_watching_and_restored(project):
    saved = sys.getswitchinterval()
    sys.setswitchinterval(0.005)
    try:
        hotswap.enable([str(project.root)])
        if gil_enabled():
            assert sys.getswitchinterval() <= 0.001
        else:  # no GIL: no thread waits for one, the program's interval is left alone
            assert sys.getswitchinterval() == pytest.approx(0.005)
        hotswap.disable()
        assert sys.getswitchinterval() == pytest.approx(0.005)
        hotswap.configure(switch_interval=0)
        hotswap.enable([str(project.root)])
        assert sys.getswitchinterval() == pytest.approx(0.005)
    finally:
        hotswap.disable()
        sys.setswitchinterval(saved)


def test_settings_precedence_pyproject_environment_arguments(tmp_path):
    (tmp_path / "pyproject.toml").write_text(
        "[tool.hotswap]\npolicy = 'warn'\nhistory = 4\npin-timeout = 2.5\n"
    )
    nested = tmp_path / "deep" / "er"
    nested.mkdir(parents=True)
    loaded = _config.load(nested, environ={})
    assert (loaded.policy, loaded.history, loaded.pin_timeout) == ("warn", 4, 2.5)
    loaded = _config.load(nested, environ={"HOTSWAP_POLICY": "off", "HOTSWAP_POLLING": "yes"})
    assert loaded.policy == "off"
    assert loaded.polling is True


def test_settings_reject_bad_values_with_their_source(tmp_path):
    with pytest.raises(ValueError, match="HOTSWAP_HISTORY"):
        _config.load(tmp_path, environ={"HOTSWAP_HISTORY": "many"})
    with pytest.raises(ValueError, match="HOTSWAP_POLICY: 'lenient' is not valid: expected one of"):
        _config.load(tmp_path, environ={"HOTSWAP_POLICY": "lenient"})
    with pytest.raises(TypeError, match="unknown setting"):
        hotswap.configure(colour="blue")


def test_settings_warn_about_unknown_pyproject_keys(tmp_path, caplog):
    (tmp_path / "pyproject.toml").write_text("[tool.hotswap]\ncolour = 'blue'\n")
    _config.load(tmp_path, environ={})
    assert "unknown setting [tool.hotswap] colour" in caplog.text
