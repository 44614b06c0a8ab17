"""The pytest plugin's surface: options, inertness, keys, scoping, verification, restarts."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from typing import Any

import pytest

HotswapSession = Any  # the fixture's class lives in conftest.py

PYPROJECT = """\
[tool.pytest.ini_options]
testpaths = ["tests"]
pythonpath = ["."]
"""


def _project(session: HotswapSession) -> None:
    session.write("pyproject.toml", PYPROJECT)
    session.write("pkg/__init__.py", "")
    session.write("pkg/a.py", "def one():\n    return 1\n")
    session.write("pkg/b.py", "def two():\n    return 2\n")
    session.write(
        "tests/test_a.py",
        """\
        from pkg.a import one

        def test_one():
            assert one() == 1

        def test_one_again():
            assert one() == 1
        """,
    )
    session.write(
        "tests/test_b.py",
        """\
        from pkg.b import two

        def test_two():
            assert two() == 2

        def test_two_fails():
            assert two() == 3
        """,
    )


def test_pytest_plugin_is_inert_without_the_option(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_plain="def test_ok():\n    assert True\n")
    result = pytester.runpytest_subprocess("-p", "hotswap")
    result.assert_outcomes(passed=1)
    assert "hotswap" not in result.stdout.str().replace("hotswap-0.1.0", "")


def test_pytest_plugin_import_costs_no_watcher() -> None:
    code = (
        "import sys, hotswap.pytest_plugin; "
        "print(sorted(m for m in sys.modules if m.startswith(('watchdog', "
        "'hotswap.pytest_plugin._s', 'hotswap.pytest_plugin._w'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_pytest_plugin_options_are_in_a_hotswap_group(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_subprocess("--help")
    text = result.stdout.str()
    assert "hot reloading (hotswap):" in text
    for option in ("--hotswap ", "--hotswap-verify", "--hotswap-events"):
        assert option in text


def test_pytest_plugin_n_is_a_usage_error(pytester: pytest.Pytester) -> None:
    # pytest-xdist is not a dependency: a conftest declares its -n option as xdist does.
    pytester.makeconftest(
        """
        def pytest_addoption(parser):
            parser.getgroup("xdist")._addoption("-n", dest="numprocesses", default=None)
        """
    )
    pytester.makepyfile(test_plain="def test_ok():\n    pass\n")
    result = pytester.runpytest_subprocess("--hotswap", "-n", "2")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--hotswap*-n*(pytest-xdist)*"])


def test_pytest_plugin_keys_run_all_failed_and_quit(hotswap_session: HotswapSession) -> None:
    _project(hotswap_session)
    hotswap_session.start()
    first = hotswap_session.next_run()
    assert first["suite"] == {"passed": 3, "failed": 1, "error": 0, "skipped": 0, "pending": 0}
    assert "[hotswap] suite: 3 passed, 1 failed" in hotswap_session.output()

    hotswap_session.key("f")
    run = hotswap_session.next_run()
    assert run["files"] == ["tests/test_b.py"]
    assert run["mode"] == "warm"

    hotswap_session.key("a")
    run = hotswap_session.next_run()
    assert run["files"] is None
    assert len(run["selected"]) == 4

    hotswap_session.key("r")
    run = hotswap_session.next_run()
    assert run["mode"] == "fresh"
    assert run["worker_pid"] != first["worker_pid"]
    restart = [e for e in hotswap_session.events() if e["event"] == "restart"]
    assert restart[-1]["reason"] == "asked for with the r key"

    assert hotswap_session.stop() == 1  # the suite has a failure


def test_pytest_plugin_selection_follows_the_import_graph(
    hotswap_session: HotswapSession,
) -> None:
    _project(hotswap_session)
    hotswap_session.start()
    hotswap_session.next_run()
    hotswap_session.write("pkg/b.py", "def two():\n    return 3\n")
    run = hotswap_session.next_run("pkg/b.py")
    assert run["files"] == ["tests/test_b.py"]
    assert run["outcomes"] == {
        "tests/test_b.py::test_two": "failed",
        "tests/test_b.py::test_two_fails": "passed",
    }
    hotswap_session.assert_matches_fresh()


def test_pytest_plugin_k_scopes_the_session(hotswap_session: HotswapSession) -> None:
    _project(hotswap_session)
    hotswap_session.start("-k", "one_again or two_fails")
    first = hotswap_session.next_run()
    assert sorted(first["selected"]) == [
        "tests/test_a.py::test_one_again",
        "tests/test_b.py::test_two_fails",
    ]
    hotswap_session.write("pkg/a.py", "def one():\n    return 11\n")
    run = hotswap_session.next_run("pkg/a.py")
    assert run["selected"] == ["tests/test_a.py::test_one_again"]
    hotswap_session.assert_matches_fresh("-k", "one_again or two_fails")


def test_pytest_plugin_x_leaves_unreached_tests_pending(hotswap_session: HotswapSession) -> None:
    _project(hotswap_session)
    hotswap_session.write("pkg/a.py", "def one():\n    return 0\n")
    hotswap_session.start("-x", "tests/test_a.py")
    run = hotswap_session.next_run()
    assert run["outcomes"] == {"tests/test_a.py::test_one": "failed"}
    assert run["suite"]["pending"] == 1  # test_one_again was not reached: never "passed"
    assert "1 pending" in hotswap_session.output()


def test_pytest_plugin_lf_starts_from_the_failing_set(hotswap_session: HotswapSession) -> None:
    _project(hotswap_session)
    hotswap_session.pytester.runpytest_subprocess()  # leaves test_two_fails in lastfailed
    hotswap_session.start("--lf")
    first = hotswap_session.next_run()
    assert first["selected"] == ["tests/test_b.py::test_two_fails"]
    hotswap_session.write("pkg/a.py", "def one():\n    return 1  # edited\n")
    run = hotswap_session.next_run("pkg/a.py")
    assert sorted(run["outcomes"]) == [
        "tests/test_a.py::test_one",
        "tests/test_a.py::test_one_again",
    ]
    hotswap_session.stop()
    cache = hotswap_session.root / ".pytest_cache" / "v" / "cache" / "lastfailed"
    assert "tests/test_b.py::test_two_fails" in cache.read_text()  # still true


@pytest.mark.parametrize("verify", ["idle", "always"])
def test_pytest_plugin_verify_replays_in_a_fresh_process(
    hotswap_session: HotswapSession, verify: str
) -> None:
    _project(hotswap_session)
    hotswap_session.start(verify=verify)
    run = hotswap_session.next_run()
    events = hotswap_session.wait_for(
        lambda events: any(e["event"] == "verify" for e in events), "a verification"
    )
    verify = next(e for e in events if e["event"] == "verify")
    assert (verify["match"], verify["mismatches"]) == (True, [])
    assert run["final"] is True
    assert "| verified |" in hotswap_session.output()


def test_pytest_plugin_conftest_hook_change_restarts(hotswap_session: HotswapSession) -> None:
    _project(hotswap_session)
    hotswap_session.write(
        "tests/conftest.py",
        """\
        def pytest_configure(config):
            config.addinivalue_line("markers", "slow: slow tests")
        """,
    )
    hotswap_session.start()
    hotswap_session.next_run()
    # a fixture added beside the hook: applied warm
    hotswap_session.write(
        "tests/conftest.py",
        """\
        import pytest

        def pytest_configure(config):
            config.addinivalue_line("markers", "slow: slow tests")

        @pytest.fixture
        def extra():
            return 1
        """,
    )
    run = hotswap_session.next_run("tests/conftest.py")
    assert run["mode"] == "warm"
    assert not [e for e in hotswap_session.events() if e["event"] == "restart"]
    # the hook itself changed: a fresh worker
    hotswap_session.write(
        "tests/conftest.py",
        """\
        def pytest_configure(config):
            config.addinivalue_line("markers", "fast: fast tests")
        """,
    )
    run = hotswap_session.next_run("tests/conftest.py")
    restart = [e for e in hotswap_session.events() if e["event"] == "restart"]
    assert "tests/conftest.py changed a hook" in restart[-1]["reason"]
    assert run["mode"] == "fresh"


def test_pytest_plugin_events_have_the_documented_fields(
    hotswap_session: HotswapSession,
) -> None:
    _project(hotswap_session)
    hotswap_session.start()
    hotswap_session.next_run()
    hotswap_session.write("pkg/a.py", "def one():\n    return 1\n\nX = 1\n")
    hotswap_session.next_run("pkg/a.py")
    events = hotswap_session.events()
    kinds = [e["event"] for e in events]
    assert kinds[0] == "watching"
    change = next(e for e in events if e["event"] == "change")
    assert change["files"] == [str(hotswap_session.root / "pkg" / "a.py")]
    reload = next(e for e in events if e["event"] == "reload")
    assert {"module", "ok", "version", "error"} <= set(reload)
    assert (reload["module"], reload["ok"], reload["version"]) == ("pkg.a", True, 2)
    for run in (e for e in events if e["event"] == "run"):
        assert {"id", "mode", "worker_pid", "selected", "outcomes", "final", "suite"} <= set(run)
        assert set(run["suite"]) == {"passed", "failed", "error", "skipped", "pending"}
        assert isinstance(run["duration"], float)


def test_pytest_plugin_clears_functools_caches(hotswap_session: HotswapSession) -> None:
    _project(hotswap_session)
    hotswap_session.write("pkg/config.py", "RATE = 2\n")
    hotswap_session.write(
        "pkg/cached.py",
        """\
        import functools
        import importlib

        @functools.cache
        def rate():
            # looked up at call time: no import edge ties this module to pkg.config
            return importlib.import_module("pkg.config").RATE
        """,
    )
    hotswap_session.write(
        "tests/test_cached.py",
        """\
        import pkg.config
        from pkg.cached import rate

        def test_rate():
            assert rate() == 2
        """,
    )
    hotswap_session.start()
    hotswap_session.next_run()
    hotswap_session.write("pkg/config.py", "RATE = 3\n")
    run = hotswap_session.next_run("pkg/config.py")
    assert run["outcomes"] == {"tests/test_cached.py::test_rate": "failed"}
    hotswap_session.assert_matches_fresh()


def test_pytest_plugin_follows_custom_python_files(hotswap_session: HotswapSession) -> None:
    _project(hotswap_session)
    hotswap_session.write("pyproject.toml", PYPROJECT + 'python_files = ["check_*.py"]\n')
    hotswap_session.write(
        "tests/check_a.py",
        """\
        from pkg.a import one

        def test_checked():
            assert one() == 1
        """,
    )
    hotswap_session.start()
    first = hotswap_session.next_run()
    assert first["selected"] == ["tests/check_a.py::test_checked"]
    hotswap_session.write("pkg/a.py", "def one():\n    return 5\n")
    run = hotswap_session.next_run("pkg/a.py")
    assert run["outcomes"] == {"tests/check_a.py::test_checked": "failed"}
    hotswap_session.assert_matches_fresh()


@pytest.mark.skipif(sys.platform == "win32", reason="pseudo-terminals are POSIX")
def test_pytest_plugin_reads_single_keys_from_a_terminal(hotswap_session: HotswapSession) -> None:
    _project(hotswap_session)
    hotswap_session.start(terminal=True)
    hotswap_session.next_run()
    hotswap_session.key("a")  # no Enter: the terminal is in cbreak mode
    run = hotswap_session.next_run()
    assert run["files"] is None
    hotswap_session.key("q")
    assert hotswap_session.process.wait(90) == 1


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT to a process is POSIX")
def test_pytest_plugin_ctrl_c_ends_the_session_and_its_workers(
    hotswap_session: HotswapSession,
) -> None:
    _project(hotswap_session)
    hotswap_session.start()
    run = hotswap_session.next_run()
    hotswap_session.process.send_signal(signal.SIGINT)
    assert hotswap_session.process.wait(90) == 1
    assert "[hotswap] interrupted" in hotswap_session.output()
    with pytest.raises(ProcessLookupError):
        os.kill(run["worker_pid"], 0)


def test_pytest_plugin_resets_lazily_imported_modules(hotswap_session: HotswapSession) -> None:
    _project(hotswap_session)
    hotswap_session.write("pkg/lazy.py", "SEEN = []\n")
    test = """\
        import importlib

        def test_lazy_module():
            lazy = importlib.import_module("pkg.lazy")  # imported while tests run
            lazy.SEEN.append(1)
            assert lazy.SEEN == [1]
        """
    hotswap_session.write("tests/test_lazy.py", test)
    hotswap_session.start()
    hotswap_session.next_run()
    for round_ in range(2):
        hotswap_session.write("tests/test_lazy.py", test + f"# round {round_}\n")
        run = hotswap_session.next_run("tests/test_lazy.py")
        assert run["outcomes"] == {"tests/test_lazy.py::test_lazy_module": "passed"}
    hotswap_session.assert_matches_fresh()


def test_pytest_plugin_resets_class_attributes(hotswap_session: HotswapSession) -> None:
    _project(hotswap_session)
    hotswap_session.write("pkg/settings.py", "class Config:\n    value = 1\n")
    test = """\
        from pkg.settings import Config

        def test_class_attribute():
            assert Config.value == 1
            Config.value = 2
        """
    hotswap_session.write("tests/test_settings.py", test)
    hotswap_session.start()
    hotswap_session.next_run()
    for round_ in range(2):
        hotswap_session.write("tests/test_settings.py", test + f"# round {round_}\n")
        run = hotswap_session.next_run("tests/test_settings.py")
        assert run["outcomes"] == {"tests/test_settings.py::test_class_attribute": "passed"}


def test_pytest_plugin_selection_follows_a_changed_configuration(
    hotswap_session: HotswapSession,
) -> None:
    _project(hotswap_session)
    hotswap_session.write(
        "checks/check_a.py",
        """\
        from pkg.a import one

        def test_checked():
            assert one() == 1
        """,
    )
    hotswap_session.start()
    hotswap_session.next_run()
    hotswap_session.write(
        "pyproject.toml",
        PYPROJECT.replace('["tests"]', '["checks"]') + 'python_files = ["check_*.py"]\n',
    )
    run = hotswap_session.next_run("pyproject.toml")
    assert run["selected"] == ["checks/check_a.py::test_checked"]
    hotswap_session.write("pkg/a.py", "def one():\n    return 5\n")
    run = hotswap_session.next_run("pkg/a.py")
    assert run["outcomes"] == {"checks/check_a.py::test_checked": "failed"}
    hotswap_session.assert_matches_fresh()
