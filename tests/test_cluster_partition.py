"""A partitioned node, on one machine: a Dask worker in its own network namespace, reached over a
veth pair on a private /30, whose link is cut (``ip link set ... down``) during the prepare and
during the commit of a release. The other workers abort or roll back as the protocol says, the
partitioned one keeps the committed epoch, and it is brought back to it once its link is up.

Needs root (``ip netns add``): skipped with the reason otherwise. Every namespace and veth the
test makes is removed, every process it starts is stopped by its PID."""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

distributed = pytest.importorskip("distributed", reason="hotswap[dask] is not installed")
dask_config = pytest.importorskip("dask.config")

from hotswap._fleet.release import GENESIS, epoch_of  # noqa: E402
from hotswap.integrations import dask as hotswap_dask  # noqa: E402

APPS = Path(__file__).parent / "cluster_apps"
LOGIC = (APPS / "logic.py").read_text()
V2 = LOGIC.replace('return "v1"', 'return "v2"')
V4 = LOGIC.replace('return "v1"', 'return "v4"')
TIMEOUT = 90.0
PHASE = 5.0  # seconds each node has to answer a phase


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], check=check, capture_output=True, text=True, timeout=30)


def wait_for(condition: Callable[[], Any], what: str, timeout: float = TIMEOUT) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


class Netns:
    """A namespace joined to this one by a veth pair: host side ``host_ip``, inside ``inner_ip``."""

    def __init__(self) -> None:
        tag = f"{os.getpid() % 10000}{random.randrange(100)}"
        self.name = f"hotswap-{tag}"
        self.outer, self.inner = f"hsh{tag}", f"hsn{tag}"  # at most 15 characters
        third = random.randrange(256)
        self.host_ip, self.inner_ip = f"10.213.{third}.1", f"10.213.{third}.2"

    def create(self) -> None:
        ip("netns", "add", self.name)
        ip("link", "add", self.outer, "type", "veth", "peer", "name", self.inner)
        ip("link", "set", self.inner, "netns", self.name)
        ip("addr", "add", f"{self.host_ip}/30", "dev", self.outer)
        ip("link", "set", self.outer, "up")
        self.inside("ip", "addr", "add", f"{self.inner_ip}/30", "dev", self.inner)
        self.inside("ip", "link", "set", self.inner, "up")
        self.inside("ip", "link", "set", "lo", "up")

    def inside(self, *command: str) -> None:
        ip("netns", "exec", self.name, *command)

    def cut(self) -> None:
        """The namespace's side of the link goes down: nothing passes either way."""
        self.inside("ip", "link", "set", self.inner, "down")

    def heal(self) -> None:
        self.inside("ip", "link", "set", self.inner, "up")

    def remove(self) -> None:
        ip("netns", "del", self.name, check=False)  # takes its end of the pair with it
        ip("link", "del", self.outer, check=False)


@pytest.fixture
def netns() -> Iterator[Netns]:
    if shutil.which("ip") is None:
        pytest.skip("no ip command (iproute2): partitions are made with ip netns")
    made = Netns()
    probe = ip("netns", "add", made.name, check=False)
    if probe.returncode != 0:
        pytest.skip(f"ip netns add is not permitted here: {probe.stderr.strip()}")
    ip("netns", "del", made.name)
    try:
        made.create()
        yield made
    finally:
        made.remove()
        left = ip("netns", "list").stdout + ip("link", "show").stdout
        assert made.name not in left, left
        assert made.outer not in left, left


class Partitioned:
    def __init__(self, folder: Path, client: Any, inner: str) -> None:
        self.folder = folder
        self.client = client
        self.inner = inner  # the partitioned worker's address
        import daskprobe

        self.probe = daskprobe.probe

    def workers(self) -> list[str]:
        return sorted(self.client.scheduler_info(n_workers=-1)["workers"])

    def answer(self, address: str) -> dict[str, Any]:
        future = self.client.submit(
            self.probe, pure=False, workers=[address], allow_other_workers=False
        )
        return future.result(timeout=TIMEOUT)  # type: ignore[no-any-return]

    def outside(self) -> dict[str, dict[str, Any]]:
        return {a: self.answer(a) for a in self.workers() if a != self.inner}


