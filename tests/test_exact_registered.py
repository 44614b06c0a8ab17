"""Issue 25, continued: objects registered outside the module, trampolines as introspection
sees them, one file imported as several modules (each test reproduces one point with a
two-version module)."""

from __future__ import annotations

import asyncio
import atexit
import importlib
import inspect
import logging
import sys

import pytest

GENERIC = """\
import abc
import typing

V = typing.TypeVar("V")
W = typing.TypeVar("W")
I = typing.TypeVar("I")


class ParamType(typing.Generic[V{more}], abc.ABC):
{getitem}    def convert(self, value):
        return value


class _NumberParamTypeBase(ParamType[V], typing.Generic[W, V]):
    pass


class _NumberRangeBase(_NumberParamTypeBase[W, V], typing.Generic[W, V]):
    pass


class IntParamType(_NumberParamTypeBase[int, int]):
    pass
"""

GETITEM = """\
    def __class_getitem__(cls, params):
        if cls is ParamType and not isinstance(params, tuple):
            params = (params, typing.Any)
        return super().__class_getitem__(params)

"""

SUBCLASS = """\
from genbase import IntParamType, ParamType, _NumberRangeBase


class IntRange(_NumberRangeBase[int, int], IntParamType):
    def convert(self, value):
        return int(value)


class Mine(ParamType[int]):
    pass
"""


def test_generic_gaining_class_getitem_with_super_keeps_unchanged_subclasses(reloading):
    base = reloading.load("genbase", GENERIC.format(more="", getitem=""))
    sub = reloading.load("gensub", SUBCLASS)
    for more, getitem in [(", I", GETITEM), (", I", GETITEM.replace("typing.Any", "object"))]:
        result = reloading.reload("genbase", GENERIC.format(more=more, getitem=getitem))
        assert result.ok, result.error
        assert sub.IntRange().convert("3") == 3
        assert issubclass(sub.IntRange, base.ParamType)  # as after a fresh import
        assert base.ParamType[int].__args__[0] is int  # super() in the kept class
        assert sub.Mine.__mro__[1] is base.ParamType


FINDER = """\
import inspect
import logging
import sys

PREFIX = "hotswap_test_absent."


class Finder:
    def find_spec(self, name, path=None, target=None):
        if name.startswith(PREFIX):
            raise ImportError(name)
        return None


sys.meta_path.append(Finder())
"""

FINDER_REPLACED = """\
import importlib.abc
import inspect
import logging
import sys


class Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        return None


sys.meta_path.append(Finder())
"""


@pytest.fixture
def meta_path():
    """sys.meta_path as the test found it, afterwards."""
    saved = list(sys.meta_path)
    yield sys.meta_path
    sys.meta_path[:] = saved


def _finders(name):
    return [f for f in sys.meta_path if type(f).__module__ == name]


def test_replaced_class_registered_in_meta_path_leaves_one_instance(reloading, meta_path):
    mod = reloading.load("finderreg", FINDER)
    result = reloading.reload("finderreg", FINDER_REPLACED, policy="off")
    assert result.ok, result.error
    assert [type(f) for f in _finders("finderreg")] == [mod.Finder]  # as a fresh import


def test_failed_reload_puts_back_a_registry_of_another_module(reloading, meta_path):
    mod = reloading.load("finderfail", FINDER)
    before = _finders("finderfail")
    result = reloading.reload("finderfail", FINDER_REPLACED + "\nraise RuntimeError('late')\n")
    assert not result.ok
    assert _finders("finderfail") == before
    assert type(before[0]) is mod.Finder


CURRY = """\
class curry{header}:
    def __init__(self, f):
        self.f = f

    def __call__(self, *args):
        return self.f(*args)


def add(a, b):
    return a + b
"""

CURRIED = """\
import curpkg
from curpkg import curry

add = curpkg.curry(curpkg.add)
"""


@pytest.mark.parametrize("tail", ["", "del curpkg\n"])
def test_module_built_from_a_star_import_follows_a_replaced_class(reloading, tail):
    reloading.write("curpkg.functoolz", CURRY.format(header="(object)"))
    reloading.write("curpkg", "from .functoolz import *\n")
    curried = reloading.load("curpkg.curried", CURRIED + tail)  # toolz.curried deletes it
    pkg = sys.modules["curpkg"]
    # Bases that change the class (``(object)`` -> none merges: the same class).
    result = reloading.reload("curpkg.functoolz", CURRY.format(header="(dict)"))
    assert result.ok, result.error
    new = sys.modules["curpkg.functoolz"].curry
    assert [r.split(" ", 1)[0] for r in result.changes.replaced] == ["curry"]
    # As after a fresh import: every module holds the new class and its instances.
    assert (pkg.curry, curried.curry, type(curried.add)) == (new, new, new)
    assert curried.add(2, 3) == 5


