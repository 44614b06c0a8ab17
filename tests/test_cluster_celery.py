"""Celery clusters end to end: real worker nodes (prefork, 2 children each) on a redis-server
this test starts, a cluster coordinator in the test process. Each node also consumes a queue
named after itself, so a batch of probes reaches every child of one node; a process counts as
updated when *it* answers with the new epoch.

The release's bytes travel in the remote-control messages only: the file on disk is never the
committed code (it holds a save the cluster rejected by the time a later node starts)."""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

celery = pytest.importorskip("celery", reason="hotswap[celery] is not installed")
redis = pytest.importorskip("redis", reason="hotswap[celery] is not installed")

from hotswap._fleet.release import GENESIS, epoch_of  # noqa: E402
from hotswap.integrations import celery as hotswap_celery  # noqa: E402

if shutil.which("redis-server") is None:
    pytest.skip(
        "redis-server is not installed (apt-get install -y redis-server; .ci/services.sh does)",
        allow_module_level=True,
    )

TIMEOUT = 90.0  # generous: the machine may be loaded; nothing is asserted on time
APPS = Path(__file__).parent / "cluster_apps"
LOGIC = (APPS / "logic.py").read_text()
V2 = LOGIC.replace('return "v1"', 'return "v2"')
V4 = LOGIC.replace('return "v1"', 'return "v4"')
# Accepted under policy "warn", refused under the default "strict": a signature change.
SIGNATURE = LOGIC.replace('def version():\n    return "v1"', 'def version(extra):\n    return "v3"')
HOST = socket.gethostname()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def stop(process: subprocess.Popen[Any]) -> None:
    """Stop a process group by its leader's pid: TERM, then KILL if it lingers."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
    process.wait(30)


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    data = tmp_path / "redis"
    data.mkdir()
    command = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    command += ["--appendonly", "no", "--dir", str(data)]
    server = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)
    deadline = time.monotonic() + TIMEOUT
    while True:
        try:
            client.ping()
            break
        except redis.ConnectionError:
            assert server.poll() is None, "redis-server exited"
            assert time.monotonic() < deadline, "redis-server did not answer"
            time.sleep(0.05)
    client.close()
    yield url
    stop(server)


class Nodes:
    """Celery worker nodes of ``tasks.py`` in a copy of the apps folder, and the app."""

    def __init__(self, folder: Path, url: str) -> None:
        self.folder = folder
        self.url = url
        self.app = celery.Celery("tasks", broker=url, backend=url)
        self.transport = hotswap_celery.transport(self.app)
        self.started: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, *extra: str, env: dict[str, str] | None = None) -> str:
        node = f"{name}@{HOST}"
        environ = {**os.environ, **(env or {}), "PYTHONPATH": str(self.folder)}
        environ["HOTSWAP_TEST_REDIS"] = self.url
        command = [sys.executable, "-m", "celery", "-A", "tasks", "worker", "-n", f"{name}@%h"]
        command += ["-c", "2", "-Q", f"celery,{name}", "-l", "info", *extra]
        command += ["--without-gossip", "--without-mingle", "--without-heartbeat"]
        log = (self.folder / f"{name}.log").open("wb")
        self.started[name] = subprocess.Popen(
            command, cwd=self.folder, env=environ, stdout=log, stderr=log, start_new_session=True
        )
        log.close()
        deadline = time.monotonic() + TIMEOUT
        while node not in self.transport.members():
            assert self.started[name].poll() is None, self.log(name)
            assert time.monotonic() < deadline, self.log(name)
            time.sleep(0.05)
        return node

    def log(self, name: str) -> str:
        return (self.folder / f"{name}.log").read_text(errors="replace")

    def batch(self, name: str, count: int = 12) -> dict[int, dict[str, Any]]:
        """``count`` probes on the node's own queue: pid -> its last answer."""
        results = [self.app.send_task("tasks.probe", queue=name) for _ in range(count)]
        answers: dict[int, dict[str, Any]] = {}
        for result in results:
            answer = result.get(timeout=TIMEOUT)
            answers[answer["pid"]] = answer
        return answers

    def until(
        self, name: str, check: Callable[[dict[str, Any]], bool], what: str, processes: int = 2
    ) -> dict[int, dict[str, Any]]:
        """Batches until ``processes`` children answered in one and all pass ``check``."""
        deadline = time.monotonic() + TIMEOUT
        while True:
            answers = self.batch(name)
            if len(answers) >= processes and all(check(a) for a in answers.values()):
                return answers
            assert time.monotonic() < deadline, f"{name}: timed out waiting for {what}: {answers}"


