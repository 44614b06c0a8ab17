"""@reloadable stand-ins: identity, introspection, staging and rollback (DESIGN §4, §5.2)."""

from __future__ import annotations

import asyncio
import functools
import inspect
import pickle
import sys
import textwrap

import pytest

import hotswap

SOURCE = textwrap.dedent(
    """
    import hotswap

    VERSION = 1

    @hotswap.reloadable
    def handler(request, *, loud=False):
        "Handle a request."
        return ("handler", VERSION, request)

    @hotswap.reloadable
    async def fetch():
        return ("fetch", VERSION)

    @hotswap.reloadable
    def numbers():
        yield VERSION

    @hotswap.reloadable
    class Service:
        def __init__(self):
            self.calls = 0

        @hotswap.reloadable
        def serve(self):
            self.calls += 1
            return ("serve", VERSION)

        @staticmethod
        @hotswap.reloadable
        def static_first():
            return ("static", VERSION)

        @hotswap.reloadable
        @staticmethod
        def static_last():
            return ("static", VERSION)

        @classmethod
        @hotswap.reloadable
        def class_first(cls):
            return (cls.__name__, VERSION)

        @hotswap.reloadable
        @classmethod
        def class_last(cls):
            return (cls.__name__, VERSION)
    """
)


def version(n: int) -> str:
    return SOURCE.replace("VERSION = 1", f"VERSION = {n}")


def test_reloadable_identity_is_stable_across_100_reloads(project):
    mod = project.load("svc", SOURCE)
    held = {
        "handler": mod.handler,
        "fetch": mod.fetch,
        "numbers": mod.numbers,
        "Service": mod.Service,
        "serve": mod.Service.__dict__["serve"],
        "static_first": mod.Service.__dict__["static_first"].__func__,
        "class_last": mod.Service.__dict__["class_last"].__func__,
    }
    service = mod.Service()
    bound = service.serve
    for n in range(2, 102):
        result = project.reload("svc", version(n))
        assert result.ok, result.error
    assert mod.handler is held["handler"]
    assert mod.fetch is held["fetch"]
    assert mod.Service is held["Service"]
    assert mod.Service.__dict__["serve"] is held["serve"]
    assert mod.Service.__dict__["static_first"].__func__ is held["static_first"]
    assert mod.Service.__dict__["class_last"].__func__ is held["class_last"]
    assert held["handler"]("r") == ("handler", 101, "r")
    assert bound() == ("serve", 101)
    assert service.calls == 1


def test_reloadable_every_decorator_combination_runs_the_new_code(reloading):
    mod = reloading.load("svc", SOURCE)
    from svc import Service, fetch, handler, numbers

    service = Service()
    assert reloading.reload("svc", version(2)).ok
    assert handler(1) == ("handler", 2, 1)
    assert asyncio.run(fetch()) == ("fetch", 2)
    assert list(numbers()) == [2]
    assert service.serve() == ("serve", 2)
    assert Service.static_first() == ("static", 2)
    assert service.static_last() == ("static", 2)
    assert Service.class_first() == ("Service", 2)
    assert service.class_last() == ("Service", 2)
    assert isinstance(service, mod.Service)

    class Sub(Service):
        pass

    assert Sub().serve() == ("serve", 2)
    assert Sub.class_last() == ("Sub", 2)


def test_reloadable_looks_like_the_function_to_tools(project):
    mod = project.load("svc", SOURCE)
    for target in (mod.handler, mod.Service.serve):
        assert target.__wrapped__ is not None
    assert str(inspect.signature(mod.handler)) == "(request, *, loud=False)"
    assert mod.handler.__name__ == "handler"
    assert mod.handler.__qualname__ == "handler"
    assert mod.handler.__doc__ == "Handle a request."
    assert inspect.iscoroutinefunction(mod.fetch)
    assert inspect.isgeneratorfunction(mod.numbers)
    assert str(inspect.signature(mod.Service.serve)) == "(self)"
    assert mod.Service.serve.__qualname__ == "Service.serve"
    assert pickle.loads(pickle.dumps(mod.handler)) is mod.handler
    assert pickle.loads(pickle.dumps(mod.Service.serve)) is mod.Service.serve

    @functools.wraps(mod.handler)
    def outer(*args, **kwargs):
        return mod.handler(*args, **kwargs)

    assert outer.__name__ == "handler"
    assert str(inspect.signature(outer)) == "(request, *, loud=False)"
    assert project.reload("svc", version(2)).ok
    assert outer(0) == ("handler", 2, 0)
    assert inspect.iscoroutinefunction(mod.fetch)


def test_reloadable_failed_reload_keeps_the_old_targets(reloading):
    mod = reloading.load("svc", SOURCE)
    service = mod.Service()
    result = reloading.reload("svc", version(2) + "\nraise RuntimeError('late failure')\n")
    assert result.rolled_back
    assert mod.handler(0) == ("handler", 1, 0)
    assert service.serve() == ("serve", 1)
    assert "__hotswap_staged__" not in mod.Service.__dict__["serve"].__dict__


