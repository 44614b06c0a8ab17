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
