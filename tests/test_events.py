"""The events API (hotswap.subscribe) and structured log records."""

from __future__ import annotations

import copy
import json
import logging
import pickle
import subprocess
import sys
import textwrap

import pytest

import hotswap
from hotswap._ops import events as _events

SHOP = textwrap.dedent(
    """
    RATE = 2

    def price(amount):
        return amount * RATE
    """
)


def test_subscribe_hears_the_plan_then_the_result(project, events):
    project.load("shop", SHOP)
    first = project.reload("shop", SHOP.replace("RATE = 2", "RATE = 3"))
    # The second plan compares with a source hotswap has seen, so it knows what changed
    # before anything runs (the first compares with live objects).
    result = project.reload("shop", SHOP.replace("RATE = 2", "RATE = 4"))
    assert first.ok
    assert result.ok
    assert [type(e) for e in events.seen] == [hotswap.Planned, hotswap.ReloadResult] * 2
    planned = events.seen[2]
    assert planned.module == "shop"
    assert planned.version == 2
    assert planned.changes.changed == ("RATE",)
    assert events.seen[3] is result
    assert result.version == 3


def test_subscribe_returns_the_function_that_stops_it(project):
    project.load("shop", SHOP)
    seen: list[hotswap.Event] = []
    unsubscribe = hotswap.subscribe(seen.append)
    assert project.reload("shop", SHOP.replace("RATE = 2", "RATE = 3")).ok
    heard = len(seen)
    unsubscribe()
    unsubscribe()  # a second call is harmless
    assert project.reload("shop", SHOP.replace("RATE = 2", "RATE = 4")).ok
    assert heard == 2
    assert len(seen) == heard


def test_subscribe_rejected_change_is_a_result_without_a_plan(project, events):
    project.load("shop", SHOP)
    result = project.reload("shop", SHOP + "\ndef broken(:\n")
    assert not result.ok
    assert events.seen == [result]
    assert _events.outcome(result) == "rejected"


def test_subscribe_failed_execution_reports_the_rollback_and_why(project, events):
    project.load("shop", SHOP)
    result = project.reload("shop", SHOP + "\nraise RuntimeError('boom')\n")
    assert result.rolled_back
    kinds = [type(e) for e in events.seen]
    assert kinds == [hotswap.Planned, hotswap.RolledBack, hotswap.ReloadResult]
    rolled = events.seen[1]
    assert (rolled.module, rolled.version, rolled.reason) == ("shop", 1, "error")
    assert "RuntimeError: boom" in rolled.error
    assert _events.outcome(result) == "rolled_back"


def test_subscribe_failed_verification_reports_reason_verification(project, events):
    project.load("shop", SHOP)
    failing = SHOP + "\ndef __hotswap_verify__():\n    raise AssertionError('unhealthy')\n"
    assert not project.reload("shop", failing).ok
    assert [e.reason for e in events.of(hotswap.RolledBack)] == ["verification"]


def test_subscribe_requested_rollback(project, events):
    project.load("shop", SHOP)
    assert project.reload("shop", SHOP.replace("RATE = 2", "RATE = 3")).ok
    result = hotswap.rollback("shop")
    assert result.ok
    rolled = events.of(hotswap.RolledBack)
    assert [(e.module, e.version, e.reason) for e in rolled] == [("shop", 1, "requested")]
    assert events.seen[-1] is result
    assert result.kind == "rollback"


def test_subscribe_listener_errors_are_logged_not_raised(project, caplog):
    project.load("shop", SHOP)

    def broken(event: hotswap.Event) -> None:
        raise ValueError("listener bug")

    unsubscribe = hotswap.subscribe(broken)
    try:
        with caplog.at_level(logging.ERROR, logger="hotswap"):
            result = project.reload("shop", SHOP.replace("RATE = 2", "RATE = 3"))
    finally:
        unsubscribe()
    assert result.ok
    assert any("listener bug" in (r.exc_text or "") for r in caplog.records)


def test_results_only_listeners_still_hear_results_only(project, events):
    project.load("shop", SHOP)
    seen: list[object] = []
    _events.subscribe(seen.append)
    try:
        result = project.reload("shop", SHOP.replace("RATE = 2", "RATE = 3"))
    finally:
        _events.unsubscribe(seen.append)
    assert seen == [result]
    assert len(events.seen) == 2


EVENTS = [
    hotswap.ChangeDetected("/src/shop.py", ("shop",), "ab" * 32, time=1.5),
    hotswap.Planned("shop", 3, hotswap.Changes(changed=("price",)), ("a warning",)),
    hotswap.RolledBack("shop", 2, "error", "shop (shop.py:4): RuntimeError: boom"),
    hotswap.CanaryDecision("shop", "abort", 4, 0.0, "error rate", {"candidate": {"calls": 9}}),
    hotswap.CanaryCall("shop", "candidate", ok=False, duration=0.25),
    hotswap.WatcherState("started", ("/src",)),
]


