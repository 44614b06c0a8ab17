"""The fleet stage: one change set, one transaction, every worker process.

Takes in the watcher's change sets (in the coordinator) and the coordinator's messages (in each
worker); hands on releases to the engine's transaction in every process. Which process is
which: the process that calls :func:`coordinate` (``hotswap run``, gunicorn's arbiter through
``hotswap.integrations.gunicorn``) watches and coordinates, and names its fleet in the
environment (``HOTSWAP_FLEET``); a process forked from it (gunicorn and ``multiprocessing``
fork workers) joins in ``os.register_at_fork``'s child hook, and a ``multiprocessing`` spawn
child (``uvicorn --workers``, spawn pools) joins from the ``sitecustomize`` that ``hotswap
run`` puts first on ``PYTHONPATH`` (:data:`BOOT`). See docs/fleets.md.
"""

from __future__ import annotations

import logging
import os

from hotswap._fleet import agent, protocol, release
from hotswap._fleet.coordinator import Coordinator, FleetResult, Local, WorkerReport
from hotswap._fleet.release import GENESIS, Release, ledger, short

__all__ = (
    "BOOT",
    "GENESIS",
    "Coordinator",
    "FleetResult",
    "Release",
    "WorkerReport",
    "coordinate",
    "coordinator",
    "join",
    "ledger",
    "role",
    "short",
    "stop",
)

logger = logging.getLogger(__name__)

BOOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "boot")
"""The folder whose ``sitecustomize.py`` makes a spawned child join its parent's fleet."""

_coordinator: Coordinator | None = None


def coordinator() -> Coordinator | None:
    """This process's coordinator, if it coordinates a fleet."""
    return _coordinator


def role() -> str:
    """``"coordinator"``, ``"worker"`` or ``""`` (not part of a fleet)."""
    if _coordinator is not None:
        return "coordinator"
    member = agent.current()
    return "worker" if member is not None else ""


def coordinate(local: Local, *, spawned: bool = True) -> Coordinator:
    """Make this process its fleet's coordinator (idempotent) and name the fleet in
    ``os.environ``, so that the children it forks or spawns from now on join it.

    Args:
        local: how a change set goes live while no worker is connected.
        spawned: also make spawned ``multiprocessing`` children join, by putting
            :data:`BOOT` first on ``PYTHONPATH``.
    """
    global _coordinator
    if _coordinator is None:
        _coordinator = Coordinator(local)
        _coordinator.start()
        if spawned:
            _export_boot()
        # What the coordinator imports from now on runs the committed bytes too.
        agent.install_finder()
    return _coordinator


def stop() -> None:
    """Stop coordinating (the workers keep the code they run)."""
    global _coordinator
    found, _coordinator = _coordinator, None
    if found is not None:
        found.stop()
        paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
        if BOOT in paths:
            paths.remove(BOOT)
            if paths:
                os.environ["PYTHONPATH"] = os.pathsep.join(paths)
            else:
                del os.environ["PYTHONPATH"]
        agent.remove_finder()


def join() -> agent.Agent | None:
    """Join the fleet ``HOTSWAP_FLEET`` names, unless this process coordinates it; the agent,
    or None."""
    address = protocol.from_environ()
    if address is None or address.pid == os.getpid() or _coordinator is not None:
        return None
    return agent.join(address)


def _export_boot() -> None:
    paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    if BOOT not in paths:
        os.environ["PYTHONPATH"] = os.pathsep.join([BOOT, *paths])


def _after_fork_in_child() -> None:
    """A forked child: what it inherited of its parent's fleet is the parent's (the threads
    did not come along); it joins the fleet named in its environment as a worker."""
    global _coordinator
    _coordinator = None  # the parent's: its listener and connections stay the parent's
    agent.forget()
    try:
        join()
    except Exception:  # never break a fork
        logger.exception("hotswap: a forked process could not join its parent's fleet")


release.install()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
