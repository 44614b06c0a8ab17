"""Dask clusters end to end: a ``LocalCluster(n_workers=3, processes=True)`` on 127.0.0.1 and a
cluster coordinator in the test process (the client). The release's bytes travel in
``Client.run`` and the worker plugin only; the file on disk is never the committed code."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

distributed = pytest.importorskip("distributed", reason="hotswap[dask] is not installed")
dask_config = pytest.importorskip("dask.config")

from hotswap._fleet.release import GENESIS, epoch_of, short  # noqa: E402
from hotswap.integrations import dask as hotswap_dask  # noqa: E402

APPS = Path(__file__).parent / "cluster_apps"
LOGIC = (APPS / "logic.py").read_text()
V2 = LOGIC.replace('return "v1"', 'return "v2"')
V4 = LOGIC.replace('return "v1"', 'return "v4"')
SIGNATURE = LOGIC.replace('def version():\n    return "v1"', 'def version(extra):\n    return "v3"')
# Plans everywhere; raises while it runs in a worker that was doomed (a commit that fails in one).
FAILING = V4.replace(
    "COUNT = {",
    'DOOMED = __import__("builtins").__dict__.get("hotswap_test_doomed", False)\n'
    "CHECK = 1 / (0 if DOOMED else 1)  # ZeroDivisionError in a doomed worker\n\n"
    "COUNT = {",
)
TIMEOUT = 90.0


class Dask:
    def __init__(self, folder: Path, cluster: Any, client: Any) -> None:
        self.folder = folder
        self.cluster = cluster
        self.client = client
        import daskprobe
        import logic

        self.probe = daskprobe.probe
        self.relax = daskprobe.relax
        self.doom = daskprobe.doom
        self.in_canary = daskprobe.in_canary
        self.logic = logic

    def workers(self) -> list[str]:
        return sorted(self.client.scheduler_info(n_workers=-1)["workers"])

    def answers(self) -> dict[str, dict[str, Any]]:
        """One probe per worker, run as a task on that worker."""
        futures = {
            a: self.client.submit(self.probe, pure=False, workers=[a], allow_other_workers=False)
            for a in self.workers()
        }
        return {a: f.result(timeout=TIMEOUT) for a, f in futures.items()}


@pytest.fixture
def dask(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Dask]:
    folder = tmp_path / "app"
    shutil.copytree(APPS, folder, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.setenv("PYTHONPATH", str(folder))
    for name in ("logic", "daskprobe"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    # Every folder dask makes (the workers' and the nanny's) stays in this test's folder.
    scratch = dask_config.set({"temporary-directory": str(tmp_path / "scratch")})
    scratch.__enter__()
    cluster = distributed.LocalCluster(
        n_workers=3,
        processes=True,
        threads_per_worker=1,
        host="127.0.0.1",
        dashboard_address=":0",  # a free port: two suites may run side by side
        # hotswap first in every worker, so it records the source of what they import.
        preload=["hotswap.integrations.dask"],
    )
    client = distributed.Client(cluster)
    try:
        yield Dask(folder, cluster, client)
    finally:
        client.close()
        cluster.close()
        scratch.__exit__(None, None, None)
        for name in ("logic", "daskprobe"):
            sys.modules.pop(name, None)


def test_dask_release_reaches_every_worker_keeps_state_and_gives_new_task_keys(dask: Dask):
    coordinator = hotswap_dask.cluster(dask.client)
    before = dask.answers()
    assert len(before) == 3
    assert {(a["version"], a["epoch"]) for a in before.values()} == {("v1", GENESIS)}
    cached = dask.client.submit(dask.logic.version)  # pure: its key is tokenize(function)
    assert cached.result(timeout=TIMEOUT) == "v1"

    result = coordinator.propose({"logic": V2.encode()})
    assert result.ok, result.describe()
    assert {r.node for r in result.nodes} == set(before)
    committed = epoch_of(GENESIS, {"logic": hashlib.sha256(V2.encode()).hexdigest()})
    after = dask.answers()
    for address, answer in after.items():
        assert (answer["version"], answer["epoch"]) == ("v2", committed)
        assert answer["pid"] == before[address]["pid"]  # the same process
        assert answer["count"] > before[address]["count"]  # its state kept

    fresh = dask.client.submit(dask.logic.version)
    assert fresh.key != cached.key  # the release changed the function's token
    assert fresh.result(timeout=TIMEOUT) == "v2"  # not the result cached under the old key

    # One worker would take a signature change, two refuse it: nobody does.
    relaxed = dask.workers()[0]
    assert dask.client.run(dask.relax, workers=[relaxed]) == {relaxed: "warn"}
    refused = coordinator.propose({"logic": SIGNATURE.encode()})
    assert not refused.ok
    votes = {r.node: r.vote for r in refused.nodes}
    assert votes[relaxed] is True
    assert sorted(v for n, v in votes.items() if n != relaxed) == [False, False]
    assert {(a["version"], a["epoch"]) for a in dask.answers().values()} == {("v2", committed)}


def test_dask_worker_added_later_runs_the_committed_release(dask: Dask):
    coordinator = hotswap_dask.cluster(dask.client)
    result = coordinator.propose({"logic": V2.encode()})
    assert result.ok, result.describe()
    (dask.folder / "logic.py").write_text(SIGNATURE)  # the disk holds another save
    old = set(dask.workers())

    dask.cluster.scale(4)
    dask.client.wait_for_workers(4, timeout=TIMEOUT)
    answers = dask.answers()
    new = set(answers) - old
    assert len(new) == 1
    assert {(a["version"], a["epoch"]) for a in answers.values()} == {("v2", result.epoch)}

    again = coordinator.propose({"logic": V4.encode()})
    assert again.ok, again.describe()
    assert {r.node for r in again.nodes} == set(answers)
    assert {(a["version"], a["epoch"]) for a in dask.answers().values()} == {("v4", again.epoch)}
    status = coordinator.status()
    assert {a["epoch"] for a in status.values() if a} == {again.epoch}


def test_dask_operator_command_status_diff_commit_rollback(dask: Dask):
    address = dask.cluster.scheduler_address

    def fleet(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "hotswap", "fleet", "--dask", address, *args]
        environ = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        return subprocess.run(
            command,
            check=False,
            cwd=dask.folder,
            env=environ,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
        )

    dask.answers()  # every worker imported logic
    status = fleet("status")
    assert status.returncode == 0, status.stdout + status.stderr
    assert "committed: genesis" in status.stdout
    assert status.stdout.count(f": {short(GENESIS)} (pid") == 3

    (dask.folder / "logic.py").write_text(V2)
    diff = fleet("diff", "logic.py")
    assert diff.returncode == 0, diff.stdout + diff.stderr
    assert '-    return "v1"' in diff.stdout
    assert '+    return "v2"' in diff.stdout
    assert diff.stdout.count("would vote yes") == 3
    assert {a["version"] for a in dask.answers().values()} == {"v1"}  # a diff changes nothing

    commit = fleet("commit", "logic.py")
    assert commit.returncode == 0, commit.stdout + commit.stderr
    assert "committed on 3/3 nodes" in commit.stdout
    committed = epoch_of(GENESIS, {"logic": hashlib.sha256(V2.encode()).hexdigest()})
    assert {(a["version"], a["epoch"]) for a in dask.answers().values()} == {("v2", committed)}
    status = fleet("status")
    assert status.returncode == 0
    assert f"committed: {short(committed)}" in status.stdout

    (dask.folder / "logic.py").write_text(SIGNATURE)
    refused = fleet("commit", "logic.py")
    assert refused.returncode == 1
    assert "aborted on 3 nodes" in refused.stdout
    assert "voted no" in refused.stdout

    back = fleet("rollback", "--to", "genesis")
    assert back.returncode == 0, back.stdout + back.stderr
    assert {(a["version"], a["epoch"]) for a in dask.answers().values()} == {("v1", GENESIS)}


def test_dask_commit_failing_on_one_worker_rolls_every_worker_back(dask: Dask):
    coordinator = hotswap_dask.cluster(dask.client)
    dask.answers()  # every worker runs logic: a commit runs the changed statements there
    result = coordinator.propose({"logic": V2.encode()})
    assert result.ok, result.describe()
    doomed = dask.workers()[1]
    assert dask.client.run(dask.doom, workers=[doomed]) == {doomed: True}

    failed = coordinator.propose({"logic": FAILING.encode()})
    assert not failed.ok
    assert failed.outcome == "rolled back"
    outcomes = {r.node: r for r in failed.nodes}
    assert outcomes[doomed].outcome == "commit failed"
    assert "ZeroDivisionError" in (outcomes[doomed].error or ""), outcomes[doomed].error
    assert sorted(r.outcome for n, r in outcomes.items() if n != doomed) == ["rolled back"] * 2
    answers = dask.answers()
    assert {(a["version"], a["epoch"]) for a in answers.values()} == {("v2", result.epoch)}
    assert coordinator.record().epoch == result.epoch


def test_dask_worker_added_mid_canary_joins_the_canary(dask: Dask):
    coordinator = hotswap_dask.cluster(dask.client)
    dask.answers()
    started = coordinator.canary("logic", V2.encode(), weight=1.0)
    assert len(started) == 3
    assert all(a and a["ok"] for a in started.values()), started
    # A plain call runs the live version; a canary unit (weight 1.0) the candidate.
    assert list(dask.client.run(dask.in_canary).values()) == [["v1", "v2"]] * 3
    old = set(dask.workers())

    dask.cluster.scale(4)
    dask.client.wait_for_workers(4, timeout=TIMEOUT)
    assert len(set(dask.workers()) - old) == 1
    assert list(dask.client.run(dask.in_canary).values()) == [["v1", "v2"]] * 4
    status = coordinator.status()
    assert [a["canaries"] for a in status.values() if a] == [{"logic": 1.0}] * 4

    promoted = coordinator.end_canary(promote=True)
    assert promoted is not None
    assert promoted.ok, promoted.describe()
    assert len(promoted.nodes) == 4
    answers = dask.answers()
    assert {(a["version"], a["epoch"]) for a in answers.values()} == {("v2", promoted.epoch)}
    assert [a["canaries"] for a in coordinator.status().values() if a] == [{}] * 4
    assert coordinator.record().canary is None
