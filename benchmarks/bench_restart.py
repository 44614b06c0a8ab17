"""A restart of ``hotswap run``: forked from the warm template against a cold start.

Run: python benchmarks/bench_restart.py [ROUNDS [MODULE...]]  (default: 5 rounds, the heavy
imports below that are installed)
Both rows time the same thing: from the decision to restart until the program's first line of
its own code ran (it writes to a pipe after its imports). The cold row starts a new
interpreter (``python -m hotswap run --no-restart app.py``), which imports everything again;
the fork row is what ``hotswap run`` does: a fork of a process that imported the program's
third-party dependencies once. Issue #13 quotes a peer at ~7 ms per run against ~0.45 s cold.
"""

from __future__ import annotations

import importlib.util
import os
import select
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _sources import scratch

from hotswap._cli import restart as _restart
from hotswap._cli import runner as _runner

# Heavy third-party imports a web service typically has; those not installed are left out.
HEAVY = ("fastapi", "pydantic", "httpx", "flask", "yaml")

APP = """
import os
{imports}
os.write(int(os.environ["BENCH_READY_FD"]), b"ready\\n")
import threading
threading.Event().wait()
"""


def _wait_ready(fd: int, timeout: float = 60) -> None:
    ready, _, _ = select.select([fd], [], [], timeout)
    if not ready or not os.read(fd, 64):
        raise SystemExit("the program never said it was ready")


def _program(modules: list[str]) -> Path:
    folder = Path(tempfile.mkdtemp(prefix="hotswap-bench-restart-"))
    imports = "\n".join(f"import {name}" for name in modules)
    (folder / "app.py").write_text(APP.format(imports=imports))
    return folder / "app.py"


def cold(script: Path, rounds: int) -> list[float]:
    """Seconds from start to ready of a new interpreter running the program."""
    samples = []
    for _ in range(rounds):
        read, write = os.pipe()
        env = {**os.environ, "BENCH_READY_FD": str(write)}
        start = time.perf_counter()
        process = subprocess.Popen(
            [sys.executable, "-m", "hotswap", "run", "-q", "--no-restart", str(script)],
            pass_fds=(write,),
            env=env,
            cwd=script.parent,
        )
        os.close(write)
        _wait_ready(read)
        samples.append(time.perf_counter() - start)
        process.terminate()
        process.wait(30)
        os.close(read)
    return samples


def forked(script: Path, rounds: int) -> list[float]:
    """Seconds from fork to ready of the program forked from a warm template (this
    process, once it imported the program's dependencies)."""
    target = _runner.Target(str(script), None, [], [str(script.parent)])
    saved_argv, saved_path = list(sys.argv), list(sys.path)
    target.prepare()
    supervisor = _restart.Supervisor(target, [], lambda fd: [])
    supervisor.warm()
    if supervisor.unsafe is not None:
        raise SystemExit(f"cannot fork here: {supervisor.unsafe}")
    samples = []
    try:
        for _ in range(rounds):
            read, write = os.pipe()
            os.environ["BENCH_READY_FD"] = str(write)
            start = time.perf_counter()
            try:
                child = supervisor._spawn()
            except _restart.ChildExit as done:  # in the forked run: never back into the loop
                os._exit(done.code)
            os.close(write)
            _wait_ready(read)
            samples.append(time.perf_counter() - start)
            child.stop()
            os.close(read)
    finally:
        sys.argv, sys.path = saved_argv, saved_path
    return samples


def measure(modules: list[str], rounds: int) -> dict[str, float]:
    """Median milliseconds of a cold start and of a fork from the warm template."""
    script = _program(modules)
    cold_ms = statistics.median(cold(script, rounds)) * 1000
    fork_ms = statistics.median(forked(script, rounds)) * 1000
    return {"cold": cold_ms, "fork": fork_ms}


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    chosen = sys.argv[2:] or HEAVY
    modules = [name for name in chosen if importlib.util.find_spec(name) is not None]
    row = measure(modules, rounds)
    print(f"program imports: {', '.join(modules) or 'nothing heavy'}; {rounds} rounds, medians")
    print("| restart | to the program's first line | ratio |")
    print("| --- | --- | --- |")
    print(f"| cold: a new interpreter | {row['cold']:.1f} ms | 1.00x |")
    print(f"| hotswap: fork of the warm template | {row['fork']:.1f} ms |", end=" ")
    print(f"{row['fork'] / row['cold']:.2f}x |")


if __name__ == "__main__":
    with scratch():
        main()
