"""In-place updates are exact and never tear a function (issue 9): one regression test per
defect, built from its reproducer."""

from __future__ import annotations

import sys
import textwrap
import threading
import types
from typing import Any

from hotswap import _snapshot
from hotswap._update import update_function


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
    call: Any, threads: int, stop: threading.Event
) -> tuple[list[threading.Thread], list[BaseException], list[int]]:
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

    workers = [threading.Thread(target=loop, args=(i,), daemon=True) for i in range(threads)]
    for worker in workers:
        worker.start()
    started.wait()
    return workers, errors, counts


# --- defect 2: a function is torn while other threads call it ---------------------------------


def test_update_function_switch_is_atomic_for_concurrent_callers():
    sources = versions_adding_parameters(120)
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
        workers, errors, counts = run_callers(call, 4, stop)
        try:
            for source in sources[1:]:
                update_function(live, make(source))
                # Every caller gets to call between two updates at least once in a while.
                mark = sum(counts)
                while sum(counts) == mark and not errors:
                    threading.Event().wait(0.0005)
        finally:
            stop.set()
            for worker in workers:
                worker.join(timeout=60)
    finally:
        sys.setswitchinterval(previous)
    assert errors == []
    assert wrong == []
    assert live() == expected_total(len(sources) - 1)


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
    sources = versions_adding_parameters(2)
    namespace: dict[str, Any] = {}
    live = make(sources[0], namespace)
    stop = threading.Event()
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        workers, errors, _ = run_callers(live, 4, stop)
        try:
            for _ in range(150):
                state = _snapshot.capture(namespace, "<test>")
                update_function(live, make(sources[1]))
                state.restore(namespace)
        finally:
            stop.set()
            for worker in workers:
                worker.join(timeout=60)
    finally:
        sys.setswitchinterval(previous)
    assert errors == []
    assert live() == expected_total(0)
