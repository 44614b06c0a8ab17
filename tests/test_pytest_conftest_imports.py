"""``pytest --hotswap`` when an edit breaks a module that ``conftest.py`` imports (issue 24.4):
the session reports pytest's own error, without hotswap's frames, and goes on until a save
fixes it."""

from __future__ import annotations

import re
from typing import Any

import pytest

HotswapSession = Any  # the fixture's class lives in conftest.py

PYPROJECT = """\
[tool.pytest.ini_options]
testpaths = ["tests"]
pythonpath = ["."]
"""

HELPERS = """\
def make_cart():
    return ["apple"]
"""

BREAKS = {
    "syntax error": "def make_cart(:\n    return []\n",
    "exception at import": "raise RuntimeError('broken at import')\n",
    "a removed function another module uses": "def other():\n    return []\n",
}


def _project(session: HotswapSession) -> None:
    session.write("pyproject.toml", PYPROJECT)
    session.write("pkg/__init__.py", "")
    session.write("pkg/helpers.py", HELPERS)
    session.write("pkg/shop.py", "from pkg.helpers import make_cart\n\nCART = make_cart\n")
    session.write(
        "tests/conftest.py",
        """\
        import pytest

        from pkg.shop import CART

        @pytest.fixture
        def cart():
            return CART()
        """,
    )
    session.write(
        "tests/test_cart.py",
        """\
        def test_cart(cart):
            assert cart == ["apple"]
        """,
    )


@pytest.mark.parametrize("kind", sorted(BREAKS))
def test_pytest_session_survives_a_broken_conftest_import(
    hotswap_session: HotswapSession, kind: str
) -> None:
    _project(hotswap_session)
    hotswap_session.start()
    assert hotswap_session.next_run()["exitstatus"] == 0

    hotswap_session.write("pkg/helpers.py", BREAKS[kind])
    run = hotswap_session.next_run("pkg/helpers.py")
    # What a fresh run reports: pytest's own conftest error (exit status 4); no test ran.
    assert run["exitstatus"] == 4
    assert run["outcomes"] == {"tests/conftest.py": "error"}
    output = hotswap_session.output()
    assert "ImportError while loading conftest" in output
    assert "ending the session" not in output
    # No frame of hotswap's own in the user's traceback (its loader sat in every import).
    assert not re.search(r"hotswap/(\w+/)*\w+\.py:\d+: in ", output), output

    hotswap_session.write("pkg/helpers.py", HELPERS.replace("apple", "pear"))
    run = hotswap_session.next_run("pkg/helpers.py")
    assert run["outcomes"] == {"tests/test_cart.py::test_cart": "failed"}
    hotswap_session.write("pkg/helpers.py", HELPERS)
    run = hotswap_session.next_run("pkg/helpers.py")
    assert run["exitstatus"] == 0
    assert run["outcomes"] == {"tests/test_cart.py::test_cart": "passed"}
    assert hotswap_session.stop() == 0
