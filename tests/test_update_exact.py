"""In-place updates are exact and never tear a function (issue 9): one regression test per
defect, built from its reproducer."""

from __future__ import annotations

import gc
import sys
import textwrap
import threading
import types
import weakref
from pathlib import Path
from typing import Any

import hotswap
from hotswap import _snapshot, _transaction
from hotswap._switch import switch_function
from hotswap._update import update_function

# Switches the threaded atomicity tests make: a torn switch shows up in a few hundred.
SWITCHES = 400


def src(text: str) -> str:
    return textwrap.dedent(text)


def versions_adding_parameters(count: int) -> list[str]:
    """Version n of ``g`` takes n optional parameters and returns their sum plus n: every
    version is a change strict accepts, and any torn call (code of one version, defaults of
    another) raises or returns a wrong total."""
    sources = []
    for n in range(count):
        params = ", ".join(f"p{i}={i}" for i in range(n))
        total = " + ".join([f"p{i}" for i in range(n)] + [str(n)])
        sources.append(f"def g({params}):\n    return {total}\n")
    return sources


def expected_total(n: int) -> int:
    return sum(range(n)) + n


def make(source: str, namespace: dict[str, Any] | None = None) -> types.FunctionType:
    namespace = {} if namespace is None else namespace
    exec(compile(source, "<test>", "exec"), namespace)
    function: types.FunctionType = namespace["g"]
    return function


def run_callers(
    call: Any, threads: int, stop: threading.Event, progress: threading.Event | None = None
) -> tuple[list[threading.Thread], list[BaseException], list[int]]:
    """Start ``threads`` threads calling ``call`` until ``stop``; ``progress`` is set after
    every call."""
    errors: list[BaseException] = []
    counts = [0] * threads
    started = threading.Barrier(threads + 1)

    def loop(index: int) -> None:
        started.wait()
        while not stop.is_set():
            try:
                call()
            except BaseException as error:  # any exception at all is the defect
                errors.append(error)
            counts[index] += 1
            if progress is not None:
                progress.set()

    workers = [threading.Thread(target=loop, args=(i,), daemon=True) for i in range(threads)]
    for worker in workers:
        worker.start()
    started.wait()
    return workers, errors, counts


# --- defect 2: a function is torn while other threads call it ---------------------------------


def test_update_function_switch_is_atomic_for_concurrent_callers():
    # Many switches between a few versions under a one-microsecond switch interval: a torn
    # switch is a narrow window, which hundreds of switches hit (the probes below check every
    # intermediate state deterministically).
    sources = versions_adding_parameters(10)
    live = make(sources[0])
    totals = {expected_total(n) for n in range(len(sources))}
    wrong: list[object] = []
    stop = threading.Event()

    def call() -> None:
        value = live()
        if value not in totals:
            wrong.append(value)

    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible: tear if it can
    try:
        progress = threading.Event()
        workers, errors, _ = run_callers(call, 4, stop, progress)
        try:
            for step in range(1, SWITCHES + 1):
                update_function(live, make(sources[step % len(sources)]))
                # Some call runs between two updates, so every switch has callers around it.
                progress.clear()
                assert progress.wait(timeout=60)
        finally:
            stop.set()
            for worker in workers:
                worker.join(timeout=60)
    finally:
        sys.setswitchinterval(previous)
    assert errors == []
    assert wrong == []
    assert live() == expected_total(SWITCHES % len(sources))


def probe_every_line(call: Any, action: Any) -> list[object]:
    """Run ``action`` and call ``call`` between every two lines of hotswap's code that runs,
    as a thread switch there would: what each call returned or raised, in order."""
    seen: list[object] = []
    package = str(Path(hotswap.__file__).parent)

    def local(frame: types.FrameType, event: str, arg: object) -> Any:
        if event == "line":
            try:  # the trace function runs untraced: this call is not probed itself
                seen.append(call())
            except Exception as error:
                seen.append(error)
        return local

    def tracer(frame: types.FrameType, event: str, arg: object) -> Any:
        return local if frame.f_code.co_filename.startswith(package) else None

    sys.settrace(tracer)
    try:
        action()
    finally:
        sys.settrace(None)
    return seen


def test_update_function_every_intermediate_state_is_one_whole_version():
    sources = versions_adding_parameters(3)[1:]  # one optional parameter, then two
    namespace: dict[str, Any] = {}
    live = make(sources[0], namespace)
    state = _snapshot.capture(namespace, "<test>")
    valid = {expected_total(1), expected_total(2)}
    seen = probe_every_line(live, lambda: update_function(live, make(sources[1])))
    seen += probe_every_line(live, lambda: state.restore(namespace))
    assert len(seen) > 10  # the probes ran
    assert [value for value in seen if value not in valid] == []
    assert live() == expected_total(1)


def test_update_closure_every_intermediate_state_is_one_whole_version():
    source = "def make(offset):\n    def g(a={a}):\n        return a * 100 + offset\n    return g\n"
    namespace: dict[str, Any] = {}
    exec(source.format(a=1), namespace)
    live = namespace["live"] = namespace["make"](1)
    state = _snapshot.capture(namespace, "<test>")
    other: dict[str, Any] = {}
    exec(source.format(a=2), other)
    seen = probe_every_line(live, lambda: update_function(live, other["make"](2)))
    assert len(seen) > 10
    assert live() == 202
    seen += probe_every_line(live, lambda: state.restore(namespace))
    assert [value for value in seen if value not in (101, 202)] == []
    assert live() == 101


