"""Issue 25, found by the replay of real releases: what a fresh import binds, and how it names
what it binds (each test reproduces one divergence with a two-version module)."""

from __future__ import annotations

import pytest

FALLBACK = """\
try:
    from hotswap_no_such_speedups import helper
except ImportError:
{fallback}
"""
LAMBDA = "    helper = lambda x: x"
DEF = "    def helper(x):\n        return x + 1"


@pytest.mark.parametrize(
    ("before", "after"), [(LAMBDA, DEF), (DEF, LAMBDA)], ids=["to-def", "to-lambda"]
)
def test_fallback_rebound_between_lambda_and_def_is_named_as_a_fresh_import(
    reloading, before, after
):
    mod = reloading.load("fallback", FALLBACK.format(fallback=before))
    held = mod.helper
    # (Strict refuses a ``def`` turned into an assignment, whatever it assigns: off here.)
    result = reloading.reload("fallback", FALLBACK.format(fallback=after), policy="off")
    assert result.ok, result.error
    fresh: dict[str, object] = {}
    exec(compile(FALLBACK.format(fallback=after), "<fresh>", "exec"), fresh)
    expected = fresh["helper"]
    assert (mod.helper.__name__, mod.helper.__qualname__) == (
        expected.__name__,  # type: ignore[attr-defined]
        expected.__qualname__,  # type: ignore[attr-defined]
    )
    assert mod.helper(1) == expected(1)  # type: ignore[operator]
    assert held is mod.helper  # updated in place: held references follow


TYPED = """\
from typing import TYPE_CHECKING
{imports}

def dumps(value):
    return repr(value)
"""


@pytest.mark.parametrize("test", ["TYPE_CHECKING", "typing.TYPE_CHECKING"])
def test_import_moved_under_type_checking_is_unbound_as_in_a_fresh_import(reloading, test):
    mod = reloading.load("typedmod", TYPED.format(imports="import json\nimport typing\n"))
    assert mod.json.dumps(1) == "1"
    moved = TYPED.format(imports=f"import typing\n\nif {test}:\n    import json\n")
    result = reloading.reload("typedmod", moved)
    assert result.ok, result.error
    assert "json" not in vars(mod)  # a fresh import never runs the block
    assert mod.dumps(2) == "2"
    back = reloading.reload("typedmod", TYPED.format(imports="import json\nimport typing\n"))
    assert back.ok, back.error
    assert mod.json.dumps(3) == "3"


def test_type_checking_else_branch_still_binds(reloading):
    block = "if typing.TYPE_CHECKING:\n    import json\nelse:\n    json = None\n"
    source = TYPED.format(imports="import typing\n\n" + block)
    mod = reloading.load("typedelse", TYPED.format(imports="import json\nimport typing\n"))
    result = reloading.reload("typedelse", source)
    assert result.ok, result.error
    assert mod.json is None
