"""Issue 25.8: a method whose closure changes layout (it starts or stops calling ``super()``,
which gives it a ``__class__`` cell) runs the new code itself after a reload, as after a fresh
import, and keeps its identity; a failed reload and a rollback give the old code back.

boltons 26.0.0's ``HTMLTextExtractor.__init__`` and cachetools 7.3.2's ``__copy__`` methods
made this edit; the function used to forward to the new one, so introspection (its code, what
``dis`` and coverage see) showed the forwarder."""

from __future__ import annotations

import inspect
import threading

import hotswap

OLD = """\
class Base:
    def __init__(self, size=1):
        self.size = size

    def copy(self, *shared):
        return ("base", shared)


class Child(Base):
    def __init__(self, size=2):
        self.size = size
        self.extra = []

    def copy(self, *shared):
        return Base.copy(self, "child", *shared)
"""

NEW = """\
class Base:
    def __init__(self, size=1):
        self.size = size

    def copy(self, *shared):
        return ("base", shared)


class Child(Base):
    def __init__(self, size=3):
        super().__init__(size)
        self.extra = ["new"]

    def copy(self, *shared):
        return super().copy("child2", *shared)
"""


def _fresh_code(project: object, name: str, source: str) -> dict[str, object]:
    namespace: dict[str, object] = {"__name__": name}
    exec(compile(source, f"<{name}>", "exec"), namespace)
    child = namespace["Child"]
    return {key: vars(child)[key].__code__ for key in ("__init__", "copy")}  # type: ignore[index, attr-defined]


def _same_code(live: object, fresh: object) -> bool:
    a, b = live.__code__, fresh  # type: ignore[attr-defined]
    return (a.co_code, a.co_names, a.co_varnames, a.co_freevars) == (
        b.co_code,  # type: ignore[attr-defined]
        b.co_names,  # type: ignore[attr-defined]
        b.co_varnames,  # type: ignore[attr-defined]
        b.co_freevars,  # type: ignore[attr-defined]
    )


def test_method_that_starts_calling_super_runs_the_new_code_itself(reloading):
    mod = reloading.load("supercell", OLD)
    child = mod.Child
    init, copy = child.__init__, child.copy
    instance = child()
    result = reloading.reload("supercell", NEW)
    assert result.ok, result.error
    assert mod.Child is child
    assert child.__init__ is init
    assert child.copy is copy
    fresh = _fresh_code(reloading, "supercell_fresh", NEW)
    assert _same_code(init, fresh["__init__"])  # the new code, no forwarder
    assert _same_code(copy, fresh["copy"])
    assert init.__code__.co_freevars == ("__class__",)
    assert init.__closure__[0].cell_contents is child  # super() binds to the kept class
    assert str(inspect.signature(init)) == "(self, size=3)"
    assert (child().size, child().extra) == (3, ["new"])
    assert instance.copy(1) == ("base", ("child2", 1))  # an instance made before


def test_method_that_stops_calling_super_runs_the_new_code_itself(reloading):
    mod = reloading.load("supercellgone", NEW)
    init = mod.Child.__init__
    result = reloading.reload("supercellgone", OLD)
    assert result.ok, result.error
    assert mod.Child.__init__ is init
    fresh = _fresh_code(reloading, "supercellgone_fresh", OLD)
    assert _same_code(init, fresh["__init__"])
    assert init.__closure__ is None
    assert (mod.Child().size, mod.Child().extra) == (2, [])


def test_failed_reload_gives_the_closure_and_code_back(reloading):
    mod = reloading.load("supercellfail", OLD)
    init, code = mod.Child.__init__, mod.Child.__init__.__code__
    result = reloading.reload("supercellfail", NEW + "\nraise RuntimeError('late')\n")
    assert not result.ok
    assert init.__code__ is code
    assert init.__closure__ is None
    assert (mod.Child().size, mod.Child().extra) == (2, [])


def test_rollback_and_forward_again_across_a_closure_change(reloading):
    mod = reloading.load("supercellback", OLD)
    init = mod.Child.__init__
    old_code = init.__code__
    assert reloading.reload("supercellback", NEW).ok
    assert hotswap.rollback("supercellback").ok
    assert init.__code__ is old_code
    assert init.__closure__ is None
    assert mod.Child().extra == []
    assert reloading.reload("supercellback", NEW.replace('["new"]', '["again"]')).ok
    assert init.__code__.co_freevars == ("__class__",)
    assert mod.Child().extra == ["again"]


def test_calls_in_other_threads_see_one_version_while_the_closure_changes(reloading):
    mod = reloading.load("supercellthreads", OLD)
    child = mod.Child
    seen: set[tuple[int, tuple[str, ...]]] = set()
    errors: list[BaseException] = []
    stop = threading.Event()

    def call() -> None:
        while not stop.is_set():
            try:
                made = child()
                seen.add((made.size, tuple(made.extra)))
            except BaseException as error:
                errors.append(error)
                return

    workers = [threading.Thread(target=call) for _ in range(4)]
    for worker in workers:
        worker.start()
    try:
        for round_ in range(40):
            source = NEW if round_ % 2 == 0 else OLD
            assert reloading.reload("supercellthreads", source).ok
    finally:
        stop.set()
        for worker in workers:
            worker.join()
    assert not errors, errors
    assert seen <= {(2, ()), (3, ("new",))}
