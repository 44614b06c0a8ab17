"""Call overhead of @reloadable against a direct call.

Run: python benchmarks/bench_calls.py [--quick]
Targets (issue #4, DESIGN §7): a reloadable function <= 2.5x a direct call, a reloadable method
<= 4x, an undecorated function after any number of reloads exactly 1.0x.
Each figure is the best of several repeats (the least disturbed by the machine), in ns per call.
"""

from __future__ import annotations

import importlib
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

NUMBER = 1_000_000
REPEAT = 7


def best_ns(statement: str, namespace: dict[str, object]) -> float:
    times = timeit.repeat(statement, globals=namespace, number=NUMBER, repeat=REPEAT)
    return min(times) / NUMBER * 1e9


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
    base = best_ns("direct(1)", namespace)
    base_kw = best_ns("direct(a=1)", namespace)
    base_method = best_ns("direct_thing.method(1)", namespace)
    # Interleaved, best of three each: these two differ by noise alone (the same code object
    # runs), so drift between two measurements must not show as a difference.
    pairs = [(best_ns("fresh(1)", namespace), best_ns("plain(1)", namespace)) for _ in range(3)]
    base_fresh = min(f for f, _ in pairs)
    plain_ns = min(p for _, p in pairs)
    pinned_block = best_ns("with pinned():\n    proxied(1)", namespace)
    rows = [
        ("direct call", base, base, "-"),
        ("undecorated, after 5 reloads", plain_ns, base_fresh, "1.00x"),
        ("@reloadable function", best_ns("proxied(1)", namespace), base, "<= 2.5x"),
        ("@reloadable function, keyword", best_ns("proxied(a=1)", namespace), base_kw, "<= 2.5x"),
        ("direct method call", base_method, base_method, "-"),
        (
            "@reloadable method",
            best_ns("thing.reloadable_method(1)", namespace),
            base_method,
            "<= 4x",
        ),
        ("@reloadable inside pinned()", pinned_block, base, "-"),
        ("wrapt CallableObjectProxy (floor)", best_ns("bare(1)", namespace), base, "-"),
        ("wrapt CallableObjectProxy, keyword", best_ns("bare(a=1)", namespace), base_kw, "-"),
    ]
    print(f"call overhead, best of {REPEAT} x {NUMBER:,} calls")
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
