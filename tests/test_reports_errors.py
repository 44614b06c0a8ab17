"""Errors a user can act on: where an exception raised deeper came from, undecodable and binary
files, deleted files, and warnings that point at the user's line."""

from __future__ import annotations

import logging
import os
import sys
import warnings

import pytest

import hotswap
from hotswap.exceptions import ExecutionError, ModuleNotReloadableError

HELPER = """\
import json


def load(text):
    return parse(text)


def parse(text):
    return json.loads(text)
"""

APP = """\
import helper

CONFIG = helper.load('{"rate": 2}')
"""


def test_reports_deep_exception_names_the_deepest_project_line(project, caplog):
    project.load("helper", HELPER)
    project.load("app", APP)
    with caplog.at_level(logging.DEBUG, logger="hotswap"):
        result = project.reload("app", APP.replace('{"rate": 2}', "{rate: 2}"))
    error = result.error
    assert isinstance(error, ExecutionError)
    assert (error.filename, error.lineno) == (str(project.path("app")), 3)
    # The helper's line that called json, not json's own frames, nor hotswap's.
    helper = os.path.relpath(project.path("helper"))
    assert f"(raised at {helper}:9)" in str(error)
    assert "json" + os.sep not in str(error)
    assert isinstance(error.__cause__, ValueError)
    # The traceback is in the log, down to the frame that raised.
    logged = [r for r in caplog.records if r.exc_info and r.exc_info[1] is error.__cause__]
    assert logged, caplog.text
    assert 'helper.py", line 9, in parse' in caplog.text


def test_reports_exception_in_the_module_itself_names_no_other_place(project):
    project.load("app", "X = 1\n")
    result = project.reload("app", "def f():\n    return 1 / 0\n\n\nX = f()\n")
    assert result.error is not None
    assert result.error.lineno == 2  # the deepest line of the file: inside f()
    assert "raised at" not in str(result.error)


@pytest.mark.parametrize(
    ("content", "line"),
    [
        pytest.param(b"X = 1\nY = 2\n# caf\xe9 \xff\n", 3, id="not-utf8"),
        pytest.param(b"X = 1\n\x00\x01\x02\x7fELF\x00", 2, id="binary"),
        pytest.param(b"# -*- coding: nope -*-\nX = 1\n", 1, id="unknown-coding"),
    ],
)
def test_reports_undecodable_file_names_the_file_and_line(project, content, line):
    app = project.load("app", "X = 1\n")
    project.path("app").write_bytes(content)
    result = hotswap.reload("app")
    error = result.error
    assert isinstance(error, ModuleNotReloadableError)
    assert (error.filename, error.lineno) == (str(project.path("app")), line)
    assert f"app ({os.path.relpath(project.path('app'))}:{line}): " in str(error)
    assert app.X == 1


def test_reports_deleted_file_is_reported_once(project, watch, watcher_log, caplog):
    app = project.load("app", "X = 1\n")
    project.load("other", "Y = 1\n")
    collector = watch()
    with caplog.at_level(logging.INFO, logger="hotswap"):
        project.path("app").unlink()
        watcher_log.wait_for("the file was deleted")
        # The watcher goes on: a later save of another file is applied, and nothing more is
        # said about the deleted one.
        project.write("other", "Y = 2\n")
        collector.wait_for(lambda results: any(r.module == "other" for r in results))
    said = [r for r in caplog.records if "was deleted" in r.getMessage()]
    assert len(said) == 1, caplog.text
    assert said[0].levelno == logging.WARNING
    assert "app (" in said[0].getMessage()
    assert "keeps running" in said[0].getMessage()
    assert app.X == 1


def test_reports_deleted_file_that_comes_back_is_not_reported(project, watch, watcher_log, caplog):
    project.load("app", "X = 1\n")
    collector = watch()
    path = project.path("app")
    with caplog.at_level(logging.INFO, logger="hotswap"):
        # An editor that saves by moving the old file away and writing a new one.
        path.rename(path.with_suffix(".py~"))
        path.write_text("X = 2\n")
        collector.wait_for(lambda results: any(r.module == "app" and r.ok for r in results))
    assert not [r for r in caplog.records if "was deleted" in r.getMessage()], caplog.text


