"""pinned() consistency, the bound, and calls from many threads during reloads (DESIGN §5.5)."""

from __future__ import annotations

import asyncio
import sys
import textwrap
import threading

import pytest

import hotswap
from hotswap._engine.pin import gate

PAIR = textwrap.dedent(
    """
    import hotswap

    VERSION = 1

    @hotswap.reloadable
    def first():
        return VERSION

    @hotswap.reloadable
    def second():
        return VERSION

    class Worker:
        @hotswap.reloadable
        def work(self):
            return VERSION
    """
)


def version(n: int) -> str:
    return PAIR.replace("VERSION = 1", f"VERSION = {n}")


def run_reload(name: str, results: list[hotswap.ReloadResult]) -> threading.Thread:
    thread = threading.Thread(target=lambda: results.append(hotswap.reload(name)))
    thread.start()
    return thread


def test_pinned_section_sees_one_version_while_a_reload_waits(project, threads_build):
    mod = project.load("pair", PAIR)
    project.write("pair", version(2))
    entered, proceed = threading.Event(), threading.Event()
    seen: list[int] = []

    def slow_request() -> None:
        with hotswap.pinned():
            seen.append(mod.first())
            entered.set()
            proceed.wait(10)
            seen.append(mod.second())

    request = threading.Thread(target=slow_request)
    request.start()
    assert entered.wait(10)
    results: list[hotswap.ReloadResult] = []
    reloader = run_reload("pair", results)
    assert gate.wait_for_writer(10)  # the reload is waiting at the gate
    proceed.set()
    request.join(10)
    reloader.join(10)
    assert seen == [1, 1]
    assert results[0].ok, results[0].error
    assert mod.first() == mod.second() == 2


def test_status_from_a_pinned_section_never_holds_a_waiting_reload_up(project):
    # A health endpoint inside the request's pin asks hotswap.status() while a reload waits
    # for that very pin to leave: the answer comes at once and the reload goes through (it
    # used to wait for the reload's lock, until pin_timeout failed the reload).
    mod = project.load("pair", PAIR)
    assert project.reload("pair", version(2)).ok  # a record for status() to read
    project.write("pair", version(3))
    hotswap.configure(pin_timeout=2)
    answered: list[hotswap.Status] = []
    entered = threading.Event()

    def request() -> None:
        with hotswap.pinned():
            entered.set()
            assert gate.wait_for_writer(10)  # the reload waits at the gate
            answered.append(hotswap.status())

    requester = threading.Thread(target=request)
    requester.start()
    assert entered.wait(10)
    results: list[hotswap.ReloadResult] = []
    run_reload("pair", results).join(30)
    requester.join(10)
    assert results[0].ok, results[0].error
    assert answered[0].modules["pair"].version == 2  # as it was before the commit
    assert mod.first() == 3


def test_pinned_section_starting_during_a_reload_waits_for_it(project):
    project.load(
        "latch", "import threading\nRELEASE = threading.Event()\nENTERED = threading.Event()\n"
    )
    mod = project.load("pair", PAIR)
    latch = sys.modules["latch"]
    # The new version blocks while it executes, holding the gate as the writer.
    project.write(
        "pair", version(2) + "\nimport latch\nlatch.ENTERED.set()\nlatch.RELEASE.wait(10)\n"
    )
    results: list[hotswap.ReloadResult] = []
    reloader = run_reload("pair", results)
    assert latch.ENTERED.wait(10)
    with pytest.raises(hotswap.PinTimeoutError), hotswap.pinned(timeout=0.05):
        pass
    latch.RELEASE.set()
    reloader.join(10)
    with hotswap.pinned(timeout=10):
        assert mod.first() == mod.second() == 2