def test_reloadable_failed_verify_restores_committed_targets(reloading):
    mod = reloading.load("svc", SOURCE)
    new = version(2) + "\ndef __hotswap_verify__():\n    raise AssertionError('unhealthy')\n"
    result = reloading.reload("svc", new)
    assert isinstance(result.error, hotswap.VerificationError)
    assert mod.handler(0) == ("handler", 1, 0)
    assert mod.Service().serve() == ("serve", 1)


def test_reloadable_rollback_restores_targets(reloading):
    mod = reloading.load("svc", SOURCE)
    service = mod.Service()
    assert reloading.reload("svc", version(2)).ok
    assert reloading.reload("svc", version(3)).ok
    assert hotswap.rollback("svc", to=2).ok
    assert mod.handler(0) == ("handler", 2, 0)
    assert service.serve() == ("serve", 2)
    assert hotswap.rollback("svc", to=1).ok
    assert mod.handler(0) == ("handler", 1, 0)
    assert service.serve() == ("serve", 1)


def test_reloadable_private_function_is_held_to_strict_checks(reloading):
    source = "import hotswap\n\n@hotswap.reloadable\ndef _hook(a, b):\n    return a + b\n"
    mod = reloading.load("hooks", source)
    result = reloading.reload("hooks", source.replace("(a, b)", "(a)").replace("a + b", "a"))
    assert isinstance(result.error, hotswap.IncompatibleChangeError)
    assert mod._hook(1, 2) == 3


def test_reloadable_method_starting_to_use_super(reloading):
    source = textwrap.dedent(
        """
        import hotswap

        class Base:
            def name(self):
                return "base"

        class Child(Base):
            @hotswap.reloadable
            def name(self):
                return "child"
        """
    )
    mod = reloading.load("sup", source)
    child = mod.Child()
    new = source.replace('return "child"', 'return "child+" + super().name()')
    assert reloading.reload("sup", new).ok
    assert child.name() == "child+base"


def test_reloadable_fresh_import_gets_fresh_standins(project):
    mod = project.load("svc", SOURCE)
    old = mod.handler
    del sys.modules["svc"]
    again = __import__("svc")
    assert again.handler is not old
    assert again.handler(0) == ("handler", 1, 0)


def test_reloadable_rejects_what_it_cannot_wrap():
    with pytest.raises(TypeError, match="functions, methods and classes"):
        hotswap.reloadable(42)  # type: ignore[call-overload]


def test_reloadable_nameless_callable_gets_a_proxy():
    add_one = hotswap.reloadable(functools.partial(int.__add__, 1))
    assert add_one(2) == 3


def test_reloadable_standin_takes_the_targets_parameters_itself(reloading):
    # The fast path of issue 26: a stand-in whose own code takes its target's parameters
    # by name (no proxy, no (*args, **kwargs)); tools that do not follow __wrapped__ see the
    # real signature, before and after a reload changes it.
    mod = reloading.load("svc", SOURCE)
    assert str(inspect.signature(mod.handler, follow_wrapped=False)) == "(request, *, loud=False)"
    assert str(inspect.signature(mod.Service.serve, follow_wrapped=False)) == "(self)"
    new = version(2).replace("(request, *, loud=False)", "(request, extra=3, *, loud=True)")
    new = new.replace("def serve(self):", "def serve(self, times=1):")
    assert reloading.reload("svc", new).ok
    expected = "(request, extra=3, *, loud=True)"
    assert str(inspect.signature(mod.handler, follow_wrapped=False)) == expected
    assert str(inspect.signature(mod.Service.serve, follow_wrapped=False)) == "(self, times=1)"
    assert mod.handler(request=0) == ("handler", 2, 0)
    assert mod.Service().serve(times=2) == ("serve", 2)


def test_reloadable_standin_reads_what_inner_decorators_set(project):
    source = textwrap.dedent(
        """
        import hotswap

        def mark(function):
            function.marked = "yes"
            return function

        @hotswap.reloadable
        @mark
        def handler():
            return 1
        """
    )
    mod = project.load("marked", source)
    assert mod.handler.marked == "yes"
    assert project.reload("marked", source.replace("return 1", "return 2")).ok
    assert mod.handler.marked == "yes"
    assert mod.handler() == 2


def test_reloadable_target_that_is_not_a_function_in_a_later_version(reloading):
    source = textwrap.dedent(
        """
        import functools
        import hotswap

        @hotswap.reloadable
        def square(x):
            return x * x

        class Maths:
            @hotswap.reloadable
            def double(self, x):
                return 2 * x
        """
    )
    mod = reloading.load("maths", source)
    square, double = mod.square, mod.Maths.__dict__["double"]
    cached = source.replace("def square", "@functools.lru_cache\ndef square")
    cached = cached.replace("    def double", "    @functools.cache\n    def double")
    cached = cached.replace("x * x", "x * x + 1").replace("2 * x", "2 * x + 1")
    result = reloading.reload("maths", cached)
    assert result.ok, result.error
    assert mod.square is square
    assert mod.Maths.__dict__["double"] is double
    assert mod.square(3) == 10
    assert mod.Maths().double(3) == 7
