"""A fleet's canary end to end: gunicorn ``-w 3`` under ``hotswap run`` on 127.0.0.1, started
by the test and stopped by PID, in the watcher's canary mode (``[tool.hotswap] canary``).

From the outside only: a sticky key sees one version in every worker (the one its bucket
names), the status endpoint answers for the fleet whichever worker took it, a worker that
starts while the canary runs runs it too, a promotion from an admin endpoint of one worker is a
fleet transaction (every worker answers the new epoch), the fleet aborts on its summed figures,
and ``hotswap.canary()`` called in one worker starts the candidate in all of them.
"""

from __future__ import annotations

import os
import signal
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from test_fleet_serving import LOGIC, V2, Server, digest, free_port, serve, wait_until

from hotswap._fleet.release import GENESIS, epoch_of, short
from hotswap._release.latency import GROWTH
from hotswap._release.routing import bucket

httpx = pytest.importorskip("httpx")
pytest.importorskip("gunicorn")

pytestmark = pytest.mark.watcher

FAILS = LOGIC.replace('return "v1"', 'raise RuntimeError("the candidate fails")')
V6 = LOGIC.replace('return "v1"', 'return "v6"')
POLICY = "[tool.hotswap]\ncanary = {weight = 0.3, min_calls = 30, max_error_rate = 0.2}\n"


def get(server: Server, path: str = "/", **headers: str) -> httpx.Response | None:
    try:
        return httpx.get(f"http://127.0.0.1:{server.port}{path}", headers=headers, timeout=10)
    except httpx.TransportError:
        return None


def answer(server: Server, path: str = "/", **headers: str) -> dict[str, Any]:
    response = get(server, path, **headers)
    assert response is not None
    body = response.json() if response.status_code == 200 else {"status": response.status_code}
    return {**body, "epoch": response.headers.get("x-hotswap-epoch")}


def many(server: Server, count: int, path: str = "/", **headers: str) -> list[dict[str, Any]]:
    """``count`` concurrent requests, so that every worker takes some."""
    with ThreadPoolExecutor(6) as pool:
        return list(pool.map(lambda _: answer(server, path, **headers), range(count)))


def every_worker(server: Server, check: Any, what: str, **headers: str) -> dict[int, Any]:
    """Until every current worker answered (since now) and ``check`` holds for each."""
    seen: dict[int, dict[str, Any]] = {}

    def done() -> bool:
        for found in many(server, 18, **headers):
            if "pid" in found:
                seen[found["pid"]] = found
        workers = server.workers()
        return len(workers) == 3 and all(p in seen and check(seen[p]) for p in workers)

    wait_until(done, what)
    return seen


def fleet_canary(server: Server) -> dict[str, Any]:
    view = httpx.get(f"http://127.0.0.1:{server.port}/_hotswap", timeout=10).json()["fleet_view"]
    return dict(view["canaries"].get("logic", {}), workers_epochs=view["workers"])


