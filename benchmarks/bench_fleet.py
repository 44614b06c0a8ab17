"""A fleet of 3 gunicorn workers: save -> every worker serving the new code.

Run: python benchmarks/bench_fleet.py [--saves 10] [--modes fleet,gunicorn-hup]

Each mode serves ``tests/fleet_apps/app.py`` (copied to a temporary folder) with ``gunicorn -w
3`` on 127.0.0.1 (a free port) in a subprocess. Client threads in this process request ``/``
without pause, each request on a new connection so that every worker takes some. After each
save of ``logic.py`` (its ``version()`` returns the next version), the latency is the time
from the end of the write until 3 distinct workers have answered with the new version; a save
not seen within the wait is lost. Failed requests are connection errors and non-200 answers
from the first save to the end. ``state kept`` says whether each worker's request counter went
on across the saves (a restart starts it again). ``window`` is the fleet's mixed-version
window: between the first and the last worker's commit, as the coordinator logs it.

Modes:
- ``fleet``: ``hotswap run -m gunicorn -w 3`` (the run process coordinates; the workers join);
- ``gunicorn-hup``: plain ``gunicorn -w 3``, and ``kill -HUP`` to the arbiter after each save
  (gunicorn's graceful reload: new workers, the old ones finish their requests).

Targets (issue #22, on this 2-core machine): median <= 30 ms and max <= 150 ms from save to
every worker (first save included), 0 failed requests.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

APPS = Path(__file__).resolve().parent.parent / "tests" / "fleet_apps"
WAIT = 30.0  # seconds a save may take before it counts as lost
CLIENTS = 4


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _Clients:
    """Threads requesting ``/`` without pause; every answer is kept with its arrival time."""

    def __init__(self, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}/"
        self.answers: list[tuple[float, int, str, int]] = []  # (time, pid, version, count)
        self.failures: list[float] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(CLIENTS)]

    def __enter__(self) -> _Clients:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(10)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                with urllib.request.urlopen(self.url, timeout=10) as response:
                    body = json.loads(response.read())
                    ok = response.status == 200
            except OSError:
                ok, body = False, None
            now = time.perf_counter()
            with self._lock:
                if ok and body is not None:
                    self.answers.append((now, body["pid"], body["version"], body["count"]))
                else:
                    self.failures.append(now)

    def every_worker(self, version: str, since: float, workers: int = 3) -> float | None:
        """When ``workers`` distinct pids had answered ``version`` after ``since``."""
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            with self._lock:
                seen: dict[int, float] = {}
                for at, pid, got, _ in self.answers:
                    if at >= since and got == version and pid not in seen:
                        seen[pid] = at
            if len(seen) >= workers:
                return sorted(seen.values())[workers - 1]
            time.sleep(0.001)
        return None


@contextlib.contextmanager
def _server(mode: str, folder: Path, port: int) -> Iterator[subprocess.Popen[bytes]]:
    gunicorn = ["-m", "gunicorn", "-w", "3", "-b", f"127.0.0.1:{port}", "app:wsgi"]
    if mode == "fleet":
        command = [sys.executable, "-m", "hotswap", "run", "--no-restart", "--watch", str(folder)]
        command += gunicorn
    else:
        command = [sys.executable, *gunicorn]
    env = {**os.environ, "PYTHONPATH": str(folder), "PYTHONUNBUFFERED": "1"}
    with (folder / "server.log").open("w") as log:
        process = subprocess.Popen(
            command, cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + WAIT
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5):
                    break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError((folder / "server.log").read_text()) from None
                time.sleep(0.05)
        yield process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(30)


def measure(mode: str, saves: int = 10) -> dict[str, Any]:
    """One mode's figures: latencies (s), lost saves, failed requests, state kept, windows."""
    folder = Path(tempfile.mkdtemp(prefix="bench-fleet-"))
    try:
        for name in ("app.py", "logic.py"):
            shutil.copy(APPS / name, folder / name)
        logic = folder / "logic.py"
        text = logic.read_text()
        port = _free_port()
        with _server(mode, folder, port) as process, _Clients(port) as clients:
            if clients.every_worker("v1", 0.0) is None:
                raise RuntimeError("the 3 workers did not all answer")
            latencies: list[float] = []
            lost = 0
            first_save = time.perf_counter()
            for number in range(2, saves + 2):
                version = f"v{number}"
                logic.write_text(text.replace('return "v1"', f'return "{version}"'))
                saved = time.perf_counter()
                if mode == "gunicorn-hup":
                    os.kill(process.pid, signal.SIGHUP)
                done = clients.every_worker(version, saved)
                if done is None:
                    lost += 1
                else:
                    latencies.append(done - saved)
            failed = sum(at >= first_save for at in clients.failures)
            counts: dict[int, list[int]] = {}
            for _, pid, _, count in clients.answers:
                counts.setdefault(pid, []).append(count)
            kept = all(max(c) >= len(c) for c in counts.values()) and len(counts) == 3
            log = (folder / "server.log").read_text()
        windows = [float(w) for w in re.findall(r"window ([0-9.]+) ms", log)]
        return {
            "mode": mode,
            "latencies": latencies,
            "lost": lost,
            "failed": failed,
            "state": kept,
            "windows": windows,
        }
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _row(row: dict[str, Any]) -> str:
    latencies = row["latencies"]
    median = f"{statistics.median(latencies) * 1000:.1f}" if latencies else "-"
    worst = f"{max(latencies) * 1000:.1f}" if latencies else "-"
    window = f"{max(row['windows']):.1f}" if row["windows"] else "-"
    state = "kept" if row["state"] else "lost"
    return (
        f"| {row['mode']} | {median} | {worst} | {row['lost']} | {row['failed']} | {state} "
        f"| {window} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--saves", type=int, default=10)
    parser.add_argument("--modes", default="fleet,gunicorn-hup")
    options = parser.parse_args()
    rows = [measure(mode, options.saves) for mode in options.modes.split(",")]
    print(f"3 gunicorn workers, {options.saves} saves each")
    print("| mode | save -> every worker, median (ms) | max (ms) | lost | failed requests "
          "| state | mixed-version window, max (ms) |")  # fmt: skip
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for row in rows:
        print(_row(row))


if __name__ == "__main__":
    main()
