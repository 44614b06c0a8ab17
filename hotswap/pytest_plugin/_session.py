"""From pytest's parsed configuration to a running supervisor."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Sequence

import pytest

import hotswap
from hotswap.pytest_plugin._selection import SKIP_DIRS, set_test_patterns
from hotswap.pytest_plugin._supervisor import Options, Supervisor

__all__ = ("run_session", "split_positionals", "worker_arguments")

# Options with a value, owned by the supervisor: the worker never sees them.
_OWN_WITH_VALUE = ("--hotswap-verify", "--hotswap-events")
# Options that choose the first run's tests only: later runs follow the changes.
_FIRST_ONLY = ("--lf", "--last-failed", "--ff", "--failed-first", "--sw", "--stepwise")


def worker_arguments(args: Sequence[str]) -> tuple[list[str], list[str]]:
    """Split the command line into (options for every run, options for the first run), without
    hotswap's own options."""
    every: list[str] = []
    first: list[str] = []
    skip_next = False
    for argument in args:
        if skip_next:
            skip_next = False
            continue
        if argument == "--hotswap":
            continue
        if argument in _OWN_WITH_VALUE:
            skip_next = True
            continue
        if argument.startswith(tuple(f"{o}=" for o in _OWN_WITH_VALUE)):
            continue
        (first if argument in _FIRST_ONLY else every).append(argument)
    return every, first


def split_positionals(args: Sequence[str], positionals: Sequence[str]) -> list[str]:
    """``args`` without the given positional arguments (each removed once, last first)."""
    remaining = list(args)
    for positional in reversed(list(positionals)):
        for index in range(len(remaining) - 1, -1, -1):
            if remaining[index] == positional:
                del remaining[index]
                break
    return remaining


def _watch_paths(root: str) -> list[str]:
    """The project folders (each watched recursively) and its top-level files: environments,
    caches and version control stay unwatched."""
    try:
        entries = sorted(os.scandir(root), key=lambda e: e.name)
    except OSError:
        return [root]
    paths = []
    for entry in entries:
        if entry.name.startswith(".") or entry.name in SKIP_DIRS:
            continue
        if entry.is_dir(follow_symlinks=False):
            if not os.path.exists(os.path.join(entry.path, "pyvenv.cfg")):
                paths.append(entry.path)
        else:
            paths.append(entry.path)
    return paths


def run_session(config: pytest.Config) -> int:
    """Run ``pytest --hotswap`` until the user quits; the exit status reflects the suite.

    Raises:
        pytest.UsageError: combined with options that distribute or loop tests themselves.
    """
    if getattr(config.option, "numprocesses", None) or getattr(config.option, "dist", "no") != (
        "no"
    ):
        message = (
            "--hotswap runs the tests in one warm worker process; it cannot be combined with "
            "-n/--dist (pytest-xdist) yet: drop -n"
        )
        raise pytest.UsageError(message)
    if getattr(config.option, "looponfail", False):
        message = "--hotswap already reruns tests on changes: drop --looponfail (-f)"
        raise pytest.UsageError(message)
    capture = config.pluginmanager.getplugin("capturemanager")
    if capture is not None:
        # pytest's capture holds file descriptors 0-2 from the start; the supervisor owns the
        # terminal and reads keys from the original stdin.
        capture.suspend_global_capture(in_=True)
    set_test_patterns(config.getini("python_files"))
    root = str(config.rootpath)
    cwd = str(config.invocation_params.dir)
    given = config.args_source == pytest.Config.ArgsSource.ARGS
    positionals = list(config.args) if given else []
    every, first = worker_arguments(config.invocation_params.args)
    every = split_positionals(every, positionals)
    # The worker imports pytest's plugins before its first run, so pytest cannot rewrite their
    # asserts and warns about it at configuration time: true of every warm run, worth nothing.
    every += ["-W", "ignore::pytest.PytestAssertRewriteWarning"]
    if sys.stdout.isatty() and not any(a.startswith("--color") for a in every):
        every.append("--color=yes")  # the worker writes to a pipe, the user sees a terminal
    os.environ.setdefault("COLUMNS", str(shutil.get_terminal_size().columns))
    scope = [os.path.abspath(os.path.join(cwd, a.split("::", 1)[0])) for a in config.args]
    watch = _watch_paths(root)
    watch += [os.path.abspath(p) for p in hotswap.configure().paths if p not in watch]
    options = Options(
        root=root,
        cwd=cwd,
        worker_options=every,
        positionals=positionals,
        first_only=first,
        scope=scope,
        watch=watch,
        keep_cwd=os.path.basename(sys.argv[0]) == "__main__.py",
        verify=config.getoption("hotswap_verify"),
        events=config.getoption("hotswap_events"),
    )
    return Supervisor(options).serve()
