"""The reload transaction's entry points (reload, reload_many, reload_data, rollback, and
plan_alone for a canary), their planning (read, parse, compatibility, audit, importers that
follow), and the reload lock. Running a plan is :mod:`hotswap._engine.apply`; results are
:mod:`hotswap._engine.outcome`; one module of a change set is :class:`hotswap._engine.unit.Unit`.

One change set (one module, or several saved together) is one transaction. Everything before
execution (read, parse, plan, compatibility check, compile) touches nothing live, so a rejection
there needs no rollback. From execution on, any exception restores every touched module's
snapshot (and undoes what framework adapters did), so a failure changes nothing observable.
"""

from __future__ import annotations

import ast
import dataclasses
import hashlib
import logging
import os
import sys
import threading
import time
import types
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from hotswap._config import settings as _config
from hotswap._engine import apply as _apply
from hotswap._engine import crosswriters as _crosswriters
from hotswap._engine import history as _history
from hotswap._engine import hooks as _hooks
from hotswap._engine import importers as _importers
from hotswap._engine import order as _order
from hotswap._engine import outcome as _outcome
from hotswap._engine import rewrite as _rewrite
from hotswap._engine.baseline import live_symbols, synthesize
from hotswap._engine.execute import compile_plan
from hotswap._engine.gil import Lowered, collector_paused
from hotswap._engine.history import Record as _Record
from hotswap._engine.history import left_by_rollback, module_statuses
from hotswap._engine.history import record_for as _record_for
from hotswap._engine.history import records as _records
from hotswap._engine.outcome import failed as _failed
from hotswap._engine.outcome import finish as _finish
from hotswap._engine.outcome import report
from hotswap._engine.outcome import results as _results
from hotswap._engine.pin import gate
from hotswap._engine.snapshot import capture
from hotswap._engine.unit import Failure as _Failure
from hotswap._engine.unit import Unit as _Unit
from hotswap._engine.unit import canary_running as _canary_running
from hotswap._engine.unit import facts as _facts
from hotswap._engine.unit import keep as _keep
from hotswap._ops import events as _events
from hotswap._ops import tracing as _tracing
from hotswap._ops.events import Changes, ReloadResult, location
from hotswap._plan import audit as _audit
from hotswap._plan import datafiles as _datafiles
from hotswap._plan import modules as _modules
from hotswap._plan import planner as _planner
from hotswap._plan import signing as _signing
from hotswap._plan import statements as _statements
from hotswap._plan.checks import check_compatibility
from hotswap.exceptions import (
    HotswapError,
    ReentrantReloadError,
    SourceSyntaxError,
    VersionNotFoundError,
)

__all__ = (
    "collector_paused",
    "left_by_rollback",
    "metrics",
    "module_statuses",
    "plan_alone",
    "prepare_many",
    "reload",
    "reload_data",
    "reload_many",
    "report",
    "rollback",
)

logger = logging.getLogger(__name__)

_lock = threading.RLock()
if hasattr(os, "register_at_fork"):
    # A fork waits for the reload running in another thread: a child must not inherit a
    # module half way through a transaction, nor this lock held by a thread it does not have
    # (a forked fleet worker reloads as it joins). The forking thread owns it in both.
    os.register_at_fork(before=_lock.acquire, after_in_parent=_lock.release)
    os.register_at_fork(after_in_child=_lock.release)
_local = threading.local()  # .active: the module this thread is reloading, if any
metrics = _outcome.metrics


@contextmanager
def _attempt(name: str) -> Iterator[None]:
    """One attempt (a reload or a rollback) at a time, and never one from inside another: a
    reload started by module code or a hook would wait for itself."""
    if getattr(_local, "active", None) is not None:
        message = (
            f"{name}: reload started while {_local.active} is being reloaded "
            "(from module code or a hook); start it after that reload returns"
        )
        raise _Failure(ReentrantReloadError(message, module=name))
    with _lock, _priority():
        _local.active = name
        try:
            yield
        finally:
            _local.active = None


# While a reload runs, its thread asks for the GIL at every file read, lock and wait; with the
# default 5 ms switch interval, CPU-bound threads make each of those asks wait up to 5 ms per
# thread (eight busy threads: a 1.5 ms reload took 120 ms, tests/test_pin.py's stress test).
# A short interval for the few milliseconds of the reload gives the GIL back promptly.
_RELOAD_SWITCH_INTERVAL = 0.0002


