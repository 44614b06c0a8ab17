"""Issue 25: a reload equals a fresh import of the new source, on edits taken from real
projects' histories (each test reproduces one point with a two-version module)."""

from __future__ import annotations

import abc
import sys
import types

import pytest

DECORATED = """\
import functools


def deco(f):
    {wraps}
    def w(*args):
        return ("wrap", f(*args))
    return w


@deco
def w1():
    return 1
"""


@pytest.mark.parametrize("wraps", ["", "@functools.wraps(f)"])
def test_decorator_changed_then_function_edited_keeps_the_decorator(reloading, wraps):
    source = DECORATED.format(wraps=wraps)
    mod = reloading.load("decothen", source)
    held = mod.w1
    source = source.replace('"wrap"', '"wrap2"')
    result = reloading.reload("decothen", source)
    assert result.ok, result.error
    assert (mod.w1(), held()) == (("wrap2", 1), ("wrap2", 1))
    result = reloading.reload("decothen", source.replace("return 1", "return 2"))
    assert result.ok, result.error
    assert mod.w1() == ("wrap2", 2)  # a fresh import of the new source
    assert held() == ("wrap2", 2)


@pytest.mark.parametrize("wraps", ["", "@functools.wraps(f)"])
def test_decorator_and_function_changed_together_then_function_edited(reloading, wraps):
    source = DECORATED.format(wraps=wraps)
    mod = reloading.load("decoboth", source)
    held = mod.w1
    source = source.replace('"wrap"', '"wrap2"').replace("return 1", "return 2")
    result = reloading.reload("decoboth", source)
    assert result.ok, result.error
    result = reloading.reload("decoboth", source.replace("return 2", "return 3"))
    assert result.ok, result.error
    result = reloading.reload("decoboth", source.replace("return 2", "return 4"))
    assert result.ok, result.error
    assert (mod.w1(), held()) == (("wrap2", 4), ("wrap2", 4))


REGISTRY = """\
REG = []


def register(f):
    REG.append(f)
    return f


@register
def a():
    return "a"


@register
def b():
    return "b"


@register
def c():
    return "c"
"""


def test_decorator_registry_drops_removed_functions(reloading):
    mod = reloading.load("regdrop", REGISTRY)
    a = mod.a
    result = reloading.reload(
        "regdrop", REGISTRY.split("\n\n\n@register\ndef b", maxsplit=1)[0] + "\n"
    )
    assert result.ok, result.error
    assert [mod.a] == mod.REG  # a fresh import of the new source
    assert mod.a is a  # definitions keep their identity
    assert not hasattr(mod, "b")


def test_decorator_registry_keeps_source_order_and_identity(reloading):
    mod = reloading.load("regmid", REGISTRY)
    a, c = mod.a, mod.c
    new = REGISTRY.replace('@register\ndef b():\n    return "b"\n\n\n', "")
    result = reloading.reload("regmid", new)
    assert result.ok, result.error
    assert [a, c] == mod.REG
    assert (mod.a, mod.c) == (a, c)


def test_decorator_registry_inserted_writer_takes_its_place(reloading):
    mod = reloading.load("regins", REGISTRY)
    new = REGISTRY.replace(
        "@register\ndef b", '@register\ndef a2():\n    return "a2"\n\n\n@register\ndef b'
    )
    result = reloading.reload("regins", new)
    assert result.ok, result.error
    assert [f.__name__ for f in mod.REG] == ["a", "a2", "b", "c"]
    assert [mod.a, mod.a2, mod.b, mod.c] == mod.REG


def test_changed_registering_decorator_does_not_register_twice(reloading):
    mod = reloading.load("regtwice", REGISTRY)
    result = reloading.reload(
        "regtwice", REGISTRY.replace("REG.append(f)", "REG.append(f)  # v2\n    f.seen = True")
    )
    assert result.ok, result.error
    assert [mod.a, mod.b, mod.c] == mod.REG
    assert mod.a.seen


KEYED = """\
HANDLERS = {}


def on(event):
    def deco(f):
        HANDLERS[event] = f
        return f
    return deco


@on("start")
def started():
    return 1
"""


