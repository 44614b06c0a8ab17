"""Recording the data files that module-level code reads (hotswap/_datafiles.py), the half of
"a data file changed: re-run the statements that read it" that needs no statement engine."""

from __future__ import annotations

import importlib
import runpy
import threading

import pytest

import hotswap
from hotswap._plan import datafiles as _datafiles
from hotswap._plan.datafiles import Reader

READER = """\
import json
import pathlib

import helper

HERE = pathlib.Path(__file__).parent


def load(name):
    with open(HERE / name) as handle:
        return json.load(handle)


RATES = json.loads(
    (HERE / "rates.json").read_text()
)
TABLE = load("table.json")
with open(HERE / "written.txt", "w") as out:
    out.write("not read")


@helper.register(load("decorator.json"))
def later():
    return load("later.json")
"""
HELPER = """\
def register(data):
    return lambda function: function
"""


def write_data(project):
    for name in ("rates.json", "table.json", "decorator.json", "later.json"):
        (project.root / name).write_text('{"x": 1}')


def test_datafiles_records_module_level_readers(project, datafiles):
    write_data(project)
    project.write("helper", HELPER)
    project.write("reader", READER)
    hotswap.enable([str(project.root)])
    module = importlib.import_module("reader")
    root = project.root.resolve()
    assert _datafiles.recorded() == {
        str(root / "rates.json"): (Reader("reader", 14, 16),),
        str(root / "table.json"): (Reader("reader", 17, 17),),
        str(root / "decorator.json"): (Reader("reader", 22, 24),),
    }
    # Reads after the import (a call at run time), writes, and source files are not recorded.
    assert module.later() == {"x": 1}
    assert not _datafiles._armed.on  # that opening found no import: openings are cheap again
    assert _datafiles.readers(project.root / "later.json") == ()
    assert _datafiles.readers(project.root / "written.txt") == ()
    assert _datafiles.readers(project.path("helper")) == ()


def test_datafiles_hook_leaves_the_import_systems_reads_alone(project, datafiles, monkeypatch):
    # The audit hook sees every opening of the program: an import's reading of its source
    # returns before any stack walk (it cost imports while watching about 15%).
    project.write("plain", "X = 1\n")
    project.write("plain_two", "import plain\nY = plain.X\n")
    looked: list[object] = []
    record = _datafiles._record

    def spy(args):  # type: ignore[no-untyped-def]
        looked.append(args[0])
        return record(args)

    monkeypatch.setattr(_datafiles, "_record", spy)
    hotswap.enable([str(project.root)])
    module = importlib.import_module("plain_two")
    assert module.Y == 1
    assert [p for p in looked if str(p).endswith(".py")] == []
    assert _datafiles.recorded() == {}


def test_datafiles_two_modules_read_one_file(project, datafiles):
    (project.root / "rates.json").write_text("{}")
    reading = "import pathlib\nRATES = pathlib.Path({path!r}).read_text()\n"
    path = str(project.root / "rates.json")
    project.write("first", reading.format(path=path))
    project.write("second", "X = 1\n" + reading.format(path=path))
    hotswap.enable([str(project.root)])
    importlib.import_module("first")
    importlib.import_module("second")
    assert _datafiles.readers(path) == (Reader("first", 2, 2), Reader("second", 3, 3))
    _datafiles.forget("second", lines=[1])  # not the statement that read it
    assert len(_datafiles.readers(path)) == 2
    _datafiles.forget("second", lines=[3])
    assert _datafiles.readers(path) == (Reader("first", 2, 2),)
    _datafiles.forget("first")
    assert _datafiles.recorded() == {}


def test_datafiles_only_under_watched_paths(project, datafiles, tmp_path):
    outside = tmp_path / "outside.json"
    outside.write_text("{}")
    (project.root / "inside.json").write_text("{}")
    project.write(
        "mixed",
        f"import pathlib\nA = pathlib.Path({str(outside)!r}).read_text()\n"
        f"B = pathlib.Path({str(project.root / 'inside.json')!r}).read_text()\n",
    )
    hotswap.enable([str(project.root)])
    importlib.import_module("mixed")
    assert list(_datafiles.recorded()) == [str((project.root / "inside.json").resolve())]


def test_datafiles_off_without_enable_and_after_disable(project, datafiles):
    (project.root / "rates.json").write_text("{}")
    source = (
        f"import pathlib\nDATA = pathlib.Path({str(project.root / 'rates.json')!r}).read_text()\n"
    )
    project.write("before", source)
    importlib.import_module("before")
    assert _datafiles.tracking() == ()
    hotswap.enable([str(project.root)])
    assert _datafiles.tracking() == (str(project.root.resolve()),)
    hotswap.disable()
    assert _datafiles.tracking() == ()
    project.write("after", source)
    importlib.import_module("after")
    assert _datafiles.recorded() == {}


