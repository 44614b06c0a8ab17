"""The watcher end to end, through the real watchdog observer (DESIGN §4, §5.6, §5.8)."""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os
import sys
import threading
from pathlib import Path

import pytest

import hotswap

pytestmark = pytest.mark.watcher

TIMEOUT = 10.0


def source(n: int) -> str:
    return f"VALUE = {n}\n\ndef value():\n    return VALUE\n"


def test_watcher_in_place_write(project, watch):
    mod = project.load("live", source(1))
    seen = watch()
    project.path("live").write_text(source(2))
    seen.wait_count(1)
    assert seen.results[0].ok
    assert mod.value() == 2


def test_watcher_same_folder_rename(project, watch):
    mod = project.load("live", source(1))
    seen = watch()
    temp = project.root / ".live.py.swp"
    temp.write_text(source(2))
    os.replace(temp, project.path("live"))
    seen.wait_count(1)
    assert mod.value() == 2


def test_watcher_rename_from_another_folder(project, watch, tmp_path):
    mod = project.load("live", source(1))
    seen = watch()
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "live.py").write_text(source(2))
    os.replace(outside / "live.py", project.path("live"))
    seen.wait_count(1)
    assert mod.value() == 2


def test_watcher_delete_then_create(project, watch):
    mod = project.load("live", source(1))
    seen = watch()
    path = project.path("live")
    path.unlink()
    assert mod.value() == 1  # a deleted file leaves the module running
    path.write_text(source(2))
    seen.wait_count(1)
    assert mod.value() == 2


def test_watcher_burst_applies_the_final_content(project, watch):
    mod = project.load("live", source(1))
    seen = watch()
    path = project.path("live")
    for n in range(2, 22):
        path.write_text(source(n))
    seen.wait_for(lambda results: any(r.ok and mod.value() == 21 for r in results))
    assert mod.value() == 21
    assert all(r.ok for r in seen.results)
    assert len(seen.results) < 20  # coalesced, not one reload per save


def test_watcher_never_executes_a_half_written_file(project, watch):
    mod = project.load("live", source(1))
    seen = watch(debounce=30.0)  # only the close may make the file due
    full = source(2) + "\ndef extra():\n    return 'complete'\n"
    with open(project.path("live"), "w") as handle:
        handle.write(full[:20])  # "VALUE = 2\n\ndef valu": does not even parse
        handle.flush()
        os.fsync(handle.fileno())
        handle.write(full[20:])
    seen.wait_count(1)
    assert [r.ok for r in seen.results] == [True]
    assert mod.extra() == "complete"


def test_watcher_edit_made_during_a_reload_is_not_dropped(project, watch):
    project.load(
        "latch", "import threading\nRELEASE = threading.Event()\nENTERED = threading.Event()\n"
    )
    latch = sys.modules["latch"]
    mod = project.load("live", source(1))
    seen = watch()
    blocking = source(2) + "\nimport latch\nlatch.ENTERED.set()\nlatch.RELEASE.wait(10)\n"
    project.path("live").write_text(blocking)
    assert latch.ENTERED.wait(TIMEOUT)
    project.path("live").write_text(source(3))  # while the reload of version 2 runs
    latch.RELEASE.set()
    seen.wait_for(lambda results: len(results) >= 2 and mod.value() == 3)
    assert mod.value() == 3


def test_watcher_survives_failures_and_callback_errors(project, watch, caplog):
    mod = project.load("live", source(1))
    seen = watch()
    path = project.path("live")
    path.write_text(source(2) + "\nraise SystemExit(1)\n")
    seen.wait_count(1)
    assert not seen.results[0].ok
    assert seen.results[0].rolled_back
    path.write_text(source(3) + "\ndef broken(:\n")
    seen.wait_count(2)
    assert isinstance(seen.results[1].error, hotswap.SourceSyntaxError)
    path.write_text(source(4))
    seen.wait_count(3)
    assert mod.value() == 4


def test_watcher_callback_exception_is_logged(project, caplog):
    mod = project.load("live", source(1))
    done = threading.Event()

    def callback(result: hotswap.ReloadResult) -> None:
        done.set()
        raise RuntimeError("callback bug")

    hotswap.enable([str(project.root)], on_reload=callback)
    try:
        with caplog.at_level(logging.ERROR, logger="hotswap"):
            project.path("live").write_text(source(2))
            assert done.wait(TIMEOUT)
            project.path("live").write_text(source(3))
            watcher_alive = threading.Event()
            hotswap.disable()
            # The new watcher may first apply the save of source(3) it finds at its start:
            # alive means it applied the save made after it.
            hotswap.enable(
                [str(project.root)],
                on_reload=lambda r: mod.value() == 4 and watcher_alive.set(),
            )
            project.path("live").write_text(source(4))
            assert watcher_alive.wait(TIMEOUT)
    finally:
        hotswap.disable()
    assert mod.value() == 4
    assert "callback bug" in caplog.text


