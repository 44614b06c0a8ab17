"""``pytest --hotswap`` in the situations where peers went stale: after each change the
session's suite (the latest outcome of every test) must equal a fresh ``pytest`` of the same
files. Each test drives a real session by writing files and reading its events file."""

from __future__ import annotations

from typing import Any

HotswapSession = Any  # the fixture's class lives in conftest.py

PYPROJECT = """\
[tool.pytest.ini_options]
testpaths = ["tests"]
pythonpath = ["."]
"""


def _project(session: HotswapSession) -> None:
    session.write("pyproject.toml", PYPROJECT)
    session.write("pkg/__init__.py", "")
    session.write("pkg/config.py", "RATE = 2\n")
    session.write(
        "pkg/calc.py",
        """\
        from pkg.config import RATE

        def price(amount):
            return amount * RATE

        area = price
        """,
    )
    session.write(
        "pkg/heavy.py",
        """\
        def build_table():
            return {n: n * n for n in range(1000)}

        TABLE = build_table()
        """,
    )
    session.write("pkg/state.py", "ITEMS = []\nCOUNT = 0\n")
    session.write(
        "tests/test_calc.py",
        """\
        from pkg import calc

        def test_price():
            assert calc.price(3) == 6

        def test_alias():
            assert calc.area(1) == 2
        """,
    )
    session.write(
        "tests/test_config.py",
        """\
        from pkg.config import RATE

        def test_rate():
            assert RATE == 2
        """,
    )
    session.write(
        "tests/test_heavy.py",
        """\
        from pkg.heavy import TABLE

        def test_table():
            assert TABLE[3] == 9
        """,
    )
    session.write(
        "tests/test_state.py",
        """\
        from pkg import state

        def test_mutates():
            state.ITEMS.append(1)
            state.COUNT += 1
            assert state.ITEMS == [1]
            assert state.COUNT == 1
        """,
    )


def test_pytest_session_first_run_matches_fresh(hotswap_session: HotswapSession) -> None:
    _project(hotswap_session)
    hotswap_session.start()
    run = hotswap_session.next_run()
    assert run["mode"] == "fresh"
    assert run["id"] == 1
    fresh = hotswap_session.assert_matches_fresh()
    assert set(fresh.values()) == {"passed"}
    events = hotswap_session.events()
    assert events[0]["event"] == "watching"  # armed before the first run
    assert hotswap_session.stop() == 0


def test_pytest_session_source_changes_match_fresh(hotswap_session: HotswapSession) -> None:
    _project(hotswap_session)
    hotswap_session.write("pkg/service.py", "from pkg.calc import price\n\nFEE = price(1)\n")
    hotswap_session.write(
        "tests/test_service.py",
        """\
        from pkg.service import FEE

        def test_fee():
            assert FEE == 2
        """,
    )
    hotswap_session.start()
    hotswap_session.next_run()

    # a constant, read by a source module (by value) and by a test directly
    hotswap_session.write("pkg/config.py", "RATE = 3\n")
    run = hotswap_session.next_run("pkg/config.py")
    assert run["mode"] == "warm"
    fresh = hotswap_session.assert_matches_fresh()
    assert fresh["tests/test_config.py::test_rate"] == "failed"
    assert fresh["tests/test_calc.py::test_price"] == "failed"
    # selection by the import graph: the heavy table's tests do not depend on the config
    assert "tests/test_heavy.py::test_table" not in run["selected"]

    # a renamed function with an alias kept for callers
    hotswap_session.write("pkg/config.py", "RATE = 2\n")
    hotswap_session.write(
        "pkg/calc.py",
        """\
        from pkg.config import RATE

        def cost(amount):
            return amount * RATE

        price = cost
        area = cost
        """,
    )
    hotswap_session.next_run("pkg/config.py", "pkg/calc.py")
    assert set(hotswap_session.assert_matches_fresh().values()) == {"passed"}

    # a function deleted while a test still calls it
    hotswap_session.write(
        "pkg/calc.py",
        """\
        from pkg.config import RATE

        def cost(amount):
            return amount * RATE

        area = cost
        """,
    )
    hotswap_session.next_run("pkg/calc.py")
    fresh = hotswap_session.assert_matches_fresh()
    assert fresh["tests/test_calc.py::test_price"] == "failed"
    assert fresh["tests/test_service.py"] == "error"  # its import of the name fails

    # a heavy module's table
    hotswap_session.write(
        "pkg/heavy.py",
        """\
        def build_table():
            return {n: n * n * n for n in range(1000)}

        TABLE = build_table()
        """,
    )
    run = hotswap_session.next_run("pkg/heavy.py")
    assert run["selected"] == ["tests/test_heavy.py::test_table"]
    fresh = hotswap_session.assert_matches_fresh()
    assert fresh["tests/test_heavy.py::test_table"] == "failed"