def test_fleet_canary_one_assignment_one_decision_one_transaction(tmp_path: Path) -> None:
    import shutil

    from test_fleet_serving import APPS

    folder = tmp_path / "app"
    shutil.copytree(APPS, folder, ignore=shutil.ignore_patterns("__pycache__"))
    (folder / "pyproject.toml").write_text(POLICY)
    logic = folder / "logic.py"
    port = free_port()
    command = ["gunicorn", "-w", "3", "-b", f"127.0.0.1:{port}", "admin:wsgi"]
    with serve(command, folder, port) as server:
        every_worker(server, lambda a: a["version"] == "v1", "v1")

        # A save starts the candidate in every worker, at the policy's weight.
        logic.write_text(V2)
        wait_until(lambda: server.logged("fleet canary started at weight 0.3 in 3 workers"), "go")

        # A sticky key sees one version in every worker: the one its bucket names.
        keys = [f"user-{n}" for n in range(24)]
        seen: dict[str, set[str]] = {key: set() for key in keys}
        pids: set[int] = set()
        with ThreadPoolExecutor(6) as pool:
            for key, found in pool.map(
                lambda k: (k, answer(server, "/", **{"x-user": k})), keys * 6
            ):
                seen[key].add(found["version"])
                pids.add(found["pid"])
        assert len(pids) == 3
        for key, versions in seen.items():
            assert versions == {"v2" if bucket("logic", key) < 0.3 else "v1"}, key
        assert {v for vs in seen.values() for v in vs} == {"v1", "v2"}

        # The status endpoint answers for the fleet, whichever worker took the request.
        for _ in range(6):
            run = fleet_canary(server)
            assert run["state"] == "running"
            assert run["weight"] == 0.3
            assert len(run["workers_epochs"]) == 3
        wait_until(lambda: len(fleet_canary(server)["workers"]) == 3, "every worker's figures")
        run = fleet_canary(server)
        per_worker = [w["candidate"]["calls"] for w in run["workers"].values()]
        assert run["stats"]["candidate"]["calls"] == sum(per_worker) > 0
        # The fleet's percentiles are its own (every worker's durations merged): a median of
        # all the calls lies between the workers' medians, within one bucket.
        for arm in ("live", "candidate"):
            medians = [w[arm]["p50_ms"] for w in run["workers"].values() if w[arm]["calls"]]
            fleet_median = run["stats"][arm]["p50_ms"]
            assert min(medians) / GROWTH <= fleet_median <= max(medians) * GROWTH, run

        # A worker started during the canary runs it too.
        victim = min(server.workers())
        os.kill(victim, signal.SIGKILL)
        wait_until(lambda: victim not in server.workers() and len(server.workers()) == 3, "respawn")
        every_worker(
            server, lambda a: a["version"] == "v2", "candidate", **{"x-hotswap-canary": "1"}
        )
        every_worker(server, lambda a: a["version"] == "v1", "live", **{"x-hotswap-canary": "0"})

        # promote() in one worker's admin endpoint: one fleet transaction, one new epoch.
        before = every_worker(server, lambda a: True, "counts", **{"x-hotswap-canary": "0"})
        assert "error" not in answer(server, "/promote")
        committed = epoch_of(GENESIS, {"logic": digest(V2)})
        every_worker(
            server, lambda a: a["version"] == "v2" and a["epoch"] == short(committed), "v2 live"
        )
        wait_until(lambda: server.logged(f"fleet {short(committed)}: committed in 3/3"), "log")
        after = every_worker(server, lambda a: True, "counts")
        assert all(after[p]["count"] > before[p]["count"] for p in after if p in before)

        # A failing candidate: aborted once, on the fleet's summed figures.
        logic.write_text(FAILS)
        wait_until(lambda: fleet_canary(server).get("state") == "running", "the failing canary")

        def aborted() -> bool:
            many(server, 12, **{"x-hotswap-canary": "1"})
            return fleet_canary(server)["state"] == "aborted"

        wait_until(aborted, "the fleet's abort")
        run = fleet_canary(server)
        assert "fleet error rate" in run["reason"]
        calls = [w["candidate"]["calls"] for w in run["workers"].values()]
        assert sum(1 for c in calls if c) >= 2  # counted in several workers, decided once
        for found in many(server, 24, **{"x-hotswap-canary": "1"}):
            assert (found["version"], found["epoch"]) == ("v2", short(committed)), found

        # Saved again, aborted from one worker, then hotswap.canary() from another.
        logic.write_text(V6)
        wait_until(lambda: fleet_canary(server).get("state") == "running", "the v6 canary")
        assert answer(server, "/abort")["ok"] is True
        wait_until(lambda: fleet_canary(server)["state"] == "aborted", "the abort")
        every_worker(
            server, lambda a: a["version"] == "v2", "no candidate", **{"x-hotswap-canary": "1"}
        )
        started = answer(server, "/canary")
        assert started.get("started") is True, started
        wait_until(lambda: fleet_canary(server).get("weight") == 0.5, "the admin's canary")
        every_worker(
            server, lambda a: a["version"] == "v6", "v6 candidate", **{"x-hotswap-canary": "1"}
        )
        assert "error" not in answer(server, "/promote")
        v6 = epoch_of(committed, {"logic": digest(V6)})
        every_worker(server, lambda a: a["version"] == "v6" and a["epoch"] == short(v6), "v6")


HALF_BROKEN = "import os\n" + LOGIC.replace(
    'def version():\n    return "v1"',
    'def version():\n    if os.getpid() == PID:\n        raise RuntimeError("broken here")\n'
    '    return "v7"',
)


def test_fleet_auto_rollback_decides_on_the_fleets_figures(tmp_path: Path) -> None:
    """A version failing in one worker of three: the fleet's error rate (about a third) rolls
    it back in every worker, where a worker alone would have rolled back only itself."""
    import shutil

    from test_fleet_serving import APPS

    folder = tmp_path / "app"
    shutil.copytree(APPS, folder, ignore=shutil.ignore_patterns("__pycache__"))
    bound = "{window = 120, min_calls = 30, max_error_rate = 0.2}"
    (folder / "pyproject.toml").write_text(f"[tool.hotswap]\nauto-rollback = {bound}\n")
    port = free_port()
    command = ["gunicorn", "-w", "3", "-b", f"127.0.0.1:{port}", "admin:wsgi"]
    with serve(command, folder, port) as server:
        every_worker(server, lambda a: a["version"] == "v1", "v1")
        broken = min(server.workers())
        (folder / "logic.py").write_text(HALF_BROKEN.replace("PID", str(broken)))
        committed = epoch_of(GENESIS, {"logic": digest(HALF_BROKEN.replace("PID", str(broken)))})
        wait_until(lambda: server.logged(f"fleet {short(committed)}: committed in 3/3"), "commit")

        def rolled_back() -> bool:
            many(server, 12)  # the traffic the fleet's window counts
            return server.logged("rolled back in 3 workers")

        wait_until(rolled_back, "the fleet's rollback")
        assert server.logged("automatic rollback: fleet error rate")
        # Every worker, the two healthy ones too, is back on the parent epoch.
        every_worker(
            server, lambda a: a.get("version") == "v1" and a["epoch"] == short(GENESIS), "v1"
        )


