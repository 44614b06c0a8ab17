"""In-place updates of functions, classes and instances (DESIGN §5.3)."""

from __future__ import annotations

import asyncio
import textwrap

import hotswap


def src(text: str) -> str:
    return textwrap.dedent(text)


def test_update_function_keeps_identity_and_takes_everything_new(reloading):
    mod = reloading.load(
        "m",
        src('''
        def f(a, b=1, *, c=2):
            """old doc"""
            return a + b + c
        f.tag = "old"
        '''),
    )
    f = mod.f
    result = reloading.reload(
        "m",
        src('''
        def f(a, b=10, *, c=20) -> int:
            """new doc"""
            return (a + b + c) * 100
        f.tag = "new"
        '''),
    )
    assert result.ok, result.error
    assert mod.f is f
    assert f(1) == 3100
    assert f.__defaults__ == (10,)
    assert f.__kwdefaults__ == {"c": 20}
    assert f.__doc__ == "new doc"
    assert f.__annotations__ == {"return": int}
    assert f.tag == "new"


def test_update_closure_layout_change_still_reaches_new_code(reloading):
    mod = reloading.load(
        "m",
        src("""
        def make():
            def inner():
                return 1
            return inner
        f = make()
        """),
    )
    f = mod.f
    result = reloading.reload(
        "m",
        src("""
        def make():
            extra = 41
            def inner():
                return extra + 1
            return inner
        f = make()
        """),
    )
    assert result.ok, result.error
    assert f() == 42


def test_update_method_that_starts_using_super(reloading):
    mod = reloading.load(
        "m",
        src("""
        class Base:
            def hello(self):
                return "base"

        class Child(Base):
            def hello(self):
                return "child"
        """),
    )
    child = mod.Child()
    hello = mod.Child.hello
    result = reloading.reload(
        "m",
        src("""
        class Base:
            def hello(self):
                return "base"

        class Child(Base):
            def hello(self):
                return "child+" + super().hello()
        """),
    )
    assert result.ok, result.error
    assert child.hello() == "child+base"
    assert hello(child) == "child+base"
    assert isinstance(child, mod.Child)
    assert result.changes.changed == ("Child.hello",)


def test_update_super_in_existing_method_binds_to_kept_class(reloading):
    source = src("""
        class Base:
            def hello(self):
                return "base"

        class Child(Base):
            def hello(self):
                return "child+" + super().hello()
        """)
    mod = reloading.load("m", source)
    child = mod.Child()
    result = reloading.reload("m", source.replace('"child+"', '"kid+"'))
    assert result.ok, result.error
    assert child.hello() == "kid+base"
    assert mod.Child().hello() == "kid+base"


def test_update_class_members_added_changed_removed(reloading):
    mod = reloading.load(
        "m",
        src("""
        class C:
            limit = 1
            def keep(self):
                return "keep"
            def change(self):
                return 1
            def drop(self):
                return "drop"
        """),
    )
    cls = mod.C
    obj = cls()
    keep = cls.__dict__["keep"]
    result = reloading.reload(
        "m",
        src("""
        class C:
            limit = 2
            def keep(self):
                return "keep"
            def change(self):
                return 2
            def new(self):
                return "new"
        """),
        policy="off",
    )
    assert result.ok, result.error
    assert mod.C is cls
    assert cls.__dict__["keep"] is keep
    assert obj.change() == 2
    assert obj.new() == "new"
    assert not hasattr(obj, "drop")
    assert cls.limit == 2
    assert result.changes.added == ("C.new",)
    assert result.changes.removed == ("C.drop",)
    assert set(result.changes.changed) == {"C", "C.change"}


def test_update_properties_static_and_class_methods(reloading):
    source = src("""
        class C:
            def __init__(self):
                self._v = 1

            @property
            def v(self):
                return self._v

            @v.setter
            def v(self, value):
                self._v = value

            @staticmethod
            def s():
                return "s1"

            @classmethod
            def c(cls):
                return ("c1", cls.__name__)
        """)
    mod = reloading.load("m", source)
    obj = mod.C()
    prop = mod.C.__dict__["v"]
    new = (
        source.replace("return self._v\n", "return self._v * 10\n")
        .replace("self._v = value", "self._v = value + 1")
        .replace('"s1"', '"s2"')
        .replace('"c1"', '"c2"')
    )
    result = reloading.reload("m", new)
    assert result.ok, result.error
    assert mod.C.__dict__["v"] is prop
    obj.v = 4
    assert obj.v == 50
    assert mod.C.s() == "s2"
    assert obj.c() == ("c2", "C")


