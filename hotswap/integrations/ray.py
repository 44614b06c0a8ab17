"""Ray: every worker process of a Ray cluster (task workers and actors) runs the committed release.

In the driver, once::

    import ray
    from hotswap.integrations import ray as hotswap_ray

    ray.init(runtime_env=hotswap_ray.runtime_env())   # worker_process_setup_hook
    cluster = hotswap_ray.cluster()
    cluster.propose({"logic": new_bytes})   # prepare in every worker process, then commit or abort

Every worker process runs :func:`setup` (Ray's ``worker_process_setup_hook``) before its first
task or actor constructor: it takes the committed release from the store, so a new actor is
built by the committed code, then answers the phases from a thread. An actor keeps its state: its
modules are updated in place, as in any hotswap reload.

The messages and the store are Ray's own: the key-value store of the cluster's control service
(GCS), in the namespace ``hotswap``. The coordinator writes a phase under ``msg/<id>`` naming the
workers it is for; each worker answers under ``ans/<id>/<worker>``; each worker says it is up
under ``node/<worker>`` every second (a worker silent for :data:`LEASE` seconds is no longer a
member); the committed record is ``record``. Not a coordinator actor: in Ray 2.60 a call to an
actor from a worker process before that process ran its first task crashes it (its runtime
environment is not set yet), and a newly started worker must answer from the start.

Example:
    >>> from hotswap.integrations import ray as hotswap_ray
    >>> hotswap_ray.HOOK
    'hotswap.integrations.ray.setup'
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import socket
import threading
import time
import uuid
from typing import Any

import ray
from ray.experimental import internal_kv

from hotswap import _seam

__all__ = (
    "HOOK",
    "LEASE",
    "NAMESPACE",
    "RayTransport",
    "cluster",
    "connect",
    "runtime_env",
    "setup",
)

logger = logging.getLogger("hotswap.integrations.ray")

HOOK = "hotswap.integrations.ray.setup"
"""The ``worker_process_setup_hook`` that makes a worker process a node."""

NAMESPACE = "hotswap"
"""The key-value store's namespace for the messages, the members and the record."""

LEASE = 10.0
"""Seconds after its last word that a worker process stops counting as a member."""

_POLL = 0.05  # seconds between a worker's looks for a message
_BEAT = 1.0  # seconds between a worker's "I am up"
# Seconds a worker keeps trying to reach the key-value store before it stops answering: a
# loaded machine's control service can miss a call, and one miss must not silence a node.
_GIVE_UP = 30.0

_started = False
_start_lock = threading.Lock()


def _get(key: str) -> bytes | None:
    data = internal_kv._internal_kv_get(key, namespace=NAMESPACE)
    return None if data is None else bytes(data)


def _put(key: str, value: bytes) -> None:
    internal_kv._internal_kv_put(key, value, overwrite=True, namespace=NAMESPACE)


def _delete(key: str, *, prefix: bool = False) -> None:
    internal_kv._internal_kv_del(key, del_by_prefix=prefix, namespace=NAMESPACE)


def _keys(prefix: str) -> list[str]:
    keys = internal_kv._internal_kv_list(prefix, namespace=NAMESPACE)
    return [k.decode() if isinstance(k, bytes) else str(k) for k in keys]


def runtime_env(env: dict[str, Any] | None = None) -> dict[str, Any]:
    """``env`` (a Ray runtime environment) with hotswap's ``worker_process_setup_hook``."""
    return {**(env or {}), "worker_process_setup_hook": HOOK}


def name() -> str:
    """This worker process's name as a node: ``host:pid``."""
    return f"{socket.gethostname()}:{os.getpid()}"


# --- in each worker process --------------------------------------------------------------------


def setup() -> None:
    """Ray's ``worker_process_setup_hook``: take the committed release, then answer the phases
    (idempotent). Runs in the worker before its first task or actor constructor."""
    global _started
    with _start_lock:
        if _started:
            return
        _started = True
    node = _seam.cluster_node()
    me = name()
    _beat(me)
    _take(node)
    thread = threading.Thread(target=_serve, args=(me,), name="hotswap-ray", daemon=True)
    thread.start()
    atexit.register(_leave, me)


def _beat(me: str) -> None:
    _put(f"node/{me}", json.dumps({"pid": os.getpid(), "time": time.time()}).encode())


def _leave(me: str) -> None:
    try:
        _delete(f"node/{me}")
    except Exception:  # the cluster may be gone first
        logger.debug("hotswap: could not deregister %s", me, exc_info=True)


def _take(node: Any) -> None:
    record = _seam.ClusterRecord.loads(_text(_get("record")))
    if record.epoch == _seam.epoch() and not record.canary:
        return
    answer = node.sync(record.sync_body(record.term))
    logger.info(
        "hotswap: worker pid %d took the cluster's release %s%s",
        os.getpid(),
        _seam.short(record.epoch),
        "" if answer["ok"] else f" with errors: {answer.get('error')}",
    )


