"""pytest --hotswap: save -> the affected tests' result, against plain pytest, on a generated
project whose imports are slow; and how many results differ from a fresh run.

Run: python benchmarks/bench_pytest.py [--import-seconds 1.7] [--saves 10] [--situations N]
Target (issue #12, DESIGN §7): <= 0.1 s median from save to result, 0 wrong results.

The generated project's heavy module stands for a slow import (Django, pandas) by waiting
``--import-seconds`` at import. Latency is measured from the write to the ``time`` of the
session's final ``run`` event; plain pytest is timed from the write to its exit, running only
the affected test file (its best case); the in-process floor is ``hotswap.reload()`` plus a
warm ``pytest.main()`` of that file in one process. "wrong" counts the saves of
:data:`SITUATIONS` (applied in order) after which the runner's view of the suite differs from a
fresh ``pytest``: a stale result that persists counts again at each later save. pytest-testmon
is measured when installed (``pytest --testmon`` after each save); pytest-watcher and
pytest-hot-reloading are only reported as installed or not. None is a dependency.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

from _sources import scratch

REPORTER = """
import json, os
OUTCOMES = {}
def pytest_collectreport(report):
    if report.failed:
        OUTCOMES[report.nodeid] = "error"
def pytest_runtest_logreport(report):
    if report.when == "call" or report.skipped:
        OUTCOMES[report.nodeid] = "skipped" if report.skipped else report.outcome
    elif report.failed:
        OUTCOMES[report.nodeid] = "error"
def pytest_sessionfinish(session):
    with open(os.environ["BENCH_REPORT"], "w") as handle:
        json.dump(OUTCOMES, handle)
"""

# (what the situation is, file, new source); applied in order, each compared with a fresh run.
SITUATIONS = [
    ("a constant", "pkg/config.py", "RATE = 3\n"),
    ("a constant back", "pkg/config.py", "RATE = 2\n"),
    ("a syntax error", "pkg/calc.py", "def price(amount)\n    return amount\n"),
    (
        "its fix",
        "pkg/calc.py",
        "from pkg.config import RATE\n\ndef price(amount):\n    return amount * RATE\n",
    ),
    ("a function deleted while called", "pkg/calc.py", "from pkg.config import RATE\n"),
    (
        "the function back",
        "pkg/calc.py",
        "from pkg.config import RATE\n\ndef price(amount):\n    return amount * RATE\n",
    ),
    (
        "state mutated by a test",
        "tests/test_state.py",
        "from pkg import state\n\ndef test_state():\n    state.ITEMS.append(1)\n"
        "    assert state.ITEMS == [1]  # edited\n",
    ),
    ("a data file read at import", "pkg/data.txt", "6\n"),
]


CALC = "from pkg.config import RATE\n\ndef price(amount):\n    return amount * RATE\n"


class Project:
    def __init__(self, root: Path, import_seconds: float) -> None:
        self.root = root
        self._tick = 0
        files = {
            "pyproject.toml": '[tool.pytest.ini_options]\ntestpaths = ["tests"]\n'
            'pythonpath = ["."]\n',
            "pkg/__init__.py": "",
            "pkg/heavy.py": f"import time\n\ntime.sleep({import_seconds})\n",
            "pkg/config.py": "RATE = 2\n",
            "pkg/calc.py": "from pkg.config import RATE\n\ndef price(amount):\n"
            "    return amount * RATE\n",
            "pkg/state.py": "ITEMS = []\n",
            "pkg/data.txt": "5\n",
            "pkg/loader.py": "from pathlib import Path\n\n"
            "VALUE = int((Path(__file__).parent / 'data.txt').read_text())\n",
            "tests/conftest.py": "import pkg.heavy\n",
            "tests/test_calc.py": "from pkg.calc import price\n\ndef test_price():\n"
            "    assert price(2) == 4\n",
            "tests/test_config.py": "from pkg.config import RATE\n\ndef test_rate():\n"
            "    assert RATE == 2\n",
            "tests/test_state.py": "from pkg import state\n\ndef test_state():\n"
            "    state.ITEMS.append(1)\n    assert state.ITEMS == [1]\n",
            "tests/test_loader.py": "from pkg.loader import VALUE\n\ndef test_value():\n"
            "    assert VALUE == 5\n",
        }
        for relpath, source in files.items():
            self.write(relpath, source)

    def write(self, relpath: str, source: str) -> None:
        path = self.root / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source))
        # A fresh mtime per write, so no run ever takes a cached .pyc for current.
        self._tick += 2
        stamp = 1_700_000_000 + self._tick
        os.utime(path, (stamp, stamp))


def _env(scratch: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(scratch)
    env.pop("PYTEST_ADDOPTS", None)
    return env


def fresh(project: Project, scratch: Path) -> dict[str, Any]:
    """The outcomes of a fresh plain pytest of the whole project."""
    report = scratch / "fresh.json"
    env = {**_env(scratch), "BENCH_REPORT": str(report)}
    command = [sys.executable, "-m", "pytest", "-q", "-p", "bench_reporter", "-p"]
    command += ["no:cacheprovider", "--continue-on-collection-errors"]
    subprocess.run(command, cwd=project.root, env=env, capture_output=True, check=False)
    result: dict[str, Any] = json.loads(report.read_text())
    return result


def wait_final(events: Path, after: int, timeout: float = 120.0) -> tuple[dict[str, Any], int]:
    """The next final run event after the first ``after`` run events."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = events.read_text() if events.exists() else ""
        runs = [
            json.loads(line)
            for line in text.splitlines()
            if line.endswith("}") and '"event": "run"' in line
        ]
        for index in range(after, len(runs)):
            if runs[index]["final"]:
                return runs[index], index + 1
        time.sleep(0.005)  # polling another process's file; the latency comes from its stamps
    raise SystemExit("the session produced no final run in time")