def test_update_nested_classes(reloading):
    source = src("""
        class Outer:
            class Inner:
                def who(self):
                    return "inner-1"
        """)
    mod = reloading.load("m", source)
    inner = mod.Outer.Inner
    obj = inner()
    result = reloading.reload("m", source.replace("inner-1", "inner-2"))
    assert result.ok, result.error
    assert mod.Outer.Inner is inner
    assert obj.who() == "inner-2"
    assert result.changes.changed == ("Outer.Inner.who",)


def test_update_wraps_decorator_old_references_run_new_code(reloading):
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
    result = reloading.reload("m", source.replace("x + 1", "x + 2"))
    assert result.ok, result.error
    assert mod.work is work
    assert work(1) == ("logged", 3)
    assert work.__wrapped__(1) == 3


def test_update_changed_decorator_is_reapplied(reloading):
    source = src("""
        import functools

        def tag(fn):
            @functools.wraps(fn)
            def wrapper():
                return "a:" + fn()
            return wrapper

        @tag
        def name():
            return "n"
        """)
    mod = reloading.load("m", source)
    name = mod.name
    result = reloading.reload("m", source.replace('"a:"', '"b:"'))
    assert result.ok, result.error
    assert mod.name() == "b:n"
    assert name() == "b:n"
    assert "name" in result.changes.changed


def test_update_lru_cache_on_unchanged_function_keeps_its_cache(reloading):
    source = src("""
        import functools
        calls = []

        @functools.lru_cache(maxsize=None)
        def cached(x):
            calls.append(x)
            return x * 2

        def other():
            return 1
        """)
    mod = reloading.load("m", source)
    cached = mod.cached
    cached(3)
    assert cached.cache_info().currsize == 1
    # The first reload has no old source: the baseline is the live objects.
    result = reloading.reload("m", source.replace("return 1", "return 2"))
    assert result.ok, result.error
    assert mod.cached is cached
    assert cached.cache_info().currsize == 1
    # The second reload diffs two sources.
    result = reloading.reload("m", source.replace("return 1", "return 3"))
    assert mod.cached is cached
    assert cached.cache_info().currsize == 1
    assert result.changes.changed == ("other",)


def test_update_lru_cache_on_changed_function_old_reference_runs_new_code(reloading):
    source = src("""
        import functools

        @functools.lru_cache(maxsize=None)
        def cached(x):
            return x * 2
        """)
    mod = reloading.load("m", source)
    old = mod.cached
    assert old(3) == 6
    result = reloading.reload("m", source.replace("x * 2", "x * 3"))
    assert result.ok, result.error
    assert mod.cached(3) == 9
    assert old(3) == 9  # the stale cache entry was cleared at commit


def test_update_async_functions_and_generators(reloading):
    source = src("""
        async def fetch():
            return 1

        def numbers():
            yield 1

        async def stream():
            yield 1
        """)
    mod = reloading.load("m", source)
    fetch, numbers, stream = mod.fetch, mod.numbers, mod.stream
    result = reloading.reload("m", source.replace("1", "2"))
    assert result.ok, result.error

    async def drain():
        return [x async for x in stream()]

    assert asyncio.run(fetch()) == 2
    assert list(numbers()) == [2]
    assert asyncio.run(drain()) == [2]


def test_update_dataclass_fields_change(reloading):
    source = src("""
        from dataclasses import dataclass

        @dataclass
        class Point:
            x: int
            y: int = 0

            def norm(self):
                return abs(self.x) + abs(self.y)
        """)
    mod = reloading.load("m", source)
    point_cls = mod.Point
    p = point_cls(1, 2)
    new = source.replace("y: int = 0", "y: int = 0\n    z: int = 5").replace(
        "abs(self.y)", "abs(self.y) + 100"
    )
    result = reloading.reload("m", new)
    assert result.ok, result.error
    assert mod.Point is point_cls
    assert p.norm() == 103
    assert point_cls(1).z == 5
    assert isinstance(p, mod.Point)


def test_update_enum_is_replaced_and_reported(reloading):
    source = src("""
        import enum

        class Color(enum.Enum):
            RED = 1
        """)
    mod = reloading.load("m", source)
    old = mod.Color
    result = reloading.reload("m", source + "    BLUE = 2\n")
    assert result.ok, result.error
    assert mod.Color is not old
    assert mod.Color.BLUE.value == 2
    assert result.changes.replaced == ("Color (it is an Enum)",)