def test_keyed_registry_follows_a_changed_key(reloading):
    mod = reloading.load("keyed", KEYED)
    started = mod.started
    result = reloading.reload("keyed", KEYED.replace('@on("start")', '@on("begin")'))
    assert result.ok, result.error
    assert {"begin": started} == mod.HANDLERS
    assert mod.started is started


def test_plain_call_registration_removed(reloading):
    source = (
        "REG = []\n\n\ndef register(f):\n    REG.append(f)\n\n\n"
        "def a():\n    pass\n\n\nregister(a)\nregister(print)\n"
    )
    mod = reloading.load("regcall", source)
    result = reloading.reload("regcall", source.replace("register(print)\n", ""))
    assert result.ok, result.error
    assert [mod.a] == mod.REG


METHOD_REGISTRY = """\
class Rememberer:
    def __init__(self):
        self.items = []

    def register(self, f):
        self.items.append(f)
        return f


activities = Rememberer()


@activities.register
def do(x):
    return x


@activities.register
def do2(x):
    return x * 2
"""


def test_method_registry_drops_removed_functions(reloading):
    mod = reloading.load("remember", METHOD_REGISTRY)
    do = mod.do
    result = reloading.reload(
        "remember",
        METHOD_REGISTRY.split("\n\n\n@activities.register\ndef do2", maxsplit=1)[0] + "\n",
    )
    assert result.ok, result.error
    assert mod.activities.items == [mod.do]
    assert mod.do is do


CORE = """\
{imports}


class Param{base}:
    def kind(self):
        return "param"


class Option(Param):
    def kind(self):
        return "option"
"""


def test_subclass_replaced_with_its_base_reaches_importers(reloading):
    reloading.write("basepkg.core", CORE.format(imports="import abc", base=""))
    package = reloading.load("basepkg", "from .core import Option\n")
    user = reloading.load("baseuser", "from basepkg.core import Option\nOPTION = Option\n")
    core = reloading.load("basepkg.core", CORE.format(imports="import abc", base=""))
    result = reloading.reload("basepkg.core", CORE.format(imports="import abc", base="(abc.ABC)"))
    assert result.ok, result.error
    assert package.Option is core.Option  # as after a fresh import
    assert user.Option is core.Option
    assert user.OPTION is core.Option
    assert issubclass(core.Option, abc.ABC)
    assert isinstance(core.Option(), package.Option)


def test_new_mutation_reruns_the_unchanged_reader_after_it(reloading):
    source = "B = [(1, 'K'), (2, 'M')]\nR = list(zip(B, B[1:]))\n"
    mod = reloading.load("sizes", source)
    new = source.replace("\nR", "\nB.append((float('inf'), ''))\nR")
    result = reloading.reload("sizes", new)
    assert result.ok, result.error
    assert result.kind == "reload"
    assert list(zip(mod.B, mod.B[1:], strict=False)) == mod.R  # as after a fresh import
    assert len(mod.R) == 2


def test_new_mutation_does_not_rerun_readers_before_it(reloading):
    source = "B = [1]\nC = list(B)\nX = 1\n"
    mod = reloading.load("sizes2", source)
    result = reloading.reload("sizes2", source.replace("X = 1", "B.append(2)\nX = 1"))
    assert result.ok, result.error
    assert (mod.B, mod.C) == ([1, 2], [1])


def test_default_reading_a_name_removed_in_the_same_edit(reloading):
    source = (
        "unicode, str, bytes = str, bytes, bytes\n\n\n"
        "def make_key(fasttypes=frozenset([int, str])):\n    return fasttypes\n"
    )
    mod = reloading.load("dropalias", source)
    assert bytes in mod.make_key()
    result = reloading.reload("dropalias", source.split("\n\n\n", 1)[1])
    assert result.ok, result.error
    assert mod.make_key() == frozenset([int, str])  # the builtin, as after a fresh import
    assert not hasattr(mod, "unicode")


def test_failed_edit_after_a_decorator_was_removed_changes_nothing(reloading):
    head = DECORATED.format(wraps="@functools.wraps(f)").split("@deco")[0]
    mod = reloading.load("undeco", head + '@deco\ndef w1():\n    """one"""\n    return 1\n')
    reloading.reload("undeco", head + 'def w1():\n    """two"""\n    return 2\n')
    assert (mod.w1(), mod.w1.__doc__) == (2, "two")
    edit = head + 'def w1():\n    """three"""\n    return 3\n'
    result = reloading.reload("undeco", edit + "raise RuntimeError('boom')\n")
    assert not result.ok
    assert (mod.w1(), mod.w1.__doc__) == (2, "two")  # a failed reload changes nothing
    result = reloading.reload("undeco", edit)
    assert result.ok, result.error
    assert (mod.w1(), mod.w1.__doc__) == (3, "three")


