"""Trace spans around the steps of a reload, when a tracing backend is there; else nothing.

The transaction opens ``hotswap.reload`` with the children ``hotswap.plan``,
``hotswap.execute`` and ``hotswap.commit``. The core names no tracing library: a backend is
installed explicitly (:func:`install`, as ``hotswap.integrations.otel.instrument()`` does) or,
when the program has imported OpenTelemetry, the OpenTelemetry backend is imported by name on
first use, and it declines (returns no tracer) while no tracer provider is configured. So a
program that traces nothing pays one dictionary lookup per span.
"""

from __future__ import annotations

import importlib
import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from hotswap._ops.events import ReloadResult

__all__ = ("Backend", "Span", "install", "span", "uninstall")

logger = logging.getLogger(__name__)

Attribute = str | int | float | bool


class Span(Protocol):
    """What the transaction does with an open span."""

    def set(self, **attributes: Attribute) -> None:
        """Add attributes."""

    def result(self, result: ReloadResult) -> None:
        """Describe the outcome of the reload the span covers (version, outcome...)."""


class Backend(Protocol):
    """Opens spans; the OpenTelemetry integration is one."""

    def span(self, name: str, attributes: dict[str, Attribute]) -> AbstractContextManager[Span]:
        """A context manager: the span is current (the parent of spans opened inside it) and
        ends when the block does; an exception escaping the block is recorded on it."""
        ...

    def enabled(self) -> bool:
        """Whether spans would be recorded now (False while no tracer provider is set)."""
        ...


class _NoSpan:
    def set(self, **attributes: Attribute) -> None:
        pass

    def result(self, result: ReloadResult) -> None:
        pass


_NO_SPAN = _NoSpan()
_installed: Backend | None = None
# A backend used without installation while its trigger module is imported: name -> factory.
_AUTOMATIC = {"opentelemetry.trace": "hotswap.integrations.otel:automatic_backend"}
_automatic: dict[str, Backend | None] = {}


def install(backend: Backend) -> None:
    """Use ``backend`` for every span from now on (instead of the automatic choice)."""
    global _installed
    _installed = backend


def uninstall(backend: Backend | None = None) -> None:
    """Stop using the installed backend (only ``backend``, when given)."""
    global _installed
    if backend is None or _installed is backend:
        _installed = None


def _backend() -> Backend | None:
    if _installed is not None:
        return _installed if _installed.enabled() else None
    for trigger, factory in _AUTOMATIC.items():
        if trigger not in sys.modules:
            continue
        if trigger not in _automatic:
            _automatic[trigger] = _load(trigger, factory)
        found = _automatic[trigger]
        if found is not None and found.enabled():
            return found
    return None


def _load(trigger: str, factory: str) -> Backend | None:
    module_name, _, attribute = factory.partition(":")
    try:
        make: Callable[[], Backend] = getattr(importlib.import_module(module_name), attribute)
        return make()
    except Exception:
        # Tracing must never stop a reload: a broken tracing install costs the traces only.
        logger.exception("hotswap: tracing through %s is unavailable", trigger)
        return None


@contextmanager
def span(name: str, **attributes: Attribute) -> Iterator[Span]:
    """A span named ``name`` around the block, or a no-op when nothing traces."""
    backend = _backend()
    if backend is None:
        yield _NO_SPAN
        return
    with backend.span(name, attributes) as opened:
        yield opened