def merge(suite: dict[str, str], run: dict[str, Any]) -> None:
    covered = run.get("files")
    for nodeid in list(suite):
        if covered is None or nodeid.split("::", 1)[0] in covered:
            del suite[nodeid]
    suite.update(run["outcomes"])


def measure_hotswap(
    import_seconds: float, saves: int, situations: int = len(SITUATIONS)
) -> dict[str, Any]:
    scratch = Path(tempfile.mkdtemp(prefix="hotswap-bench-pytest-"))
    (scratch / "bench_reporter.py").write_text(REPORTER)
    project = Project(scratch / "project", import_seconds)
    events = scratch / "events.jsonl"
    command = [sys.executable, "-m", "pytest", "--hotswap", "--hotswap-verify=off"]
    command += [f"--hotswap-events={events}", "-q", "-p", "no:cacheprovider"]
    out = open(scratch / "session.out", "wb")  # noqa: SIM115 - closed below
    session = subprocess.Popen(
        command, cwd=project.root, env=_env(scratch), stdin=subprocess.PIPE, stdout=out, stderr=out
    )
    try:
        first, seen = wait_final(events, 0)
        suite: dict[str, str] = {}
        merge(suite, first)
        latencies = []
        for index in range(saves):
            source = CALC + f"# save {index}\n"
            start = time.time()
            project.write("pkg/calc.py", source)
            run, seen = wait_final(events, seen)
            latencies.append(run["time"] - start)
            merge(suite, run)
        wrong = []
        for what, relpath, source in SITUATIONS[:situations]:
            project.write(relpath, source)
            run, seen = wait_final(events, seen)
            merge(suite, run)
            expected = fresh(project, scratch)
            if suite != expected:
                wrong.append(what)
        return {"latencies": latencies, "wrong": wrong, "first": first["duration"]}
    finally:
        if session.poll() is None:
            assert session.stdin is not None
            session.stdin.write(b"q\n")
            session.stdin.close()
            session.wait(60)
        out.close()


def measure_plain(import_seconds: float, saves: int) -> list[float]:
    scratch = Path(tempfile.mkdtemp(prefix="hotswap-bench-plain-"))
    project = Project(scratch / "project", import_seconds)
    times = []
    for index in range(saves):
        start = time.perf_counter()
        project.write("pkg/calc.py", f"def price(amount):\n    return amount * 2  # {index}\n")
        subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_calc.py"],
            cwd=project.root,
            env=_env(scratch),
            capture_output=True,
            check=False,
        )
        times.append(time.perf_counter() - start)
    return times


def _pytest(project: Project, scratch: Path, *args: str, report: Path | None = None) -> None:
    env = _env(scratch)
    if report is not None:
        env["BENCH_REPORT"] = str(report)
        args = ("-p", "bench_reporter", *args)
    command = [sys.executable, "-m", "pytest", "-q", *args]
    subprocess.run(command, cwd=project.root, env=env, capture_output=True, check=False)


