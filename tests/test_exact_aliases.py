"""Issue 25 (toolz's ``_signatures`` registry): an importer reaches a changed module through a
module another module binds under an alias (``from . import _signatures as _sigs`` in
``functoolz``, ``functoolz._sigs.create_signature_registry()`` in the package). A fresh import
runs that call after the changed module's statements; a reload finds the caller and runs it
again."""

from __future__ import annotations

import sys

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