def test_update_function_switch_leaves_the_final_code_in_place():
    old, new = make("def g(a=1):\n    return a\n"), make("def g(a=1, b=2):\n    return a + b\n")
    update_function(old, new)
    # After the switch the function runs the new code itself: no trampoline left.
    assert old.__code__ is new.__code__
    assert old.__defaults__ is new.__defaults__
    assert old() == 3


def test_update_function_reload_under_callers_never_breaks_one(project):
    sources = versions_adding_parameters(40)
    mod = project.load("torn", sources[0])
    held = mod.g
    stop = threading.Event()

    def call() -> None:
        held()
        mod.g()

    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        workers, errors, _ = run_callers(call, 4, stop)
        try:
            for source in sources[1:]:
                result = project.reload("torn", source)
                assert result.ok, result.error
        finally:
            stop.set()
            for worker in workers:
                worker.join(timeout=60)
    finally:
        sys.setswitchinterval(previous)
    assert errors == []
    assert held() == expected_total(len(sources) - 1)


def test_update_rollback_switch_is_atomic_for_concurrent_callers():
    sources = versions_adding_parameters(3)[1:]  # one optional parameter, then two
    totals = {expected_total(1), expected_total(2)}
    namespace: dict[str, Any] = {}
    live = make(sources[0], namespace)
    wrong: list[object] = []
    stop = threading.Event()

    def call() -> None:
        value = live()
        if value not in totals:
            wrong.append(value)

    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        progress = threading.Event()
        workers, errors, _ = run_callers(call, 4, stop, progress)
        try:
            for _ in range(SWITCHES // 2):
                state = _snapshot.capture(namespace, "<test>")
                update_function(live, make(sources[1]))
                progress.clear()
                assert progress.wait(timeout=60)
                state.restore(namespace)
                progress.clear()
                assert progress.wait(timeout=60)
        finally:
            stop.set()
            for worker in workers:
                worker.join(timeout=60)
    finally:
        sys.setswitchinterval(previous)
    assert errors == []
    assert wrong == []
    assert live() == expected_total(1)


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


def test_update_switch_function_without_cells_keeps_the_closure_working():
    namespace: dict[str, Any] = {}
    exec(
        "def make():\n    offset = 5\n    def g(a=1):\n        return a + offset\n    return g\n",
        namespace,
    )
    live = namespace["make"]()
    code, defaults = live.__code__, live.__defaults__
    switch_function(live, code, (10,), None, None)
    assert live() == 15
    assert live.__defaults__ == (10,)
    assert live.__code__ is code
    switch_function(live, code, defaults, None, None)
    assert live() == 6


def test_update_function_call_in_flight_keeps_reading_its_own_cells():
    # A generator is a call of the old code that is still running: after the update it must
    # go on reading the old version's cell, while new calls run the new version.
    def make(value: int) -> Any:
        def produce() -> Any:
            yield value
            yield value

        return produce

    old, new = make(1), make(2)
    running = old()
    assert next(running) == 1
    update_function(old, new)
    assert next(running) == 1
    assert list(old()) == [2, 2]


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


def test_update_reload_every_intermediate_state_is_one_whole_version(project):
    def source(count: int) -> str:
        signature = ", ".join(f"p{i}={i}" for i in range(count))
        result = f"p{count - 1} * 1000 + {count}"
        return (
            "import hotswap\n\n"
            f"def plain({signature}):\n    return {result}\n\n"
            f"class Worker:\n    def run(self, {signature}):\n        return {result}\n\n"
            f"@hotswap.reloadable\ndef served({signature}):\n    return {result}\n\n"
            f"def make():\n    offset = {count}\n"
            f"    def inner({signature}):\n        return p{count - 1} * 1000 + offset\n"
            f"    return inner\n\n"
            "inner = make()\n"
        )

    mod = project.load("probed", source(1))
    held = [mod.plain, mod.Worker().run, mod.served, mod.inner]

    def call_all() -> tuple[object, ...]:
        return tuple(function() for function in held)

    seen = probe_every_line(call_all, lambda: project.reload("probed", source(2)))
    assert len(seen) > 100
    assert [value for value in seen if isinstance(value, Exception)] == []
    # Each callable runs version 1 or version 2 whole at every point of the reload.
    assert {value for values in seen for value in values} <= {1, 1002}  # type: ignore[union-attr]
    assert call_all() == (1002,) * 4

    # A version that fails after its definitions ran is rolled back: whole versions again.
    failing = source(3) + "raise RuntimeError('boom')\n"
    seen = probe_every_line(call_all, lambda: project.reload("probed", failing))
    assert [value for value in seen if isinstance(value, Exception)] == []
    assert {value for values in seen for value in values} <= {1002, 2003}  # type: ignore[union-attr]
    assert call_all() == (1002,) * 4


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
