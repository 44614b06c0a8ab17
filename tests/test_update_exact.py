"""In-place updates and rollbacks are exact (issue 9): one regression test per defect, built
from its reproducer. Atomicity under concurrent calls (defect 2) is in test_update_atomic.py."""

from __future__ import annotations

import gc
import sys
import textwrap
import weakref

import hotswap
from hotswap._engine import transaction as _transaction


def src(text: str) -> str:
    return textwrap.dedent(text)


# --- defect 3: values whose == is element-wise, or raises ------------------------------------

ARRAY = """
class Array:
    '''Compares element-wise, like a numpy array: bool() of the result raises.'''

    __hash__ = None

    def __init__(self, *items):
        self.items = items

    def __eq__(self, other):
        return Verdict()

    def __ne__(self, other):
        return Verdict()


class Verdict:
    def __bool__(self):
        raise ValueError("The truth value of an array with more than one element is ambiguous")


class Hostile:
    '''Answers every attribute hotswap may look up with an exception.'''

    def __getattr__(self, name):
        raise RuntimeError(f"no {name} here")

    def __eq__(self, other):
        raise RuntimeError("no comparing")

    def __bool__(self):
        raise RuntimeError("no truth")

    __hash__ = None


class Liar(Hostile):
    '''Lies about its class, and raises when asked.'''

    @property
    def __class__(self):
        raise RuntimeError("no class")


class Meta(type):
    def __eq__(cls, other):
        raise RuntimeError("no comparing classes")

    __hash__ = type.__hash__

    def __getattr__(cls, name):
        raise RuntimeError(f"no {name} on the class")
"""


def test_update_elementwise_equality_never_breaks_reload_or_rollback(project):
    body = src("""
        WEIGHTS = Array(1, 2)
        ITEMS = [Array(3), {"k": Array(4)}]

        def f(w=Array(0)):
            return VALUE
        f.weights = Array(1, 2)

        class Model:
            weights = Array(5)

            def get(self):
                return VALUE

        def __hotswap_verify__():
            assert f() == VALUE
        """)
    mod = project.load("arrays", ARRAY + "VALUE = 1\n" + body)
    f, weights = mod.f, mod.f.weights
    result = project.reload("arrays", ARRAY + "VALUE = 2\n" + body)
    assert result.ok, result.error
    assert mod.f is f
    assert f() == 2
    assert mod.Model().get() == 2

    result = hotswap.rollback("arrays")
    assert result.ok, result.error
    assert f() == 1
    assert f.weights is weights  # the original object, not the equal-looking copy
    assert mod.Model().get() == 1

    # Nothing was left half restored: the next good edit applies.
    result = project.reload("arrays", ARRAY + "VALUE = 3\n" + body)
    assert result.ok, result.error
    assert f() == 3


def test_update_hostile_values_never_break_reload_or_rollback(project):
    body = src("""
        HOSTILE = Hostile()
        LIAR = Liar()
        ITEMS = [Hostile(), {"k": Hostile()}, Liar()]

        def f(h=HOSTILE, *, k=Hostile()):
            return VALUE
        f.hostile = Hostile()

        def make():
            held = Hostile()
            def inner():
                return held, VALUE
            return inner
        inner = make()

        class Model:
            hostile = Hostile()
            liar = Liar()

            def get(self):
                return VALUE

        class Odd(metaclass=Meta):
            def get(self):
                return VALUE
        """)
    mod = project.load("hostile", ARRAY + "VALUE = 1\n" + body)
    f, hostile = mod.f, mod.f.hostile
    for value in (2, 3):
        result = project.reload("hostile", ARRAY + f"VALUE = {value}\n" + body)
        assert result.ok, result.error
        assert f() == value
        assert mod.inner()[1] == value
        assert mod.Model().get() == value
        assert mod.Odd().get() == value
    result = hotswap.rollback("hostile", to=1)
    assert result.ok, result.error
    assert f() == 1
    assert f.hostile is hostile


def test_update_elementwise_equality_on_first_reload_compares_by_identity(project):
    source = ARRAY + src("""
        def f():
            return 1
        f.weights = Array(1, 2)
        """)
    mod = project.load("arrays", source)
    f = mod.f
    result = project.reload("arrays", source.replace("return 1", "return 2"))
    assert result.ok, result.error
    assert f() == 2
    assert "f" in result.changes.changed


# --- defect 4: a held lru_cache reference follows every edit ---------------------------------


