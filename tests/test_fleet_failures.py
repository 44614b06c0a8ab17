"""Failure is survivable: real worker processes (``fleet_apps/member.py``) in a fleet whose
coordinator this process runs (or ``fleet_apps/lead.py`` runs, to be killed), each failure
injected at an exact point of a round by wrapping the coordinator's own steps.

After each: every serving worker answers on one epoch with that epoch's code and its state
kept, and no worker ever committed a release that the fleet then rolled back for want of its
answer (its reload count says so).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_fleet_protocol import APPS, LOGIC, TIMEOUT, Member, source

from hotswap import _fleet
from hotswap._config import settings as _settings
from hotswap._fleet import protocol
from hotswap._fleet.release import GENESIS, epoch_of, short

V2 = source("v2")
V2_EPOCH = epoch_of(GENESIS, {"logic": hashlib.sha256(V2.encode()).hexdigest()})


class Fleet:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.logic = folder / "logic.py"
        self.coordinator = _fleet.coordinate(lambda entries: [], spawned=False)
        self.members = [Member(folder) for _ in range(3)]
        for member in self.members:
            member.count = member.ask("call")["count"]

    def save(self, text: str) -> _fleet.FleetResult:
        self.logic.write_text(text)
        self.coordinator.apply_files({str(self.logic.resolve()): text.encode()}, [])
        return self.coordinator.results[-1]

    def kill(self, member: Member) -> None:
        os.kill(member.process.pid, signal.SIGKILL)
        member.process.wait(TIMEOUT)

    def serving_on(self, epoch: str, version: str) -> None:
        """Every worker still running answers on ``epoch`` with ``version``, its count on."""
        for member in self.members:
            if member.process.poll() is not None:
                continue
            answer = member.ask("call")
            assert (answer["epoch"], answer["version"]) == (epoch, version), answer
            assert answer["count"] == member.count + 1
            member.count = answer["count"]


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[Fleet]:
    folder = tmp_path / "app"
    shutil.copytree(APPS, folder, ignore=shutil.ignore_patterns("__pycache__"))
    saved = {k: os.environ.get(k) for k in ("HOTSWAP_FLEET", "PYTHONPATH")}
    # This process's epoch moved with every reload an earlier test committed here: the fleet
    # starts at genesis, as a service does.
    _fleet.ledger.reset()
    made = Fleet(folder)
    yield made
    for member in made.members:
        member.stop()
    _fleet.stop()
    _fleet.ledger.reset()
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    _settings.reset()


def stopped(pid: int) -> None:
    """Until the kernel says the process is stopped (a signal is delivered asynchronously)."""
    deadline = time.monotonic() + TIMEOUT
    while Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "T":
        assert time.monotonic() < deadline, f"{pid} did not stop"
        time.sleep(0.001)


def wrap(monkeypatch: pytest.MonkeyPatch, fleet: Fleet, name: str, after: Any) -> None:
    """Run ``after(args, result)`` right after the coordinator's step ``name``."""
    real = getattr(fleet.coordinator, name)

    def step(*args: Any) -> Any:
        result = real(*args)
        after(args, result)
        return result

    monkeypatch.setattr(fleet.coordinator, name, step)


def test_fleet_worker_killed_before_its_vote(fleet: Fleet, monkeypatch: pytest.MonkeyPatch) -> None:
    victim = fleet.members[0]
    os.kill(victim.process.pid, signal.SIGSTOP)  # it holds the prepare, and cannot vote
    stopped(victim.process.pid)

    def after(args: Any, _: Any) -> None:
        if args[1][0] == protocol.PREPARE and victim.process.poll() is None:
            fleet.kill(victim)

    wrap(monkeypatch, fleet, "send", after)
    result = fleet.save(V2)
    assert result.outcome == "committed", result.describe()
    assert victim.process.pid not in [w.pid for w in result.workers if w.outcome == "committed"]
    fleet.serving_on(V2_EPOCH, "v2")


def test_fleet_worker_killed_after_its_vote(fleet: Fleet, monkeypatch: pytest.MonkeyPatch) -> None:
    victim = fleet.members[1]

    def after(args: Any, votes: Any) -> None:
        if args[2] == protocol.VOTE and victim.process.poll() is None:
            assert any(p.pid == victim.process.pid and v["ok"] for p, v in votes.items())
            fleet.kill(victim)

    wrap(monkeypatch, fleet, "gather", after)
    result = fleet.save(V2)
    assert result.outcome == "committed", result.describe()
    assert {w.pid: w.outcome for w in result.workers}.get(victim.process.pid, "gone") == "gone"
    fleet.serving_on(V2_EPOCH, "v2")


