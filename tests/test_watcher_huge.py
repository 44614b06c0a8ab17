"""A huge file is read ahead of its reload, off the watcher's worker: other files saved
meanwhile apply at once, and the files that name the huge module wait for it (issue 26)."""

from __future__ import annotations

import threading

import pytest

import hotswap
from hotswap._engine import ahead as _ahead
from hotswap._engine import history as _history
from hotswap._watch.changeset import HUGE_SOURCE

pytestmark = pytest.mark.watcher

TIMEOUT = 10.0


def huge(value: int, extra: str = "") -> str:
    pad = "x" * 1000
    lines = [f"S{i} = '{pad}{value}'" for i in range(HUGE_SOURCE // 1000 + 20)]
    text = "\n".join(lines) + f"\n\n\ndef value():\n    return {value}\n{extra}"
    assert len(text.encode()) >= HUGE_SOURCE
    return text


def small(value: int) -> str:
    return f"VALUE = {value}\n\n\ndef value():\n    return VALUE\n"


@pytest.fixture
def held(monkeypatch):
    """The read ahead waits for ``release`` once ``started``: the test decides when it ends."""
    started, release = threading.Event(), threading.Event()
    prepare = _ahead.prepare

    def waiting(target: str, data: bytes) -> bool:
        started.set()
        assert release.wait(TIMEOUT)
        return prepare(target, data)

    monkeypatch.setattr(_ahead, "prepare", waiting)
    try:
        yield started, release
    finally:
        release.set()


def test_huge_file_does_not_hold_back_another_save(project, watch, held):
    started, release = held
    big = project.load("big", huge(0))
    other = project.load("other", small(0))
    seen = watch()
    project.path("big").write_text(huge(1))
    project.path("other").write_text(small(1))
    # The other module applies while the huge one is still being read.
    seen.wait_for(lambda results: any(r.module == "other" for r in results))
    assert started.wait(TIMEOUT)
    assert [r.module for r in seen.results] == ["other"]
    assert seen.results[0].ok, seen.results[0].error
    assert other.value() == 1
    assert big.value() == 0
    release.set()
    seen.wait_for(lambda results: any(r.module == "big" for r in results))
    result = next(r for r in seen.results if r.module == "big")
    assert result.ok, result.error
    assert big.value() == 1
    assert big.S3.endswith("1")


def test_file_naming_the_huge_module_waits_for_it(project, watch, held):
    started, release = held
    project.load("big", huge(0))
    user = project.load("user", "import big\n\nTOTAL = big.value()\n")
    seen = watch()
    # user needs the new big (NEW): applied before it, it would fail.
    project.path("big").write_text(huge(1, "\nNEW = 41\n"))
    project.path("user").write_text("from big import NEW\n\nTOTAL = NEW + 1\n")
    assert started.wait(TIMEOUT)
    assert seen.results == []
    release.set()
    seen.wait_for(lambda results: {r.module for r in results} >= {"big", "user"})
    assert all(r.ok for r in seen.results), seen.results
    assert user.TOTAL == 42


def test_reload_takes_the_parse_read_ahead(project, parses):
    module = project.load("ahead", small(0))
    data = small(1).encode()
    assert _ahead.prepare("ahead", data)
    assert _history.is_prepared(data)
    parsed = parses.start()
    project.path("ahead").write_bytes(data)
    result = hotswap.reload("ahead")
    assert result.ok, result.error
    assert module.value() == 1
    assert small(1) not in parsed
    assert not _history.is_prepared(data)  # taken once


def test_read_ahead_of_a_broken_file_leaves_the_reload_to_report_it(project):
    project.load("broken", small(0))
    assert not _ahead.prepare("broken", b"def value(:\n")
    project.path("broken").write_text("def value(:\n")
    result = hotswap.reload("broken")
    assert not result.ok
    assert isinstance(result.error, hotswap.SourceSyntaxError)