SUPER = """\
class Base:
    def area(self, x, y=2, *, scale=1):
        return x * y * scale


class Square(Base):
    def area(self, x, y=2, *, scale=1):
        return {body}
"""


def test_method_gaining_super_keeps_its_signature(reloading):
    mod = reloading.load("trampsig", SUPER.format(body="x * x * scale"))
    held = mod.Square.area
    before = inspect.signature(held)
    result = reloading.reload("trampsig", SUPER.format(body="super().area(x, y, scale=scale) + 1"))
    assert result.ok, result.error
    assert mod.Square.area is held  # the kept function forwards to the new code
    assert inspect.signature(held) == before  # what a fresh import shows
    assert held(mod.Square(), 3) == 7
    assert held(mod.Square(), 3, 4, scale=2) == 25


KINDS = {
    "generator": ("def f(n):\n    return [n]\n", "def f(n):\n    yield n\n"),
    "coroutine": ("def f(n):\n    return n\n", "async def f(n):\n    return n\n"),
    "plain": ("def f(n):\n    yield n\n", "def f(n):\n    return [n]\n"),
}


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_function_changing_kind_under_policy_off_is_what_introspection_expects(reloading, kind):
    old, new = KINDS[kind]
    mod = reloading.load(f"kind{kind}", old)
    held = mod.f
    result = reloading.reload(f"kind{kind}", new, policy="off")
    assert result.ok, result.error
    fresh = {}
    exec(compile(new, "<fresh>", "exec"), fresh)
    for check in (inspect.isgeneratorfunction, inspect.iscoroutinefunction):
        assert check(mod.f) == check(fresh["f"]), check.__name__
    assert inspect.signature(mod.f) == inspect.signature(fresh["f"])
    # A reference taken before keeps its kind and runs the new code.
    if kind == "coroutine":
        assert asyncio.run(held(3)) == 3
    else:
        assert list(held(3)) == [3]
    assert inspect.isgeneratorfunction(held) == (kind == "plain")


FUNCS = """\
def double(x):
    return x * 2


def removed():
    return 0


class Kind:
    pass
"""

FUNCS_NEW = """\
def double(x):
    return x * 2 + 1


def added():
    return 1


class Kind(Exception):
    pass
"""

MIRROR = """\
import importlib.machinery
import sys
import types

import cpsrc.funcs as _source

OWN = ("__name__", "__spec__", "__loader__", "__package__")
funcs = types.ModuleType("cpmirror.funcs")
funcs.__dict__.update({k: v for k, v in vars(_source).items() if k not in OWN})
funcs.__spec__ = importlib.machinery.ModuleSpec("cpmirror.funcs", None)
funcs.__package__ = "cpmirror"
sys.modules["cpmirror.funcs"] = funcs
"""


@pytest.mark.watcher
def test_watcher_one_file_several_modules_copies_follow_the_module(project, bytecode, watch):
    path = project.write("cpsrc.funcs", FUNCS)
    project.load("cpmirror", MIRROR)
    source, copy = sys.modules["cpsrc.funcs"], sys.modules["cpmirror.funcs"]
    assert copy.__file__ == source.__file__
    double = copy.double
    seen = watch(debounce=0.05)
    path.write_text(FUNCS_NEW)
    seen.wait_for(lambda results: any(r.module == "cpsrc.funcs" for r in results))
    # The source never runs inside the copy (no object of "cpmirror.funcs" is made).
    assert [r.module for r in seen.results] == ["cpsrc.funcs"]
    assert seen.results[0].ok, seen.results[0].error
    assert all(
        getattr(v, "__module__", "cpsrc.funcs") == "cpsrc.funcs"
        for k, v in vars(copy).items()
        if k not in ("__builtins__", "__name__", "__package__", "__spec__", "__loader__")
    )
    # What a fresh import gives the copy: the module's names, as they are now.
    assert (copy.double(2), double(2)) == (5, 5)
    assert (copy.added, copy.Kind) == (source.added, source.Kind)
    assert issubclass(copy.Kind, Exception)
    assert not hasattr(copy, "removed")


RUN_TWICE = """\
from __future__ import annotations

LIMIT = 1
OLD = "old"


def cap(x):
    return min(x, LIMIT)
"""
RUN_TWICE_NEW = """\
LIMIT = 2


def cap(x):
    return min(x, LIMIT) * 10
"""
# A package whose __path__ reaches another package's folder (toolz's tlz.curried reaches
# toolz/curried): importing its submodule runs the other package's file under a second name.
REACHES = """\
import os

__path__ = [os.path.join(os.path.dirname(os.path.dirname(__file__)), "rtsrc")]
"""