def test_update_changed_bases_or_slots_replace_the_class(reloading):
    source = src("""
        class A:
            pass

        class B:
            pass

        class C(A):
            __slots__ = ("x",)
        """)
    mod = reloading.load("m", source)
    old = mod.C
    result = reloading.reload("m", source.replace("class C(A)", "class C(B)"))
    assert result.ok, result.error
    assert mod.C is not old
    assert result.changes.replaced == ("C (its bases changed)",)
    again = mod.C
    result = reloading.reload(
        "m", source.replace("class C(A)", "class C(B)").replace('("x",)', '("x", "y")')
    )
    assert mod.C is not again
    assert result.changes.replaced == ("C (its __slots__ changed)",)


def test_update_subclass_of_patched_class_keeps_isinstance(reloading):
    source = src("""
        class Base:
            def kind(self):
                return "base"

        class Child(Base):
            pass

        DEFAULT = Child()
        """)
    mod = reloading.load("m", source)
    base, child = mod.Base, mod.Child
    result = reloading.reload("m", source.replace('"base"', '"BASE"'))
    assert result.ok, result.error
    assert mod.Base is base
    assert mod.Child is child
    assert isinstance(mod.DEFAULT, base)
    assert isinstance(mod.DEFAULT, child)
    assert mod.DEFAULT.kind() == "BASE"


def test_update_unchanged_definitions_keep_their_objects(reloading):
    source = src("""
        def stable():
            return 1

        def moving():
            return 1

        class K:
            def m(self):
                return 1
        """)
    mod = reloading.load("m", source)
    stable, stable_code, k_m = mod.stable, mod.stable.__code__, mod.K.__dict__["m"]
    stable.attribute = "kept"
    # Moving, reformatting and commenting a definition is no change.
    new = "# a comment\n\n\n" + source.replace("return 1", "return  1  # same").replace(
        "def moving():\n    return  1  # same", "def moving():\n    return 2"
    )
    result = reloading.reload("m", new)
    assert result.ok, result.error
    assert result.changes.changed == ("moving",)
    # Unchanged, but moved three lines down: the same code, at its new lines (tracebacks).
    assert mod.stable.__code__.co_code == stable_code.co_code
    assert mod.stable.__code__.co_firstlineno == stable_code.co_firstlineno + 3
    assert stable.attribute == "kept"
    assert mod.K.__dict__["m"] is k_m


def test_update_first_reload_reports_only_what_changed(reloading):
    source = src("""
        import os
        LIMIT = 3

        def a():
            return 1

        def b():
            return 1

        class C:
            x = 1
            def m(self):
                return 1
        """)
    reloading.load("m", source)
    result = reloading.reload(
        "m", source.replace("def b():\n    return 1", "def b():\n    return 2")
    )
    assert result.ok, result.error
    assert result.changes.changed == ("b",)


def test_update_hotswap_reload_of_class_held_by_instance_methods(reloading):
    source = src("""
        class Counter:
            def __init__(self):
                self.n = 0
            def bump(self):
                self.n += 1
                return self.n
        """)
    mod = reloading.load("m", source)
    counter = mod.Counter()
    counter.bump()
    bump = counter.bump
    assert reloading.reload("m", source.replace("self.n += 1", "self.n += 10")).ok
    assert bump() == 11
    assert hotswap.status().modules["m"].version == 2


def test_update_instances_in_module_level_containers_keep_isinstance(reloading):
    source = src("""
        class Handler:
            def name(self):
                return "h1"

        HANDLERS = [Handler(), Handler()]
        BY_NAME = {"main": Handler()}
        """)
    mod = reloading.load("m", source)
    handler = mod.Handler
    assert reloading.reload("m", source.replace('"h1"', '"h2"')).ok
    assert all(isinstance(h, handler) for h in mod.HANDLERS)
    assert isinstance(mod.BY_NAME["main"], handler)
    assert mod.HANDLERS[0].name() == "h2"


def test_update_kind_change_applied_anyway_keeps_the_old_objects_kind(reloading):
    # An incompatible change (policy off): held references keep giving their callers what
    # they expect, an awaitable here, around the new result.
    mod = reloading.load("m", "async def fetch():\n    return 1\n")
    fetch = mod.fetch
    result = reloading.reload("m", "def fetch():\n    return 2\n", policy="off")
    assert result.ok, result.error
    assert asyncio.run(fetch()) == 2