def measure_testmon(import_seconds: float, saves: int) -> dict[str, Any]:
    """pytest-testmon: ``pytest --testmon`` after each save (it selects the affected tests by
    coverage, in a fresh process); wrong results counted over the same situations."""
    scratch = Path(tempfile.mkdtemp(prefix="hotswap-bench-testmon-"))
    (scratch / "bench_reporter.py").write_text(REPORTER)
    project = Project(scratch / "project", import_seconds)
    report = scratch / "run.json"
    _pytest(project, scratch, "--testmon", report=report)
    suite: dict[str, str] = json.loads(report.read_text())
    latencies = []
    for index in range(saves):
        start = time.perf_counter()
        project.write("pkg/calc.py", CALC + f"# save {index}\n")
        _pytest(project, scratch, "--testmon")
        latencies.append(time.perf_counter() - start)
    wrong = []
    for what, relpath, source in SITUATIONS:
        project.write(relpath, source)
        _pytest(project, scratch, "--testmon", report=report)
        ran = json.loads(report.read_text())
        # what testmon ran replaces what was known of those files; the rest it vouches for
        merge(suite, {"files": {n.split("::", 1)[0] for n in ran}, "outcomes": ran})
        expected = fresh(project, scratch)
        if suite != expected:
            wrong.append(what)
            if os.environ.get("BENCH_DEBUG"):
                print(what, {n: (suite.get(n), expected.get(n)) for n in {*suite, *expected}})
    return {"latencies": latencies, "wrong": wrong}


def measure_floor(import_seconds: float, saves: int) -> list[float]:
    """The in-process floor: hotswap.reload() of the saved module plus a warm pytest.main() of
    the affected test file, in this process, with no supervisor, worker or watcher."""
    import contextlib
    import io

    import pytest

    import hotswap

    scratch = Path(tempfile.mkdtemp(prefix="hotswap-bench-floor-"))
    project = Project(scratch / "project", import_seconds)
    os.chdir(project.root)
    sys.path.insert(0, str(project.root))
    args = ["-q", "-p", "no:cacheprovider", "tests/test_calc.py"]
    args += ["-W", "ignore::pytest.PytestAssertRewriteWarning"]
    with contextlib.redirect_stdout(io.StringIO()):
        pytest.main(args)
    times = []
    for index in range(saves):
        start = time.perf_counter()
        project.write("pkg/calc.py", CALC + f"X = {index}\n")
        hotswap.reload("pkg.calc", policy="off")
        for name in [n for n in sys.modules if n.startswith(("test_", "conftest"))]:
            del sys.modules[name]
        with contextlib.redirect_stdout(io.StringIO()):
            pytest.main(args)
        times.append(time.perf_counter() - start)
    return times


PEERS = {
    "pytest-watcher": "pytest_watcher",
    "pytest-hot-reloading": "pytest_hot_reloading",
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--import-seconds", type=float, default=1.7)
    parser.add_argument("--saves", type=int, default=10)
    parser.add_argument(
        "--situations",
        type=int,
        default=len(SITUATIONS),
        help=f"how many of the {len(SITUATIONS)} situations to check against a fresh run",
    )
    args = parser.parse_args(argv)
    hot = measure_hotswap(args.import_seconds, args.saves, args.situations)
    plain = measure_plain(args.import_seconds, max(2, args.saves // 3))
    print(f"project import: {args.import_seconds:.2f} s; {args.saves} saves (medians)")
    print(f"{'runner':<24} {'save -> result':>15} {'wrong':>7}")
    hot_ms = statistics.median(hot["latencies"])
    print(f"{'pytest --hotswap':<24} {hot_ms:>13.3f} s {len(hot['wrong']):>3}/{args.situations}")
    print(f"{'plain pytest (file)':<24} {statistics.median(plain):>13.3f} s {'0':>3}")
    if importlib.util.find_spec("testmon") is not None:
        mon = measure_testmon(args.import_seconds, max(2, args.saves // 3))
        mon_s = statistics.median(mon["latencies"])
        print(f"{'pytest-testmon':<24} {mon_s:>13.3f} s {len(mon['wrong']):>3}/{len(SITUATIONS)}")
        if mon["wrong"]:
            print("  testmon wrong:", ", ".join(mon["wrong"]))
    else:
        print(f"{'pytest-testmon':<24} {'not installed':>15}")
    for peer, module in PEERS.items():
        if importlib.util.find_spec(module) is None:
            print(f"{peer:<24} {'not installed':>15}")
    floor = statistics.median(measure_floor(args.import_seconds, args.saves))
    print(f"{'in-process floor':<24} {floor:>13.3f} s {'-':>3}")
    if hot["wrong"]:
        print("wrong results:", ", ".join(hot["wrong"]))


if __name__ == "__main__":
    with scratch():
        main()
