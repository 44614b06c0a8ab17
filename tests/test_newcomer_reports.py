"""What an operator reads (issue 24.7): Prometheus counts what was applied, canary log lines
say one thing once, auto rollback names a figure it has, the Django migration refusal reads as
one sentence, ``%hotswap`` forgets an error a save fixed."""

from __future__ import annotations

import logging

import pytest

import hotswap
from hotswap._release import canary as _canary

SHOP = "RATE = 2\n\ndef price(amount):\n    return amount * RATE\n"


def test_prometheus_counts_canary_starts_and_aborts_as_no_applied_reload(
    project, watch, metrics, caplog
):
    pytest.importorskip("prometheus_client")
    from prometheus_client import generate_latest
    from prometheus_client.parser import text_string_to_metric_families

    caplog.set_level(logging.INFO, logger="hotswap")
    project.load("shop", SHOP)
    collector = watch(canary={"weight": 0.3})
    project.write("shop", SHOP.replace("RATE = 2", "RATE = 3"))
    collector.wait_for(lambda results: any(r.kind == "canary" and r.ok for r in results))
    assert _canary.running()["shop"].promote().ok  # applied: v2
    project.write("shop", SHOP.replace("RATE = 2", "RATE = 4"))
    collector.wait_for(lambda results: len([r for r in results if r.kind == "canary"]) >= 2)
    _canary.running()["shop"].abort()
    assert hotswap.status().modules["shop"].version == 2

    text = generate_latest(metrics.registry).decode()
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    applied = samples.get(("hotswap_reloads_total", (("module", "shop"), ("outcome", "applied"))))
    assert applied == 1, text
    assert not any(
        name == "hotswap_reloads_total" and ("outcome", "rejected") in labels
        for name, labels in samples
    ), text
    # One line per canary start, in one wording.
    started = [r.getMessage() for r in caplog.records if "canary started" in r.getMessage()]
    assert len(started) == 2, started
    assert all(line.endswith("canary started at weight 0.3") for line in started), started