def test_pytest_session_syntax_error_is_a_collection_error(
    hotswap_session: HotswapSession,
) -> None:
    _project(hotswap_session)
    hotswap_session.start()
    hotswap_session.next_run()

    hotswap_session.write("pkg/config.py", "RATE = (\n")
    run = hotswap_session.next_run("pkg/config.py")
    # never tests on old code: the collection error a fresh run gives, exit status 2
    assert run["exitstatus"] == 2
    assert run["outcomes"]["tests/test_config.py"] == "error"
    assert "tests/test_config.py::test_rate" not in run["outcomes"]
    reloads = [e for e in hotswap_session.events() if e["event"] == "reload"]
    assert reloads[-1]["module"] == "pkg.config"
    assert reloads[-1]["ok"] is False
    assert "pkg/config.py" in reloads[-1]["error"]
    hotswap_session.assert_matches_fresh()
    assert "ERROR collecting tests/test_config.py" in hotswap_session.output()

    hotswap_session.write("pkg/config.py", "RATE = 2\n")
    run = hotswap_session.next_run("pkg/config.py")
    assert run["exitstatus"] == 0
    assert set(hotswap_session.assert_matches_fresh().values()) == {"passed"}


def test_pytest_session_tests_and_fixtures_match_fresh(hotswap_session: HotswapSession) -> None:
    _project(hotswap_session)
    hotswap_session.write(
        "tests/conftest.py",
        """\
        import pytest

        @pytest.fixture(scope="session")
        def base():
            return 10
        """,
    )
    hotswap_session.write(
        "tests/test_fixture.py",
        """\
        def test_base(base):
            assert base == 10
        """,
    )
    hotswap_session.start()
    hotswap_session.next_run()

    # a changed assertion, with pytest's rewritten message showing the new operands
    hotswap_session.write(
        "tests/test_fixture.py",
        """\
        def test_base(base):
            assert base == 11
        """,
    )
    run = hotswap_session.next_run("tests/test_fixture.py")
    assert run["selected"] == ["tests/test_fixture.py::test_base"]
    hotswap_session.assert_matches_fresh()
    assert "assert 10 == 11" in hotswap_session.output()

    # a session fixture changed: every test under its conftest reruns
    hotswap_session.write(
        "tests/conftest.py",
        """\
        import pytest

        @pytest.fixture(scope="session")
        def base():
            return 11
        """,
    )
    run = hotswap_session.next_run("tests/conftest.py")
    assert "tests/test_calc.py::test_price" in run["selected"]
    assert hotswap_session.assert_matches_fresh()["tests/test_fixture.py::test_base"] == "passed"

    # ... and raising
    hotswap_session.write(
        "tests/conftest.py",
        """\
        import pytest

        @pytest.fixture(scope="session")
        def base():
            raise RuntimeError("no base today")
        """,
    )
    hotswap_session.next_run("tests/conftest.py")
    assert hotswap_session.assert_matches_fresh()["tests/test_fixture.py::test_base"] == "error"

    # a new test, in a new file and in an existing one
    hotswap_session.write(
        "tests/test_new.py",
        """\
        from pkg.calc import price

        def test_new():
            assert price(1) == 2
        """,
    )
    hotswap_session.write(
        "tests/test_heavy.py",
        """\
        from pkg.heavy import TABLE

        def test_table():
            assert TABLE[3] == 9

        def test_table_size():
            assert len(TABLE) == 999
        """,
    )
    hotswap_session.next_run("tests/test_new.py", "tests/test_heavy.py")
    fresh = hotswap_session.assert_matches_fresh()
    assert fresh["tests/test_new.py::test_new"] == "passed"
    assert fresh["tests/test_heavy.py::test_table_size"] == "failed"

    # module state a test mutated is reset before the next run
    hotswap_session.write(
        "tests/test_state.py",
        """\
        from pkg import state

        def test_mutates():
            state.ITEMS.append(1)
            state.COUNT += 1
            assert state.ITEMS == [1]
            assert state.COUNT == 1  # touched
        """,
    )
    hotswap_session.next_run("tests/test_state.py")
    assert hotswap_session.assert_matches_fresh()["tests/test_state.py::test_mutates"] == "passed"

    # ... also when the module changed too
    hotswap_session.write("pkg/state.py", "ITEMS = []\nCOUNT = 0\nEXTRA = 1\n")
    hotswap_session.next_run("pkg/state.py")
    assert hotswap_session.assert_matches_fresh()["tests/test_state.py::test_mutates"] == "passed"


