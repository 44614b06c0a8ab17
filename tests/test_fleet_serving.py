"""Fleets end to end: real servers with 3 worker processes on 127.0.0.1, and multiprocessing
pools, all under ``hotswap run``, started by the test and stopped by PID.

From the outside only: every answer carries its worker's epoch (``x-hotswap-epoch``), and a
worker counts as updated when *it* answers with the new epoch. Each test saves a compatible
edit (every worker moves, its counter goes on), a rejected edit (no worker moves, and a worker
started after it, by killing one, runs the committed code, not the file), and an edit that
fails in one worker only (every worker stays).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from hotswap._fleet.release import GENESIS, epoch_of, short

httpx = pytest.importorskip("httpx")
pytest.importorskip("gunicorn")
pytest.importorskip("uvicorn")

pytestmark = pytest.mark.watcher

TIMEOUT = 60.0  # generous: the machine may be loaded; nothing is asserted on time
APPS = Path(__file__).parent / "fleet_apps"
LOGIC = (APPS / "logic.py").read_text()
V2 = LOGIC.replace('return "v1"', 'return "v2"')
REJECTED = LOGIC.replace('def version():\n    return "v1"', 'def version(extra):\n    return "v3"')
ONE_FAILS = """
import os

if os.getpid() == PID:
    raise RuntimeError("fails in this worker only")
""" + LOGIC.replace('return "v1"', 'return "v4"')


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(
    condition: Callable[[], bool], what: str, explain: Callable[[], str] | None = None
) -> None:
    """Poll a condition until it holds, bounded by TIMEOUT (never a bound on what is tested);
    ``explain`` says what was seen, for the failure's message."""
    deadline = time.monotonic() + TIMEOUT
    while not condition():
        if time.monotonic() > deadline:
            detail = f"\n{explain()}" if explain is not None else ""
            raise AssertionError(f"timed out waiting for {what}{detail}")
        time.sleep(0.02)


def children(pid: int) -> set[int]:
    """The worker processes of a server (its children, the multiprocessing helpers aside)."""
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return set()
    found = set()
    for child in text.split():
        try:
            command = Path(f"/proc/{child}/cmdline").read_bytes()
        except OSError:
            continue
        if b"resource_tracker" not in command:
            found.add(int(child))
    return found


def running(pid: int) -> bool:
    """Whether ``pid`` runs (neither gone nor a zombie)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def stacks(log: Path, pids: list[int]) -> str:
    """The end of the server's log once ``pids`` wrote their stacks into it: each is sent
    SIGSEGV, on which ``PYTHONFAULTHANDLER`` writes every thread's stack before the process
    dies (a hung process says where it waits)."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGSEGV)
    deadline = time.monotonic() + 10
    while any(running(pid) for pid in pids):
        if time.monotonic() > deadline:
            break
        time.sleep(0.05)
    return log.read_text()[-12000:]


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@pytest.fixture
def app_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "app"
    shutil.copytree(APPS, folder, ignore=shutil.ignore_patterns("__pycache__"))
    return folder


class Server:
    """A server under ``hotswap run`` and what its workers answered."""

    def __init__(self, process: subprocess.Popen[bytes], port: int, log: Path) -> None:
        self.process = process
        self.port = port
        self.log = log
        self.answers: dict[int, dict[str, Any]] = {}  # pid -> its latest answer
        self._lock = threading.Lock()

    def ask(self) -> dict[str, Any] | None:
        try:
            response = httpx.get(f"http://127.0.0.1:{self.port}/", timeout=10)
        except httpx.TransportError:
            return None
        if response.status_code != 200:
            return {"status": response.status_code}
        answer = dict(response.json())
        answer["epoch"] = response.headers.get("x-hotswap-epoch")
        with self._lock:
            self.answers[answer["pid"]] = answer
        return answer

    def sample(self) -> None:
        """Concurrent requests, so that every worker takes some."""
        with ThreadPoolExecutor(6) as pool:
            list(pool.map(lambda _: self.ask(), range(24)))

    def workers(self) -> set[int]:
        return children(self.process.pid)

    def wait_every_worker(self, check: Callable[[dict[str, Any]], bool], what: str) -> None:
        """Until every current worker answered (since now) and ``check`` holds for each."""
        with self._lock:
            self.answers.clear()

        def done() -> bool:
            self.sample()
            workers = self.workers()
            with self._lock:
                seen = {pid: self.answers.get(pid) for pid in workers}
            return len(workers) == 3 and all(a is not None and check(a) for a in seen.values())

        wait_until(done, what, self.explain)

    def explain(self) -> str:
        """What the workers answered, and the stacks of those that did not answer."""
        workers = self.workers()
        with self._lock:
            answers = {pid: self.answers.get(pid) for pid in workers}
        tail = stacks(self.log, [pid for pid, answer in answers.items() if answer is None])
        return f"workers {sorted(workers)}, answers {answers}\nserver log (end):\n{tail}"

    def logged(self, text: str) -> bool:
        return text in self.log.read_text()


