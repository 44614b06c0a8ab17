"""Ray end to end: ``ray.init(num_cpus=3)`` on this machine, every worker process made a node by
``worker_process_setup_hook``, a cluster coordinator in the test process (the driver). The
release's bytes travel in Ray's key-value store only; the file on disk is never the committed
code. Every process Ray started is gone after each test (raylet included)."""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

ray = pytest.importorskip("ray", reason="hotswap[ray] is not installed (no Ray wheel here)")
psutil = pytest.importorskip("psutil")

from hotswap._fleet.release import GENESIS, epoch_of, short  # noqa: E402
from hotswap.integrations import ray as hotswap_ray  # noqa: E402

APPS = Path(__file__).parent / "cluster_apps"
LOGIC = (APPS / "logic.py").read_text()
V2 = LOGIC.replace('return "v1"', 'return "v2"')
SIGNATURE = LOGIC.replace('def version():\n    return "v1"', 'def version(extra):\n    return "v3"')
TIMEOUT = 60.0


def wait_for(condition: Callable[[], Any], what: str, timeout: float = TIMEOUT) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


class Ray:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        import rayprobe

        self.probe = rayprobe.probe
        self.keeper = rayprobe.Keeper

    def tasks(self, count: int = 9) -> list[dict[str, Any]]:
        return ray.get([self.probe.remote(i) for i in range(count)], timeout=TIMEOUT)

    def members(self) -> dict[int, str]:
        """pid -> node name, for every worker process that is a member now."""
        return {int(n.rsplit(":", 1)[1]): n for n in hotswap_ray.RayTransport().members()}


