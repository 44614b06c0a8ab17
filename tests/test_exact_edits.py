"""Issue 25: a reload equals a fresh import of the new source, on edits taken from real
projects' histories (each test reproduces one point with a two-version module)."""

from __future__ import annotations

import pytest

DECORATED = """\
import functools


def deco(f):
    {wraps}
    def w(*args):
        return ("wrap", f(*args))
    return w


@deco
def w1():
    return 1
"""


@pytest.mark.parametrize("wraps", ["", "@functools.wraps(f)"])
def test_decorator_changed_then_function_edited_keeps_the_decorator(reloading, wraps):
    source = DECORATED.format(wraps=wraps)
    mod = reloading.load("decothen", source)
    held = mod.w1
    source = source.replace('"wrap"', '"wrap2"')
    result = reloading.reload("decothen", source)
    assert result.ok, result.error
    assert (mod.w1(), held()) == (("wrap2", 1), ("wrap2", 1))
    result = reloading.reload("decothen", source.replace("return 1", "return 2"))
    assert result.ok, result.error
    assert mod.w1() == ("wrap2", 2)  # a fresh import of the new source
    assert held() == ("wrap2", 2)


@pytest.mark.parametrize("wraps", ["", "@functools.wraps(f)"])
def test_decorator_and_function_changed_together_then_function_edited(reloading, wraps):
    source = DECORATED.format(wraps=wraps)
    mod = reloading.load("decoboth", source)
    held = mod.w1
    source = source.replace('"wrap"', '"wrap2"').replace("return 1", "return 2")
    result = reloading.reload("decoboth", source)
    assert result.ok, result.error
    result = reloading.reload("decoboth", source.replace("return 2", "return 3"))
    assert result.ok, result.error
    result = reloading.reload("decoboth", source.replace("return 2", "return 4"))
    assert result.ok, result.error
    assert (mod.w1(), held()) == (("wrap2", 4), ("wrap2", 4))