def failing_every(nth: int, first: bool, name: str) -> str:
    """logic.py answering ``name``, failing one call in ``nth`` in each worker (its first call
    too when ``first``): ``errors`` is ceil(n / nth), else floor(n / nth), after n calls."""
    tries = f"TRIES_{name.upper()}"
    fails = f"{tries}['n'] % {nth} == {1 % nth if first else 0}"
    return LOGIC.replace(
        'def version():\n    return "v1"',
        f"{tries} = {{'n': 0}}\n\n\ndef version():\n    {tries}['n'] += 1\n"
        f"    if {fails}:\n        raise RuntimeError('one call in {nth} fails')\n"
        f'    return "{name}"',
    )


def fleet_health(server: Server) -> dict[str, Any]:
    view = httpx.get(f"http://127.0.0.1:{server.port}/_hotswap", timeout=10).json()["fleet_view"]
    return dict(view.get("health") or {})


def test_fleet_auto_rollback_compares_with_the_fleets_previous_rate(tmp_path: Path) -> None:
    """As one process does, the fleet rolls back a version failing above the bound only when it
    fails more than the version before did in the fleet's window: one failing a third of its
    calls after one failing half of them is kept; one failing every call is rolled back."""
    import shutil

    from test_fleet_serving import APPS

    folder = tmp_path / "app"
    shutil.copytree(APPS, folder, ignore=shutil.ignore_patterns("__pycache__"))
    bound = "{window = 8, min_calls = 20, max_error_rate = 0.1}"
    (folder / "pyproject.toml").write_text(f"[tool.hotswap]\nauto-rollback = {bound}\n")
    logic = folder / "logic.py"
    half = failing_every(2, True, "va")  # errors >= half of each worker's calls
    third = failing_every(3, False, "vb")  # errors <= a third of them
    always = LOGIC.replace('return "v1"', 'raise RuntimeError("every call fails")')
    port = free_port()
    command = ["gunicorn", "-w", "3", "-b", f"127.0.0.1:{port}", "admin:wsgi"]
    with serve(command, folder, port) as server:
        every_worker(server, lambda a: a["version"] == "v1", "v1")

        # Half the calls fail, but fewer than min_calls come in its window: kept, and the
        # fleet's rate in that window is the bar for the next version.
        logic.write_text(half)
        first = epoch_of(GENESIS, {"logic": digest(half)})
        wait_until(lambda: server.logged(f"fleet {short(first)}: committed in 3/3"), "commit")
        many(server, 8)
        wait_until(lambda: fleet_health(server).get("calls") == 8, "the window's 8 calls")
        wait_until(lambda: fleet_health(server)["state"] == "kept", "the end of the window")
        window = fleet_health(server)
        assert window["epoch"] == first
        assert window["error_rate"] >= 0.5

        # A third of the calls fail: above max_error_rate after min_calls, not above the
        # version before: kept in every worker through its whole window.
        logic.write_text(third)
        second = epoch_of(first, {"logic": digest(third)})
        wait_until(lambda: server.logged(f"fleet {short(second)}: committed in 3/3"), "commit")

        def counted() -> bool:
            many(server, 12)
            health = fleet_health(server)
            return health.get("epoch") == second and health.get("calls", 0) >= 20

        wait_until(counted, "min_calls in the fleet's window")
        window = fleet_health(server)
        assert 0.1 < window["error_rate"] <= 1 / 3 < 0.5 <= window["previous_rate"], window
        wait_until(lambda: fleet_health(server)["state"] == "kept", "the end of the window")
        assert not server.logged("automatic rollback")
        every_worker(server, lambda a: a["version"] == "vb" and a["epoch"] == short(second), "vb")

        # Every call fails: more than the version before, rolled back in every worker.
        logic.write_text(always)
        third_epoch = epoch_of(second, {"logic": digest(always)})
        wait_until(lambda: server.logged(f"fleet {short(third_epoch)}: committed in 3/3"), "go")

        def rolled_back() -> bool:
            many(server, 12)
            return server.logged("rolled back in 3 workers")

        wait_until(rolled_back, "the fleet's rollback")
        assert server.logged("the version before had 0.")
        assert fleet_health(server)["state"] == "rolled back"
        every_worker(
            server, lambda a: a.get("version") == "vb" and a["epoch"] == short(second), "vb"
        )