@contextmanager
def _priority() -> Iterator[None]:
    lowered = Lowered(_RELOAD_SWITCH_INTERVAL)
    try:
        yield
    finally:
        lowered.restore()  # unless the reloaded code set an interval of its own


def reload(
    target: types.ModuleType | str,
    *,
    policy: str | None = None,
    force: bool = False,
    definitions_only: bool = False,
    data: bytes | None = None,
) -> ReloadResult:
    """Reload one module through the transaction; never raises for a failed reload.

    ``data`` is the source the caller already read and checked (the watcher), so exactly that
    is executed, not what the file holds a moment later. ``definitions_only`` is accepted for
    callers of the earlier API: ``__main__``'s running statement is now found, not assumed.
    """
    del definitions_only
    return reload_many([(target, data)], policy=policy, force=force)[0]


def reload_data(path: str, readers: dict[str, set[int]]) -> list[ReloadResult]:
    """A data file changed: run again the statements that read it at import (module name ->
    their first lines), and their dependents, as one transaction; one result per module."""
    start = time.perf_counter()
    units: list[_Unit] = []
    entries: list[tuple[types.ModuleType | str, bytes | None]] = [(n, None) for n in readers]
    before = _datafiles.recorded()
    try:
        with _attempt(next(iter(readers), "?")):
            for name, lines in readers.items():
                module = _resolve_entry(name)
                unit = _importer(name, name, "", follow=False)
                if unit is None:
                    continue
                unit.root, unit.rerun, unit.names = True, frozenset(lines), {name}
                units.append(unit)
                _datafiles.forget(name, lines)  # the statements record again as they run
                del module
            roots = list(units)
            _plan_all(units, _config.current().policy, False)
            if any(u.plan for u in units):
                _apply.run(units)
            return _results(entries, roots, units, start)
    except _Failure as failure:
        # Nothing of it stands: the statements still read the file (a save of it retries).
        _datafiles.restore(readers, before)
        return _failed(entries, units, failure, start)
    except HotswapError as error:  # pinned sections did not leave: nothing ran
        _datafiles.restore(readers, before)
        return _failed(entries, units, _Failure(error), start)


def reload_many(
    entries: Sequence[tuple[types.ModuleType | str, bytes | None]],
    *,
    policy: str | None = None,
    force: bool = False,
    reason: str = "",
    pin_timeout: float | None = None,
) -> list[ReloadResult]:
    """Reload a change set: several modules, planned and checked together, committed or rolled
    back as one transaction (DESIGN §5.3); one result per entry, in the order given.

    Each entry is (module or module name, the bytes to apply or None to read the file);
    ``reason`` is carried by the results (a canary's promotion says why); ``pin_timeout``
    overrides the setting for this attempt (a fleet worker retries with short waits).
    """
    names = [_modules.module_name(t) for t, _ in entries]
    with _tracing.span("hotswap.reload", module=", ".join(names)) as span:
        results = _reload_many(entries, names, policy, force, reason, pin_timeout)
        span.result(results[0])
    return results


def prepare_many(
    entries: Sequence[tuple[types.ModuleType | str, bytes | None]], *, policy: str | None = None
) -> tuple[str, ...]:
    """Plan a change set exactly as :func:`reload_many` would (read, signature, parse,
    compatibility, importers that follow, audit, compile) and run nothing: a fleet worker's
    vote. Returns the compatibility warnings a commit would apply anyway.

    Raises:
        HotswapError: what the reload would report before running anything.
    """
    names = [_modules.module_name(t) for t, _ in entries]
    try:
        with _attempt(names[0] if names else "?"):
            chosen = _config.current().policy if policy is None else policy
            units = _read(entries, False)
            _plan_all(units, chosen, False)
            return tuple(w for u in units for w in u.warnings)
    except _Failure as failure:
        if isinstance(failure.error, HotswapError):
            raise failure.error from failure.error.__cause__
        raise


