"""Celery: every worker node runs the cluster's committed release, its pool children included.

In the app module, once::

    from hotswap.integrations import celery as hotswap_celery
    hotswap_celery.install(app)

Each node's MainProcess then becomes a node of the cluster (``hotswap._fleet.node``) and the
coordinator of its own pool: prefork children join it when they are forked, and a child forked
later (``--max-tasks-per-child``, a restarted child) runs the committed code from its first
task. The cluster coordinator (a developer's process, ``hotswap fleet --celery tasks``, CI)
sends each phase to every node as a remote-control command with replies (``hotswap_prepare``,
``hotswap_commit``, ``hotswap_abort``, ``hotswap_rollback``, ``hotswap_sync``,
``hotswap_status``); the bytes travel in those messages. The committed state is kept in the
result backend's Redis, so a node that starts later takes it before it consumes a task, and
the nodes that are up say so in a hash there (once they hear broadcasts). Without
``install``, ``hotswap run -m celery -A tasks worker`` makes one node's pool children a fleet of
the watching MainProcess.

Example:
    >>> from hotswap.integrations import celery as hotswap_celery
    >>> hotswap_celery.COMMANDS
    ('status', 'prepare', 'commit', 'abort', 'rollback', 'sync', 'canary', 'end_canary')
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any

from celery import Celery, signals
from celery.worker.control import control_command

from hotswap import _seam

__all__ = ("COMMANDS", "LEASE", "CeleryTransport", "cluster", "connect", "install", "transport")

logger = logging.getLogger("hotswap.integrations.celery")

COMMANDS = ("status", "prepare", "commit", "abort", "rollback", "sync", "canary", "end_canary")
"""The phases, each a remote-control command ``hotswap_<name>`` with one argument ``body``."""

LEASE = 10.0
"""Seconds after a node last said it is up that it stops counting as a member."""

_BEAT = 2.0  # seconds between a node's "I am up"
_installed: set[int] = set()
# Seconds a starting node waits to hear its own broadcast before it says it is a member.
_ENTER_TIMEOUT = 30.0


class CeleryTransport:
    """A cluster's transport over a Celery app: remote control for the phases, the result
    backend's Redis for the record and the members.

    Args:
        app: the Celery app (its broker carries the commands, its backend keeps the state).
    """

    def __init__(self, app: Celery) -> None:
        self.app = app
        self.prefix = f"hotswap:{app.main or 'celery'}"

    @property
    def _redis(self) -> Any:
        client = getattr(self.app.backend, "client", None)
        if client is None:
            raise RuntimeError(
                "hotswap.integrations.celery keeps the cluster's state in the result backend's "
                "Redis: configure backend='redis://...'"
            )
        return client

    def members(self) -> list[str]:
        """The nodes that said they are up within :data:`LEASE` seconds (by the Redis server's
        clock) and have not stopped; the others are forgotten."""
        key = f"{self.prefix}:members"
        now = self._now()
        self._redis.zremrangebyscore(key, "-inf", now - LEASE)
        names = self._redis.zrangebyscore(key, now - LEASE, "+inf")
        return sorted(n.decode() if isinstance(n, bytes) else str(n) for n in names)

    def _now(self) -> float:
        seconds, micros = self._redis.time()
        return float(seconds) + float(micros) / 1e6

    def call(
        self, command: str, body: dict[str, Any], nodes: list[str], timeout: float
    ) -> dict[str, dict[str, Any] | None]:
        """Broadcast ``hotswap_<command>`` to ``nodes`` and gather their replies."""
        if not nodes:
            return {}
        replies = self.app.control.broadcast(
            f"hotswap_{command}",
            arguments={"body": body},
            destination=nodes,
            reply=True,
            timeout=timeout,
            limit=len(nodes),
        )
        answers: dict[str, dict[str, Any] | None] = dict.fromkeys(nodes)
        for reply in replies or ():
            for name, answer in reply.items():
                if isinstance(answer, dict) and "ok" not in answer:
                    why = str(answer.get("error", answer))
                    answers[name] = {"ok": False, "error": why}
                else:
                    answers[name] = answer
        return answers

    def load(self) -> str | None:
        """The cluster's record (JSON), or None."""
        data = self._redis.get(f"{self.prefix}:record")
        return None if data is None else data.decode() if isinstance(data, bytes) else str(data)

    def save(self, text: str) -> None:
        """Store the cluster's record (JSON), with no expiry."""
        self._redis.set(f"{self.prefix}:record", text)

    def enter(self, node: str) -> None:
        """Say that ``node`` is up (its control commands are consumed); again every
        :data:`LEASE` seconds at most, or it stops counting."""
        self._redis.zadd(f"{self.prefix}:members", {node: self._now()})

    def leave(self, node: str) -> None:
        """Say that ``node`` stopped."""
        self._redis.zrem(f"{self.prefix}:members", node)


def transport(app: Celery) -> CeleryTransport:
    """The transport a cluster coordinator uses to reach ``app``'s nodes."""
    return CeleryTransport(app)


