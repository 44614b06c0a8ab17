"""Fleets of ``multiprocessing`` pools (fork, spawn and forkserver, the default of Python 3.14 on
Linux) under ``hotswap run``, end to end: the program's pool workers join its fleet with no
change to the program, which never imports hotswap itself, and each task answers with its
worker's epoch (``hotswap.status().epoch``)."""

from __future__ import annotations

import hashlib
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from hotswap._fleet.release import GENESIS, epoch_of

pytestmark = pytest.mark.watcher

TIMEOUT = 60.0  # generous: the machine may be loaded; nothing is asserted on time
APPS = Path(__file__).parent / "fleet_apps"
LOGIC = (APPS / "logic.py").read_text()
V2 = LOGIC.replace('return "v1"', 'return "v2"')
REJECTED = LOGIC.replace('def version():\n    return "v1"', 'def version(extra):\n    return "v3"')


class Program:
    """``pool.py`` under ``hotswap run``: send ``go``, read one answer per task."""

    def __init__(self, process: subprocess.Popen[str], folder: Path) -> None:
        self.process = process
        self.folder = folder
        self.lines: queue.Queue[str] = queue.Queue()
        self.log: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.log.append(line)
            self.lines.put(line.strip())

    def next_line(self, deadline: float) -> str:
        while True:
            try:
                return self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError("no output in time:\n" + "".join(self.log)) from None

    def wait_for(self, text: str) -> None:
        deadline = time.monotonic() + TIMEOUT
        while text not in self.next_line(deadline):
            pass

    def round(self) -> dict[int, dict[str, Any]]:
        """One batch of tasks: pid -> its worker's last answer."""
        assert self.process.stdin is not None
        self.process.stdin.write("go\n")
        self.process.stdin.flush()
        answers: dict[int, dict[str, Any]] = {}
        deadline = time.monotonic() + TIMEOUT
        while (line := self.next_line(deadline)) != "done":
            if line.startswith("{"):
                answer = json.loads(line)
                answers[answer["pid"]] = answer
        return answers

    def until(self, check: Callable[[dict[str, Any]], bool], what: str) -> dict[int, Any]:
        """Rounds until all 3 workers answered in one round and ``check`` holds for each."""
        deadline = time.monotonic() + TIMEOUT
        while True:
            answers = self.round()
            if len(answers) == 3 and all(check(a) for a in answers.values()):
                return answers
            assert time.monotonic() < deadline, f"timed out waiting for {what}: {answers}"

    def logged(self, text: str) -> bool:
        return any(text in line for line in list(self.log))


@pytest.fixture
def pool_program(tmp_path: Path) -> Iterator[Callable[[str], Program]]:
    folder = tmp_path / "app"
    shutil.copytree(APPS, folder, ignore=shutil.ignore_patterns("__pycache__"))
    started: list[subprocess.Popen[str]] = []

    def start(method: str) -> Program:
        env = {**os.environ, "PYTHONPATH": str(folder), "PYTHONUNBUFFERED": "1"}
        command = [sys.executable, "-m", "hotswap", "run", "--no-restart", "pool.py", method]
        process = subprocess.Popen(
            command,
            cwd=folder,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        started.append(process)
        program = Program(process, folder)
        program.wait_for("ready")
        return program

    yield start
    for process in started:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(30)
        for stream in (process.stdin, process.stdout):
            if stream is not None:
                stream.close()


@pytest.mark.parametrize(
    "method",
    ["fork", "spawn", "forkserver"],
)
def test_fleet_pool_workers_move_together(pool_program: Callable[[str], Program], method: str):
    program = pool_program(method)
    before = program.until(lambda a: a["version"] == "v1" and a["epoch"] == GENESIS, "v1")

    committed = epoch_of(GENESIS, {"logic": hashlib.sha256(V2.encode()).hexdigest()})
    path = program.folder / "logic.py"
    path.write_text(V2)
    after = program.until(lambda a: a["version"] == "v2" and a["epoch"] == committed, "v2")
    assert after.keys() == before.keys()  # the same workers, not new ones
    for pid, answer in after.items():
        assert answer["count"] > before[pid]["count"], (answer, before[pid])  # state kept

    path.write_text(REJECTED)
    deadline = time.monotonic() + TIMEOUT
    while not program.logged("aborted in 3 workers"):
        assert time.monotonic() < deadline, "".join(program.log)
        program.round()
    program.until(lambda a: a["version"] == "v2" and a["epoch"] == committed, "still v2")