@pytest.mark.parametrize("event", EVENTS, ids=lambda e: type(e).__name__)
def test_event_to_dict_is_json_and_names_the_event(event):
    data = event.to_dict()
    assert data["event"] == event.event
    assert json.loads(json.dumps(data)) == data
    assert set(vars(event)) <= set(data)
    assert pickle.loads(pickle.dumps(event)) == event
    assert copy.deepcopy(event) == event


def test_event_result_to_dict_is_json(project, events):
    project.load("shop", SHOP)
    project.reload("shop", SHOP.replace("RATE = 2", "RATE = 3"))
    for event in events.seen:
        json.dumps(event.to_dict())


def test_log_records_carry_the_result_as_fields(project, caplog):
    project.load("shop", SHOP)
    with caplog.at_level(logging.INFO, logger="hotswap"):
        result = project.reload("shop", SHOP.replace("RATE = 2", "RATE = 3"))
        failed = project.reload("shop", SHOP + "\nraise RuntimeError('boom')\n")
    records = [r for r in caplog.records if getattr(r, "hotswap_event", None) == "result"]
    assert len(records) == 2
    applied, rolled = records
    assert applied.hotswap_module == "shop"
    assert applied.hotswap_version == result.version == 2
    assert applied.hotswap_outcome == "applied"
    assert applied.hotswap_duration == result.duration
    assert applied.levelno == logging.INFO
    assert rolled.hotswap_outcome == "rolled_back"
    assert rolled.hotswap_version == failed.version == 2
    assert rolled.levelno == logging.WARNING


def test_log_records_reach_a_json_formatter_as_fields(project):
    class JsonFormatter(logging.Formatter):
        def format(self, record: logging.LogRecord) -> str:
            fields = {k: v for k, v in vars(record).items() if k.startswith("hotswap_")}
            return json.dumps({"message": record.getMessage(), **fields})

    lines: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(self.format(record))

    handler = Collect()
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("hotswap")
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.INFO)
    try:
        project.load("shop", SHOP)
        project.reload("shop", SHOP.replace("RATE = 2", "RATE = 3"))
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    parsed = [json.loads(line) for line in lines]
    assert {
        "hotswap_event": "result",
        "hotswap_module": "shop",
        "hotswap_version": 2,
        "hotswap_outcome": "applied",
    }.items() <= parsed[-1].items()


@pytest.mark.watcher
def test_subscribe_hears_the_watcher_and_the_detected_change(project, events):
    project.load("live", "VALUE = 1\n")
    hotswap.enable([str(project.root)])
    try:
        events.wait_for(lambda e: bool(e.of(hotswap.WatcherState)))
        project.path("live").write_text("VALUE = 2\n")
        events.wait_for(lambda e: bool(e.of(hotswap.ReloadResult)))
    finally:
        hotswap.disable()
    kinds = [type(e) for e in events.seen]
    assert kinds == [
        hotswap.WatcherState,
        hotswap.ChangeDetected,
        hotswap.Planned,
        hotswap.ReloadResult,
        hotswap.WatcherState,
    ]
    started, detected, *_, stopped = events.seen
    assert started.state == "started"
    assert started.up
    assert str(project.root.resolve()) in started.paths
    assert detected.modules == ("live",)
    assert detected.path == str(project.path("live"))
    assert stopped.state == "stopped"
    assert not stopped.up


def test_import_hotswap_imports_no_optional_dependency(tmp_path):
    # A fresh interpreter: this one has imported them for other tests. The reload path (a
    # reload, a rollback) must not import them either while nothing asks for them.
    (tmp_path / "shop.py").write_text("RATE = 2\n")
    code = textwrap.dedent(
        """
        import pathlib, sys
        import hotswap
        import shop
        pathlib.Path("shop.py").write_text("RATE = 3\\n")
        assert hotswap.reload("shop").ok
        assert hotswap.rollback("shop").ok
        optional = ("prometheus_client", "opentelemetry", "cryptography")
        print(sorted(m for m in sys.modules if m.split(".")[0] in optional))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_summary_of_a_huge_change_counts_past_the_first_names():
    changes = hotswap.Changes(
        added=("new",),
        changed=tuple(f"f{i}" for i in range(30)),
        removed=("gone",),
        lines={"new": (1, 1), "f0": (2, 3)},
    )
    text = changes.summary()
    assert text.startswith("+new (L1), ~f0 (L2-3), ~f1, ")
    assert text.endswith(", ~f18, and 12 more")  # 20 names shown, of 32
    assert "gone" not in text
    assert hotswap.Changes(removed=("gone",)).summary() == "-gone (removed)"
