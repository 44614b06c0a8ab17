"""A whole-module rewrite runs the new text as it is, compiled once (issue 26): the result
equals a fresh import of the new source, held references see the new code, a failure rolls
back everything, the policy still holds; an edit that keeps a statement takes the statement
path."""

from __future__ import annotations

import importlib
import sys
import types

import pytest

import hotswap
from hotswap._engine.history import records
from hotswap._plan.whole import MIN_STATEMENTS, LazySource
from hotswap.exceptions import ExecutionError, IncompatibleChangeError

COUNT = MIN_STATEMENTS + 20


def version(n: int, *, tail: str = "", drop: str | None = None) -> str:
    """A module of COUNT constants, functions, a class, an instance and a table of
    functions, every statement of which differs between two values of ``n``."""
    lines = ['"""A rewritten module."""', "import math", ""]
    lines += [f"C{i} = {i} + {n}" for i in range(COUNT) if f"C{i}" != drop]
    lines += [
        "",
        f"def scale(x):\n    return x * {n + 1}",
        "",
        f"def label(x):\n    return 'v{n}:' + str(scale(x))",
        "",
        f"class Model:\n    kind = 'k{n}'\n\n"
        f"    def total(self):\n        return {n} + math.floor(1.5)",
        "",
        f"INSTANCE = Model() if {n} >= 0 else None",
        f"HANDLERS = [scale, label] if {n} >= 0 else []",
        f"_PRIVATE = {n}",
        tail,
    ]
    return "\n".join(lines) + "\n"


def fresh(source: str, name: str) -> dict[str, object]:
    namespace: dict[str, object] = {"__name__": name}
    exec(compile(source, f"<fresh {name}>", "exec"), namespace)
    return namespace


def rewritten(module: types.ModuleType) -> bool:
    """Whether the live version came from the whole-module path (its statements unread)."""
    live = records[module.__name__].live
    return isinstance(live, LazySource)


@pytest.fixture
def mod(reloading):
    module = reloading.load("rewritten_mod", version(0))
    # Its first reload starts from the bytes it was imported from, unread: a rewrite too.
    first = reloading.reload("rewritten_mod", version(1), policy="off")
    assert first.ok, first.error
    assert rewritten(module)
    yield module
    sys.modules.pop("rewritten_mod", None)


def test_rewrite_equals_a_fresh_import_and_keeps_identities(reloading, mod):
    scale, label, model, instance = mod.scale, mod.label, mod.Model, mod.INSTANCE
    source = version(2, drop="C5")

    result = reloading.reload("rewritten_mod", source, policy="off")

    assert result.ok, result.error
    assert rewritten(mod)
    assert result.version == 3
    expected = fresh(source, "rewritten_mod")
    names = {n for n in vars(mod) if not n.startswith("__")}
    assert names == {n for n in expected if not n.startswith("__")}
    for name in names:
        value = getattr(mod, name)
        if name == "HANDLERS":
            assert [f.__name__ for f in value] == ["scale", "label"]
        elif not callable(value) and not isinstance(value, types.ModuleType | model):
            assert value == expected[name], name
    assert "C5" not in vars(mod)
    assert "C5" in result.changes.removed
    assert mod.__doc__ == "A rewritten module."
    # Updated in place: what the program held runs the new code.
    assert mod.scale is scale
    assert scale(2) == 6
    assert mod.label is label
    assert label(1) == "v2:3"
    assert mod.Model is model
    assert model.kind == "k2"
    assert mod.HANDLERS[0] is mod.scale
    assert mod.HANDLERS[1] is mod.label
    assert type(mod.INSTANCE) is mod.Model
    assert instance.total() == 3
    assert set(result.changes.changed) >= {"scale", "label", "Model", "C0"}


