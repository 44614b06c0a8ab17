"""A fleet's canary percentiles: every worker's latency summary merged gives the percentiles of
all the durations taken together, within one bucket (:mod:`hotswap._release.latency`)."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from hotswap._fleet.canary import summed
from hotswap._release import latency
from hotswap._release.routing import Figures

durations = st.lists(
    st.floats(min_value=1e-6, max_value=100.0, allow_nan=False), min_size=1, max_size=300
)


def exact_ms(values: list[float], share: float) -> float:
    """The percentile as one process reads it off its own durations."""
    figures = Figures()
    for value in values:
        figures.add(True, value)
    return figures.to_dict()["p50_ms" if share == 0.5 else "p99_ms"]


@given(durations, st.lists(st.integers(min_value=0, max_value=299), max_size=4))
def test_merged_percentiles_of_split_samples_are_within_one_bucket(
    values: list[float], cuts: list[int]
) -> None:
    # Split the durations among workers at the cuts (some workers may hold none).
    bounds = sorted([0, len(values), *(min(c, len(values)) for c in cuts)])
    parts = [values[a:b] for a, b in itertools.pairwise(bounds)]
    merged = latency.merge(latency.summarise(part) for part in parts)
    assert merged == latency.summarise(values)
    for share in (0.5, 0.99):
        exact = exact_ms(values, share)
        found = latency.percentile_ms(merged, share)
        assert exact / latency.GROWTH <= found <= exact * latency.GROWTH, (share, exact, found)


def test_the_fleets_stats_are_its_own_percentiles_not_the_highest_workers() -> None:
    # One worker took 90 fast calls, another 10 slow ones: the fleet's median is fast.
    fast, slow = Figures(), Figures()
    for _ in range(90):
        fast.add(True, 0.001)
    for _ in range(10):
        slow.add(False, 1.0)
    per_worker = [{"candidate": f.to_dict(), "live": Figures().to_dict()} for f in (fast, slow)]
    summaries = [{"candidate": f.summary(), "live": {}} for f in (fast, slow)]
    stats = summed(per_worker, summaries)
    candidate = stats["candidate"]
    assert (candidate["calls"], candidate["errors"], candidate["error_rate"]) == (100, 10, 0.1)
    assert 1 / latency.GROWTH <= candidate["p50_ms"] <= latency.GROWTH  # not the slow worker's
    assert 1000 / latency.GROWTH <= candidate["p99_ms"] <= 1000 * latency.GROWTH
    assert stats["live"] == {
        "calls": 0,
        "errors": 0,
        "error_rate": 0.0,
        "p50_ms": 0.0,
        "p99_ms": 0.0,
    }
    assert latency.percentile_ms({}, 0.5) == 0.0
