"""Module annotations after partial reloads: what a fresh import of the new source gives, on
every Python (3.14+ evaluates them lazily through one ``__annotate__``: PEP 649 and PEP 749).

Each edit is checked with the annotations read before the reload (the module caches them) and
not read, and on a module's first reload (its imported source unknown) and later ones."""

from __future__ import annotations

import sys

import pytest

LAZY = sys.version_info >= (3, 14)
needs_lazy = pytest.mark.skipif(not LAZY, reason="lazy module annotations are Python 3.14+")

BASE = "X: int = 1\nY: str = 'a'\n"


@pytest.fixture(params=["read-before", "unread"])
def read_before(request: pytest.FixtureRequest) -> bool:
    return request.param == "read-before"


@pytest.fixture(params=["first-reload", "later-reload"])
def warmed(request: pytest.FixtureRequest, reloading):
    """Loads a module; for "later-reload", one unrelated edit first, so the reload under test
    diffs against a known source rather than the live objects."""

    def load(name: str, source: str):
        mod = reloading.load(name, source)
        if request.param == "later-reload":
            result = reloading.reload(name, source + "UNRELATED = 0\n")
            assert result.ok, result.error
            source_now = source + "UNRELATED = 0\n"
        else:
            source_now = source
        return mod, source_now

    return load


def _edit(reloading, warmed, read_before: bool, name: str, old: str, new: str):
    mod, live = warmed(name, old)
    if read_before:
        assert isinstance(mod.__annotations__, dict)
    tail = live[len(old) :]  # the unrelated line, when there is one
    result = reloading.reload(name, new + tail)
    assert result.ok, result.error
    return mod


def test_annotations_follow_a_changed_value(reloading, warmed, read_before):
    mod = _edit(reloading, warmed, read_before, "ann_changed", BASE, BASE.replace("'a'", "'b'"))
    assert mod.Y == "b"
    assert mod.__annotations__ == {"X": int, "Y": str}


def test_annotations_follow_a_changed_annotation(reloading, warmed, read_before):
    mod = _edit(reloading, warmed, read_before, "ann_retyped", BASE, "X: int = 1\nY: bytes = 'a'\n")
    assert mod.__annotations__ == {"X": int, "Y": bytes}


def test_annotations_take_an_added_name(reloading, warmed, read_before):
    mod = _edit(reloading, warmed, read_before, "ann_added", BASE, BASE + "Z: float = 1.5\n")
    assert mod.__annotations__ == {"X": int, "Y": str, "Z": float}


def test_annotations_drop_a_removed_name(reloading, warmed, read_before):
    mod = _edit(reloading, warmed, read_before, "ann_removed", BASE, "X: int = 1\n")
    assert not hasattr(mod, "Y")
    assert mod.__annotations__ == {"X": int}


def test_annotations_drop_a_removed_bare_annotation(reloading, read_before):
    # ``Z: float`` binds nothing: removing it unbinds no name, and the annotations still change.
    mod = reloading.load("ann_bare", BASE + "Z: float\n")
    result = reloading.reload("ann_bare", BASE + "UNRELATED = 0\nZ: float\n")
    assert result.ok, result.error
    if read_before:
        assert mod.__annotations__ == {"X": int, "Y": str, "Z": float}
    result = reloading.reload("ann_bare", BASE + "UNRELATED = 0\n")
    assert result.ok, result.error
    assert result.kind == "reload"
    assert mod.__annotations__ == {"X": int, "Y": str}


def test_annotations_through_a_series_of_edits(reloading, read_before):
    mod = reloading.load("ann_series", BASE)
    steps = [
        (BASE + "Z: float = 1.5\n", {"X": int, "Y": str, "Z": float}),
        ("X: int = 2\nY: str = 'a'\nZ: float = 1.5\n", {"X": int, "Y": str, "Z": float}),
        ("X: int = 2\nZ: float = 1.5\n", {"X": int, "Z": float}),
        (
            "X: int = 2\nZ: complex = 1.5\nW: list[int] = []\n",
            {"X": int, "Z": complex, "W": list[int]},
        ),
        ("X: int = 2\n", {"X": int}),
        ("X = 2\n", {}),
        (BASE, {"X": int, "Y": str}),
    ]
    for source, expected in steps:
        if read_before:
            assert isinstance(mod.__annotations__, dict)
        result = reloading.reload("ann_series", source)
        assert result.ok, result.error
        assert mod.__annotations__ == expected, source


FUTURE = "from __future__ import annotations\n"