def test_a_one_statement_edit_after_a_rewrite_takes_the_statement_path(reloading, mod):
    assert reloading.reload("rewritten_mod", version(2), policy="off").ok
    assert rewritten(mod)
    source = version(2).replace("return x * 3", "return x * 30")

    result = reloading.reload("rewritten_mod", source, policy="off")

    assert result.ok, result.error
    assert not rewritten(mod)
    assert result.changes.changed == ("scale",)
    assert mod.scale(1) == 30


def test_a_failing_rewrite_rolls_back_everything(reloading, mod):
    before = dict(vars(mod))
    live = records["rewritten_mod"].live
    code = mod.scale.__code__
    kind = mod.Model.kind

    failing = version(2, tail="raise RuntimeError('late')")
    result = reloading.reload("rewritten_mod", failing, policy="off")

    assert not result.ok
    assert result.rolled_back
    assert isinstance(result.error, ExecutionError)
    assert "late" in str(result.error)
    assert dict(vars(mod)) == before
    assert all(vars(mod)[k] is v for k, v in before.items())
    assert mod.scale.__code__ is code
    assert mod.Model.kind == kind
    assert result.version == 2
    assert records["rewritten_mod"].live is live
    again = reloading.reload("rewritten_mod", version(3), policy="off")
    assert rewritten(mod)
    assert again.ok
    assert again.version == 3
    assert mod.scale(1) == 4


def test_an_unchanged_statement_keeps_its_state(reloading, mod):
    source = version(1).replace("_PRIVATE = 1", "CACHE = {}\n_PRIVATE = 1")
    assert reloading.reload("rewritten_mod", source, policy="off").ok
    mod.CACHE["kept"] = True
    source = version(2).replace("_PRIVATE", "CACHE = {}\n_PRIVATE")

    result = reloading.reload("rewritten_mod", source, policy="off")

    assert result.ok, result.error
    assert not rewritten(mod)
    assert mod.CACHE == {"kept": True}


def test_strict_never_removes_a_public_name_without_the_statement_check(reloading):
    def data(n: int, drop: str | None = None, tail: str = "") -> str:
        lines = [f"D{i} = {i} * {n}" for i in range(COUNT) if f"D{i}" != drop]
        return "\n".join([*lines, tail]) + "\n"

    module = reloading.load("rewritten_data", data(1))
    try:
        assert reloading.reload("rewritten_data", data(2), policy="strict").ok
        taken = reloading.reload("rewritten_data", data(3), policy="strict")
        assert taken.ok
        assert rewritten(module)
        # Gone from the code: the statement path decides (is something still using it?).
        gone = reloading.reload("rewritten_data", data(4, drop="D7"), policy="strict")
        assert not rewritten(module)
        assert gone.ok == ("D7" not in vars(module))
        assert reloading.reload("rewritten_data", data(5), policy="strict").ok
        assert rewritten(module)
        before = dict(vars(module))

        # Named by the code but not bound by it: refused, everything as it was.
        unbound = data(6, drop="D7", tail="if D0 < 0:\n    D7 = 0")
        result = reloading.reload("rewritten_data", unbound, policy="strict")

        assert not result.ok
        assert result.rolled_back
        assert isinstance(result.error, IncompatibleChangeError)
        assert "D7" in str(result.error)
        assert dict(vars(module)) == before
        assert module.D7 == 35
    finally:
        sys.modules.pop("rewritten_data", None)


def test_strict_takes_the_statement_path_for_public_functions(reloading, mod):
    result = reloading.reload("rewritten_mod", version(2), policy="strict")

    assert result.ok, result.error
    assert not rewritten(mod)
    assert mod.scale(1) == 3


def test_a_rewrite_after_a_rollback_and_status(reloading, mod):
    assert reloading.reload("rewritten_mod", version(2), policy="off").ok
    assert rewritten(mod)

    back = hotswap.rollback("rewritten_mod")

    assert back.ok, back.error
    assert mod.scale(1) == 2
    assert mod.C0 == 1
    assert hotswap.status().to_dict()["modules"]["rewritten_mod"]["version"] == 2
    importlib.invalidate_caches()
