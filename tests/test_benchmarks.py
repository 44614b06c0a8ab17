"""The benchmarks still run (tiny sizes, no timing asserted: figures come from the real runs)."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

import _replay_child
import _replay_tests
import bench_calls
import bench_canary
import bench_diff
import bench_first_save
import bench_fleet
import bench_latency
import bench_observability
import bench_peers
import bench_pytest
import bench_reload
import bench_replay
from _sources import scratch


@pytest.fixture(autouse=True)
def _scratch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """What a benchmark writes (its ``tempfile`` folders, its processes' ``TMPDIR``) goes into
    one folder, removed after the test: the benchmarks' own runs do the same. pytest's own
    temporary root is settled first, outside it."""
    tmp_path_factory.getbasetemp()
    with scratch():
        yield


def test_bench_diff_runs():
    size, parse, warm, cold = bench_diff.measure(50, rounds=2)
    assert size > 0
    assert min(parse, warm, cold) > 0


def test_bench_first_save_runs():
    saves = bench_first_save.program(0.0)
    assert len(saves) == bench_first_save.SAVES
    assert all(ms >= 0 for ms in saves)  # every save went live (NaN compares False)


def test_bench_reload_runs(project):
    row = bench_reload.measure(50, rounds=2)
    assert row["reload"] > 0


def test_bench_observability_runs(project):
    row = bench_observability.measure(50, rounds=2)
    assert min(row["plain"], row["audit"], row["signed"], row["metrics+traces"]) > 0


def test_bench_calls_runs(monkeypatch, capsys):
    monkeypatch.setattr(bench_calls, "NUMBER", 1000)
    monkeypatch.setattr(bench_calls, "REPEAT", 1)
    bench_calls.main()
    assert "@reloadable method" in capsys.readouterr().out


@pytest.mark.watcher
def test_bench_latency_runs():
    row = bench_latency.measure("hotswap", "rename", busy=False, saves=2)
    assert row["lost"] == 0


@pytest.mark.watcher
@pytest.mark.parametrize("style", ["slow writer", "two files together"])
def test_bench_latency_new_styles_run(style):
    row = bench_latency.measure("hotswap", style, busy=False, saves=2)
    assert row["lost"] == 0
    assert row["half"] == 0


def test_bench_pytest_runs():
    row = bench_pytest.measure_hotswap(import_seconds=0.0, saves=1, situations=3)
    assert len(row["latencies"]) == 1
    assert row["wrong"] == []


def test_bench_canary_runs(project, capsys):
    bench_canary.main(["--number", "50", "--repeat", "1", "--rounds", "1"])
    out = capsys.readouterr().out
    assert "wsgi middleware, canary" in out
    assert "asgi promote" in out


@pytest.mark.parametrize("kind", bench_canary.KINDS)
def test_bench_canary_switch_sends_no_request_to_the_other_version(project, kind):
    rows = bench_canary.measure_switch(kind, rounds=1)
    assert [row["what"] for row in rows] == [f"{kind} abort", f"{kind} promote"]
    assert [row["wrong"] for row in rows] == [0, 0]


@pytest.mark.watcher
def test_bench_fleet_runs():
    row = bench_fleet.measure("fleet", saves=1)
    assert (row["lost"], row["failed"], row["state"]) == (0, 0, True)
    assert len(row["latencies"]) == 1


def test_bench_fleet_canary_share_runs():
    row = bench_fleet.canary_share(requests=60)
    assert row["requests"] >= 60
    # Each worker's share when it served some of them: 60 requests may all land on two of the
    # 3 workers (the kernel hands each connection to whichever worker accepts first).
    assert 1 <= len(row["per_worker"]) <= 3
    assert all(0.0 <= share <= 1.0 for share in row["per_worker"].values())
    assert 0.0 < row["share"] < 1.0  # both versions served: the candidate runs in the fleet


def test_bench_clusters_dask_runs():
    pytest.importorskip("distributed", reason="hotswap[dask] is not installed")
    import bench_clusters

    rows = {row["mode"]: row for row in bench_clusters.dask_rows(saves=1)}
    assert (rows["hotswap"]["state"], rows["upload_file"]["state"]) == ("kept", "lost")


def test_bench_clusters_ray_runs():
    pytest.importorskip("ray", reason="hotswap[ray] is not installed (no Ray wheel here)")
    import bench_clusters

    rows = {row["mode"]: row for row in bench_clusters.ray_rows(saves=1)}
    assert (rows["hotswap"]["state"], rows["actor restart"]["state"]) == ("kept", "lost")


def test_bench_sim_fleet_scale_runs():
    import sim_fleet_scale

    row = sim_fleet_scale.measure(agents=5, rounds=2, size=1024)
    assert row["prepare_bytes"] > 1024
    assert row["round_bytes"] > 5 * 2 * 1024  # a prepare and a commit, each with the bytes


@pytest.mark.watcher
@pytest.mark.parametrize("peer", ["hotswap", "floor"])
def test_bench_peers_rows_run(peer):
    # The test environment holds hotswap and watchdog: it stands in for the scratch ones.
    row = bench_peers.row_latency(sys.executable, peer, False, saves=3, timeout=10)
    assert row["first"] is not None
    assert len(row["times"]) == 2
    imported = bench_peers.row_importers(sys.executable, peer, saves=1, timeout=10, count=3)
    # hotswap follows a constant into its importers; importlib.reload does not.
    assert len(imported["times"]) == (1 if peer == "hotswap" else 0)


def test_bench_peers_finds_a_python_for_hmr_or_says_so():
    found = bench_peers._python_312()
    assert found is None or os.path.exists(found)


def _release(root: Path, value: int, extra: str) -> Path:
    """A tiny sdist tree: a package of two modules and its own tests."""
    (root / "pkgr").mkdir(parents=True)
    (root / "pkgr" / "__init__.py").write_text("from .core import Thing, value\n")
    (root / "pkgr" / "core.py").write_text(
        f"class Thing:\n    def get(self):\n        return {value}\n\n\n"
        f"def value():\n    return Thing().get()\n{extra}"
    )
    (root / "tests").mkdir()
    (root / "tests" / "test_core.py").write_text(
        f"import pkgr\n\n\ndef test_value():\n    assert pkgr.value() == {value}\n"
    )
    return root


@pytest.mark.parametrize("via", ["reload", pytest.param("watcher", marks=pytest.mark.watcher)])
def test_bench_replay_finds_a_release_equal_to_a_fresh_import(tmp_path, monkeypatch, via):
    roots = {
        "1": _release(tmp_path / "r1", 1, ""),
        "2": _release(tmp_path / "r2", 2, "\n\ndef added():\n    return 3\n"),
    }
    monkeypatch.setitem(bench_replay.RELEASES, "pkgr", (("pkgr",), ("1", "2")))
    monkeypatch.setattr(bench_replay, "fetch", lambda cache, name, version: roots[version])
    work = tmp_path / "work"
    work.mkdir()
    rows = bench_replay.replay(tmp_path, work, "pkgr", ["hotswap"], 1, via, True)
    row = rows["hotswap"]
    assert row["steps"] == 1
    assert row["failed"] == row["refused"] == 0
    assert row["divergent"] == [("2", [])]
    assert row["tests"] == [("2", 1, [])]
    assert "| pkgr | hotswap | 1 |" in bench_replay.table(rows and {"pkgr": rows})


def test_bench_replay_counts_what_a_deleted_file_leaves_as_the_limit(tmp_path, monkeypatch):
    first = _release(tmp_path / "r1", 1, "")
    (first / "pkgr" / "_version.py").write_text("VERSION = '1'\n")
    roots = {"1": first, "2": _release(tmp_path / "r2", 1, "")}
    monkeypatch.setitem(bench_replay.RELEASES, "pkgr", (("pkgr",), ("1", "2")))
    monkeypatch.setattr(bench_replay, "fetch", lambda cache, name, version: roots[version])
    work = tmp_path / "work"
    work.mkdir()
    rows = bench_replay.replay(tmp_path, work, "pkgr", ["hotswap"], 1, "reload", False)
    row = rows["hotswap"]
    # toolz 1.1.0 deleted _version.py: its module stays (docs/limits.md), not a divergence.
    assert row["divergent"] == [("2", [])]
    ((version, left),) = row["deleted"]
    assert version == "2"
    assert {"pkgr:_version", "pkgr._version:VERSION"} <= set(left)
    assert "of deleted files" in bench_replay.table({"pkgr": rows})


def test_bench_replay_reports_the_steps_strict_refuses_and_why(tmp_path, monkeypatch):
    roots = {
        "1": _release(tmp_path / "r1", 1, "\n\ndef old(a, b):\n    return a\n"),
        "2": _release(tmp_path / "r2", 1, "\n\ndef old(a):\n    return a\n"),
    }
    (roots["1"] / "pkgr" / "user.py").write_text("from .core import old\n")
    (roots["2"] / "pkgr" / "user.py").write_text("from .core import old\n")
    monkeypatch.setitem(bench_replay.RELEASES, "pkgr", (("pkgr",), ("1", "2")))
    monkeypatch.setattr(bench_replay, "fetch", lambda cache, name, version: roots[version])
    work = tmp_path / "work"
    work.mkdir()
    rows = bench_replay.replay(tmp_path, work, "pkgr", ["strict"], 1, "reload", False)
    assert rows["strict"]["refused"] >= 1
    report = bench_replay.refusals({"pkgr": rows})
    assert "- pkgr strict: 1 of 1 steps refused (2)" in report
    assert "  - from 2: pkgr.core (pkgr/core.py): old(a, b) -> old(a): parameter 'b' removed" in (
        report
    )


@pytest.mark.parametrize(
    ("addopts", "expected"),
    [
        ("\"-m 'not stress'\"", "not stress"),
        ('["-ra", "-m", "not slow"]', "not slow"),
        ('"--strict-markers"', None),
    ],
)
def test_bench_replay_keeps_the_release_marker_expression(tmp_path, addopts, expected):
    # click deselects its 10,000 stress runs in its own addopts, which the replay replaces.
    (tmp_path / "pyproject.toml").write_text(f"[tool.pytest.ini_options]\naddopts = {addopts}\n")
    assert _replay_tests.marker_expression(tmp_path) == expected


def test_bench_replay_describes_a_stale_class_as_divergent(tmp_path, monkeypatch):
    (tmp_path / "stale_mod.py").write_text("class Old:\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import stale_mod

    kept = stale_mod.Old
    fresh = _replay_child.describe(kept)
    stale_mod.Old = type("Old", (), {"__module__": "stale_mod", "__qualname__": "Old"})
    try:
        live = _replay_child.describe(kept)
    finally:
        sys.modules.pop("stale_mod", None)
    assert fresh[3] == "current"
    assert live[3] == "stale"
    assert bench_replay.divergent({"m:Old": repr(live)}, {"m:Old": repr(fresh)}) == ["m:Old"]