def test_update_held_lru_cache_reference_follows_every_edit(reloading):
    source = src("""
        import functools

        @functools.lru_cache(maxsize=None)
        def rate():
            return 1
        """)
    rates = reloading.load("rates", source)
    rate = rates.rate
    assert rate() == 1
    for value in (2, 3, 4):
        result = reloading.reload("rates", source.replace("return 1", f"return {value}"))
        assert result.ok, result.error
        assert rates.rate() == value
        assert rate() == value


def test_update_changed_lru_cache_settings_apply_and_old_reference_follows(reloading):
    source = src("""
        import functools

        @functools.lru_cache(maxsize=8)
        def rate():
            return 1
        """)
    rates = reloading.load("rates", source)
    rate = rates.rate
    assert rate() == 1
    changed = source.replace("maxsize=8", "maxsize=16").replace("return 1", "return 2")
    result = reloading.reload("rates", changed)
    assert result.ok, result.error
    assert rates.rate.cache_parameters()["maxsize"] == 16  # the new decorator's settings
    assert rate() == 2
    result = reloading.reload("rates", changed.replace("return 2", "return 3"))
    assert result.ok, result.error
    assert rates.rate() == 3
    assert rate() == 3  # the replaced wrapper still reaches the newest code, cache emptied


# --- defect 5: decorators from another module ------------------------------------------------

HELPER = """
import functools


def logged(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        return ("logged", fn(*args, **kwargs))
    return wrapper


def tagged(tag):
    def decorate(fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            return (tag, fn(*args, **kwargs))
        return wrapper
    return decorate
"""


def test_update_decorator_from_another_module_old_references_run_new_code(reloading):
    reloading.load("helpers", HELPER)
    source = src('''
        import contextlib
        from helpers import logged, tagged

        @logged
        def work(x):
            """v1"""
            return x + 1

        @tagged("t")
        def labelled():
            return 1

        @contextlib.contextmanager
        def opened():
            yield "v1"
        ''')
    mod = reloading.load("users", source)
    work, labelled, opened = mod.work, mod.labelled, mod.opened
    new = source.replace("x + 1", "x + 2").replace('"""v1"""', '"""v2"""')
    new = new.replace("return 1", "return 2").replace('yield "v1"', 'yield "v2"')
    result = reloading.reload("users", new)
    assert result.ok, result.error
    assert set(result.changes.changed) >= {"work", "labelled", "opened"}
    assert mod.work is work
    assert mod.labelled is labelled
    assert mod.opened is opened
    assert work(1) == ("logged", 3)
    assert work.__doc__ == "v2"
    assert labelled() == ("t", 2)
    with opened() as value:
        assert value == "v2"

    result = hotswap.rollback("users")
    assert result.ok, result.error
    assert work(1) == ("logged", 2)
    assert work.__doc__ == "v1"
    with opened() as value:
        assert value == "v1"


def test_update_changed_decorator_arguments_from_another_module_apply(reloading):
    reloading.load("helpers", HELPER)
    source = src("""
        from helpers import tagged

        @tagged("a")
        def labelled():
            return 1
        """)
    mod = reloading.load("users", source)
    held = mod.labelled
    result = reloading.reload("users", source.replace('"a"', '"b"'))
    assert result.ok, result.error
    assert mod.labelled() == ("b", 1)  # the new decorator's argument
    result = reloading.reload("users", source.replace('"a"', '"b"').replace("1", "2"))
    assert result.ok, result.error
    assert mod.labelled() == ("b", 2)
    assert held() == ("a", 2)  # the old wrapper, still reaching the newest function


# --- defect 6: rollback restores every object by identity ------------------------------------


def test_update_failed_migrate_restores_equal_but_distinct_values_by_identity(reloading):
    source = src("""
        def f(*, k=1) -> int:
            return 1
        f.config = {"a": 1}
        f.items = [1, 2]
        """)
    mod = reloading.load("exact", source)
    f = mod.f
    before = (f.__code__, f.__defaults__, f.__kwdefaults__, f.__annotations__)
    config, items = f.config, f.items
    failing = source.replace("return 1", "return 2") + src("""
        def __hotswap_migrate__(old):
            raise RuntimeError("no")
        """)
    result = reloading.reload("exact", failing)
    assert not result.ok
    assert result.rolled_back
    assert (f.__code__, f.__defaults__, f.__kwdefaults__, f.__annotations__) == before
    assert f.__kwdefaults__ is before[2]
    assert f.__annotations__ is before[3]
    assert f.config is config
    assert f.items is items
    assert f() == 1


