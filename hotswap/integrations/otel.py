"""OpenTelemetry traces of reloads (the ``hotswap[otel]`` extra: ``opentelemetry-api``).

Every reload is a ``hotswap.reload`` span with the children ``hotswap.plan``,
``hotswap.execute`` and ``hotswap.commit``; the reload span carries ``hotswap.module``,
``hotswap.version``, ``hotswap.outcome``, ``hotswap.kind``, ``hotswap.changes`` (how many names
changed), ``hotswap.dependents`` (the modules that ran again) and, for a failure, an error
status. The module's new code runs inside ``hotswap.execute``, so spans it opens are children.

Nothing to call when the program configures a tracer provider globally (the usual
``trace.set_tracer_provider(...)``): hotswap notices that OpenTelemetry is imported and traces
through the global provider; while no provider is configured it opens no span at all.
:func:`instrument` picks a provider explicitly.

Examples:
    >>> from opentelemetry.sdk.trace import TracerProvider
    >>> from hotswap.integrations import otel
    >>> otel.instrument(TracerProvider())
    >>> otel.uninstrument()
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager

try:
    from opentelemetry import trace
except ImportError as error:
    message = (
        "hotswap.integrations.otel needs opentelemetry-api, hotswap's 'otel' extra "
        "(pip install -e '.[otel]' in a checkout)"
    )
    raise ImportError(message) from error

from hotswap._seam import ReloadResult, outcome
from hotswap._seam import tracing as _tracing

__all__ = ("instrument", "uninstrument")

_NAME = "hotswap"


class _Span:
    """A hotswap span over an OpenTelemetry span."""

    def __init__(self, span: trace.Span) -> None:
        self._span = span

    def set(self, **attributes: _tracing.Attribute) -> None:
        for key, value in attributes.items():
            self._span.set_attribute(f"hotswap.{key}", value)

    def result(self, result: ReloadResult) -> None:
        changes = result.changes
        count = sum(map(len, (changes.added, changes.changed, changes.removed, changes.replaced)))
        self._span.set_attributes(
            {
                "hotswap.module": result.module,
                "hotswap.version": result.version,
                "hotswap.outcome": outcome(result),
                "hotswap.kind": result.kind,
                "hotswap.changes": count,
                "hotswap.dependents": [d.module for d in result.dependents],
            }
        )
        if not result.ok:
            # reload() returns failures instead of raising, so the span learns of them here.
            error = result.error
            if error is not None:
                self._span.set_attribute("error.type", type(error).__qualname__)
            self._span.set_status(trace.Status(trace.StatusCode.ERROR, str(error)))


class _Backend:
    """Spans through one tracer provider, or through the global one when none is given."""

    def __init__(self, provider: trace.TracerProvider | None = None) -> None:
        self._provider = provider
        self._tracer: trace.Tracer | None = None
        self._tracer_of: object = None  # the provider ``_tracer`` came from

    def enabled(self) -> bool:
        if self._provider is not None:
            return True
        # The API's stand-ins until the program sets a provider: their spans record nothing.
        placeholders = (trace.ProxyTracerProvider, trace.NoOpTracerProvider)
        return not isinstance(trace.get_tracer_provider(), placeholders)

    def _tracer_now(self) -> trace.Tracer:
        provider = self._provider or trace.get_tracer_provider()
        if self._tracer is None or self._tracer_of is not provider:
            from hotswap import __version__

            self._tracer = trace.get_tracer(_NAME, __version__, tracer_provider=provider)
            self._tracer_of = provider
        return self._tracer

    def span(
        self, name: str, attributes: Mapping[str, _tracing.Attribute]
    ) -> AbstractContextManager[_tracing.Span]:
        return self._open(name, attributes)

    @contextmanager
    def _open(
        self, name: str, attributes: Mapping[str, _tracing.Attribute]
    ) -> Iterator[_tracing.Span]:
        named = {f"hotswap.{key}": value for key, value in attributes.items()}
        with self._tracer_now().start_as_current_span(name, attributes=named) as span:
            yield _Span(span)


def automatic_backend() -> _Backend:
    """The backend hotswap uses, unasked, once the program imported OpenTelemetry: the global
    tracer provider's, declining while none is configured."""
    return _Backend()


_instrumented: _Backend | None = None


def instrument(tracer_provider: trace.TracerProvider | None = None) -> None:
    """Trace reloads through ``tracer_provider`` (default: the global provider, whenever one
    is configured). Calling it again replaces the provider."""
    global _instrumented
    backend = _Backend(tracer_provider)
    _tracing.install(backend)
    _instrumented = backend


def uninstrument() -> None:
    """Undo :func:`instrument`: back to the automatic choice (the global provider, if any)."""
    global _instrumented
    if _instrumented is not None:
        _tracing.uninstall(_instrumented)
        _instrumented = None