@pytest.fixture
def nodes(tmp_path: Path, redis_url: str) -> Iterator[Nodes]:
    folder = tmp_path / "app"
    shutil.copytree(APPS, folder, ignore=shutil.ignore_patterns("__pycache__"))
    made = Nodes(folder, redis_url)
    yield made
    for process in made.started.values():
        stop(process)
    made.app.close()


def test_celery_cluster_moves_every_child_of_every_node_and_keeps_state(nodes: Nodes):
    w1 = nodes.start("w1", env={"HOTSWAP_POLICY": "warn"})
    w2 = nodes.start("w2")
    cluster = hotswap_celery.cluster(nodes.app)
    before = {
        n: nodes.until(n, lambda a: a["version"] == "v1" and a["epoch"] == GENESIS, "v1")
        for n in ("w1", "w2")
    }

    result = cluster.propose({"logic": V2.encode()})
    assert result.ok, result.describe()
    assert {r.node for r in result.nodes} == {w1, w2}
    committed = epoch_of(GENESIS, {"logic": hashlib.sha256(V2.encode()).hexdigest()})
    assert result.epoch == committed
    for name in ("w1", "w2"):
        after = nodes.until(name, lambda a: a["version"] == "v2" and a["epoch"] == committed, "v2")
        kept = [a for pid, a in after.items() if pid in before[name]]
        assert kept, (before[name], after)  # the same children, updated in place
        for answer in kept:
            assert answer["count"] > before[name][answer["pid"]]["count"]  # state kept
    status = cluster.status()
    assert {a["epoch"] for a in status.values() if a} == {committed}
    assert all(set(a["workers"].values()) == {committed} for a in status.values() if a)

    # w1 (policy warn) would take a signature change, w2 (strict) refuses it: nobody does.
    refused = cluster.propose({"logic": SIGNATURE.encode()})
    assert not refused.ok
    assert refused.outcome == "aborted"
    votes = {r.node: r for r in refused.nodes}
    assert votes[w1].vote is True
    assert votes[w2].vote is False
    assert "logic" in (votes[w2].error or "")
    for name in ("w1", "w2"):
        nodes.until(name, lambda a: a["version"] == "v2" and a["epoch"] == committed, "still v2")
    assert cluster.record().epoch == committed


def test_celery_node_started_later_and_recycled_children_run_the_committed_epoch(nodes: Nodes):
    nodes.start("w1")
    cluster = hotswap_celery.cluster(nodes.app)
    result = cluster.propose({"logic": V2.encode()})
    assert result.ok, result.describe()
    # The disk holds another save; the committed bytes are only in the cluster's store.
    (nodes.folder / "logic.py").write_text(SIGNATURE)

    nodes.start("w3", "--max-tasks-per-child", "2")
    seen: set[int] = set()
    deadline = time.monotonic() + TIMEOUT
    while len(seen) < 4:  # two generations of children at least
        for answer in nodes.batch("w3").values():
            assert answer["version"] == "v2", answer
            assert answer["epoch"] == result.epoch, answer
            seen.add(answer["pid"])
        assert time.monotonic() < deadline, seen

    # The next release reaches the late node too, and its recycled children.
    again = cluster.propose({"logic": V4.encode()})
    assert again.ok, again.describe()
    for name in ("w1", "w3"):
        nodes.until(name, lambda a: a["version"] == "v4" and a["epoch"] == again.epoch, "v4")

    # Back to the first release: an epoch the store keeps.
    back = cluster.rollback(result.epoch)
    assert back.ok, back.describe()
    for name in ("w1", "w3"):
        nodes.until(name, lambda a: a["version"] == "v2" and a["epoch"] == result.epoch, "v2")


