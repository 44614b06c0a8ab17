"""The fleet protocol under a stateful property test: this process coordinates (its
coordinator is driven directly with each change set, no watcher), and real worker processes
(``fleet_apps/member.py``) join it, answer calls and hold pinned sections.

Rules: a compatible save, a rejected save, a save failing at execute in one worker only, a
worker killed (SIGKILL), a worker added, a worker stopped (SIGSTOP) through a save and
continued, a pinned section held through a save (released in time, or past the timeout).
Invariants after each step: every serving worker answers on the fleet's epoch with the code
of that epoch (so after an abort or a rollback no worker runs the refused code), and a worker
added answers its first call on the committed epoch, whatever the file on disk holds.
"""

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
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from hotswap import _fleet
from hotswap._config import settings as _settings
from hotswap._fleet.release import GENESIS, epoch_of

APPS = Path(__file__).parent / "fleet_apps"
LOGIC = (APPS / "logic.py").read_text()
TIMEOUT = 60.0  # generous: the machine may be loaded; nothing is asserted on time


def source(version: str) -> str:
    return LOGIC.replace('return "v1"', f'return "{version}"')


REJECTED = LOGIC.replace('def version():\n    return "v1"', 'def version(extra):\n    return "x"')


def failing_in(pid: int, version: str) -> str:
    return f"import os\n\nif os.getpid() == {pid}:\n    raise RuntimeError('only here')\n" + source(
        version
    )


class Member:
    """One worker process, driven over its stdin and stdout."""

    def __init__(self, folder: Path) -> None:
        env = {**os.environ, "PYTHONPATH": str(folder)}
        self.process = subprocess.Popen(
            [sys.executable, str(folder / "member.py")],
            cwd=folder,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        assert self.answer() == {"joined": True}
        self.count = 0

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line)

    def answer(self) -> dict[str, Any]:
        return dict(json.loads(self.lines.get(timeout=TIMEOUT)))

    def ask(self, command: str) -> dict[str, Any]:
        assert self.process.stdin is not None
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()
        return self.answer()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(TIMEOUT)
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                stream.close()


class FleetMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.folder = Path(FleetMachine.root) / f"run{id(self)}"
        shutil.copytree(APPS, self.folder, ignore=shutil.ignore_patterns("__pycache__"))
        self.logic = self.folder / "logic.py"
        self.coordinator = _fleet.coordinate(lambda entries: [], spawned=False)
        self.epoch = GENESIS
        self.version = "v1"
        self.saves = 0
        self.members: list[Member] = [Member(self.folder), Member(self.folder)]

    def teardown(self) -> None:
        for member in self.members:
            member.stop()
        _fleet.stop()
        _fleet.ledger.reset()
        shutil.rmtree(self.folder, ignore_errors=True)

    def save(self, text: str) -> _fleet.FleetResult:
        """Write the file (as an editor would) and hand it to the coordinator."""
        self.logic.write_text(text)
        before = len(self.coordinator.results)
        self.coordinator.apply_files({str(self.logic.resolve()): text.encode()}, [])
        assert len(self.coordinator.results) == before + 1
        return self.coordinator.results[-1]

    def next_version(self) -> str:
        self.saves += 1
        return f"v{self.saves + 1}"

    def committed(self, text: str, result: _fleet.FleetResult) -> None:
        assert result.outcome == "committed", result.describe()
        digest = hashlib.sha256(text.encode()).hexdigest()
        self.epoch = epoch_of(self.epoch, {"logic": digest})
        assert result.epoch == self.epoch

    @rule()
    def compatible_save(self) -> None:
        version = self.next_version()
        text = source(version)
        self.committed(text, self.save(text))
        self.version = version

    @rule()
    def rejected_save(self) -> None:
        result = self.save(REJECTED)
        assert result.outcome == "aborted", result.describe()
        assert all(w.outcome == "voted no" for w in result.workers), result.describe()
        assert "version(extra)" in result.describe()

    @rule(data=st.data())
    def save_failing_in_one_worker(self, data: st.DataObject) -> None:
        member = data.draw(st.sampled_from(self.members))
        result = self.save(failing_in(member.process.pid, self.next_version()))
        assert result.outcome == "rolled back", result.describe()
        failed = [w for w in result.workers if w.outcome == "commit failed"]
        assert [w.pid for w in failed] == [member.process.pid], result.describe()
        assert "only here" in str(failed[0].error.__cause__)  # type: ignore[union-attr]

    @precondition(lambda self: len(self.members) > 1)
    @rule(data=st.data())
    def kill_worker(self, data: st.DataObject) -> None:
        member = data.draw(st.sampled_from(self.members))
        self.members.remove(member)
        member.stop()

    @precondition(lambda self: len(self.members) < 4)
    @rule()
    def add_worker(self) -> None:
        member = Member(self.folder)
        first = member.ask("call")
        member.count = first["count"]
        assert (first["epoch"], first["version"]) == (self.epoch, self.version)
        self.members.append(member)

    @rule(data=st.data())
    def stopped_worker_through_a_save(self, data: st.DataObject) -> None:
        member = data.draw(st.sampled_from(self.members))
        _settings.configure(commit_timeout=1.5)
        os.kill(member.process.pid, signal.SIGSTOP)
        try:
            result = self.save(source(self.next_version()))
        finally:
            os.kill(member.process.pid, signal.SIGCONT)
            _settings.configure(commit_timeout=10.0)
        assert result.outcome == "aborted", result.describe()
        stopped = next(w for w in result.workers if w.pid == member.process.pid)
        assert stopped.outcome == "no vote", result.describe()

    @rule(data=st.data(), released=st.booleans())
    def pinned_worker_through_a_save(self, data: st.DataObject, released: bool) -> None:
        member = data.draw(st.sampled_from(self.members))
        assert member.ask("pin") == {"pinned": True}
        version = self.next_version()
        text = source(version)
        if released:
            # Released while the coordinator waits: the worker's commit retries and succeeds.
            saving = threading.Thread(target=lambda: self.results.put(self.save(text)))
            self.results: queue.Queue[_fleet.FleetResult] = queue.Queue()
            saving.start()
            assert member.ask("unpin") == {"pinned": False}
            saving.join(TIMEOUT)
            self.committed(text, self.results.get(timeout=TIMEOUT))
            self.version = version
            return
        _settings.configure(commit_timeout=1.5)
        try:
            result = self.save(text)
        finally:
            _settings.configure(commit_timeout=10.0)
            assert member.ask("unpin") == {"pinned": False}
        assert result.outcome == "rolled back", result.describe()
        culprit = next(w for w in result.workers if w.pid == member.process.pid)
        assert culprit.outcome == "commit failed", result.describe()
        assert "pinned sections did not leave" in str(culprit.error)

    @invariant()
    def every_worker_runs_the_fleet_epoch(self) -> None:
        for member in self.members:
            answer = member.ask("call")
            assert (answer["epoch"], answer["version"]) == (self.epoch, self.version)
            assert answer["count"] == member.count + 1  # its state is kept
            member.count = answer["count"]


@pytest.fixture
def machine_root(tmp_path: Path) -> Any:
    FleetMachine.root = str(tmp_path)  # type: ignore[attr-defined]
    saved = {k: os.environ.get(k) for k in ("HOTSWAP_FLEET", "PYTHONPATH")}
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    _settings.reset()


def test_fleet_protocol_state_machine(machine_root: Any) -> None:
    FleetMachine.TestCase.settings = settings(
        max_examples=4,
        stateful_step_count=6,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    FleetMachine.TestCase().runTest()
