"""The watcher loses nothing and executes nothing half-written; change sets (DESIGN §5.3, §5.8,
§5.10). End to end, through the real watchdog observer."""

from __future__ import annotations

import contextlib
import importlib
import os
import subprocess
import sys
import threading
from collections.abc import Iterator

import pytest

import hotswap
from hotswap._watch import changeset as _changeset

pytestmark = pytest.mark.watcher

TIMEOUT = 10.0


def source(n: int) -> str:
    return f"VALUE = {n}\n\ndef value():\n    return VALUE\n"


@contextlib.contextmanager
def busy_thread() -> Iterator[None]:
    """A CPU-bound thread, as behind a busy program: the watcher's threads wait for the GIL."""
    stop = threading.Event()

    def spin() -> None:
        while not stop.is_set():
            sum(i * i for i in range(2000))

    thread = threading.Thread(target=spin, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def latch(project) -> object:
    """A module whose events hold a reload open until the test releases it."""
    return project.load(
        "latch", "import threading\nRELEASE = threading.Event()\nENTERED = threading.Event()\n"
    )


BLOCKING = "\nimport latch\nlatch.ENTERED.set()\nlatch.RELEASE.wait(10)\n"


def probe(project, seen) -> None:
    """Save the ``probe`` module and wait for its reload: the worker has then dealt with every
    file that was due before (a half-written file a time-based guess took for complete)."""
    count = sum(r.module == "probe" for r in seen.results)
    project.path("probe").write_text(f"VALUE = {count + 2}\n")
    seen.wait_for(lambda results: sum(r.module == "probe" for r in results) > count)


# --- defect 1: half-written files, renames from elsewhere -------------------------------------


def test_watcher_slow_creator_behind_a_busy_thread_is_read_once_complete(
    project, watch, watcher_log
):
    mod = project.load("live", source(1))
    project.load("probe", "VALUE = 1\n")
    seen = watch(debounce=0.0)  # no time-based grace can save a half file here
    path = project.path("live")
    path.unlink()
    full = source(2) + "\ndef extra():\n    return 'complete'\n"
    head = full.index("def value")  # a statement boundary: the head alone parses
    with busy_thread():
        with open(path, "xb") as handle:
            handle.write(full[:head].encode())
            handle.flush()
            watcher_log.wait_for("writing", str(path))  # the watcher saw the half file
            probe(project, seen)  # ... and the worker had its chance to read it
            handle.write(full[head:].encode())
        seen.wait_for(lambda results: any(r.module == "live" for r in results))
    assert [r.ok for r in seen.results if r.module == "live"] == [True]
    assert mod.extra() == "complete"
    assert mod.value() == 2


def test_watcher_truncated_file_is_not_executed_with_debounce_zero(project, watch, watcher_log):
    mod = project.load("live", source(1))
    project.load("probe", "VALUE = 1\n")
    seen = watch(debounce=0.0)
    path = project.path("live")
    with open(path, "w") as handle:  # truncated: what an in-place save leaves for a moment
        handle.flush()
        watcher_log.wait_for("writing", str(path))
        probe(project, seen)
        handle.write(source(2))
    seen.wait_for(lambda results: any(r.module == "live" for r in results))
    assert [r.ok for r in seen.results if r.module == "live"] == [True]
    assert mod.value() == 2


def test_watcher_polling_never_executes_a_truncated_file(
    project, watch, watcher_log, monkeypatch: pytest.MonkeyPatch
):
    # An empty file that stays empty and quiet for half a second is taken as meant; on a
    # loaded machine the probe below can take that long, so here it never counts as meant.
    monkeypatch.setattr(_changeset, "EMPTY_SETTLE", 60.0)
    mod = project.load("live", source(1))
    project.load("probe", "VALUE = 1\n")
    seen = watch(polling=True, debounce=0.0)  # no closes reported: settling is all there is
    path = project.path("live")
    with open(path, "w") as handle:
        handle.flush()
        watcher_log.wait_for("writing", str(path))  # a poll saw the empty file
        probe(project, seen)
        handle.write(source(2) + "# longer, so a poll sees the size change\n")
    seen.wait_for(lambda results: any(r.module == "live" for r in results))
    assert [r.ok for r in seen.results if r.module == "live"] == [True]
    assert mod.value() == 2


def test_watcher_rename_from_another_folder_is_complete_at_once(project, watch, tmp_path):
    mod = project.load("live", source(1))
    seen = watch(debounce=60.0)  # a settled guess would wait a minute: the rename is a fact
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "live.py").write_text(source(2))
    os.replace(outside / "live.py", project.path("live"))
    seen.wait_count(1)
    assert mod.value() == 2


