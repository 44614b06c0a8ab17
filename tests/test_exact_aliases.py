"""Issue 25 (toolz's ``_signatures`` registry): an importer reaches a changed module through a
module another module binds under an alias (``from . import _signatures as _sigs`` in
``functoolz``, ``functoolz._sigs.create_signature_registry()`` in the package). A fresh import
runs that call after the changed module's statements; a reload finds the caller and runs it
again."""

from __future__ import annotations

import sys

import pytest

TABLE = """\
INFO = {info}
TABLE = {{}}


def fill(info=INFO, table=TABLE):
    for key, value in info.items():
        table[key] = value
"""
CORE = """\
from . import _table as _t


def lookup(key):
    return _t.TABLE.get(key)
"""
PACKAGE = "from . import core\n\ncore._t.fill()\n"


def test_call_through_a_module_alias_runs_again(reloading):
    reloading.write("aliased._table", TABLE.format(info='{"a": 1}'))
    reloading.write("aliased.core", CORE)
    package = reloading.load("aliased", PACKAGE)
    table = sys.modules["aliased._table"]
    result = reloading.reload("aliased._table", TABLE.format(info='{"a": 1, "b": 2}'))
    assert result.ok, result.error
    assert "aliased" in [d.module for d in result.dependents]
    assert table.TABLE == {"a": 1, "b": 2}  # what a fresh import fills
    assert table.fill.__defaults__[1] is table.TABLE
    assert package.core.lookup("b") == 2


def test_call_through_an_alias_imported_from_its_holder_runs_again(reloading):
    reloading.write("aliasfrom._table", TABLE.format(info='{"a": 1}'))
    reloading.write("aliasfrom.core", CORE)
    reloading.load("aliasfrom.user", "from .core import _t\n\n_t.fill()\n")
    table = sys.modules["aliasfrom._table"]
    result = reloading.reload("aliasfrom._table", TABLE.format(info='{"a": 1, "b": 2}'))
    assert result.ok, result.error
    assert table.TABLE == {"a": 1, "b": 2}


def test_call_through_a_module_alias_not_rerun_for_an_unrelated_change(reloading):
    reloading.write("aliased2._table", TABLE.format(info='{"a": 1}') + "X = 1\n")
    reloading.write("aliased2.core", CORE)
    reloading.load("aliased2", PACKAGE)
    source = TABLE.format(info='{"a": 1}') + "X = 2\n"
    result = reloading.reload("aliased2._table", source)
    assert result.ok, result.error
    assert [d.module for d in result.dependents] == []


def test_container_filled_from_an_importer_is_rebuilt_in_order(reloading):
    reloading.write("rebuilt._table", TABLE.format(info='{"a": 1, "b": 2}'))
    reloading.write("rebuilt.core", CORE)
    reloading.load("rebuilt", PACKAGE)
    table = sys.modules["rebuilt._table"]
    source = TABLE.format(info='{"z": 0, "a": 1}')
    result = reloading.reload("rebuilt._table", source)
    assert result.ok, result.error
    assert list(table.TABLE.items()) == [("z", 0), ("a", 1)]  # a fresh import's order, no "b"
    assert table.fill.__defaults__[1] is table.TABLE


def test_container_filled_in_its_own_module_through_a_default_is_rebuilt(reloading):
    source = TABLE.format(info='{"a": 1, "b": 2}') + "\nfill()\n"
    mod = reloading.load("selffilled", source)
    result = reloading.reload("selffilled", source.replace('{"a": 1, "b": 2}', '{"z": 0, "a": 1}'))
    assert result.ok, result.error
    assert list(mod.TABLE.items()) == [("z", 0), ("a", 1)]
    assert mod.fill.__defaults__[1] is mod.TABLE


REGISTER = "REG = {}\n\n\ndef register(name, value):\n    REG[name] = value\n"


def test_registry_of_other_importers_kept_when_one_caller_changes(reloading):
    from hotswap._engine import transaction

    reloading.write("plugreg", REGISTER)
    reloading.load("plugone", 'import plugreg\n\nplugreg.register("a", 1)\n')
    reloading.load("plugtwo", 'import plugreg\n\nplugreg.register("b", 2)\n')
    registry = sys.modules["plugreg"]
    reloading.write("plugreg", REGISTER + "\n\nX = 1\n")
    reloading.write("plugone", 'import plugreg\n\nplugreg.register("a", 10)\n')
    results = transaction.reload_many([("plugreg", None), ("plugone", None)])
    assert all(r.ok for r in results), [str(r.error) for r in results]
    # register() did not change: plugtwo's registration stands, as in a fresh import, and
    # plugtwo does not run again.
    assert registry.REG == {"a": 10, "b": 2}
    assert "plugtwo" not in [d.module for r in results for d in r.dependents]


@pytest.mark.watcher
def test_watcher_save_of_the_aliased_module_rebuilds_the_importers_table(reloading, watch):
    # toolz's checkout through the watcher: whether the package's call ran again depended on
    # which change set _signatures.py landed in; saved alone, it reaches the package too.
    reloading.write("watched._table", TABLE.format(info='{"a": 1, "b": 2}'))
    reloading.write("watched.core", CORE)
    reloading.load("watched", PACKAGE)
    table = sys.modules["watched._table"]
    seen = watch(debounce=0.05, policy="off")
    reloading.write("watched._table", TABLE.format(info='{"z": 0, "a": 1}'))
    seen.wait_for(lambda results: any(r.module == "watched._table" for r in results))
    assert all(r.ok for r in seen.results), [str(r.error) for r in seen.results]
    assert list(table.TABLE.items()) == [("z", 0), ("a", 1)]
