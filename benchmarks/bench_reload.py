"""The cost of hotswap.reload() against plain compile() of the same source, and of a constant
that many modules import.

Run: python benchmarks/bench_reload.py [--quick]
Targets (DESIGN §7): a one-function edit in a 2,000-line module costs at most 0.3x compile() of
the module (only what changed is parsed and compiled); when a constant imported by 50 modules
changes, the cost grows with the statements that depend on it, not with the modules that
merely import its module.
"""

from __future__ import annotations

import importlib
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _sources import module_source, scratch

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


def importers(kind: str, count: int, rounds: int) -> tuple[float, int]:
    """Reload ``config`` (one constant changes) with ``count`` importers of ``kind``: "value"
    (``from config import RATE`` and a statement using it), "body" (read only inside a
    function: not dependents), or none. Median ms, and the dependents of the last reload."""
    folder = Path(tempfile.mkdtemp(prefix="hotswap-bench-"))
    config = f"bench_config_{kind}_{count}"
    (folder / f"{config}.py").write_text("RATE = 0\n")
    sys.path.insert(0, str(folder))
    for index in range(count):
        body = (
            f"from {config} import RATE\nVALUE = RATE * {index}\nOTHER = {index}\n"
            if kind == "value"
            else f"import {config}\n\ndef value():\n    return {config}.RATE * {index}\n"
        )
        (folder / f"{config}_user_{index}.py").write_text(body)
    module = importlib.import_module(config)
    for index in range(count):
        importlib.import_module(f"{config}_user_{index}")
    times = []
    result = None
    for round_ in range(rounds + 1):
        (folder / f"{config}.py").write_text(f"RATE = {round_ + 1}\n")
        start = time.perf_counter()
        result = hotswap.reload(module)
        if round_:  # the first reload also reads the importers' sources once
            times.append(time.perf_counter() - start)
        check(result.ok, result)
    assert result is not None
    return median_ms(times), len(result.dependents)


def main() -> None:
    quick = "--quick" in sys.argv
    rows = [measure(50, 60), measure(2000, 30)]
    if not quick:
        rows.append(measure(20000, 5))
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
    print("\ntarget: a one-function edit in the 2,000-line module <= 0.3x compile")
    print("\na constant imported by N modules changes (medians, ms)")
    print(f"{'importers':>28} {'reload':>9} {'dependents':>11}")
    for kind, count in [("none", 0), ("body", 50), ("value", 10), ("value", 50)]:
        ms, dependents = importers(kind, count, 5 if quick else 20)
        what = {"none": "no importers", "body": "read in function bodies", "value": "by value"}
        print(f"{count:>3} {what[kind]:>24} {ms:>9.2f} {dependents:>11}")
    print("target: the cost follows the dependent statements (by value), not the importers")


if __name__ == "__main__":
    with scratch():
        main()
