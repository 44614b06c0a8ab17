"""OpenTelemetry spans through the SDK's in-memory exporter (issue 16, point 3)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
from opentelemetry.trace import StatusCode

from hotswap.integrations import otel

SHOP = "RATE = 2\n\ndef price(amount):\n    return amount * RATE\n"


def by_name(spans):
    return {span.name: span for span in spans.get_finished_spans()}


def test_otel_reload_span_with_plan_execute_commit_children(project, spans):
    project.load("shop", SHOP)
    result = project.reload("shop", SHOP.replace("RATE = 2", "RATE = 3") + "\nEXTRA = 1\n")
    assert result.ok
    found = by_name(spans)
    assert set(found) == {"hotswap.reload", "hotswap.plan", "hotswap.execute", "hotswap.commit"}
    root = found["hotswap.reload"]
    assert root.parent is None
    for child in ("hotswap.plan", "hotswap.execute", "hotswap.commit"):
        assert found[child].parent.span_id == root.context.span_id, child
        assert found[child].attributes["hotswap.module"] == "shop"
    plan, execute, commit = (
        found[n] for n in ("hotswap.plan", "hotswap.execute", "hotswap.commit")
    )
    assert plan.end_time <= execute.start_time
    assert execute.end_time <= commit.start_time
    attributes = dict(root.attributes)
    assert attributes == {
        "hotswap.module": "shop",
        "hotswap.version": 2,
        "hotswap.outcome": "applied",
        "hotswap.kind": "reload",
        "hotswap.changes": len(result.changes.added) + len(result.changes.changed),
        "hotswap.dependents": (),
    }
    assert attributes["hotswap.changes"] >= 1
    assert root.status.status_code is StatusCode.UNSET


def test_otel_new_code_runs_inside_the_execute_span(project, spans):
    shop = project.load("shop", SHOP)
    traced = SHOP + "\nfrom opentelemetry import trace\nCURRENT = trace.get_current_span()\n"
    assert project.reload("shop", traced).ok
    assert shop.CURRENT.name == "hotswap.execute"


def test_otel_failed_reload_is_an_error_span(project, spans):
    project.load("shop", SHOP)
    result = project.reload("shop", SHOP + "\nraise RuntimeError('boom')\n")
    assert result.rolled_back
    found = by_name(spans)
    root = found["hotswap.reload"]
    assert root.attributes["hotswap.outcome"] == "rolled_back"
    assert root.attributes["hotswap.version"] == 1
    assert root.attributes["error.type"] == "ExecutionError"
    assert root.status.status_code is StatusCode.ERROR
    assert "RuntimeError: boom" in root.status.description
    execute = found["hotswap.execute"]
    assert execute.status.status_code is StatusCode.ERROR
    assert [e.name for e in execute.events] == ["exception"]
    assert "hotswap.commit" not in found


def test_otel_rejected_reload_never_executes(project, spans):
    project.load("shop", SHOP)
    result = project.reload("shop", SHOP + "\ndef broken(:\n")
    assert not result.ok
    found = by_name(spans)
    assert set(found) == {"hotswap.reload", "hotswap.plan"}
    assert found["hotswap.reload"].attributes["hotswap.outcome"] == "rejected"
    assert found["hotswap.plan"].status.status_code is StatusCode.ERROR


def test_otel_uninstrument_stops_the_spans(project, spans):
    project.load("shop", SHOP)
    otel.uninstrument()
    assert project.reload("shop", SHOP.replace("RATE = 2", "RATE = 3")).ok
    assert spans.get_finished_spans() == ()


def test_otel_nothing_without_a_provider_then_spans_once_one_is_set(tmp_path):
    # A fresh interpreter: the global tracer provider can be set once per process.
    (tmp_path / "shop.py").write_text("SEEN = None\n")
    code = textwrap.dedent(
        """
        import pathlib
        from opentelemetry import trace
        import hotswap
        import shop

        def edit(n):
            pathlib.Path("shop.py").write_text(
                "from opentelemetry import trace\\n"
                f"N = {n}\\n"
                f"SEEN = [trace.get_current_span(), {n}][0]\\n"  # runs at every edit
            )
            assert hotswap.reload("shop").ok

        edit(1)  # OpenTelemetry imported, no provider configured: no span at all
        print("unconfigured:", shop.SEEN is trace.INVALID_SPAN)

        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
            InMemorySpanExporter,
        )
        exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        trace.set_tracer_provider(provider)
        edit(2)  # nothing to call: the global provider is used once it is set
        print("configured:", shop.SEEN.name)
        print("spans:", sorted(span.name for span in exporter.get_finished_spans()))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "unconfigured: True",
        "configured: hotswap.execute",
        "spans: ['hotswap.commit', 'hotswap.execute', 'hotswap.plan', 'hotswap.reload']",
    ]


def test_otel_instrument_without_a_provider_opens_no_span(project):
    # instrument() with no provider follows the global one, while none is set in this process.
    from opentelemetry import trace

    if not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        pytest.skip("another test set a global tracer provider in this process")
    shop = project.load("shop", SHOP)
    otel.instrument()
    try:
        traced = SHOP + "\nfrom opentelemetry import trace\nCURRENT = trace.get_current_span()\n"
        assert project.reload("shop", traced).ok
    finally:
        otel.uninstrument()
    assert shop.CURRENT is trace.INVALID_SPAN
