"""The results of an attempt: one per module named, recorded, logged, counted and announced."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import sys
import threading
import time
import types
from collections.abc import Collection, Iterator, Sequence

from hotswap._engine import hooks as _hooks
from hotswap._engine.history import Record
from hotswap._engine.history import records as _records
from hotswap._engine.report import changes_of, dependents_of, skipped_of
from hotswap._engine.unit import Failure, Unit
from hotswap._ops import events as _events
from hotswap._ops import forks as _forks
from hotswap._ops.events import Changes, ReloadResult, describe
from hotswap._plan import modules as _modules

__all__ = ("failed", "finish", "hushed", "metrics", "report", "results")

logger = logging.getLogger("hotswap._engine.transaction")
metrics = _events.Metrics(_forks.guarded(threading.Lock(), "metrics"))
# Per thread: the failures (module, message) said already, which a retry does not say again.
_said = threading.local()


@contextlib.contextmanager
def hushed(said: Collection[tuple[str, str]]) -> Iterator[None]:
    """Within this block, on this thread, a failure whose (module, message) is in ``said`` is
    recorded and counted but logged at DEBUG and not announced: the watcher trying a failed
    change set again after a later one committed says a failure it reported once only once."""
    saved = getattr(_said, "failures", None)
    _said.failures = said
    try:
        yield
    finally:
        _said.failures = saved


def report(
    result: ReloadResult, *, why: str | None = None, level: int | None = None
) -> ReloadResult:
    """Record, log (at ``level``: by default INFO for a success, WARNING for a failure) and
    announce a result made outside a reload (a canary's start or abort)."""
    return finish(result, _records.get(result.module), why, level)


def finish(
    result: ReloadResult,
    record: Record | None,
    why: str | None = None,
    level: int | None = None,
) -> ReloadResult:
    if not result.epoch:
        result = dataclasses.replace(result, epoch=_hooks.epoch())
    if record is not None:
        record.last_result = result
    if result.kind != "canary":  # a canary's start or abort is not a reload attempt
        metrics.record(result)
    # The fields of the result ride on the log record, for structured log formatters.
    extra = _events.log_extra(result)
    said = getattr(_said, "failures", None)
    if said is not None and not result.ok and (result.module, str(result.error)) in said:
        logger.debug("hotswap: %s (tried again, said before)", describe(result), extra=extra)
        return result
    if level is None:
        level = logging.INFO if result.ok else logging.WARNING
    logger.log(level, "hotswap: %s", describe(result), extra=extra)
    _events.emit(result, reason=why)
    return result


def results(
    entries: Sequence[tuple[types.ModuleType | str, bytes | None]],
    roots: list[Unit],
    units: list[Unit],
    start: float,
    reason: str = "",
) -> list[ReloadResult]:
    duration = time.perf_counter() - start
    results: list[ReloadResult] = []
    finished: dict[int, ReloadResult] = {}
    epoch = _hooks.advance(
        {
            unit.name: (unit.digest, unit.data, unit.before)
            for unit in roots
            if unit.digest is not None and unit.digest != unit.before
        }
    )
    for unit in (_root_of(target, roots) for target, _ in entries):
        module = unit.module
        if id(module) in finished:
            results.append(finished[id(module)])
            continue
        record = unit.record
        applied = unit.executed is not None
        if not applied and unit.digest is not None and unit.digest != record.current.source_hash:
            # Only comments or layout changed (or what changed cannot run yet): the live code
            # is this source's, with no new version.
            record.current.source_hash = unit.digest
            record.current.source = unit.new
            record.current.running_from = unit.plan.running_from
        kind = "reset" if unit.force and applied else "reload" if applied else "unchanged"
        result = ReloadResult(
            module=unit.name,
            ok=True,
            version=record.current.number,
            changes=changes_of(unit) if applied else Changes(),
            duration=duration,
            warnings=unit.warnings,
            kind=kind,
            dependents=dependents_of(unit.name, [u for u in units if not u.root]),
            skipped=skipped_of(unit),
            reason=reason,
            epoch=epoch,
        )
        finished[id(module)] = finish(result, record)
        results.append(finished[id(module)])
    for unit in units:
        if not unit.root and unit.executed is not None:
            unit.record.last_result = ReloadResult(
                module=unit.name,
                ok=True,
                version=unit.record.current.number,
                changes=changes_of(unit),
                duration=duration,
                kind="reload",
            )
    return results


def _root_of(target: types.ModuleType | str, roots: list[Unit]) -> Unit:
    """The unit of an entry, as resolved when the change set was read (``sys.modules`` may
    have changed since: a script run by runpy leaves ``__main__`` when it ends)."""
    for unit in roots:
        if target is unit.module or target in unit.names:
            return unit
    raise LookupError(target)


def failed(
    entries: Sequence[tuple[types.ModuleType | str, bytes | None]],
    units: list[Unit],
    failure: Failure,
    start: float,
    reason: str = "",
) -> list[ReloadResult]:
    duration = time.perf_counter() - start
    results = []
    for target, _ in entries:
        name = _modules.module_name(target)
        unit = next((u for u in units if u.root and (target is u.module or name in u.names)), None)
        module = sys.modules.get(name)
        if unit is None and isinstance(module, types.ModuleType):
            name = _modules.canonical(module)  # __mp_main__ reports as __main__
        record = unit.record if unit is not None else _records.get(name)
        version = record.current.number if record is not None else (1 if name in sys.modules else 0)
        result = ReloadResult(
            module=unit.name if unit is not None else name,
            ok=False,
            version=version,
            error=failure.error,
            rolled_back=failure.rolled_back,
            duration=duration,
            reason=reason,
        )
        results.append(finish(result, record))
    return results
