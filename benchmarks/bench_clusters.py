"""Clusters: a release -> every worker of every node on the new code, beside each engine's own way.

Run: python benchmarks/bench_clusters.py [--saves 5] [--engines celery,dask]

- **Celery**: 2 nodes (``-n w1@%h``, ``-n w2@%h``, ``-c 2``) of ``tests/cluster_apps/tasks.py`` on
  a redis-server started here (a free port on 127.0.0.1, stopped by PID). ``hotswap``: the
  cluster coordinator's ``propose`` (bytes in remote-control messages; the children are updated
  in place); ``pool_restart``: the file is saved and Celery's ``pool_restart`` (with
  ``reload``) re-forks every child from its reloaded MainProcess.
- **Dask**: ``LocalCluster(n_workers=3, processes=True)``. ``hotswap``: ``propose`` over
  ``Client.run``; ``upload_file``: the file is sent with ``Client.upload_file``, which reloads it
  on every worker with no check.

The latency of a save is from the start of the release (or of the engine's command) until every
worker process answered a probe with the new version (Celery: a batch of tasks on each node's own
queue until both children answered; Dask: ``Client.run`` on every worker). ``state`` says
whether each process's counter went on across the saves (kept) or started again (lost);
``2 phases`` is the cluster result's own duration (prepare to the last commit answer).
"""

from __future__ import annotations

import argparse
import os
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--saves", type=int, default=5)
    parser.add_argument("--engines", default="celery,dask")
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
    print(f"{'engine':<8} {'mode':<14} {'median':>10} {'max':>10} {'2 phases':>10}  state")
    for row in rows:
        phases = "" if row["release_ms"] is None else f"{row['release_ms']:.1f}ms"
        print(
            f"{row['engine']:<8} {row['mode']:<14} {row['median_ms']:>8.1f}ms "
            f"{row['max_ms']:>8.1f}ms {phases:>10}  {row['state']}"
        )


if __name__ == "__main__":
    main()