@pytest.fixture
def ray_cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Ray]:
    folder = tmp_path / "app"
    shutil.copytree(APPS, folder, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.syspath_prepend(str(folder))
    for name in ("logic", "rayprobe"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    # Ray's sockets live in its temp folder: a short path (a socket path has ~107 bytes).
    scratch = tempfile.mkdtemp(prefix="hsray-")
    # Ray writes a token for the cluster to ~/.ray unless it is given one; it keeps the first
    # token it reads for the life of the process, so this one stays set (the benchmark's too).
    os.environ.setdefault("RAY_AUTH_TOKEN", secrets.token_hex(32))
    env = hotswap_ray.runtime_env({"env_vars": {"PYTHONPATH": str(folder)}})
    started: list[Any] = []
    # Children this process had already (a resource tracker an earlier test started) are not
    # Ray's: only what ray.init started must be gone at the end.
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    try:
        ray.init(
            num_cpus=3,
            include_dashboard=False,
            log_to_driver=False,
            _temp_dir=scratch,
            _node_ip_address="127.0.0.1",
            runtime_env=env,
        )
        started = [p for p in psutil.Process().children(recursive=True) if p.pid not in before]
        yield Ray(folder)
    finally:
        ray.shutdown()
        _, alive = psutil.wait_procs(started, timeout=30)
        alive = [p for p in alive if _running(p)]
        for process in alive:  # never expected: named in the failure below
            process.kill()
        shutil.rmtree(scratch, ignore_errors=True)
        for name in ("logic", "rayprobe"):
            sys.modules.pop(name, None)
        assert not alive, f"Ray left processes running: {alive}"
        raylets = [
            p
            for p in psutil.process_iter(["name", "cmdline"])
            if scratch in str(p.info) and _running(p)
        ]
        assert not raylets, f"Ray left processes running: {raylets}"


def _running(process: Any) -> bool:
    """Not exited (a zombie has exited: only its parent's wait is missing)."""
    try:
        return bool(process.status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


def test_ray_release_reaches_tasks_and_actors_keeps_state_new_actors_start_on_it(
    ray_cluster: Ray,
):
    actors = [ray_cluster.keeper.options(num_cpus=0).remote() for _ in range(2)]
    before = {i: ray.get(a.probe.remote(), timeout=TIMEOUT) for i, a in enumerate(actors)}
    tasks = ray_cluster.tasks()
    assert {(a["version"], a["epoch"]) for a in [*before.values(), *tasks]} == {("v1", GENESIS)}
    pids = {a["pid"] for a in before.values()} | {t["pid"] for t in tasks}
    wait_for(lambda: pids <= set(ray_cluster.members()), "every worker process to be a member")

    coordinator = hotswap_ray.cluster()
    result = coordinator.propose({"logic": V2.encode()})
    assert result.ok, result.describe()
    reached = {int(r.node.rsplit(":", 1)[1]) for r in result.nodes}
    assert pids <= reached
    committed = epoch_of(GENESIS, {"logic": hashlib.sha256(V2.encode()).hexdigest()})
    assert result.epoch == committed
    for i, actor in enumerate(actors):
        answer = ray.get(actor.probe.remote(), timeout=TIMEOUT)
        assert (answer["version"], answer["epoch"]) == ("v2", committed)
        assert answer["pid"] == before[i]["pid"]  # the same process
        assert answer["calls"] == 2  # the actor's own state kept
        assert answer["count"] > before[i]["count"]  # the module's state kept
        assert answer["built_by"] == "v1"
    assert {(t["version"], t["epoch"]) for t in ray_cluster.tasks()} == {("v2", committed)}

    # A new actor is built by the committed code, not by what the disk holds now.
    (ray_cluster.folder / "logic.py").write_text(SIGNATURE)
    late = ray_cluster.keeper.options(num_cpus=0).remote()
    fresh = ray.get(late.probe.remote(), timeout=TIMEOUT)
    assert (fresh["built_by"], fresh["version"], fresh["epoch"]) == ("v2", "v2", committed)
    assert fresh["pid"] not in pids

    # One actor's process would take a signature change, the others refuse it: nobody does.
    relaxed = ray.get(actors[0].relax.remote(), timeout=TIMEOUT)
    assert relaxed == "warn"
    wait_for(lambda: fresh["pid"] in ray_cluster.members(), "the new actor to be a member")
    refused = coordinator.propose({"logic": SIGNATURE.encode()})
    assert not refused.ok
    votes = {int(r.node.rsplit(":", 1)[1]): r.vote for r in refused.nodes}
    assert votes[before[0]["pid"]] is True
    assert votes[before[1]["pid"]] is False
    assert votes[fresh["pid"]] is False
    for actor in [*actors, late]:
        answer = ray.get(actor.probe.remote(), timeout=TIMEOUT)
        assert (answer["version"], answer["epoch"]) == ("v2", committed)
    assert {(t["version"], t["epoch"]) for t in ray_cluster.tasks()} == {("v2", committed)}
    assert coordinator.record().epoch == committed

    # The operator command reaches the same cluster as a second driver.
    address = ray.get_runtime_context().gcs_address
    environ = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    status = subprocess.run(
        [sys.executable, "-m", "hotswap", "fleet", "--ray", address, "status"],
        check=False,
        cwd=ray_cluster.folder,
        env=environ,
        capture_output=True,
        text=True,
        timeout=TIMEOUT * 2,
    )
    assert status.returncode == 0, status.stdout + status.stderr
    assert f"committed: {short(committed)}" in status.stdout
    assert status.stdout.count(f": {short(committed)} (pid") >= len(pids) + 1


def test_ray_actor_started_mid_canary_joins_the_canary(ray_cluster: Ray):
    first = ray_cluster.keeper.options(num_cpus=0).remote()
    before = ray.get(first.probe.remote(), timeout=TIMEOUT)
    wait_for(lambda: before["pid"] in ray_cluster.members(), "the actor to be a member")
    coordinator = hotswap_ray.cluster()
    started = coordinator.canary("logic", V2.encode(), weight=1.0)
    assert all(a and a["ok"] for a in started.values()), started
    answer = ray.get(first.probe.remote(), timeout=TIMEOUT)
    assert (answer["version"], answer["scoped"]) == ("v1", "v2")

    late = ray_cluster.keeper.options(num_cpus=0).remote()  # a new process, mid-canary
    fresh = ray.get(late.probe.remote(), timeout=TIMEOUT)
    assert fresh["pid"] != before["pid"]
    assert (fresh["built_by"], fresh["version"], fresh["scoped"]) == ("v1", "v1", "v2")
    wait_for(lambda: fresh["pid"] in ray_cluster.members(), "the new actor to be a member")

    promoted = coordinator.end_canary(promote=True)
    assert promoted is not None
    assert promoted.ok, promoted.describe()
    for actor in (first, late):
        answer = ray.get(actor.probe.remote(), timeout=TIMEOUT)
        assert (answer["version"], answer["scoped"]) == ("v2", "v2")
        assert answer["epoch"] == promoted.epoch