def test_celery_stale_coordinator_cannot_commit(nodes: Nodes):
    nodes.start("w1")
    old = hotswap_celery.cluster(nodes.app)
    new = hotswap_celery.cluster(nodes.app)
    assert new.term > old.term
    assert new.propose({"logic": V2.encode()}).ok
    with pytest.raises(Exception, match="newer coordinator"):
        old.propose({"logic": V4.encode()})
    # Even past its own check, a node refuses the old term.
    answers = old.transport.call("abort", {"term": old.term, "round": ""}, [f"w1@{HOST}"], 10)
    assert answers[f"w1@{HOST}"] is not None
    assert answers[f"w1@{HOST}"]["ok"] is False
    assert "stale" in answers[f"w1@{HOST}"]["error"]
    nodes.until("w1", lambda a: a["version"] == "v2", "v2")


# --- one node under `hotswap run` (the fleet issue): no change to the app ----------------------


class RunNode(Nodes):
    """``hotswap run --no-restart -m celery -A plain worker ...``: its MainProcess watches."""

    def run(self, *extra: str) -> None:
        environ = {**os.environ, "PYTHONPATH": str(self.folder), "HOTSWAP_TEST_REDIS": self.url}
        command = [sys.executable, "-m", "hotswap", "run", "--no-restart", "-m", "celery"]
        command += ["-A", "plain", "worker", "-n", "solo@%h", "-c", "3", "-l", "info", *extra]
        command += ["--without-gossip", "--without-mingle", "--without-heartbeat"]
        log = (self.folder / "solo.log").open("wb")
        self.started["solo"] = subprocess.Popen(
            command, cwd=self.folder, env=environ, stdout=log, stderr=log, start_new_session=True
        )
        log.close()

    def batch(self, name: str = "celery", count: int = 15) -> dict[int, dict[str, Any]]:
        results = [self.app.send_task("plain.probe") for _ in range(count)]
        answers: dict[int, dict[str, Any]] = {}
        for result in results:
            answer = result.get(timeout=TIMEOUT)
            answers[answer["pid"]] = answer
        return answers


@pytest.fixture
def run_node(tmp_path: Path, redis_url: str) -> Iterator[RunNode]:
    folder = tmp_path / "app"
    shutil.copytree(APPS, folder, ignore=shutil.ignore_patterns("__pycache__"))
    made = RunNode(folder, redis_url)
    made.app = celery.Celery("plain", broker=redis_url, backend=redis_url)
    yield made
    for process in made.started.values():
        stop(process)
    made.app.close()


def test_celery_prefork_children_under_hotswap_run_move_together(run_node: RunNode):
    run_node.run()
    before = run_node.until("solo", lambda a: a["version"] == "v1", "v1", processes=3)
    committed = epoch_of(GENESIS, {"logic": hashlib.sha256(V2.encode()).hexdigest()})
    path = run_node.folder / "logic.py"
    path.write_text(V2)
    after = run_node.until(
        "solo", lambda a: a["version"] == "v2" and a["epoch"] == committed, "v2", processes=3
    )
    assert set(after) == set(before)  # the same children, updated in place
    for pid, answer in after.items():
        assert answer["count"] > before[pid]["count"]  # state kept

    path.write_text(SIGNATURE)
    deadline = time.monotonic() + TIMEOUT
    while "aborted in 3 workers" not in run_node.log("solo"):
        assert time.monotonic() < deadline, run_node.log("solo")
        run_node.batch()
    run_node.until(
        "solo", lambda a: a["version"] == "v2" and a["epoch"] == committed, "still v2", 3
    )


def test_celery_children_recycled_by_max_tasks_per_child_run_the_committed_release(
    run_node: RunNode,
):
    run_node.run("--max-tasks-per-child", "2")
    run_node.until("solo", lambda a: a["version"] == "v1", "v1", processes=3)
    committed = epoch_of(GENESIS, {"logic": hashlib.sha256(V2.encode()).hexdigest()})
    path = run_node.folder / "logic.py"
    path.write_text(V2)
    run_node.until("solo", lambda a: a["epoch"] == committed, "v2", processes=3)
    path.write_text(SIGNATURE)  # rejected: never what a new child imports
    deadline = time.monotonic() + TIMEOUT
    while "aborted in" not in run_node.log("solo"):
        assert time.monotonic() < deadline, run_node.log("solo")
        run_node.batch()
    seen: set[int] = set()
    while len(seen) < 9:  # three generations of children at least
        for answer in run_node.batch().values():
            assert (answer["version"], answer["epoch"]) == ("v2", committed), answer
            seen.add(answer["pid"])
        assert time.monotonic() < deadline, seen