def test_watcher_ignores_unchanged_saves_and_unimported_files(project, watch):
    mod = project.load("live", source(1))
    seen = watch()
    project.path("live").write_text(source(2))
    seen.wait_count(1)
    project.path("live").write_text(source(2))  # saved again, same content
    project.write("fresh", source(7))  # a new file nobody imported
    project.path("live").write_text(source(3))  # a control event, after the two above
    seen.wait_count(2)
    assert [r.module for r in seen.results] == ["live", "live"]
    assert mod.value() == 3
    fresh = importlib.import_module("fresh")  # imported now: watched from now on
    project.path("fresh").write_text(source(8))
    seen.wait_count(3)
    assert fresh.value() == 8


def test_watcher_reloads_packages_and_every_module_a_file_backs(project, watch):
    project.write("pkg.mod", source(1))
    pkg = project.load("pkg", "from pkg.mod import value\n")
    mod = sys.modules["pkg.mod"]
    spec = importlib.util.spec_from_file_location("alias_of_mod", project.path("pkg.mod"))
    assert spec is not None
    assert spec.loader is not None
    alias = importlib.util.module_from_spec(spec)
    sys.modules["alias_of_mod"] = alias
    spec.loader.exec_module(alias)
    seen = watch()
    project.path("pkg.mod").write_text(source(2))
    seen.wait_count(2)
    assert {r.module for r in seen.results} == {"pkg.mod", "alias_of_mod"}
    assert mod.value() == alias.value() == pkg.value() == 2
    project.path("pkg").write_text("from pkg.mod import value\nNAME = 'pkg'\n")
    seen.wait_count(3)
    assert pkg.NAME == "pkg"


def test_watcher_refuses_a_symlink_that_leads_outside(project, watch, tmp_path, caplog):
    outside = tmp_path / "outside"
    outside.mkdir()
    target = outside / "secret.py"
    target.write_text(source(1))
    link = project.root / "linked.py"
    link.symlink_to(target)
    mod = importlib.import_module("linked")
    seen = watch()
    refused = threading.Event()

    class Flag(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "refused" in record.getMessage():
                refused.set()

    handler = Flag()
    logging.getLogger("hotswap").addHandler(handler)
    try:
        target.write_text(source(2))
        replacement = project.root / "linked.tmp"
        replacement.symlink_to(target)
        os.replace(replacement, link)  # an event in the watched folder for the link
        assert refused.wait(TIMEOUT)
    finally:
        logging.getLogger("hotswap").removeHandler(handler)
    assert mod.value() == 1
    assert seen.results == []


def test_watcher_polling_observer(project, watch):
    mod = project.load("live", source(1))
    seen = watch(polling=True, debounce=0.05)
    project.path("live").write_text(source(2) + "# longer, so the size changes\n")
    seen.wait_count(1)
    assert mod.value() == 2


def test_enable_is_idempotent_and_disable_joins_its_threads(project):
    first = hotswap.enable([str(project.root)])
    try:
        assert hotswap.enable([str(project.root)]) is first
        names = {t.name for t in threading.enumerate()}
        assert {"hotswap-observer", "hotswap-worker"} <= names
        assert all(t.daemon for t in threading.enumerate() if t.name.startswith("hotswap-"))
        assert hotswap.status().watching
    finally:
        hotswap.disable()
    assert not [t for t in threading.enumerate() if t.name.startswith("hotswap-")]
    assert not hotswap.status().watching
    hotswap.disable()  # a second disable is harmless


def test_enable_default_path_is_the_main_scripts_folder(project, monkeypatch):
    script = project.root / "app.py"
    script.write_text("")
    monkeypatch.setattr(sys.modules["__main__"], "__file__", str(script), raising=False)
    reloader = hotswap.enable()
    try:
        assert reloader.paths == (os.path.realpath(project.root),)
    finally:
        hotswap.disable()


def test_watcher_reads_settings_from_pyproject(project, tmp_path):
    (tmp_path / "pyproject.toml").write_text(
        '[tool.hotswap]\npolicy = "warn"\ndebounce = 0.2\npaths = ["src"]\n'
    )
    reloader = hotswap.enable()
    try:
        assert reloader.settings.policy == "warn"
        assert reloader.settings.debounce == 0.2
        assert reloader.paths == (os.path.realpath(project.root),)
    finally:
        hotswap.disable()
    assert Path.cwd() == tmp_path


def test_watcher_retries_the_same_content_after_a_pin_timeout(project, watch):
    mod = project.load("live", source(1))
    hotswap.configure(pin_timeout=0.01)
    seen = watch()
    with hotswap.pinned():  # holds every reload past its bound
        project.path("live").write_text(source(2))
        seen.wait_count(1)
    assert isinstance(seen.results[0].error, hotswap.PinTimeoutError)
    assert mod.value() == 1
    project.path("live").write_text(source(2))  # the same content, saved again
    seen.wait_count(2)
    assert seen.results[1].ok
    assert mod.value() == 2
