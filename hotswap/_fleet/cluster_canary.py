"""A cluster's canary on one node: the candidate of one module, at one weight, in this process
and its children (its local fleet, if any).

The cluster coordinator starts it on every node (``canary``), keeps it in the stored record so a
node that joins while it runs starts it as it joins (``sync``), and ends it on every node
(``end_canary``) before it promotes the candidate as a release or drops it. Each node routes its
own calls by the same weight and key (:func:`hotswap._release.routing.bucket` depends on the
key and the module only, so a sticky key lands on the same version on every node); the decision
is the coordinator's. A node's candidate that passes its error bound is aborted on that node.
"""

from __future__ import annotations

import base64
import importlib
import os
import sys
from typing import Any

from hotswap._fleet.canary import Spec
from hotswap._fleet.coordinator import Coordinator
from hotswap._release import canary as _canary
from hotswap.exceptions import HotswapError

__all__ = ("end", "running", "spec_body", "start")


def spec_body(
    module: str, data: bytes, weight: float, min_calls: int, max_error_rate: float
) -> dict[str, Any]:
    """The canary as the record keeps it and the messages carry it (JSON-friendly)."""
    return {
        "module": module,
        "data": base64.b64encode(data).decode(),
        "weight": weight,
        "min_calls": min_calls,
        "max_error_rate": max_error_rate,
    }


def running(local: Coordinator | None) -> dict[str, float]:
    """The canaries that run on this node: module -> weight."""
    if local is not None:
        return {s.module: s.weight for s in local.canaries.specs()}
    return {name: run.weight for name, run in _canary.running().items()}


def start(local: Coordinator | None, body: dict[str, Any]) -> str | None:
    """Start the canary ``body`` here (importing its module if this process has not yet: a
    node that joins runs it before its first task); the error, or None."""
    name = str(body["module"])
    if name in running(local):
        return None
    data = base64.b64decode(body["data"])
    try:
        if local is not None and not local.peers():
            # A Celery node before its pool forked: the children run it once they joined
            # (the node takes the record again when it is ready).
            return None
        module = sys.modules.get(name) or importlib.import_module(name)
        if local is not None:
            path = os.path.abspath(str(getattr(module, "__file__", "") or ""))
            spec = Spec(
                name, path, data, float(body["weight"]), int(body["min_calls"]),
                float(body["max_error_rate"]), None,
            )  # fmt: skip
            local.canaries.start(spec)
        else:
            _canary.start(
                module, data, float(body["weight"]), int(body["min_calls"]),
                float(body["max_error_rate"]), None,
            )  # fmt: skip
    except (HotswapError, ImportError) as error:
        return f"pid {os.getpid()}: {type(error).__name__}: {error}"
    return None


def end(local: Coordinator | None, name: str, reason: str) -> str | None:
    """End this node's canary of ``name`` (its candidate is dropped); the error, or None."""
    if local is not None and name in running(local):
        result = local.canaries.decide(name, "abort", reason)
        return None if result.ok else f"pid {os.getpid()}: {result.error}"
    found = _canary.running().get(name)
    if found is not None:
        result = found.abort()
        if not result.ok:
            return f"pid {os.getpid()}: {result.error}"
    return None
