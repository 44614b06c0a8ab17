"""A function's switch to new code is atomic for its callers (issue 9, defect 2): a call made
at any moment, in any thread, runs one whole version: never the code of one with the defaults
or closure cells of another."""

from __future__ import annotations

import sys
import threading
import types
from pathlib import Path
from typing import Any

import hotswap
from hotswap._engine import snapshot as _snapshot
from hotswap._engine.switch import switch_function
from hotswap._engine.update import update_function

# Switches the threaded tests make: a torn switch shows up in a few hundred.
SWITCHES = 400


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


def test_update_function_switch_is_atomic_for_concurrent_callers(threads_build):
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


def test_update_function_reload_under_callers_never_breaks_one(project, threads_build):
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


def test_update_rollback_switch_is_atomic_for_concurrent_callers(threads_build):
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


def test_update_reloadable_defaults_every_intermediate_state_is_one_whole_version(reloading):
    # A @reloadable stand-in passes every argument on by name, its defaults a copy of its
    # target's: a default whose value changes must reach a call together with the code that
    # goes with it, whether the target is updated in place (the function's decorators did
    # not change), replaced at commit (the class body ran again) or restored by a rollback.
    def source(n: int, tail: str = "") -> str:
        return (
            "import hotswap\n\n"
            f"@hotswap.reloadable\ndef served(a={n}, *, k={n}):\n"
            f"    return (a + k) * 1000 + {n}\n\n"
            f"class Worker:\n    @hotswap.reloadable\n"
            f"    def run(self, a={n}, *, k={n}):\n        return (a + k) * 1000 + {n}\n"
            f"{tail}"
        )

    def whole(n: int) -> int:
        return 2 * n * 1000 + n

    mod = reloading.load("defaulted", source(1))
    worker = mod.Worker()
    held = [mod.served, worker.run]

    def call_all() -> tuple[object, ...]:
        return tuple(function() for function in held)

    seen = probe_every_line(call_all, lambda: reloading.reload("defaulted", source(2)))
    assert len(seen) > 100
    assert [value for value in seen if isinstance(value, Exception)] == []
    assert {value for values in seen for value in values} <= {whole(1), whole(2)}  # type: ignore[union-attr]
    assert call_all() == (whole(2),) * 2

    failing = source(3, "raise RuntimeError('boom')\n")
    seen = probe_every_line(call_all, lambda: reloading.reload("defaulted", failing))
    assert [value for value in seen if isinstance(value, Exception)] == []
    assert {value for values in seen for value in values} <= {whole(2), whole(3)}  # type: ignore[union-attr]
    assert call_all() == (whole(2),) * 2
    assert hotswap.rollback("defaulted", to=1).ok
    assert call_all() == (whole(1),) * 2
