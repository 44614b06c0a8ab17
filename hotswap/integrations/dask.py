"""Dask: every worker of a ``distributed`` cluster runs the cluster's committed release.

From the client, once::

    from hotswap.integrations import dask as hotswap_dask
    cluster = hotswap_dask.cluster(client)
    cluster.propose({"logic": new_bytes})   # prepare on every worker, then commit or abort

Each phase reaches every worker with :meth:`distributed.Client.run` (one answer per worker);
each worker is a node of the cluster (``hotswap._fleet.node``). The committed state is kept in
the scheduler's metadata and carried by a worker plugin named ``hotswap``, registered again
after each commit, so a worker that joins later (``cluster.scale``) takes the committed release
in its ``setup``, before it runs a task. ``Client.upload_file`` is never used: it reloads with no
check, and on a local cluster it reloads the client's own module too.

Task keys: ``client.submit(f, x)`` names its task after ``tokenize(f, x)``, and a function
defined in a module tokenizes by its name, so after a release the same key would return the
result the old code computed. :func:`cluster` makes the token of every function also depend on
the committed bytes of its module (and on the code it runs in this process), so a release gives
new keys and no stale result is reused.

Example:
    >>> from hotswap.integrations import dask as hotswap_dask
    >>> hotswap_dask.PLUGIN
    'hotswap'
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import marshal
import threading
import types
from typing import Any

from dask.base import normalize_token
from distributed import Client, WorkerPlugin

from hotswap import _seam

__all__ = ("PLUGIN", "DaskTransport", "ReleasePlugin", "cluster", "connect", "transport")

logger = logging.getLogger("hotswap.integrations.dask")

PLUGIN = "hotswap"
"""The name of the worker plugin that carries the committed release to new workers."""

_KEY = ("hotswap", "record")

# module name -> sha256 of its committed bytes, as the client last stored them.
_committed: dict[str, str] = {}
_tokenizer_lock = threading.Lock()
_tokenizer_installed = False


class ReleasePlugin(WorkerPlugin):
    """Takes the committed release on each worker when it starts (and when registered again).

    Args:
        record: the cluster's record (JSON text) at registration.
    """

    name = PLUGIN

    def __init__(self, record: str) -> None:
        self.record = record

    def setup(self, worker: Any) -> None:
        """On the worker, before it runs tasks: take the committed state if not on it."""
        record = _seam.ClusterRecord.loads(self.record)
        if record.epoch == _seam.epoch() and not record.canary:
            return
        answer = _seam.cluster_node().sync(record.sync_body(record.term))
        if not answer["ok"]:
            logger.warning(
                "hotswap: worker %s could not take the release: %s",
                worker.address,
                answer.get("error"),
            )


def _phase(command: str, body: dict[str, Any]) -> dict[str, Any]:
    """On a worker: one phase of a round (``Client.run`` calls it)."""
    return getattr(_seam.cluster_node(), command)(body)  # type: ignore[no-any-return]


class DaskTransport:
    """A cluster's transport over a ``distributed`` client.

    Args:
        client: a connected client.
    """

    def __init__(self, client: Client) -> None:
        self.client = client

    def members(self) -> list[str]:
        """The workers' addresses."""
        return sorted(self.client.scheduler_info(n_workers=-1)["workers"])

    def call(
        self, command: str, body: dict[str, Any], nodes: list[str], timeout: float
    ) -> dict[str, dict[str, Any] | None]:
        """Run the phase on each of ``nodes``; a worker that raised or left answers no, one
        that did not answer within ``timeout`` (a partition: the scheduler's connection to it
        stays open and silent) answers None. One ``Client.run`` per worker, so a silent worker
        does not hold back the others' answers."""
        if not nodes:
            return {}

        async def one(address: str) -> dict[str, Any] | None:
            # Client._run is the coroutine behind Client.run: the only way to bound a run.
            run = self.client._run(_phase, command, body, workers=[address], on_error="return")
            try:
                got = await asyncio.wait_for(run, timeout)
            except OSError as error:  # TimeoutError included: no answer in time
                why = type(error).__name__
                logger.warning("hotswap: %s did not reach %s: %s", command, address, why)
                return None
            answer = got.get(address)
            if isinstance(answer, BaseException):
                return {"ok": False, "error": f"{type(answer).__name__}: {answer}"}
            return answer  # type: ignore[no-any-return]

        async def every() -> dict[str, dict[str, Any] | None]:
            found = await asyncio.gather(*(one(a) for a in nodes))
            return dict(zip(nodes, found, strict=True))

        return self.client.sync(every)  # type: ignore[no-any-return, no-untyped-call]

    def load(self) -> str | None:
        """The record, from the scheduler's metadata."""
        text = self.client.get_metadata(list(_KEY), default=None)  # type: ignore[no-untyped-call]
        return None if text is None else str(text)

    def save(self, text: str) -> None:
        """Store the record and hand it to the plugin new workers run."""
        self.client.set_metadata(list(_KEY), text)  # type: ignore[no-untyped-call]
        _remember(text)
        self.client.register_plugin(ReleasePlugin(text), name=PLUGIN)


def transport(client: Client) -> DaskTransport:
    """The transport a cluster coordinator uses to reach ``client``'s workers."""
    return DaskTransport(client)


def connect(address: str) -> DaskTransport:
    """The transport of the scheduler at ``address`` (``tcp://10.0.0.5:8786``): ``hotswap
    fleet --dask tcp://10.0.0.5:8786 status``."""
    install_tokenizer()
    client = Client(address, set_as_default=False)  # type: ignore[no-untyped-call]
    return DaskTransport(client)


def cluster(client: Client, *, timeout: float | None = None) -> Any:
    """A cluster coordinator for ``client``'s workers (:class:`hotswap._fleet.cluster.Cluster`)
    and task keys that follow the committed release in this process."""
    install_tokenizer()
    found = _seam.Cluster(DaskTransport(client), timeout=timeout)
    _remember(found.transport.load())
    return found


def _remember(text: str | None) -> None:
    record = _seam.ClusterRecord.loads(text)
    hashes = {name: hashlib.sha256(data).hexdigest() for name, data in record.overlay.items()}
    with _tokenizer_lock:
        _committed.clear()
        _committed.update(hashes)


def install_tokenizer() -> None:
    """Make a function's dask token depend on its module's committed bytes and on the code it
    runs here (idempotent)."""
    global _tokenizer_installed
    with _tokenizer_lock:
        if _tokenizer_installed:
            return
        _tokenizer_installed = True
    default = normalize_token.dispatch(object)  # type: ignore[no-untyped-call]

    def normalize_function(func: types.FunctionType) -> Any:
        code = hashlib.sha256(marshal.dumps(func.__code__)).hexdigest()
        return default(func), "hotswap", _committed.get(func.__module__, ""), code

    normalize_token.register(types.FunctionType)(normalize_function)  # type: ignore[no-untyped-call]


_seam.register_engine("dask", connect)