def test_pytest_session_restarts_when_warm_cannot_follow(
    hotswap_session: HotswapSession,
) -> None:
    _project(hotswap_session)
    hotswap_session.write("pkg/data.txt", "5\n")
    hotswap_session.write(
        "pkg/loader.py",
        """\
        from pathlib import Path

        VALUE = int((Path(__file__).parent / "data.txt").read_text())
        """,
    )
    hotswap_session.write(
        "tests/test_loader.py",
        """\
        from pkg.loader import VALUE

        def test_value():
            assert VALUE == 5
        """,
    )
    hotswap_session.start()
    first = hotswap_session.next_run()

    # a data file read at import
    hotswap_session.write("pkg/data.txt", "6\n")
    run = hotswap_session.next_run("pkg/data.txt")
    restarts = [e for e in hotswap_session.events() if e["event"] == "restart"]
    assert "data file" in restarts[-1]["reason"]
    assert run["mode"] == "fresh"
    assert run["worker_pid"] != first["worker_pid"]
    assert hotswap_session.assert_matches_fresh()["tests/test_loader.py::test_value"] == "failed"

    # the pytest configuration
    hotswap_session.write(
        "pyproject.toml", PYPROJECT + 'addopts = ["-k", "not test_value and not test_alias"]\n'
    )
    hotswap_session.next_run("pyproject.toml")
    restarts = [e for e in hotswap_session.events() if e["event"] == "restart"]
    assert "configuration" in restarts[-1]["reason"]
    fresh = hotswap_session.assert_matches_fresh()
    assert "tests/test_loader.py::test_value" not in fresh


def test_pytest_session_save_during_a_run_supersedes_it(
    hotswap_session: HotswapSession,
) -> None:
    _project(hotswap_session)
    gate = hotswap_session.root / "gate"
    hotswap_session.write(
        "tests/test_slow.py",
        f"""\
        import time
        from pathlib import Path

        from pkg.config import RATE

        def test_waits():
            Path({str(gate)!r} + ".started").touch()
            deadline = time.monotonic() + 60
            while not Path({str(gate)!r}).exists() and time.monotonic() < deadline:
                time.sleep(0.01)
            assert RATE == 2

        def test_after():
            assert RATE == 2
        """,
    )
    hotswap_session.start()
    started = hotswap_session.root / "gate.started"
    hotswap_session.wait_for(lambda _: started.exists(), "the slow test to start")
    hotswap_session.write("pkg/config.py", "RATE = 3\n")
    hotswap_session.wait_for(
        lambda events: any(e["event"] == "change" for e in events), "the change to be seen"
    )
    gate.touch()
    run = hotswap_session.next_run("pkg/config.py")
    runs = hotswap_session.runs()
    assert runs[0]["final"] is False  # reported, and marked superseded
    assert run["final"] is True
    fresh = hotswap_session.assert_matches_fresh()
    assert fresh["tests/test_slow.py::test_after"] == "failed"


def test_pytest_session_change_set_over_several_files(hotswap_session: HotswapSession) -> None:
    _project(hotswap_session)
    hotswap_session.write("pkg/b.py", "from pkg.calc import price\n\nTWO = price(1)\n")
    hotswap_session.write(
        "tests/test_b.py",
        """\
        from pkg.b import TWO

        def test_two():
            assert TWO == 2
        """,
    )
    hotswap_session.start()
    hotswap_session.next_run()
    # a refactoring: a new function, and an importer using it at import, saved together
    hotswap_session.write(
        "pkg/calc.py",
        """\
        from pkg.config import RATE

        def price(amount):
            return amount * RATE

        def doubled(amount):
            return 2 * price(amount)

        area = price
        """,
    )
    hotswap_session.write("pkg/b.py", "from pkg.calc import doubled\n\nTWO = doubled(1)\n")
    hotswap_session.next_run("pkg/calc.py", "pkg/b.py")
    fresh = hotswap_session.assert_matches_fresh()
    assert fresh["tests/test_b.py::test_two"] == "failed"
