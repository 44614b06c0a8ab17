"""The first save of a module imported before hotswap gives the same result whether it comes
before the warm-up prepared the module's baseline (the reload works it out from the live
objects) or after (it diffs against the file the warm-up confirmed): the same names changed,
the same statements run again, the program's state kept (issue 26)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

import hotswap
from hotswap._engine import importers as _importers
from hotswap._plan import sources as _sources

OLD = '''"""A module imported before hotswap."""
import math

EVENTS = []
EVENTS.append("import")
STATE = []
RATE = 3


def helper(x):
    return x * 1


def table():
    EVENTS.append("table")
    return [helper(i) for i in range(3)]


TABLE = table()
SCALED = RATE * 2


class Model:
    kind = "m"

    def total(self, extra=0):
        return math.floor(extra) + 1

    @property
    def label(self):
        return f"{self.kind}:1"

    @staticmethod
    def unit():
        return math.sqrt(1)


def untouched():
    return "same"
'''

EDITS = {
    "function body": OLD.replace("return x * 1", "return x * 2"),
    "method body": OLD.replace("math.floor(extra) + 1", "math.floor(extra) + 2"),
    "constant read by a statement": OLD.replace("RATE = 3", "RATE = 4"),
    "statement added": OLD + "\nEVENTS.append('added')\n",
    "function removed": OLD.replace('def untouched():\n    return "same"\n', ""),
    "comment only": OLD.replace("RATE = 3", "RATE = 3  # per hour"),
    # A class's members, compared one by one with the live class's (issue 25): the report
    # names what changed, as after the warm-up, and the class runs again when any did.
    "method default": OLD.replace("def total(self, extra=0)", "def total(self, extra=1)"),
    "function default": OLD.replace("def helper(x)", "def helper(x=5)"),
    "class attribute": OLD.replace('kind = "m"', 'kind = "n"'),
    "property body": OLD.replace('f"{self.kind}:1"', 'f"{self.kind}:2"'),
    "staticmethod body": OLD.replace("math.sqrt(1)", "math.sqrt(4)"),
    "method added": OLD.replace(
        "    @staticmethod", "    def more(self):\n        return 1\n\n    @staticmethod"
    ),
    "method removed": OLD.replace(
        "    @staticmethod\n    def unit():\n        return math.sqrt(1)\n", ""
    ),
    "nested class added": OLD.replace(
        '    kind = "m"\n',
        '    kind = "m"\n\n    class Inner:\n        def f(self):\n            return 1\n',
    ),
    "class attribute and method": OLD.replace('kind = "m"', 'kind = "n"').replace(
        "math.floor(extra) + 1", "math.floor(extra) + 2"
    ),
}


def _first_save(project: Any, name: str, new: str, *, warm: bool) -> dict[str, object]:
    module = project.load(name, OLD)
    path = project.path(name)
    _sources.take(str(path))  # as if imported before hotswap: no import-time bytes
    stamp = time.time() - 3600  # written before the program started, as a project's are
    os.utime(path, (stamp, stamp))
    if warm:
        assert _importers._prepare_baseline(name, module, time.time()) == 1
        assert _sources.peek(str(path)) is not None  # the live objects confirmed the file
    module.STATE.append("program")
    kept = module.Model
    Path(path).write_text(new)
    result = hotswap.reload(name)
    assert result.ok, result.error
    return {
        "kind": result.kind,
        "version": result.version,
        "changed": result.changes.changed,
        "added": result.changes.added,
        "removed": result.changes.removed,
        "replaced": result.changes.replaced,
        "skipped": result.skipped,
        "events": list(module.EVENTS),
        "state": list(module.STATE),
        "values": (module.helper(2), module.TABLE, module.SCALED, module.Model().total()),
        "class kept": module.Model is kept,
        "names": sorted(n for n in vars(module) if not n.startswith("__")),
    }


# Where the two still differ (found while writing these tests, as before issue 26's work):
# worked out from the live objects, a new statement that only acts (``EVENTS.append(...)``)
# is taken for one that ran at import (nothing live tells), so it does not run.
KNOWN = {
    "statement added": "an added statement that only acts is taken for one that ran",
}


@pytest.mark.parametrize(
    "edit",
    [
        pytest.param(e, marks=pytest.mark.xfail(reason=KNOWN[e], strict=True)) if e in KNOWN else e
        for e in sorted(EDITS)
    ],
)
def test_first_save_before_the_warm_up_is_the_first_save_after_it(reloading, edit):
    new = EDITS[edit]
    slug = "".join(c for c in edit if c.isalpha())

    before = _first_save(reloading, f"first_cold_{slug}", new, warm=False)
    after = _first_save(reloading, f"first_warm_{slug}", new, warm=True)

    assert before == after
    assert before["state"] == ["program"]  # the program's state is kept


def test_first_save_before_the_warm_up_runs_what_changed_and_its_dependents(reloading):
    found = _first_save(reloading, "first_cold_only", EDITS["function body"], warm=False)

    # TABLE's statement calls helper: it runs again, and as table() fills EVENTS, EVENTS is
    # rebuilt (its statement and its writers run again), as a fresh import fills it.
    assert found["changed"] == ("EVENTS", "helper", "TABLE")
    assert found["events"] == ["import", "table"]
    assert found["values"] == (4, [0, 2, 4], 6, 1)
    assert found["class kept"] is True