def test_watcher_hard_link_made_in_place_is_complete_at_once(project, watch, tmp_path):
    mod = project.load("live", source(1))
    seen = watch(debounce=60.0)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "live.py").write_text(source(2))
    project.path("live").unlink()
    os.link(outside / "live.py", project.path("live"))
    seen.wait_count(1)
    assert mod.value() == 2


def test_watcher_burst_of_in_place_saves_gives_a_couple_of_reloads(project, watch):
    mod = project.load("live", source(1))
    seen = watch()
    path = project.path("live")
    for n in range(2, 22):
        path.write_text(source(n))
    seen.wait_for(lambda results: any(r.ok and mod.value() == 21 for r in results))
    assert all(r.ok and r.changes.removed == () for r in seen.results)
    assert len(seen.results) <= 3


# --- defect 2: a folder reached through a symlink ---------------------------------------------


def test_watcher_watches_a_folder_reached_through_a_symlink(project, watch, tmp_path, monkeypatch):
    real = tmp_path / "real"
    real.mkdir()
    (real / "linkedmod.py").write_text(source(1))
    link = tmp_path / "link"
    link.symlink_to(real, target_is_directory=True)
    monkeypatch.syspath_prepend(str(link))
    importlib.invalidate_caches()
    mod = importlib.import_module("linkedmod")
    try:
        assert mod.__file__ == str(link / "linkedmod.py")
        seen = watch([str(link)])
        (link / "linkedmod.py").write_text(source(2))
        seen.wait_count(1)
        assert seen.results[0].ok
        assert mod.value() == 2
    finally:
        sys.modules.pop("linkedmod", None)


# --- defect 3: KeyboardInterrupt from module code ---------------------------------------------


def test_watcher_keyboard_interrupt_reaches_on_reload_and_drops_no_edit(project, watch):
    gate = latch(project)
    project.load("live", source(1))
    first = project.load("first", source(1))
    second = project.load("second", source(1))
    seen = watch()
    project.path("live").write_text(source(2) + BLOCKING)
    assert gate.ENTERED.wait(TIMEOUT)  # type: ignore[attr-defined]
    # Both saved while the worker is busy: they are due together, one change set.
    project.path("first").write_text(source(2) + "\nraise KeyboardInterrupt\n")
    project.path("second").write_text(source(2))
    gate.RELEASE.set()  # type: ignore[attr-defined]
    seen.wait_for(lambda results: {"first", "second"} <= {r.module for r in results})
    bad = next(r for r in seen.results if r.module == "first")
    assert not bad.ok
    assert isinstance(bad.error, hotswap.ExecutionError)
    assert "KeyboardInterrupt" in str(bad.error)
    assert first.value() == 1
    project.path("first").write_text(source(3))  # fixed: the set goes again, whole
    seen.wait_for(lambda results: first.value() == 3 and second.value() == 2)
    assert hotswap.status().watching


# --- defects 4 and 5: folders swapped, or created after enable() -------------------------------


def test_watcher_follows_a_watched_folder_swapped_by_rename(project, watch):
    mod = project.load("live", source(1))
    seen = watch()
    root = project.root
    fresh = root.with_name("src.new")
    fresh.mkdir()
    (fresh / "live.py").write_text(source(2))
    root.rename(root.with_name("src.old"))
    fresh.rename(root)
    seen.wait_for(lambda results: mod.value() == 2)  # the new folder's file differs: applied
    (root / "live.py").write_text(source(3))
    seen.wait_for(lambda results: mod.value() == 3)
    assert all(r.ok for r in seen.results)
    assert hotswap.status().watching


def test_watcher_folder_renamed_into_place_is_complete_at_once(project, watch, tmp_path):
    project.write("pkg.mod", source(1))
    mod = project.load("pkg", "from pkg.mod import value\n") and sys.modules["pkg.mod"]
    seen = watch(debounce=60.0)  # a guess or a wait for a close would take a minute
    fresh = tmp_path / "pkg.new"
    fresh.mkdir()
    (fresh / "__init__.py").write_text("from pkg.mod import value\n")
    (fresh / "mod.py").write_text(source(2))
    package = project.root / "pkg"
    package.rename(tmp_path / "pkg.old")
    fresh.rename(package)
    seen.wait_for(lambda results: mod.value() == 2)
    assert all(r.ok for r in seen.results)


