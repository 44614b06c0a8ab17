"""Settings a user can rely on: a bad value names where it came from, a second enable() says
what it kept, and verbose programs started with plain python show the status lines."""

from __future__ import annotations

import dataclasses
import textwrap
from pathlib import Path

import pytest

import hotswap
from hotswap._config import settings as _config
from hotswap.exceptions import ConfigError

# setting -> (a bad value as TOML, a bad value as an environment variable or None where every
# text is valid: a list of paths). The TOML key is written as users may, hyphens included.
BAD = {
    "policy": ("policy", '"loose"', "loose"),
    "history": ("history", "0", "many"),
    "pin_timeout": ("pin-timeout", "-1", "soon"),
    "debounce": ("debounce", '"fast"', "-0.5"),
    "polling": ("polling", "3", "maybe"),
    "paths": ("paths", "3", None),
    "exclude": ("exclude", "[1, 2]", None),
    "switch_interval": ("switch-interval", "-0.001", "nan"),
    "audit": ("audit", "3", "{not json"),
    "require_signature": ("require-signature", '{ keys = ["a.pem"] }', '{"keys": []}'),
    "restart_on_failure": ("restart-on-failure", '"sometimes"', "sometimes"),
    "verbose": ("verbose", "2", "loud"),
    "canary": ("canary", "{ weight = 3 }", '{"weight": 3}'),
    "auto_rollback": ("auto-rollback", "{ window = 0 }", "{not json"),
    "commit_timeout": ("commit-timeout", "0", "later"),
}


def test_reports_every_setting_has_a_bad_value_case():
    assert set(BAD) == {f.name for f in dataclasses.fields(_config.Settings)}


@pytest.mark.parametrize("name", sorted(BAD))
def test_reports_bad_pyproject_value_names_the_file_and_key(tmp_path, name):
    key, toml, _ = BAD[name]
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text(f"[tool.hotswap]\n{key} = {toml}\n")
    with pytest.raises(ConfigError) as raised:
        _config.load(tmp_path, environ={})
    error = raised.value
    assert str(error).startswith(f"{pyproject} [tool.hotswap] {key}"), str(error)
    assert (error.filename, error.key) == (str(pyproject), name)


@pytest.mark.parametrize("name", sorted(n for n, (_, _, env) in BAD.items() if env is not None))
def test_reports_bad_environment_value_names_the_variable(tmp_path, name):
    variable = f"HOTSWAP_{name.upper()}"
    with pytest.raises(ConfigError) as raised:
        _config.load(tmp_path, environ={variable: BAD[name][2]})
    assert str(raised.value).startswith(variable), str(raised.value)
    assert (raised.value.filename, raised.value.key) == (None, name)


def test_reports_good_values_still_load(tmp_path):
    environ = {
        "HOTSWAP_POLLING": "off",
        "HOTSWAP_HISTORY": "3",
        "HOTSWAP_SWITCH_INTERVAL": "0",
        "HOTSWAP_VERBOSE": "1",
        "HOTSWAP_PATHS": "",
    }
    settings = _config.load(tmp_path, environ=environ)
    assert (settings.polling, settings.history, settings.switch_interval) == (False, 3, 0.0)
    assert settings.verbose is True
    assert settings.paths == ()


def test_reports_bad_configure_argument_names_it(project):
    with pytest.raises(ConfigError, match=r"^configure\(debounce=\.\.\.\): 'soon' is not valid"):
        hotswap.configure(debounce="soon")
    assert hotswap.configure(exclude=[Path("gen")], history=3.0).exclude == ("gen",)
    assert hotswap.configure().history == 3


def test_reports_second_enable_with_other_arguments_warns_and_keeps_the_watcher(
    project, watch, tmp_path
):
    watch()
    running = hotswap.enable()  # no arguments: nothing to say
    other = tmp_path / "elsewhere"
    with pytest.warns(hotswap.HotswapWarning) as record:
        again = hotswap.enable([str(other)], policy="warn", debounce=0.05)
    assert again is running
    assert again.paths == (str(project.root),)
    assert again.settings.policy == "strict"
    assert len(record) == 1
    message = str(record[0].message)
    assert "kept as it is" in message
    assert f"paths=['{other}']" in message
    assert "policy='warn' (running: 'strict')" in message
    assert "debounce" not in message  # the same as the running watcher's
    assert record[0].filename == __file__  # points at the call, not at hotswap


def test_reports_second_enable_with_the_same_arguments_is_silent(project, watch):
    collector = watch()
    # pytest runs with filterwarnings=error: a warning here fails the test.
    again = hotswap.enable([str(project.root)], on_reload=collector, policy="strict")
    assert again.running


PROGRAM = """\
import sys
import threading

import hotswap

sys.path.insert(0, {folder!r})
import shop


def done(result):
    print("reloaded", result.module, result.ok, flush=True)


hotswap.enable([{folder!r}], on_reload=done{extra})
print("ready", flush=True)
threading.Event().wait(120)
"""


@pytest.mark.parametrize(
    ("extra", "env"),
    [
        pytest.param(", verbose=True", {}, id="argument"),
        pytest.param("", {"HOTSWAP_VERBOSE": "1"}, id="environment"),
        pytest.param("", {"HOTSWAP_VERBOSE": "0"}, id="off"),
    ],
)
def test_reports_verbose_prints_the_cli_status_lines(tmp_path, python_program, extra, env):
    folder = tmp_path / "app"
    folder.mkdir()
    (folder / "shop.py").write_text("def price():\n    return 1\n")
    program_file = folder / "main.py"
    program_file.write_text(PROGRAM.format(folder=str(folder), extra=extra))
    program = python_program([str(program_file)], tmp_path, env)
    program.expect("ready")
    (folder / "shop.py").write_text(textwrap.dedent("def price():\n    return 2\n"))
    program.expect("reloaded shop True")
    status = [line for line in program.seen if line.startswith("hotswap: shop:")]
    if env.get("HOTSWAP_VERBOSE") == "0":
        assert status == [], program.seen
    else:
        # The line hotswap run prints, before the program heard of the reload.
        assert status, program.seen
        assert status[0].startswith("hotswap: shop: v2 live, ~price (L1-2) ("), status