PAIRWISE = "def pairwise(it):\n    return list(zip(it, it[1:]))\n\n\npairwise.__doc__ = 'doc'\n"


@pytest.mark.parametrize("force", [False, True])
def test_function_replaced_by_a_builtin_import_drops_its_attribute_statement(reloading, force):
    import itertools

    mod = reloading.load("pairs", PAIRWISE)
    new = "from itertools import pairwise\n"
    result = reloading.reload("pairs", new, force=force, policy="off")
    assert result.ok, result.error
    assert mod.pairwise is itertools.pairwise  # as after a fresh import
    assert itertools.pairwise.__doc__ != "doc"


def test_removed_attribute_statement_still_undone_on_the_kept_function(reloading):
    mod = reloading.load("pairs2", PAIRWISE)
    result = reloading.reload("pairs2", PAIRWISE.split("\n\n\n", maxsplit=1)[0] + "\n")
    assert result.ok, result.error
    assert mod.pairwise.__doc__ is None


def test_change_set_ordered_by_what_the_new_sources_import(reloading):
    from hotswap._engine import transaction

    reloading.write("cyc.cli", "def main():\n    return 'plain'\n")
    package = reloading.load("cyc", "from cyc.cli import main\n")
    cli = sys.modules["cyc.cli"]
    reloading.write("cyc", "UNICODE = True\nfrom cyc.cli import main\n")
    reloading.write(
        "cyc.cli",
        "from cyc import UNICODE\n\n\ndef main():\n    return 'fancy' if UNICODE else 'plain'\n",
    )
    for order in ([("cyc", None), ("cyc.cli", None)], [("cyc.cli", None), ("cyc", None)]):
        results = transaction.reload_many(order)
        assert all(r.ok for r in results), [str(r.error) for r in results]
    assert (package.UNICODE, cli.main()) == (True, "fancy")


# Issue 25.11: what the new sources read decides the order, in an import cycle too (the
# package imports its submodule, which reads what the package now binds).
READ_IN_A_CYCLE = {
    "attribute": (
        ("from {p}.cli import main\n", "def main():\n    return 'plain'\n"),
        (
            "UNICODE = True\nfrom {p}.cli import main\n",
            "import {p}\n\nFANCY = {p}.UNICODE\n\n\n"
            "def main():\n    return 'fancy' if FANCY else 'plain'\n",
        ),
    ),
    "rebound": (
        (
            "UNICODE = False\nfrom {p}.cli import main\n",
            "from {p} import UNICODE\n\n\ndef main():\n    return 'plain'\n",
        ),
        (
            "UNICODE = True\nfrom {p}.cli import main\n",
            "from {p} import UNICODE\n\nFANCY = UNICODE\n\n\n"
            "def main():\n    return 'fancy' if FANCY else 'plain'\n",
        ),
    ),
}


@pytest.mark.parametrize("first", ["package", "submodule"])
@pytest.mark.parametrize("read", sorted(READ_IN_A_CYCLE))
def test_change_set_ordered_by_what_the_new_sources_read(reloading, read, first):
    from hotswap._engine import transaction

    p = f"cyc{read}{first}"
    (init, cli), (new_init, new_cli) = READ_IN_A_CYCLE[read]
    reloading.write(f"{p}.cli", cli.format(p=p))
    package = reloading.load(p, init.format(p=p))
    reloading.write(p, new_init.format(p=p))
    reloading.write(f"{p}.cli", new_cli.format(p=p))
    order = [(p, None), (f"{p}.cli", None)]
    results = transaction.reload_many(order if first == "package" else order[::-1])
    assert all(r.ok for r in results), [str(r.error) for r in results]
    assert (package.UNICODE, package.main(), sys.modules[f"{p}.cli"].FANCY) == (True, "fancy", True)


