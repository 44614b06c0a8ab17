"""The internal seam: everything the integrations and the pytest plugin may use beyond the
public API, named in one place.

``hotswap.integrations.*`` and ``hotswap.pytest_plugin`` import only :mod:`hotswap`,
:mod:`hotswap.exceptions`, this module and their own package (``tests/test_architecture.py``
keeps it so). What is here is internal: it may change between releases together with the
integrations, never under them. Each name says which stage it comes from:

- framework adapters (engine): :func:`register_adapter`, :class:`ModulePlan`, :class:`ModuleUpdate`;
- the ASGI/WSGI middleware (release, engine): ``routing`` (a request's canary unit), :class:`Pin`;
- the IPython extension: :class:`Pending` (watch), :func:`reload_many` (engine), ``POLICIES``,
  and ``api``, the public functions (the extension is imported by ``hotswap``'s own
  ``load_ipython_extension``, so it must not import ``hotswap`` back);
- exporters (ops): the event types, :func:`outcome`, :func:`describe`, :func:`location`,
  ``tracing`` (the span backend the OpenTelemetry exporter installs);
- the pytest plugin (watch): :class:`Reloader`, the watcher it feeds from;
- the fleet (api, fleet): :func:`coordinate` and :func:`end_fleet` (gunicorn's hooks),
  :func:`epoch` (the middleware's ``x-hotswap-epoch`` header), :func:`short`;
- clusters (fleet): :func:`cluster_node` (this process as a node of a Celery, Dask or Ray cluster),
  :class:`Cluster` and :class:`ClusterRecord` (a cluster coordinator and its stored state),
  :func:`register_engine` (how ``hotswap fleet --ENGINE ADDRESS`` reaches an engine).
"""

from typing import TYPE_CHECKING

from hotswap import _api as api
from hotswap import _fleet
from hotswap._api import coordinate, end_fleet
from hotswap._config.settings import POLICIES
from hotswap._engine.adapters import ModulePlan, ModuleUpdate, register_adapter
from hotswap._engine.pin import Pin
from hotswap._engine.transaction import reload_many
from hotswap._fleet import ledger, short
from hotswap._fleet.cluster import Cluster, register_engine
from hotswap._fleet.cluster import Record as ClusterRecord
from hotswap._fleet.node import Node, node
from hotswap._ops import tracing
from hotswap._ops.event_types import CanaryCall, CanaryDecision, RolledBack, WatcherState
from hotswap._ops.events import Event, ReloadResult, describe, location, outcome
from hotswap._release import routing
from hotswap._watch.pending import Pending

if TYPE_CHECKING:
    from hotswap._watch.watcher import Reloader

__all__ = (
    "POLICIES",
    "CanaryCall",
    "CanaryDecision",
    "Cluster",
    "ClusterRecord",
    "Event",
    "ModulePlan",
    "ModuleUpdate",
    "Pending",
    "Pin",
    "ReloadResult",
    "Reloader",
    "RolledBack",
    "WatcherState",
    "api",
    "cluster_node",
    "coordinate",
    "describe",
    "end_fleet",
    "epoch",
    "location",
    "outcome",
    "register_adapter",
    "register_engine",
    "reload_many",
    "routing",
    "short",
    "tracing",
)


def epoch() -> str:
    """This process's epoch now (see :attr:`hotswap.Status.epoch`)."""
    return ledger.epoch


def cluster_node() -> Node:
    """This process as a node of a cluster; its forked children (a Celery pool) are its
    fleet when it coordinates one."""
    return node(_fleet.coordinator())


def __getattr__(name: str) -> object:
    # The watcher imports watchdog, which `import hotswap` (and so this seam, which the
    # integrations package imports) must not: only the pytest plugin's feed asks for it.
    if name == "Reloader":
        from hotswap._watch.watcher import Reloader

        return Reloader
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