@pytest.mark.watcher
def test_watcher_one_file_run_as_two_modules_reloads_both_from_their_source(
    project, bytecode, watch
):
    path = project.write("rtsrc.op", RUN_TWICE)
    project.write("rtmirror.__init__", REACHES)
    first, second = importlib.import_module("rtsrc.op"), importlib.import_module("rtmirror.op")
    assert first is not second
    assert second.__spec__.origin == first.__spec__.origin
    seen = watch(debounce=0.05)
    path.write_text(RUN_TWICE_NEW)
    seen.wait_for(lambda results: {r.module for r in results} == {"rtsrc.op", "rtmirror.op"})
    assert all(r.ok for r in seen.results), [str(r.error) for r in seen.results]
    for module in (first, second):  # what a fresh import of the new text gives each
        assert (module.LIMIT, module.cap(5)) == (2, 20), module.__name__
        assert [n for n in ("OLD", "annotations") if hasattr(module, n)] == [], module.__name__


LOADER = """\
import sys


class Loader:
    def __init__(self):
        self.prefix = "{prefix}"

    def find_spec(self, name, path=None, target=None):
        return None


loader = Loader()
sys.meta_path.append(loader)
"""


def test_registered_instance_rebuilt_by_a_changed_class_leaves_one(reloading, meta_path):
    mod = reloading.load("loaderreg", LOADER.format(prefix="a."))
    kept = mod.Loader
    result = reloading.reload("loaderreg", LOADER.format(prefix="b."))
    assert result.ok, result.error
    assert mod.Loader is kept  # merged, not replaced
    assert _finders("loaderreg") == [mod.loader]  # as a fresh import: one loader, the new one
    assert mod.loader.prefix == "b."


CACHED = """\
import functools


@functools.lru_cache(maxsize=None)
def square(x):
    return x * x
"""


def test_failed_verify_leaves_no_result_of_the_rolled_back_code_in_a_cache(reloading):
    mod = reloading.load("cachedverify", CACHED)
    assert mod.square(2) == 4
    tail = "\n\ndef __hotswap_verify__():\n    assert square(2) == 5\n    raise ValueError('no')\n"
    result = reloading.reload("cachedverify", CACHED.replace("x * x", "x * x + 1") + tail)
    assert not result.ok
    assert mod.square(2) == 4  # the rolled-back code's answer, not the cached new one
    assert not hasattr(mod, "__hotswap_verify__")


def test_failed_reload_after_a_statement_called_the_cached_function(reloading):
    source = CACHED + "\n\nTABLE = [square(i) for i in range(3)]\n"
    mod = reloading.load("cachedeager", source)
    assert mod.square(2) == 4
    new = source.replace("x * x", "x * x + 1") + "raise RuntimeError('late')\n"
    result = reloading.reload("cachedeager", new)
    assert not result.ok
    assert (mod.square(2), mod.TABLE) == (4, [0, 1, 4])  # nothing of the new code stays


ACTED = """\
import atexit
import logging
import sys

log = logging.getLogger("hotswap-test-acted")


class Finder:
    def find_spec(self, name, path=None, target=None):
        return None


def cleanup():
    return None


atexit.register(cleanup)
sys.meta_path.append(Finder())
log.setLevel(logging.DEBUG)
X = 1
"""


def test_removed_statements_that_only_acted_are_undone_where_known(reloading, meta_path):
    mod = reloading.load("actedundo", ACTED)
    cleanup = mod.cleanup
    assert len(_finders("actedundo")) == 1
    new = ACTED.replace("atexit.register(cleanup)\n", "").replace(
        "sys.meta_path.append(Finder())\n", ""
    )
    new = new.replace("log.setLevel(logging.DEBUG)\n", "")
    try:
        result = reloading.reload("actedundo", new)
        assert result.ok, result.error
        assert _finders("actedundo") == []  # taken back, as a fresh import never added it
        # atexit.unregister(cleanup) was called: registering and unregistering once more
        # leaves nothing registered (atexit has no way to list its callbacks).
        assert atexit.unregister(cleanup) is None
        # What cannot be undone (a logger's previous level is not known) is reported.
        assert [s.line for s in result.skipped] == [19]
        assert "what it did stays" in result.skipped[0].reason
    finally:
        atexit.unregister(cleanup)
        logging.getLogger("hotswap-test-acted").setLevel(logging.NOTSET)


CHARGE = "def charge(amount, currency):\n    return amount\n"
CHARGED = "def charge(amount):\n    return amount\n"


