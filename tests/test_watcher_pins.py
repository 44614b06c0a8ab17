"""A save refused because pinned sections stayed past ``pin_timeout`` applies by itself once they
leave, through the real watcher; a newer save made meanwhile wins (DESIGN §5.7, §5.8)."""

from __future__ import annotations

import importlib
import logging
import sys
import threading

import pytest

import hotswap
from hotswap._engine import transaction as _transaction
from hotswap._watch import pinretry as _pinretry

pytestmark = pytest.mark.watcher

TIMEOUT = 10.0


def source(n: int) -> str:
    # Each version's own statement records that it ran: an older content applied late shows.
    return (
        f"import record\n\nVALUE = {n}\nrecord.SEEN.append({n})\n\ndef value():\n    return VALUE\n"
    )


def enters_at_once() -> bool:
    """Whether a new pinned section, in another thread, enters without waiting for a reload."""
    entered: list[bool] = []

    def request() -> None:
        try:
            with hotswap.pinned(timeout=0):
                entered.append(True)
        except hotswap.PinTimeoutError:
            entered.append(False)

    thread = threading.Thread(target=request)
    thread.start()
    thread.join(TIMEOUT)
    return entered == [True]


def test_watcher_applies_a_save_refused_by_a_pinned_section_once_it_leaves(project, watch, caplog):
    project.load("record", "SEEN = []\n")
    mod = project.load("live", source(1))
    hotswap.configure(pin_timeout=0.05)
    seen = watch()
    with caplog.at_level(logging.INFO, logger="hotswap"), hotswap.pinned():  # a long request
        project.path("live").write_text(source(2))
        seen.wait_count(1)
        assert isinstance(seen.results[0].error, hotswap.PinTimeoutError), seen.results
        assert mod.value() == 1
        # Waiting for the section to leave holds no new request off.
        assert enters_at_once()
    # No further save: the section left, the save applies.
    seen.wait_count(2)
    assert seen.results[1].ok, seen.results[1].error
    assert seen.results[1].version == 2
    assert mod.value() == 2
    assert sys.modules["record"].SEEN == [1, 2]
    path = str(project.path("live"))
    said = [r.getMessage() for r in caplog.records if r.name.startswith("hotswap")]
    assert any(path in m and "pinned sections" in m for m in said), said


def test_watcher_newer_save_during_a_pin_wait_wins(project, watch):
    project.load("record", "SEEN = []\n")
    mod = project.load("live", source(1))
    hotswap.configure(pin_timeout=0.05)
    seen = watch()
    with hotswap.pinned():
        project.path("live").write_text(source(2))
        seen.wait_count(1)
        project.path("live").write_text(source(3))  # saved again while the first waits
        seen.wait_count(2)
        assert all(isinstance(r.error, hotswap.PinTimeoutError) for r in seen.results)
    seen.wait_for(lambda results: any(r.ok for r in results))
    assert mod.value() == 3
    # A save after it: the watcher's worker is serial, so whatever was handed back before it
    # came has been applied by the time it is live.
    project.path("live").write_text(source(4))
    seen.wait_for(lambda results: mod.value() == 4)
    assert sys.modules["record"].SEEN == [1, 3, 4]  # the older content never ran
    assert [r.ok for r in seen.results] == [False, False, True, True], seen.results


def test_watcher_gives_a_refused_save_back_when_the_file_is_saved_as_before(project, watch):
    # Saving the very content that was refused, by hand, while it waits: it applies once.
    project.load("record", "SEEN = []\n")
    mod = project.load("live", source(1))
    hotswap.configure(pin_timeout=0.05)
    seen = watch()
    with hotswap.pinned():
        project.path("live").write_text(source(2))
        seen.wait_count(1)
    project.path("live").write_text(source(2))
    seen.wait_for(lambda results: any(r.ok for r in results))
    project.path("live").write_text(source(3))
    seen.wait_for(lambda results: mod.value() == 3)
    assert sys.modules["record"].SEEN == [1, 2, 3]


