"""Prometheus metrics, scraped through a real registry (issue 16, point 2)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest, start_http_server
from prometheus_client.parser import text_string_to_metric_families

import hotswap
from hotswap._ops.events import publish
from hotswap.integrations import prometheus

SHOP = "RATE = 2\n\ndef price(amount):\n    return amount * RATE\n"
DASHBOARD = Path(__file__).resolve().parent.parent / "docs" / "grafana-dashboard.json"


def scrape(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the exposition text, by name and labels."""
    text = generate_latest(registry).decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_prometheus_metrics_after_a_sequence_of_reloads(project, metrics):
    project.load("shop", SHOP)
    assert project.reload("shop", SHOP.replace("RATE = 2", "RATE = 3")).ok  # applied, v2
    assert hotswap.reload("shop").kind == "unchanged"
    assert not project.reload("shop", SHOP + "\ndef broken(:\n").ok  # rejected
    assert project.reload("shop", SHOP + "\nraise RuntimeError('boom')\n").rolled_back
    assert hotswap.rollback("shop").ok  # requested, back to v1

    samples = scrape(metrics.registry)
    shop = ("module", "shop")
    for outcome, count in (("applied", 1), ("unchanged", 1), ("rejected", 1), ("rolled_back", 1)):
        key = ("hotswap_reloads_total", (shop, ("outcome", outcome)))
        assert samples[key] == count, outcome
    assert samples[("hotswap_reload_duration_seconds_count", ())] == 3
    assert samples[("hotswap_reload_duration_seconds_sum", ())] > 0
    assert samples[("hotswap_module_version", (shop,))] == 1
    assert samples[("hotswap_rollbacks_total", (shop, ("reason", "error")))] == 1
    assert samples[("hotswap_rollbacks_total", (shop, ("reason", "requested")))] == 1
    assert samples[("hotswap_watcher_up", ())] == 0
    assert not [name for name, _ in samples if name.startswith("hotswap_canary")]


def test_prometheus_canary_counters_appear_when_a_canary_runs(project, metrics):
    publish(hotswap.CanaryDecision("shop", "start", 2, weight=0.1))
    for ok in (True, True, False):
        publish(hotswap.CanaryCall("shop", "candidate", ok=ok))
    publish(hotswap.CanaryCall("shop", "live", ok=True))
    publish(hotswap.CanaryDecision("shop", "abort", 2, weight=0.0, reason="error rate"))
    samples = scrape(metrics.registry)
    shop = ("module", "shop")
    assert samples[("hotswap_canary_decisions_total", (("decision", "start"), shop))] == 1
    assert samples[("hotswap_canary_decisions_total", (("decision", "abort"), shop))] == 1
    assert samples[("hotswap_canary_weight", (shop,))] == 0.0
    assert samples[("hotswap_canary_calls_total", (("arm", "candidate"), shop))] == 3
    assert samples[("hotswap_canary_calls_total", (("arm", "live"), shop))] == 1
    assert samples[("hotswap_canary_errors_total", (("arm", "candidate"), shop))] == 1
    assert ("hotswap_canary_errors_total", (("arm", "live"), shop)) not in samples


def test_prometheus_register_starts_from_the_current_state(project):
    project.load("shop", SHOP)
    assert project.reload("shop", SHOP.replace("RATE = 2", "RATE = 3")).ok
    exporter = prometheus.register(CollectorRegistry())
    try:
        assert scrape(exporter.registry)[("hotswap_module_version", (("module", "shop"),))] == 2
    finally:
        exporter.unregister()


def test_prometheus_register_is_idempotent_and_unregister_stops_it(project):
    registry = CollectorRegistry()
    exporter = prometheus.register(registry)
    assert prometheus.register(registry) is exporter
    project.load("shop", SHOP)
    assert project.reload("shop", SHOP.replace("RATE = 2", "RATE = 3")).ok
    exporter.unregister()
    assert not [n for n, _ in scrape(registry) if n.startswith("hotswap_")]
    assert project.reload("shop", SHOP.replace("RATE = 2", "RATE = 4")).ok
    again = prometheus.register(registry)  # a fresh exporter: the old one is gone
    try:
        assert again is not exporter
        samples = scrape(registry)
        assert ("hotswap_reloads_total", (("module", "shop"), ("outcome", "applied"))) not in (
            samples
        )
        assert samples[("hotswap_module_version", (("module", "shop"),))] == 3
    finally:
        again.unregister()


def test_prometheus_scraped_over_http(project, metrics):
    project.load("shop", SHOP)
    assert project.reload("shop", SHOP.replace("RATE = 2", "RATE = 3")).ok
    server, thread = start_http_server(0, addr="127.0.0.1", registry=metrics.registry)
    try:
        url = f"http://127.0.0.1:{server.server_port}/metrics"
        with urllib.request.urlopen(url, timeout=30) as response:
            text = response.read().decode()
    finally:
        server.shutdown()
        server.server_close()
        thread.join(30)
    assert 'hotswap_reloads_total{module="shop",outcome="applied"} 1.0' in text
    assert 'hotswap_module_version{module="shop"} 2.0' in text


@pytest.mark.watcher
def test_prometheus_watcher_up_follows_the_watcher(project, metrics):
    up = ("hotswap_watcher_up", ())
    assert scrape(metrics.registry)[up] == 0
    hotswap.enable([str(project.root)])
    try:
        assert scrape(metrics.registry)[up] == 1
    finally:
        hotswap.disable()
    assert scrape(metrics.registry)[up] == 0


def test_prometheus_dashboard_queries_only_exported_metrics(metrics):
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [
        target["expr"]
        for panel in dashboard["panels"]
        for target in panel.get("targets", ())
        if "expr" in target
    ]
    assert len(exprs) >= 6
    exported = {
        sample
        for family in metrics.registry.collect()
        for sample in (
            family.name,
            f"{family.name}_total",
            f"{family.name}_bucket",
            f"{family.name}_count",
            f"{family.name}_sum",
        )
    }
    used = {name for expr in exprs for name in re.findall(r"\bhotswap_[a-z_]+", expr)}
    assert used
    assert used <= exported, used - exported
    covered = {n.removesuffix("_total").removesuffix("_bucket") for n in used}
    for required in (
        "hotswap_reloads",
        "hotswap_reload_duration_seconds",
        "hotswap_module_version",
        "hotswap_rollbacks",
        "hotswap_watcher_up",
    ):
        assert required in covered, required


@pytest.mark.parametrize(
    ("integration", "missing", "extra"),
    [("prometheus", "prometheus_client", "prometheus"), ("otel", "opentelemetry", "otel")],
)
def test_prometheus_and_otel_without_their_library_say_what_to_install(
    integration, missing, extra, tmp_path
):
    code = (
        f"import sys; sys.modules[{missing!r}] = None\n"
        f"from hotswap.integrations import {integration}\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert f"hotswap's '{extra}' extra (pip install -e '.[{extra}]' in a checkout)" in done.stderr
