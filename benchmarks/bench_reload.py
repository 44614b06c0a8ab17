"""The cost of hotswap.reload() against plain compile() of the same source.

Run: python benchmarks/bench_reload.py
Targets (issue #2 and DESIGN §7): the transaction of a 2,000-line module costs at most 1.5x
compile(); the whole reload, diff included, at most 2.5x compile().
"""

from __future__ import annotations

import importlib
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _sources import module_source

import hotswap


def check(condition: bool, result: object) -> None:
    """Benchmarks must measure what they claim: stop on a reload that did something else."""
    if not condition:
        raise SystemExit(f"unexpected reload result: {result}")


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def measure(lines: int, rounds: int) -> dict[str, float]:
    folder = Path(tempfile.mkdtemp(prefix="hotswap-bench-"))
    name = f"bench_module_{lines}"
    path = folder / f"{name}.py"
    sources = [module_source(lines, variant) for variant in range(2)]
    path.write_text(sources[0])
    sys.path.insert(0, str(folder))
    module = importlib.import_module(name)

    compile_times = []
    for _ in range(rounds):
        start = time.perf_counter()
        compile(sources[1], str(path), "exec")
        compile_times.append(time.perf_counter() - start)

    path.write_text(sources[1])
    start = time.perf_counter()
    first = hotswap.reload(module)
    first_ms = (time.perf_counter() - start) * 1000
    check(first.ok, first)

    reload_times = []
    for round_ in range(rounds):
        path.write_text(sources[round_ % 2])
        start = time.perf_counter()
        result = hotswap.reload(module)
        reload_times.append(time.perf_counter() - start)
        check(result.ok and result.changes.changed == ("edited",), result)

    noop_times = []
    for _ in range(rounds):
        start = time.perf_counter()
        result = hotswap.reload(module)
        noop_times.append(time.perf_counter() - start)
        check(result.ok and not result.changes, result)

    return {
        "lines": float(sources[0].count("\n")),
        "compile": median_ms(compile_times),
        "first": first_ms,
        "reload": median_ms(reload_times),
        "noop": median_ms(noop_times),
    }


def main() -> None:
    rows = [measure(50, 60), measure(2000, 30)]
    print("hotswap.reload() vs compile() (medians, ms)")
    header = (
        f"{'module':>12} {'compile':>9} {'reload':>9} {'ratio':>7} {'1st reload':>11} {'no-op':>8}"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        ratio = row["reload"] / row["compile"]
        print(
            f"{int(row['lines']):>6} lines {row['compile']:>9.2f} {row['reload']:>9.2f} "
            f"{ratio:>6.2f}x {row['first']:>11.2f} {row['noop']:>8.3f}"
        )
    print("\ntarget: reload of the 2,000-line module <= 2.5x compile (diff included)")


if __name__ == "__main__":
    main()
