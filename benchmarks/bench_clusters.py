"""Clusters: a release -> every worker of every node on the new code, beside each engine's own way.

Run: python benchmarks/bench_clusters.py [--saves 5] [--engines celery,dask,ray]

- **Celery**: 2 nodes (``-n w1@%h``, ``-n w2@%h``, ``-c 2``) of ``tests/cluster_apps/tasks.py`` on
  a redis-server started here (a free port on 127.0.0.1, stopped by PID). ``hotswap``: the
  cluster coordinator's ``propose`` (bytes in remote-control messages; the children are updated
  in place); ``pool_restart``: the file is saved and Celery's ``pool_restart`` (with
  ``reload``) re-forks every child from its reloaded MainProcess.
- **Dask**: ``LocalCluster(n_workers=3, processes=True)``. ``hotswap``: ``propose`` over
  ``Client.run``; ``upload_file``: the file is sent with ``Client.upload_file``, which reloads it
  on every worker with no check.
- **Ray**: ``ray.init(num_cpus=3)``, 2 actors (``Keeper`` of ``tests/cluster_apps/rayprobe.py``)
  beside the task workers. ``hotswap``: ``propose`` over Ray's key-value store, every worker
  process a node through ``worker_process_setup_hook``; ``actor restart``: the file is saved
  and each actor is killed with ``ray.kill(actor, no_restart=False)``: Ray starts it again in a
  new process, which imports the file (Ray's own way to run new code in a live actor).

The latency of a save is from the start of the release (or of the engine's command) until every
worker process answered a probe with the new version (Celery: a batch of tasks on each node's own
queue until both children answered; Dask: ``Client.run`` on every worker; Ray: a call to each
actor, then a batch of tasks). ``state`` says
whether each process's counter went on across the saves (kept) or started again (lost);
``2 phases`` is the cluster result's own duration (prepare to the last commit answer).
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

APPS = Path(__file__).resolve().parent.parent / "tests" / "cluster_apps"
LOGIC = (APPS / "logic.py").read_text()
WAIT = 60.0


def _version(number: int) -> str:
    return LOGIC.replace('return "v1"', f'return "v{number}"')


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _stop(process: subprocess.Popen[Any]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
    process.wait(30)


def _summary(
    engine: str, mode: str, latencies: list[float], kept: bool, releases: list[float]
) -> dict[str, Any]:
    return {
        "engine": engine,
        "mode": mode,
        "release_ms": statistics.median(releases) * 1000 if releases else None,
        "median_ms": statistics.median(latencies) * 1000,
        "max_ms": max(latencies) * 1000,
        "state": "kept" if kept else "lost",
    }


# --- Celery ------------------------------------------------------------------------------------


def _celery_probe(app: Any, expected: str) -> dict[int, int]:
    """Batches on each node's queue until both its children answered ``expected``; pid ->
    counter."""
    counts: dict[int, int] = {}
    for queue in ("w1", "w2"):
        seen: dict[int, int] = {}
        while len(seen) < 2:
            results = [app.send_task("tasks.probe", (0.01,), queue=queue) for _ in range(8)]
            answers = [r.get(timeout=WAIT) for r in results]
            ready = [a for a in answers if a["version"] == expected]
            seen = {a["pid"]: a["count"] for a in ready}
            if len(ready) < len(answers):
                seen = {}  # a child still answered the old version
        counts.update(seen)
    return counts


def celery_rows(saves: int) -> list[dict[str, Any]]:
    import celery
    import redis

    from hotswap.integrations import celery as hotswap_celery

    rows = []
    for mode in ("hotswap", "pool_restart"):
        with tempfile.TemporaryDirectory() as temp:
            folder = Path(temp) / "app"
            shutil.copytree(APPS, folder, ignore=shutil.ignore_patterns("__pycache__"))
            port = _free_port()
            server = subprocess.Popen(
                ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", ""],
                cwd=temp,
                stdout=subprocess.DEVNULL,
                start_new_session=True,
            )
            url = f"redis://127.0.0.1:{port}/0"
            nodes: list[subprocess.Popen[bytes]] = []
            app = celery.Celery("tasks", broker=url, backend=url)
            try:
                deadline = time.monotonic() + WAIT
                while True:
                    try:
                        redis.Redis.from_url(url).ping()
                        break
                    except redis.ConnectionError:
                        assert time.monotonic() < deadline, "redis-server did not answer"
                        time.sleep(0.05)
                transport = hotswap_celery.transport(app)
                env = {**os.environ, "PYTHONPATH": str(folder), "HOTSWAP_TEST_REDIS": url}
                for name in ("w1", "w2"):
                    command = [sys.executable, "-m", "celery", "-A", "tasks", "worker"]
                    command += [
                        "-n",
                        f"{name}@%h",
                        "-c",
                        "2",
                        "-Q",
                        f"celery,{name}",
                        "-l",
                        "warning",
                    ]
                    command += ["--without-gossip", "--without-mingle", "--without-heartbeat"]
                    nodes.append(
                        subprocess.Popen(
                            command,
                            cwd=folder,
                            env=env,
                            stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL,
                            start_new_session=True,
                        )
                    )
                while len(transport.members()) < 2:
                    assert time.monotonic() < deadline, "the nodes did not start"
                    time.sleep(0.05)

                before = _celery_probe(app, "v1")
                coordinator = hotswap_celery.cluster(app) if mode == "hotswap" else None
                latencies, releases, kept = [], [], True
                for number in range(2, saves + 2):
                    data = _version(number)
                    start = time.perf_counter()
                    if coordinator is not None:
                        result = coordinator.propose({"logic": data.encode()})
                        assert result.ok, result.describe()
                        releases.append(result.duration)
                    else:
                        (folder / "logic.py").write_text(data)
                        app.control.pool_restart(
                            modules=["logic"], reload=True, destination=transport.members()
                        )
                    counts = _celery_probe(app, f"v{number}")
                    latencies.append(time.perf_counter() - start)
                    kept = kept and all(counts.get(pid, 0) > c for pid, c in before.items())
                    before = counts
                rows.append(_summary("celery", mode, latencies, kept, releases))
            finally:
                for node in nodes:
                    _stop(node)
                app.close()
                _stop(server)
    return rows


# --- Dask --------------------------------------------------------------------------------------


def dask_rows(saves: int) -> list[dict[str, Any]]:
    import dask
    import distributed

    from hotswap.integrations import dask as hotswap_dask

    rows = []
    for mode in ("hotswap", "upload_file"):
        with tempfile.TemporaryDirectory() as temp:
            folder = Path(temp) / "app"
            shutil.copytree(APPS, folder, ignore=shutil.ignore_patterns("__pycache__"))
            sys.path.insert(0, str(folder))
            dask.config.set({"temporary-directory": str(Path(temp) / "scratch")})
            try:
                cluster = distributed.LocalCluster(
                    n_workers=3,
                    processes=True,
                    threads_per_worker=1,
                    host="127.0.0.1",
                    dashboard_address=":0",  # a free port, not 8787
                    preload=["hotswap.integrations.dask"],
                )
                client = distributed.Client(cluster)
                import daskprobe

                before = client.run(daskprobe.probe)
                coordinator = hotswap_dask.cluster(client) if mode == "hotswap" else None
                latencies, releases, kept = [], [], True
                for number in range(2, saves + 2):
                    data = _version(number)
                    start = time.perf_counter()
                    if coordinator is not None:
                        result = coordinator.propose({"logic": data.encode()})
                        assert result.ok, result.describe()
                        releases.append(result.duration)
                    else:
                        (folder / "logic.py").write_text(data)
                        client.upload_file(str(folder / "logic.py"))
                    after = client.run(daskprobe.probe)
                    latencies.append(time.perf_counter() - start)
                    assert {a["version"] for a in after.values()} == {f"v{number}"}, after
                    kept = kept and all(
                        after[w]["count"] > before[w]["count"] for w in before if w in after
                    )
                    before = after
                rows.append(_summary("dask", mode, latencies, kept, releases))
                client.close()
                cluster.close()
            finally:
                sys.path.remove(str(folder))
                for name in ("logic", "daskprobe"):
                    sys.modules.pop(name, None)
    return rows


# --- Ray ---------------------------------------------------------------------------------------


def ray_rows(saves: int) -> list[dict[str, Any]]:
    import ray

    from hotswap.integrations import ray as hotswap_ray

    rows = []
    for mode in ("hotswap", "actor restart"):
        with tempfile.TemporaryDirectory() as temp:
            folder = Path(temp) / "app"
            shutil.copytree(APPS, folder, ignore=shutil.ignore_patterns("__pycache__"))
            sys.path.insert(0, str(folder))
            # Ray's sockets lie under this folder, and a unix socket's path has 107 bytes at
            # most: the system's /tmp when the temporary folder is deeper (a scratch folder).
            base = tempfile.gettempdir()
            scratch = tempfile.mkdtemp(prefix="hsray-", dir=base if len(base) <= 24 else "/tmp")
            # Ray writes a token for the cluster to ~/.ray unless it is given one.
            os.environ.setdefault("RAY_AUTH_TOKEN", secrets.token_hex(32))
            env: dict[str, Any] = {"env_vars": {"PYTHONPATH": str(folder)}}
            if mode == "hotswap":
                env = hotswap_ray.runtime_env(env)
            ray.init(
                num_cpus=3,
                include_dashboard=False,
                log_to_driver=False,
                _temp_dir=scratch,
                _node_ip_address="127.0.0.1",
                runtime_env=env,
            )
            try:
                import rayprobe

                keeper = rayprobe.Keeper.options(num_cpus=0, max_restarts=-1, max_task_retries=-1)
                actors = [keeper.remote() for _ in range(2)]

                def probe(expected: str, actors: list[Any] = actors) -> list[dict[str, Any]]:
                    answers = ray.get([a.probe.remote() for a in actors], timeout=WAIT)
                    tasks = ray.get([rayprobe.probe.remote(i) for i in range(6)], timeout=WAIT)
                    seen = {a["version"] for a in [*answers, *tasks]}
                    assert seen == {expected}, seen
                    return answers  # type: ignore[no-any-return]

                before = probe("v1")
                coordinator = hotswap_ray.cluster() if mode == "hotswap" else None
                latencies, releases, kept = [], [], True
                for number in range(2, saves + 2):
                    data = _version(number)
                    start = time.perf_counter()
                    if coordinator is not None:
                        result = coordinator.propose({"logic": data.encode()})
                        assert result.ok, result.describe()
                        releases.append(result.duration)
                    else:
                        (folder / "logic.py").write_text(data)
                        for actor in actors:
                            ray.kill(actor, no_restart=False)
                    after = probe(f"v{number}") if mode == "hotswap" else _restarted(actors, number)
                    latencies.append(time.perf_counter() - start)
                    kept = kept and all(
                        a["calls"] > b["calls"] for a, b in zip(after, before, strict=True)
                    )
                    before = after
                rows.append(_summary("ray", mode, latencies, kept, releases))
            finally:
                ray.shutdown()
                shutil.rmtree(scratch, ignore_errors=True)
                sys.path.remove(str(folder))
                for name in ("logic", "rayprobe"):
                    sys.modules.pop(name, None)
    return rows


def _restarted(actors: list[Any], number: int) -> list[dict[str, Any]]:
    """Each restarted actor's answer once it runs ``v<number>`` (``ray.kill`` returns before the
    actor is gone: a call may still reach the old process). The task workers keep the version
    they imported: Ray has no way to make them import it again."""
    import ray

    deadline = time.monotonic() + WAIT
    answers: list[dict[str, Any]] = []
    for actor in actors:
        while True:
            answer = ray.get(actor.probe.remote(), timeout=WAIT)
            if answer["version"] == f"v{number}":
                answers.append(answer)
                break
            assert time.monotonic() < deadline, answer

    return answers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--saves", type=int, default=5)
    parser.add_argument("--engines", default="celery,dask,ray")
    options = parser.parse_args()
    rows: list[dict[str, Any]] = []
    engines = options.engines.split(",")
    if "celery" in engines:
        if shutil.which("redis-server") is None:
            print("celery: skipped (redis-server is not installed; .ci/services.sh installs it)")
        else:
            rows += celery_rows(options.saves)
    if "dask" in engines:
        rows += dask_rows(options.saves)
    if "ray" in engines:
        try:
            import ray  # noqa: F401
        except ImportError:
            print("ray: skipped (hotswap[ray] is not installed: no Ray wheel for this Python)")
        else:
            rows += ray_rows(options.saves)
    print(f"{'engine':<8} {'mode':<14} {'median':>10} {'max':>10} {'2 phases':>10}  state")
    for row in rows:
        phases = "" if row["release_ms"] is None else f"{row['release_ms']:.1f}ms"
        print(
            f"{row['engine']:<8} {row['mode']:<14} {row['median_ms']:>8.1f}ms "
            f"{row['max_ms']:>8.1f}ms {phases:>10}  {row['state']}"
        )


if __name__ == "__main__":
    main()
