"""Mergeable latency summaries: durations counted in fixed log-scale buckets.

A process's canary keeps its latest durations per arm (:class:`hotswap._release.routing.Figures`);
to give a fleet its own percentiles, each process sends a *summary* of them (bucket index ->
count), the summaries of every process are added bucket by bucket (:func:`merge`), and the
percentiles are read off the sum (:func:`percentile_ms`). The buckets are the same in every
process (a bucket is ``[GROWTH**i, GROWTH**(i+1))`` seconds), so a merged percentile falls in
the bucket of the exact percentile of all the durations taken together: it is off by less than
one bucket, a factor of :data:`GROWTH` (about 4.4%).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

__all__ = ("GROWTH", "Summary", "bucket_of", "merge", "percentile_ms", "summarise")

GROWTH = 2 ** (1 / 16)  # a bucket's upper bound over its lower bound
_LOG = math.log(GROWTH)
_FLOOR = 1e-7  # seconds: shorter durations (and 0) share the lowest bucket
_CEILING = 1e5  # seconds: longer ones share the highest

Summary = dict[int, int]  # bucket index -> durations in it


def bucket_of(seconds: float) -> int:
    """The bucket of a duration (clamped to [0.1 µs, 1e5 s])."""
    clamped = min(max(seconds, _FLOOR), _CEILING)
    return math.floor(math.log(clamped) / _LOG)


def summarise(durations: Iterable[float]) -> Summary:
    """The summary of some durations, in seconds."""
    out: Summary = {}
    for seconds in durations:
        index = bucket_of(seconds)
        out[index] = out.get(index, 0) + 1
    return out


def merge(summaries: Iterable[Mapping[int, int]]) -> Summary:
    """The summary of all the durations of ``summaries`` taken together."""
    out: Summary = {}
    for summary in summaries:
        for index, count in summary.items():
            out[int(index)] = out.get(int(index), 0) + int(count)
    return out


def percentile_ms(summary: Mapping[int, int], share: float) -> float:
    """The ``share`` percentile (0.5: the median) of a summary, in milliseconds: the middle
    (geometric) of the bucket holding the duration of rank ``int(share * n)``, the rank
    :meth:`hotswap._release.routing.Figures.to_dict` reads; 0.0 for an empty summary."""
    total = sum(summary.values())
    if not total:
        return 0.0
    rank = min(total - 1, int(share * total))
    seen = 0
    for index in sorted(summary):
        seen += summary[index]
        if seen > rank:
            return float(GROWTH ** (index + 0.5) * 1000)
    raise AssertionError("unreachable: the ranks are counted")  # pragma: no cover
