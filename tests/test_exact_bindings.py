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
    result = reloading.reload("fallback", FALLBACK.format(fallback=after))
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


ALIASES = """\
def g():
    return 1


def h():
    return 2


{binding}
"""


@pytest.mark.parametrize(
    ("before", "after", "bound"),
    [
        ("f = g", "f = lambda: 3", None),
        ("f = g", "f = h", "h"),
        ("f = lambda: 0", "f = g", "g"),
        ("def f():\n    return 0", "f = h", "h"),
        ("f = g", "def f():\n    return 3", None),
    ],
    ids=["alias-to-lambda", "alias-to-alias", "lambda-to-alias", "def-to-alias", "alias-to-def"],
)
def test_alias_of_a_module_function_is_rebound_never_updated(reloading, before, after, bound):
    """``f = g`` names ``g``'s function: an edit of ``f`` must leave ``g`` alone, and a fresh
    import binds the other function itself."""
    mod = reloading.load("aliases", ALIASES.format(binding=before))
    g, h, held = mod.g, mod.h, mod.f
    result = reloading.reload("aliases", ALIASES.format(binding=after), policy="off")
    assert result.ok, result.error
    assert (mod.g(), mod.h()) == (1, 2)  # the other names' functions kept their code
    assert mod.g is g
    assert mod.h is h
    if bound is not None:
        assert mod.f is getattr(mod, bound)
    else:
        assert mod.f() == 3
    if held not in (g, h):
        assert held() == mod.f()  # a reference held to f's own old function follows


def test_alias_follows_its_function_changed_in_the_same_edit(reloading):
    mod = reloading.load("aliasboth", "def _impl():\n    return 1\n\n\npublic = _impl\n")
    impl = mod._impl
    result = reloading.reload("aliasboth", "def _impl():\n    return 2\n\n\npublic = _impl\n")
    assert result.ok, result.error
    assert mod._impl is impl
    assert mod.public is impl
    assert impl() == 2


UNDECORATED = """\
import functools
import inspect


def local(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        return ("l1", fn(*args, **kwargs))
    return wrapper


{decorator}def delta(x={default}):
    return x
"""


def test_function_whose_decorator_was_removed_takes_later_edits(reloading):
    """Found by test_property_reload's fuzz: once the decorator was removed, the kept wrapper
    forwarded to the function with the defaults it had then, so the next edits' defaults never
    reached a call."""
    mod = reloading.load("undecorated", UNDECORATED.format(decorator="@local\n", default=2))
    held = mod.delta
    assert held() == ("l1", 2)
    for default in (1, 0, -5):
        result = reloading.reload(
            "undecorated", UNDECORATED.format(decorator="", default=default), policy="off"
        )
        assert result.ok, result.error
        assert (mod.delta(), held(), mod.delta(7)) == (default, default, 7)
        assert str(mod.inspect.signature(mod.delta)) == f"(x={default})"


def test_rollback_gives_a_function_its_name_and_wrapped_back(reloading):
    mod = reloading.load(
        "rolledname",
        FALLBACK.format(fallback=LAMBDA) + UNDECORATED.format(decorator="@local\n", default=2),
    )
    helper, delta = mod.helper, mod.delta
    wrapped = delta.__wrapped__
    failing = (
        FALLBACK.format(fallback=DEF)
        + UNDECORATED.format(decorator="", default=1)
        + "\n\ndef __hotswap_verify__():\n    raise RuntimeError('after the update')\n"
    )  # fails once every function was updated: the rollback puts them back
    result = reloading.reload("rolledname", failing, policy="off")
    assert not result.ok
    assert (mod.helper, mod.delta) == (helper, delta)
    assert (helper.__name__, helper.__qualname__) == ("<lambda>", "<lambda>")
    assert delta.__wrapped__ is wrapped
    assert (helper(1), delta()) == (1, ("l1", 2))


NAMED = """\
{binding}


def caller():
    return f(1)
"""


@pytest.mark.parametrize(
    ("before", "after"),
    [
        ("def f(x):\n    return x", "f = lambda x: x + 1"),
        ("f = lambda x: x", "def f(x, y=0):\n    return x + y + 1"),
    ],
    ids=["def-to-lambda", "lambda-to-def"],
)
def test_strict_takes_a_named_lambda_as_the_function_it_is(project, before, after):
    """``f = lambda x: ...`` is held to a function's checks: the same signature is accepted
    (strict used to refuse any ``def`` turned into an assignment), a broken one is refused."""
    mod = project.load("named", NAMED.format(binding=before))
    result = project.reload("named", NAMED.format(binding=after))
    assert result.ok, result.error
    assert mod.caller() == 2
    broken = project.reload("named", NAMED.format(binding="f = lambda: 0"))
    assert not broken.ok
    assert "f" in str(broken.error)
    assert mod.caller() == 2  # refused: the last good code runs


CODEC = """\
import codecs
import re


class Codec(codecs.Codec):
    def encode(self, data: str, errors: str = "strict") -> tuple[bytes, int]:
        return data.encode(), len(data)


class Encoder(codecs.IncrementalEncoder):
    def encode(self, data: str, final: bool = False) -> bytes:
        return data.encode()


def lookup(name: str) -> tuple[type, type]:
    return (Codec, Encoder)


REGISTERED = lookup("x")
"""


def test_future_import_added_keeps_classes_whose_bases_read_an_unchanged_import(reloading):
    # idna 3.19 added ``from __future__ import annotations``: every statement runs again, and
    # the unchanged ``import codecs`` made every ``class C(codecs.X)`` count as replaced, so
    # ``codecs.lookup()``'s cache (filled at import) held classes the module no longer bound.
    mod = reloading.load("codecmod", CODEC)
    held = mod.Codec, mod.Encoder
    new = "from __future__ import annotations\n\n" + CODEC.replace(".encode()", ".encode('ascii')")
    result = reloading.reload("codecmod", new)
    assert result.ok, result.error
    assert not result.changes.replaced
    assert (mod.Codec, mod.Encoder) == held
    assert held == mod.REGISTERED  # the lookup made at import: the kept classes
    assert mod.Codec().encode("ab") == (b"ab", 2)
    assert mod.Codec.encode.__annotations__["data"] == "str"  # as a fresh import has it