def test_change_set_order_never_runs_a_module_before_what_it_needs(reloading):
    # click 8.5.0 through the watcher, the set in the order the events came: decorators
    # (reading core) first; core reads the package (``from . import types``), and the package,
    # reached that way, ran before decorators, whose new ``custom_version_option`` it imports.
    from hotswap._engine import transaction

    reloading.write("ord.util", "U = 1\n")
    reloading.write("ord.core", "from . import util\n\n\ndef run():\n    return 1\n")
    reloading.write("ord.deco", "from .core import run\n")
    package = reloading.load("ord", "from .core import run\nfrom .deco import run as again\n")
    reloading.write("ord.core", "from . import util\n\n\ndef run():\n    return 2\n")
    reloading.write("ord.deco", "from .core import run\n\n\ndef fancy():\n    return run()\n")
    reloading.write("ord", "from .core import run\nfrom .deco import fancy\n")
    results = transaction.reload_many([("ord.deco", None), ("ord.core", None), ("ord", None)])
    assert all(r.ok for r in results), [str(r.error) for r in results]
    assert package.fancy() == 2


def test_failed_reload_undoes_a_registration_made_through_a_decorator(reloading):
    mod = reloading.load("regfail", REGISTRY)
    kept = list(mod.REG)
    new = REGISTRY + '\n\n@register\ndef d():\n    return "d"\n'
    result = reloading.reload("regfail", new + "raise RuntimeError('boom')\n")
    assert not result.ok
    assert kept == mod.REG
    result = reloading.reload("regfail", new)
    assert result.ok, result.error
    assert [*kept, mod.d] == mod.REG


GENERIC = """\
import typing

T = typing.TypeVar("T")
U = typing.TypeVar("U")


class ParamType{params}:
{getitem}    def convert(self, value):
        return value


class _NumberParamTypeBase(ParamType):
    pass


class _NumberRangeBase(_NumberParamTypeBase, typing.Generic[T, U]):
    pass


class IntParamType(_NumberParamTypeBase):
    pass


class IntRange(_NumberRangeBase[int, int], IntParamType):
    def convert(self, value):
        return int(value)
"""

GETITEM = """\
    def __class_getitem__(cls, item):
        return super().__class_getitem__(item)

"""


def test_generic_base_replaced_under_its_subclasses(reloading):
    mod = reloading.load("generic", GENERIC.format(params="", getitem=""))
    result = reloading.reload(
        "generic", GENERIC.format(params="(typing.Generic[T])", getitem=GETITEM), policy="off"
    )
    assert result.ok, result.error
    assert mod.IntRange().convert("3") == 3
    assert issubclass(mod.IntRange, mod.ParamType)  # as after a fresh import
    assert isinstance(mod.IntRange(), mod.IntParamType)


def test_rollback_takes_a_registry_back_and_forth(reloading):
    import hotswap

    mod = reloading.load("regback", REGISTRY)
    first = list(mod.REG)
    result = reloading.reload("regback", REGISTRY + '\n\n@register\ndef d():\n    return "d"\n')
    assert result.ok, result.error
    assert [*first, mod.d] == mod.REG
    assert hotswap.rollback("regback", to=1).ok
    assert first == mod.REG  # as version 1 had it
    assert hotswap.rollback("regback", to=2).ok
    assert [*first, mod.d] == mod.REG


def test_function_that_starts_registering_then_changes(reloading):
    # The last function gains the decorator: appended where a fresh import puts it too.
    plain = REGISTRY.replace("@register\ndef c():", "def c():")
    mod = reloading.load("regstart", plain)
    c = mod.c
    assert reloading.reload("regstart", REGISTRY).ok
    assert mod.c is c  # the kept function, registered
    assert [mod.a, mod.b, c] == mod.REG
    result = reloading.reload("regstart", REGISTRY.replace('return "c"', 'return "C"'))
    assert result.ok, result.error
    assert [f() for f in mod.REG] == ["a", "b", "C"]


def test_strict_accepts_a_removal_whose_caller_now_binds_the_name_itself(project):
    from hotswap._engine import transaction

    project.load("pg", "def pager(text):\n    return text\n\n\ndef other():\n    return 1\n")
    project.load("pguser", "from pg import pager\n\n\ndef show(t):\n    return pager(t)\n")
    project.write("pg", "def other():\n    return 1\n")
    project.write(
        "pguser",
        "import contextlib\n\n\ndef show(t):\n"
        "    with contextlib.nullcontext(t) as pager:\n        return pager\n",
    )
    results = transaction.reload_many([("pg", None), ("pguser", None)], policy="strict")
    assert all(r.ok for r in results), [str(r.error) for r in results]


