"""The events hotswap publishes besides results: small frozen values with ``to_dict()``.

:class:`~hotswap.ReloadResult` (in ``_events``) is an event too: the last one of every reload
or rollback attempt. The listeners and the ``Event`` union live in ``_events``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

__all__ = (
    "CanaryCall",
    "CanaryDecision",
    "ChangeDetected",
    "Changes",
    "Planned",
    "RolledBack",
    "WatcherState",
)


@dataclass(frozen=True)
class Changes:
    """What a reload changed, by qualified name (``f``, ``Cls``, ``Cls.method``).

    Attributes:
        added: names the new source defines and the old did not.
        changed: names defined by both whose definition (or what it depends on) changed.
        removed: names the old source defined and the new does not.
        replaced: classes that could not be updated in place (an Enum, a changed metaclass,
            bases or ``__slots__``, a pydantic model) and were replaced by new class objects,
            each with the reason, e.g. ``Color (it is an Enum)``.
        lines: name -> (first line, last line) of its definition in the new source; for a
            removed name, in the old source.
    """

    added: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    replaced: tuple[str, ...] = ()
    lines: Mapping[str, tuple[int, int]] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.added or self.changed or self.removed or self.replaced)

    def _span(self, name: str) -> str:
        span = self.lines.get(name.split(" ", 1)[0])
        if span is None:
            return ""
        first, last = span
        return f" (L{first})" if first == last else f" (L{first}-{last})"

    def summary(self, most: int = 20) -> str:
        """A short human-readable list, e.g. ``~charge (L12-18), +refund (L40), -legacy``;
        past ``most`` names, how many more (a rewrite of a huge module changes thousands)."""
        names = [("+", n) for n in self.added] + [("~", n) for n in self.changed]
        names += [("-", n) for n in self.removed] + [("!", n) for n in self.replaced]
        parts = [_part(sign, name, self._span(name)) for sign, name in names[:most]]
        if len(names) > most:
            parts.append(f"and {len(names) - most} more")
        return ", ".join(parts) if parts else "no changes"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict: the four name lists and ``lines`` as ``[first, last]``."""
        return {
            "added": list(self.added),
            "changed": list(self.changed),
            "removed": list(self.removed),
            "replaced": list(self.replaced),
            "lines": {name: list(span) for name, span in self.lines.items()},
        }


@dataclass(frozen=True)
class ChangeDetected:
    """The watcher read a saved file whose content changed; its modules reload next.

    Attributes:
        path: the file.
        modules: the loaded modules it backs (usually one).
        source_hash: sha256 of the bytes that will be applied.
        time: when it was detected (``time.time()``).
    """

    event: ClassVar[str] = "change"

    path: str
    modules: tuple[str, ...]
    source_hash: str
    time: float = field(default_factory=time.time)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict: ``event`` and the fields."""
        return {
            "event": self.event,
            "path": self.path,
            "modules": list(self.modules),
            "source_hash": self.source_hash,
            "time": self.time,
        }


@dataclass(frozen=True)
class Planned:
    """A change passed every check before execution (syntax, signature, compatibility, audit):
    its new code runs next.

    Attributes:
        module: the module's name.
        version: the live version the change applies to.
        changes: what the diff found (added, changed, removed names). On a module's first
            reload the old side is known from live objects only, and names whose change is
            decided by running the code are not listed; the result lists them.
        warnings: compatibility findings applied anyway under policy ``"warn"``.
    """

    event: ClassVar[str] = "plan"

    module: str
    version: int
    changes: Changes
    warnings: tuple[str, ...] = ()

    def __str__(self) -> str:
        # How the debug log shows it: the warnings are counted, not repeated, since each was
        # issued as a HotswapWarning pointing at the user's line already.
        count = len(self.warnings)
        warned = f", {count} compatibility warning{'s' * (count != 1)}" if count else ""
        return f"Planned({self.module} v{self.version}: {self.changes.summary()}{warned})"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict: ``event`` and the fields."""
        return {
            "event": self.event,
            "module": self.module,
            "version": self.version,
            "changes": self.changes.to_dict(),
            "warnings": list(self.warnings),
        }


@dataclass(frozen=True)
class RolledBack:
    """Earlier code of a module is live again.

    Attributes:
        module: the module's name.
        version: the version live now.
        reason: ``"requested"`` (:func:`hotswap.rollback`), ``"error"`` (the new code raised),
            ``"migration"`` (``__hotswap_migrate__`` raised), ``"verification"``
            (``__hotswap_verify__`` raised), or what an automatic rollback names
            (``"health"``).
        error: the message of the error that caused it, if any.
    """

    event: ClassVar[str] = "rollback"

    module: str
    version: int
    reason: str
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict: ``event`` and the fields."""
        return {
            "event": self.event,
            "module": self.module,
            "version": self.version,
            "reason": self.reason,
            "error": self.error,
        }


@dataclass(frozen=True)
class CanaryDecision:
    """A gray release started, or was promoted or aborted.

    Attributes:
        module: the module's name.
        decision: ``"start"``, ``"promote"`` or ``"abort"``.
        version: the candidate's version (the version it becomes when promoted).
        weight: the share of calls the candidate gets (0.0 once decided).
        reason: why, e.g. ``error rate 0.12 > 0.01 after 100 calls``.
        stats: arm (``"live"``, ``"candidate"``) -> figures (``calls``, ``errors``...).
    """

    event: ClassVar[str] = "canary"

    module: str
    decision: str
    version: int
    weight: float = 0.0
    reason: str = ""
    stats: Mapping[str, Mapping[str, float]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict: ``event`` and the fields."""
        return {
            "event": self.event,
            "module": self.module,
            "decision": self.decision,
            "version": self.version,
            "weight": self.weight,
            "reason": self.reason,
            "stats": {arm: dict(figures) for arm, figures in self.stats.items()},
        }


@dataclass(frozen=True)
class CanaryCall:
    """One call or request routed while a gray release runs.

    Attributes:
        module: the module under canary.
        arm: ``"live"`` or ``"candidate"``.
        ok: False when it raised (or answered an HTTP 5xx).
        duration: seconds it took.
    """

    event: ClassVar[str] = "canary_call"

    module: str
    arm: str
    ok: bool
    duration: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict: ``event`` and the fields."""
        return {
            "event": self.event,
            "module": self.module,
            "arm": self.arm,
            "ok": self.ok,
            "duration": self.duration,
        }


@dataclass(frozen=True)
class WatcherState:
    """The watcher started or stopped.

    Attributes:
        state: ``"started"`` or ``"stopped"``.
        paths: the watched files and folders.
    """

    event: ClassVar[str] = "watcher"

    state: str
    paths: tuple[str, ...] = ()

    @property
    def up(self) -> bool:
        """Whether the watcher is running after this event."""
        return self.state == "started"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict: ``event`` and the fields."""
        return {"event": self.event, "state": self.state, "paths": list(self.paths)}


def _part(sign: str, name: str, span: str) -> str:
    if sign == "-":
        return f"-{name} (removed)"
    if sign == "!":
        return f"!{name} (replaced)"
    return f"{sign}{name}{span}"