def test_watcher_folder_swap_reported_out_of_order_still_applies(project, watch, monkeypatch):
    """inotify keeps no order across two watches: the observer may report the new folder's
    arrival before the old folder's removal (seen once on a loaded CI machine). The removal,
    last, must not drop the arrived file: it is there, so it is read."""
    from hotswap import _api
    from hotswap._watch import handler

    project.write("pkg.mod", source(1))
    mod = project.load("pkg", "from pkg.mod import value\n") and sys.modules["pkg.mod"]
    # The observer's own reports are set aside: this test gives the watcher the events in the
    # order that lost the new file.
    monkeypatch.setattr(handler.Handler, "dispatch", lambda self, event: None)
    seen = watch(debounce=60.0)
    reloader = _api._reloader
    package = project.root / "pkg"
    package.rename(project.root.parent / "pkg.old")
    fresh = project.root.parent / "pkg.new"
    fresh.mkdir()
    (fresh / "__init__.py").write_text("from pkg.mod import value\n")
    (fresh / "mod.py").write_text(source(2))
    fresh.rename(package)
    reloader.arrived(str(package))
    reloader.notify(str(package / "mod.py"), handler.GONE)  # the old folder's, late
    seen.wait_for(lambda results: mod.value() == 2)
    assert all(r.ok for r in seen.results)


def test_watcher_watches_a_path_once_it_appears(project, watch, watcher_log, monkeypatch):
    later = project.root.with_name("later")
    monkeypatch.syspath_prepend(str(later))
    seen = watch([str(later)])
    watcher_log.wait_for("does not exist", str(later))
    later.mkdir()
    (later / "latermod.py").write_text(source(1))
    importlib.invalidate_caches()
    mod = importlib.import_module("latermod")
    try:
        watcher_log.wait_for("appeared", str(later))
        (later / "latermod.py").write_text(source(2))
        seen.wait_for(lambda results: mod.value() == 2)
        assert [r.module for r in seen.results] == ["latermod"]
    finally:
        sys.modules.pop("latermod", None)


# --- defect 8: reading never reloads ------------------------------------------------------------


def test_watcher_reading_a_file_never_triggers_a_reload(project, watch):
    mod = project.load("live", source(1))
    seen = watch()
    path = project.path("live")
    for _ in range(50):
        path.read_bytes()
    with open(path, "a"):  # opened for writing, nothing written: closed, same content
        pass
    path.write_text(source(2))  # the control: the only change
    seen.wait_for(lambda results: mod.value() == 2)
    path.read_text()
    path.write_text(source(3))  # a second control after the watcher read the file itself
    seen.wait_for(lambda results: mod.value() == 3)
    assert [r.module for r in seen.results] == ["live", "live"]


def test_watcher_a_files_first_event_with_the_code_it_runs_is_no_reload(project, watch):
    # Opened for writing and closed unchanged before any save: no result, no new version
    # (a loaded machine handed this close over alone, and it was reported as a reload).
    project.load("live", source(1))
    project.load("other", source(1))
    seen = watch()
    with open(project.path("live"), "a"):
        pass
    project.path("other").write_text(source(2))  # the control, after the close
    seen.wait_for(lambda results: any(r.module == "other" for r in results))
    assert [r.module for r in seen.results] == ["other"]
    assert hotswap.status().modules.get("live") is None  # never reloaded


# --- change sets --------------------------------------------------------------------------------


def test_watcher_files_saved_together_are_one_change_set(project, watch, watcher_log, change_sets):
    calls = change_sets
    gate = latch(project)
    project.load("live", source(1))
    first = project.load("first", source(1))
    second = project.load("second", source(1))
    seen = watch()
    project.path("live").write_text(source(2) + BLOCKING)
    assert gate.ENTERED.wait(TIMEOUT)  # type: ignore[attr-defined]
    project.path("first").write_text(source(2))
    project.path("second").write_text(source(2))
    # Both saves are queued before the worker is free (a loaded CI machine's observer thread
    # has lagged past the window and split the set otherwise).
    watcher_log.wait_for("complete", str(project.path("first")))
    watcher_log.wait_for("complete", str(project.path("second")))
    gate.RELEASE.set()  # type: ignore[attr-defined]
    # The results, not the values: a set's modules change at its commit, before on_reload.
    seen.wait_for(lambda results: {"first", "second"} <= {r.module for r in results})
    assert first.value() == second.value() == 2
    assert sorted(calls.sets[-1]) == ["first", "second"]
    assert sorted(r.module for r in seen.results[-2:]) == ["first", "second"]


