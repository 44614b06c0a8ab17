"""Threads keep calling while hundreds of versions are applied: no call ever fails or runs a
mix of two versions (issue 9, defect 2)."""

from __future__ import annotations

import sys
import threading
from typing import Any

VERSIONS = 300
THREADS = 8
# Each version adds one optional parameter to the callables of one of MODULES modules in
# turn, so no callable grows to hundreds of parameters and each reload stays small.
MODULES = 10
KINDS = ("plain", "served", "inner")


def source(count: int) -> str:
    """A module whose callables take ``count`` optional parameters and return
    ``total(count)`` from their code, their defaults and (the closure) a cell: a call that
    mixes the code of one version with the defaults or cells of another returns another
    total, or raises."""
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


def total(count: int) -> int:
    return (count - 1) * 1000 + count


def test_update_stress_threads_calling_through_300_reloads_see_no_error(project, threads_build):
    modules = [project.load(f"stressed{i}", source(1)) for i in range(MODULES)]
    # References held since version 1: functions, @reloadable proxies, closures, methods of
    # old instances; the threads call these and the modules' current names.
    held: list[Any] = [getattr(m, kind) for m in modules for kind in KINDS]
    held += [m.Worker().run for m in modules]
    valid = {total(count) for count in range(1, VERSIONS + 2)}
    errors: list[BaseException] = []
    mixed: list[tuple[str, object]] = []
    calls = [0] * THREADS
    stop = threading.Event()
    started = threading.Barrier(THREADS + 1)

    def call(index: int) -> None:
        started.wait()
        while not stop.is_set():
            current = [getattr(m, kind) for m in modules for kind in KINDS]
            current += [m.Worker().run for m in modules]
            for function in (*held, *current):
                try:
                    value = function()
                except BaseException as error:  # any exception at all is the defect
                    errors.append(error)
                    continue
                if value not in valid:
                    mixed.append((function.__name__, value))
            calls[index] += 1

    # A short switch interval interleaves the threads more often (more chances to see a torn
    # switch), and gives the GIL back to this thread promptly after each of its file writes.
    previous = sys.getswitchinterval()
    sys.setswitchinterval(0.00001)
    threads = [threading.Thread(target=call, args=(i,), daemon=True) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    started.wait()
    counts = [1] * MODULES
    try:
        for version in range(VERSIONS):
            index = version % MODULES
            counts[index] += 1
            result = project.reload(f"stressed{index}", source(counts[index]))
            assert result.ok, result.error
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=120)
        sys.setswitchinterval(previous)
    assert errors == []
    assert mixed == []
    assert all(count > 0 for count in calls)
    expected = [total(counts[i]) for i in range(MODULES) for _ in KINDS]
    expected += [total(count) for count in counts]
    assert [function() for function in held] == expected