def connect(address: str) -> CeleryTransport:
    """The transport of the app ``address`` names, as ``celery -A`` takes it (``tasks``,
    ``proj.celery:app``): ``hotswap fleet --celery tasks status``."""
    import importlib
    import sys

    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # as `celery -A` finds the app's module
    module_name, _, attribute = address.partition(":")
    module = importlib.import_module(module_name)
    names = [attribute] if attribute else ["app", "celery"]
    for name in names:
        found = getattr(module, name, None)
        if isinstance(found, Celery):
            return CeleryTransport(found)
    found = next((v for v in vars(module).values() if isinstance(v, Celery)), None)
    if found is None:
        raise LookupError(f"no Celery app in {address}")
    return CeleryTransport(found)


def cluster(app: Celery, *, timeout: float | None = None) -> Any:
    """A cluster coordinator for ``app``'s nodes (:class:`hotswap._fleet.cluster.Cluster`):
    ``propose({module: bytes})``, ``status()``, ``diff()``, ``rollback(to=epoch)``."""
    return _seam.Cluster(CeleryTransport(app), timeout=timeout)


def install(app: Celery) -> None:
    """Make ``app``'s worker nodes nodes of a hotswap cluster (idempotent; harmless in the
    processes that only send tasks). See the module's docstring."""
    if id(app) in _installed:
        return
    _installed.add(id(app))
    store = CeleryTransport(app)

    def on_init(sender: Any = None, instance: Any = None, **_: Any) -> None:
        # The MainProcess, before the pool forks and before any task is consumed.
        if getattr(instance, "app", app) is not app:
            return
        _seam.coordinate()
        _take(store, _seam.cluster_node())

    def on_ready(sender: Any = None, **_: Any) -> None:
        if getattr(sender, "app", app) is not app:
            return
        # Off the consumer's thread, which must be free to answer the probe.
        threading.Thread(
            target=_enter,
            args=(app, store, sender.hostname),
            name="hotswap-celery-enter",
            daemon=True,
        ).start()

    def on_shutdown(sender: Any = None, **_: Any) -> None:
        hostname = getattr(sender, "hostname", None)
        if hostname:
            try:
                store.leave(hostname)
            except Exception:  # the backend may be gone first
                logger.debug("hotswap: could not deregister %s", hostname, exc_info=True)

    signals.celeryd_init.connect(on_init, weak=False)
    signals.worker_ready.connect(on_ready, weak=False)
    signals.worker_shutdown.connect(on_shutdown, weak=False)
    for name in COMMANDS:
        _register(name)


def _enter(app: Celery, store: CeleryTransport, hostname: str) -> None:
    """Become a member once this node hears broadcasts: Redis delivers a broadcast only to the
    nodes subscribed when it is sent, and ``worker_ready`` may come before the subscription. A
    member that cannot hear a round's prepare would make it abort."""
    deadline = time.monotonic() + _ENTER_TIMEOUT
    while time.monotonic() < deadline:
        try:
            heard = app.control.broadcast(
                "hotswap_status",
                arguments={"body": {"term": 0}},
                destination=[hostname],
                reply=True,
                timeout=1.0,
                limit=1,
            )
        except Exception:  # the broker is not reachable yet
            logger.debug("hotswap: %s could not probe itself", hostname, exc_info=True)
            heard = []
        if heard:
            break
    else:
        logger.warning(
            "hotswap: %s did not hear its own broadcast within %.0f s; it joins the cluster anyway",
            hostname,
            _ENTER_TIMEOUT,
        )
    store.enter(hostname)
    _take(store, _seam.cluster_node())  # a commit made between init and now
    _beat(store, hostname)


def _beat(store: CeleryTransport, hostname: str) -> None:
    """Say this node is up every :data:`_BEAT` seconds until it stops (its shutdown says it
    left; a kill stops the beats, and the lease runs out)."""
    stopped = threading.Event()
    signals.worker_shutdown.connect(lambda **_: stopped.set(), weak=False)
    while not stopped.wait(_BEAT):
        try:
            store.enter(hostname)
        except Exception:  # the broker restarts: the next beat may reach it
            logger.debug("hotswap: %s could not renew its membership", hostname, exc_info=True)


def _take(store: CeleryTransport, node: Any) -> None:
    record = _seam.ClusterRecord.loads(store.load())
    if record.epoch == _seam.epoch() and not record.canary:
        return
    answer = node.sync(record.sync_body(record.term))
    logger.info(
        "hotswap: node pid %d took the cluster's release %s%s",
        os.getpid(),
        _seam.short(record.epoch),
        "" if answer["ok"] else f" with errors: {answer.get('error')}",
    )


def _register(name: str) -> None:
    def command(state: Any, body: dict[str, Any] | None = None, **_: Any) -> dict[str, Any]:
        node = _seam.cluster_node()
        return getattr(node, name)(body or {})  # type: ignore[no-any-return]

    command.__name__ = f"hotswap_{name}"
    command.__doc__ = f"hotswap: the cluster's {name} phase on this node."
    control_command(name=f"hotswap_{name}", args=[("body", dict)], signature="<body>")(command)


_seam.register_engine("celery", connect)
