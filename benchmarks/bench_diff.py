"""The cost of the AST diff and compatibility check against ast.parse of the new source.

Run: python benchmarks/bench_diff.py
Target (issue #3): the diff costs at most 2x ast.parse, so it never dominates a reload.
"Diff" is what a reload spends on it: the new symbol table (statements unchanged since the last
version come from its cache), the change set and the compatibility findings. The cold column is
a first description without a cache, for reference.
"""

from __future__ import annotations

import ast
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _sources import module_source, scratch

from hotswap._plan import diff as _diff
from hotswap._plan import symbols as _symbols


def median_ms(action: Callable[[], object], rounds: int) -> float:
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        action()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1000


def measure(lines: int, rounds: int) -> tuple[int, float, float, float]:
    old_source, new_source = module_source(lines, 0), module_source(lines, 1)
    old_code = compile(old_source, "m.py", "exec", dont_inherit=True)
    new_code = compile(new_source, "m.py", "exec", dont_inherit=True)
    old = _symbols.module_symbols(old_source, old_code)

    def warm() -> None:
        new = _symbols.module_symbols(new_source, new_code, old)
        _diff.diff(old, new)
        _diff.check(old, new)

    def cold() -> None:
        new = _symbols.module_symbols(new_source, new_code)
        _diff.diff(old, new)
        _diff.check(old, new)

    parse = median_ms(lambda: ast.parse(new_source), rounds)
    return new_source.count("\n"), parse, median_ms(warm, rounds), median_ms(cold, rounds)


def main() -> None:
    print("AST diff + compatibility check vs ast.parse (medians, ms)")
    header = (
        f"{'module':>12} {'ast.parse':>10} {'diff':>8} {'ratio':>7} {'cold diff':>10} {'ratio':>7}"
    )
    print(header)
    print("-" * len(header))
    for lines, rounds in ((50, 200), (2000, 30)):
        size, parse, warm, cold = measure(lines, rounds)
        print(
            f"{size:>6} lines {parse:>10.2f} {warm:>8.2f} {warm / parse:>6.2f}x "
            f"{cold:>10.2f} {cold / parse:>6.2f}x"
        )
    print("\ntarget: diff <= 2x ast.parse")


if __name__ == "__main__":
    with scratch():
        main()