def test_update_rollback_restores_every_object_by_identity(reloading):
    source = src("""
        def f(*, k=1) -> int:
            return 1
        f.config = {"a": 1}

        class C:
            table = {"a": 1}

            def get(self, *, k=1) -> int:
                return 1
        """)
    mod = reloading.load("exact", source)
    f, get = mod.f, mod.C.get
    kwdefaults, annotations, config = f.__kwdefaults__, f.__annotations__, f.config
    table, get_kwdefaults = mod.C.table, get.__kwdefaults__
    result = reloading.reload("exact", source.replace("return 1", "return 2"))
    assert result.ok, result.error
    assert f() == 2
    result = hotswap.rollback("exact")
    assert result.ok, result.error
    assert f() == 1
    assert f.__kwdefaults__ is kwdefaults
    assert f.__annotations__ is annotations
    assert f.config is config
    assert mod.C.table is table
    assert mod.C.get is get
    assert get.__kwdefaults__ is get_kwdefaults


# --- defect 8: records of modules that left sys.modules --------------------------------------


def test_transaction_records_of_departed_modules_are_dropped(project):
    refs = []
    for index in range(20):
        name = f"gone_{index}"
        mod = project.load(name, "def f():\n    return 1\n")
        result = project.reload(name, "def f():\n    return 2\n")
        assert result.ok, result.error
        refs.append(weakref.ref(mod.f))
        del sys.modules[name]
    del mod
    project.load("stays", "X = 1\n")
    result = project.reload("stays", "X = 2\n")
    assert result.ok, result.error
    assert set(_transaction.module_statuses()) == {"stays"}
    gc.collect()
    # Nothing of theirs is kept alive: their snapshots went with the records.
    assert [ref for ref in refs if ref() is not None] == []


def test_transaction_record_of_reimported_module_is_dropped(project):
    old = project.load("again", "def f():\n    return 1\n")
    assert project.reload("again", "def f():\n    return 2\n").ok
    ref = weakref.ref(old.f)
    del sys.modules["again"], old
    project.load("again", "def f():\n    return 3\n")  # a new module under the same name
    project.load("other", "X = 1\n")
    assert project.reload("other", "X = 2\n").ok
    gc.collect()
    assert ref() is None


def test_update_rollback_empties_lru_caches_filled_by_the_code_it_took_away(reloading):
    source = src("""
        import functools

        @functools.lru_cache(maxsize=None)
        def rate():
            return 1
        """)
    rates = reloading.load("rates", source)
    rate = rates.rate
    assert rate() == 1
    result = reloading.reload("rates", source.replace("return 1", "return 2"))
    assert result.ok, result.error
    assert rate() == 2  # cached by version 2
    result = hotswap.rollback("rates")
    assert result.ok, result.error
    assert rate() == 1


def test_update_verify_sees_new_results_and_failure_leaves_no_stale_cache(reloading):
    source = src("""
        import functools

        @functools.lru_cache(maxsize=None)
        def rate():
            return 1
        """)
    rates = reloading.load("rates", source)
    rate = rates.rate
    assert rate() == 1
    failing = source.replace("return 1", "return 2") + src("""
        def __hotswap_verify__():
            assert rate() == 2  # the new code's result, not the cached one
            raise RuntimeError("unhealthy")
        """)
    result = reloading.reload("rates", failing)
    assert not result.ok
    assert "unhealthy" in str(result.error)
    assert rate() == 1  # rolled back, and not the result version 2 cached during verify


def test_transaction_module_reloaded_by_object_outside_sys_modules_keeps_its_record(project):
    mod = project.load("detached", "def f():\n    return 1\n")
    del sys.modules["detached"]
    project.write("detached", "def f():\n    return 2\n")
    assert hotswap.reload(mod).version == 2
    project.write("detached", "def f():\n    return 3\n")
    result = hotswap.reload(mod)
    assert result.ok, result.error
    assert result.version == 3  # its own reload never forgets it
    assert hotswap.rollback(mod).ok
    assert mod.f() == 2


def test_update_wrapper_of_an_unchanged_decorator_of_the_module_is_kept_untouched(reloading):
    source = src("""
        import functools

        def logged(fn):
            @functools.wraps(fn)
            def wrapper(*args, **kwargs):
                return ("logged", fn(*args, **kwargs))
            return wrapper

        @logged
        def work(x):
            return x + 1
        """)
    mod = reloading.load("m", source)
    work = mod.work
    wrapper_code = work.__code__
    for step in (2, 3):
        result = reloading.reload("m", source.replace("x + 1", f"x + {step}"))
        assert result.ok, result.error
        assert "work" in result.changes.changed
        assert mod.work is work
        # The wrapper runs its own code (no trampoline hop); the function inside changed.
        assert work.__code__ is wrapper_code
        assert work(1) == ("logged", 1 + step)
    assert hotswap.rollback("m", to=1).ok
    assert work(1) == ("logged", 2)