def _reload_many(
    entries: Sequence[tuple[types.ModuleType | str, bytes | None]],
    names: list[str],
    policy: str | None,
    force: bool,
    reason: str = "",
    pin_timeout: float | None = None,
) -> list[ReloadResult]:
    start = time.perf_counter()
    units: list[_Unit] = []
    try:
        with _attempt(names[0] if names else "?"):
            chosen = _config.current().policy if policy is None else policy
            if chosen not in _config.POLICIES:
                message = f"policy must be one of {', '.join(_config.POLICIES)}, not {chosen!r}"
                raise ValueError(message)
            read = entries
            if len(entries) == 1 and not force:
                # The file is read once, for both paths: the rewrite's and the statements'.
                target, given = entries[0]
                read = [(target, _modules.source_bytes(target) if given is None else given)]
                # A whole-module rewrite runs its new text as it is (no statement diff).
                done = _rewrite.attempt(*read[0], chosen, reason, pin_timeout)
                if done is not None:
                    return [done]
            with _tracing.span("hotswap.plan", module=", ".join(names)), collector_paused():
                units = _read(read, force)
                roots = list(units)
                _plan_all(units, chosen, force)
            for unit in roots:
                _events.publish(_planned(unit))
            if any(u.plan for u in units):
                _apply.run(units, pin_timeout)
            return _results(entries, roots, units, start, reason)
    except _Failure as failure:
        return _failed(entries, units, failure, start, reason)
    except HotswapError as error:  # pinned sections did not leave: nothing ran
        return _failed(entries, units, _Failure(error), start, reason)


def _resolve_entry(target: types.ModuleType | str) -> types.ModuleType:
    try:
        module = _modules.resolve(target)
    except HotswapError as error:
        raise _Failure(error) from error
    return _modules.original_of(module)  # a copy (tlz.functoolz) follows its original


def _read(
    entries: Sequence[tuple[types.ModuleType | str, bytes | None]], force: bool
) -> list[_Unit]:
    """Resolve, read and parse every entry (aliases of one module count once)."""
    units: dict[int, _Unit] = {}
    for target, given in entries:
        module = _resolve_entry(target)
        if id(module) in units:
            units[id(module)].names.add(_modules.module_name(target))
            continue
        name = _modules.canonical(module)
        if _hooks.busy(name):
            raise _Failure(_canary_running(name))
        try:
            path = _modules.source_file(module)
            if given is None:
                text, data = _modules.read_source(name, path)
            else:
                text, data = _modules.decode_source(name, path, given), given
        except HotswapError as error:
            raise _Failure(error) from error
        record = _record_for(module)
        digest = hashlib.sha256(data).hexdigest()
        if record.current.source_hash == digest and not force and record.live is not None:
            new = record.live
        else:
            try:
                # Signed changes: the exact bytes about to apply must carry a valid signature.
                _signing.verify(path, data, module=name)
            except HotswapError as error:
                raise _Failure(error) from error
            try:  # read ahead, outside the lock (a huge file), or now
                new = _history.take_next(digest) or _statements.parse_module(
                    text, record.live, keep_nodes=True
                )
            except SyntaxError as error:
                raise _Failure(_syntax_error(name, path, error)) from error
        unit = _Unit(module, record, path, new, record.live, True, data, digest, force=force)
        unit.before = record.current.source_hash
        unit.origin = name
        unit.names = {name, module.__name__, target if isinstance(target, str) else name}
        units[id(module)] = unit
    return list(units.values())


def plan_alone(
    target: types.ModuleType | str, data: bytes | None = None, policy: str | None = None
) -> tuple[_Unit, _statements.ModuleSource]:
    """Plan a module's file as a reload would (read, signature, parse, compatibility, audit,
    compile) without running anything and without its importers: what a canary tries.
    Returns the unit and the source its live code runs.

    Raises:
        HotswapError: what a reload would report (a syntax error, an incompatible change...).
    """
    try:
        with _attempt(_modules.module_name(target)):
            chosen = _config.current().policy if policy is None else policy
            units = _read([(target, data)], False)
            _plan_all(units, chosen, False, follow=False)
            unit = units[0]
            assert unit.old is not None
            return unit, unit.old
    except _Failure as failure:
        if isinstance(failure.error, HotswapError):
            raise failure.error from failure.error.__cause__
        raise


def _syntax_error(name: str, path: str, error: SyntaxError) -> SourceSyntaxError:
    error.filename = error.filename if error.filename not in (None, "<unknown>") else path
    where = location(name, error.filename, error.lineno)
    if error.offset:
        where = where[:-1] + f":{error.offset})"
    return SourceSyntaxError(f"{where}: {error.msg}", module=name, error=error)