def test_future_annotations_module_changed_added_removed(reloading, read_before):
    mod = reloading.load("ann_future", FUTURE + BASE)
    assert mod.__annotations__ == {"X": "int", "Y": "str"}
    steps = [
        (FUTURE + "X: int = 1\nY: str = 'b'\n", {"X": "int", "Y": "str"}),
        (
            FUTURE + "X: int = 1\nY: bytes = 'b'\nZ: Later = 0\n",
            {"X": "int", "Y": "bytes", "Z": "Later"},
        ),
        (FUTURE + "X: int = 1\nZ: Later = 0\n", {"X": "int", "Z": "Later"}),
    ]
    for source, expected in steps:
        if read_before:
            assert isinstance(mod.__annotations__, dict)
        result = reloading.reload("ann_future", source)
        assert result.ok, result.error
        assert mod.__annotations__ == expected, source
    assert not hasattr(mod, "Y")
    assert "__annotate__" not in vars(mod)


def test_failed_reload_leaves_the_annotations(reloading, read_before):
    mod = reloading.load("ann_failed", BASE)
    if read_before:
        assert mod.__annotations__ == {"X": int, "Y": str}
    broken = "X: int = 1\nY: bytes = 'b'\nW: int = 3\nraise RuntimeError('boom')\n"
    result = reloading.reload("ann_failed", broken)
    assert not result.ok
    assert mod.__annotations__ == {"X": int, "Y": str}
    result = reloading.reload("ann_failed", BASE + "Z: float = 0.5\n")
    assert result.ok, result.error
    assert mod.__annotations__ == {"X": int, "Y": str, "Z": float}


FORWARD = """\
X: int = 1
W: Later = None
S: "Later" = None


class Later:
    pass
"""


@needs_lazy
def test_forward_reference_resolves_to_the_kept_class(reloading, read_before):
    mod = reloading.load("ann_forward", FORWARD)
    kept = mod.Later
    if read_before:
        assert mod.__annotations__["W"] is kept
    changed = FORWARD.replace("X: int = 1", "X: int = 2").replace("pass", "size = 3")
    result = reloading.reload("ann_forward", changed)
    assert result.ok, result.error
    assert mod.Later is kept
    assert mod.Later.size == 3
    assert mod.__annotations__ == {"X": int, "W": kept, "S": "Later"}


@needs_lazy
def test_forward_reference_to_a_missing_name_stays_lazy(reloading):
    import annotationlib

    mod = reloading.load("ann_missing", BASE)
    result = reloading.reload("ann_missing", BASE + "M: Missing = None\n")
    assert result.ok, result.error  # the annotation is not evaluated by the reload
    with pytest.raises(NameError):
        _ = mod.__annotations__
    found = annotationlib.get_annotations(mod, format=annotationlib.Format.FORWARDREF)
    assert found["X"] is int
    assert isinstance(found["M"], annotationlib.ForwardRef)
    result = reloading.reload("ann_missing", BASE + "M: Missing = None\nMissing = bytes\n")
    assert result.ok, result.error
    assert mod.__annotations__ == {"X": int, "Y": str, "M": bytes}


CONDITIONAL = """\
from typing import TYPE_CHECKING

X: int = 1
if TYPE_CHECKING:
    T: Undefined
else:
    E: float = 0.5
"""


def test_annotations_of_a_branch_that_did_not_run(reloading, read_before):
    mod = reloading.load("ann_branch", CONDITIONAL)
    if read_before:
        assert mod.__annotations__ == {"X": int, "E": float}
    result = reloading.reload("ann_branch", CONDITIONAL.replace("X: int = 1", "X: int = 2"))
    assert result.ok, result.error
    assert mod.__annotations__ == {"X": int, "E": float}
    result = reloading.reload("ann_branch", CONDITIONAL + "Z: str = ''\n")
    assert result.ok, result.error
    assert mod.__annotations__ == {"X": int, "E": float, "Z": str}


@needs_lazy
def test_annotate_is_hotswaps_not_a_user_function(reloading):
    mod = reloading.load("ann_owned", BASE + "def f():\n    return 1\n")
    old_annotate = vars(mod)["__annotate__"]
    result = reloading.reload("ann_owned", "X: int = 1\nY: str = 'b'\ndef f():\n    return 2\n")
    assert result.ok, result.error
    changes = result.changes
    names = {*changes.added, *changes.changed, *changes.removed, *changes.replaced}
    assert names == {"Y", "f"}
    assert mod.f() == 2
    # The module's old __annotate__ was not updated in place like a user function.
    assert vars(mod)["__annotate__"] is not old_annotate
    assert old_annotate(1) == {"X": int, "Y": str}
    assert mod.__annotations__ == {"X": int, "Y": str}
