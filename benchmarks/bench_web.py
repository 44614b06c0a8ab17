"""Served web app: save -> the new handler answers, and the requests that failed meanwhile.

Run: python benchmarks/bench_web.py [--saves 10] [--modes hotswap-fastapi,uvicorn-reload]

Each mode serves a small app from a temporary folder on 127.0.0.1 (a free port) in a
subprocess. A client thread in this process requests ``/`` without pause over one keep-alive
connection (a new one after a failure). After each save of ``main.py`` (a handler edit), the
latency is the time from the end of the write to the first response from the new version; a
save not answering within the wait is lost. Failed requests are the connection errors (refused,
reset) and non-200 responses between the save and the answer. ``state`` says whether a request
counter kept in the module survived the edits.

Modes:
- ``hotswap-fastapi``: ``hotswap run -m uvicorn main:app`` with the ASGI middleware;
- ``hotswap-flask``: ``hotswap run -m flask --app main run`` with the WSGI middleware;
- ``uvicorn-reload``: ``uvicorn main:app --reload`` (a restart per save);
- ``uvicorn-hmr``: ``uvicorn-hmr main:app`` when it is installed.

Target (issue #11, DESIGN §7): <= 10 ms median, zero refused or failed requests.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from _sources import scratch

FASTAPI = """
from fastapi import FastAPI

from hotswap.integrations.asgi import HotswapMiddleware

HITS = [0]  # module state: kept by a hot reload, lost by a restart

app = FastAPI()
app.add_middleware(HotswapMiddleware)

@app.get("/")
def index():
    HITS[0] += 1
    return {"version": 0, "hits": HITS[0]}
"""

FLASK = """
from flask import Flask

from hotswap.integrations.wsgi import HotswapMiddleware

HITS = [0]

app = Flask(__name__)
app.wsgi_app = HotswapMiddleware(app.wsgi_app)

@app.route("/")
def index():
    HITS[0] += 1
    return {"version": 0, "hits": HITS[0]}
"""

MODES = ("hotswap-fastapi", "hotswap-flask", "uvicorn-reload", "uvicorn-hmr")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def command(mode: str, port: int) -> list[str] | None:
    python = [sys.executable, "-m"]
    if mode == "hotswap-fastapi":
        return [*python, "hotswap", "run", "-m", "uvicorn", "main:app", "--port", str(port)]
    if mode == "hotswap-flask":
        flask = ["flask", "--app", "main", "run", "--port", str(port), "--no-reload"]
        return [*python, "hotswap", "run", "-m", *flask]
    if mode == "uvicorn-reload":
        return [*python, "uvicorn", "main:app", "--reload", "--port", str(port)]
    hmr = shutil.which("uvicorn-hmr", path=str(Path(sys.executable).parent))
    return None if hmr is None else [hmr, "main:app", "--port", str(port)]


def source(mode: str, version: int) -> str:
    text = FLASK if mode == "hotswap-flask" else FASTAPI
    return text.replace('"version": 0', f'"version": {version}')


class Client:
    """Requests without pause; keeps (receive time, version or None, hits) of each answer."""

    def __init__(self, port: int) -> None:
        import httpx

        self._httpx = httpx
        self.port = port
        self.answers: list[tuple[float, int | None, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        httpx = self._httpx
        url = f"http://127.0.0.1:{self.port}/"
        while not self._stop.is_set():
            with httpx.Client(timeout=10) as client:
                while not self._stop.is_set():
                    try:
                        response = client.get(url)
                    except httpx.TransportError:
                        self.answers.append((time.monotonic(), None, 0))
                        break  # a new connection, as a browser would
                    if response.status_code != 200:
                        self.answers.append((time.monotonic(), None, 0))
                        continue
                    body = response.json()
                    self.answers.append((time.monotonic(), body["version"], body["hits"]))

    def wait_for(self, version: int, since: int, timeout: float) -> int | None:
        """The index of the first answer from ``version`` after index ``since``, or None."""
        deadline = time.monotonic() + timeout
        index = since
        while time.monotonic() < deadline:
            while index < len(self.answers):
                if self.answers[index][1] == version:
                    return index
                index += 1
            time.sleep(0.0005)  # a poll of the client's record, not a wait for the server
        return None

    def __enter__(self) -> Client:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)


@contextlib.contextmanager
def serving(mode: str, folder: Path, port: int) -> Iterator[bool]:
    """Run the server of ``mode``; yields False when it is not installed or never answered."""
    argv = command(mode, port)
    if argv is None:
        yield False
        return
    env = {**os.environ, "PYTHONPATH": str(folder)}
    env.pop("FLASK_APP", None)
    with (folder / "server.log").open("w") as log:
        process = subprocess.Popen(
            argv, cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        yield _answers(port, process)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGINT)
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(20)


def _answers(port: int, process: subprocess.Popen[bytes]) -> bool:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def measure(mode: str, saves: int = 10, wait: float = 10.0) -> dict[str, Any] | None:
    """One row: latencies (s), failed requests, lost saves and whether state survived."""
    with tempfile.TemporaryDirectory(prefix="bench_web_") as tmp:
        folder = Path(tmp)
        main = folder / "main.py"
        main.write_text(source(mode, 0))
        port = free_port()
        with serving(mode, folder, port) as up:
            if not up:
                return None
            with Client(port) as client:
                if client.wait_for(0, 0, 60) is None:
                    return None
                latencies: list[float] = []
                failed = lost = 0
                for version in range(1, saves + 1):
                    since = len(client.answers)
                    main.write_text(source(mode, version))
                    saved = time.monotonic()
                    index = client.wait_for(version, since, wait)
                    end = len(client.answers) if index is None else index
                    failed += sum(1 for a in client.answers[since:end] if a[1] is None)
                    if index is None:
                        lost += 1
                    else:
                        latencies.append(client.answers[index][0] - saved)
                hits = [a[2] for a in client.answers if a[1] is not None]
        kept = all(b > a for a, b in itertools.pairwise(hits))
        return {
            "mode": mode,
            "median": statistics.median(latencies) if latencies else float("nan"),
            "max": max(latencies) if latencies else float("nan"),
            "failed": failed,
            "lost": lost,
            "requests": len(client.answers),
            "state": "kept" if kept else "lost",
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--saves", type=int, default=10)
    parser.add_argument("--modes", default=",".join(MODES))
    options = parser.parse_args()
    print(f"save -> new handler answers, {options.saves} saves per mode (127.0.0.1)")
    print(f"{'mode':<18} {'median ms':>10} {'max ms':>8} {'failed':>7} {'lost':>5} {'state':>6}")
    for mode in options.modes.split(","):
        row = measure(mode, options.saves)
        if row is None:
            print(f"{mode:<18} {'not installed or did not start':>40}")
            continue
        print(
            f"{mode:<18} {row['median'] * 1000:>10.1f} {row['max'] * 1000:>8.1f} "
            f"{row['failed']:>7} {row['lost']:>5} {row['state']:>6}"
        )


if __name__ == "__main__":
    with scratch():
        main()