def test_strict_accepts_a_function_moved_to_another_module_with_its_importer(project):
    from hotswap._engine import transaction

    project.load("mvsrc", "def util():\n    return 1\n")
    project.write("mvdst", "")
    project.load("mvdst", "")
    user = project.load("mvuse", "from mvsrc import util\n\n\ndef go():\n    return util()\n")
    project.write("mvsrc", "")
    project.write("mvdst", "def util():\n    return 2\n")
    project.write("mvuse", "from mvdst import util\n\n\ndef go():\n    return util()\n")
    names = [("mvsrc", None), ("mvdst", None), ("mvuse", None)]
    results = transaction.reload_many(names, policy="strict")
    assert all(r.ok for r in results), [str(r.error) for r in results]
    assert user.go() == 2


def test_strict_still_refuses_a_removal_a_module_imports(project):
    import hotswap

    project.load("rmsrc", "def util():\n    return 1\n")
    project.load("rmuse", "from rmsrc import util\n")
    result = project.reload("rmsrc", "")
    assert isinstance(result.error, hotswap.IncompatibleChangeError)
    project.load("rmattr", "import rmsrc\n\n\ndef go():\n    return rmsrc.util()\n")
    result = project.reload("rmsrc", "")
    assert isinstance(result.error, hotswap.IncompatibleChangeError)


def test_strict_private_module_names_are_not_public(project):
    project.write("privpkg._impl", "def helper(a, b):\n    return a + b\n")
    mod = project.load("privpkg._impl", "def helper(a, b):\n    return a + b\n")
    result = project.reload("privpkg._impl", "def helper(a):\n    return a\n", policy="strict")
    assert result.ok, result.error
    assert mod.helper(1) == 1


def test_strict_accepts_an_override_removed_while_the_base_keeps_the_method(reloading):
    source = (
        "class Base:\n    def render(self, x):\n        return x\n\n\n"
        "class Page(Base):\n    def render(self, x):\n        return x * 2\n"
    )
    mod = reloading.load("override", source)
    reloading.load("overuser", "def show(page):\n    return page.render(1)\n")  # a caller
    result = reloading.reload(
        "override",
        source.replace("def render(self, x):\n        return x * 2", "kind = 'page'"),
        policy="strict",
    )
    assert result.ok, result.error
    assert mod.Page().render(3) == 3


def test_strict_still_refuses_a_method_removed_with_no_base_providing_it(reloading):
    import hotswap

    source = (
        "class Base:\n    pass\n\n\nclass Page(Base):\n    def render(self, x):\n        return x\n"
    )
    reloading.load("nooverride", source)
    reloading.load("nooveruser", "def show(page):\n    return page.render(1)\n")  # a caller
    result = reloading.reload(
        "nooverride",
        source.replace("    def render(self, x):\n        return x\n", "    pass\n"),
        policy="strict",
    )
    assert isinstance(result.error, hotswap.IncompatibleChangeError)


def test_class_registered_by_a_decorator_stays_once_and_kept(reloading):
    source = REGISTRY.replace(
        '@register\ndef b():\n    return "b"', "@register\nclass B:\n    x = 1"
    )
    mod = reloading.load("clsreglist", source)
    kept = mod.B
    result = reloading.reload("clsreglist", source.replace("x = 1", "x = 2"))
    assert result.ok, result.error
    assert mod.B is kept
    assert [mod.a, kept, mod.c] == mod.REG
    assert mod.REG[1].x == 2


def test_removed_statement_that_only_acted_is_reported(reloading):
    source = (
        "import logging\n\nlog = logging.getLogger('acted')\nlog.setLevel(logging.DEBUG)\nX = 1\n"
    )
    mod = reloading.load("acted", source)
    result = reloading.reload("acted", source.replace("log.setLevel(logging.DEBUG)\n", ""))
    assert result.ok, result.error
    assert [(s.line, "what it did stays" in s.reason) for s in result.skipped] == [(4, True)]
    assert mod.X == 1


CACHED = """\
import functools


@functools.lru_cache(maxsize=None)
def square(x):
    return x * x
"""


