"""``hotswap fleet``: the operator's view of a cluster and its releases.

``hotswap fleet --celery tasks status`` (or ``--dask tcp://host:8786``, ``--ray host:6379``):
which nodes and workers run which epoch; ``diff FILE...``: what a release of those files would
change, and how every node would vote (a prepare, then an abort: nothing changes);
``commit FILE...``: the release, in two phases (no file: send the committed state to the nodes
not on it); ``abort``: drop a round a coordinator left prepared; ``rollback --to EPOCH``: back to
a committed epoch the cluster keeps. Each engine's integration says how to reach it (it is
imported by name, as gunicorn's ``-c python:hotswap.integrations.gunicorn`` is); the exit status
is 0 when the cluster is, or went, where asked.
"""

from __future__ import annotations

import argparse
import importlib
import os
from pathlib import Path
from typing import Any

from hotswap._fleet import cluster as _cluster
from hotswap._fleet.release import GENESIS, short

__all__ = ("add_parser", "module_name", "run")

ENGINES = ("celery", "dask", "ray")


def add_parser(commands: Any) -> None:
    """The ``fleet`` subcommand, on ``hotswap``'s subparsers."""
    fleet = commands.add_parser(
        "fleet",
        help="see and move a cluster's release (Celery, Dask, Ray)",
        description=__doc__.split("\n\n")[1] if __doc__ else None,
    )
    where = fleet.add_mutually_exclusive_group(required=True)
    where.add_argument("--celery", metavar="APP", help="the Celery app, as celery -A takes it")
    where.add_argument("--dask", metavar="ADDRESS", help="the Dask scheduler's address")
    where.add_argument("--ray", metavar="ADDRESS", help="the Ray cluster's address (host:port)")
    fleet.add_argument(
        "--root", default=".", help="the folder module names are relative to (default: .)"
    )
    fleet.add_argument("--timeout", type=float, help="seconds each node has to answer a phase")
    actions = fleet.add_subparsers(dest="action", required=True, metavar="ACTION")
    actions.add_parser("status", help="every node's epoch and its workers'")
    diff = actions.add_parser("diff", help="what a release of FILEs would change; the votes")
    diff.add_argument("files", nargs="+", metavar="FILE")
    commit = actions.add_parser("commit", help="release FILEs to every node (two phases)")
    commit.add_argument("files", nargs="*", metavar="FILE")
    actions.add_parser("abort", help="drop a prepared round on every node")
    rollback = actions.add_parser("rollback", help="go back to a committed epoch")
    rollback.add_argument("--to", required=True, metavar="EPOCH", help="an epoch or its prefix")


def module_name(path: str, root: str) -> str:
    """The module a file holds, named from ``root`` (``pkg/mod.py`` -> ``pkg.mod``)."""
    relative = Path(os.path.abspath(path)).relative_to(os.path.abspath(root))
    parts = list(relative.with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def run(options: argparse.Namespace) -> int:
    """Run ``hotswap fleet``; the exit status."""
    name = next(e for e in ENGINES if getattr(options, e, None))
    importlib.import_module(f"hotswap.integrations.{name}")  # registers its engine
    transport = _cluster.engine(name, getattr(options, name))
    coordinator = _cluster.Cluster(transport, timeout=options.timeout)
    action = options.action
    if action == "status":
        return _status(coordinator)
    if action == "abort":
        answers = coordinator.abort()
        for node, answer in sorted(answers.items()):
            print(f"{node}: {'aborted' if answer and answer['ok'] else _why(answer)}")
        return 0 if all(a and a["ok"] for a in answers.values()) else 1
    if action == "rollback":
        return _result(coordinator.rollback(options.to))
    modules = {module_name(f, options.root): Path(f).read_bytes() for f in options.files}
    if action == "diff":
        trial = coordinator.propose(modules, dry_run=True)  # the votes teach it the old bytes
        text = coordinator.diff(modules)
        print(text or "no change against the committed release", end="" if text else "\n")
        for report in trial.nodes:
            vote = {True: "yes", False: "no", None: "no answer"}[report.vote]
            print(
                f"{report.node}: would vote {vote}" + (f": {report.error}" if report.error else "")
            )
        return 0 if all(r.vote for r in trial.nodes) else 1
    if not modules:
        answers = coordinator.reconcile()
        for node, answer in sorted(answers.items()):
            print(f"{node}: {'synced' if answer and answer['ok'] else _why(answer)}")
        return 0 if all(a and a["ok"] for a in answers.values()) else 1
    return _result(coordinator.propose(modules))


def _status(coordinator: _cluster.Cluster) -> int:
    record = coordinator.record()
    epoch = "genesis" if record.epoch == GENESIS else short(record.epoch)
    modules = ", ".join(sorted(record.overlay)) or "none"
    print(f"committed: {epoch} (term {record.term}; released modules: {modules})")
    behind = 0
    for node, answer in sorted(coordinator.status().items()):
        if answer is None:
            print(f"{node}: no answer")
            behind += 1
            continue
        mark = "" if answer["epoch"] == record.epoch else "  <- not on the committed epoch"
        behind += bool(mark)
        print(f"{node}: {short(answer['epoch'])} (pid {answer['pid']}){mark}")
        for pid, worker in sorted(answer.get("workers", {}).items()):
            flag = "" if worker == record.epoch else "  <- not on the committed epoch"
            behind += bool(flag)
            print(f"  worker {pid}: {short(worker)}{flag}")
    return 1 if behind else 0


def _result(result: _cluster.ClusterResult) -> int:
    print(result.describe())
    for report in result.nodes:
        line = f"  {report.node}: {report.outcome}"
        print(line + (f": {report.error}" if report.error else ""))
    return 0 if result.ok else 1


def _why(answer: dict[str, Any] | None) -> str:
    return "no answer" if answer is None else str(answer.get("error"))