def test_celery_commit_failing_on_one_node_rolls_every_node_and_child_back(nodes: Nodes):
    w1 = nodes.start("w1")
    w2 = nodes.start("w2", env={"HOTSWAP_TEST_DOOMED": "1"})
    cluster = hotswap_celery.cluster(nodes.app)
    for name in ("w1", "w2"):
        nodes.until(name, lambda a: a["version"] == "v1", "v1")  # every child runs logic
    result = cluster.propose({"logic": V2.encode()})
    assert result.ok, result.describe()
    # Plans everywhere; raises while it runs in w2's processes (its environment dooms them).
    failing = V4.replace(
        "COUNT = {",
        'CHECK = 1 / (0 if __import__("os").environ.get("HOTSWAP_TEST_DOOMED") else 1)\n\n'
        "COUNT = {",
    )
    failed = cluster.propose({"logic": failing.encode()})
    assert not failed.ok
    assert failed.outcome == "rolled back"
    outcomes = {r.node: r for r in failed.nodes}
    assert outcomes[w2].outcome == "commit failed"
    assert "ZeroDivisionError" in (outcomes[w2].error or "")
    assert outcomes[w1].outcome == "rolled back"
    for name in ("w1", "w2"):
        nodes.until(name, lambda a: a["version"] == "v2" and a["epoch"] == result.epoch, "v2")
    status = cluster.status()
    assert all(set(a["workers"].values()) == {result.epoch} for a in status.values() if a)
    assert cluster.record().epoch == result.epoch


def test_celery_killed_node_stops_counting_as_a_member(nodes: Nodes):
    w1 = nodes.start("w1")
    w2 = nodes.start("w2")
    cluster = hotswap_celery.cluster(nodes.app)
    nodes.until("w1", lambda a: a["version"] == "v1", "v1")
    # Killed: no worker_shutdown, so no goodbye; its lease runs out.
    killed = nodes.started["w2"]
    os.killpg(killed.pid, signal.SIGKILL)
    killed.wait(30)
    deadline = time.monotonic() + TIMEOUT
    while w2 in nodes.transport.members():
        assert time.monotonic() < deadline, "the killed node is still a member"
        time.sleep(0.1)
    assert nodes.transport.members() == [w1]
    # The next release is the living node's alone (the killed one would have made it abort).
    result = cluster.propose({"logic": V2.encode()})
    assert result.ok, result.describe()
    assert [r.node for r in result.nodes] == [w1]
    nodes.until("w1", lambda a: a["version"] == "v2" and a["epoch"] == result.epoch, "v2")


def test_celery_node_started_mid_canary_joins_the_canary(nodes: Nodes):
    w1 = nodes.start("w1")
    cluster = hotswap_celery.cluster(nodes.app)
    nodes.until("w1", lambda a: a["version"] == "v1", "v1")
    started = cluster.canary("logic", V2.encode(), weight=1.0)
    assert list(started) == [w1]
    assert all(a and a["ok"] for a in started.values()), started
    nodes.until("w1", lambda a: (a["version"], a["scoped"]) == ("v1", "v2"), "w1's canary")

    w2 = nodes.start("w2")  # mid-canary: it runs the candidate in every child
    nodes.until("w2", lambda a: (a["version"], a["scoped"]) == ("v1", "v2"), "w2's canary")
    status = cluster.status()
    assert {n: a["canaries"] for n, a in status.items() if a} == {
        w1: {"logic": 1.0},
        w2: {"logic": 1.0},
    }

    promoted = cluster.end_canary(promote=True)
    assert promoted is not None
    assert promoted.ok, promoted.describe()
    assert sorted(r.node for r in promoted.nodes) == sorted([w1, w2])
    for name in ("w1", "w2"):
        nodes.until(
            name,
            lambda a: (a["version"], a["scoped"], a["epoch"]) == ("v2", "v2", promoted.epoch),
            f"{name} on the promoted release",
        )