def _serve(me: str) -> None:
    """Answer every message meant for this process, until the cluster is gone."""
    done: set[str] = set()
    last_beat = time.monotonic()
    failing_since: float | None = None
    while True:
        try:
            if time.monotonic() - last_beat >= _BEAT:
                _beat(me)
                last_beat = time.monotonic()
            keys = _keys("msg/")
            done &= set(keys)
            for key in keys:
                if key in done:
                    continue
                done.add(key)
                try:
                    _answer(me, key)
                except Exception:
                    done.discard(key)  # looked at again: a phase taken twice answers the same
                    raise
            failing_since = None
        except Exception:  # a missed call, or the cluster stopped (ray.shutdown)
            now = time.monotonic()
            if failing_since is None:
                failing_since = now
                logger.debug("hotswap: worker %s could not reach the store", me, exc_info=True)
            elif now - failing_since >= _GIVE_UP:
                logger.debug("hotswap: worker %s stops answering", me, exc_info=True)
                return
        time.sleep(_POLL)


def _answer(me: str, key: str) -> None:
    text = _get(key)
    if text is None:
        return
    message = json.loads(text)
    if me not in message["nodes"]:
        return
    try:
        answer = getattr(_seam.cluster_node(), message["command"])(message["body"])
    except Exception as error:  # a phase's own failure is its answer
        logger.exception("hotswap: %s failed in pid %d", message["command"], os.getpid())
        answer = {"ok": False, "error": f"pid {os.getpid()}: {type(error).__name__}: {error}"}
    _put(f"ans/{message['id']}/{me}", json.dumps(answer).encode())


# --- the coordinator's side ----------------------------------------------------------------------


def _text(data: bytes | None) -> str | None:
    return None if data is None else data.decode()


class RayTransport:
    """A cluster's transport over the connected Ray cluster's key-value store (``ray.init``
    first)."""

    def members(self) -> list[str]:
        """The worker processes that said they are up within :data:`LEASE` seconds (a key
        older than that is removed: its process is gone)."""
        now = time.time()
        alive = []
        for key in _keys("node/"):
            data = _get(key)
            seen = 0.0 if data is None else float(json.loads(data)["time"])
            if now - seen <= LEASE:
                alive.append(key.removeprefix("node/"))
            else:
                _delete(key)
        return sorted(alive)

    def call(
        self, command: str, body: dict[str, Any], nodes: list[str], timeout: float
    ) -> dict[str, dict[str, Any] | None]:
        """Write the phase for ``nodes`` and gather their answers until ``timeout``."""
        answers: dict[str, dict[str, Any] | None] = dict.fromkeys(nodes)
        if not nodes:
            return answers
        ident = uuid.uuid4().hex
        message = {"id": ident, "command": command, "body": body, "nodes": nodes}
        _put(f"msg/{ident}", json.dumps(message).encode())
        deadline = time.monotonic() + timeout
        try:
            waiting = set(nodes)
            while waiting and time.monotonic() < deadline:
                for key in _keys(f"ans/{ident}/"):
                    node = key.removeprefix(f"ans/{ident}/")
                    if node in waiting:
                        data = _get(key)
                        if data is not None:
                            answers[node] = json.loads(data)
                            waiting.discard(node)
                if waiting:
                    time.sleep(_POLL)
        finally:
            _delete(f"msg/{ident}")
            _delete(f"ans/{ident}/", prefix=True)
        return answers

    def load(self) -> str | None:
        """The cluster's record (JSON), or None."""
        return _text(_get("record"))

    def save(self, text: str) -> None:
        """Store the cluster's record (JSON)."""
        _put("record", text.encode())


def transport() -> RayTransport:
    """The transport a cluster coordinator uses to reach the connected cluster's workers."""
    return RayTransport()


def connect(address: str) -> RayTransport:
    """The transport of the Ray cluster at ``address`` (``ray://...`` is not supported: the
    store is reached from a driver), as ``hotswap fleet --ray 10.0.0.5:6379 status`` takes it."""
    if not ray.is_initialized():
        ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False)
    return RayTransport()


def cluster(*, timeout: float | None = None) -> Any:
    """A cluster coordinator for the connected Ray cluster's worker processes
    (:class:`hotswap._fleet.cluster.Cluster`): ``propose({module: bytes})``, ``status()``,
    ``diff()``, ``rollback(to=epoch)``."""
    if not ray.is_initialized():
        raise RuntimeError("hotswap.integrations.ray.cluster(): call ray.init() first")
    return _seam.Cluster(RayTransport(), timeout=timeout)


_seam.register_engine("ray", connect)