def test_watcher_reruns_a_data_files_readers_refused_by_a_pinned_section(project, datafiles, watch):
    data = project.root / "rates.json"
    data.write_text('{"a": 1}')
    project.write(
        "rates_user",
        "import json\nimport pathlib\n\n"
        "RATES = json.loads((pathlib.Path(__file__).parent / 'rates.json').read_text())\n",
    )
    seen = watch()
    hotswap.configure(pin_timeout=0.05)
    module = importlib.import_module("rates_user")  # imported while watching: its read counts
    with hotswap.pinned():
        data.write_text('{"a": 2}')
        seen.wait_count(1)
        assert isinstance(seen.results[0].error, hotswap.PinTimeoutError), seen.results
        assert module.RATES == {"a": 1}
    seen.wait_count(2)  # no further save
    assert seen.results[1].ok, seen.results[1].error
    assert module.RATES == {"a": 2}


def test_watcher_retries_refused_files_as_one_change_set(project, watch, monkeypatch):
    sets: list[list[str]] = []
    real = _transaction.reload_many

    def recording(
        entries: list[tuple[str, bytes | None]], *, policy: str | None = None
    ) -> list[hotswap.ReloadResult]:
        sets.append(sorted(name for name, _ in entries))
        return real(entries, policy=policy)

    monkeypatch.setattr(_transaction, "reload_many", recording)
    project.load("record", "SEEN = []\n")
    first = project.load("first", source(1))
    second = project.load("second", source(1))
    hotswap.configure(pin_timeout=0.05)
    seen = watch()
    with hotswap.pinned():
        project.path("first").write_text(source(2))
        project.path("second").write_text(source(2))
        seen.wait_for(lambda results: {"first", "second"} <= {r.module for r in results})
        assert all(isinstance(r.error, hotswap.PinTimeoutError) for r in seen.results)
    seen.wait_for(lambda results: first.value() == second.value() == 2)
    assert sets[-1] == ["first", "second"]


def test_watcher_disable_while_a_refused_save_waits_stops_the_wait(project, watch):
    project.load("record", "SEEN = []\n")
    mod = project.load("live", source(1))
    hotswap.configure(pin_timeout=0.05)
    seen = watch()
    with hotswap.pinned():
        project.path("live").write_text(source(2))
        seen.wait_count(1)
        hotswap.disable()  # returns though the section that held the save off stays
        assert not [t for t in threading.enumerate() if t.name.startswith("hotswap-")]
    assert mod.value() == 1
    assert len(seen.results) == 1


def test_watcher_gives_up_on_a_save_pinned_sections_keep_off_and_says_so(
    project, watch, monkeypatch
):
    monkeypatch.setattr(_pinretry, "GIVE_UP", 0.2)  # the section outlasts the bound
    said: list[logging.LogRecord] = []
    logged = threading.Condition()

    class Waiter(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            with logged:
                said.append(record)
                logged.notify_all()

    handler = Waiter(logging.INFO)
    logger = logging.getLogger("hotswap")
    saved = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    try:
        project.load("record", "SEEN = []\n")
        mod = project.load("live", source(1))
        hotswap.configure(pin_timeout=0.05)
        seen = watch()
        path = str(project.path("live"))
        with hotswap.pinned():
            project.path("live").write_text(source(2))
            with logged:
                assert logged.wait_for(
                    lambda: any("given up" in r.getMessage() for r in said), TIMEOUT
                ), [r.getMessage() for r in said]
        gave_up = next(r for r in said if "given up" in r.getMessage())
        assert gave_up.levelno == logging.WARNING
        assert path in gave_up.getMessage()
        seen.wait_count(1)
        assert isinstance(seen.results[0].error, hotswap.PinTimeoutError), seen.results
        assert mod.value() == 1
        project.path("live").write_text(source(2))  # saving it again tries again
        seen.wait_count(2)
        assert seen.results[1].ok, seen.results[1].error
        assert sys.modules["record"].SEEN == [1, 2]
    finally:
        logger.removeHandler(handler)
        logger.setLevel(saved)