def _upstream(unit: _Unit, planned: Sequence[_Unit]) -> _planner.Upstream:
    namespace = vars(unit.module)
    package = namespace.get("__package__") or ""
    rebound = {u.name: frozenset(u.plan.rebound) for u in planned if u.plan.rebound}
    dirty = {u.name: frozenset(u.plan.dirty) for u in planned if u.plan.dirty}

    def resolve(level: int, module: str) -> str:
        if not level:
            return module
        base = package.rsplit(".", level - 1)[0] if level > 1 else package
        return f"{base}.{module}" if module else base

    def target(local: str, chain: tuple[str, ...]) -> tuple[str, str] | None:
        return _importers.module_attribute(namespace, local, chain)

    return _planner.Upstream(rebound, dirty, resolve, target)


def _plan_all(units: list[_Unit], policy: str, force: bool, *, follow: bool = True) -> None:
    """Check and plan the change set, then follow it into importers (DESIGN §5.2)."""
    try:
        _plan_units(units, policy, force, follow)
    finally:
        for unit in units:
            unit.new.nodes.clear()  # the ASTs kept by the parse serve this compile only


def _plan_units(units: list[_Unit], policy: str, force: bool, follow: bool) -> None:
    texts = _importers.Texts(units)
    for unit in units:
        fresh = unit.old is None
        if unit.old is None:
            unit.old = synthesize(unit.module, unit.new, unit.path, unit.unknown)
        if unit.new is unit.old or policy == "off":
            continue  # ``off`` checks nothing: no symbol tables are built for it
        old_symbols = live_symbols(unit.module) if fresh else unit.old.symbols
        try:
            unit.warnings = check_compatibility(
                unit.name, unit.path, old_symbols, unit.new.symbols, policy, texts.all
            )
        except HotswapError as error:
            raise _Failure(error) from error
    # Ordered once the live sources are known: what a module's change rebinds decides.
    units[:] = _order.in_import_order(units)
    _plan_queue(units, texts, follow)
    for _ in range(3):  # each pass can only add binding statements: a few at most
        extra = _crosswriters.binders_to_rerun(units, lambda u: _upstream(u, []))
        if not extra:
            break
        for unit in units:
            unit.rerun = unit.rerun | extra.get(unit.name, frozenset())
        _plan_queue(units, texts, follow)  # the containers' modules rebind them: plan again
    for unit in units:
        if unit.root and unit.plan.direct:
            _audit_unit(unit)
        if unit.plan.run:
            try:
                unit.code = compile_plan(unit.new, unit.plan, unit.path)
            except SyntaxError as error:
                raise _Failure(_syntax_error(unit.name, unit.path, error)) from error


def _plan_queue(units: list[_Unit], texts: _importers.Texts, follow: bool) -> None:
    """Plan ``units`` in order, each with what the ones before it changed, and follow each
    change into its importers (appended to ``units``)."""
    planned: list[_Unit] = []
    queue = list(units)
    seen = {u.name for u in units}
    while queue:
        unit = queue.pop(0)
        unit.plan = _planner.plan(
            unit.old, unit.new, _facts(unit), _upstream(unit, planned), force=unit.force
        )
        planned.append(unit)
        if not follow or not (unit.plan.rebound or unit.plan.dirty) or unit.name == "__main__":
            continue  # (nothing imports from the running script by that name)
        for name in _importers.candidates(unit.name, texts):
            if name in seen:
                continue
            importer = _importer(name, unit.origin, unit.name)
            if importer is None:
                continue
            seen.add(name)
            units.append(importer)
            queue.append(importer)


def _audit_unit(unit: _Unit) -> None:
    """The audit policy: the changed and new statements may not use denied names (the
    module's imports and aliases say what their names stand for)."""
    if _config.current().audit is None:
        return
    statements = unit.new.statements
    changed = [_statements.parse_statement(statements[i]) for i in sorted(unit.plan.direct)]
    context = [
        _statements.parse_statement(s)
        for i, s in enumerate(statements)
        if i not in unit.plan.direct and _audit.may_alias(s.text)
    ]
    try:
        _audit.check(unit.name, unit.path, changed, ast.Module([*context, *changed], []))
    except HotswapError as error:
        raise _Failure(error) from error


def _planned(unit: _Unit) -> _events.Planned:
    names = sorted({n for i in unit.plan.direct for n in unit.new.statements[i].info.binds} - {"*"})
    changes = Changes(changed=tuple(names))
    return _events.Planned(unit.name, unit.record.current.number, changes, unit.warnings)


