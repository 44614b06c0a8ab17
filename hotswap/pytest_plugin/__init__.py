"""The pytest plugin: ``pytest --hotswap`` reruns the affected tests in a warm process after
each save, and the fixtures ``hotswap_module``, ``hotswap_project`` and ``hotswap_watcher``.

Registered through the ``pytest11`` entry point ``hotswap``, so it loads in every pytest run
where hotswap is installed; it does nothing unless ``--hotswap`` is given or a fixture is
requested, and importing it imports neither watchdog nor any worker machinery.

How a session keeps results true to the disk (docs/pytest.md has the user's view):

- a supervisor (the ``pytest`` process the user started) owns the terminal, the keys and the
  file watcher; it decides which tests a change set affects from a static import graph of the
  project and drives one warm worker process, plus a fresh standby for restarts and
  verification (``_supervisor.py``, ``_process.py``, ``_selection.py``);
- the worker (``_worker.py``) reloads changed source modules with policy ``"off"``, drops test
  modules and conftests so pytest collects (and rewrites) them again, drops a module whose reload
  failed so collection reports the error a fresh run reports, resets module state tests mutated
  (``force=True``) and clears ``functools`` caches before each run;
- what a warm process cannot follow (pytest configuration, conftest hooks that act before
  collection, data files, C extensions, installed packages, the checked-out branch) restarts
  the worker, saying why.
"""

from __future__ import annotations

from typing import Any

import pytest

from hotswap.pytest_plugin._fixtures import (
    ModuleHandle,
    ProjectHandle,
    WatcherHandle,
    hotswap_module,
    hotswap_project,
    hotswap_watcher,
)

__all__ = (
    "ModuleHandle",
    "ProjectHandle",
    "WatcherHandle",
    "hotswap_module",
    "hotswap_project",
    "hotswap_watcher",
    "pytest_addoption",
    "pytest_cmdline_main",
)


def pytest_addoption(parser: pytest.Parser) -> None:
    """Register the ``hotswap`` option group."""
    group = parser.getgroup("hotswap", "hot reloading (hotswap)")
    group.addoption(
        "--hotswap",
        action="store_true",
        default=False,
        help="run the tests, then watch the project and rerun the affected tests in a warm "
        "process after each save, until Ctrl-C or q.",
    )
    group.addoption(
        "--hotswap-verify",
        choices=("idle", "always", "off"),
        default="idle",
        help="replay the last selection in a fresh process and compare per test: once saving "
        "stops (idle, the default), after every run (always), or never (off).",
    )
    group.addoption(
        "--hotswap-events",
        metavar="FILE",
        default=None,
        help="write one JSON object a line to FILE for every change, reload, restart, run and "
        "verification.",
    )


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config: pytest.Config) -> Any:
    """With ``--hotswap``, run the watch session instead of a single test session."""
    if not config.getoption("hotswap", default=False):
        return None
    from hotswap.pytest_plugin._session import run_session

    return run_session(config)