def test_fleet_worker_killed_during_its_commit(
    fleet: Fleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    victim = fleet.members[2]
    assert victim.ask("pin") == {"pinned": True}  # its commit retries while the pin holds

    def after(args: Any, _: Any) -> None:
        if args[1][0] == protocol.COMMIT and victim.process.poll() is None:
            fleet.kill(victim)

    wrap(monkeypatch, fleet, "send", after)
    result = fleet.save(V2)
    assert result.outcome == "committed", result.describe()
    assert {w.pid: w.outcome for w in result.workers}[victim.process.pid] == "gone"
    fleet.serving_on(V2_EPOCH, "v2")


def test_fleet_worker_stopped_past_the_commit_timeout(
    fleet: Fleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stopped after its vote: the fleet rolls back; continued, it reads the commit after
    its deadline and refuses it, so it never served the rolled-back release."""
    victim = fleet.members[0]
    _settings.configure(commit_timeout=1.5)

    def after(args: Any, _: Any) -> None:
        if args[2] == protocol.VOTE:
            os.kill(victim.process.pid, signal.SIGSTOP)
            stopped(victim.process.pid)

    wrap(monkeypatch, fleet, "gather", after)
    try:
        result = fleet.save(V2)
    finally:
        os.kill(victim.process.pid, signal.SIGCONT)
        monkeypatch.undo()
    assert result.outcome == "rolled back", result.describe()
    assert {w.pid: w.outcome for w in result.workers}[victim.process.pid] == "no answer"
    fleet.serving_on(GENESIS, "v1")
    # The next release reaches it too: it read the late commit (refused) and the rollback.
    _settings.configure(commit_timeout=10.0)
    v3 = source("v3")
    assert fleet.save(v3).outcome == "committed"
    fleet.serving_on(epoch_of(GENESIS, {"logic": hashlib.sha256(v3.encode()).hexdigest()}), "v3")
    assert victim.ask("reloads") == {"reloads": 1}  # v3 only: never v2, never a rollback


def test_fleet_coordinator_killed_between_prepare_and_commit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "app"
    shutil.copytree(APPS, folder, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.delenv("HOTSWAP_FLEET", raising=False)
    lead = subprocess.Popen(
        [sys.executable, str(folder / "lead.py")],
        cwd=folder,
        env={**os.environ, "PYTHONPATH": str(folder)},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    members: list[Member] = []
    try:
        assert lead.stdin is not None
        assert lead.stdout is not None
        monkeypatch.setenv("HOTSWAP_FLEET", json.loads(lead.stdout.readline())["fleet"])
        members = [Member(folder) for _ in range(2)]
        for member in members:
            member.count = member.ask("call")["count"]
        (folder / "logic.py").write_text(V2)
        lead.stdin.write(f"save-and-die {folder / 'logic.py'}\n")
        lead.stdin.flush()
        assert lead.wait(TIMEOUT) == -signal.SIGKILL
        # Every worker stays on the parent epoch and keeps serving, its state kept.
        for member in members:
            answer = member.ask("call")
            assert (answer["epoch"], answer["version"]) == (GENESIS, "v1"), answer
            assert answer["count"] == member.count + 1
            assert member.ask("reloads") == {"reloads": 0}
    finally:
        for member in members:
            member.stop()
        if lead.poll() is None:
            lead.kill()
        lead.wait(TIMEOUT)
        for stream in (lead.stdin, lead.stdout):
            if stream is not None:
                stream.close()


DIES_AT_BOOT = (
    LOGIC.replace('return "v1"', 'return "v8"')
    + """

def _fresh():
    raise RuntimeError("this release dies in a new process")


SERVED = COUNT["n"] > 0 or _fresh()
"""
)


def test_fleet_release_that_kills_new_workers_is_rolled_back_and_marked_bad(
    tmp_path: Path,
) -> None:
    """Committed in the serving workers (their counters are past 0), it raises at import in
    any new one: the first respawn makes the fleet roll it back and mark it bad, and boots
    on the parent; gunicorn's arbiter never sees a worker fail to boot."""
    from test_fleet_serving import digest, free_port, serve, wait_until

    folder = tmp_path / "app"
    shutil.copytree(APPS, folder, ignore=shutil.ignore_patterns("__pycache__"))
    port = free_port()
    command = ["gunicorn", "-w", "3", "-b", f"127.0.0.1:{port}", "app:wsgi"]
    with serve(command, folder, port) as server:
        server.wait_every_worker(lambda a: a["version"] == "v1", "v1")
        (folder / "logic.py").write_text(DIES_AT_BOOT)
        bad = short(epoch_of(GENESIS, {"logic": digest(DIES_AT_BOOT)}))
        server.wait_every_worker(lambda a: a["epoch"] == bad, "the release everywhere")
        victim = min(server.workers())
        os.kill(victim, signal.SIGKILL)
        wait_until(lambda: server.logged(f"fleet {bad} marked bad: worker"), "the mark")
        wait_until(lambda: victim not in server.workers() and len(server.workers()) == 3, "3")
        server.wait_every_worker(
            lambda a: (a["version"], a["epoch"]) == ("v1", short(GENESIS)), "the parent"
        )
        assert server.process.poll() is None  # the arbiter did not give up
        # Its bytes saved again (on another epoch) are refused.
        (folder / "logic.py").write_text(LOGIC + "\n")
        again = epoch_of(GENESIS, {"logic": digest(LOGIC + "\n")})
        server.wait_every_worker(lambda a: a["epoch"] == short(again), "a save in between")
        (folder / "logic.py").write_text(DIES_AT_BOOT)
        wait_until(lambda: server.logged("is marked bad: worker"), "the refusal")
        server.wait_every_worker(lambda a: a["epoch"] == short(again), "no worker moved")
