"""Call overhead of @reloadable against a direct call.

Run: python benchmarks/bench_calls.py [--quick]
Targets (issue #4, DESIGN §7): a reloadable function <= 2.5x a direct call, a reloadable method
<= 4x, an undecorated function after any number of reloads exactly 1.0x.
Each figure is the best of 35 rounds of 200,000 calls (the least disturbed by the machine), in
ns per call; each round measures every row in turn.
"""

from __future__ import annotations

import importlib
import math
import sys
import tempfile
import timeit
from pathlib import Path

import wrapt
from _sources import scratch

import hotswap

SOURCE = """
import hotswap

def plain(a, b=1):
    return a

@hotswap.reloadable
def proxied(a, b=1):
    return a

class Thing:
    def method(self, a):
        return a

    @hotswap.reloadable
    def reloadable_method(self, a):
        return a
"""

NUMBER = 200_000
REPEAT = 35


def best_ns(statements: list[str], namespace: dict[str, object]) -> dict[str, float]:
    """The best of REPEAT rounds for each statement, in ns per call. The rounds go over every
    statement in turn, so a burst of load on this shared machine weighs on all rows alike
    rather than on the one being measured at the time (the ratios are what is compared)."""
    timers = {s: timeit.Timer(s, globals=namespace) for s in statements}
    best = {s: math.inf for s in statements}
    for _ in range(REPEAT):
        for statement, timer in timers.items():
            best[statement] = min(best[statement], timer.timeit(NUMBER))
    return {s: t / NUMBER * 1e9 for s, t in best.items()}


def main() -> None:
    global NUMBER, REPEAT
    if "--quick" in sys.argv[1:]:  # a smoke run: the figures mean little
        NUMBER, REPEAT = 10_000, 1
    folder = Path(tempfile.mkdtemp(prefix="hotswap-bench-"))
    path = folder / "bench_calls_module.py"
    path.write_text(SOURCE)
    sys.path.insert(0, str(folder))
    module = importlib.import_module("bench_calls_module")
    plain = module.plain  # held across reloads, like `from m import plain`
    for n in range(5):  # undecorated and reloadable code after several reloads
        path.write_text(SOURCE.replace("return a", f"return a + {n}"))
        result = hotswap.reload(module)
        if not result.ok:
            raise SystemExit(f"reload failed: {result.error}")

    def direct(a: int, b: int = 1) -> int:
        return a

    class Direct:
        def method(self, a: int) -> int:
            return a

    # The same body as the reloaded `plain`, defined afresh: what "no overhead" means.
    fresh: dict[str, object] = {}
    exec("def plain(a, b=1):\n    return a + 4\n", fresh)

    thing, direct_thing = module.Thing(), Direct()
    namespace: dict[str, object] = {
        "direct": direct,
        "plain": plain,
        "fresh": fresh["plain"],
        "proxied": module.proxied,
        "thing": thing,
        "direct_thing": direct_thing,
        "bare": wrapt.CallableObjectProxy(direct),
        "pinned": hotswap.pinned,
    }
    statements = [
        "direct(1)",
        "direct(a=1)",
        "direct_thing.method(1)",
        "fresh(1)",
        "plain(1)",
        "proxied(1)",
        "proxied(a=1)",
        "thing.reloadable_method(1)",
        "with pinned():\n    proxied(1)",
        "bare(1)",
        "bare(a=1)",
    ]
    ns = best_ns(statements, namespace)
    base, base_kw, base_method = ns["direct(1)"], ns["direct(a=1)"], ns["direct_thing.method(1)"]
    rows = [
        ("direct call", base, base, "-"),
        # The same code object runs in both: they differ by noise alone.
        ("undecorated, after 5 reloads", ns["plain(1)"], ns["fresh(1)"], "1.00x"),
        ("@reloadable function", ns["proxied(1)"], base, "<= 2.5x"),
        ("@reloadable function, keyword", ns["proxied(a=1)"], base_kw, "<= 2.5x"),
        ("direct method call", base_method, base_method, "-"),
        ("@reloadable method", ns["thing.reloadable_method(1)"], base_method, "<= 4x"),
        ("@reloadable inside pinned()", ns["with pinned():\n    proxied(1)"], base, "-"),
        ("wrapt CallableObjectProxy (floor)", ns["bare(1)"], base, "-"),
        ("wrapt CallableObjectProxy, keyword", ns["bare(a=1)"], base_kw, "-"),
    ]
    print(f"call overhead, best of {REPEAT} interleaved rounds of {NUMBER:,} calls")
    header = f"{'what':<36} {'ns/call':>8} {'ratio':>7} {'target':>8}"
    print(header)
    print("-" * len(header))
    for label, ns, reference, target in rows:
        print(f"{label:<36} {ns:>8.1f} {ns / reference:>6.2f}x {target:>8}")
    print("\nratios are to the direct call of the same kind (positional, keyword, method; the")
    print("undecorated function against a fresh definition of the body it was reloaded to);")
    print("'inside pinned()' is one pinned block around one call, the worst case.")


if __name__ == "__main__":
    with scratch():
        main()