def test_datafiles_imports_in_threads(project, datafiles):
    (project.root / "rates.json").write_text("{}")
    for n in range(4):
        rates = str(project.root / "rates.json")
        project.write(f"t{n}", f"import pathlib\nDATA = pathlib.Path({rates!r}).read_text()\n")
    hotswap.enable([str(project.root)])
    threads = [threading.Thread(target=importlib.import_module, args=(f"t{n}",)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    found = _datafiles.readers(project.root / "rates.json")
    assert sorted(found) == [Reader(f"t{n}", 2, 2) for n in range(4)]


def test_datafiles_live_config_is_not_a_data_file(project, datafiles):
    (project.root / "app.json").write_text('{"a": 1}')
    project.write(
        "settings",
        f"import hotswap\nCONFIG = hotswap.live_config({str(project.root / 'app.json')!r}, "
        "watch=False)\n",
    )
    hotswap.enable([str(project.root)])
    module = importlib.import_module("settings")
    assert module.CONFIG.value == {"a": 1}
    assert _datafiles.recorded() == {}  # the live config follows its file itself


def test_datafiles_relocate_follows_moved_statements(project, datafiles):
    (project.root / "rates.json").write_text("{}")
    rates = str(project.root / "rates.json")
    project.write("first", f"import pathlib\nRATES = pathlib.Path({rates!r}).read_text()\n")
    project.write("second", f"import pathlib\nRATES = pathlib.Path({rates!r}).read_text()\n")
    hotswap.enable([str(project.root)])
    importlib.import_module("first")
    importlib.import_module("second")
    _datafiles.relocate("first", {2: (5, 7), 9: (10, 10)})
    assert _datafiles.readers(rates) == (Reader("first", 5, 7), Reader("second", 2, 2))


def test_datafiles_statements_a_reload_runs_record_again(project, datafiles):
    (project.root / "rates.json").write_text("{}")
    rates = str(project.root / "rates.json")
    project.write("rated", f"import pathlib\nRATES = pathlib.Path({rates!r}).read_text()\n")
    hotswap.enable([str(project.root)])
    importlib.import_module("rated")
    _datafiles.forget("rated")
    result = project.reload(
        "rated", f"import pathlib\n\nRATES = pathlib.Path({rates!r}).read_text()\n", force=True
    )
    assert result.ok, result.error
    assert _datafiles.readers(rates) == (Reader("rated", 3, 3),)


def test_datafiles_script_top_level_is_not_an_import(project, datafiles):
    # A script's top-level code runs for the life of the program (its main loop): what it
    # opens is not read at import.
    (project.root / "rates.json").write_text("{}")
    rates = str(project.root / "rates.json")
    script = project.root / "script.py"
    script.write_text(f"import pathlib\nRATES = pathlib.Path({rates!r}).read_text()\n")
    hotswap.enable([str(project.root)])
    runpy.run_path(str(script), run_name="__main__")
    project.write("imported", script.read_text())
    importlib.import_module("imported")
    assert _datafiles.readers(rates) == (Reader("imported", 2, 2),)


RATES_READER = """\
import json
import pathlib

HERE = pathlib.Path(__file__).parent
KEEP = []
RATES = json.loads((HERE / "rates.json").read_text())
TOTAL = sum(RATES.values())
"""


@pytest.mark.watcher
def test_datafiles_a_changed_data_file_runs_its_readers_again(project, datafiles, watch):
    data = project.root / "rates.json"
    data.write_text('{"a": 1, "b": 2}')
    project.write("rates_user", RATES_READER)
    collected = watch()
    module = importlib.import_module("rates_user")
    keep = module.KEEP
    assert module.TOTAL == 3
    data.write_text('{"a": 10, "b": 20}')
    collected.wait_for(lambda results: any(r.module == "rates_user" for r in results))
    result = next(r for r in collected.results if r.module == "rates_user")
    assert result.ok, result.error
    assert module.RATES == {"a": 10, "b": 20}
    assert module.TOTAL == 30  # a dependent of the statement that read the file
    assert module.KEEP is keep  # nothing else ran
    # A bad edit of the data file is rolled back like a bad edit of code.
    data.write_text('{"a": ')
    collected.wait_for(lambda results: any(not r.ok for r in results))
    assert module.TOTAL == 30


@pytest.mark.watcher
def test_datafiles_a_fixed_data_file_runs_its_readers_after_a_bad_edit(project, datafiles, watch):
    # A failed rerun leaves its statements recorded as the file's readers: the fix applies.
    data = project.root / "rates.json"
    data.write_text('{"a": 1, "b": 2}')
    project.write("rates_user", RATES_READER)
    collected = watch()
    module = importlib.import_module("rates_user")
    data.write_text('{"a": ')
    collected.wait_for(lambda results: any(not r.ok for r in results))
    assert module.TOTAL == 3
    data.write_text('{"a": 10, "b": 20}')
    collected.wait_for(lambda results: any(r.ok for r in results))
    assert module.TOTAL == 30
