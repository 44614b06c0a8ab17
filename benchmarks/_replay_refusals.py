"""The refusals of a replay (bench_replay.py), step by step: which steps a peer refused and
the changes each refusal names, once each.

A step is *refused* when the tool rejected at least one of its modules (hotswap's
``IncompatibleChangeError`` or ``AuditError``; under ``policy="strict"``, a change that could
break a caller of the old code). Through the watcher a refused change set stays refused at
every later step (the old code stays live, so each later checkout carries the same change):
the first step that names a change is where it came from.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ("refusals",)

# "pkg.mod (pkg/mod.py:14): f(a) -> f(): why": the line number moves between releases.
_LINE = re.compile(r":\d+\)")


def findings(reason: str) -> list[str]:
    """The changes one refusal names (one per line after its first), line numbers left out."""
    lines = reason.split("\n")
    found = [_LINE.sub(")", line.strip()) for line in lines[1:] if line.strip()]
    return found or [_LINE.sub(")", lines[0].partition(": ")[2].strip())]


def refusals(results: dict[str, dict[str, Any]]) -> str:
    """Per package and peer with refusals: the steps refused, and each change named, with
    the release that brought it."""
    out = []
    for name, rows in results.items():
        for peer, row in rows.items():
            refused = [r for r in row.get("reasons", []) if "IncompatibleChangeError" in r]
            if not refused:
                continue
            steps: list[str] = []
            first: dict[str, str] = {}
            for reason in refused:
                version = reason.split(" ", 1)[0]
                if version not in steps:
                    steps.append(version)
                for change in findings(reason.split(" ", 1)[1]):
                    first.setdefault(change, version)
            out.append(
                f"- {name} {peer}: {len(steps)} of {row['steps']} steps refused "
                f"({', '.join(steps)})"
            )
            out += [f"  - from {version}: {change}" for change, version in first.items()]
    return "\n".join(out)