@contextlib.contextmanager
def serve(
    command: list[str], folder: Path, port: int, *, under_hotswap: bool = True
) -> Iterator[Server]:
    """Start ``python -m <command>`` (under ``hotswap run`` unless told otherwise)."""
    log = folder / "server.log"
    env = {
        **os.environ,
        "PYTHONPATH": str(folder),
        "PYTHONUNBUFFERED": "1",
        "PYTHONFAULTHANDLER": "1",  # Server.explain: a hung worker's stacks
    }
    run = ["-m", "hotswap", "run", "--no-restart", "--watch", str(folder)]
    with log.open("w") as output:
        process = subprocess.Popen(
            [sys.executable, *(run if under_hotswap else []), "-m", *command],
            cwd=folder,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = Server(process, port, log)
    try:
        wait_until(
            lambda: process.poll() is not None or server.ask() is not None,
            "the server",
            lambda: stacks(log, [*children(process.pid), process.pid]),
        )
        assert process.poll() is None, log.read_text()
        wait_until(lambda: len(server.workers()) == 3, "3 workers")
        yield server
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(30)


def exercise(server: Server, folder: Path) -> None:
    """The three saves, checked from the outside."""
    logic = folder / "logic.py"
    server.wait_every_worker(lambda a: a["version"] == "v1" and a["epoch"] == short(GENESIS), "v1")
    before = dict(server.answers)

    # A compatible save: every worker answers with the new epoch, its counter going on.
    committed = epoch_of(GENESIS, {"logic": digest(V2)})
    logic.write_text(V2)
    server.wait_every_worker(
        lambda a: a["version"] == "v2" and a["epoch"] == short(committed), "v2 everywhere"
    )
    for pid, answer in server.answers.items():
        assert answer["count"] > before[pid]["count"], (pid, answer, before[pid])
    wait_until(
        lambda: server.logged(f"fleet {short(committed)}: committed in 3/3 workers ("), "the log"
    )

    # A rejected save: no worker moves; a worker started after it runs the committed code.
    logic.write_text(REJECTED)
    wait_until(lambda: server.logged("aborted in 3 workers"), "the rejection")
    server.wait_every_worker(
        lambda a: a["version"] == "v2" and a["epoch"] == short(committed), "v2"
    )
    victim = min(server.workers())
    os.kill(victim, signal.SIGKILL)
    wait_until(lambda: victim not in server.workers() and len(server.workers()) == 3, "a respawn")
    server.wait_every_worker(
        lambda a: a["version"] == "v2" and a["epoch"] == short(committed), "the respawned v2"
    )
    assert victim not in server.answers

    # A save that fails in one worker only: rolled back in every worker.
    logic.write_text(ONE_FAILS.replace("PID", str(min(server.workers()))))
    wait_until(lambda: server.logged("rolled back in 3 workers"), "the rollback")
    server.wait_every_worker(
        lambda a: a["version"] == "v2" and a["epoch"] == short(committed), "v2"
    )
    assert all(a.get("status") is None for a in server.answers.values())


def test_fleet_gunicorn_sync_workers_move_together(app_folder: Path) -> None:
    port = free_port()
    command = ["gunicorn", "-w", "3", "-b", f"127.0.0.1:{port}", "app:wsgi"]
    with serve(command, app_folder, port) as server:
        exercise(server, app_folder)


def test_fleet_gunicorn_uvicorn_workers_move_together(app_folder: Path) -> None:
    port = free_port()
    command = [
        "gunicorn",
        "-w",
        "3",
        "-k",
        "uvicorn.workers.UvicornWorker",
        "-b",
        f"127.0.0.1:{port}",
        "app:asgi",
    ]
    with serve(command, app_folder, port) as server:
        exercise(server, app_folder)


def test_fleet_uvicorn_workers_move_together(app_folder: Path) -> None:
    port = free_port()
    command = ["uvicorn", "--workers", "3", "--port", str(port), "app:asgi"]
    with serve(command, app_folder, port) as server:
        exercise(server, app_folder)


def test_fleet_gunicorn_preload_moves_the_arbiter_and_the_workers(app_folder: Path) -> None:
    port = free_port()
    command = ["gunicorn", "--preload", "-w", "3", "-b", f"127.0.0.1:{port}", "app:wsgi"]
    with serve(command, app_folder, port) as server:
        exercise(server, app_folder)


def test_fleet_gunicorn_config_module_without_hotswap_run(app_folder: Path) -> None:
    port = free_port()
    command = [
        "gunicorn", "-c", "python:hotswap.integrations.gunicorn",
        "-w", "3", "-b", f"127.0.0.1:{port}", "app:wsgi",
    ]  # fmt: skip
    with serve(command, app_folder, port, under_hotswap=False) as server:
        exercise(server, app_folder)
