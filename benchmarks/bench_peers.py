"""hotswap side by side with its peers, in one run, on the same files (issue 26).

Run: python benchmarks/bench_peers.py [--saves 10] [--peers hotswap,jurigged,...] [--quick]

Each tool runs in its own scratch virtual environment, made by this script under a temporary
folder that is removed at the end: hotswap (installed in editable mode, as the README says),
jurigged, IPython's autoreload (``ModuleReloader``, which runs ``superreload`` on each changed
module; polled every millisecond, as a cell would), hmr (in a Python 3.12+ environment: it
needs one), reloadium (when it installs and runs), and the floor: a watchdog observer calling
``importlib.reload`` on every event. A tool that does not install or start gets "-" cells and
a note.

The program under test runs in a subprocess of the tool's environment; a thread of it reads
the value the program would see (``module.value()``) every 0.2 ms, and reports when the saved
value shows. Latency is from the end of the save to that report; 0 of N means the value never
showed (the tool does not apply that kind of change) within the row's timeout.

Rows: the first save of a fresh process; a one-function edit in a 2,000-line module; a
whole-module rewrite of 2,000 and of 16,000 statements (also as a ratio to ``compile()`` of
the module, measured by the same program); a constant imported by 50 modules (live when the
last importer sees it); a 10 MB file saved and another module saved right after it (the other
module's latency, then the big file's, and its ratio to ``compile()``); save -> live with the
main thread idle and CPU-bound.

Targets (issue 26): first save <= 10 ms; whole-module rewrite <= 2x compile(); one-function
edit <= 0.3x compile() (bench_reload.py measures that one without a watcher); the other module
live <= 50 ms while a 10 MB file is planned, the big file <= 3x compile().
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import json
import os
import queue
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

from _sources import module_source, scratch

REPO = Path(__file__).resolve().parent.parent
PEERS = ("hotswap", "jurigged", "autoreload", "hmr", "reloadium", "floor")
# What each peer's environment installs (hotswap: this checkout, editable).
INSTALL = {
    "hotswap": ["-e", str(REPO)],
    "jurigged": ["jurigged"],
    "autoreload": ["ipython"],
    "hmr": ["hmr"],
    "reloadium": ["reloadium"],
    "floor": ["watchdog"],
}

CHILD = textwrap.dedent(
    """
    import importlib, json, os, sys, threading, time
    peer, folder, busy = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
    names = json.loads(sys.argv[4])
    sys.path.insert(0, folder)
    if peer == "hmr":  # its modules must be imported through its finder
        from reactivity.hmr.core import SyncReloader
        entry = os.path.join(folder, "entry.py")
        reloader = SyncReloader(entry, includes=[folder])
    modules = {name: importlib.import_module(name) for name in names}
    if peer == "hotswap":
        import hotswap
        hotswap.enable([folder], policy="off")
    elif peer == "jurigged":
        import jurigged
        jurigged.watch(os.path.join(folder, "*.py"))
    elif peer == "autoreload":
        from IPython.extensions.autoreload import ModuleReloader
        autoreload = ModuleReloader()
        autoreload.enabled = True
        autoreload.check_all = True

        def check():
            while True:
                autoreload.check()
                time.sleep(0.001)
        threading.Thread(target=check, daemon=True).start()
    elif peer == "hmr":
        threading.Thread(target=reloader.start_watching, daemon=True).start()
    elif peer == "reloadium":
        pass  # started by `reloadium run`, which runs this program
    elif peer == "floor":
        from watchdog.events import FileSystemEventHandler
        from watchdog.observers import Observer
        files = {os.path.join(folder, f"{n}.py"): n for n in names}

        class Handler(FileSystemEventHandler):
            def on_any_event(self, event):
                if event.event_type in ("opened", "closed_no_write", "deleted"):
                    return
                name = files.get(event.src_path)
                if name is not None:
                    try:
                        importlib.reload(sys.modules[name])
                    except Exception:
                        pass

        observer = Observer()
        observer.schedule(Handler(), folder)
        observer.start()
    expected = {}
    lock = threading.Lock()

    def poll():
        while True:
            with lock:
                items = list(expected.items())
            for name, value in items:
                try:
                    seen = sys.modules[name].value()
                except Exception:
                    continue
                if seen == value:
                    with lock:
                        expected.pop(name, None)
                    print(f"live {name} {time.monotonic()}", flush=True)
            time.sleep(0.0002)

    def commands():
        for line in sys.stdin:
            parts = line.split()
            if parts[0] == "expect":
                with lock:
                    expected[parts[1]] = int(parts[2])
                print("armed", flush=True)
            elif parts[0] == "compile":
                with open(os.path.join(folder, parts[1] + ".py")) as handle:
                    text = handle.read()
                start = time.perf_counter()
                compile(text, parts[1], "exec")
                print(f"compiled {time.perf_counter() - start}", flush=True)
        os._exit(0)

    threading.Thread(target=poll, daemon=True).start()
    threading.Thread(target=commands, daemon=True).start()
    print("ready", flush=True)
    if busy:
        while True:
            sum(i * i for i in range(2000))
    else:
        threading.Event().wait()
    """
)


# --- environments -------------------------------------------------------------------------------


def _python_312() -> str | None:
    """A Python 3.12 or later for hmr: this one if it is, else one on PATH or under pyenv
    (each tried: a pyenv shim on PATH may name a version it will not run)."""
    if sys.version_info >= (3, 12):
        return sys.executable
    pattern = os.path.expanduser("~/.pyenv/versions/3.1[2-9]*/bin/python")
    candidates = [shutil.which(n) for n in ("python3.13", "python3.12")]
    for candidate in [*sorted(glob.glob(pattern)), *candidates]:
        if candidate and _runs_312(candidate):
            return candidate
    return None


def _runs_312(python: str) -> bool:
    check = "import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)"
    try:
        done = subprocess.run([python, "-c", check], capture_output=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def _base_python() -> str:
    """The interpreter this venv was made from (a venv made from a venv is not nested)."""
    base = getattr(sys, "_base_executable", None)
    return base if isinstance(base, str) and os.path.exists(base) else sys.executable


def make_env(peer: str, root: Path) -> tuple[str | None, str]:
    """A scratch environment with the peer installed: (its python, or None, and a note)."""
    python = _python_312() if peer == "hmr" else _base_python()
    if python is None:
        return None, "no Python 3.12+ found"
    env = root / f"env-{peer}"
    try:
        if not (env / "bin" / "python").exists():  # --envs: made by an earlier run
            subprocess.run([python, "-m", "venv", str(env)], check=True, capture_output=True)
            pip = [str(env / "bin" / "python"), "-m", "pip", "install", "-q", *INSTALL[peer]]
            subprocess.run(pip, check=True, capture_output=True, text=True, timeout=900)
    except subprocess.CalledProcessError as error:
        output = error.stderr or ""
        text = output.decode(errors="replace") if isinstance(output, bytes) else output
        tail = text.strip().splitlines()[-1:] or ["failed"]
        return None, f"did not install: {tail[0][:80]}"
    except subprocess.TimeoutExpired:
        return None, "did not install within 15 minutes"
    version = subprocess.run(
        [str(env / "bin" / "python"), "-c", "import sys; print(sys.version.split()[0])"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return str(env / "bin" / "python"), f"Python {version}"


_MODULES = {
    "hotswap": "hotswap",
    "jurigged": "jurigged",
    "autoreload": "IPython",
    "hmr": "reactivity",
    "reloadium": "reloadium",
    "floor": "watchdog",
}


def _here(peer: str) -> tuple[str | None, str]:
    """This interpreter, if the peer is installed in it (--here)."""
    import importlib.util

    if importlib.util.find_spec(_MODULES[peer]) is None:
        return None, "not installed in this environment (--here)"
    return sys.executable, f"this environment (--here), Python {sys.version.split()[0]}"


# --- one program under test ---------------------------------------------------------------------


class Program:
    """The program under test, in the peer's environment, watching ``folder``.

    The project's files are dated an hour back first: written before the program started, as
    a project's files are (hotswap prepares nothing from a file saved around its start).
    """

    def __init__(self, python: str, peer: str, folder: Path, names: list[str], busy: bool):
        (folder / "entry.py").write_text("")
        stamp = time.time() - 3600
        for file in folder.glob("*.py"):
            os.utime(file, (stamp, stamp))
        script = folder.parent / "child.py"
        script.write_text(CHILD)
        arguments = [script, peer, folder, "1" if busy else "0", json.dumps(names)]
        command = [python, *map(str, arguments)]
        if peer == "reloadium":
            command = [python, "-m", "reloadium", "run", *map(str, arguments)]
        self.process = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            cwd=folder,
            env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
        )
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        if self._next("ready", 120) is None:
            self.close()
            raise RuntimeError("the program did not start")

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.strip())

    def _next(self, prefix: str, timeout: float) -> str | None:
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            try:
                line = self.lines.get(timeout=remaining)
            except queue.Empty:
                return None
            # A tool's own output may share the line (jurigged writes without a newline).
            at = line.find(prefix)
            if at >= 0:
                return line[at:]

    def send(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()

    def expect(self, name: str, value: int) -> None:
        self.send(f"expect {name} {value}")
        if self._next("armed", 30) is None:
            raise RuntimeError("the program stopped answering")

    def live(self, name: str, timeout: float) -> float | None:
        """When ``name`` showed the expected value (monotonic), None if not within timeout."""
        line = self._next(f"live {name} ", timeout)
        return None if line is None else _number(line.split()[2])

    def compile_time(self, name: str) -> float:
        self.send(f"compile {name}")
        line = self._next("compiled ", 120)
        return float("nan") if line is None else _number(line.split()[1])

    def close(self) -> None:
        self.process.kill()
        self.process.wait()
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()


def _number(text: str) -> float:
    """The number a report starts with (a tool's output may follow it on the line)."""
    found = re.match(r"[0-9.e+-]+", text)
    return float(found.group()) if found else float("nan")


# --- the rows -----------------------------------------------------------------------------------


def small(value: int) -> str:
    return f"VALUE = {value}\n\n\ndef value():\n    return VALUE\n"


def rewritten(count: int, value: int) -> str:
    lines = [f"V{i} = {i} + {value}" for i in range(count)]
    return "\n".join(lines) + f"\n\n\ndef value():\n    return {value}\n"


def large(value: int) -> str:
    """About 10 MB: long string constants, then value()."""
    pad = "x" * 200
    lines = [f"S{i} = '{pad}{value}'" for i in range(46_000)]
    return "\n".join(lines) + f"\n\n\ndef value():\n    return {value}\n"


def one_function(value: int) -> str:
    # module_source's one edited function, with value() reading it.
    return module_source(2000, value) + "\n\ndef value():\n    return edited(1) - 1\n"


def _save(path: Path, text: str) -> float:
    path.write_text(text)
    return time.monotonic()


def row_latency(python: str, peer: str, busy: bool, saves: int, timeout: float) -> dict:
    with tempfile.TemporaryDirectory() as root:
        folder = Path(root) / "app"
        folder.mkdir()
        path = folder / "target.py"
        path.write_text(small(0))
        program = Program(python, peer, folder, ["target"], busy)
        times: list[float] = []
        first = None
        try:
            time.sleep(0.05)
            for n in range(1, saves + 1):
                program.expect("target", n)
                saved = _save(path, small(n))
                live = program.live("target", timeout)
                if live is not None:
                    ms = max(live - saved, 0.0) * 1000
                    if n == 1:
                        first = ms
                    else:
                        times.append(ms)
                time.sleep(0.05)  # apart: each save its own change
        finally:
            program.close()
    return {"first": first, "times": times, "saves": saves - 1}


def row_module(
    python: str, peer: str, make, saves: int, timeout: float, *, compile_ratio: bool
) -> dict:
    with tempfile.TemporaryDirectory() as root:
        folder = Path(root) / "app"
        folder.mkdir()
        path = folder / "target.py"
        path.write_text(make(0))
        program = Program(python, peer, folder, ["target"], False)
        times: list[float] = []
        compiles: list[float] = []
        try:
            program.expect("target", 0)  # the first expectation answers at once: warm
            program.live("target", 5)
            for n in range(1, saves + 1):
                program.expect("target", n)
                saved = _save(path, make(n))
                live = program.live("target", timeout)
                if live is not None:
                    times.append(max(live - saved, 0.0) * 1000)
                if compile_ratio:
                    compiles.append(program.compile_time("target") * 1000)
                time.sleep(0.05)
        finally:
            program.close()
    ratio = None
    if times and compiles:
        ratio = statistics.median(times) / statistics.median(compiles)
    return {"times": times, "saves": saves, "ratio": ratio}


def row_importers(python: str, peer: str, saves: int, timeout: float, count: int = 50) -> dict:
    with tempfile.TemporaryDirectory() as root:
        folder = Path(root) / "app"
        folder.mkdir()
        (folder / "config.py").write_text("RATE = 0\n")
        for index in range(count):
            (folder / f"user{index}.py").write_text(
                f"from config import RATE\n\nSCALED = RATE * {index + 1}\n\n\n"
                f"def value():\n    return SCALED // {index + 1}\n"
            )
        names = ["config", *(f"user{i}" for i in range(count))]
        program = Program(python, peer, folder, names, False)
        last = f"user{count - 1}"
        times: list[float] = []
        try:
            for n in range(1, saves + 1):
                program.expect(last, n)
                saved = _save(folder / "config.py", f"RATE = {n}\n")
                live = program.live(last, timeout)
                if live is not None:
                    times.append(max(live - saved, 0.0) * 1000)
                time.sleep(0.05)
        finally:
            program.close()
    return {"times": times, "saves": saves}


def row_huge(python: str, peer: str, timeout: float) -> dict:
    """A 10 MB file saved, then a small module right after: when each is live."""
    with tempfile.TemporaryDirectory() as root:
        folder = Path(root) / "app"
        folder.mkdir()
        (folder / "huge.py").write_text(large(0))
        (folder / "target.py").write_text(small(0))
        program = Program(python, peer, folder, ["huge", "target"], False)
        try:
            compiled = program.compile_time("huge") * 1000
            program.expect("target", 1)
            program.expect("huge", 1)
            saved = _save(folder / "huge.py", large(1))
            other_saved = _save(folder / "target.py", small(1))
            other = program.live("target", timeout)
            big = program.live("huge", timeout)
        finally:
            program.close()
    other_ms = None if other is None else max(other - other_saved, 0.0) * 1000
    big_ms = None if big is None else max(big - saved, 0.0) * 1000
    return {
        "other": other_ms,
        "big": big_ms,
        "ratio": None if big_ms is None else big_ms / compiled,
    }


# --- the table ----------------------------------------------------------------------------------


def _cell(result: dict | None, *, ratio: bool = False) -> str:
    if result is None:
        return "-"
    times = result["times"]
    if not times:
        return f"0 of {result['saves']}"
    text = f"{statistics.median(times):.1f} / {max(times):.0f}"
    if len(times) < result["saves"]:
        text += f" ({len(times)} of {result['saves']})"
    if ratio and result.get("ratio") is not None:
        text += f", {result['ratio']:.1f}x"
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--saves", type=int, default=10)
    parser.add_argument("--peers", default=",".join(PEERS))
    parser.add_argument("--quick", action="store_true", help="fewer saves, no 16,000 / 10 MB")
    parser.add_argument(
        "--here",
        action="store_true",
        help="run the peers in this environment instead of scratch ones (those not installed "
        "here are skipped): a quick look, not the comparison",
    )
    parser.add_argument(
        "--envs",
        help="keep the environments in this folder and reuse them (default: made in the run's "
        "temporary folder and removed with it)",
    )
    options = parser.parse_args()
    peers = [p for p in PEERS if p in options.peers.split(",")]
    saves = 3 if options.quick else options.saves
    load = os.getloadavg()
    print(f"load average at start: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}", flush=True)
    root = Path(options.envs) if options.envs else Path(tempfile.gettempdir())
    root.mkdir(parents=True, exist_ok=True)
    rows: dict[str, dict[str, str]] = {}
    notes: dict[str, str] = {}
    labels = [
        ("first", "first save of a fresh process (ms)"),
        ("idle", "save -> live, idle main thread (median / max ms)"),
        ("busy", "save -> live, CPU-bound main thread (median / max ms)"),
        ("one", "one-function edit, 2,000-line module (median / max ms)"),
        ("r2k", "whole-module rewrite, 2,000 statements (ms, x compile)"),
        ("r16k", "whole-module rewrite, 16,000 statements (ms, x compile)"),
        ("imp", "constant imported by 50 modules (ms)"),
        ("huge", "10 MB file, then another module: other / big (ms, x compile)"),
    ]
    for peer in peers:
        if options.here:
            python, note = _here(peer)
        else:
            print(f"{peer}: making its environment...", flush=True)
            python, note = make_env(peer, root)
        notes[peer] = note
        cells: dict[str, str] = {}
        rows[peer] = cells
        if python is None:
            print(f"{peer}: {note}", flush=True)
            continue
        try:
            idle = row_latency(python, peer, False, saves + 1, 5)
            cells["first"] = "-" if idle["first"] is None else f"{idle['first']:.1f}"
            cells["idle"] = _cell(idle)
            cells["busy"] = _cell(row_latency(python, peer, True, saves + 1, 5))
            cells["one"] = _cell(
                row_module(python, peer, one_function, saves, 10, compile_ratio=True), ratio=True
            )
            cells["r2k"] = _cell(
                row_module(
                    python, peer, lambda v: rewritten(2000, v), saves, 30, compile_ratio=True
                ),
                ratio=True,
            )
            if not options.quick:
                cells["r16k"] = _cell(
                    row_module(
                        python, peer, lambda v: rewritten(16000, v), 3, 60, compile_ratio=True
                    ),
                    ratio=True,
                )
            cells["imp"] = _cell(row_importers(python, peer, saves, 10))
            if not options.quick:
                huge = row_huge(python, peer, 60)
                other = "not in 60 s" if huge["other"] is None else f"{huge['other']:.0f}"
                big = "not in 60 s" if huge["big"] is None else f"{huge['big']:.0f}"
                ratio = "" if huge["ratio"] is None else f", {huge['ratio']:.1f}x"
                cells["huge"] = f"{other} / {big}{ratio}"
        except RuntimeError as error:
            notes[peer] += f"; {error}"
        print(f"{peer}: {json.dumps(cells)}", flush=True)
    load = os.getloadavg()
    print(f"\nload average at end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print(f"\n| row | {' | '.join(peers)} |")
    print(f"| --- | {' | '.join('---' for _ in peers)} |")
    for key, label in labels:
        print(f"| {label} | {' | '.join(rows[p].get(key, '-') for p in peers)} |")
    print()
    for peer in peers:
        print(f"{peer}: {notes[peer]}")
    print(
        "\n'0 of N': the saved value never showed in the program (the tool does not apply that "
        "change, or not in time); '(k of N)': only k saves showed."
    )


if __name__ == "__main__":
    with scratch():
        main()