@pytest.mark.parametrize(
    "tail",
    [
        "raise RuntimeError('boom')\n",
        "raise SystemExit(3)\n",
        "def __hotswap_migrate__(old):\n    raise ValueError('no')\n",
        "def __hotswap_verify__():\n    raise ValueError('no')\n",
    ],
)
def test_failed_reload_keeps_lru_cache_contents(reloading, tail):
    mod = reloading.load("cached", CACHED)
    mod.square(2)
    mod.square(2)
    mod.square(3)
    before = mod.square.cache_info()
    assert (before.hits, before.misses, before.currsize) == (1, 2, 2)
    result = reloading.reload("cached", CACHED.replace("x * x", "x ** 2") + tail)
    assert not result.ok
    assert mod.square.cache_info() == before  # nothing observable changed
    result = reloading.reload("cached", CACHED.replace("x * x", "x * x + 1"))
    assert result.ok, result.error
    assert mod.square(2) == 5  # no stale result once applied


REGISTERED_AND_CACHED = """\
import functools

REGISTRY = []


def register(cls):
    REGISTRY.append(cls)
    cls.tag = 0
    return cls


@register
class Plugin:
    pass


@functools.lru_cache(maxsize=8)
def square(x):
    return x * x
"""


@pytest.mark.parametrize(
    "tail",
    [
        "raise RuntimeError('boom')\n",
        "raise SystemExit(3)\n",
        "def __hotswap_migrate__(old):\n    raise ValueError('no')\n",
        "def __hotswap_verify__():\n"
        "    assert register(type('X', (), {})).tag == 1\n"
        "    raise ValueError('no')\n",
    ],
)
def test_failed_reload_keeps_a_cache_that_other_changed_code_it_ran_does_not_reach(reloading, tail):
    # The statement ``@register class Plugin`` runs again and calls the changed ``register``:
    # code of the transaction calls changed code before commit, but nothing it runs reaches
    # ``square``, whose cache must come out of the failure as it went in (issue 25.13).
    mod = reloading.load("cachedreg", REGISTERED_AND_CACHED)
    mod.square(2)
    mod.square(2)
    before = mod.square.cache_info()
    assert (before.hits, before.misses, before.currsize) == (1, 1, 1)
    new = REGISTERED_AND_CACHED.replace("tag = 0", "tag = 1").replace("x * x", "x * x + 1")
    result = reloading.reload("cachedreg", new + tail)
    assert not result.ok
    assert result.rolled_back
    assert mod.square.cache_info() == before
    assert (mod.square(2), mod.Plugin.tag, mod.REGISTRY) == (4, 0, [mod.Plugin])
    result = reloading.reload("cachedreg", new)
    assert result.ok, result.error
    assert (mod.square(2), mod.Plugin.tag) == (5, 1)  # no stale result once applied


def test_statement_calling_a_changed_cached_function_gets_the_new_result(reloading):
    source = CACHED + "\n\nTABLE = [square(i) for i in range(3)]\n"
    mod = reloading.load("cachedtable", source)
    assert mod.TABLE == [0, 1, 4]
    result = reloading.reload("cachedtable", source.replace("x * x", "x * x + 1"))
    assert result.ok, result.error
    assert mod.TABLE == [1, 2, 5]  # computed by the new code, not read from the old cache


def test_statement_calling_a_changed_cached_function_through_another_gets_the_new_result(
    reloading,
):
    source = (
        CACHED + "\n\ndef row(i):\n    return square(i)\n\n\nTABLE = [row(i) for i in range(3)]\n"
    )
    mod = reloading.load("cachedrow", source)
    assert mod.TABLE == [0, 1, 4]
    result = reloading.reload("cachedrow", source.replace("x * x", "x * x + 1"))
    assert result.ok, result.error
    assert mod.TABLE == [1, 2, 5]  # ``row`` is unchanged, but what it calls changed


def test_removed_attribute_statement_undone_on_a_cache_wrapper(reloading):
    source = CACHED + "\n\nsquare.tag = 0\n"
    mod = reloading.load("cachetag", source)
    result = reloading.reload("cachetag", CACHED)
    assert result.ok, result.error
    assert not hasattr(mod.square, "tag")  # as after a fresh import