BREAKING = "def charge(amount):\n    return amount\n"


def test_reports_warn_policy_warning_points_at_the_users_line_once(project, watch, caplog):
    project.load("shop", "def charge(amount, currency):\n    return amount\n")
    # The block is entered before the watcher starts: its filters are the ones the watcher's
    # thread warns under on every build (see the rule below and docs/limits.md).
    with warnings.catch_warnings(record=True) as caught, caplog.at_level(logging.DEBUG, "hotswap"):
        warnings.simplefilter("always")
        collector = watch(policy="warn")
        project.write("shop", BREAKING)
        collector.wait_for(lambda results: any(r.module == "shop" for r in results))
    result = collector.results[-1]
    assert result.ok, result.error
    ours = [w for w in caught if issubclass(w.category, hotswap.HotswapWarning)]
    assert len(ours) == 1
    assert (ours[0].filename, ours[0].lineno) == (str(project.path("shop")), 1)
    assert "parameter 'currency' removed" in str(ours[0].message)
    # The log says a warning was applied, without repeating it (at any level).
    assert "parameter 'currency' removed" not in caplog.text
    assert "applied with 1 compatibility warning" in caplog.text


# The rule for policy="warn" (docs/limits.md): a reload warns in the thread that runs it, under
# the warnings filters that thread sees. hotswap.reload() runs in its caller's thread; the
# watcher's reloads run in its own thread, which on builds with context-aware warnings (the
# free-threaded builds' default) keeps the filters in force where enable() started it: a
# catch_warnings() block entered later in another thread does not reach it. An "error" filter
# the reload meets turns the warning into a rejection.
CONTEXT_AWARE = bool(getattr(sys.flags, "context_aware_warnings", 0))


def _shop_changed(project, collector):
    project.write("shop", BREAKING)
    collector.wait_for(lambda results: any(r.module == "shop" for r in results))
    return collector.results[-1]


def test_reports_warn_policy_error_filter_where_the_watcher_started_rejects(project, watch):
    project.load("shop", "def charge(amount, currency):\n    return amount\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error", hotswap.HotswapWarning)
        collector = watch(policy="warn")
        result = _shop_changed(project, collector)
    assert not result.ok
    assert isinstance(result.error, hotswap.IncompatibleChangeError)
    assert "HotswapWarning is an error here" in str(result.error)


def test_reports_warn_policy_reload_warns_in_the_callers_filters(project):
    project.load("shop", "def charge(amount, currency):\n    return amount\n")
    project.write("shop", BREAKING)
    with warnings.catch_warnings():
        warnings.simplefilter("error", hotswap.HotswapWarning)
        result = hotswap.reload("shop", policy="warn")
    assert not result.ok
    assert isinstance(result.error, hotswap.IncompatibleChangeError)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = hotswap.reload("shop", policy="warn")
    assert result.ok, result.error
    assert [str(w.message) for w in caught if w.category is hotswap.HotswapWarning]


@pytest.mark.skipif(
    not CONTEXT_AWARE,
    reason="warnings filters are process-wide on this build (sys.flags.context_aware_warnings "
    "is off): a block in any thread applies to the watcher's thread too",
)
def test_reports_warn_policy_block_entered_after_enable_does_not_reach_the_watcher(project, watch):
    project.load("shop", "def charge(amount, currency):\n    return amount\n")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", hotswap.HotswapWarning)
        collector = watch(policy="warn")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("error", hotswap.HotswapWarning)
        result = _shop_changed(project, collector)
    assert result.ok, result.error  # applied: the watcher's thread ignores HotswapWarning
    assert result.warnings  # the result still says what was applied anyway
    assert not [w for w in caught if w.category is hotswap.HotswapWarning]