@pytest.fixture
def partitioned(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, netns: Netns
) -> Iterator[Partitioned]:
    folder = tmp_path / "app"
    shutil.copytree(APPS, folder, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.setenv("PYTHONPATH", str(folder))
    for name in ("logic", "daskprobe"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    scratch = dask_config.set({"temporary-directory": str(tmp_path / "scratch")})
    scratch.__enter__()
    cluster = client = worker = None
    try:
        cluster = distributed.LocalCluster(
            n_workers=2,
            processes=True,
            threads_per_worker=1,
            host=netns.host_ip,  # the scheduler is reached from the namespace over the veth
            dashboard_address=":0",
            preload=["hotswap.integrations.dask"],
        )
        client = distributed.Client(cluster)
        command = [
            "ip", "netns", "exec", netns.name,
            sys.executable, "-m", "distributed.cli.dask_worker", cluster.scheduler_address,
            "--host", netns.inner_ip, "--nthreads", "1", "--no-nanny", "--no-dashboard",
            "--preload", "hotswap.integrations.dask",
            "--local-directory", str(tmp_path / "scratch"), "--name", "partitioned",
        ]  # fmt: skip
        worker = subprocess.Popen(
            command,
            cwd=folder,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        client.wait_for_workers(3, timeout=TIMEOUT)
        inner = next(
            a for a in client.scheduler_info(n_workers=-1)["workers"] if netns.inner_ip in a
        )
        yield Partitioned(folder, client, inner)
    finally:
        netns.heal()  # a test that failed mid-partition: the worker can hear its end
        if worker is not None:
            os.killpg(worker.pid, signal.SIGTERM)
            try:
                worker.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(worker.pid, signal.SIGKILL)
                worker.wait(30)
        if client is not None:
            client.close()
        if cluster is not None:
            cluster.close()
        scratch.__exit__(None, None, None)
        for name in ("logic", "daskprobe"):
            sys.modules.pop(name, None)


def test_dask_worker_partitioned_during_prepare_and_commit_keeps_its_epoch_and_reconciles(
    partitioned: Partitioned, netns: Netns
):
    coordinator = hotswap_dask.cluster(partitioned.client, timeout=PHASE)
    for address in partitioned.workers():
        assert partitioned.answer(address)["version"] == "v1"  # every worker imported logic
    first = coordinator.propose({"logic": V2.encode()})
    assert first.ok, first.describe()
    assert len(first.nodes) == 3
    committed = epoch_of(GENESIS, {"logic": hashlib.sha256(V2.encode()).hexdigest()})
    assert partitioned.answer(partitioned.inner)["epoch"] == committed

    # Cut during the prepare: the partitioned worker cannot vote, so nobody commits.
    netns.cut()
    refused = coordinator.propose({"logic": V4.encode()})
    assert not refused.ok
    assert refused.outcome == "aborted"
    reports = {r.node: r for r in refused.nodes}
    assert reports[partitioned.inner].vote is None
    assert {r.vote for n, r in reports.items() if n != partitioned.inner} == {True}
    answers = partitioned.outside()
    assert {(a["version"], a["epoch"]) for a in answers.values()} == {("v2", committed)}
    netns.heal()
    # Back: it answers on the committed epoch (the late prepare was aborted).
    wait_for(lambda: coordinator.status()[partitioned.inner] is not None, "the partitioned worker")
    assert partitioned.answer(partitioned.inner)["epoch"] == committed

    # Cut between the prepare (every worker votes yes) and the commit: the others commit, the
    # partitioned worker does not answer, so every worker rolls back to the committed epoch.
    calls = coordinator.transport.call

    def cut_before_commit(command: str, *args: Any) -> Any:
        if command == "commit":
            netns.cut()
        return calls(command, *args)

    coordinator.transport.call = cut_before_commit
    try:
        rolled = coordinator.propose({"logic": V4.encode()})
    finally:
        coordinator.transport.call = calls
    assert not rolled.ok
    assert rolled.outcome == "rolled back"
    reports = {r.node: r for r in rolled.nodes}
    assert reports[partitioned.inner].outcome == "no answer"
    assert {r.outcome for n, r in reports.items() if n != partitioned.inner} == {"rolled back"}
    answers = partitioned.outside()
    assert {(a["version"], a["epoch"]) for a in answers.values()} == {("v2", committed)}
    assert coordinator.record().epoch == committed  # the store never held the new epoch

    # Back: whatever reached it late, the coordinator brings it to the committed epoch.
    netns.heal()
    wait_for(lambda: coordinator.status()[partitioned.inner] is not None, "the partitioned worker")
    coordinator.reconcile()
    status = coordinator.status()
    assert {a["epoch"] for a in status.values() if a} == {committed}, status
    assert partitioned.answer(partitioned.inner)["version"] == "v2"

    # And the next release reaches all three.
    again = coordinator.propose({"logic": V4.encode()})
    assert again.ok, again.describe()
    assert len(again.nodes) == 3
    assert {partitioned.answer(a)["version"] for a in partitioned.workers()} == {"v4"}