def _importer(name: str, origin: str, target: str, *, follow: bool = True) -> _Unit | None:
    """A module that may depend on a change, with the source its live code runs."""
    module = sys.modules.get(name)
    if not isinstance(module, types.ModuleType):
        return None
    try:
        path = _modules.source_file(module)
    except HotswapError:
        return None
    record = _records.get(_modules.canonical(module))
    fresh = record is None or record.namespace is not vars(module) or _history.ran_again(module)
    source = None if fresh or record is None else record.live
    if source is None:
        source = _importers.known_source(name, path)
        if source is None:
            return None
    if follow and not _importers.imports_from(module, source, target):
        return None
    if record is None or fresh:
        # Registered only if statements of it run (status lists reloaded modules only). What
        # the file holds is the best knowledge of what this module runs.
        record = _Record(module, _config.current().history, None)
        record.current.source = record.origin = source
    unit = _Unit(module, record, path, source, source, False)
    unit.fresh = fresh
    unit.origin = origin
    return unit


def rollback(
    target: types.ModuleType | str,
    to: int | None = None,
    *,
    reason: str = "",
    why: str | None = None,
) -> ReloadResult:
    """Restore a kept version of a module (the previous one when ``to`` is None); ``reason``
    and ``why`` (one word for the :class:`RolledBack` event) say who decided it."""
    start = time.perf_counter()
    name = _modules.module_name(target)
    record: _Record | None = None

    def done(**fields: Any) -> ReloadResult:
        version = record.current.number if record is not None else 0
        fields.setdefault("version", version)
        fields.setdefault("duration", time.perf_counter() - start)
        result = ReloadResult(module=name, kind="rollback", reason=reason, **fields)
        return _finish(result, record, why)

    try:
        with _attempt(name):
            module = _resolve_entry(target)
            name = _modules.canonical(module)
            record = _records.get(name)
            if _hooks.busy(name):
                raise _Failure(_canary_running(name))
            if record is None or record.namespace is not vars(module):
                message = f"{name}: no reload history to roll back to (it was never reloaded)"
                record = None
                raise _Failure(VersionNotFoundError(message, module=name))
            current = record.current.number
            kept = [v for v in record.history if v.number != current]
            if to is None:
                earlier = [v for v in kept if v.number < current]
                chosen = earlier[-1] if earlier else None
            else:
                chosen = next((v for v in kept if v.number == to), None)
                if to == current:
                    return done(ok=True)
            if chosen is None:
                numbers = ", ".join(str(v.number) for v in record.history)
                wanted = "an earlier version" if to is None else f"version {to}"
                message = f"{name}: {wanted} is not kept (history: {numbers}; live: {current})"
                raise _Failure(VersionNotFoundError(message, module=name))
            namespace = vars(module)
            keep = _keep(namespace)
            kept_values = {k: namespace[k] for k in keep if k in namespace}
            path = getattr(module, "__file__", None)
            with gate.exclusive(_config.current().pin_timeout, location(name, path)):
                before = record.current
                # The containers reloads filled in place (registries), as they are now, so a
                # rollback forward to this version finds them again.
                filled = {id(c): c for v in record.history if v.state for c, _ in v.state.contents}
                before.state = dataclasses.replace(
                    capture(namespace, name),
                    contents=tuple((c, c.copy()) for c in filled.values()),
                )
                assert chosen.state is not None  # only the live version lacks one
                chosen.state.restore(namespace)
                # Their items as they were at the chosen version: each state holds them as
                # they were before the change that left it, so the oldest state on the way
                # back (the chosen one last) decides.
                between = [
                    v
                    for v in record.history
                    if v.state is not None and chosen.number <= v.number < current
                ]
                for version in sorted(between, key=lambda v: -v.number) or [chosen]:
                    assert version.state is not None
                    version.state.refill()
                # Kept names keep their current objects across rollbacks too.
                namespace.update(kept_values)
                record.current = chosen
                record.left = before.source_hash if chosen is not before else None
            if chosen.source_hash is not None and chosen.source_hash != before.source_hash:
                text = chosen.source.source.encode() if chosen.source is not None else None
                _hooks.advance({name: (chosen.source_hash, text, before.source_hash)})
            changes = Changes()
            if before.source is not None and chosen.source is not None:
                from hotswap._plan.diff import diff

                delta = diff(before.source.symbols, chosen.source.symbols)
                changes = Changes(delta.added, delta.changed, delta.removed)
            return done(ok=True, changes=changes)
    except _Failure as failure:
        return done(ok=False, error=failure.error, rolled_back=failure.rolled_back)


def reset() -> None:
    """Forget all records (for tests)."""
    with _lock:
        _records.clear()
        _history.forget_next()
        _importers.reset()
        _rewrite.forget()
