"""Prometheus metrics of the reload lifecycle (the ``hotswap[prometheus]`` extra).

:func:`register` adds these to a ``prometheus_client`` registry (the default one unless
another is given) and keeps them current from hotswap's events:

- ``hotswap_reloads_total{module, outcome}``: reload attempts; outcome ``applied``,
  ``unchanged``, ``rejected`` or ``rolled_back``. A canary's start and abort are not reloads
  (see the canary decisions below); its promotion is one, ``applied``.
- ``hotswap_reload_duration_seconds``: histogram of the attempts that did something (no-ops
  excepted).
- ``hotswap_module_version{module}``: the live version of each module.
- ``hotswap_rollbacks_total{module, reason}``: earlier code made live again; reason
  ``requested``, ``error``, ``migration``, ``verification``, or an automatic one's.
- ``hotswap_watcher_up``: 1 while the watcher runs.
- ``hotswap_canary_decisions_total{module, decision}``: gray releases started, promoted,
  aborted; ``hotswap_canary_weight{module}``: the candidate's share while one runs;
  ``hotswap_canary_calls_total{module, arm}`` and ``hotswap_canary_errors_total{module, arm}``:
  calls routed to ``live`` and ``candidate``, and those that failed.

The labelled canary series appear once a gray release runs.

Examples:
    >>> from prometheus_client import CollectorRegistry
    >>> from hotswap.integrations import prometheus
    >>> exporter = prometheus.register(CollectorRegistry())
    >>> exporter.unregister()
"""

from __future__ import annotations

import threading

try:
    from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram
except ImportError as error:
    message = (
        "hotswap.integrations.prometheus needs prometheus_client, hotswap's 'prometheus' extra "
        "(pip install -e '.[prometheus]' in a checkout)"
    )
    raise ImportError(message) from error

import hotswap
from hotswap._seam import (
    CanaryCall,
    CanaryDecision,
    Event,
    ReloadResult,
    RolledBack,
    WatcherState,
    outcome,
)

__all__ = ("Exporter", "register")

# Reloads take from a fraction of a millisecond (one function) to seconds (a module that does
# real work at import); the default buckets start at 5 ms and would lump most reloads together.
_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)


class Exporter:
    """hotswap's metrics in one registry, kept current by an event subscription.

    Attributes:
        registry: the registry the metrics are in.
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.reloads = Counter(
            "hotswap_reloads",
            "Reload attempts, by module and outcome.",
            ["module", "outcome"],
            registry=registry,
        )
        self.duration = Histogram(
            "hotswap_reload_duration_seconds",
            "Seconds a reload attempt took (no-op attempts excepted).",
            buckets=_BUCKETS,
            registry=registry,
        )
        self.version = Gauge(
            "hotswap_module_version", "Live version of each module.", ["module"], registry=registry
        )
        self.rollbacks = Counter(
            "hotswap_rollbacks",
            "Times earlier code was made live again, by module and reason.",
            ["module", "reason"],
            registry=registry,
        )
        self.watcher_up = Gauge(
            "hotswap_watcher_up", "1 while the hotswap watcher runs.", registry=registry
        )
        self.canary_decisions = Counter(
            "hotswap_canary_decisions",
            "Gray release decisions, by module and decision.",
            ["module", "decision"],
            registry=registry,
        )
        self.canary_weight = Gauge(
            "hotswap_canary_weight",
            "Share of calls a running gray release sends to the candidate.",
            ["module"],
            registry=registry,
        )
        self.canary_calls = Counter(
            "hotswap_canary_calls",
            "Calls routed during a gray release, by module and arm.",
            ["module", "arm"],
            registry=registry,
        )
        self.canary_errors = Counter(
            "hotswap_canary_errors",
            "Failed calls during a gray release, by module and arm.",
            ["module", "arm"],
            registry=registry,
        )
        self._collectors = (
            self.reloads,
            self.duration,
            self.version,
            self.rollbacks,
            self.watcher_up,
            self.canary_decisions,
            self.canary_weight,
            self.canary_calls,
            self.canary_errors,
        )
        # Subscribe first, then read the state: an event in between is counted, never lost.
        self._unsubscribe = hotswap.subscribe(self.observe)
        status = hotswap.status()
        self.watcher_up.set(1 if status.watching else 0)
        for name, module in status.modules.items():
            self.version.labels(module=name).set(module.version)

    def observe(self, event: Event) -> None:
        """Update the metrics for one event (called by the subscription)."""
        if isinstance(event, ReloadResult):
            self.version.labels(module=event.module).set(event.version)
            if event.kind == "rollback":
                return  # counted by its RolledBack event, when it changed anything
            result = outcome(event)
            if result in ("canary", "aborted"):
                return  # not a reload: counted by hotswap_canary_decisions_total
            self.reloads.labels(module=event.module, outcome=result).inc()
            if result != "unchanged":
                self.duration.observe(event.duration)
        elif isinstance(event, RolledBack):
            self.rollbacks.labels(module=event.module, reason=event.reason).inc()
        elif isinstance(event, WatcherState):
            self.watcher_up.set(1 if event.up else 0)
        elif isinstance(event, CanaryDecision):
            self.canary_decisions.labels(module=event.module, decision=event.decision).inc()
            self.canary_weight.labels(module=event.module).set(event.weight)
        elif isinstance(event, CanaryCall):
            self.canary_calls.labels(module=event.module, arm=event.arm).inc()
            if not event.ok:
                self.canary_errors.labels(module=event.module, arm=event.arm).inc()

    def unregister(self) -> None:
        """Stop updating and remove the metrics from the registry."""
        self._unsubscribe()
        with _lock:
            if _exporters.get(self.registry) is self:
                del _exporters[self.registry]
        for collector in self._collectors:
            self.registry.unregister(collector)


_exporters: dict[CollectorRegistry, Exporter] = {}
_lock = threading.Lock()


def register(registry: CollectorRegistry | None = None) -> Exporter:
    """Export hotswap's metrics to ``registry`` (default: ``prometheus_client.REGISTRY``).

    Idempotent per registry: a second call returns the exporter already there.

    Args:
        registry: the registry to add the metrics to.

    Returns:
        The exporter; its ``unregister()`` removes the metrics again.
    """
    chosen = REGISTRY if registry is None else registry
    with _lock:
        exporter = _exporters.get(chosen)
        if exporter is None:
            exporter = Exporter(chosen)
            _exporters[chosen] = exporter
        return exporter