def test_strict_accepts_a_parameter_removed_with_every_caller_updated(project):
    from hotswap._engine import transaction

    project.load("chg", CHARGE)
    user = project.load(
        "chguse", "from chg import charge\n\n\ndef pay():\n    return charge(5, currency='EUR')\n"
    )
    project.write("chg", CHARGED)
    project.write("chguse", "from chg import charge\n\n\ndef pay():\n    return charge(5)\n")
    results = transaction.reload_many([("chg", None), ("chguse", None)], policy="strict")
    assert all(r.ok for r in results), [str(r.error) for r in results]
    assert user.pay() == 5


@pytest.mark.parametrize(
    "use",
    [
        "def pay():\n    return charge(5, 'EUR')\n",  # a caller still passes it
        "def pay():\n    return charge(*ARGS)\n\n\nARGS = (5, 'EUR')\n",  # cannot tell
        "HANDLERS = [charge]\n",  # handed on: called with anything
    ],
)
def test_strict_still_refuses_a_parameter_removed_that_a_use_may_pass(project, use):
    import hotswap

    project.load("chk", CHARGE)
    project.load("chkuse", "from chk import charge\n\n\n" + use)
    result = project.reload("chk", CHARGED, policy="strict")
    assert isinstance(result.error, hotswap.IncompatibleChangeError)


def test_class_whose_slots_changed_reaches_importers(reloading):
    reloading.load("slotsrc", "class Point:\n    __slots__ = ('x',)\n")
    user = reloading.load("slotuse", "from slotsrc import Point\n\nORIGIN = Point()\n")
    result = reloading.reload("slotsrc", "class Point:\n    __slots__ = ('x', 'y')\n")
    assert result.ok, result.error
    new = sys.modules["slotsrc"].Point
    assert "__slots__" in str(result.changes.replaced)
    assert (user.Point, type(user.ORIGIN)) == (new, new)  # as after a fresh import


def test_star_import_drops_removed_names_but_keeps_its_own(reloading):
    reloading.load("starsrc2", "A = 1\nB = 2\n\n\ndef helper():\n    return 1\n")
    user = reloading.load("staruser2", "from starsrc2 import *\n\nC = A + 1\nB = 5\n")
    result = reloading.reload("starsrc2", "A = 2\n")
    assert result.ok, result.error
    # As after a fresh import: helper is gone, B is the importer's own, C follows A.
    assert (hasattr(user, "helper"), user.B, user.C) == (False, 5, 3)


PLUGIN = """\
import regsite


def handle():
    return 1


regsite.HANDLERS["h"] = handle
regsite.HANDLERS["n"] = len
X = 1
"""


def test_removed_item_stored_in_another_modules_registry_is_undone(reloading):
    site = reloading.load("regsite", "HANDLERS = {}\n")
    reloading.load("regplug", PLUGIN)
    assert set(site.HANDLERS) == {"h", "n"}
    new = PLUGIN.replace('regsite.HANDLERS["h"] = handle\n', "").replace(
        'regsite.HANDLERS["n"] = len\n', ""
    )
    result = reloading.reload("regplug", new)
    assert result.ok, result.error
    assert set(site.HANDLERS) == {"n"}  # the module's own function is taken back
    # What the module did not make (a builtin stored under a key) is left, and reported.
    assert [s.line for s in result.skipped] == [9]


HANDLED = """\
import logging

log = logging.getLogger("hotswap-test-handled")


class Handler({base}):
    def emit(self, record):
        return None


log.addHandler(Handler())
"""


def test_replaced_handler_class_leaves_one_handler_on_the_logger(reloading):
    logger = logging.getLogger("hotswap-test-handled")
    try:
        mod = reloading.load("handled", HANDLED.format(base="logging.Handler"))
        result = reloading.reload("handled", HANDLED.format(base="logging.NullHandler"))
        assert result.ok, result.error
        assert [type(h) for h in logger.handlers] == [mod.Handler]  # as a fresh import
    finally:
        logger.handlers.clear()


def test_removed_add_handler_takes_the_handler_off_the_logger(reloading):
    logger = logging.getLogger("hotswap-test-handled")
    try:
        reloading.load("handledrm", HANDLED.format(base="logging.Handler"))
        assert len(logger.handlers) == 1
        source = HANDLED.format(base="logging.Handler").replace("log.addHandler(Handler())\n", "")
        result = reloading.reload("handledrm", source)
        assert result.ok, result.error
        assert (logger.handlers, result.skipped) == ([], ())
    finally:
        logger.handlers.clear()


def test_rollback_later_keeps_what_other_code_registered_since(reloading, meta_path):
    import hotswap

    reloading.load("finderback", FINDER)
    result = reloading.reload("finderback", FINDER_REPLACED, policy="off")
    assert result.ok, result.error
    other = object()
    sys.meta_path.append(other)  # another library's finder, after the reload
    result = hotswap.rollback("finderback")
    assert result.ok, result.error
    assert other in sys.meta_path
