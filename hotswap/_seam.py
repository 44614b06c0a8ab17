"""The internal seam: everything the integrations and the pytest plugin may use beyond the
public API, named in one place.

``hotswap.integrations.*`` and ``hotswap.pytest_plugin`` import only :mod:`hotswap`,
:mod:`hotswap.exceptions`, this module and their own package (``tests/test_architecture.py``
keeps it so). What is here is internal: it may change between releases together with the
integrations, never under them. Each name says which stage it comes from:

- framework adapters (engine): :func:`register_adapter`, :class:`ModulePlan`, :class:`ModuleUpdate`;
- the ASGI/WSGI middleware (release, engine): ``routing`` (a request's canary unit), :class:`Pin`;
- the IPython extension: :class:`Pending` (watch), :func:`reload_many` (engine), ``POLICIES``;
- exporters (ops): the event types, :func:`outcome`, :func:`describe`, :func:`location`,
  ``tracing`` (the span backend the OpenTelemetry exporter installs);
- the pytest plugin (watch): :class:`Reloader`, the watcher it feeds from;
- the fleet (api, fleet): :func:`coordinate` and :func:`end_fleet` (gunicorn's hooks),
  :func:`epoch` (the middleware's ``x-hotswap-epoch`` header), :func:`short`.
"""

from hotswap import _routing as routing
from hotswap._api import coordinate, end_fleet
from hotswap._fleet import ledger, short
from hotswap import _tracing as tracing
from hotswap._adapters import ModulePlan, ModuleUpdate, register_adapter
from hotswap._config import POLICIES
from hotswap._event_types import CanaryCall, CanaryDecision, RolledBack, WatcherState
from hotswap._events import Event, ReloadResult, describe, location, outcome
from hotswap._pending import Pending
from hotswap._pin import Pin
from hotswap._transaction import reload_many
from hotswap._watcher import Reloader

__all__ = (
    "POLICIES",
    "CanaryCall",
    "CanaryDecision",
    "Event",
    "ModulePlan",
    "ModuleUpdate",
    "Pending",
    "Pin",
    "ReloadResult",
    "Reloader",
    "RolledBack",
    "WatcherState",
    "coordinate",
    "describe",
    "end_fleet",
    "epoch",
    "location",
    "outcome",
    "register_adapter",
    "reload_many",
    "routing",
    "short",
    "tracing",
)


def epoch() -> str:
    """This process's epoch now (see :attr:`hotswap.Status.epoch`)."""
    return ledger.epoch