def test_watcher_package_and_submodule_saved_together_run_in_the_order_they_read(
    project, watch, watcher_log, bytecode, change_sets
):
    # Issue 25.11: the package gains UNICODE, its submodule (which the package imports) now
    # reads it; in event order, with the submodule first, both failed until the next save.
    calls = change_sets
    gate = latch(project)
    project.load("live", source(1))
    project.write("uni.cli", "def main():\n    return 'plain'\n")
    package = project.load("uni", "from uni.cli import main\n")
    seen = watch()
    project.path("live").write_text(source(2) + BLOCKING)
    assert gate.ENTERED.wait(TIMEOUT)  # type: ignore[attr-defined]
    project.path("uni.cli").write_text(
        "import uni\n\nFANCY = uni.UNICODE\n\n\n"
        "def main():\n    return 'fancy' if FANCY else 'plain'\n"
    )
    project.path("uni").write_text("UNICODE = True\nfrom uni.cli import main\n")
    watcher_log.wait_for("complete", str(project.path("uni.cli")))  # one set: both queued
    watcher_log.wait_for("complete", str(project.path("uni")))
    gate.RELEASE.set()  # type: ignore[attr-defined]
    seen.wait_for(lambda results: {"uni", "uni.cli"} <= {r.module for r in results})
    assert [r.error for r in seen.results[-2:]] == [None, None]
    assert sorted(calls.sets[-1]) == ["uni", "uni.cli"]
    assert package.main() == "fancy"


def test_watcher_change_set_waits_for_a_file_still_being_written(
    project, watch, watcher_log, change_sets
):
    calls = change_sets
    first = project.load("first", source(1))
    second = project.load("second", source(1))
    seen = watch(debounce=30.0)  # bounds the wait for a write in progress: it ends at the close
    with open(project.path("second"), "w") as handle:
        handle.write(source(2)[:8])
        handle.flush()
        watcher_log.wait_for("writing", str(project.path("second")))
        project.path("first").write_text(source(2))  # complete while second is being written
        watcher_log.wait_for("complete", str(project.path("first")))
        handle.write(source(2)[8:])
    seen.wait_for(lambda results: first.value() == 2 and second.value() == 2)
    assert [sorted(s) for s in calls.sets] == [["first", "second"]]


def test_watcher_checkout_of_many_files_is_a_few_change_sets(project, watch, change_sets):
    calls = change_sets
    count = 40
    modules = [project.load(f"co{i}", source(1)) for i in range(count)]
    seen = watch()
    # Another process writes them one after another, as git checkout does.
    script = f"import sys\nfor path in sys.argv[1:]:\n    open(path, 'w').write({source(2)!r})\n"
    paths = [str(project.path(f"co{i}")) for i in range(count)]
    subprocess.run([sys.executable, "-c", script, *paths], check=True)
    seen.wait_for(lambda results: all(m.value() == 2 for m in modules))
    assert sorted(n for s in calls.sets for n in s) == sorted(f"co{i}" for i in range(count))
    assert len(calls.sets) <= count // 4  # one per file without change sets


def test_watcher_rejected_set_is_retried_whole(project, watch, watcher_log, change_sets):
    calls = change_sets
    gate = latch(project)
    project.load("live", source(1))
    first = project.load("first", source(1))
    second = project.load("second", source(1))
    seen = watch()
    project.path("live").write_text(source(2) + BLOCKING)
    assert gate.ENTERED.wait(TIMEOUT)  # type: ignore[attr-defined]
    project.path("first").write_text(source(2) + "\ndef broken(:\n")
    project.path("second").write_text(source(2))
    watcher_log.wait_for("complete", str(project.path("first")))  # one set: both queued
    watcher_log.wait_for("complete", str(project.path("second")))
    gate.RELEASE.set()  # type: ignore[attr-defined]
    seen.wait_for(lambda results: any(r.module == "first" and not r.ok for r in results))
    project.path("first").write_text(source(3))
    seen.wait_for(lambda results: first.value() == 3)
    assert sorted(calls.sets[-1]) == ["first", "second"]
    assert second.value() == 2


def test_watcher_reloads_a_module_alias_once_under_its_own_name(
    project, watch, monkeypatch, change_sets
):
    calls = change_sets
    mod = project.load("live", source(1))
    monkeypatch.setitem(sys.modules, "live_alias", mod)  # as __mp_main__ is __main__
    seen = watch()
    project.path("live").write_text(source(2))
    seen.wait_count(1)
    assert mod.value() == 2
    assert calls.sets == [["live"]]
    assert [r.module for r in seen.results] == ["live"]
