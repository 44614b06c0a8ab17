"""The statement alignment the planner starts from (issue 26: linear in the module's size,
same pairs as before)."""

from __future__ import annotations

from hotswap._plan.planner import align
from hotswap._plan.statements import parse_module


def _pairs(old: str, new: str) -> list[int | None]:
    return align(parse_module(old).statements, parse_module(new).statements)


def test_align_pairs_reformatted_statements_in_order():
    old = "A = 1\nB = 2\nC = 3\nB = 2\nD = 4\n"
    # Every statement's text changed (a comment each); the code of all but C is the same.
    new = "A = 1  # a\nB = 2  # b\nC = 30  # c\nB = 2  # b again\nD = 4  # d\n"
    assert _pairs(old, new) == [0, 1, None, 3, 4]


def test_align_leaves_new_code_unpaired_and_keeps_order():
    old = "X = 1\nY = 2\nZ = 3\n"
    new = "Z = 3  # moved up\nNEW = 0\nX = 1  # now last\n"
    # Pairs keep the old order: Z pairs first, so X (before Z in the old source) cannot.
    assert _pairs(old, new) == [2, None, None]


def test_align_whole_module_rewrite_pairs_nothing():
    count = 3000
    old = "".join(f"V{i} = {i}\n" for i in range(count))
    new = "".join(f"V{i} = {i} + 1  # rewritten\n" for i in range(count))
    assert _pairs(old, new) == [None] * count


def test_align_keeps_equal_prefix_and_suffix():
    old = "A = 1\nB = 2\nC = 3\n"
    new = "A = 1\nB = 20\nC = 3\n"
    assert _pairs(old, new) == [0, None, 2]