def test_reload_fails_cleanly_past_the_bound(project):
    mod = project.load("pair", PAIR)
    hotswap.configure(pin_timeout=0.05)
    held, done = threading.Event(), threading.Event()

    def long_request() -> None:
        with hotswap.pinned():
            held.set()
            done.wait(10)

    request = threading.Thread(target=long_request)
    request.start()
    assert held.wait(10)
    try:
        result = project.reload("pair", version(2))
    finally:
        done.set()
        request.join(10)
    assert not result.ok
    assert not result.rolled_back
    assert isinstance(result.error, hotswap.PinTimeoutError)
    assert "pinned sections did not leave" in str(result.error)
    assert mod.first() == 1
    assert hotswap.reload("pair").ok  # once the section left
    assert mod.first() == 2


def test_nested_pins_and_a_reload_from_a_pinned_thread_do_not_deadlock(project):
    mod = project.load("pair", PAIR)
    project.write("pair", version(2))
    hotswap.configure(pin_timeout=5)
    with hotswap.pinned(), hotswap.pinned():
        result = hotswap.reload("pair")
    assert result.ok, result.error
    assert mod.first() == 2
    assert gate.readers == 0


def test_pinned_async_tasks_hold_a_reload_until_they_leave(project):
    mod = project.load("pair", PAIR)
    project.write("pair", version(2))
    results: list[hotswap.ReloadResult] = []

    async def request(name: str, ready: asyncio.Event, go: asyncio.Event) -> tuple[int, int]:
        async with hotswap.pinned():
            before = mod.first()
            ready.set()
            await go.wait()
            return before, mod.second()

    async def main() -> list[tuple[int, int]]:
        ready = [asyncio.Event(), asyncio.Event()]
        go = asyncio.Event()
        tasks = [asyncio.create_task(request(str(i), ready[i], go)) for i in range(2)]
        await asyncio.gather(*(r.wait() for r in ready))
        reloader = run_reload("pair", results)
        await asyncio.to_thread(gate.wait_for_writer, 10)
        go.set()
        seen = await asyncio.gather(*tasks)
        await asyncio.to_thread(reloader.join, 10)
        return seen

    assert asyncio.run(main()) == [(1, 1), (1, 1)]
    assert results[0].ok
    assert mod.first() == 2


def test_calls_from_8_threads_during_200_reloads_never_fail(project, threads_build):
    mod = project.load("pair", PAIR)
    worker = mod.Worker()
    stop = threading.Event()
    errors: list[BaseException] = []
    seen: set[int] = set()
    lock = threading.Lock()

    def call() -> None:
        local: set[int] = set()
        try:
            while not stop.is_set():
                local.add(mod.first())
                local.add(worker.work())
                with hotswap.pinned():
                    a, b = mod.first(), mod.second()
                    if a != b:
                        raise AssertionError(f"mixed versions inside pinned(): {a} != {b}")
        except BaseException as error:  # the test reports whatever a caller hits
            errors.append(error)
        with lock:
            seen.update(local)

    threads = [threading.Thread(target=call) for _ in range(8)]
    # The test's own file writes between reloads wait for the GIL behind eight busy threads;
    # a short switch interval keeps the run short (reloads set one for themselves).
    saved = sys.getswitchinterval()
    sys.setswitchinterval(0.0005)
    for thread in threads:
        thread.start()
    try:
        for n in range(2, 202):
            result = project.reload("pair", version(n))
            assert result.ok, result.error
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
        sys.setswitchinterval(saved)
    assert errors == []
    assert seen <= set(range(1, 202))
    assert mod.first() == 201


def test_gate_mark_waits_for_the_sections_inside_only_and_holds_none_off():
    # What a refused reload waits for before it is tried again: the sections inside when it
    # gave up, not an empty gate (overlapping requests may never leave it empty), and without
    # taking the gate (new sections enter meanwhile).
    old_in, old_out = threading.Event(), threading.Event()

    def old_request() -> None:
        with hotswap.pinned():
            old_in.set()
            old_out.wait(10)

    old = threading.Thread(target=old_request)
    old.start()
    assert old_in.wait(10)
    gate.mark()
    assert not gate.departed()
    with hotswap.pinned(timeout=0):  # a new section enters at once, and stays
        old_out.set()
        old.join(10)
        assert gate.wait_departed(10)
        assert gate.readers == 1
    assert gate.departed()
