"""A rewritten module is read once: consecutive changed statements are parsed together, their
ASTs compiled as parsed (with the file's line numbers) and not kept afterwards (issue 26)."""

from __future__ import annotations

import ast
import traceback

import pytest

from hotswap._engine import history as _history
from hotswap._plan import statements as _statements


def _module(count: int, variant: int) -> str:
    lines = [f"V{i} = {i} + {variant}" for i in range(count)]
    lines.insert(count // 2, f"def boom():\n    raise ValueError({variant})")
    return "\n".join(lines) + "\n"


def test_rewrite_parses_consecutive_changed_statements_once(reloading, monkeypatch):
    module = reloading.load("rewritten", _module(60, 0))
    parsed: list[str] = []
    parse = ast.parse

    def spy(source: str, *args: object, **kwargs: object) -> ast.AST:
        parsed.append(source)
        return parse(source, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(_statements.ast, "parse", spy)
    result = reloading.reload("rewritten", _module(60, 1))
    monkeypatch.setattr(_statements.ast, "parse", parse)
    assert result.ok, result.error
    assert module.V0 == 1
    assert module.V59 == 60
    # One parse reads every changed statement (and nothing parses them one by one again).
    mentions = [s for s in parsed if "V1 = 1 + 1" in s]
    assert len(mentions) == 1, parsed
    assert all("V59 = 59 + 1" in s for s in mentions)


def test_rewrite_keeps_the_files_line_numbers(reloading):
    module = reloading.load("lines", _module(40, 0))
    assert reloading.reload("lines", _module(40, 1)).ok
    with pytest.raises(ValueError, match="1") as caught:
        module.boom()
    frame = traceback.extract_tb(caught.value.__traceback__)[-1]
    text = reloading.path("lines").read_text().splitlines()
    assert text[frame.lineno - 1].strip() == "raise ValueError(1)"


def test_kept_syntax_trees_are_dropped_after_the_reload(reloading):
    reloading.load("dropped", _module(20, 0))
    assert reloading.reload("dropped", _module(20, 1)).ok
    live = _history.records["dropped"].live
    assert live is not None
    assert live.nodes == {}
    # A failed reload drops them too.
    result = reloading.reload("dropped", _module(20, 2) + "BROKEN = undefined_name\n")
    assert not result.ok
    assert _history.records["dropped"].live.nodes == {}


def test_reload_leaves_the_garbage_collector_as_it_found_it(reloading):
    import gc

    reloading.load("collected", _module(10, 0))
    assert gc.isenabled()
    assert reloading.reload("collected", _module(10, 1)).ok
    assert gc.isenabled()
    assert not reloading.reload("collected", "def broken(:\n").ok  # a failed plan too
    assert gc.isenabled()
    gc.disable()
    try:
        assert reloading.reload("collected", _module(10, 2)).ok
        assert not gc.isenabled()  # a program that turned it off keeps it off
    finally:
        gc.enable()


# --- reading a rewritten module: cheaper, the same answers --------------------------------------


def _nested_statements(module_name: str) -> list[ast.stmt]:
    import importlib
    import inspect

    tree = ast.parse(inspect.getsource(importlib.import_module(module_name)))
    return [node for node in ast.walk(tree) if isinstance(node, ast.stmt)]


@pytest.mark.parametrize("module_name", ["ast", "dataclasses", "json.decoder", "typing"])
def test_flat_reading_finds_what_the_visitor_finds(module_name):
    from hotswap._plan import analysis

    compared = 0
    for stmt in _nested_statements(module_name):
        for lazy in (False, True):
            visited = analysis._Reads(lazy)
            visited.visit(stmt)
            walked = analysis._read(stmt, lazy)
            fields = ("reads", "called", "attributes", "called_attributes", "walrus", "partial")
            assert [getattr(walked, f) for f in fields] == [getattr(visited, f) for f in fields]
            compared += 1
    assert compared > 100


def _rewrite(variant: int, *, signature: str = "a, b") -> str:
    lines = [f"V{i} = {i} + {variant}" for i in range(200)]
    lines.insert(100, f"def api({signature}):\n    return a + b + {variant}")
    box = f"class Box:\n    size = {variant}\n\n    def get(self):\n        return {variant}"
    lines.append(box)
    lines.append(f"TOTAL = V199 + api(1, 2) + Box().get()  # {variant}")
    return "\n".join(lines) + "\n"


def test_rewrite_keeps_held_references(reloading):
    module = reloading.load("held", _rewrite(0))
    api, box, instance = module.api, module.Box, module.Box()
    result = reloading.reload("held", _rewrite(1))
    assert result.ok, result.error
    assert module.api is api
    assert module.Box is box
    assert api(1, 2) == 4
    assert instance.get() == 1
    assert box.size == 1
    assert module.V0 == 1
    assert module.TOTAL == 199 + 1 + 4 + 1
    assert "api" in result.changes.changed
    assert "Box.get" in result.changes.changed


def test_rewrite_with_a_failing_statement_changes_nothing(reloading):
    module = reloading.load("failing", _rewrite(0))
    api = module.api
    broken = _rewrite(1) + "RAISE = 1 / 0\n"
    result = reloading.reload("failing", broken)
    assert not result.ok
    assert result.rolled_back
    assert module.V0 == 0
    assert module.V199 == 199
    assert module.api is api
    assert api(1, 2) == 3
    assert module.Box.size == 0
    assert not hasattr(module, "RAISE")


def test_rewrite_with_an_incompatible_change_is_refused_under_strict(reloading):
    module = reloading.load("strictly", _rewrite(0))
    result = reloading.reload("strictly", _rewrite(1, signature="a"), policy="strict")
    assert not result.ok
    assert "api" in str(result.error)
    assert module.V0 == 0
    assert module.api(1, 2) == 3


def test_commit_moves_lines_by_the_plans_alignment(reloading, monkeypatch):
    from hotswap._plan import planner

    module = reloading.load("moved", "def f():\n    raise ValueError('f')\n\nX = 1\n")
    calls = []
    align = planner.align

    def spy(old, new):
        calls.append(1)
        return align(old, new)

    monkeypatch.setattr(planner, "align", spy)
    moved = "X = 2\n\n\n\ndef f():\n    raise ValueError('f')\n\nX = 1\n"
    result = reloading.reload("moved", moved)
    assert result.ok, result.error
    assert len(calls) == 1  # planned once, and the commit moved f by that plan
    with pytest.raises(ValueError, match="f") as caught:
        module.f()
    frame = traceback.extract_tb(caught.value.__traceback__)[-1]
    assert frame.lineno == 6


def test_report_without_classes_leaves_the_symbol_tables_unbuilt(reloading):
    reloading.load("tables", _module(30, 0))
    result = reloading.reload("tables", _module(30, 1), policy="off")
    assert result.ok, result.error
    live = _history.records["tables"].live
    assert live is not None
    assert live._symbols is None


def test_function_that_starts_filling_a_registry_is_planned_afresh(reloading):
    # The statements' writes are reused from the live version only while the module's
    # functions write what they wrote: here ``register`` starts to, and the decorated
    # definitions become writers of REG.
    before = "REG = []\n\ndef register(f):\n    return f\n\n"
    after = "REG = []\n\ndef register(f):\n    REG.append(f)\n    return f\n\n"
    body = "@register\ndef a():\n    return 1\n\n@register\ndef b():\n    return 2\n"
    module = reloading.load("filling", before + body)
    a, b = module.a, module.b
    result = reloading.reload("filling", after + body)
    assert result.ok, result.error
    assert [a, b] == module.REG
    assert module.a is a
    assert module.b is b


def test_change_at_the_end_of_a_call_chain_reaches_its_first_caller(reloading):
    # Written from the top down: each function calls the next one, defined below it. The
    # change of the last makes every one of them dirty (one walk of their callers), so the
    # statement calling the first runs again, and the registry the last one fills is rebuilt.
    def source(value: int) -> str:
        chain = [f"def f{i}():\n    return f{i + 1}()\n" for i in range(40)]
        last = f"def f40():\n    SEEN.append({value})\n    return {value}\n"
        return "SEEN = []\n\n" + "\n".join([*chain, last]) + "\nTABLE = f0()\n"

    module = reloading.load("chained", source(1))
    first = module.f0
    result = reloading.reload("chained", source(2))
    assert result.ok, result.error
    assert module.TABLE == 2
    assert module.SEEN == [2]
    assert module.f0 is first


def test_collector_pauses_of_two_threads_overlap():
    # The reload, the read-ahead of a huge file and the warm-up pause the collector from their
    # own threads: the first one to end must not resume it under the other, whose syntax trees
    # are then built without a collection (and so without a thread switch, gh-106905).
    import gc
    import threading

    from hotswap._engine.gil import collector_paused

    inside, leave = threading.Event(), threading.Event()
    seen: list[bool] = []

    def other() -> None:
        with collector_paused():
            inside.set()
            leave.wait(30)
            seen.append(gc.isenabled())

    assert gc.isenabled()
    thread = threading.Thread(target=other)
    with collector_paused():  # the first pause, ended while the other one still runs
        thread.start()
        assert inside.wait(30)
    leave.set()
    thread.join(30)
    assert seen == [False]
    assert gc.isenabled()