CURRY = """\
{imports}class curry{bases}:
    def __init__(self, func):
        self.func = func

    def __call__(self, *args):
        return self.func(*args)
"""


def test_function_decorated_by_a_replaced_class_of_another_module_is_decorated_again(reloading):
    # toolz 1.1.0 replaced ``curry``; toolz.curried.exceptions' ``@toolz.curry def merge``
    # kept an instance of the old class (fresh: of the new one).
    lib = reloading.load("curlib", CURRY.format(imports="", bases=""))
    user = reloading.load(
        "curuser",
        "import curlib\n\n\n@curlib.curry\ndef merge(a, b):\n    return a + b\n\n\n"
        "merge.__doc__ = 'merged'\n",
    )
    new = CURRY.format(imports="import abc\n\n\n", bases="(abc.ABC)")
    result = reloading.reload("curlib", new)
    assert result.ok, result.error
    assert "curuser" in [d.module for d in result.dependents]
    assert type(user.merge) is lib.curry
    assert (user.merge(1, 2), user.merge.__doc__) == (3, "merged")


def test_class_losing_its_explicit_object_base_is_merged(reloading):
    # pyupgrade's edit (toolz 1.1.0: ``class curry(object):`` -> ``class curry:``) makes the
    # same class: it is updated in place, its subclasses untouched, nothing reported replaced.
    source = "class C(object):\n    def f(self):\n        return 1\n\n\nclass D(C):\n    pass\n"
    mod = reloading.load("objbase", source)
    kept, sub = mod.C, mod.D
    new = source.replace("C(object)", "C").replace("return 1", "return 2")
    result = reloading.reload("objbase", new)
    assert result.ok, result.error
    assert (mod.C is kept, mod.D is sub, mod.D().f()) == (True, True, 2)
    assert result.changes.replaced == ()
    assert result.changes.changed == ("C", "C.f")


def _code_named(code: types.CodeType, name: str) -> types.CodeType:
    return next(c for c in code.co_consts if isinstance(c, types.CodeType) and c.co_name == name)


def test_changed_function_compiles_to_the_code_a_fresh_import_makes(reloading):
    # click 8.3.3's Option.get_help_extra: ``inspect.isfunction(...)`` in a statement compiled
    # without the module's ``import inspect`` took LOAD_METHOD (3.11), a fresh import not.
    source = "import inspect\n\n\ndef f(x):\n    return inspect.isfunction(x)\n"
    mod = reloading.load("freshcode", source)
    new = source.replace("return inspect", "return not inspect")
    result = reloading.reload("freshcode", new)
    assert result.ok, result.error
    fresh = _code_named(compile(new, str(reloading.path("freshcode")), "exec"), "f")
    assert mod.f.__code__.co_code == fresh.co_code
    assert mod.f(len) is True


def test_removed_module_docstring_leaves_none(reloading):
    # boltons 24.0.0 dropped deprutils' docstring: the live module kept it.
    mod = reloading.load("docgone", '"""Old words."""\n\nimport sys\n\nX = 1\n')
    result = reloading.reload("docgone", "import sys\n\nX = 1\n")
    assert result.ok, result.error
    assert mod.__doc__ is None  # as after a fresh import
    result = reloading.reload("docgone", '"""New words."""\n\nimport sys\n\nX = 1\n')
    assert result.ok, result.error
    assert mod.__doc__ == "New words."


NESTED = """\
class FilePerms{bases}:
    class _Property{bases}:
        def __init__(self, attribute):
            self.attribute = attribute

        def __get__(self, obj, owner=None):
            return self.attribute

    user = _Property("{value}")
"""


def test_merged_class_attribute_is_an_instance_of_the_kept_nested_class(reloading):
    # boltons 24.0.0's fileutils.FilePerms: ``user = _FilePermProperty(...)`` in a class merged
    # into the kept one was an instance of the throwaway nested class.
    mod = reloading.load("nestedprop", NESTED.format(bases="(object)", value="_user"))
    kept = mod.FilePerms._Property
    result = reloading.reload("nestedprop", NESTED.format(bases="", value="_owner"))
    assert result.ok, result.error
    assert mod.FilePerms._Property is kept
    assert type(vars(mod.FilePerms)["user"]) is kept  # as after a fresh import
    assert mod.FilePerms().user == "_owner"
